//! The agent's configuration: the shared NATS/metrics/log settings plus every
//! tunable of the collectors, the runner, the outbox, the spool and the loop
//! telemetry, each with its documented default. Loaded by
//! `lull_common::config::load` (flags, then the TOML file, then `LULL_*`
//! environment variables, nested keys with `__`), and the command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use lull_common::config::{CommonArgs, CommonConfig, ConfigError};
use lull_proto::validate;
use serde::{Deserialize, Serialize};

/// Everything the agent can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentConfig {
    /// NATS, subjects, metrics listener (default `0.0.0.0:9465`), logs.
    #[serde(flatten)]
    pub common: CommonConfig,
    /// This host's id, the last token of `lull.stats.<host_id>`. Env
    /// `LULL_HOST_ID`. Default: the host name, with every character that is
    /// not allowed in a subject token (such as `.`) replaced by `_`.
    pub host_id: String,
    /// Report hand-off directory. Env `LULL_SPOOL_DIR`. Default
    /// `/var/spool/lull`.
    pub spool_dir: PathBuf,
    /// Seconds between snapshots (ticks). Env `LULL_INTERVAL_SEC`. Default 2.
    pub interval_sec: f64,
    /// A `loop.health` is published every this many ticks. Default 5.
    pub health_every_n_ticks: u64,
    /// A collector's latest result is used until it is older than this many
    /// of its own intervals plus its timeout; after that it counts as missing.
    /// Default 3.
    pub stale_after_intervals: f64,
    /// `--once`: pause between the two samples that give CPU % and rates,
    /// milliseconds. Default 250.
    pub once_warmup_ms: u64,
    /// Most threads of the blocking pool (file-system probes, `/proc`
    /// reads, directory walks). Default 16.
    pub blocking_threads: usize,
    /// On SIGTERM/SIGINT, how long the outbox may take to flush, seconds.
    /// Default 3.
    pub shutdown_flush_timeout_sec: f64,
    /// Per-collector schedules.
    pub collectors: CollectorsConfig,
    /// Disk collector settings.
    pub disk: DiskConfig,
    /// Network interface filter.
    pub net: NetConfig,
    /// Process collector settings.
    pub process: ProcessConfig,
    /// Processes to watch besides the agent itself (`[[watch]]` tables).
    pub watch: Vec<WatchedProcess>,
    /// Addon collector settings.
    pub addon: AddonSettings,
    /// Declared addons (`[[addons]]` tables).
    pub addons: Vec<AddonConfig>,
    /// Local Prometheus endpoint of a host service; absent = no `api` block.
    pub api: Option<ApiConfig>,
    /// The bounded outbox in front of NATS.
    pub outbox: OutboxConfig,
    /// The report spool.
    pub spool: SpoolConfig,
}

/// When and how long one collector runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Whether the collector runs at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Seconds between runs.
    pub interval_sec: f64,
    /// Each run starts up to this many seconds after its slot (random), so
    /// that a fleet does not collect in lock step.
    #[serde(default)]
    pub jitter_sec: f64,
    /// A run that takes longer is abandoned and counted as `timeout`.
    pub timeout_sec: f64,
}

fn yes() -> bool {
    true
}

impl Schedule {
    const fn new(interval_sec: f64, jitter_sec: f64, timeout_sec: f64) -> Self {
        Schedule {
            enabled: true,
            interval_sec,
            jitter_sec,
            timeout_sec,
        }
    }

    /// The interval as a duration.
    pub fn interval(&self) -> Duration {
        secs(self.interval_sec)
    }

    /// The timeout as a duration.
    pub fn timeout(&self) -> Duration {
        secs(self.timeout_sec)
    }
}

/// Seconds (clamped to `>= 0`, NaN as 0) as a [`Duration`].
pub fn secs(s: f64) -> Duration {
    if s.is_finite() && s > 0.0 {
        Duration::from_secs_f64(s.min(1.0e9))
    } else {
        Duration::ZERO
    }
}

