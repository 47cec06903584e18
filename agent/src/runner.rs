//! The runner: every collector runs in its own task on its own interval,
//! with jitter and a timeout, and writes its latest result into a shared
//! [`Board`]. A slow, hung or failing collector only affects its own slot:
//! the others keep their cadence, and the tick loop assembles the snapshot
//! from whatever is on the board. Missed slots are skipped, not queued.
//! A run that panics is caught (`catch_unwind`, which needs the `unwind`
//! panic strategy of the release profile): it counts as a failed run with
//! result `panic`, and the collector keeps its cadence. A collector that
//! panicked may have left its own state half updated; its next run starts
//! from that state (a mutex poisoned by the panic is taken over).
//! Each run is measured (`lull_agent_collector_duration_seconds`,
//! `lull_agent_collector_runs_total{result}`,
//! `lull_agent_collector_success`).

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use lull_proto::msg::telemetry::CollectorHealth;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use lull_common::metric::Metric;
use metrics::Unit;

use crate::collect::{CollectError, Collected, Collector, Output};
use crate::schedule::Schedule;

/// Histogram `{collector}`: duration of one collector run.
pub static COLLECTOR_DURATION: Metric = Metric::histogram(
    "lull_agent_collector_duration_seconds",
    "Duration of one collector run.",
)
.unit(Unit::Seconds)
.buckets(DURATION_BUCKETS);
/// Counter `{collector,result}`: collector runs (`ok`, `error`, `timeout`,
/// `busy`, `panic`).
pub static COLLECTOR_RUNS: Metric = Metric::counter(
    "lull_agent_collector_runs_total",
    "Collector runs by result: ok, error, timeout, busy (the previous run is still stuck), or panic (the run panicked; the collector runs again at its next slot).",
);
/// Gauge `{collector}`: 1 when the last run succeeded.
pub static COLLECTOR_SUCCESS: Metric = Metric::gauge(
    "lull_agent_collector_success",
    "1 when the collector's last run succeeded, else 0.",
);
/// Every metric of the runner.
pub static METRICS: &[&Metric] = &[&COLLECTOR_DURATION, &COLLECTOR_RUNS, &COLLECTOR_SUCCESS];

/// Buckets of collector, tick and flush durations (seconds): 100 µs to
/// 30 s, wider than the shared latency buckets because collectors time
/// out late.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// The latest state of one collector.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Slot {
    /// Its interval, seconds (for staleness).
    pub interval_sec: f64,
    /// Its timeout, seconds (for staleness).
    pub timeout_sec: f64,
    /// The latest successful output and when it was collected (Unix s).
    pub latest: Option<(f64, Output)>,
    /// Partial problems of that output.
    pub warnings: Vec<String>,
    /// Whether the last run succeeded (`None` before the first run ends).
    pub last_ok: Option<bool>,
    /// The error of the last run, if it failed.
    pub last_error: Option<String>,
    /// Duration of the last run, ms.
    pub last_duration_ms: f64,
    /// Runs so far.
    pub runs: u64,
    /// Failed runs so far (panics included).
    pub failures: u64,
    /// Runs that panicked so far.
    pub panics: u64,
}

impl Slot {
    /// An empty slot for a schedule.
    pub fn new(s: &Schedule) -> Self {
        Slot {
            interval_sec: s.interval_sec,
            timeout_sec: s.timeout_sec,
            ..Default::default()
        }
    }

    /// Folds one run's result into the slot (`now` in Unix seconds).
    pub fn record(&mut self, result: Result<Collected, CollectError>, duration_ms: f64, now: f64) {
        self.runs += 1;
        self.last_duration_ms = duration_ms;
        match result {
            Ok(c) => {
                self.latest = Some((now, c.output));
                self.warnings = c.warnings;
                self.last_ok = Some(true);
                self.last_error = None;
            }
            Err(e) => {
                self.failures += 1;
                if matches!(e, CollectError::Panicked(_)) {
                    self.panics += 1;
                }
                self.last_ok = Some(false);
                self.last_error = Some(e.to_string());
            }
        }
    }

    /// The latest output when it is fresh: younger than
    /// `stale_after_intervals` intervals plus the timeout.
    pub fn fresh(&self, now: f64, stale_after_intervals: f64) -> Option<&Output> {
        let (at, out) = self.latest.as_ref()?;
        let max_age = stale_after_intervals * self.interval_sec + self.timeout_sec;
        (now - at <= max_age).then_some(out)
    }

    /// The slot as `loop.health` shows it.
    pub fn health(&self) -> CollectorHealth {
        CollectorHealth {
            ok: self.last_ok == Some(true),
            duration_ms: self.last_duration_ms,
            last_error: self.last_error.clone(),
            runs: self.runs,
            failures: self.failures,
            panics: self.panics,
        }
    }
}

