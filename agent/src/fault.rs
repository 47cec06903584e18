//! Test-only fault injection, read from the environment like the
//! coordinator's `LULL_FAULT_END_TASK`. With
//! `LULL_FAULT_PANIC_COLLECTOR=<name>[@<ok_runs>][,<name>[@<ok_runs>]...]`
//! each named collector panics on every run after its first `ok_runs` runs
//! (default 0: from the first run). The end-to-end tests use it to show that
//! a panicking collector does not take the agent down, and (with `host`) to
//! cause a real loop failure. Operators never set it; the agent logs a
//! warning for every collector it wraps.

use crate::collect::{CollectFuture, Collector};
use crate::schedule::Schedule;

/// The environment variable naming the collectors that panic.
pub const PANIC_COLLECTOR_ENV: &str = "LULL_FAULT_PANIC_COLLECTOR";

/// One collector made to panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanicFault {
    /// The collector's name (`collectors.<name>`).
    pub collector: String,
    /// Runs that succeed normally before the panics begin.
    pub ok_runs: u64,
}

/// Collectors with their schedules, as the runner takes them.
pub type Scheduled = Vec<(Box<dyn Collector>, Schedule)>;

/// Parses the value of [`PANIC_COLLECTOR_ENV`].
pub fn parse(spec: &str) -> Result<Vec<PanicFault>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (name, ok_runs) = match item.split_once('@') {
                Some((n, k)) => (
                    n.trim(),
                    k.trim()
                        .parse::<u64>()
                        .map_err(|e| format!("{PANIC_COLLECTOR_ENV}: {item:?}: {e}"))?,
                ),
                None => (item, 0),
            };
            if name.is_empty() {
                return Err(format!(
                    "{PANIC_COLLECTOR_ENV}: {item:?}: no collector name"
                ));
            }
            Ok(PanicFault {
                collector: name.to_string(),
                ok_runs,
            })
        })
        .collect()
}

/// The faults asked for by the environment (none when unset).
pub fn from_env() -> Result<Vec<PanicFault>, String> {
    match std::env::var(PANIC_COLLECTOR_ENV) {
        Ok(v) => parse(&v),
        Err(_) => Ok(Vec::new()),
    }
}

/// Wraps each collector named in `faults`; a fault naming no enabled
/// collector is an error (a test that injects nothing must not pass).
pub fn apply(collectors: Scheduled, faults: &[PanicFault]) -> Result<Scheduled, String> {
    if let Some(f) = faults
        .iter()
        .find(|f| !collectors.iter().any(|(c, _)| c.name() == f.collector))
    {
        return Err(format!(
            "{PANIC_COLLECTOR_ENV}: no enabled collector {:?}",
            f.collector
        ));
    }
    Ok(collectors
        .into_iter()
        .map(
            |(c, s)| match faults.iter().find(|f| f.collector == c.name()) {
                Some(f) => {
                    tracing::warn!(
                        collector = c.name(),
                        ok_runs = f.ok_runs,
                        "fault injection: this collector will panic on every run"
                    );
                    let c: Box<dyn Collector> = Box::new(Panicking {
                        inner: c,
                        ok_runs: f.ok_runs,
                        runs: 0,
                    });
                    (c, s)
                }
                None => (c, s),
            },
        )
        .collect())
}

/// A collector that panics on every run after its first `ok_runs`.
struct Panicking {
    inner: Box<dyn Collector>,
    ok_runs: u64,
    runs: u64,
}

impl Collector for Panicking {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn collect(&mut self) -> CollectFuture<'_> {
        self.runs += 1;
        if self.runs <= self.ok_runs {
            return self.inner.collect();
        }
        let name = self.inner.name();
        let run = self.runs;
        Box::pin(async move {
            panic!("fault injection ({PANIC_COLLECTOR_ENV}): collector {name} panics on run {run}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::{Collected, Nothing, Output};
    use crate::runner::{run_once, Board, Slot};

    struct Fine;
    impl Collector for Fine {
        fn name(&self) -> &'static str {
            "fine"
        }
        fn collect(&mut self) -> CollectFuture<'_> {
            Box::pin(async { Ok(Collected::ok(Output::new(Nothing))) })
        }
    }

    #[test]
    fn specs_parse() {
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(
            parse("disk, host@3").unwrap(),
            vec![
                PanicFault {
                    collector: "disk".into(),
                    ok_runs: 0
                },
                PanicFault {
                    collector: "host".into(),
                    ok_runs: 3
                }
            ]
        );
        assert!(parse("host@x").is_err());
        assert!(parse("@2").is_err());
    }

    #[test]
    fn an_unknown_collector_is_refused() {
        let cols: Scheduled = vec![(Box::new(Fine), Schedule::new(1.0, 0.0, 1.0))];
        let e = apply(cols, &parse("nope").unwrap()).err().unwrap();
        assert!(e.contains("nope"), "{e}");
    }

    #[tokio::test]
    async fn a_wrapped_collector_panics_after_its_ok_runs_and_the_runner_catches_it() {
        let sched = Schedule::new(1.0, 0.0, 1.0);
        let cols: Scheduled = vec![(Box::new(Fine), sched)];
        let mut cols = apply(cols, &parse("fine@2").unwrap()).unwrap();
        let board: Board = Default::default();
        board.lock().unwrap().insert("fine", Slot::new(&sched));
        for _ in 0..5 {
            run_once(cols[0].0.as_mut(), &sched, &board).await;
        }
        let b = board.lock().unwrap();
        let s = &b["fine"];
        assert_eq!((s.runs, s.failures, s.panics), (5, 3, 3));
        assert!(s.latest.is_some(), "the output of the ok runs is kept");
        let e = s.last_error.as_deref().unwrap();
        assert!(
            e.starts_with("Panic: fault injection") && e.ends_with("run 5"),
            "{e}"
        );
        let h = s.health();
        assert!(!h.ok);
        assert_eq!(h.panics, 3);
    }
}
