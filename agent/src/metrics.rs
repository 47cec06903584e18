//! The agent's own Prometheus metrics: names (base units, `_total`
//! counters) and their HELP texts. [`describe`] registers every
//! description once the exporter is installed.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Histogram `{collector}`: duration of one collector run.
pub const COLLECTOR_DURATION: &str = "lull_agent_collector_duration_seconds";
/// Counter `{collector,result}`: collector runs (`ok`, `error`, `timeout`, `busy`).
pub const COLLECTOR_RUNS: &str = "lull_agent_collector_runs_total";
/// Gauge `{collector}`: 1 when the last run succeeded.
pub const COLLECTOR_SUCCESS: &str = "lull_agent_collector_success";
/// Counter `{result}`: ticks (`ok`, `failed`).
pub const TICKS: &str = "lull_agent_ticks_total";
/// Histogram: time to assemble and enqueue one tick.
pub const TICK_DURATION: &str = "lull_agent_tick_duration_seconds";
/// Gauge: sequence number of the last snapshot.
pub const SNAPSHOT_SEQ: &str = "lull_agent_snapshot_seq";
/// Gauge: messages waiting in the outbox.
pub const OUTBOX_QUEUE_LENGTH: &str = "lull_agent_outbox_queue_length";
/// Gauge: bytes waiting in the outbox.
pub const OUTBOX_QUEUE_BYTES: &str = "lull_agent_outbox_queue_bytes";
/// Counter `{kind}`: messages dropped because the outbox was full.
pub const OUTBOX_DROPPED: &str = "lull_agent_outbox_dropped_total";
/// Counter `{kind}`: messages published.
pub const PUBLISHED: &str = "lull_agent_published_total";
/// Counter: payload bytes published.
pub const PUBLISHED_BYTES: &str = "lull_agent_published_bytes_total";
/// Counter: publish or flush errors.
pub const PUBLISH_ERRORS: &str = "lull_agent_publish_errors_total";
/// Histogram: duration of one outbox flush.
pub const FLUSH_DURATION: &str = "lull_agent_flush_duration_seconds";
/// Gauge: 1 while connected to NATS.
pub const NATS_CONNECTED: &str = "lull_agent_nats_connected";
/// Counter: NATS connection events (`connected`, `disconnected`, ...).
pub const NATS_EVENTS: &str = "lull_agent_nats_events_total";
/// Counter: restarts of the publisher worker.
pub const PUBLISHER_RESTARTS: &str = "lull_agent_publisher_restarts_total";
/// Gauge: report files waiting in the spool.
pub const SPOOL_FILES: &str = "lull_agent_spool_files";
/// Gauge: age of the oldest waiting report file.
pub const SPOOL_OLDEST_AGE: &str = "lull_agent_spool_oldest_age_seconds";
/// Counter `{kind}`: reports acknowledged by JetStream and deleted.
pub const SPOOL_PUBLISHED: &str = "lull_agent_spool_published_total";
/// Counter: malformed report files moved to `failed/`.
pub const SPOOL_FAILED: &str = "lull_agent_spool_failed_total";
/// Counter `{reason}`: report publish attempts that did not get an ack.
pub const SPOOL_PUBLISH_ERRORS: &str = "lull_agent_spool_publish_errors_total";
/// Counter: reports the stream already held (duplicate acks).
pub const SPOOL_DUPLICATES: &str = "lull_agent_spool_duplicates_total";
/// Gauge `{version}`: always 1.
pub const BUILD_INFO: &str = "lull_agent_build_info";

/// Buckets of collector and flush durations (seconds): 100 µs to 30 s,
/// wider than the shared latency buckets because collectors time out late.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Registers the HELP text of every metric and sets `build_info`.
pub fn describe() {
    describe_histogram!(
        COLLECTOR_DURATION,
        Unit::Seconds,
        "Duration of one collector run."
    );
    describe_counter!(
        COLLECTOR_RUNS,
        "Collector runs by result: ok, error, timeout, or busy (the previous run is still stuck)."
    );
    describe_gauge!(
        COLLECTOR_SUCCESS,
        "1 when the collector's last run succeeded, else 0."
    );
    describe_counter!(
        TICKS,
        "Snapshot ticks by result: ok, or failed (no snapshot could be built)."
    );
    describe_histogram!(
        TICK_DURATION,
        Unit::Seconds,
        "Time to assemble and enqueue one tick."
    );
    describe_gauge!(
        SNAPSHOT_SEQ,
        "Sequence number of the last published snapshot."
    );
    describe_gauge!(OUTBOX_QUEUE_LENGTH, "Messages waiting in the outbox.");
    describe_gauge!(
        OUTBOX_QUEUE_BYTES,
        Unit::Bytes,
        "Payload bytes waiting in the outbox."
    );
    describe_counter!(
        OUTBOX_DROPPED,
        "Messages dropped (oldest stats first) because the outbox was full, by kind."
    );
    describe_counter!(PUBLISHED, "Messages handed to NATS, by kind.");
    describe_counter!(
        PUBLISHED_BYTES,
        Unit::Bytes,
        "Payload bytes handed to NATS."
    );
    describe_counter!(
        PUBLISH_ERRORS,
        "Publish or flush errors of the outbox worker."
    );
    describe_histogram!(
        FLUSH_DURATION,
        Unit::Seconds,
        "Duration of one outbox flush."
    );
    describe_gauge!(NATS_CONNECTED, "1 while the agent is connected to NATS.");
    describe_counter!(NATS_EVENTS, "NATS connection events by event.");
    describe_counter!(
        PUBLISHER_RESTARTS,
        "Restarts of the outbox publisher worker after an error."
    );
    describe_gauge!(SPOOL_FILES, "Report files waiting in the spool directory.");
    describe_gauge!(
        SPOOL_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest report file waiting in the spool directory (0 when empty)."
    );
    describe_counter!(
        SPOOL_PUBLISHED,
        "Reports acknowledged by JetStream and removed from the spool, by kind."
    );
    describe_counter!(SPOOL_FAILED, "Malformed report files moved to failed/.");
    describe_counter!(
        SPOOL_PUBLISH_ERRORS,
        "Report publish attempts without an ack, by reason (no_stream, timeout, error)."
    );
    describe_counter!(
        SPOOL_DUPLICATES,
        "Reports the stream already held (acknowledged as duplicates)."
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the version label carries the agent version."
    );
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    // Counters that matter at zero are exported from the start.
    for kind in ["stats", "health", "failure"] {
        metrics::counter!(OUTBOX_DROPPED, "kind" => kind).increment(0);
    }
    for kind in ["worker", "build", "fatigue"] {
        metrics::counter!(SPOOL_PUBLISHED, "kind" => kind).increment(0);
    }
    metrics::counter!(SPOOL_FAILED).increment(0);
    metrics::counter!(PUBLISH_ERRORS).increment(0);
    metrics::counter!(PUBLISHER_RESTARTS).increment(0);
    metrics::gauge!(SPOOL_FILES).set(0.0);
    metrics::gauge!(SPOOL_OLDEST_AGE).set(0.0);
}
