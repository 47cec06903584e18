//! `WorkerAggregate`: the per-worker incremental statistics (totals, outcome
//! counts, rolling window of recent runs, performance by hour of day and day
//! of week, recent clock-hour buckets, recent anomalies).
//!
//! Every part is independent of the order in which runs are applied: sums are
//! kept as integers (microseconds, tenths of a point), windows are kept sorted
//! by start time and trimmed to the newest entries. So an aggregate updated
//! run by run is exactly equal to one rebuilt from the stored executions
//! ([`WorkerAggregate::rebuild`]), whatever the arrival order.

use std::collections::BTreeMap;

use lull_proto::msg::worker::{
    Anomaly, AnomalyKind, ExecutionOutcome, OutcomeCounts, QualityLevel, ScoredExecution,
};
use serde::{Deserialize, Serialize};

use super::calendar::{day_index, day_of_week, hour_index, hour_of_day};
use super::config::WorkerConfig;

/// UTC days whose run counts are kept (for `execution_number_today`).
pub const DAYS_KEPT: i64 = 8;

/// Clock-hour buckets kept: a week, enough for any `window_hours`.
pub const HOURS_KEPT: i64 = 24 * 7;

/// One recent run, as much as the learning and anomaly logic needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSample {
    /// Execution id.
    pub execution_id: String,
    /// Unix seconds.
    pub started_at: f64,
    /// Unix seconds.
    pub completed_at: f64,
    /// Outcome.
    pub outcome: ExecutionOutcome,
    /// Duration, ms.
    pub duration_ms: f64,
    /// Records processed (or fetched).
    #[serde(default)]
    pub records: Option<u64>,
    /// Overall score.
    pub overall_score: f64,
    /// Data-quality score, when scored.
    #[serde(default)]
    pub data_quality_score: Option<f64>,
    /// Peak memory, MB.
    #[serde(default)]
    pub memory_peak_mb: Option<f64>,
    /// Average CPU, percent.
    #[serde(default)]
    pub cpu_percent_avg: Option<f64>,
    /// Database queries.
    #[serde(default)]
    pub database_query_count: Option<u64>,
    /// Hit a rate limit.
    #[serde(default)]
    pub rate_limited: bool,
}

impl RunSample {
    /// The sample of a scored execution.
    pub fn of(e: &ScoredExecution) -> RunSample {
        let r = &e.report;
        RunSample {
            execution_id: r.execution_id.clone(),
            started_at: r.started_at,
            completed_at: r.completed_at,
            outcome: r.outcome,
            duration_ms: r.duration_ms,
            records: r.data_verification.volume(),
            overall_score: e.scores.overall_score,
            data_quality_score: e.scores.data_quality_score,
            memory_peak_mb: r.resource_metrics.memory_peak_mb,
            cpu_percent_avg: r.resource_metrics.cpu_percent_avg,
            database_query_count: r
                .resource_metrics
                .database_query_count
                .map(|n| n.max(0) as u64),
            rate_limited: r.data_verification.rate_limited(),
        }
    }

    fn key(&self) -> (f64, &str) {
        (self.started_at, &self.execution_id)
    }
}

fn cmp_key(a: (f64, &str), b: (f64, &str)) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1))
}

/// Runs of one hour of the day or one day of the week.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotStats {
    /// Runs.
    pub executions: u64,
    /// `SUCCESS` runs.
    pub successes: u64,
    /// Runs other than `SKIPPED` (their durations are summed).
    pub timed_runs: u64,
    /// Sum of durations of the timed runs, microseconds.
    pub sum_duration_us: u64,
    /// Sum of overall scores, tenths of a point.
    pub sum_score_tenths: u64,
}