/// The schedule of every collector (seed 002 §5 cadences).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CollectorsConfig {
    /// CPU, load, memory, swap, network, uptime. Default every 2 s, jitter
    /// 0.2 s, timeout 1.5 s.
    pub host: Schedule,
    /// Disk usage per mount. Default every 10 s, jitter 1 s, timeout 5 s.
    pub disk: Schedule,
    /// Linux PSI. Default every 2 s, jitter 0.2 s, timeout 1.5 s.
    pub pressure: Schedule,
    /// The agent and the watched processes. Default every 5 s, jitter 0.5 s,
    /// timeout 3 s.
    pub process: Schedule,
    /// Addon lifecycle state and `custom` stats. Default every 15 s, jitter
    /// 1.5 s, timeout 5 s.
    pub addons: Schedule,
    /// Addon health checks. Default every 30 s, jitter 3 s, timeout 15 s.
    pub addon_health: Schedule,
    /// Addon runtime-dir sizes. Default every 120 s, jitter 10 s, timeout 30 s.
    pub addon_dirs: Schedule,
    /// The api scrape (only with `[api]`). Default every 5 s, jitter 0.5 s,
    /// timeout 3 s.
    pub api: Schedule,
}

impl Default for CollectorsConfig {
    fn default() -> Self {
        CollectorsConfig {
            host: Schedule::new(2.0, 0.2, 1.5),
            disk: Schedule::new(10.0, 1.0, 5.0),
            pressure: Schedule::new(2.0, 0.2, 1.5),
            process: Schedule::new(5.0, 0.5, 3.0),
            addons: Schedule::new(15.0, 1.5, 5.0),
            addon_health: Schedule::new(30.0, 3.0, 15.0),
            addon_dirs: Schedule::new(120.0, 10.0, 30.0),
            api: Schedule::new(5.0, 0.5, 3.0),
        }
    }
}

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

/// Which network interfaces are reported.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct NetConfig {
    /// Interfaces skipped; a trailing `*` matches a prefix. Default `lo`,
    /// `veth*`, `docker*`, `br-*`, `virbr*`, `cni*`, `flannel*`.
    pub ignore_ifaces: Vec<String>,
    /// Most interfaces reported. Default 64.
    pub max_ifaces: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            ignore_ifaces: [
                "lo", "veth*", "docker*", "br-*", "virbr*", "cni*", "flannel*",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            max_ifaces: 64,
        }
    }
}

/// Process collector settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessConfig {
    /// Processes watched by name are looked up in `/proc` at most this
    /// often, seconds (and when every cached pid has exited). Default 60.
    pub resolve_interval_sec: f64,
    /// Most processes reported for one watched name. Default 8.
    pub max_pids_per_watch: usize,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            resolve_interval_sec: 60.0,
            max_pids_per_watch: 8,
        }
    }
}

/// One watched process: exactly one of `process`, `pid` or `pidfile`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WatchedProcess {
    /// Label reported as the process `name`.
    pub name: String,
    /// Match processes by name (`/proc/<pid>/comm`, or the base name of
    /// `argv[0]` for names longer than 15 bytes).
    pub process: Option<String>,
    /// A fixed pid.
    pub pid: Option<u32>,
    /// A file holding the pid.
    pub pidfile: Option<PathBuf>,
}

/// Addon collector settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AddonSettings {
    /// Time budget of one runtime-dir walk, milliseconds; a walk that runs
    /// out keeps the previous size and reports an error. Default 2000.
    pub dir_walk_budget_ms: u64,
    /// Most directory entries visited by one walk. Default 200000.
    pub dir_walk_max_entries: u64,
    /// Largest accepted `lull-stats.json`, bytes. Default 65536.
    pub custom_max_bytes: u64,
    /// Largest health-check HTTP response read, bytes. Default 65536.
    pub health_max_body_bytes: usize,
}

impl Default for AddonSettings {
    fn default() -> Self {
        AddonSettings {
            dir_walk_budget_ms: 2000,
            dir_walk_max_entries: 200_000,
            custom_max_bytes: 64 * 1024,
            health_max_body_bytes: 64 * 1024,
        }
    }
}

