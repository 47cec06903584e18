//! Disk collector family (`disk`): usage per real mount from the mount
//! table (`/proc/self/mounts`) and `statvfs`, and the `[disk]` config
//! section. `sysinfo`'s disk list is not used: it has no per-mount timeout
//! (one dead NFS mount would hang the run) and cannot read the host's
//! mount table from inside a container (`disk.rootfs`). Pseudo file systems and container/runtime mount points are
//! skipped (configurable), bind mounts of one device are reported once, and
//! `/` is always reported. Each `statvfs` runs on the blocking pool with its
//! own timeout; a mount whose probe is still stuck (a dead network mount) is
//! not probed again until that probe returns, so a dead mount costs at most
//! one parked thread and never delays the other mounts or collectors.

use std::collections::{BTreeMap, HashSet};
use std::ffi::CString;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lull_proto::msg::stats::DiskStats;

use lull_proto::msg::stats::SystemStatsSnapshot;
use serde::{Deserialize, Serialize};

use super::{
    clamp_pct, read_text, same_part, CollectError, CollectFuture, Collected, Collector, Ctx,
    Family, Fresh, Output, Part,
};
use crate::schedule::Schedule;

/// Which mounts the disk collector reports, and how long it waits for one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskConfig {
    /// File-system types that are skipped (pseudo and read-only image file
    /// systems). `/` is always reported. Default: autofs, binfmt_misc, bpf,
    /// cgroup, cgroup2, configfs, debugfs, devpts, devtmpfs, efivarfs,
    /// fusectl, hugetlbfs, mqueue, nsfs, overlay, proc, pstore,
    /// rpc_pipefs, securityfs, selinuxfs, squashfs, erofs, sysfs, tracefs,
    /// tmpfs, ramfs, iso9660, fuse.lxcfs, fuse.portal, nfsd.
    pub ignore_fstypes: Vec<String>,
    /// Mount points under these prefixes are skipped. Default `/proc`,
    /// `/sys`, `/dev`, `/run`, `/snap`, `/var/lib/docker/`,
    /// `/var/lib/containers/`, `/var/lib/kubelet/`.
    pub ignore_mount_prefixes: Vec<String>,
    /// How long one `statvfs` may take before the mount is reported as
    /// unresponsive, milliseconds. A mount whose probe is still stuck is not
    /// probed again until that probe returns. Default 1000.
    pub statvfs_timeout_ms: u64,
    /// Most mounts reported. Default 64.
    pub max_mounts: usize,
    /// Where the host's root file system is seen. Default `/`. In a
    /// container that mounts the node's `/` read-only elsewhere (the
    /// Kubernetes DaemonSet: `/host/root`), set it to that path: mounts are
    /// then read from the host's mount table and probed under this path,
    /// and reported by their host mount points.
    pub rootfs: String,
    /// The mount table. Default: `/proc/self/mounts` when `rootfs` is `/`,
    /// otherwise `/proc/1/mounts` (the host's init; needs the host's PID
    /// namespace, `hostPID: true`).
    pub mounts_file: Option<String>,
}

impl DiskConfig {
    /// The mount table to read.
    pub fn mounts_file(&self) -> String {
        match &self.mounts_file {
            Some(f) => f.clone(),
            None if self.rootfs.trim_end_matches('/').is_empty() => "/proc/self/mounts".into(),
            None => "/proc/1/mounts".into(),
        }
    }

    /// Where a host mount point is probed: under `rootfs`.
    pub fn probe_path(&self, mount: &str) -> String {
        let root = self.rootfs.trim_end_matches('/');
        if root.is_empty() {
            mount.to_string()
        } else if mount == "/" {
            root.to_string()
        } else {
            format!("{root}{mount}")
        }
    }
}

impl Default for DiskConfig {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        DiskConfig {
            ignore_fstypes: s(&[
                "autofs",
                "binfmt_misc",
                "bpf",
                "cgroup",
                "cgroup2",
                "configfs",
                "debugfs",
                "devpts",
                "devtmpfs",
                "efivarfs",
                "fusectl",
                "hugetlbfs",
                "mqueue",
                "nsfs",
                "overlay",
                "proc",
                "pstore",
                "rpc_pipefs",
                "securityfs",
                "selinuxfs",
                "squashfs",
                "erofs",
                "sysfs",
                "tracefs",
                "tmpfs",
                "ramfs",
                "iso9660",
                "fuse.lxcfs",
                "fuse.portal",
                "nfsd",
            ]),
            ignore_mount_prefixes: s(&[
                "/proc",
                "/sys",
                "/dev",
                "/run",
                "/snap",
                "/var/lib/docker/",
                "/var/lib/containers/",
                "/var/lib/kubelet/",
            ]),
            statvfs_timeout_ms: 1000,
            max_mounts: 64,
            rootfs: "/".into(),
            mounts_file: None,
        }
    }
}

