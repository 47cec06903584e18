//! Collectors, node_exporter style: one module per collector, each a
//! [`Collector`] that the runner drives on its own interval with a timeout.
//! Parsers of `/proc` text are pure functions in their modules; the
//! collectors around them do the reading. Work that may block (file
//! systems, `/proc/<pid>` of a stuck process, directory walks) runs on the
//! blocking pool through [`blocking`], so a hung probe never stalls the
//! runtime; a collector whose previous run is still stuck reports `busy`.

pub mod addons;
pub mod api;
pub mod disk;
pub mod host;
pub mod pressure;
pub mod process;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, TryLockError};

use lull_proto::msg::stats::{AddonHealth, ApiStats, DiskStats, HostStats, Pressure, ProcessStats};

/// What a collector produced in one run.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Host figures (`disks` and `pressure` are filled by their own collectors).
    Host(HostStats),
    /// Real mounted filesystems.
    Disks(Vec<DiskStats>),
    /// PSI, or `None` where PSI is off.
    Pressure(Option<Pressure>),
    /// The agent and the watched processes.
    Processes(Vec<ProcessStats>),
    /// Addon lifecycle facts and custom stats, by addon id.
    Addons(BTreeMap<String, addons::AddonFacts>),
    /// Addon health-check results, by addon id.
    AddonHealth(BTreeMap<String, AddonHealth>),
    /// Addon runtime-dir sizes in bytes, by addon id.
    AddonDirs(BTreeMap<String, u64>),
    /// Api figures (`None` until two scrapes give a rate).
    Api(Option<ApiStats>),
}

/// A successful run: the output and the problems that did not stop it
/// (one dead mount, one unreadable addon file, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Collected {
    /// The output.
    pub output: Output,
    /// Partial problems, reported in the snapshot's `errors`.
    pub warnings: Vec<String>,
}

impl Collected {
    /// An output without warnings.
    pub fn ok(output: Output) -> Self {
        Collected {
            output,
            warnings: Vec::new(),
        }
    }
}

/// A run failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CollectError {
    /// A source could not be read.
    #[error("Io: {0}")]
    Io(String),
    /// A source had unexpected content.
    #[error("Parse: {0}")]
    Parse(String),
    /// The previous run is still running (stuck in the kernel or a walk).
    #[error("Busy: previous run still in progress")]
    Busy,
    /// The run panicked.
    #[error("Panic: {0}")]
    Panicked(String),
    /// The run exceeded its timeout (set by the runner).
    #[error("Timeout: no result within {0:.3} s")]
    Timeout(f64),
    /// Anything else.
    #[error("Error: {0}")]
    Other(String),
}

impl CollectError {
    /// The short kind used as the `result` label of run metrics.
    pub fn result_label(&self) -> &'static str {
        match self {
            CollectError::Timeout(_) => "timeout",
            CollectError::Busy => "busy",
            _ => "error",
        }
    }
}

/// The future of one collector run.
pub type CollectFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Collected, CollectError>> + Send + 'a>>;

/// One collector. `collect` may be cancelled (dropped) at any await point
/// when it times out, so state it must keep across runs lives in `self`.
pub trait Collector: Send + 'static {
    /// Stable name (metric label, snapshot `errors[].collector`).
    fn name(&self) -> &'static str;
    /// One run.
    fn collect(&mut self) -> CollectFuture<'_>;
}

/// Runs `f` on the blocking pool with exclusive access to `state`. When the
/// previous run still holds the state (it is stuck, and the runner gave up
/// on it), this run fails at once with [`CollectError::Busy`] instead of
/// queueing another stuck thread.
pub fn blocking<S, F>(state: &Arc<Mutex<S>>, f: F) -> CollectFuture<'static>
where
    S: Send + 'static,
    F: FnOnce(&mut S) -> Result<Collected, CollectError> + Send + 'static,
{
    let state = Arc::clone(state);
    Box::pin(async move {
        let joined = tokio::task::spawn_blocking(move || {
            let mut guard = match state.try_lock() {
                Ok(g) => g,
                Err(TryLockError::WouldBlock) => return Err(CollectError::Busy),
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
            };
            f(&mut guard)
        })
        .await;
        match joined {
            Ok(r) => r,
            Err(e) => Err(CollectError::Panicked(e.to_string())),
        }
    })
}

/// Reads a small text file (`/proc`, `/sys`).
pub fn read_text(path: impl AsRef<std::path::Path>) -> Result<String, CollectError> {
    let path = path.as_ref();
    std::fs::read_to_string(path).map_err(|e| CollectError::Io(format!("{}: {e}", path.display())))
}

/// Clamps a percentage into `0..=100` (NaN becomes 0).
pub fn clamp_pct(v: f64) -> f64 {
    if v.is_finite() {
        v.clamp(0.0, 100.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stuck_blocking_run_makes_the_next_one_busy() {
        let state = Arc::new(Mutex::new(0u32));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let first = blocking(&state, move |n| {
            *n += 1;
            let _ = rx.recv(); // stuck until released
            Ok(Collected::ok(Output::Api(None)))
        });
        let first = tokio::spawn(first);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let second = blocking(&state, |_| Ok(Collected::ok(Output::Api(None)))).await;
        assert_eq!(second, Err(CollectError::Busy));
        tx.send(()).unwrap();
        assert!(first.await.unwrap().is_ok());
        let third = blocking(&state, |n| {
            *n += 1;
            Ok(Collected::ok(Output::Api(None)))
        })
        .await;
        assert!(third.is_ok());
        assert_eq!(*state.lock().unwrap(), 2);
    }

    #[test]
    fn pct_clamps() {
        assert_eq!(clamp_pct(120.0), 100.0);
        assert_eq!(clamp_pct(-1.0), 0.0);
        assert_eq!(clamp_pct(f64::NAN), 0.0);
    }
}