/// One declared addon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AddonConfig {
    /// Addon id (a subject token).
    pub id: String,
    /// Whether it is enabled. Default true.
    pub enabled: bool,
    /// Its runtime directory: `installed` means it exists; its size is
    /// reported; `lull-stats.json` in it fills `custom`.
    pub runtime_dir: Option<PathBuf>,
    /// Pid file of its process (`running` means that pid is alive).
    pub pidfile: Option<PathBuf>,
    /// Process name of its process (alternative to `pidfile`).
    pub process: Option<String>,
    /// Health check: `http://host:port/path`, 2xx = OK.
    pub health_url: Option<String>,
    /// Health check: a command and its arguments (no shell), exit 0 = OK.
    pub health_command: Option<Vec<String>>,
    /// Health-check timeout, seconds. Default 5.
    pub health_timeout_sec: f64,
}

impl Default for AddonConfig {
    fn default() -> Self {
        AddonConfig {
            id: String::new(),
            enabled: true,
            runtime_dir: None,
            pidfile: None,
            process: None,
            health_url: None,
            health_command: None,
            health_timeout_sec: 5.0,
        }
    }
}

/// Unit of a latency histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatencyUnit {
    /// Bucket bounds in seconds (the Prometheus convention).
    #[default]
    Seconds,
    /// Bucket bounds in milliseconds.
    Milliseconds,
}

/// The api collector: a local Prometheus endpoint of a host service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiConfig {
    /// Metrics URL (`http://` only). Default `http://127.0.0.1:8080/metrics`.
    pub url: String,
    /// Request counter (summed over all label sets). Default
    /// `http_requests_total`.
    pub requests_metric: String,
    /// Error counter; when absent, errors are the requests whose
    /// `error_label` starts with one of `error_value_prefixes`.
    pub errors_metric: Option<String>,
    /// Label holding the status. Default `status`.
    pub error_label: String,
    /// Status prefixes counted as errors. Default `["5"]`.
    pub error_value_prefixes: Vec<String>,
    /// Latency histogram base name (its `_bucket` series are used). Default
    /// `http_request_duration_seconds`.
    pub latency_metric: String,
    /// Unit of the histogram's bucket bounds. Default `seconds`.
    pub latency_unit: LatencyUnit,
    /// The quantile reported as `p95_ms`. Default 0.95.
    pub quantile: f64,
    /// Largest response read, bytes. Default 4194304.
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            url: "http://127.0.0.1:8080/metrics".into(),
            requests_metric: "http_requests_total".into(),
            errors_metric: None,
            error_label: "status".into(),
            error_value_prefixes: vec!["5".into()],
            latency_metric: "http_request_duration_seconds".into(),
            latency_unit: LatencyUnit::Seconds,
            quantile: 0.95,
            max_body_bytes: 4 << 20,
        }
    }
}

/// The bounded outbox in front of the NATS client.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OutboxConfig {
    /// Most queued messages; beyond it the oldest stats are dropped.
    /// Default 256.
    pub max_messages: usize,
    /// Most queued bytes; beyond it the oldest stats are dropped.
    /// Default 1048576.
    pub max_bytes: usize,
    /// Messages published per flush. Default 64.
    pub batch: usize,
    /// How long one flush may wait for the server, seconds. Default 5.
    pub flush_timeout_sec: f64,
    /// Capacity of the NATS client's own command channel (kept small so the
    /// outbox, not the client, holds the backlog). Default 64.
    pub client_capacity: usize,
    /// Pause before the publisher worker restarts after an error, seconds.
    /// Default 1.
    pub restart_backoff_sec: f64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_messages: 256,
            max_bytes: 1 << 20,
            batch: 64,
            flush_timeout_sec: 5.0,
            client_capacity: 64,
            restart_backoff_sec: 1.0,
        }
    }
}