/// The disk family's config sections.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Which mounts, and how long to wait for one.
    pub disk: DiskConfig,
}

/// The disk family.
pub struct Disk;

impl Family for Disk {
    type Settings = Settings;
    /// Disk usage per mount: every 60 s (seed 002 §5: 60–120 s), jitter
    /// 6 s, timeout 5 s. The first run comes within the jitter of the start.
    const SCHEDULES: &'static [(&'static str, Schedule)] =
        &[("disk", Schedule::new(60.0, 6.0, 5.0))];

    fn build(s: &Settings, _: &Ctx<'_>) -> Vec<Box<dyn Collector>> {
        vec![Box::new(DiskCollector::new(s.disk.clone()))]
    }
}

/// The snapshot's `host.disks`.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskPart(pub Vec<DiskStats>);

impl Part for DiskPart {
    fn fill(&self, snap: &mut SystemStatsSnapshot, _: &Fresh<'_>) {
        snap.host.disks = self.0.clone();
    }

    fn same(&self, other: &dyn Part) -> bool {
        same_part(self, other)
    }
}

/// One line of `/proc/self/mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Device (or a pseudo name such as `proc`).
    pub device: String,
    /// Mount point (octal escapes decoded).
    pub mount: String,
    /// File-system type.
    pub fstype: String,
}

