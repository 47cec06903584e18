//! Bookkeeping of one history write (raw samples, streaks or rollups): its
//! duration, rows and errors in the metrics, and the store's write health
//! behind `lull_db_write_lag_seconds` and the health rollup. Shared by the
//! writer and the maintenance task.

use std::time::Instant;

use lull_common::runtime::now_unix;

use super::HistoryStore;
use crate::store::metrics as m;
use crate::store::StoreError;

/// Records one batch write in the metrics and in the write health.
pub(super) fn record(
    store: &HistoryStore,
    table: &'static str,
    rows: usize,
    started: Instant,
    r: &Result<u64, StoreError>,
) {
    match r {
        Ok(_) => {
            metrics::histogram!(m::DB_BATCH_DURATION.name, "table" => table)
                .record(started.elapsed().as_secs_f64());
            metrics::histogram!(m::DB_BATCH_ROWS.name, "table" => table).record(rows as f64);
            let now = now_unix();
            metrics::gauge!(m::DB_LAST_WRITE.name, "table" => table).set(now);
            store.shared.db.ok(now);
        }
        Err(e) => {
            metrics::counter!(m::DB_WRITE_ERRORS.name, "table" => table).increment(1);
            store.shared.db.error(now_unix(), &e.to_string());
            tracing::warn!(table, rows, error = %e, "history write failed");
        }
    }
}