impl SlotStats {
    fn add(&mut self, outcome: ExecutionOutcome, duration_us: u64, score_tenths: u64) {
        self.executions += 1;
        if outcome == ExecutionOutcome::Success {
            self.successes += 1;
        }
        if outcome != ExecutionOutcome::Skipped {
            self.timed_runs += 1;
            self.sum_duration_us = self.sum_duration_us.saturating_add(duration_us);
        }
        self.sum_score_tenths = self.sum_score_tenths.saturating_add(score_tenths);
    }

    /// `SUCCESS` share, 0..1 (0 without runs).
    pub fn success_rate(&self) -> f64 {
        ratio(self.successes, self.executions).unwrap_or(0.0)
    }

    /// Mean duration of the timed runs, ms.
    pub fn avg_duration_ms(&self) -> Option<f64> {
        ratio(self.sum_duration_us, self.timed_runs).map(|us| us / 1000.0)
    }

    /// Mean overall score (`None` without runs).
    pub fn avg_score(&self) -> Option<f64> {
        ratio(self.sum_score_tenths, self.executions).map(|t| t / 10.0)
    }
}

/// Runs started in one clock hour (absolute hour since the epoch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourBucket {
    /// `floor(started_at / 3600)`.
    pub hour: i64,
    /// Runs.
    pub executions: u64,
    /// Sum of overall scores, tenths of a point.
    pub sum_score_tenths: u64,
    /// Records processed.
    pub records: u64,
    /// Failed validations.
    pub validation_failures: u64,
    /// Runs that hit a rate limit.
    pub rate_limited: u64,
    /// Custom-metric threshold breaches.
    #[serde(default)]
    pub threshold_breaches: u64,
}

/// The latest run (greatest `started_at`, then `execution_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatestRun {
    /// Execution id.
    pub execution_id: String,
    /// Unix seconds.
    pub started_at: f64,
    /// Outcome.
    pub outcome: ExecutionOutcome,
    /// Overall score.
    pub overall_score: f64,
    /// Level.
    pub quality_level: QualityLevel,
    /// Host it ran on.
    #[serde(default)]
    pub host_id: Option<String>,
    /// Its custom-metric threshold breaches (`CUSTOM_THRESHOLD` anomalies).
    #[serde(default)]
    pub breaches: Vec<Anomaly>,
}

/// Everything the coordinator keeps per worker between runs. Serialisable,
/// so the store can keep it as one JSON document per worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerAggregate {
    /// The worker.
    pub worker_name: String,
    /// Runs per outcome.
    pub outcomes: OutcomeCounts,
    /// Runs other than `SKIPPED`.
    pub timed_runs: u64,
    /// Sum of their durations, microseconds.
    pub sum_duration_us: u64,
    /// Runs that reported a volume.
    pub volume_runs: u64,
    /// Sum of records processed (or fetched).
    pub total_records: u64,
    /// Sum of records failed.
    pub total_records_failed: u64,
    /// Sum of failed validations.
    pub validation_failures: u64,
    /// Runs that hit a rate limit.
    pub rate_limit_incidents: u64,
    /// Sum of overall scores, tenths of a point.
    pub sum_score_tenths: u64,
    /// Unix seconds: earliest start.
    pub first_run_at: Option<f64>,
    /// Unix seconds: latest start.
    pub last_run_at: Option<f64>,
    /// Unix seconds: latest end of a `SUCCESS` run.
    pub last_success_at: Option<f64>,
    /// The latest run.
    pub latest: Option<LatestRun>,
    /// Runs by UTC hour of day.
    pub by_hour: [SlotStats; 24],
    /// Runs by UTC day of week (0 = Monday).
    pub by_day: [SlotStats; 7],
    /// The newest `history_window` runs, oldest first.
    pub recent: Vec<RunSample>,
    /// Runs per UTC day index (`floor(started_at / 86400)`), last [`DAYS_KEPT`] days.
    pub day_counts: BTreeMap<i64, u32>,
    /// Clock-hour buckets of the last [`HOURS_KEPT`] hours, oldest first.
    pub hours: Vec<HourBucket>,
    /// Newest anomalies, oldest first.
    pub recent_anomalies: Vec<Anomaly>,
    /// Custom-metric threshold breaches by rule name, all time.
    #[serde(default)]
    pub threshold_breaches: BTreeMap<String, u64>,
}

