//! `lullctl run`: runs a command under a heavy-work lease. It waits for a
//! grant (a live line on a terminal shows the reason and a countdown), runs
//! the command while the lease heartbeats, forwards SIGINT/SIGTERM/SIGHUP to
//! it, stops it on a revoke or expiry (SIGTERM, then SIGKILL after
//! `--kill-after`), releases the lease with the outcome (`exit_<code>` or
//! `signal_<n>`) and exits with the command's exit code (128 + signal when a
//! signal ended it).
//!
//! The pure parts (outcome and exit code, the wait line, durations) are at
//! the top; the process and NATS handling below.

use std::io::{IsTerminal, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use clap::Args;
use lull_client::lease::{
    AcquireError, LeaseClient, LeaseClientConfig, LeaseEnd, LeaseGuard, WaitProgress,
};
use lull_proto::msg::lease::{Constraints, HeavyLeaseRequest, Priority};
use lull_proto::validate::Validate;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Ctx;

/// Exit code when no lease was granted (denied, or not within
/// `--wait-timeout`): `EX_TEMPFAIL`.
pub const EXIT_NO_LEASE: i32 = 75;
/// Exit code when the coordinator cannot be asked (`EX_UNAVAILABLE`).
pub const EXIT_UNAVAILABLE: i32 = 69;
/// Exit code for a bad request (like a usage error).
pub const EXIT_USAGE: i32 = 2;
/// Exit code when the command cannot be found (as shells do).
pub const EXIT_NOT_FOUND: i32 = 127;
/// Exit code when the command cannot be executed (as shells do).
pub const EXIT_CANNOT_EXEC: i32 = 126;

/// Arguments of `lullctl run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Cost of the job in units, 1..100.
    #[arg(long)]
    pub cost: i64,
    /// Priority: low, normal or high (high may run on a host that is not
    /// QUIET, never on PANIC).
    #[arg(long, default_value = "normal", value_parser = parse_priority)]
    pub priority: Priority,
    /// Host to run on; omit to let the coordinator place the job (the
    /// chosen host is in `LULL_LEASE_HOST_ID`).
    #[arg(long)]
    pub host: Option<String>,
    /// Job type, for audit.
    #[arg(long, default_value = "run")]
    pub job_type: String,
    /// Addon id the lease is asked for.
    #[arg(long, default_value = "lullctl")]
    pub addon_id: String,
    /// Expected duration, seconds (informational).
    #[arg(long)]
    pub expected_duration: Option<f64>,
    /// The job is CPU-heavy (judged on the CPU signals).
    #[arg(long)]
    pub cpu_heavy: bool,
    /// The job is disk-write-heavy (judged on IO pressure and free disk).
    #[arg(long)]
    pub disk_write_heavy: bool,
    /// The job is network-heavy (judged on network throughput).
    #[arg(long)]
    pub network_heavy: bool,
    /// How long to wait for a grant, seconds; 0 asks once.
    #[arg(long, default_value_t = 600.0)]
    pub wait_timeout: f64,
    /// Wait in the coordinator's queue instead of retrying.
    #[arg(long)]
    pub queue: bool,
    /// After a revoke, seconds between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = 10.0)]
    pub kill_after: f64,
    /// The command and its arguments (after `--`).
    #[arg(
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

fn parse_priority(s: &str) -> Result<Priority, String> {
    match s.to_ascii_uppercase().as_str() {
        "LOW" => Ok(Priority::Low),
        "NORMAL" => Ok(Priority::Normal),
        "HIGH" => Ok(Priority::High),
        other => Err(format!("expected low, normal or high, got {other:?}")),
    }
}

// ----- pure helpers --------------------------------------------------------

/// The release outcome and lullctl's exit code for how the command ended:
/// `exit_<code>` and the code, or `signal_<n>` and 128 + n.
pub fn outcome_of(code: Option<i32>, signal: Option<i32>) -> (String, i32) {
    match (code, signal) {
        (Some(c), _) => (format!("exit_{c}"), c),
        (None, Some(s)) => (format!("signal_{s}"), 128 + s),
        (None, None) => ("unknown".to_string(), 1),
    }
}

/// A duration for humans: `45s`, `4m05s`, `1h02m`.
pub fn fmt_secs(s: f64) -> String {
    let s = if s.is_finite() {
        s.max(0.0).ceil()
    } else {
        0.0
    } as u64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// The live wait line at `now`.
pub fn wait_line(p: &WaitProgress, now: Instant) -> String {
    let left = p.deadline.saturating_duration_since(now).as_secs_f64();
    let mut line = format!(
        "waiting for a lease: {} [{}]",
        p.denial.reason,
        p.denial.code_str()
    );
    if p.queued {
        line.push_str(" - queued");
    } else if let Some(at) = p.next_attempt {
        let next = at.saturating_duration_since(now).as_secs_f64();
        line.push_str(&format!(" - retry in {}", fmt_secs(next)));
    }
    line.push_str(&format!(", giving up in {}", fmt_secs(left)));
    line
}

/// Whether a SIGINT received by lullctl should be passed on. When lullctl
/// and the command share the terminal's foreground process group, a
/// Ctrl-C already reached the command; forwarding it would deliver it twice.
pub fn forward_sigint(shares_foreground_group: bool) -> bool {
    !shares_foreground_group
}

// ----- shell ---------------------------------------------------------------

fn request_of(a: &RunArgs) -> HeavyLeaseRequest {
    HeavyLeaseRequest {
        addon_id: a.addon_id.clone(),
        job_type: a.job_type.clone(),
        host_id: a.host.clone(),
        cost_units: Some(a.cost),
        cost_class: None,
        expected_duration_sec: a.expected_duration,
        priority: a.priority,
        constraints: Constraints {
            cpu_heavy: a.cpu_heavy,
            disk_write_heavy: a.disk_write_heavy,
            network_heavy: a.network_heavy,
        },
        wait: a.queue,
        wait_timeout_sec: None,
    }
}

/// Whether this process is in the terminal's foreground process group
/// (then the command, in the same group, gets the terminal's signals).
fn in_foreground() -> bool {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return false;
    }
    // SAFETY: tcgetpgrp and getpgrp only read process state; fd 0 is
    // stdin, checked above to be a terminal.
    let (fg, own) = unsafe { (libc::tcgetpgrp(0), libc::getpgrp()) };
    fg > 0 && fg == own
}

/// Where signals for the command go: its own process group (so that its
/// children are stopped too), or just its pid when it shares ours.
#[derive(Debug, Clone, Copy)]
struct Target {
    pid: Pid,
    group: bool,
}

impl Target {
    fn send(&self, sig: Signal) {
        let r = if self.group {
            nix::sys::signal::killpg(self.pid, sig)
        } else {
            nix::sys::signal::kill(self.pid, sig)
        };
        if let Err(e) = r {
            tracing::debug!(error = %e, ?sig, "signalling the command failed");
        }
    }
}

/// Draws the wait line on a terminal every 250 ms until `stop`.
fn spawn_ticker(
    mut rx: watch::Receiver<Option<WaitProgress>>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
                r = rx.changed() => if r.is_err() { break },
            }
            let line = rx.borrow().as_ref().map(|p| wait_line(p, Instant::now()));
            if let Some(line) = line {
                let mut err = std::io::stderr();
                let _ = write!(err, "\r\x1b[2K{line}");
                let _ = err.flush();
            }
        }
        let mut err = std::io::stderr();
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
    })
}