/// The report spool (`LULL_SPOOL_DIR`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SpoolConfig {
    /// Seconds between scans of the spool directory. Default 1.
    pub scan_interval_sec: f64,
    /// A file that does not parse yet is only quarantined once it is older
    /// than this, seconds (a writer that did not use rename may still be
    /// writing it). Default 5.
    pub settle_sec: f64,
    /// Files published before their acks are awaited. Default 32.
    pub batch: usize,
    /// How long to wait for one JetStream ack, seconds. Default 10.
    pub ack_timeout_sec: f64,
    /// Create the `LULL_REPORTS` stream when it is missing (with the same
    /// settings as the coordinator); otherwise wait for the coordinator to
    /// create it. Default true.
    pub create_stream: bool,
    /// Duplicate window of the stream when the agent creates it, seconds
    /// (must match the coordinator's). Default 3600.
    pub duplicate_window_sec: u64,
    /// Create the spool directory (and `failed/`) at start. Default true.
    pub create_dir: bool,
    /// Most files handled per scan. Default 1000.
    pub max_files_per_scan: usize,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            scan_interval_sec: 1.0,
            settle_sec: 5.0,
            batch: 32,
            ack_timeout_sec: 10.0,
            create_stream: true,
            duplicate_window_sec: 3600,
            create_dir: true,
            max_files_per_scan: 1000,
        }
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            common: CommonConfig::with_metrics_addr(SocketAddr::from(([0, 0, 0, 0], 9465))),
            host_id: default_host_id(),
            spool_dir: PathBuf::from("/var/spool/lull"),
            interval_sec: 2.0,
            health_every_n_ticks: 5,
            stale_after_intervals: 3.0,
            once_warmup_ms: 250,
            blocking_threads: 16,
            shutdown_flush_timeout_sec: 3.0,
            collectors: CollectorsConfig::default(),
            disk: DiskConfig::default(),
            net: NetConfig::default(),
            process: ProcessConfig::default(),
            watch: Vec::new(),
            addon: AddonSettings::default(),
            addons: Vec::new(),
            api: None,
            outbox: OutboxConfig::default(),
            spool: SpoolConfig::default(),
        }
    }
}

/// Turns a host name into a valid subject token: characters outside
/// `A-Z a-z 0-9 - _ : @` become `_`, the result is cut to 128 bytes, and an
/// empty name becomes `localhost`.
pub fn sanitize_host_id(name: &str) -> String {
    let s: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '@') {
                c
            } else {
                '_'
            }
        })
        .take(validate::MAX_ID_LEN)
        .collect();
    if s.is_empty() {
        "localhost".into()
    } else {
        s
    }
}

/// The host name (`/proc/sys/kernel/hostname`, else `gethostname`),
/// sanitised by [`sanitize_host_id`].
pub fn default_host_id() -> String {
    if let Ok(s) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        if !s.trim().is_empty() {
            return sanitize_host_id(&s);
        }
    }
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `len` bytes; gethostname writes at most that.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        return sanitize_host_id(&String::from_utf8_lossy(&buf[..end]));
    }
    "localhost".into()
}