/// Decodes the octal escapes (`\040` for a space) of `/proc/*/mounts`.
pub fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = (oct[0] - b'0') as u32 * 64
                    + (oct[1] - b'0') as u32 * 8
                    + (oct[2] - b'0') as u32;
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/self/mounts`.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.split_ascii_whitespace();
            let device = it.next()?;
            let mount = it.next()?;
            let fstype = it.next()?;
            Some(Mount {
                device: unescape_octal(device),
                mount: unescape_octal(mount),
                fstype: fstype.to_string(),
            })
        })
        .collect()
}

fn under_prefix(mount: &str, prefix: &str) -> bool {
    if prefix.ends_with('/') {
        mount.starts_with(prefix)
    } else {
        mount == prefix
            || (mount.starts_with(prefix) && mount.as_bytes().get(prefix.len()) == Some(&b'/'))
    }
}

/// The mounts worth reporting: `/` always; others unless their type or
/// mount point is ignored; one mount per block device (the shortest path,
/// so bind mounts do not repeat a disk); at most `max_mounts`.
pub fn select_mounts(mounts: Vec<Mount>, cfg: &DiskConfig) -> Vec<Mount> {
    let mut by_device: BTreeMap<String, usize> = BTreeMap::new();
    let mut out: Vec<Mount> = Vec::new();
    for m in mounts {
        let root = m.mount == "/";
        if !root
            && (cfg.ignore_fstypes.contains(&m.fstype)
                || cfg
                    .ignore_mount_prefixes
                    .iter()
                    .any(|p| under_prefix(&m.mount, p)))
        {
            continue;
        }
        if out.iter().any(|o| o.mount == m.mount) {
            // Over-mounted: the last mount on a path is the visible one.
            if let Some(o) = out.iter_mut().find(|o| o.mount == m.mount) {
                *o = m;
            }
            continue;
        }
        if m.device.starts_with('/') {
            if let Some(&i) = by_device.get(&m.device) {
                if m.mount.len() < out[i].mount.len() {
                    out[i] = m;
                }
                continue;
            }
            by_device.insert(m.device.clone(), out.len());
        }
        out.push(m);
    }
    out.truncate(cfg.max_mounts);
    out
}

/// Usage from `statvfs` figures, with `df` semantics: `free_bytes` is what
/// unprivileged users may still write, `used_pct` is used over used plus
/// that. `None` for a zero-sized file system.
pub fn usage(mount: &str, blocks: u64, bfree: u64, bavail: u64, frsize: u64) -> Option<DiskStats> {
    if blocks == 0 || frsize == 0 {
        return None;
    }
    let total = blocks.saturating_mul(frsize);
    let free = bavail.min(blocks).saturating_mul(frsize);
    let used = blocks.saturating_sub(bfree);
    let denom = used + bavail.min(blocks);
    let used_pct = if denom == 0 {
        0.0
    } else {
        clamp_pct(used as f64 / denom as f64 * 100.0)
    };
    Some(DiskStats {
        mount: mount.to_string(),
        total_bytes: total,
        free_bytes: free.min(total),
        used_pct,
    })
}

/// `statvfs` of `path`, reported as `mount`.
fn statvfs(mount: &str, path: &str) -> Result<Option<DiskStats>, String> {
    let c = CString::new(path).map_err(|_| "mount point contains NUL".to_string())?;
    // SAFETY: `st` is plain old data that statvfs fills; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    #[allow(clippy::unnecessary_cast)]
    Ok(usage(
        mount,
        st.f_blocks as u64,
        st.f_bfree as u64,
        st.f_bavail as u64,
        st.f_frsize as u64,
    ))
}

/// The disk collector.
pub struct DiskCollector {
    cfg: Arc<DiskConfig>,
    pending: Arc<Mutex<HashSet<String>>>,
}

impl DiskCollector {
    /// A collector with the given filters.
    pub fn new(cfg: DiskConfig) -> Self {
        DiskCollector {
            cfg: Arc::new(cfg),
            pending: Arc::new(Mutex::new(HashSet::new())),
        }
    }
}

async fn probe(
    mount: String,
    path: String,
    pending: Arc<Mutex<HashSet<String>>>,
    timeout: Duration,
) -> Result<Option<DiskStats>, String> {
    {
        let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.contains(&mount) {
            return Err(format!(
                "{mount}: statvfs from an earlier run still blocked (unresponsive mount)"
            ));
        }
        p.insert(mount.clone());
    }
    let m = mount.clone();
    let pend = Arc::clone(&pending);
    let handle = tokio::task::spawn_blocking(move || {
        let r = statvfs(&m, &path);
        pend.lock().unwrap_or_else(|e| e.into_inner()).remove(&m);
        r
    });
    match tokio::time::timeout(timeout, handle).await {
        Ok(Ok(r)) => r.map_err(|e| format!("{mount}: {e}")),
        Ok(Err(e)) => Err(format!("{mount}: statvfs panicked: {e}")),
        Err(_) => Err(format!(
            "{mount}: statvfs timed out after {} ms (unresponsive mount)",
            timeout.as_millis()
        )),
    }
}

impl Collector for DiskCollector {
    fn name(&self) -> &'static str {
        "disk"
    }

    fn collect(&mut self) -> CollectFuture<'_> {
        let cfg = Arc::clone(&self.cfg);
        let pending = Arc::clone(&self.pending);
        Box::pin(async move {
            // Reading the mount table does not touch the file systems.
            let mounts = select_mounts(parse_mounts(&read_text(cfg.mounts_file())?), &cfg);
            let timeout = Duration::from_millis(cfg.statvfs_timeout_ms.max(1));
            let probes = mounts.into_iter().map(|m| {
                let path = cfg.probe_path(&m.mount);
                probe(m.mount, path, Arc::clone(&pending), timeout)
            });
            let results = futures::future::join_all(probes).await;
            let mut disks = Vec::new();
            let mut warnings = Vec::new();
            for r in results {
                match r {
                    Ok(Some(d)) => disks.push(d),
                    Ok(None) => {}
                    Err(e) => warnings.push(e),
                }
            }
            if disks.is_empty() && !warnings.is_empty() {
                return Err(CollectError::Io(warnings.join("; ")));
            }
            Ok(Collected {
                output: Output::new(DiskPart(disks)),
                warnings,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "overlay / overlay rw,relatime 0 0\n\
proc /proc proc rw 0 0\n\
tmpfs /dev tmpfs rw 0 0\n\
sysfs /sys sysfs ro 0 0\n\
cgroup /sys/fs/cgroup cgroup2 ro 0 0\n\
/dev/sda1 /data ext4 rw 0 0\n\
/dev/sda1 /etc/hosts ext4 rw 0 0\n\
/dev/sda1 /data/sub ext4 rw 0 0\n\
/dev/sdb1 /mnt/my\\040disk xfs rw 0 0\n\
nfs.example:/export /mnt/nfs nfs4 rw 0 0\n\
/dev/loop3 /snap/core/1 squashfs ro 0 0\n\
/dev/sdc1 /var/lib/docker/overlay2/x ext4 rw 0 0\n\
/dev/sdd1 /runner ext4 rw 0 0\n";

    #[test]
    fn mount_selection() {
        let sel = select_mounts(parse_mounts(MOUNTS), &DiskConfig::default());
        let paths: Vec<&str> = sel.iter().map(|m| m.mount.as_str()).collect();
        assert_eq!(
            paths,
            vec!["/", "/data", "/mnt/my disk", "/mnt/nfs", "/runner"]
        );
    }

    #[test]
    fn bind_mounts_keep_the_shortest_path() {
        let t = "/dev/sda1 /etc/hostname ext4 rw 0 0\n/dev/sda1 /srv ext4 rw 0 0\n";
        let sel = select_mounts(parse_mounts(t), &DiskConfig::default());
        assert_eq!(sel.len(), 1);
        assert_eq!(sel[0].mount, "/srv");
    }

    #[test]
    fn max_mounts() {
        let cfg = DiskConfig {
            max_mounts: 2,
            ..Default::default()
        };
        assert_eq!(select_mounts(parse_mounts(MOUNTS), &cfg).len(), 2);
    }

    #[test]
    fn octal_escapes() {
        assert_eq!(unescape_octal("/a\\040b\\011c"), "/a b\tc");
        assert_eq!(unescape_octal("/a\\0"), "/a\\0");
        assert_eq!(unescape_octal("\\"), "\\");
    }

    #[test]
    fn usage_has_df_semantics() {
        // 100 blocks of 4 KiB, 30 free, 20 available to users
        let d = usage("/", 100, 30, 20, 4096).unwrap();
        assert_eq!(d.total_bytes, 409_600);
        assert_eq!(d.free_bytes, 81_920);
        // used 70 of (70 + 20)
        assert!((d.used_pct - 77.777).abs() < 0.01, "{}", d.used_pct);
        assert!(usage("/", 0, 0, 0, 4096).is_none());
        let full = usage("/", 10, 0, 0, 1).unwrap();
        assert_eq!(full.used_pct, 100.0);
    }

    #[tokio::test]
    async fn reports_root_on_this_host() {
        let mut c = DiskCollector::new(DiskConfig::default());
        let r = c.collect().await.unwrap();
        let Some(DiskPart(d)) = r.output.get::<DiskPart>().cloned() else {
            panic!("not disks")
        };
        assert!(d.iter().any(|d| d.mount == "/"), "{d:?}");
    }

    #[test]
    fn a_host_root_elsewhere_changes_where_mounts_are_read_and_probed() {
        let local = DiskConfig::default();
        assert_eq!(local.mounts_file(), "/proc/self/mounts");
        assert_eq!(local.probe_path("/data"), "/data");
        let node = DiskConfig {
            rootfs: "/host/root/".into(),
            ..DiskConfig::default()
        };
        assert_eq!(node.mounts_file(), "/proc/1/mounts");
        assert_eq!(node.probe_path("/"), "/host/root");
        assert_eq!(node.probe_path("/data"), "/host/root/data");
    }

    #[tokio::test]
    async fn mounts_are_probed_under_the_host_root_and_named_as_on_the_host() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("data")).unwrap();
        let table = root.path().join("mounts");
        // Two "host" mounts on distinct devices; /missing does not exist
        // under the root and is reported as a warning.
        std::fs::write(
            &table,
            "/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /data xfs rw 0 0\n/dev/sdc1 /missing ext4 rw 0 0\n",
        )
        .unwrap();
        let mut c = DiskCollector::new(DiskConfig {
            rootfs: root.path().to_string_lossy().into_owned(),
            mounts_file: Some(table.to_string_lossy().into_owned()),
            ..DiskConfig::default()
        });
        let r = c.collect().await.unwrap();
        let Some(DiskPart(d)) = r.output.get::<DiskPart>().cloned() else {
            panic!("not disks")
        };
        let names: Vec<&str> = d.iter().map(|d| d.mount.as_str()).collect();
        assert_eq!(names, ["/", "/data"]);
        assert!(d.iter().all(|d| d.total_bytes > 0));
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].starts_with("/missing:"), "{:?}", r.warnings);
    }

    #[tokio::test]
    async fn a_pending_probe_is_not_repeated() {
        let pending = Arc::new(Mutex::new(HashSet::from(["/".to_string()])));
        let e = probe("/".into(), "/".into(), pending, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(e.contains("still blocked"), "{e}");
    }
}
