//! The spool's metric declarations (names, HELP texts), emitted by the
//! scan and publish loop in `spool/mod.rs`.

use lull_common::metric::Metric;
use metrics::Unit;

/// Gauge: report files waiting in the spool.
pub static SPOOL_FILES: Metric = Metric::gauge(
    "lull_agent_spool_files",
    "Report files waiting in the spool directory.",
);
/// Gauge: age of the oldest waiting report file.
pub static SPOOL_OLDEST_AGE: Metric = Metric::gauge(
    "lull_agent_spool_oldest_age_seconds",
    "Age of the oldest report file waiting in the spool directory (0 when empty).",
)
.unit(Unit::Seconds);
/// Counter `{kind}`: reports acknowledged by JetStream and deleted.
pub static SPOOL_PUBLISHED: Metric = Metric::counter(
    "lull_agent_spool_published_total",
    "Reports acknowledged by JetStream and removed from the spool, by kind.",
);
/// Counter: malformed report files moved to `failed/`.
pub static SPOOL_FAILED: Metric = Metric::counter(
    "lull_agent_spool_failed_total",
    "Malformed report files moved to failed/.",
);
/// Counter `{reason}`: report publish attempts that did not get an ack.
pub static SPOOL_PUBLISH_ERRORS: Metric = Metric::counter(
    "lull_agent_spool_publish_errors_total",
    "Report publish attempts without an ack, by reason (no_stream, timeout, error).",
);
/// Counter: reports the stream already held (duplicate acks).
pub static SPOOL_DUPLICATES: Metric = Metric::counter(
    "lull_agent_spool_duplicates_total",
    "Reports the stream already held (acknowledged as duplicates).",
);
/// Every metric of the spool.
pub static METRICS: &[&Metric] = &[
    &SPOOL_FILES,
    &SPOOL_OLDEST_AGE,
    &SPOOL_PUBLISHED,
    &SPOOL_FAILED,
    &SPOOL_PUBLISH_ERRORS,
    &SPOOL_DUPLICATES,
];

/// Exports the spool's figures that matter at zero from the start.
pub fn zero_metrics() {
    for kind in ["worker", "build", "fatigue"] {
        metrics::counter!(SPOOL_PUBLISHED.name, "kind" => kind).increment(0);
    }
    metrics::counter!(SPOOL_FAILED.name).increment(0);
    metrics::gauge!(SPOOL_FILES.name).set(0.0);
    metrics::gauge!(SPOOL_OLDEST_AGE.name).set(0.0);
}
