//! Child processes that cannot outlive the test process.
//!
//! Every child is spawned by one dedicated, never-exiting "spawner" thread,
//! because `PR_SET_PDEATHSIG` fires when the *thread* that forked the child
//! exits, not the process: spawning from a tokio worker or a test thread would
//! kill servers when that thread ends. In the child, before `exec`, a
//! `pre_exec` hook optionally drops privileges (setgroups/setgid/setuid — done
//! here, not with `CommandExt::uid`, so that the death signal is armed *after*
//! the credential change, which would otherwise clear it), then arms
//! `PR_SET_PDEATHSIG(SIGKILL)` and checks the parent is still alive. Each child
//! leads its own process group, so teardown also kills grandchildren (e.g.
//! Postgres backends) with `killpg`.
//!
//! Liveness checks use `waitid(WNOWAIT)`, which does not reap: the leader stays
//! a zombie until [`Proc::reap`], so its pid (and process-group id) cannot be
//! recycled while we may still signal it.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{HarnessError, Result};

/// How often liveness is polled while waiting for an exit.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// Numeric credentials a child switches to before `exec` (used to run Postgres
/// as the `postgres` OS user when the tests run as root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

struct SpawnRequest {
    cmd: Command,
    reply: mpsc::SyncSender<std::io::Result<Child>>,
}

static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();

fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        // The thread lives as long as the process: `rx` never disconnects
        // because the sender sits in a static.
        let spawned = std::thread::Builder::new()
            .name("lull-harness-spawner".into())
            .spawn(move || {
                for mut req in rx {
                    let _ = req.reply.send(req.cmd.spawn());
                }
            });
        if let Err(e) = spawned {
            // Without the thread every spawn reports this error below.
            eprintln!("lull-tests: cannot start the spawner thread: {e}");
        }
        Mutex::new(tx)
    })
}

/// A child process in its own process group, killed (with its group) and
/// reaped on drop.
#[derive(Debug)]
pub struct Proc {
    what: String,
    child: Child,
    reaped: Option<ExitStatus>,
}

/// Opens `path` for appending, creating it, for a child's stdout/stderr.
pub(crate) fn log_file(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| HarnessError::io(format!("open log file {}", path.display()), e))
}

impl Proc {
    /// Spawns `cmd` (stdin from /dev/null, stdout and stderr appended to the
    /// given files — the same path for both is fine —, own process group,
    /// parent-death signal, optional credentials). `what` names the process in
    /// errors.
    pub fn spawn(
        what: &str,
        mut cmd: Command,
        stdout: &Path,
        stderr: &Path,
        run_as: Option<RunAs>,
    ) -> Result<Proc> {
        let out = log_file(stdout)?;
        let err = if stderr == stdout {
            out.try_clone()
                .map_err(|e| HarnessError::io("duplicate log file handle", e))?
        } else {
            log_file(stderr)?
        };
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let parent = std::process::id();
        // SAFETY: the hook only calls async-signal-safe syscalls (setgroups,
        // setgid, setuid, prctl, getppid) and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(RunAs { uid, gid }) = run_as {
                    if libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(gid) != 0
                        || libc::setuid(uid) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before the signal was armed.
                if libc::getppid() as u32 != parent {
                    return Err(std::io::Error::other("parent exited before exec"));
                }
                Ok(())
            });
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let sent = match spawner().lock() {
            Ok(tx) => tx.send(SpawnRequest { cmd, reply }).is_ok(),
            Err(_) => false,
        };
        let spawned = if sent {
            answer
                .recv()
                .unwrap_or_else(|_| Err(std::io::Error::other("spawner thread is gone")))
        } else {
            Err(std::io::Error::other("spawner thread is gone"))
        };
        let child = spawned.map_err(|e| HarnessError::io(format!("spawn {what}"), e))?;
        tracing::debug!(what, pid = child.id(), "spawned");
        Ok(Proc {
            what: what.to_string(),
            child,
            reaped: None,
        })
    }

    /// The child's pid (also its process-group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn nix_pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// The exit status if the child has exited. The check itself does not
    /// reap; once an exit is seen, leftover group members are killed and the
    /// leader is reaped.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if let Some(st) = self.reaped {
            return Some(st);
        }
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::Pid(self.nix_pid()), flags) {
            Ok(WaitStatus::StillAlive) => None,
            // Exited (or already reaped elsewhere): collect the status.
            _ => Some(self.reap()),
        }
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        self.exited().is_none()
    }

    /// Sends `sig` to the child only.
    pub fn signal(&self, sig: Signal) {
        if self.reaped.is_none() {
            let _ = kill(self.nix_pid(), sig);
        }
    }

    /// Sends `sig` to the child's whole process group. Only while the leader
    /// is not reaped, so the group id cannot belong to someone else.
    pub fn signal_group(&self, sig: Signal) {
        if self.reaped.is_none() {
            let _ = killpg(self.nix_pid(), sig);
        }
    }

    /// Kills what is left of the group, then reaps the leader (blocking; the
    /// leader has exited or was just SIGKILLed).
    fn reap(&mut self) -> ExitStatus {
        if let Some(st) = self.reaped {
            return st;
        }
        // Leftover group members (e.g. backends of a dead postmaster) go too.
        let _ = killpg(self.nix_pid(), Signal::SIGKILL);
        let st = match self.child.wait() {
            Ok(st) => st,
            Err(_) => {
                // Cannot happen for our own child; report a signal-9 death.
                std::os::unix::process::ExitStatusExt::from_raw(9)
            }
        };
        tracing::debug!(what = %self.what, status = %st, "reaped");
        self.reaped = Some(st);
        st
    }

    /// SIGKILLs the whole group and reaps the leader.
    pub fn kill(&mut self) -> ExitStatus {
        self.signal_group(Signal::SIGKILL);
        self.reap()
    }

    /// Waits until `ready` says the child is serving, polling every `every`
    /// for at most `timeout`. On failure the child is killed and the reason
    /// (`exited with ...` or `<what> within <timeout>`) is returned.
    pub async fn wait_ready<F, Fut>(
        &mut self,
        timeout: Duration,
        every: Duration,
        what: &str,
        mut ready: F,
    ) -> std::result::Result<(), String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.exited() {
                return Err(format!("exited with {st}"));
            }
            if ready().await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(format!("{what} within {timeout:?}"));
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Blocking: waits up to `timeout` for the child to exit by itself.
    pub fn wait_blocking(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.exited() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(EXIT_POLL);
        }
    }

    /// Waits (asynchronously) up to `timeout` for the child to exit by itself.
    pub async fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.exited() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
    }

    /// Sends `sig`, waits up to `timeout` for the exit, then SIGKILLs the
    /// group. Returns the exit status, or a timeout error if `sig` was not
    /// enough (the process is killed either way).
    pub async fn stop_with(&mut self, sig: Signal, timeout: Duration) -> Result<ExitStatus> {
        self.signal(sig);
        match self.wait(timeout).await {
            Some(st) => Ok(st),
            None => {
                self.kill();
                Err(HarnessError::Timeout {
                    what: format!("{} to exit after {sig}", self.what),
                    after: timeout,
                })
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}