/// Integer microseconds of a duration in ms (the unit of exact sums).
pub fn duration_us(duration_ms: f64) -> u64 {
    (duration_ms.max(0.0) * 1000.0).round() as u64
}

/// Integer tenths of a score (the unit of exact sums).
pub fn score_tenths(score: f64) -> u64 {
    (score.max(0.0) * 10.0).round() as u64
}

/// `num / den` as a float, `None` when `den` is 0.
pub fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// Mean of a list, `None` when empty.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

impl WorkerAggregate {
    /// An empty aggregate for `worker_name`.
    pub fn new(worker_name: &str) -> WorkerAggregate {
        WorkerAggregate {
            worker_name: worker_name.to_string(),
            outcomes: OutcomeCounts::default(),
            timed_runs: 0,
            sum_duration_us: 0,
            volume_runs: 0,
            total_records: 0,
            total_records_failed: 0,
            validation_failures: 0,
            rate_limit_incidents: 0,
            sum_score_tenths: 0,
            first_run_at: None,
            last_run_at: None,
            last_success_at: None,
            latest: None,
            by_hour: [SlotStats::default(); 24],
            by_day: [SlotStats::default(); 7],
            recent: Vec::new(),
            day_counts: BTreeMap::new(),
            hours: Vec::new(),
            recent_anomalies: Vec::new(),
            threshold_breaches: BTreeMap::new(),
        }
    }

    /// Custom-metric threshold breaches, all rules, all time.
    pub fn total_threshold_breaches(&self) -> u64 {
        self.threshold_breaches
            .values()
            .fold(0u64, |a, &b| a.saturating_add(b))
    }

