//! A real `nats-server -js` on free 127.0.0.1 ports with a temporary
//! JetStream store, restartable on the same port and store; and, in
//! [`cluster`], a cluster of them.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::bins::{self, SearchPath};
use crate::error::{HarnessError, Result};
use crate::http::http_get;
use crate::janitor;
use crate::ports::free_port;
use crate::process::Proc;
use crate::{log_tail, STARTUP_TIMEOUT};

pub mod cluster;

pub use cluster::NatsCluster;

/// How long a graceful [`NatsServer::stop`] may take before SIGKILL.
pub const NATS_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts at a first start with fresh ports when the ports were taken
/// meanwhile by another process.
const START_ATTEMPTS: usize = 3;

/// A `nats-server` with JetStream enabled, owned by the test. Killed (SIGKILL)
/// and its store removed on drop.
#[derive(Debug)]
pub struct NatsServer {
    proc: Option<Proc>,
    bin: PathBuf,
    port: u16,
    monitor_port: u16,
    config: Option<PathBuf>,
    dir: TempDir,
}

impl NatsServer {
    /// Starts `nats-server -js` on a free port, with a temporary store dir and
    /// monitoring on another free port, and waits until `/healthz` says it
    /// (JetStream included) is ready.
    pub async fn start() -> Result<NatsServer> {
        Self::start_inner(None).await
    }

    /// Like [`NatsServer::start`], also passing `config` (the text of a
    /// nats-server configuration file, e.g. `authorization { ... }` or
    /// `accounts { ... }`) with `-c`. The harness's command-line flags (port,
    /// host, monitoring port, `-js`, store dir) override the file.
    pub async fn start_with_config(config: &str) -> Result<NatsServer> {
        Self::start_inner(Some(config)).await
    }

    async fn start_inner(config: Option<&str>) -> Result<NatsServer> {
        let bin = bins::nats_server(&SearchPath::from_env())?;
        janitor::sweep_once();
        let dir = tempfile::Builder::new()
            .prefix("lull-nats-")
            .tempdir()
            .map_err(|e| HarnessError::io("create the NATS temp dir", e))?;
        janitor::mark_owned(dir.path()).map_err(|e| HarnessError::io("write the owner file", e))?;
        let config_path = match config {
            Some(text) => {
                let p = dir.path().join("nats.conf");
                std::fs::write(&p, text).map_err(|e| HarnessError::io("write nats.conf", e))?;
                Some(p)
            }
            None => None,
        };
        let mut server = NatsServer {
            proc: None,
            bin,
            port: 0,
            monitor_port: 0,
            config: config_path,
            dir,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            server.port = free_port()?;
            server.monitor_port = free_port()?;
            match server.launch().await {
                Ok(()) => return Ok(server),
                Err(HarnessError::StartFailed { log, .. })
                    if attempt < START_ATTEMPTS && log.contains("address already in use") =>
                {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats.log")
    }

    /// Spawns the server on the current ports and waits until it is healthy.
    async fn launch(&mut self) -> Result<()> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-js")
            .args(["-a", "127.0.0.1"])
            .args(["-p", &self.port.to_string()])
            .args(["-m", &self.monitor_port.to_string()])
            .args(["-n", &format!("lull-test-{}", self.port)])
            .arg("-sd")
            .arg(self.store_dir());
        if let Some(conf) = &self.config {
            cmd.arg("-c").arg(conf);
        }
        cmd.current_dir(self.dir.path());
        let log = self.log_path();
        let mut proc = Proc::spawn("nats-server", cmd, &log, &log, None)?;
        let healthz = format!("{}/healthz", self.monitor_url());
        let h = &healthz;
        proc.wait_ready(
            STARTUP_TIMEOUT,
            Duration::from_millis(20),
            "/healthz not OK",
            || async move { http_get(h).await.is_ok_and(|r| r.status == 200) },
        )
        .await
        .map_err(|why| self.start_failed(why))?;
        tracing::debug!(port = self.port, pid = proc.pid(), "nats-server ready");
        self.proc = Some(proc);
        Ok(())
    }

    fn start_failed(&self, reason: String) -> HarnessError {
        HarnessError::StartFailed {
            what: format!("nats-server on 127.0.0.1:{}", self.port),
            reason,
            log: log_tail(&self.log_path()),
        }
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The monitoring base URL, `http://127.0.0.1:<monitor port>` (`/healthz`,
    /// `/varz`, `/jsz`, `/connz` ...).
    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.monitor_port)
    }

    /// The JetStream store directory (kept across stop/start).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// The server's temp dir (store, config, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Proc::is_running)
    }

    /// Everything the server logged so far (all runs).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Stops the server gracefully (SIGTERM, then SIGKILL after
    /// [`NATS_STOP_TIMEOUT`]). The port and store are kept for
    /// [`NatsServer::start_again`]. A no-op when not running.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(mut p) = self.proc.take() {
            p.stop_with(Signal::SIGTERM, NATS_STOP_TIMEOUT).await?;
        }
        Ok(())
    }

    /// Kills the server at once (SIGKILL), as a crash would. The port and
    /// store are kept for [`NatsServer::start_again`]. Returns the exit status
    /// (`None` when it was not running).
    pub fn kill(&mut self) -> Option<ExitStatus> {
        self.proc.take().map(|mut p| p.kill())
    }

    /// Starts the server again on the same port, monitoring port, store dir
    /// and config, and waits until it is healthy. Fails if it is running.
    pub async fn start_again(&mut self) -> Result<()> {
        if self.is_running() {
            return Err(self.start_failed("it is already running".into()));
        }
        self.proc = None;
        self.launch().await
    }

    /// Connects a NATS client (no authentication).
    pub async fn connect(&self) -> Result<async_nats::Client> {
        async_nats::connect(self.url())
            .await
            .map_err(|e| HarnessError::Nats(format!("connect to {}: {e}", self.url())))
    }

    /// Connects a client and returns its JetStream context.
    pub async fn jetstream(&self) -> Result<async_nats::jetstream::Context> {
        Ok(async_nats::jetstream::new(self.connect().await?))
    }
}