/// Every collector's slot, by name.
pub type Board = Arc<Mutex<BTreeMap<&'static str, Slot>>>;

/// The next slot on the grid `prev + k * interval` that lies after `now`
/// (missed slots are skipped).
pub fn next_slot(prev: f64, interval: f64, now: f64) -> f64 {
    if interval <= 0.0 {
        return now;
    }
    let next = prev + interval;
    if next > now {
        return next;
    }
    let missed = ((now - prev) / interval).floor();
    prev + (missed + 1.0) * interval
}

/// A tiny splitmix64 generator for jitter (no need for a CSPRNG).
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// Seeded from `seed` (e.g. time and pid).
    pub fn new(seed: u64) -> Self {
        Jitter(seed)
    }

    /// A uniform number in `[0, 1)`.
    pub fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn seed(name: &str) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    t ^ h ^ (std::process::id() as u64).rotate_left(32)
}

/// The message of a panic payload (`panic!` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Runs one collector once under its timeout and records the result. A
/// panic, whether in `collect` itself or while its future is polled, is
/// caught and recorded as [`CollectError::Panicked`].
pub async fn run_once(collector: &mut dyn Collector, schedule: &Schedule, board: &Board) {
    let name = collector.name();
    let started = Instant::now();
    // AssertUnwindSafe: after a panic the only state touched again is the
    // collector's own, which each run rebuilds from what it reads.
    let run = AssertUnwindSafe(async { collector.collect().await }).catch_unwind();
    let result = match tokio::time::timeout(schedule.timeout(), run).await {
        Ok(Ok(r)) => r,
        Ok(Err(payload)) => Err(CollectError::Panicked(panic_message(&*payload))),
        Err(_) => Err(CollectError::Timeout(schedule.timeout_sec)),
    };
    let elapsed = started.elapsed();
    let label = match &result {
        Ok(_) => "ok",
        Err(e) => e.result_label(),
    };
    match &result {
        Err(e @ CollectError::Panicked(_)) => {
            tracing::warn!(collector = name, error = %e, "collector run panicked");
        }
        Err(e) => tracing::debug!(collector = name, error = %e, "collector run failed"),
        Ok(_) => {}
    }
    metrics::histogram!(COLLECTOR_DURATION.name, "collector" => name).record(elapsed.as_secs_f64());
    metrics::counter!(COLLECTOR_RUNS.name, "collector" => name, "result" => label).increment(1);
    metrics::gauge!(COLLECTOR_SUCCESS.name, "collector" => name).set(if result.is_ok() {
        1.0
    } else {
        0.0
    });
    let now = lull_common::runtime::now_unix();
    let mut b = board.lock().unwrap_or_else(|e| e.into_inner());
    b.entry(name).or_insert_with(|| Slot::new(schedule)).record(
        result,
        elapsed.as_secs_f64() * 1000.0,
        now,
    );
}

/// The running collector tasks.
pub struct Runner {
    board: Board,
    handles: Vec<JoinHandle<()>>,
}

impl Runner {
    /// Starts one task per collector. Each runs first at a random point in
    /// its jitter window, then on the grid of its interval (plus jitter),
    /// until `stop` turns true.
    pub fn start(
        collectors: Vec<(Box<dyn Collector>, Schedule)>,
        stop: watch::Receiver<bool>,
    ) -> Runner {
        let board: Board = Arc::new(Mutex::new(BTreeMap::new()));
        let mut handles = Vec::new();
        for (mut c, sched) in collectors {
            board
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(c.name(), Slot::new(&sched));
            let board = Arc::clone(&board);
            let mut stop = stop.clone();
            handles.push(tokio::spawn(async move {
                let mut jitter = Jitter::new(seed(c.name()));
                let origin = Instant::now();
                let mut slot = 0.0f64;
                loop {
                    let fire = slot + sched.jitter_sec * jitter.next_unit();
                    let at = origin + Duration::from_secs_f64(fire.max(0.0));
                    tokio::select! {
                        _ = tokio::time::sleep_until(at.into()) => {}
                        _ = stop.wait_for(|s| *s) => break,
                    }
                    tokio::select! {
                        _ = run_once(c.as_mut(), &sched, &board) => {}
                        _ = stop.wait_for(|s| *s) => break,
                    }
                    let now = origin.elapsed().as_secs_f64();
                    slot = next_slot(slot, sched.interval_sec, now);
                }
            }));
        }
        Runner { board, handles }
    }

    /// The shared board.
    pub fn board(&self) -> Board {
        Arc::clone(&self.board)
    }

    /// Stops every collector task (a stuck blocking probe is left behind).
    pub fn abort(&self) {
        for h in &self.handles {
            h.abort();
        }
    }
}

