//! The project's own binaries (`lull-coordinator`, `lull-agent`, `lullctl`)
//! run as real processes from the cargo target dir, with their output
//! captured to files for assertions and failure messages.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::bins;
use crate::error::{HarnessError, Result};
use crate::janitor;
use crate::process::Proc;

/// Builder for a [`Service`]: binary, arguments, environment.
///
/// Inherited `LULL_*` environment variables are removed by default so the
/// developer's shell cannot leak configuration into a test; everything else
/// (e.g. `RUST_LOG`, `PATH`) is inherited.
#[derive(Debug, Clone)]
pub struct ServiceBuilder {
    name: String,
    binary: Option<PathBuf>,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    env_remove: Vec<OsString>,
    keep_lull_env: bool,
    current_dir: Option<PathBuf>,
}

impl ServiceBuilder {
    /// Uses `path` instead of looking `name` up in the target dir.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets one environment variable.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Sets environment variables.
    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.env.extend(
            vars.into_iter()
                .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned())),
        );
        self
    }

    /// Removes an inherited environment variable.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env_remove.push(key.as_ref().to_owned());
        self
    }

    /// Keeps the inherited `LULL_*` variables (removed by default).
    pub fn keep_lull_env(mut self) -> Self {
        self.keep_lull_env = true;
        self
    }

    /// Runs the process in `dir` (default: the service's temp dir).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// Starts the process.
    pub fn start(self) -> Result<Service> {
        let bin = match &self.binary {
            Some(b) => b.clone(),
            None => bins::lull_binary(&self.name)?,
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!("lull-svc-{}-", self.name))
            .tempdir()
            .map_err(|e| HarnessError::io(format!("create a temp dir for {}", self.name), e))?;
        janitor::mark_owned(dir.path()).map_err(|e| HarnessError::io("write the owner file", e))?;
        let mut cmd = Command::new(&bin);
        cmd.args(&self.args);
        if !self.keep_lull_env {
            for (k, _) in std::env::vars_os() {
                if k.to_string_lossy().starts_with("LULL_") {
                    cmd.env_remove(&k);
                }
            }
        }
        for k in &self.env_remove {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.current_dir(self.current_dir.as_deref().unwrap_or(dir.path()));
        let stdout = dir.path().join("stdout.log");
        let stderr = dir.path().join("stderr.log");
        let proc = Proc::spawn(&self.name, cmd, &stdout, &stderr, None)?;
        tracing::debug!(name = %self.name, pid = proc.pid(), "service started");
        Ok(Service {
            proc,
            name: self.name,
            stdout,
            stderr,
            dir,
        })
    }

    /// Starts the process and waits up to `timeout` for it to exit by itself
    /// (for one-shot commands such as `lullctl ...` or `lull-agent --once`).
    /// On timeout the process is killed and an error returned.
    pub async fn run(self, timeout: Duration) -> Result<Finished> {
        let mut svc = self.start()?;
        let status = svc.wait(timeout).await?;
        Ok(Finished {
            status,
            stdout: svc.stdout(),
            stderr: svc.stderr(),
        })
    }
}

/// Result of a process run to completion.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Exit status.
    pub status: ExitStatus,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

/// One of the project's binaries running as a child process. Killed
/// (SIGKILL to its process group) on drop; its log dir is removed.
#[derive(Debug)]
pub struct Service {
    proc: Proc,
    name: String,
    stdout: PathBuf,
    stderr: PathBuf,
    dir: TempDir,
}

impl Service {
    /// A builder for binary `name` (`lull-coordinator`, `lull-agent`, `lullctl`).
    pub fn builder(name: &str) -> ServiceBuilder {
        ServiceBuilder {
            name: name.into(),
            binary: None,
            args: Vec::new(),
            env: Vec::new(),
            env_remove: Vec::new(),
            keep_lull_env: false,
            current_dir: None,
        }
    }

    /// Starts binary `name` with `args` and extra environment `env`.
    pub fn start<A, S, E, K, V>(name: &str, args: A, env: E) -> Result<Service>
    where
        A: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
        E: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        Self::builder(name).args(args).envs(env).start()
    }

    /// The binary's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id (also its process-group id).
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The service's temp dir (logs; default working dir). Free for the test
    /// to put config files or spool dirs in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything written to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Both outputs, labelled, for assertion messages.
    pub fn logs(&self) -> String {
        format!(
            "===== {} (pid {}) stdout =====\n{}\n===== {} stderr =====\n{}",
            self.name,
            self.pid(),
            self.stdout(),
            self.name,
            self.stderr()
        )
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }

    /// The exit status if it has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.proc.exited()
    }

    /// Sends an arbitrary signal to the process (not its group).
    pub fn signal(&self, sig: Signal) {
        self.proc.signal(sig)
    }

    /// SIGTERM, then waits up to `timeout` for the exit and returns its
    /// status. If it does not exit in time it is SIGKILLed and a
    /// [`HarnessError::Timeout`] returned.
    pub async fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus> {
        self.proc.stop_with(Signal::SIGTERM, timeout).await
    }

    /// SIGKILLs the process (and its group) and returns its exit status.
    pub fn kill9(&mut self) -> ExitStatus {
        self.proc.kill()
    }

    /// Waits up to `timeout` for the process to exit by itself. On timeout it
    /// is SIGKILLed and a [`HarnessError::Timeout`] returned.
    pub async fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        match self.proc.wait(timeout).await {
            Some(st) => Ok(st),
            None => {
                self.proc.kill();
                Err(HarnessError::Timeout {
                    what: format!("{} to exit", self.name),
                    after: timeout,
                })
            }
        }
    }
}
