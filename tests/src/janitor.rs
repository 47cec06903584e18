//! Cleanup after test processes that died without running destructors (a
//! crash, SIGKILL, `abort`). Their servers die with them (parent-death
//! signal), but their temp dirs and a stopped postmaster's SysV shared-memory
//! segment would stay behind. Every harness temp dir records its owner's pid
//! in [`OWNER_FILE`]; the first server start of each test process sweeps dirs
//! whose owner is gone.

use std::path::{Path, PathBuf};
use std::sync::Once;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// File in each harness temp dir holding the pid of the test process owning it.
pub const OWNER_FILE: &str = "lull-owner.pid";
/// Name prefixes of the harness's temp dirs.
pub const DIR_PREFIXES: &[&str] = &["lull-nats-", "lull-pg-", "lull-svc-"];

/// Records the current process as the owner of `dir`.
pub(crate) fn mark_owned(dir: &Path) -> std::io::Result<()> {
    std::fs::write(dir.join(OWNER_FILE), std::process::id().to_string())
}

fn pid_alive(pid: i32) -> bool {
    pid > 0 && kill(Pid::from_raw(pid), None).is_ok()
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// The dirs where harness temp dirs may live.
fn bases() -> Vec<PathBuf> {
    let mut v = vec![std::env::temp_dir()];
    let tmp = PathBuf::from("/tmp");
    if !v.contains(&tmp) {
        v.push(tmp);
    }
    v
}

/// Releases what a dead Postgres cluster in `data` may have left: an orphan
/// postmaster (only if its command line names this data dir) and its SysV
/// shared-memory segment (only if nothing is attached).
fn release_postgres(data: &Path) {
    let lock = data.join("postmaster.pid");
    let Ok(text) = std::fs::read_to_string(&lock) else {
        return;
    };
    let lines: Vec<&str> = text.lines().collect();
    if let Some(pid) = lines.first().and_then(|l| l.trim().parse::<i32>().ok()) {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let needle = data.to_string_lossy();
        if pid_alive(pid) && String::from_utf8_lossy(&cmdline).contains(needle.as_ref()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    // Line 7: "<shmem key> <shmem id>".
    let shmid = lines
        .get(6)
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<libc::c_int>().ok());
    if let Some(id) = shmid {
        // SAFETY: shmctl only reads/writes the provided, zeroed struct.
        unsafe {
            let mut ds: libc::shmid_ds = std::mem::zeroed();
            if libc::shmctl(id, libc::IPC_STAT, &mut ds) == 0 && ds.shm_nattch == 0 {
                libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
            }
        }
    }
}

/// Removes harness temp dirs whose owning test process no longer exists.
/// Dirs without an owner file (being created, or not ours) are left alone.
/// Returns the removed dirs.
pub fn sweep_now() -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for base in bases() {
        let Ok(entries) = std::fs::read_dir(&base) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !DIR_PREFIXES.iter().any(|p| name.starts_with(p)) {
                continue;
            }
            let dir = entry.path();
            match read_pid(&dir.join(OWNER_FILE)) {
                Some(owner) if !pid_alive(owner) && owner != std::process::id() as i32 => {}
                _ => continue,
            }
            if name.starts_with("lull-pg-") {
                release_postgres(&dir.join("data"));
            }
            if std::fs::remove_dir_all(&dir).is_ok() {
                tracing::debug!(dir = %dir.display(), "removed a dead test process's temp dir");
                removed.push(dir);
            }
        }
    }
    removed
}

/// Runs [`sweep_now`] once per test process.
pub(crate) fn sweep_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        sweep_now();
    });
}
