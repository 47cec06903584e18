//! A throwaway Postgres cluster: `initdb` into a temp dir, `postgres` on a
//! free 127.0.0.1 port with its unix socket inside that dir, tuned for speed
//! (no fsync). Run as the `postgres` OS user when the tests run as root.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::{Gid, Uid, User};
use tempfile::TempDir;
use tokio_postgres::NoTls;

use crate::bins::{self, PgBinaries, SearchPath};
use crate::error::{HarnessError, Result};
use crate::janitor;
use crate::ports::free_port;
use crate::process::{Proc, RunAs};
use crate::{log_tail, STARTUP_TIMEOUT};

/// The database [`Postgres::start`] creates; [`Postgres::url`] points at it.
pub const DEFAULT_DATABASE: &str = "lull";
/// The superuser the cluster is initialised with (trust authentication).
pub const SUPERUSER: &str = "postgres";
/// How long `initdb` may take.
pub const INITDB_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fast shutdown ([`Postgres::stop`]) may take before SIGKILL.
pub const PG_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an immediate shutdown (SIGQUIT) on drop may take before SIGKILL.
const DROP_QUIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts at a first start with a fresh port when it was taken meanwhile.
const START_ATTEMPTS: usize = 3;

/// Server settings for a fast, disposable cluster.
const SERVER_SETTINGS: &[&str] = &[
    "listen_addresses=127.0.0.1",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "shared_buffers=16MB",
    "max_connections=100",
    "wal_level=minimal",
    "max_wal_senders=0",
    "huge_pages=off",
    // Dynamic shared memory as files in the data dir, not /dev/shm, so a
    // killed cluster leaves nothing outside its temp dir.
    "dynamic_shared_memory_type=mmap",
    "logging_collector=off",
    "log_min_messages=warning",
];

/// A Postgres cluster owned by the test. Shut down (SIGQUIT, then SIGKILL of
/// its process group) and its directory removed on drop.
#[derive(Debug)]
pub struct Postgres {
    proc: Option<Proc>,
    bins: PgBinaries,
    run_as: Option<RunAs>,
    port: u16,
    database: String,
    dir: TempDir,
}

/// Whether every ancestor of `dir` (and `dir`) can be traversed by other users.
fn traversable_by_others(dir: &Path) -> bool {
    dir.ancestors()
        .all(|a| std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// Creates `path` and, when running as another user, gives it to that user.
fn make_dir(path: &Path, run_as: Option<RunAs>) -> Result<()> {
    std::fs::create_dir_all(path)
        .map_err(|e| HarnessError::io(format!("create {}", path.display()), e))?;
    give_to(path, run_as)
}

fn give_to(path: &Path, run_as: Option<RunAs>) -> Result<()> {
    if let Some(RunAs { uid, gid }) = run_as {
        nix::unistd::chown(path, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))).map_err(
            |e| {
                HarnessError::io(
                    format!("chown {} to the postgres user", path.display()),
                    e.into(),
                )
            },
        )?;
    }
    Ok(())
}

