//! The history writer task. It takes the fleet actor's batches, cuts them
//! into pieces of one INSERT each and writes them in order, each measured
//! (`lull_db_batch_duration_seconds{table}`, `lull_db_batch_rows{table}`,
//! `lull_db_write_errors_total{table}`,
//! `lull_db_last_write_timestamp_seconds{table}`). A piece whose
//! write fails (Postgres down) waits in the [`Backlog`] with everything
//! behind it, retried every `retry_every_sec` and before each new batch.
//!
//! Only the leader writes. A Postgres outage also ends the leadership
//! (the election lives in Postgres), so a leader that stops leading keeps
//! holding its batches: when it leads again in the very next epoch nobody
//! wrote in between and the held rows are written. When another instance
//! took over (a later epoch in the election row held by another instance),
//! that leader writes what it sampled since its election: the held rows
//! handed over after that time are let go, the older ones are still
//! written here (nobody else has them). When this instance leads again in
//! a later, not the next, epoch, the held rows are let go. An instance that
//! never led drops batches at once, as a standby.

use std::time::Instant;

use lull_common::runtime::now_unix;
use tokio::sync::mpsc;

use super::accounting::record;
use super::backlog::{pieces, Backlog, Piece};
use super::write::{
    insert_groups, insert_quiet, upsert_streaks, with_partition_retry, HistoryBatch,
};
use super::HistoryStore;
use crate::store::StoreError;

/// Writes one piece (creating partitions it lacks), measured.
async fn write_piece(store: &HistoryStore, piece: &Piece) -> Result<u64, StoreError> {
    let started = Instant::now();
    let r = match piece {
        Piece::Quiet(chunks) => {
            let max_t = chunks
                .iter()
                .filter_map(|c| c.samples.first().map(|s| s.t))
                .fold(0.0, f64::max);
            with_partition_retry(store, max_t, || insert_quiet(store, chunks)).await
        }
        Piece::Groups(rows) => {
            let max_t = rows.iter().map(|r| r.2).fold(0.0, f64::max);
            with_partition_retry(store, max_t, || insert_groups(store, rows)).await
        }
        Piece::Streaks(rows) => upsert_streaks(store, rows).await,
    };
    record(store, piece.table(), piece.rows(), started, &r);
    r
}

/// Whether Postgres refused the rows themselves (bad data, a constraint,
/// a schema mismatch): retrying would fail again. Everything else
/// (connection lost, server shutting down or starting, no pooled
/// connection) is worth a retry.
fn is_rejection(e: &StoreError) -> bool {
    match e {
        StoreError::Db(e) => e
            .as_db_error()
            .is_some_and(|d| matches!(&d.code().code()[..2], "22" | "23" | "42")),
        StoreError::Encode(_) => true,
        _ => false,
    }
}

/// Writes the backlog, oldest first, until it is empty or a write fails
/// (then the rest waits, in order, for the next try). Pieces past the age
/// bound are given up first.
async fn drain(store: &HistoryStore, backlog: &mut Backlog) {
    backlog.expire(now_unix());
    while let Some(piece) = backlog.front() {
        match write_piece(store, piece).await {
            Ok(_) => backlog.pop(),
            Err(e) if is_rejection(&e) => {
                backlog.drop_front("rejected");
            }
            Err(_) => break,
        }
    }
    store.shared.db.holding(backlog.oldest());
}

/// When another instance was elected after epoch `e`, the time it was
/// elected (`Some(None)`: nobody else; `None` while Postgres does not
/// answer).
async fn superseded(store: &HistoryStore, e: u64) -> Option<Option<f64>> {
    let client = store.pool.get().await.ok()?;
    let row = client
        .query_one(
            "SELECT epoch, holder, extract(epoch FROM elected_at)::float8 \
             FROM lull_leader WHERE id = 1",
            &[],
        )
        .await
        .ok()?;
    let epoch = u64::try_from(row.get::<_, i64>(0)).ok()?;
    let holder: String = row.get(1);
    let elected_at: Option<f64> = row.get(2);
    // Our own next term (elected, duties not started yet) is no takeover.
    let ours = epoch == e + 1 && holder == store.shared.instance();
    Some((epoch > e && !ours).then(|| elected_at.unwrap_or(f64::INFINITY)))
}

