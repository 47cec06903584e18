//! Metrics of database writes and history maintenance. The batch writers
//! of every owner (hosts, audit, history, region reports, worker
//! executions) emit the `lull_db_*` ones with their `table` label; the
//! history maintenance task emits the `lull_history_*` ones.

use lull_common::metric::Metric;
use metrics::Unit;

/// Histogram `{table}`: duration of one batched write.
pub(crate) static DB_BATCH_DURATION: Metric = Metric::histogram(
    "lull_db_batch_duration_seconds",
    "Duration of one batched database write, by table.",
)
.unit(Unit::Seconds);
/// Histogram `{table}`: rows in one batched write.
pub(crate) static DB_BATCH_ROWS: Metric = Metric::histogram(
    "lull_db_batch_rows",
    "Rows in one batched database write, by table.",
);
/// Counter `{table}`: failed batched writes and retention deletes.
pub(crate) static DB_WRITE_ERRORS: Metric = Metric::counter(
    "lull_db_write_errors_total",
    "Failed batched database writes (and retention deletes), by table.",
);
/// Counter `{table}`: rows deleted past retention.
pub(crate) static DB_PRUNED_ROWS: Metric = Metric::counter(
    "lull_db_pruned_rows_total",
    "Rows deleted past their retention, by table.",
);
/// Gauge `{table}`: Unix time of the last successful batched write.
pub(crate) static DB_LAST_WRITE: Metric = Metric::gauge(
    "lull_db_last_write_timestamp_seconds",
    "Unix time of the last successful batched write, by table.",
)
.unit(Unit::Seconds);

/// Gauge `{table}`: partitions of a partitioned history table.
pub(crate) static HISTORY_PARTITIONS: Metric = Metric::gauge(
    "lull_history_partitions",
    "Partitions of each partitioned history table.",
);
/// Counter `{table}`: partitions created ahead of time.
pub(crate) static HISTORY_PARTITIONS_CREATED: Metric = Metric::counter(
    "lull_history_partitions_created_total",
    "History partitions created ahead of time, by table.",
);
/// Counter `{table}`: partitions dropped past retention.
pub(crate) static HISTORY_PARTITIONS_DROPPED: Metric = Metric::counter(
    "lull_history_partitions_dropped_total",
    "History partitions dropped past retention, by table.",
);
/// Counter `{table}`: rows deleted by the batched retention deletes.
pub(crate) static HISTORY_ROWS_DELETED: Metric = Metric::counter(
    "lull_history_rows_deleted_total",
    "Rows deleted by the batched retention deletes, by table.",
);
/// Gauge: end of the last rolled-up chunk.
pub(crate) static HISTORY_ROLLUP_WATERMARK: Metric = Metric::gauge(
    "lull_history_rollup_watermark_seconds",
    "End of the last rolled-up chunk (Unix time): reads use rollups before it, raw samples after.",
)
.unit(Unit::Seconds);
/// Gauge: Unix time of the last maintenance run.
pub(crate) static HISTORY_MAINTENANCE_LAST_RUN: Metric = Metric::gauge(
    "lull_history_maintenance_last_run_timestamp_seconds",
    "Unix time of the last history maintenance run.",
)
.unit(Unit::Seconds);
/// Counter `{step}`: failed maintenance steps (the fleet's forecast
/// refresh counts here too, as step `forecast`).
pub(crate) static HISTORY_MAINTENANCE_ERRORS: Metric = Metric::counter(
    "lull_history_maintenance_errors_total",
    "Failed history maintenance steps, by step (partitions, rollups, retention, forecast).",
);

/// Counter `{table,reason}`: history rows given up.
pub(crate) static HISTORY_LOST_ROWS: Metric = Metric::counter(
    "lull_history_lost_rows_total",
    "History rows given up by the writer, by table and reason (too_old, too_many_bytes: the retry backlog's bounds; rejected: Postgres refused the rows themselves; shutdown: still unwritten when the coordinator stopped).",
);
/// Gauge: rows waiting in the retry backlog.
pub(crate) static HISTORY_BACKLOG_ROWS: Metric = Metric::gauge(
    "lull_history_backlog_rows",
    "History rows waiting for Postgres in the writer's retry backlog.",
);
/// Gauge: bytes held by the retry backlog (estimate).
pub(crate) static HISTORY_BACKLOG_BYTES: Metric = Metric::gauge(
    "lull_history_backlog_bytes",
    "Estimated bytes held by the history writer's retry backlog.",
);

/// Every metric of the store.
pub(crate) static METRICS: &[&Metric] = &[
    &DB_BATCH_DURATION,
    &DB_BATCH_ROWS,
    &DB_WRITE_ERRORS,
    &DB_PRUNED_ROWS,
    &DB_LAST_WRITE,
    &HISTORY_PARTITIONS,
    &HISTORY_PARTITIONS_CREATED,
    &HISTORY_PARTITIONS_DROPPED,
    &HISTORY_ROWS_DELETED,
    &HISTORY_ROLLUP_WATERMARK,
    &HISTORY_MAINTENANCE_LAST_RUN,
    &HISTORY_MAINTENANCE_ERRORS,
    &HISTORY_LOST_ROWS,
    &HISTORY_BACKLOG_ROWS,
    &HISTORY_BACKLOG_BYTES,
];
