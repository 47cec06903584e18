//! The `hosts` table (first and last seen of every host): which rows
//! changed since the last write, and the writer task that upserts them so
//! the actor never awaits the database.

use std::collections::HashMap;
use std::time::Instant;

use deadpool_postgres::Pool;
use lull_common::runtime::now_unix;
use tokio::sync::mpsc;

use super::host::HostEntry;
use crate::store::hosts::HostRow;
use crate::store::metrics as db;

/// The rows of hosts seen since the last write; they are marked clean.
pub(super) fn dirty_rows(hosts: &mut HashMap<String, HostEntry>) -> Vec<HostRow> {
    hosts
        .iter_mut()
        .filter(|(_, e)| e.dirty)
        .map(|(id, e)| {
            e.dirty = false;
            row_of(id, e)
        })
        .collect()
}

/// The host-table row of a host.
pub(super) fn row_of(id: &str, e: &HostEntry) -> HostRow {
    HostRow {
        host_id: id.to_string(),
        first_seen: e.first_seen,
        last_seen: e.last_seen,
    }
}

/// Marks the hosts of rows that could not be handed over for the next
/// write; returns the rows of hosts no longer known (forgotten meanwhile),
/// which must be kept aside for it.
pub(super) fn mark_dirty(
    hosts: &mut HashMap<String, HostEntry>,
    rows: Vec<HostRow>,
) -> Vec<HostRow> {
    let mut gone = Vec::new();
    for r in rows {
        match hosts.get_mut(&r.host_id) {
            Some(e) => e.dirty = true,
            None => gone.push(r),
        }
    }
    gone
}

/// Upserts every batch of rows received until the channel closes.
pub(super) async fn write_hosts(pool: Pool, mut rx: mpsc::Receiver<Vec<HostRow>>) {
    while let Some(rows) = rx.recv().await {
        let started = Instant::now();
        match crate::store::hosts::upsert(&pool, &rows).await {
            Ok(_) => {
                metrics::histogram!(db::DB_BATCH_DURATION.name, "table" => "hosts")
                    .record(started.elapsed().as_secs_f64());
                metrics::histogram!(db::DB_BATCH_ROWS.name, "table" => "hosts")
                    .record(rows.len() as f64);
                metrics::gauge!(db::DB_LAST_WRITE.name, "table" => "hosts").set(now_unix());
            }
            Err(e) => {
                metrics::counter!(db::DB_WRITE_ERRORS.name, "table" => "hosts").increment(1);
                tracing::warn!(error = %e, rows = rows.len(), "writing hosts failed");
            }
        }
    }
}
