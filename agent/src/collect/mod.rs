//! Collectors, node_exporter style. Each collector family is one file
//! that owns its config section ([`Family::Settings`]), its share of the
//! snapshot (a [`Part`]) and its metrics ([`Family::METRICS`]);
//! the `with_families!` list below names the families, one line each. This module holds what
//! they share: the [`Collector`] trait the runner drives on its own
//! interval with a timeout, the [`Output`] of a run, the errors, and
//! [`blocking`], which runs work that may block (file systems, `/proc` of
//! a stuck process, directory walks) on the blocking pool so a hung probe
//! never stalls the runtime.

/// The one list of collector families: a module (one file) and its
/// [`Family`] type each, in the order of `--print-config`. Adding a
/// collector is its file plus one line here: the module is declared and
/// registered from this list (see [`registry`]).
macro_rules! with_families {
    ($then:ident) => {
        $then! {
            host: host::Host,
            disk: disk::Disk,
            pressure: pressure::Psi,
            process: process::Processes,
            addons: addons::Addons,
            api: api::Api,
        }
    };
}

macro_rules! declare_modules {
    ($($field:ident: $family:ty),* $(,)?) => {
        $(pub mod $field;)*
    };
}

with_families!(declare_modules);
#[cfg(all(test, target_os = "linux"))]
mod procfs;
pub mod registry;

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, TryLockError};

use lull_common::metric::Metric;
use lull_proto::msg::stats::SystemStatsSnapshot;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::schedule::Schedule;

/// The fresh outputs of one tick, by collector name.
pub type Fresh<'a> = BTreeMap<&'static str, &'a Output>;

/// A collector's share of the snapshot.
pub trait Part: Any + Debug + Send + Sync {
    /// Writes this share into the snapshot being assembled. `fresh` holds
    /// every fresh output of the tick (this one included), for parts that
    /// merge the results of several collectors.
    fn fill(&self, snap: &mut SystemStatsSnapshot, fresh: &Fresh<'_>);
    /// Whether `other` is an equal part (see [`same_part`]).
    fn same(&self, other: &dyn Part) -> bool;
}

/// [`Part::same`] for a part that is `PartialEq`.
pub fn same_part<T: Part + PartialEq>(a: &T, b: &dyn Part) -> bool {
    let b: &dyn Any = b;
    b.downcast_ref::<T>() == Some(a)
}

/// What a collector produced in one run: its share of the snapshot.
#[derive(Debug, Clone)]
pub struct Output(Arc<dyn Part>);

impl Output {
    /// Wraps a part.
    pub fn new(part: impl Part) -> Self {
        Output(Arc::new(part))
    }

    /// The part as its own type, when it is one.
    pub fn get<T: Part>(&self) -> Option<&T> {
        let any: &dyn Any = &*self.0;
        any.downcast_ref()
    }

    /// Writes the part into the snapshot.
    pub fn fill(&self, snap: &mut SystemStatsSnapshot, fresh: &Fresh<'_>) {
        self.0.fill(snap, fresh)
    }
}

impl PartialEq for Output {
    fn eq(&self, other: &Self) -> bool {
        self.0.same(&*other.0)
    }
}

/// One collector family: one file, one registry line. Its settings are
/// flattened into the top level of the agent's configuration, so the
/// family decides its own keys.
pub trait Family {
    /// Its config sections, with their documented defaults.
    type Settings: Debug + Clone + Default + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// Its collectors' names and default schedules (`collectors.<name>`).
    const SCHEDULES: &'static [(&'static str, Schedule)];
    /// Its own metrics (listed for `describe_all`).
    const METRICS: &'static [&'static Metric] = &[];
    /// Its collectors whose figures are deltas between two runs
    /// (`--once` runs them twice).
    const DELTA: &'static [&'static str] = &[];
    /// Rules serde cannot express.
    fn check(_settings: &Self::Settings) -> Result<(), String> {
        Ok(())
    }
    /// Its collectors that have something to do.
    fn build(settings: &Self::Settings, ctx: &Ctx<'_>) -> Vec<Box<dyn Collector>>;
}

/// Every family's settings, for a family that reads another's section.
pub struct Ctx<'a>(pub Vec<&'a dyn Any>);

impl Ctx<'_> {
    /// The settings of type `S`, when a registered family has them.
    pub fn section<S: Any>(&self) -> Option<&S> {
        self.0.iter().find_map(|s| s.downcast_ref())
    }
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
    /// The run panicked (caught by the runner, or by [`blocking`] for a
    /// probe on the blocking pool); the collector runs again at its next
    /// slot.
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
            CollectError::Panicked(_) => "panic",
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

/// An empty part, for tests of the machinery.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Nothing;

#[cfg(test)]
impl Part for Nothing {
    fn fill(&self, _: &mut SystemStatsSnapshot, _: &Fresh<'_>) {}
    fn same(&self, other: &dyn Part) -> bool {
        same_part(self, other)
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
            Ok(Collected::ok(Output::new(Nothing)))
        });
        let first = tokio::spawn(first);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let second = blocking(&state, |_| Ok(Collected::ok(Output::new(Nothing)))).await;
        assert_eq!(second, Err(CollectError::Busy));
        tx.send(()).unwrap();
        assert!(first.await.unwrap().is_ok());
        let third = blocking(&state, |n| {
            *n += 1;
            Ok(Collected::ok(Output::new(Nothing)))
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
