//! Worker execution metrics: runs stored, their durations and anomalies,
//! and each worker's latest score and schedule state.

use lull_common::metric::Metric;
use metrics::Unit;

/// Buckets of [`DURATION`]: from the 10-second guardian's tens of
/// milliseconds up to runs of several hours.
const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
    3600.0, 7200.0, 14400.0,
];

/// Counter `{worker,outcome}`: executions stored.
pub(crate) static EXECUTIONS: Metric = Metric::counter(
    "lull_worker_executions_total",
    "Worker executions stored (each execution_id once), by worker and outcome; restored from the database at start.",
);
/// Counter: reports of an execution already stored.
pub(crate) static DUPLICATE_REPORTS: Metric = Metric::counter(
    "lull_worker_duplicate_reports_total",
    "Worker reports whose execution_id was already stored (redeliveries and resends), not counted again.",
);
/// Gauge `{worker}`: overall score of the latest run.
pub(crate) static LAST_OVERALL_SCORE: Metric = Metric::gauge(
    "lull_worker_last_overall_score",
    "Overall score (0..100) of each worker's latest run.",
);
/// Gauge `{worker}`: completion time of the latest SUCCESS run.
pub(crate) static LAST_SUCCESS: Metric = Metric::gauge(
    "lull_worker_last_success_timestamp_seconds",
    "Unix time at which each worker's latest SUCCESS run completed.",
)
.unit(Unit::Seconds);
/// Histogram `{worker}`: reported run durations.
pub(crate) static DURATION: Metric = Metric::histogram(
    "lull_worker_duration_seconds",
    "Duration of worker runs as reported (duration_ms), by worker.",
)
.unit(Unit::Seconds)
.buckets(DURATION_BUCKETS);
/// Counter `{worker,kind}`: anomalies detected.
pub(crate) static ANOMALIES: Metric = Metric::counter(
    "lull_worker_anomalies_total",
    "Anomalies detected in worker runs, by worker and kind (DURATION_SPIKE, QUALITY_DROP, RESOURCE_THRESHOLD, RESOURCE_SPIKE, CUSTOM_THRESHOLD).",
);
/// Counter `{worker,rule}`: custom-metric threshold breaches.
pub(crate) static THRESHOLD_BREACHES: Metric = Metric::counter(
    "lull_worker_threshold_breaches_total",
    "Runs whose custom metric breached a threshold rule ([[workers.anomaly.custom_thresholds]]), by worker and rule; restored from the database at start.",
);
/// Gauge `{worker,rule,severity}`: whether the latest run breaches a rule.
pub(crate) static THRESHOLD_BREACHED: Metric = Metric::gauge(
    "lull_worker_threshold_breached",
    "1 when the worker's latest run breaches the threshold rule, 0 when it reported the rule's metric within the threshold (or no longer reports it).",
);
/// Gauge `{worker,metric}`: latest value of a metric that a rule watches.
pub(crate) static CUSTOM_METRIC: Metric = Metric::gauge(
    "lull_worker_custom_metric",
    "Value of a custom metric watched by a threshold rule, as reported by the worker's latest run that had it.",
);
/// Gauge `{worker,state}`: 1 for the worker's current schedule state.
pub(crate) static SCHEDULE_STATE: Metric = Metric::gauge(
    "lull_worker_schedule_state",
    "Schedule state of each worker (OK, LATE, MISSED, UNKNOWN): 1 for the current state, 0 for the others.",
);
/// Gauge `{worker}`: expected runs missed since the latest run.
pub(crate) static MISSED_RUNS: Metric = Metric::gauge(
    "lull_worker_missed_runs",
    "Expected runs of each worker that did not happen since its latest run (0 unless LATE or MISSED).",
);
/// Gauge: workers that have reported.
pub(crate) static WORKERS: Metric =
    Metric::gauge("lull_workers", "Number of workers that have reported.");
/// Counter: reports of new workers refused at the cap.
pub(crate) static WORKERS_REJECTED: Metric = Metric::counter(
    "lull_workers_rejected_total",
    "Worker reports refused because they would add a worker past ingest.max_workers (terminated, not stored).",
);

/// Every metric of worker executions.
pub(crate) static METRICS: &[&Metric] = &[
    &WORKERS_REJECTED,
    &EXECUTIONS,
    &DUPLICATE_REPORTS,
    &LAST_OVERALL_SCORE,
    &LAST_SUCCESS,
    &DURATION,
    &ANOMALIES,
    &THRESHOLD_BREACHES,
    &THRESHOLD_BREACHED,
    &CUSTOM_METRIC,
    &SCHEDULE_STATE,
    &MISSED_RUNS,
    &WORKERS,
];