/// The collectors' state for `loop.health`.
pub fn collectors_health(
    board: &BTreeMap<&'static str, Slot>,
) -> BTreeMap<String, CollectorHealth> {
    board
        .iter()
        .map(|(k, s)| (k.to_string(), s.health()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::{CollectFuture, Nothing};

    #[test]
    fn slots_skip_missed_runs() {
        assert_eq!(next_slot(0.0, 2.0, 0.5), 2.0);
        assert_eq!(next_slot(2.0, 2.0, 2.1), 4.0);
        // a run that took 7 s skips the missed slots
        assert_eq!(next_slot(2.0, 2.0, 9.0), 10.0);
        assert_eq!(next_slot(2.0, 2.0, 10.0), 12.0);
    }

    #[test]
    fn jitter_is_uniformish() {
        let mut j = Jitter::new(42);
        let v: Vec<f64> = (0..1000).map(|_| j.next_unit()).collect();
        assert!(v.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
    }

    #[test]
    fn slot_records_and_ages() {
        let mut s = Slot::new(&Schedule {
            enabled: true,
            interval_sec: 2.0,
            jitter_sec: 0.0,
            timeout_sec: 1.0,
        });
        s.record(Ok(Collected::ok(Output::new(Nothing))), 3.0, 100.0);
        assert!(s.fresh(106.9, 3.0).is_some());
        assert!(s.fresh(107.1, 3.0).is_none());
        s.record(Err(CollectError::Timeout(1.0)), 1000.0, 102.0);
        assert_eq!(s.last_ok, Some(false));
        assert!(s.fresh(103.0, 3.0).is_some(), "the previous output is kept");
        let h = s.health();
        assert!(!h.ok);
        assert!(h.last_error.unwrap().starts_with("Timeout"));
        assert_eq!((s.runs, s.failures), (2, 1));
    }

    struct Counting(&'static str, bool);
    impl Collector for Counting {
        fn name(&self) -> &'static str {
            self.0
        }
        fn collect(&mut self) -> CollectFuture<'_> {
            let hang = self.1;
            Box::pin(async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                Ok(Collected::ok(Output::new(Nothing)))
            })
        }
    }

    struct Panicky;
    impl Collector for Panicky {
        fn name(&self) -> &'static str {
            "panicky"
        }
        fn collect(&mut self) -> CollectFuture<'_> {
            Box::pin(async { panic!("boom") })
        }
    }

    #[tokio::test]
    async fn a_panicking_collector_keeps_its_cadence_and_the_others_theirs() {
        let every = Schedule {
            enabled: true,
            interval_sec: 0.05,
            jitter_sec: 0.0,
            timeout_sec: 0.04,
        };
        let (tx, rx) = watch::channel(false);
        let r = Runner::start(
            vec![
                (Box::new(Counting("fast", false)), every),
                (Box::new(Panicky), every),
            ],
            rx,
        );
        tokio::time::sleep(Duration::from_millis(1000)).await;
        tx.send(true).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let b = r.board();
        let b = b.lock().unwrap();
        let (f, p) = (&b["fast"], &b["panicky"]);
        assert!(f.runs >= 15, "fast ran only {} times", f.runs);
        assert_eq!(f.failures, 0);
        assert!(p.runs >= 15, "the panicking one ran only {} times", p.runs);
        assert_eq!((p.failures, p.panics), (p.runs, p.runs));
        assert_eq!(p.last_error.as_deref(), Some("Panic: boom"));
        assert_eq!(p.health().panics, p.runs);
        assert_eq!(CollectError::Panicked("x".into()).result_label(), "panic");
        r.abort();
    }

    #[tokio::test]
    async fn a_hung_collector_times_out_while_others_keep_their_cadence() {
        let fast = Schedule {
            enabled: true,
            interval_sec: 0.05,
            jitter_sec: 0.0,
            timeout_sec: 0.04,
        };
        let hung = Schedule {
            enabled: true,
            interval_sec: 0.05,
            jitter_sec: 0.0,
            timeout_sec: 0.3,
        };
        let (tx, rx) = watch::channel(false);
        let r = Runner::start(
            vec![
                (Box::new(Counting("fast", false)), fast),
                (Box::new(Counting("hung", true)), hung),
            ],
            rx,
        );
        tokio::time::sleep(Duration::from_millis(1000)).await;
        tx.send(true).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let b = r.board();
        let b = b.lock().unwrap();
        let f = &b["fast"];
        let h = &b["hung"];
        assert!(f.runs >= 15, "fast ran only {} times", f.runs);
        assert_eq!(f.failures, 0);
        assert!(h.runs >= 2 && h.runs <= 4, "hung ran {} times", h.runs);
        assert_eq!(h.failures, h.runs);
        assert!(h.last_error.as_deref().unwrap().starts_with("Timeout"));
        r.abort();
    }
}