/// Double-quotes an SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Postgres {
    /// Runs `initdb` into a fresh temp dir, starts `postgres` on a free port,
    /// waits until it accepts connections and creates the database
    /// [`DEFAULT_DATABASE`].
    pub async fn start() -> Result<Postgres> {
        let bins = bins::postgres(&SearchPath::from_env())?;
        janitor::sweep_once();
        let run_as = if nix::unistd::geteuid().is_root() {
            let user = User::from_name(SUPERUSER)
                .map_err(|e| HarnessError::io("look up the postgres OS user", e.into()))?
                .ok_or(HarnessError::NoPostgresUser)?;
            Some(RunAs {
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
            })
        } else {
            None
        };
        let mut base = std::env::temp_dir();
        if run_as.is_some() && !traversable_by_others(&base) {
            base = PathBuf::from("/tmp");
        }
        let dir = tempfile::Builder::new()
            .prefix("lull-pg-")
            .tempdir_in(&base)
            .map_err(|e| {
                HarnessError::io(
                    format!("create the Postgres temp dir in {}", base.display()),
                    e,
                )
            })?;
        janitor::mark_owned(dir.path()).map_err(|e| HarnessError::io("write the owner file", e))?;
        give_to(dir.path(), run_as)?;
        let mut pg = Postgres {
            proc: None,
            bins,
            run_as,
            port: 0,
            database: DEFAULT_DATABASE.into(),
            dir,
        };
        make_dir(&pg.socket_dir(), run_as)?;
        pg.initdb().await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            pg.port = free_port()?;
            match pg.launch().await {
                Ok(()) => break,
                Err(HarnessError::StartFailed { log, .. })
                    if attempt < START_ATTEMPTS
                        && log.to_ascii_lowercase().contains("address already in use") =>
                {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
        pg.create_database(DEFAULT_DATABASE).await?;
        Ok(pg)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    async fn initdb(&self) -> Result<()> {
        let log = self.dir.path().join("initdb.log");
        let mut cmd = Command::new(&self.bins.initdb);
        cmd.arg("-D")
            .arg(self.data_dir())
            .args([
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .env("LC_ALL", "C")
            .current_dir(self.dir.path());
        let mut proc = Proc::spawn("initdb", cmd, &log, &log, self.run_as)?;
        let failed = |reason: String| HarnessError::StartFailed {
            what: "initdb".into(),
            reason,
            log: log_tail(&log),
        };
        match proc.wait(INITDB_TIMEOUT).await {
            Some(st) if st.success() => Ok(()),
            Some(st) => Err(failed(format!("exited with {st}"))),
            None => {
                proc.kill();
                Err(failed(format!("did not finish within {INITDB_TIMEOUT:?}")))
            }
        }
    }

    /// Spawns `postgres` on the current port and waits until it accepts connections.
    async fn launch(&mut self) -> Result<()> {
        let mut cmd = Command::new(&self.bins.postgres);
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(self.socket_dir());
        for s in SERVER_SETTINGS {
            cmd.args(["-c", s]);
        }
        cmd.env("LC_ALL", "C").current_dir(self.dir.path());
        let log = self.log_path();
        let mut proc = Proc::spawn("postgres", cmd, &log, &log, self.run_as)?;
        let mut config: tokio_postgres::Config = self
            .url_for("postgres")
            .parse()
            .map_err(HarnessError::Postgres)?;
        config.connect_timeout(Duration::from_secs(1));
        let c = &config;
        proc.wait_ready(
            STARTUP_TIMEOUT,
            Duration::from_millis(25),
            "no connection accepted",
            || async move { c.connect(NoTls).await.is_ok() },
        )
        .await
        .map_err(|why| self.start_failed(why))?;
        tracing::debug!(port = self.port, pid = proc.pid(), "postgres ready");
        self.proc = Some(proc);
        Ok(())
    }

    fn start_failed(&self, reason: String) -> HarnessError {
        HarnessError::StartFailed {
            what: format!("postgres on 127.0.0.1:{}", self.port),
            reason,
            log: log_tail(&self.log_path()),
        }
    }

    /// URL of the default database:
    /// `postgres://postgres@127.0.0.1:<port>/lull` (tokio-postgres and
    /// deadpool-postgres accept it; no password, trust authentication).
    pub fn url(&self) -> String {
        self.url_for(&self.database)
    }

    /// URL of another database of this cluster.
    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The default database's name ([`DEFAULT_DATABASE`]).
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory holding the unix socket (`.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// The postmaster's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// Whether the postmaster is running.
    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Proc::is_running)
    }

    /// Everything the server logged so far (all runs).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// A client connected to the default database; its connection task is
    /// spawned on the current tokio runtime.
    pub async fn client(&self) -> Result<tokio_postgres::Client> {
        self.client_for(&self.database).await
    }

    /// A client connected to `database`.
    pub async fn client_for(&self, database: &str) -> Result<tokio_postgres::Client> {
        let (client, conn) = tokio_postgres::connect(&self.url_for(database), NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("test postgres connection ended: {e}");
            }
        });
        Ok(client)
    }

    /// Creates another database and returns its URL (e.g. one per
    /// coordinator when a test runs several).
    pub async fn create_database(&self, name: &str) -> Result<String> {
        let admin = self.client_for("postgres").await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(name)))
            .await?;
        Ok(self.url_for(name))
    }

    /// Stops the server with a fast shutdown (SIGINT; SIGKILL after
    /// [`PG_STOP_TIMEOUT`]). Data and port are kept for
    /// [`Postgres::start_again`]. A no-op when not running.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(mut p) = self.proc.take() {
            p.stop_with(Signal::SIGINT, PG_STOP_TIMEOUT).await?;
        }
        Ok(())
    }

    /// Kills the server and its backends at once (SIGKILL to the process
    /// group), as a crash would. Returns the postmaster's exit status (`None`
    /// when it was not running).
    pub fn kill(&mut self) -> Option<ExitStatus> {
        self.proc.take().map(|mut p| p.kill())
    }

    /// Starts the server again on the same port and data dir and waits until
    /// it accepts connections. Fails if it is running.
    pub async fn start_again(&mut self) -> Result<()> {
        if self.is_running() {
            return Err(self.start_failed("it is already running".into()));
        }
        self.proc = None;
        self.launch().await
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            // Immediate shutdown: the postmaster stops its backends and
            // removes its shared memory; then the group is SIGKILLed anyway.
            p.signal(Signal::SIGQUIT);
            p.wait_blocking(DROP_QUIT_TIMEOUT);
            p.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("lull"), "\"lull\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn root_is_traversable_tmp_usually_is() {
        assert!(traversable_by_others(Path::new("/")));
        let private = tempfile::tempdir().unwrap();
        std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(!traversable_by_others(private.path()));
    }
}