/// A configuration that loaded but makes no sense.
#[derive(Debug, thiserror::Error)]
pub enum ConfigProblem {
    /// Loading failed.
    #[error(transparent)]
    Load(#[from] ConfigError),
    /// A value is invalid.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl AgentConfig {
    /// Loads the configuration for the given flags and checks it.
    pub fn load(args: &Args) -> Result<Self, ConfigProblem> {
        let mut cfg: AgentConfig = lull_common::config::load(
            &AgentConfig::default(),
            args.common.config.as_ref(),
            &Overrides::from(args),
        )?;
        // An explicit id gets the same treatment as the host name: a node
        // name such as `ip-10-0-1-2.ec2.internal` becomes a valid subject
        // token (`ip-10-0-1-2_ec2_internal`) instead of an error.
        cfg.host_id = sanitize_host_id(&cfg.host_id);
        cfg.check()?;
        Ok(cfg)
    }

    /// Checks the rules serde cannot express.
    pub fn check(&self) -> Result<(), ConfigProblem> {
        let bad = |m: String| Err(ConfigProblem::Invalid(m));
        if let Err(e) = validate::subject_token("host_id", &self.host_id) {
            return bad(e.to_string());
        }
        if !(self.interval_sec.is_finite() && self.interval_sec >= 0.1) {
            return bad(format!(
                "interval_sec must be >= 0.1, got {}",
                self.interval_sec
            ));
        }
        if self.health_every_n_ticks == 0 {
            return bad("health_every_n_ticks must be >= 1".into());
        }
        if self.blocking_threads == 0 {
            return bad("blocking_threads must be >= 1".into());
        }
        if self.outbox.max_messages == 0 || self.outbox.max_bytes == 0 || self.outbox.batch == 0 {
            return bad("outbox.max_messages, max_bytes and batch must be >= 1".into());
        }
        if self.spool.batch == 0 {
            return bad("spool.batch must be >= 1".into());
        }
        for (name, s) in self.collectors.iter() {
            if s.enabled
                && !(s.interval_sec.is_finite()
                    && s.interval_sec >= 0.01
                    && s.timeout_sec.is_finite()
                    && s.timeout_sec > 0.0
                    && s.jitter_sec.is_finite()
                    && s.jitter_sec >= 0.0)
            {
                return bad(format!(
                    "collectors.{name}: interval_sec must be >= 0.01, timeout_sec > 0, jitter_sec >= 0"
                ));
            }
        }
        for (i, w) in self.watch.iter().enumerate() {
            let n = [w.process.is_some(), w.pid.is_some(), w.pidfile.is_some()]
                .iter()
                .filter(|b| **b)
                .count();
            if n != 1 {
                return bad(format!(
                    "watch[{i}] ({}): set exactly one of process, pid, pidfile",
                    w.name
                ));
            }
            if w.name.trim().is_empty() {
                return bad(format!("watch[{i}]: name is required"));
            }
            if let Err(e) =
                validate::text(&format!("watch[{i}].name"), &w.name, validate::MAX_ID_LEN)
            {
                return bad(e.to_string());
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for a in &self.addons {
            if let Err(e) = validate::subject_token("addons.id", &a.id) {
                return bad(e.to_string());
            }
            if !seen.insert(a.id.as_str()) {
                return bad(format!("addon {} declared twice", a.id));
            }
            if a.health_url.is_some() && a.health_command.is_some() {
                return bad(format!(
                    "addon {}: set health_url or health_command, not both",
                    a.id
                ));
            }
            if let Some(u) = &a.health_url {
                if let Err(e) = crate::http::Url::parse(u) {
                    return bad(format!("addon {}: health_url: {e}", a.id));
                }
            }
            if matches!(&a.health_command, Some(c) if c.is_empty()) {
                return bad(format!("addon {}: health_command is empty", a.id));
            }
        }
        if let Some(api) = &self.api {
            if let Err(e) = crate::http::Url::parse(&api.url) {
                return bad(format!("api.url: {e}"));
            }
            if !(api.quantile > 0.0 && api.quantile < 1.0) {
                return bad(format!(
                    "api.quantile must be in (0, 1), got {}",
                    api.quantile
                ));
            }
        }
        Ok(())
    }
}

impl CollectorsConfig {
    /// Every collector's name and schedule.
    pub fn iter(&self) -> [(&'static str, Schedule); 8] {
        [
            ("host", self.host),
            ("disk", self.disk),
            ("pressure", self.pressure),
            ("process", self.process),
            ("addons", self.addons),
            ("addon_health", self.addon_health),
            ("addon_dirs", self.addon_dirs),
            ("api", self.api),
        ]
    }
}

/// Command-line interface of `lull-agent`.
#[derive(Debug, Clone, Default, clap::Parser)]
#[command(
    name = "lull-agent",
    version,
    about = "Lull host agent: publishes host, process and addon stats to NATS and hands reports to JetStream"
)]
pub struct Args {
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Host id (default: the host name).
    #[arg(long)]
    pub host_id: Option<String>,
    /// Report spool directory.
    #[arg(long)]
    pub spool_dir: Option<PathBuf>,
    /// Seconds between snapshots.
    #[arg(long)]
    pub interval_sec: Option<f64>,
    /// Print one snapshot as JSON to stdout and exit (no NATS needed).
    #[arg(long)]
    pub once: bool,
    /// Subcommand (default: run the agent).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Validate a JSON report and drop it atomically into the spool
    /// directory (`-` reads standard input).
    Report {
        /// The report file.
        file: PathBuf,
    },
}

/// The flags as a figment layer (absent flags skipped).
#[derive(Serialize)]
struct Overrides<'a> {
    #[serde(flatten)]
    common: &'a CommonArgs,
    #[serde(skip_serializing_if = "Option::is_none")]
    host_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spool_dir: Option<&'a PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval_sec: Option<f64>,
}

impl<'a> From<&'a Args> for Overrides<'a> {
    fn from(a: &'a Args) -> Self {
        Overrides {
            common: &a.common,
            host_id: a.host_id.as_deref(),
            spool_dir: a.spool_dir.as_ref(),
            interval_sec: a.interval_sec,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn defaults_are_sane() {
        let c = AgentConfig::default();
        assert_eq!(c.common.metrics_addr.port(), 9465);
        assert_eq!(c.interval_sec, 2.0);
        assert!(c.check().is_ok(), "{:?}", c.check());
        assert!(validate::subject_token("host_id", &c.host_id).is_ok());
    }

    #[test]
    fn host_names_become_tokens() {
        assert_eq!(sanitize_host_id("web-1.example.com\n"), "web-1_example_com");
        assert_eq!(sanitize_host_id("  "), "localhost");
        assert_eq!(sanitize_host_id(&"a".repeat(300)).len(), 128);
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn env_file_and_flags() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LULL_HOST_ID", "from-env");
            jail.set_env("LULL_SPOOL_DIR", "/tmp/spool-env");
            jail.set_env("LULL_OUTBOX__MAX_MESSAGES", "17");
            jail.set_env("LULL_NATS_TOKEN", "s3cret");
            jail.create_file(
                "agent.toml",
                r#"
interval_sec = 5.0
[collectors.disk]
interval_sec = 30.0
timeout_sec = 2.0
[[watch]]
name = "pg"
process = "postgres"
[[addons]]
id = "transcoder"
runtime_dir = "/var/lib/transcoder"
health_url = "http://127.0.0.1:9000/health"
"#,
            )?;
            let args = Args::parse_from([
                "lull-agent",
                "--config",
                "agent.toml",
                "--host-id",
                "from-flag",
            ]);
            let c = AgentConfig::load(&args).unwrap();
            assert_eq!(c.host_id, "from-flag");
            assert_eq!(c.spool_dir, PathBuf::from("/tmp/spool-env"));
            assert_eq!(c.interval_sec, 5.0);
            assert_eq!(c.outbox.max_messages, 17);
            assert_eq!(c.collectors.disk.interval_sec, 30.0);
            assert!(c.collectors.disk.enabled);
            assert_eq!(c.collectors.host.interval_sec, 2.0);
            assert_eq!(c.watch[0].process.as_deref(), Some("postgres"));
            assert!(c.addons[0].enabled);
            assert_eq!(c.addons[0].health_timeout_sec, 5.0);
            let shown = lull_common::config::render(&c);
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("<redacted>"));
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_refused() {
        let mut c = AgentConfig {
            host_id: "a.b".into(),
            ..Default::default()
        };
        assert!(c.check().is_err());
        c.host_id = "ok".into();
        c.watch.push(WatchedProcess {
            name: "x".into(),
            pid: Some(1),
            process: Some("x".into()),
            pidfile: None,
        });
        assert!(c.check().is_err());
        c.watch[0].process = None;
        assert!(c.check().is_ok());
        c.watch[0].name = "n".repeat(200);
        assert!(c.check().is_err());
        c.watch.clear();
        c.addons.push(AddonConfig {
            id: "a".into(),
            health_url: Some("https://x/".into()),
            ..Default::default()
        });
        assert!(c.check().is_err());
        c.addons.clear();
        c.collectors.host.timeout_sec = 0.0;
        assert!(c.check().is_err());
    }
}
