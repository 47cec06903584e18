//! Every metric the coordinator exports, described once (HELP text and
//! unit) so `promtool check metrics` is clean. Names follow Prometheus
//! conventions: `lull_` prefix, base units, `_total` on counters.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Histograms that need buckets other than the defaults of
/// `lull_common::runtime::install_metrics`.
pub const EXTRA_BUCKETS: &[(&str, &[f64])] = &[(
    "lull_stats_ingest_lag_seconds",
    &[
        0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
    ],
)];

/// Describes every metric and sets `lull_build_info`.
pub fn describe() {
    describe_gauge!(
        "lull_build_info",
        "Build information of the running coordinator (always 1)."
    );
    metrics::gauge!("lull_build_info", "version" => env!("CARGO_PKG_VERSION"), "component" => "coordinator")
        .set(1.0);

    // Stats ingest and the fleet.
    describe_counter!(
        "lull_stats_messages_total",
        "Stats snapshots received, by result (accepted, dropped, bad_json, invalid, host_mismatch, too_large, bad_subject)."
    );
    describe_histogram!(
        "lull_stats_ingest_lag_seconds",
        Unit::Seconds,
        "Delay between a snapshot's collection on the host and its arrival at the coordinator."
    );
    describe_counter!(
        "lull_stats_seq_gaps_total",
        "Snapshots missing according to the agents' sequence numbers."
    );
    describe_counter!(
        "lull_stats_out_of_order_total",
        "Snapshots that arrived after a newer one of the same host and were ignored."
    );
    describe_counter!(
        "lull_agent_messages_total",
        "Agent loop telemetry messages received, by kind (health, failure) and result."
    );
    describe_counter!(
        "lull_agent_loop_failures_total",
        "loop.failure messages reported by each host's agent."
    );
    describe_gauge!(
        "lull_host_quiet_score",
        "Latest quiet score of each host (0 busy .. 100 idle)."
    );
    describe_gauge!(
        "lull_host_state",
        "Quiet state of each host: 1 for the current state, 0 for the others."
    );
    describe_gauge!(
        "lull_host_stale",
        "1 when a host has sent no snapshot for 3 intervals."
    );
    describe_gauge!("lull_hosts", "Number of known hosts in each quiet state.");
    describe_gauge!("lull_hosts_stale", "Number of stale hosts.");

    // Database.
    describe_histogram!(
        "lull_db_batch_duration_seconds",
        Unit::Seconds,
        "Duration of one batched database write, by table."
    );
    describe_histogram!(
        "lull_db_batch_rows",
        "Rows in one batched database write, by table."
    );
    describe_counter!(
        "lull_db_write_errors_total",
        "Failed batched database writes, by table."
    );
    describe_gauge!(
        "lull_db_last_write_timestamp_seconds",
        Unit::Seconds,
        "Unix time of the last successful batched write, by table."
    );

    // Request-reply endpoints.
    describe_counter!(
        "lull_requests_total",
        "Requests answered by the micro service, by endpoint and result (ok, error)."
    );
    describe_counter!(
        "lull_request_errors_total",
        "Error replies of the micro service, by endpoint and error code."
    );
    describe_histogram!(
        "lull_request_duration_seconds",
        Unit::Seconds,
        "Time from receiving a request to sending its reply, by endpoint."
    );
}