    /// Rebuilds an aggregate from stored executions, in any order; equal to
    /// applying them one by one as they arrived.
    pub fn rebuild<'a>(
        worker_name: &str,
        executions: impl IntoIterator<Item = &'a ScoredExecution>,
        cfg: &WorkerConfig,
    ) -> WorkerAggregate {
        let mut agg = WorkerAggregate::new(worker_name);
        for e in executions {
            agg.apply(e, cfg);
        }
        agg
    }

    /// All runs recorded.
    pub fn total_executions(&self) -> u64 {
        self.outcomes.total()
    }

    /// Whether a run with this id is in the recent window (a duplicate).
    pub fn contains(&self, execution_id: &str) -> bool {
        self.recent.iter().any(|s| s.execution_id == execution_id)
    }

    /// Recent runs that started strictly before `started_at`, oldest first:
    /// the baseline of a run being scored (never includes the run itself).
    pub fn prior(&self, started_at: f64) -> &[RunSample] {
        let n = self.recent.partition_point(|s| s.started_at < started_at);
        &self.recent[..n]
    }

    /// Runs recorded on the UTC day `day` (a day index).
    pub fn runs_on_day(&self, day: i64) -> u32 {
        self.day_counts.get(&day).copied().unwrap_or(0)
    }

    /// Adds one scored run. Returns `false` (and changes nothing) when a run
    /// with the same `execution_id` is in the recent window; the store's
    /// upsert by id is the real guard against counting a run twice.
    pub fn apply(&mut self, e: &ScoredExecution, cfg: &WorkerConfig) -> bool {
        let r = &e.report;
        if self.contains(&r.execution_id) {
            return false;
        }
        let dur_us = duration_us(r.duration_ms);
        let tenths = score_tenths(e.scores.overall_score);
        let dv = &r.data_verification;

        self.outcomes.add(r.outcome);
        if r.outcome != ExecutionOutcome::Skipped {
            self.timed_runs += 1;
            self.sum_duration_us = self.sum_duration_us.saturating_add(dur_us);
        }
        let volume = dv.volume();
        if let Some(v) = volume {
            self.volume_runs += 1;
            self.total_records = self.total_records.saturating_add(v);
        }
        if let Some(f) = dv.records_failed {
            self.total_records_failed = self.total_records_failed.saturating_add(f.max(0) as u64);
        }
        let vfail = dv.validation_failures();
        self.validation_failures = self.validation_failures.saturating_add(vfail);
        let limited = dv.rate_limited();
        if limited {
            self.rate_limit_incidents += 1;
        }
        self.sum_score_tenths = self.sum_score_tenths.saturating_add(tenths);

        self.first_run_at = Some(
            self.first_run_at
                .map_or(r.started_at, |t| t.min(r.started_at)),
        );
        self.last_run_at = Some(
            self.last_run_at
                .map_or(r.started_at, |t| t.max(r.started_at)),
        );
        if r.outcome == ExecutionOutcome::Success {
            self.last_success_at = Some(
                self.last_success_at
                    .map_or(r.completed_at, |t| t.max(r.completed_at)),
            );
        }
        let custom: Vec<&Anomaly> = e
            .anomalies
            .iter()
            .filter(|a| a.kind == AnomalyKind::CustomThreshold)
            .collect();
        for a in &custom {
            let rule = a.rule.clone().unwrap_or_else(|| a.metric.clone());
            let n = self.threshold_breaches.entry(rule).or_insert(0);
            *n = n.saturating_add(1);
        }
        let newer = self.latest.as_ref().is_none_or(|l| {
            cmp_key(
                (r.started_at, &r.execution_id),
                (l.started_at, &l.execution_id),
            )
            .is_gt()
        });
        if newer {
            self.latest = Some(LatestRun {
                execution_id: r.execution_id.clone(),
                started_at: r.started_at,
                outcome: r.outcome,
                overall_score: e.scores.overall_score,
                quality_level: e.scores.quality_level,
                host_id: r.host_id.clone(),
                breaches: custom.iter().map(|a| (*a).clone()).collect(),
            });
        }

        self.by_hour[usize::from(hour_of_day(r.started_at))].add(r.outcome, dur_us, tenths);
        self.by_day[usize::from(day_of_week(r.started_at))].add(r.outcome, dur_us, tenths);

        // Recent window: sorted by (started_at, id), newest N kept.
        let sample = RunSample::of(e);
        let pos = self
            .recent
            .partition_point(|s| cmp_key(s.key(), sample.key()).is_lt());
        self.recent.insert(pos, sample);
        let keep = cfg.learning.history_window.max(1);
        if self.recent.len() > keep {
            let excess = self.recent.len() - keep;
            self.recent.drain(..excess);
        }

        // Day counts, relative to the newest day seen.
        let day = day_index(r.started_at);
        *self.day_counts.entry(day).or_insert(0) += 1;
        if let Some(&max_day) = self.day_counts.keys().next_back() {
            self.day_counts.retain(|&d, _| d > max_day - DAYS_KEPT);
        }

        // Clock-hour buckets, relative to the newest hour seen.
        let hour = hour_index(r.started_at);
        let pos = self.hours.partition_point(|b| b.hour < hour);
        if self.hours.get(pos).is_none_or(|b| b.hour != hour) {
            self.hours.insert(
                pos,
                HourBucket {
                    hour,
                    ..Default::default()
                },
            );
        }
        if let Some(b) = self.hours.get_mut(pos) {
            b.executions += 1;
            b.sum_score_tenths = b.sum_score_tenths.saturating_add(tenths);
            b.records = b.records.saturating_add(volume.unwrap_or(0));
            b.validation_failures = b.validation_failures.saturating_add(vfail);
            if limited {
                b.rate_limited += 1;
            }
            b.threshold_breaches = b.threshold_breaches.saturating_add(custom.len() as u64);
        }
        if let Some(max_hour) = self.hours.last().map(|b| b.hour) {
            self.hours.retain(|b| b.hour > max_hour - HOURS_KEPT);
        }

        // Anomalies: sorted, newest N kept.
        for a in &e.anomalies {
            let key = |x: &Anomaly| {
                (
                    x.detected_at,
                    x.execution_id.clone(),
                    x.kind,
                    x.metric.clone(),
                )
            };
            let k = key(a);
            let pos = self.recent_anomalies.partition_point(|x| {
                let kx = key(x);
                kx.0.total_cmp(&k.0)
                    .then_with(|| (&kx.1, kx.2, &kx.3).cmp(&(&k.1, k.2, &k.3)))
                    .is_lt()
            });
            self.recent_anomalies.insert(pos, a.clone());
        }
        let keep = cfg.learning.recent_anomalies_kept;
        if self.recent_anomalies.len() > keep {
            let excess = self.recent_anomalies.len() - keep;
            self.recent_anomalies.drain(..excess);
        }
        true
    }

    /// Mean duration of all timed runs, ms.
    pub fn avg_duration_ms(&self) -> Option<f64> {
        ratio(self.sum_duration_us, self.timed_runs).map(|us| us / 1000.0)
    }

    /// Mean overall score of all runs.
    pub fn avg_score(&self) -> Option<f64> {
        ratio(self.sum_score_tenths, self.total_executions()).map(|t| t / 10.0)
    }

    /// Mean records of the runs that reported a volume.
    pub fn avg_records(&self) -> Option<f64> {
        ratio(self.total_records, self.volume_runs)
    }

    /// Clock-hour buckets of the window ending in the hour of `now`: the
    /// current hour and the `window_hours - 1` before it.
    pub fn window(&self, now: f64, window_hours: u32) -> impl Iterator<Item = &HourBucket> {
        let now_hour = hour_index(now);
        let from = now_hour - i64::from(window_hours);
        self.hours
            .iter()
            .filter(move |b| b.hour > from && b.hour <= now_hour)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::ingest;
    use lull_proto::msg::worker::{example_report, WorkerExecutionReport};

    /// A mixed history of 80 runs over several days, hours and outcomes.
    fn history() -> Vec<WorkerExecutionReport> {
        let t0 = 1_763_020_800.0; // a Thursday 08:00 UTC
        (0..80)
            .map(|i| {
                let mut r = example_report(
                    &format!("run-{i:03}"),
                    "intel_aggregation_hourly",
                    t0 + f64::from(i) * 3600.0 + f64::from(i % 7) * 13.0,
                    1000.0 + f64::from((i * 37) % 11) * 50.0 + if i == 50 { 9000.0 } else { 0.0 },
                );
                r.outcome = ExecutionOutcome::ALL[(i as usize * 3) % 5];
                r.data_verification.records_processed = Some(i64::from(100 + i));
                r.data_verification.records_failed = Some(i64::from(i % 3));
                r.data_verification.validation_checks_passed = Some(10);
                r.data_verification.validation_checks_failed = Some(i64::from(i % 2));
                r.data_verification.api_rate_limited = Some(i % 9 == 0);
                r.resource_metrics.memory_peak_mb = Some(100.0 + f64::from(i % 5));
                r
            })
            .collect()
    }

    #[test]
    fn incremental_equals_rebuild_in_any_order() {
        let cfg = WorkerConfig::default();
        let mut agg = WorkerAggregate::new("intel_aggregation_hourly");
        let mut stored = Vec::new();
        for r in history() {
            // The store keeps the aggregate as JSON between runs.
            let json = serde_json::to_string(&agg).unwrap();
            agg = serde_json::from_str(&json).unwrap();
            let e = ingest(&mut agg, r, &cfg).unwrap().unwrap();
            stored.push(e);
        }
        assert_eq!(agg.total_executions(), 80);
        let rebuilt = WorkerAggregate::rebuild("intel_aggregation_hourly", &stored, &cfg);
        assert_eq!(rebuilt, agg);
        // Reversed and interleaved orders give the same aggregate.
        let reversed =
            WorkerAggregate::rebuild("intel_aggregation_hourly", stored.iter().rev(), &cfg);
        assert_eq!(reversed, agg);
        let order: Vec<usize> = (0..stored.len()).map(|i| (i * 37) % stored.len()).collect();
        let mut check = order.clone();
        check.sort_unstable();
        check.dedup();
        assert_eq!(check.len(), stored.len());
        let shuffled: Vec<&ScoredExecution> = order.iter().map(|&i| &stored[i]).collect();
        let mixed = WorkerAggregate::rebuild("intel_aggregation_hourly", shuffled, &cfg);
        assert_eq!(mixed, agg);
        assert!(!agg.recent_anomalies.is_empty(), "run-050 is a spike");
    }

    #[test]
    fn totals_and_windows() {
        let cfg = WorkerConfig::default();
        let mut agg = WorkerAggregate::new("intel_aggregation_hourly");
        for r in history() {
            ingest(&mut agg, r, &cfg).unwrap();
        }
        let h = history();
        let expected_records: u64 = (0..80u64).map(|i| 100 + i).sum();
        assert_eq!(agg.total_records, expected_records);
        assert_eq!(agg.volume_runs, 80);
        assert_eq!(
            agg.total_records_failed,
            (0..80u64).map(|i| i % 3).sum::<u64>()
        );
        assert_eq!(agg.validation_failures, 40);
        assert_eq!(
            agg.rate_limit_incidents,
            (0..80).filter(|i| i % 9 == 0).count() as u64
        );
        assert_eq!(agg.outcomes.total(), 80);
        assert_eq!(agg.outcomes.success, 16);
        assert_eq!(agg.recent.len(), cfg.learning.history_window);
        assert_eq!(agg.recent.last().unwrap().execution_id, "run-079");
        assert_eq!(agg.first_run_at, Some(h[0].started_at));
        assert_eq!(agg.last_run_at, Some(h[79].started_at));
        assert_eq!(agg.latest.as_ref().unwrap().execution_id, "run-079");
        assert!(agg.day_counts.len() as i64 <= DAYS_KEPT);
        assert_eq!(agg.by_hour.iter().map(|s| s.executions).sum::<u64>(), 80);
        assert_eq!(agg.by_day.iter().map(|s| s.executions).sum::<u64>(), 80);
        assert_eq!(agg.hours.len(), 80);
        // Window of 24 clock hours ending at the last run's hour.
        let now = h[79].started_at + 10.0;
        assert_eq!(agg.window(now, 24).map(|b| b.executions).sum::<u64>(), 24);
        // Timed runs exclude SKIPPED.
        assert_eq!(agg.timed_runs, 80 - agg.outcomes.skipped);
    }

    #[test]
    fn duplicates_in_the_window_are_not_counted() {
        let cfg = WorkerConfig::default();
        let mut agg = WorkerAggregate::new("w");
        let r = example_report("e1", "w", 1000.0, 10.0);
        assert!(ingest(&mut agg, r.clone(), &cfg).unwrap().is_some());
        assert!(ingest(&mut agg, r, &cfg).unwrap().is_none());
        assert_eq!(agg.total_executions(), 1);
    }

    #[test]
    fn prior_excludes_the_run_itself_and_later_runs() {
        let cfg = WorkerConfig::default();
        let mut agg = WorkerAggregate::new("w");
        for (i, t) in [100.0, 200.0, 300.0].iter().enumerate() {
            ingest(
                &mut agg,
                example_report(&format!("e{i}"), "w", *t, 10.0),
                &cfg,
            )
            .unwrap();
        }
        assert_eq!(agg.prior(200.0).len(), 1);
        assert_eq!(agg.prior(250.0).len(), 2);
        assert_eq!(agg.prior(1e9).len(), 3);
    }
}