enum Acquired {
    Guard(Box<LeaseGuard>),
    Exit(i32),
}

async fn acquire(
    ctx: &Ctx,
    args: &RunArgs,
    req: HeavyLeaseRequest,
    signals: &mut Signals,
) -> Acquired {
    let cfg = LeaseClientConfig {
        request_timeout_sec: ctx.timeout.as_secs_f64(),
        ..Default::default()
    };
    let lc = LeaseClient::with_config(ctx.client.clone(), ctx.subjects.clone(), cfg);
    let tty = std::io::stderr().is_terminal();
    let (tx, rx) = watch::channel::<Option<WaitProgress>>(None);
    let stop_ticker = CancellationToken::new();
    let ticker = tty.then(|| spawn_ticker(rx, stop_ticker.clone()));
    let cancel = CancellationToken::new();
    let mut last_code: Option<String> = None;
    let deadline = Duration::from_secs_f64(args.wait_timeout.clamp(0.0, 86_400.0 * 365.0));
    let fut = lc.acquire_wait_with(req, deadline, &cancel, |p| {
        if !tty {
            let code = format!("{}|{}", p.denial.code_str(), p.queued);
            if last_code.as_deref() != Some(code.as_str()) {
                eprintln!("lullctl: {}", wait_line(p, Instant::now()));
                last_code = Some(code);
            }
        }
        tx.send_replace(Some(p.clone()));
    });
    tokio::pin!(fut);
    let mut got_signal: Option<i32> = None;
    let result = loop {
        tokio::select! {
            r = &mut fut => break r,
            _ = signals.int.recv() => { got_signal.get_or_insert(libc::SIGINT); cancel.cancel(); }
            _ = signals.term.recv() => { got_signal.get_or_insert(libc::SIGTERM); cancel.cancel(); }
            _ = signals.hup.recv() => { got_signal.get_or_insert(libc::SIGHUP); cancel.cancel(); }
        }
    };
    stop_ticker.cancel();
    if let Some(t) = ticker {
        let _ = t.await;
    }
    match result {
        Ok(g) => Acquired::Guard(Box::new(g)),
        Err(AcquireError::Cancelled) => Acquired::Exit(128 + got_signal.unwrap_or(libc::SIGINT)),
        Err(e @ AcquireError::Denied(_)) | Err(e @ AcquireError::TimedOut { .. }) => {
            eprintln!("lullctl: {e}");
            Acquired::Exit(EXIT_NO_LEASE)
        }
        Err(e @ AcquireError::Withdrawn { .. }) => {
            eprintln!("lullctl: {e}");
            Acquired::Exit(EXIT_NO_LEASE)
        }
        Err(e @ AcquireError::Invalid(_)) => {
            eprintln!("lullctl: {e}");
            Acquired::Exit(EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("lullctl: {e}");
            Acquired::Exit(EXIT_UNAVAILABLE)
        }
    }
}

struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

/// Runs the command; returns the exit code.
pub async fn run(ctx: &Ctx, args: RunArgs) -> anyhow::Result<i32> {
    let req = request_of(&args);
    if let Err(e) = req.validate() {
        eprintln!("lullctl: invalid lease request: {e}");
        return Ok(EXIT_USAGE);
    }
    if !(args.kill_after.is_finite() && args.kill_after >= 0.0) {
        eprintln!("lullctl: --kill-after must be a number >= 0");
        return Ok(EXIT_USAGE);
    }
    let mut signals = Signals {
        int: signal(SignalKind::interrupt())?,
        term: signal(SignalKind::terminate())?,
        hup: signal(SignalKind::hangup())?,
    };
    let guard = match acquire(ctx, &args, req, &mut signals).await {
        Acquired::Guard(g) => *g,
        Acquired::Exit(code) => return Ok(code),
    };
    let tty = std::io::stderr().is_terminal();
    if tty {
        eprintln!(
            "lullctl: lease {} granted on {}",
            guard.lease_id(),
            guard.host_id()
        );
    }
    tracing::info!(
        lease_id = guard.lease_id(),
        host_id = guard.host_id(),
        "lease granted"
    );

    let foreground = in_foreground();
    let mut cmd = tokio::process::Command::new(&args.command[0]);
    cmd.args(&args.command[1..])
        .env("LULL_LEASE_ID", guard.lease_id())
        .env("LULL_LEASE_HOST_ID", guard.host_id())
        .kill_on_drop(true);
    if !foreground {
        cmd.process_group(0);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lullctl: cannot run {:?}: {e}", args.command[0]);
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                EXIT_NOT_FOUND
            } else {
                EXIT_CANNOT_EXEC
            };
            let _ = guard.release("spawn_failed").await;
            return Ok(code);
        }
    };
    let Some(pid) = child.id() else {
        let _ = guard.release("spawn_failed").await;
        return Ok(EXIT_CANNOT_EXEC);
    };
    let target = Target {
        pid: Pid::from_raw(pid as i32),
        group: !foreground,
    };

    let status = supervise(&mut child, target, &guard, &mut signals, &args, foreground).await?;
    let (outcome, code) = outcome_of(status.code(), status.signal());
    match guard.ended() {
        Some(end) => {
            eprintln!(
                "lullctl: command ended ({outcome}) after the lease was {}",
                end_word(&end)
            );
            drop(guard);
        }
        None => {
            let id = guard.lease_id().to_string();
            match guard.release(&outcome).await {
                Ok(r) if r.ok => {}
                Ok(r) => eprintln!(
                    "lullctl: release of {id} not accepted: {}",
                    r.reason.unwrap_or_default()
                ),
                Err(e) => eprintln!("lullctl: release of {id} failed: {e}"),
            }
        }
    }
    Ok(code)
}

