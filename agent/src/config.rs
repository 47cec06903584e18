//! The agent's configuration: the shared NATS/metrics/log settings, the
//! runner, the outbox, the spool and the loop telemetry, each with its
//! documented default. The collectors' own sections are declared by their
//! families (`collect/*.rs`) and flattened in through the registry. Loaded by
//! `lull_common::config::load` (flags, then the TOML file, then `LULL_*`
//! environment variables, nested keys with `__`), and the command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use lull_common::config::{CommonArgs, CommonConfig, ConfigError};
use lull_proto::validate;
use serde::{Deserialize, Serialize};

use crate::collect::registry::{Schedules, Sections};

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
    /// Per-collector schedules (`collectors.<name>`), defaults from each
    /// collector family.
    pub collectors: Schedules,
    /// Every collector family's own sections (`disk`, `net`, `process`,
    /// `watch`, `addon`, `addons`, `api`, ...), at the top level.
    #[serde(flatten)]
    pub sections: Sections,
    /// The bounded outbox in front of NATS.
    pub outbox: OutboxConfig,
    /// The report spool.
    pub spool: SpoolConfig,
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
            collectors: Schedules::default(),
            sections: Sections::default(),
            outbox: OutboxConfig::default(),
            spool: SpoolConfig::default(),
        }
    }
}

/// Turns a host name into a valid subject token (the SDK's rule, shared so
/// that the agent and a report publisher on the same host agree).
pub use lull_client::host::sanitize_host_id;

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
            if !s.is_valid() {
                return bad(format!(
                    "collectors.{name}: interval_sec must be >= 0.01, timeout_sec > 0, jitter_sec >= 0"
                ));
            }
        }
        self.sections.check().map_err(ConfigProblem::Invalid)?;
        Ok(())
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
    /// Container healthcheck: GET this path (`/readyz`, `/healthz`) on the
    /// running agent's metrics listener and exit 0 on 200, 1 else.
    #[arg(long, value_name = "PATH")]
    pub probe: Option<String>,
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
    use crate::collect::addons::AddonConfig;
    use crate::collect::process::WatchedProcess;
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
            assert_eq!(c.collectors.get("disk").unwrap().interval_sec, 30.0);
            assert!(c.collectors.get("disk").unwrap().enabled);
            assert_eq!(c.collectors.get("host").unwrap().interval_sec, 2.0);
            assert_eq!(
                c.sections.process.watch[0].process.as_deref(),
                Some("postgres")
            );
            assert!(c.sections.addons.addons[0].enabled);
            assert_eq!(c.sections.addons.addons[0].health_timeout_sec, 5.0);
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
        c.sections.process.watch.push(WatchedProcess {
            name: "x".into(),
            pid: Some(1),
            process: Some("x".into()),
            pidfile: None,
        });
        assert!(c.check().is_err());
        c.sections.process.watch[0].process = None;
        assert!(c.check().is_ok());
        c.sections.process.watch[0].name = "n".repeat(200);
        assert!(c.check().is_err());
        c.sections.process.watch.clear();
        c.sections.addons.addons.push(AddonConfig {
            id: "a".into(),
            health_url: Some("https://x/".into()),
            ..Default::default()
        });
        assert!(c.check().is_err());
        c.sections.addons.addons.clear();
        c.collectors.get_mut("host").unwrap().timeout_sec = 0.0;
        assert!(c.check().is_err());
    }
}
