//! Ingest metrics: stats snapshots and agent telemetry as they arrive, and
//! the durable reports consumed from JetStream.

use lull_common::metric::Metric;
use metrics::Unit;

/// Counter `{result}`: stats snapshots received.
pub(crate) static STATS_MESSAGES: Metric = Metric::counter(
    "lull_stats_messages_total",
    "Stats snapshots received, by result (accepted, out_of_order, dropped, bad_json, invalid, host_mismatch, too_large, bad_subject, host_limit).",
);
/// Histogram: collection-to-arrival delay of snapshots.
pub(crate) static STATS_INGEST_LAG: Metric = Metric::histogram(
    "lull_stats_ingest_lag_seconds",
    "Delay between a snapshot's collection on the host and its arrival at the coordinator.",
)
.unit(Unit::Seconds)
.buckets(&[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
]);
/// Counter `{kind,result}`: agent loop telemetry messages.
pub(crate) static AGENT_MESSAGES: Metric = Metric::counter(
    "lull_fleet_agent_messages_total",
    "Agent loop telemetry messages received, by kind (health, failure) and result.",
);
/// Counter `{kind,result}`: durable reports consumed.
pub(crate) static REPORTS: Metric = Metric::counter(
    "lull_reports_total",
    "Durable reports consumed, by kind (build, fatigue, worker, unknown) and result (accepted (identical duplicates included), conflict (a stored id with other content: dropped), invalid (timestamps outside the ingest window included), host_mismatch (a worker report whose host_id is not the publishing host named by the subject), region_limit and worker_limit (would add a region or worker past region_service.max_regions or ingest.max_workers: terminated, not stored), retried).",
);
/// Histogram: publication-to-consumption delay of reports.
pub(crate) static REPORTS_INGEST_LAG: Metric = Metric::histogram(
    "lull_reports_ingest_lag_seconds",
    "Delay between a report's publication to the stream and its consumption by the coordinator.",
)
.unit(Unit::Seconds);

/// Every metric of ingest.
pub(crate) static METRICS: &[&Metric] = &[
    &STATS_MESSAGES,
    &STATS_INGEST_LAG,
    &AGENT_MESSAGES,
    &REPORTS,
    &REPORTS_INGEST_LAG,
];
