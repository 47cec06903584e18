//! Every metric the coordinator exports, described once (HELP text and
//! unit) so `promtool check metrics` is clean. Names follow Prometheus
//! conventions: `lull_` prefix, base units, `_total` on counters.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Histograms that need buckets other than the defaults of
/// `lull_common::runtime::install_metrics`.
pub const EXTRA_BUCKETS: &[(&str, &[f64])] = &[
    (
        "lull_stats_ingest_lag_seconds",
        &[
            0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
        ],
    ),
    (
        "lull_worker_duration_seconds",
        crate::executions::DURATION_BUCKETS,
    ),
    ("lull_region_build_duration_seconds", LONG_DURATION_BUCKETS),
    ("lull_region_queue_wait_seconds", LONG_DURATION_BUCKETS),
];

/// Buckets for durations of seconds to a day (cloud builds, queue waits).
pub const LONG_DURATION_BUCKETS: &[f64] = &[
    5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0, 5400.0,
    7200.0, 10800.0, 14400.0, 21600.0, 43200.0, 86400.0,
];

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
        "lull_fleet_agent_messages_total",
        "Agent loop telemetry messages received, by kind (health, failure) and result."
    );
    describe_gauge!(
        "lull_fleet_agent_reported_queue_length",
        "Messages waiting in each agent's outbox, as its latest loop.health says."
    );
    describe_counter!(
        "lull_fleet_agent_reported_dropped_total",
        "Messages each agent dropped from its full outbox, as its latest loop.health says."
    );
    describe_gauge!(
        "lull_fleet_agent_last_health_timestamp_seconds",
        Unit::Seconds,
        "Unix time when each agent's latest loop.health arrived."
    );
    describe_counter!(
        "lull_fleet_agent_loop_failures_total",
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
    describe_gauge!(
        "lull_host_blocked",
        "1 when an operator block (the host's own or the fleet's) keeps heavy work off a host."
    );
    describe_gauge!(
        "lull_hosts_blocked",
        "Number of known hosts under an operator block."
    );
    describe_gauge!(
        "lull_blocks",
        "Operator blocks in force, by scope (host; fleet is 0 or 1)."
    );

    // History storage.
    describe_gauge!(
        "lull_history_pending_rows",
        "Quiet samples, group snapshots and streaks waiting in the fleet actor for the history writer."
    );
    describe_counter!(
        "lull_history_dropped_total",
        "History rows dropped because too many were pending, by kind (quiet, snapshot, streak)."
    );
    describe_counter!(
        "lull_history_writer_busy_total",
        "History flushes postponed because the writer's queue was full."
    );
    describe_gauge!(
        "lull_db_write_lag_seconds",
        Unit::Seconds,
        "Age of the oldest history batch handed to the writer and not yet written (0 when none)."
    );
    describe_gauge!(
        "lull_history_partitions",
        "Partitions of each partitioned history table."
    );
    describe_counter!(
        "lull_history_partitions_created_total",
        "History partitions created ahead of time, by table."
    );
    describe_counter!(
        "lull_history_partitions_dropped_total",
        "History partitions dropped past retention, by table."
    );
    describe_counter!(
        "lull_history_rows_deleted_total",
        "Rows deleted by the batched retention deletes, by table."
    );
    describe_gauge!(
        "lull_history_rollup_watermark_seconds",
        Unit::Seconds,
        "End of the last rolled-up chunk (Unix time): reads use rollups before it, raw samples after."
    );
    describe_gauge!(
        "lull_history_maintenance_last_run_timestamp_seconds",
        Unit::Seconds,
        "Unix time of the last history maintenance run."
    );
    describe_counter!(
        "lull_history_maintenance_errors_total",
        "Failed history maintenance steps, by step (partitions, rollups, retention, forecast)."
    );

    // Leases.
    describe_counter!(
        "lull_lease_decisions_total",
        "Lease requests decided, by result (granted, denied, queued) and denial reason code."
    );
    describe_counter!(
        "lull_lease_events_total",
        "Lease lifecycle events published, by event (granted, released, expired, revoked)."
    );
    describe_counter!(
        "lull_lease_effects_dropped_total",
        "Lease events (effect=event) or audit records (effect=audit) dropped because their queue was full."
    );
    describe_gauge!("lull_lease_active", "Active leases on each host.");
    describe_gauge!("lull_leases_active", "Active leases in the whole fleet.");
    describe_gauge!(
        "lull_lease_capacity_units",
        "Lease capacity of each host for an unconstrained job, in cost units."
    );
    describe_gauge!(
        "lull_lease_used_units",
        "Cost units held by active leases on each host."
    );
    describe_gauge!(
        "lull_lease_queue_length",
        "Lease requests waiting in the queue."
    );
    describe_gauge!(
        "lull_lease_grace_period",
        "1 while the coordinator is in its restart grace period (new grants refused)."
    );

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
        "Failed batched database writes (and retention deletes), by table."
    );
    describe_counter!(
        "lull_db_pruned_rows_total",
        "Rows deleted past their retention, by table."
    );
    describe_gauge!(
        "lull_db_last_write_timestamp_seconds",
        Unit::Seconds,
        "Unix time of the last successful batched write, by table."
    );

    // Durable reports (JetStream) and worker executions.
    describe_counter!(
        "lull_reports_total",
        "Durable reports consumed, by kind (build, fatigue, worker, unknown) and result (accepted, invalid, retried)."
    );
    describe_histogram!(
        "lull_reports_ingest_lag_seconds",
        Unit::Seconds,
        "Delay between a report's publication to the stream and its consumption by the coordinator."
    );
    describe_counter!(
        "lull_worker_executions_total",
        "Worker executions stored (each execution_id once), by worker and outcome; restored from the database at start."
    );
    describe_counter!(
        "lull_worker_duplicate_reports_total",
        "Worker reports whose execution_id was already stored (redeliveries and resends), not counted again."
    );
    describe_gauge!(
        "lull_worker_last_overall_score",
        "Overall score (0..100) of each worker's latest run."
    );
    describe_gauge!(
        "lull_worker_last_success_timestamp_seconds",
        Unit::Seconds,
        "Unix time at which each worker's latest SUCCESS run completed."
    );
    describe_histogram!(
        "lull_worker_duration_seconds",
        Unit::Seconds,
        "Duration of worker runs as reported (duration_ms), by worker."
    );
    describe_counter!(
        "lull_worker_anomalies_total",
        "Anomalies detected in worker runs, by worker and kind (DURATION_SPIKE, QUALITY_DROP, RESOURCE_THRESHOLD, RESOURCE_SPIKE)."
    );
    describe_gauge!(
        "lull_worker_schedule_state",
        "Schedule state of each worker (OK, LATE, MISSED, UNKNOWN): 1 for the current state, 0 for the others."
    );
    describe_gauge!(
        "lull_worker_missed_runs",
        "Expected runs of each worker that did not happen since its latest run (0 unless LATE or MISSED)."
    );
    describe_gauge!("lull_workers", "Number of workers that have reported.");

    // Build regions.
    describe_counter!(
        "lull_region_builds_total",
        "Builds recorded per region, by result (success, failure), including imported history."
    );
    describe_gauge!(
        "lull_region_success_ratio",
        "Share of successful builds per region (0..1)."
    );
    describe_gauge!(
        "lull_region_streak",
        "Current streak per region: positive for consecutive successes, negative for failures."
    );
    describe_gauge!(
        "lull_region_fatigue_state",
        "Health of each region: 1 for the current state (HEALTHY, FATIGUED, EXHAUSTED, OUTLAWED), 0 for the others."
    );
    describe_gauge!(
        "lull_region_outlawed",
        "1 while a region is auto-outlawed (until an operator pardons it)."
    );
    describe_counter!(
        "lull_region_fatigue_incidents_total",
        "Fatigue incidents per region: fatigues inside builds plus bare fatigue events."
    );
    describe_histogram!(
        "lull_region_build_duration_seconds",
        Unit::Seconds,
        "Duration of each newly recorded build (queue wait included), per region."
    );
    describe_histogram!(
        "lull_region_queue_wait_seconds",
        Unit::Seconds,
        "Queue wait of each newly recorded build, per region."
    );
    describe_counter!(
        "lull_region_build_cost_usd_total",
        "Cost of the builds with a known cost per region, in whole USD (rounded down)."
    );
    describe_gauge!(
        "lull_region_build_cost_usd",
        "Cost of the builds with a known cost per region, USD (exact; only grows)."
    );
    describe_counter!(
        "lull_region_reports_total",
        "Stored region reports by kind (build, fatigue) and result (new, duplicate)."
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