/// Whose rows the backlog holds while writes are off.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Hold {
    /// Writing (leading), or never led.
    None,
    /// Holding since the leadership of this epoch ended.
    After(u64),
    /// Another leader was elected at this time: it writes what came after;
    /// the held rows from before are still written here, new batches are
    /// dropped until we lead again.
    Superseded(f64),
}

struct Writer {
    store: HistoryStore,
    backlog: Backlog,
    hold: Hold,
}

impl Writer {
    /// Writes are on again (this instance leads): the held rows are
    /// written if nobody led in between (or they predate who did), let go
    /// otherwise.
    fn resume(&mut self) {
        let now_epoch = self.store.shared.led_epoch();
        match self.hold {
            Hold::After(e) if now_epoch == e + 1 => {
                tracing::info!(
                    rows = self.backlog.rows(),
                    "leading again in the next epoch: writing the held history"
                );
            }
            Hold::After(_) => self.let_go(),
            Hold::Superseded(_) | Hold::None => {}
        }
        self.hold = Hold::None;
    }

    /// Another leader wrote the held rows: forget them (not counted lost).
    fn let_go(&mut self) {
        if !self.backlog.is_empty() {
            tracing::info!(
                rows = self.backlog.rows(),
                "another leader wrote this history: held rows let go"
            );
        }
        self.backlog = Backlog::new(
            self.store.cfg.retry_max_bytes,
            self.store.cfg.retry_max_age_sec,
        );
        self.store.shared.db.holding(None);
    }

    async fn batch(&mut self, batch: HistoryBatch) {
        let shared = self.store.shared.clone();
        if shared.writing() {
            self.resume();
        } else if self.hold == Hold::None && shared.led_epoch() != 0 {
            self.hold = Hold::After(shared.led_epoch());
        }
        let keep = match self.hold {
            Hold::None => shared.writing(),
            Hold::After(_) => true,
            Hold::Superseded(_) => false,
        };
        if keep {
            let since = batch.created_at;
            for p in pieces(batch, self.store.cfg.max_batch_rows) {
                self.backlog.push(p, since);
            }
            if shared.writing() {
                drain(&self.store, &mut self.backlog).await;
            } else {
                self.backlog.expire(now_unix());
                shared.db.holding(self.backlog.oldest());
            }
        }
        shared.db.done();
    }

    async fn retry(&mut self) {
        if self.store.shared.writing() {
            self.resume();
            drain(&self.store, &mut self.backlog).await;
            return;
        }
        if let Hold::After(e) = self.hold {
            if let Some(Some(elected_at)) = superseded(&self.store, e).await {
                // The new leader writes what it sampled since its election;
                // what we hold from before is nobody's but ours.
                let rows = self.backlog.keep_until(elected_at);
                tracing::info!(
                    rows,
                    kept = self.backlog.rows(),
                    "another instance leads: held rows after its election let go, older ones written"
                );
                self.hold = Hold::Superseded(elected_at);
            }
        }
        match self.hold {
            Hold::Superseded(_) => drain(&self.store, &mut self.backlog).await,
            _ => {
                self.backlog.expire(now_unix());
                self.store.shared.db.holding(self.backlog.oldest());
            }
        }
    }
}

/// The writer task: writes batches until the channel closes (see the
/// module doc for the retry backlog and what a former leader holds).
pub async fn run_writer(store: HistoryStore, mut rx: mpsc::Receiver<HistoryBatch>) {
    let cfg = store.cfg.clone();
    let mut w = Writer {
        backlog: Backlog::new(cfg.retry_max_bytes, cfg.retry_max_age_sec),
        store,
        hold: Hold::None,
    };
    let mut retry = tokio::time::interval(crate::config::secs(cfg.retry_every_sec));
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            batch = rx.recv() => match batch {
                Some(b) => w.batch(b).await,
                None => break,
            },
            _ = retry.tick(), if !w.backlog.is_empty() => w.retry().await,
        }
    }
    // A last try at shutdown; what is still unwritten is given up, counted.
    if w.store.shared.writing() && !w.backlog.is_empty() {
        drain(&w.store, &mut w.backlog).await;
    }
    while w.backlog.drop_front("shutdown") {}
    w.store.shared.db.holding(None);
}