fn end_word(e: &LeaseEnd) -> String {
    e.to_string()
}

/// Waits for the command, forwarding signals and stopping it on a revoke.
async fn supervise(
    child: &mut tokio::process::Child,
    target: Target,
    guard: &LeaseGuard,
    signals: &mut Signals,
    args: &RunArgs,
    foreground: bool,
) -> anyhow::Result<ExitStatus> {
    let kill_at = tokio::time::sleep(Duration::from_secs(86_400 * 365));
    tokio::pin!(kill_at);
    let mut armed = false;
    let mut stopping = false;
    loop {
        tokio::select! {
            st = child.wait() => return Ok(st?),
            _ = signals.int.recv() => {
                if forward_sigint(foreground) { target.send(Signal::SIGINT) }
            }
            _ = signals.term.recv() => target.send(Signal::SIGTERM),
            _ = signals.hup.recv() => target.send(Signal::SIGHUP),
            end = guard.revoked(), if !stopping => {
                stopping = true;
                eprintln!(
                    "lullctl: lease {} {}; sending SIGTERM (SIGKILL in {})",
                    guard.lease_id(),
                    end_word(&end),
                    fmt_secs(args.kill_after)
                );
                target.send(Signal::SIGTERM);
                kill_at.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs_f64(args.kill_after));
                armed = true;
            }
            _ = &mut kill_at, if armed => {
                armed = false;
                eprintln!("lullctl: command still running; sending SIGKILL");
                target.send(Signal::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_client::lease::Denial;
    use lull_proto::msg::lease::DenyReason;

    #[test]
    fn outcomes_and_exit_codes() {
        assert_eq!(outcome_of(Some(0), None), ("exit_0".to_string(), 0));
        assert_eq!(outcome_of(Some(3), None), ("exit_3".to_string(), 3));
        assert_eq!(outcome_of(None, Some(15)), ("signal_15".to_string(), 143));
        assert_eq!(outcome_of(None, Some(9)), ("signal_9".to_string(), 137));
        assert_eq!(outcome_of(None, None).1, 1);
    }

    #[test]
    fn durations_for_humans() {
        assert_eq!(fmt_secs(0.2), "1s");
        assert_eq!(fmt_secs(45.0), "45s");
        assert_eq!(fmt_secs(245.0), "4m05s");
        assert_eq!(fmt_secs(3720.0), "1h02m");
        assert_eq!(fmt_secs(-3.0), "0s");
        assert_eq!(fmt_secs(f64::NAN), "0s");
    }

    #[test]
    fn wait_line_has_reason_code_and_countdowns() {
        let now = Instant::now();
        let p = WaitProgress {
            denial: Denial {
                reason: "Capacity exceeded: used=60, requested=30, capacity=70".into(),
                reason_code: Some(DenyReason::CapacityExceeded),
                retry_after_sec: Some(12.0),
            },
            queued: false,
            next_attempt: Some(now + Duration::from_secs(12)),
            deadline: now + Duration::from_secs(590),
            attempts: 1,
        };
        assert_eq!(
            wait_line(&p, now),
            "waiting for a lease: Capacity exceeded: used=60, requested=30, capacity=70 \
             [capacity_exceeded] - retry in 12s, giving up in 9m50s"
        );
        // The countdown moves with the clock.
        assert!(wait_line(&p, now + Duration::from_secs(2)).contains("retry in 10s"));
        let q = WaitProgress {
            queued: true,
            next_attempt: None,
            ..p
        };
        assert!(wait_line(&q, now).contains("- queued, giving up in 9m50s"));
    }

    #[test]
    fn priorities_parse_case_insensitively() {
        assert_eq!(parse_priority("high").unwrap(), Priority::High);
        assert_eq!(parse_priority("LOW").unwrap(), Priority::Low);
        assert!(parse_priority("urgent").is_err());
    }

    #[test]
    fn sigint_is_forwarded_only_outside_the_foreground_group() {
        assert!(forward_sigint(false));
        assert!(!forward_sigint(true));
    }
}
