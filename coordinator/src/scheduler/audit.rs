//! The lease audit trail: records from the book are queued without waiting
//! and written to the `lease_events` table by a task of their own, a batch
//! at a time (binary `COPY`). A batch is written when it is full or when
//! the flush period passes. A slow or absent database never holds up the
//! scheduler: past the queue, records are dropped and counted. The same
//! task deletes rows past the retention, a bounded amount at a time.

use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use lull_common::runtime::now_unix;
use tokio::sync::mpsc;

use lull_engine::lease::AuditRecord;

/// Tunables of the audit writer.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Records waiting to be written before new ones are dropped.
    pub queue: usize,
    /// Largest batch.
    pub batch: usize,
    /// Longest time a record waits before its batch is written.
    pub flush: Duration,
    /// Records kept for a retry while the database fails.
    pub retry_max: usize,
    /// Rows older than this are deleted; `None` keeps them forever.
    pub retention: Option<Duration>,
    /// How often old rows are deleted.
    pub prune_every: Duration,
}

/// Rows deleted per statement when pruning.
const PRUNE_BATCH: i64 = 20_000;
/// Longest a prune run holds up the writes.
const PRUNE_BUDGET: Duration = Duration::from_secs(2);

/// Hands records to the writer task.
#[derive(Debug)]
pub struct AuditSink {
    tx: mpsc::Sender<AuditRecord>,
    dropped: metrics::Counter,
}

impl AuditSink {
    /// Queues `rec`, or drops and counts it when the queue is full.
    pub fn send(&self, rec: AuditRecord) {
        if self.tx.try_send(rec).is_err() {
            self.dropped.increment(1);
        }
    }
}

/// Starts the writer. With no pool, records are taken and discarded. The
/// task ends (after writing what is queued) when the sink is dropped.
pub fn spawn(pool: Option<Pool>, cfg: AuditConfig) -> (AuditSink, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(cfg.queue.max(16));
    let dropped = metrics::counter!(super::metrics::EFFECTS_DROPPED.name, "effect" => "audit");
    let sink = AuditSink {
        tx,
        dropped: dropped.clone(),
    };
    (sink, tokio::spawn(run(rx, pool, cfg, dropped)))
}

async fn run(
    mut rx: mpsc::Receiver<AuditRecord>,
    pool: Option<Pool>,
    cfg: AuditConfig,
    dropped: metrics::Counter,
) {
    let batch = cfg.batch.max(1);
    let mut pending: Vec<AuditRecord> = Vec::with_capacity(batch);
    let mut flush = tokio::time::interval(cfg.flush);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // After a failed write, only the flush timer retries (no busy retry on
    // every full batch while the database is down).
    let mut healthy = true;
    let mut prune = tokio::time::interval(cfg.prune_every);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = prune.tick(), if cfg.retention.is_some() && pool.is_some() => {
                if let (Some(keep), Some(pool)) = (cfg.retention, &pool) {
                    prune_old(pool, keep).await;
                }
            }
            n = rx.recv_many(&mut pending, batch) => {
                if n == 0 {
                    break;
                }
                if healthy && pending.len() >= batch {
                    healthy = write(&pool, &mut pending, &cfg, &dropped).await;
                }
            }
            _ = flush.tick() => healthy = write(&pool, &mut pending, &cfg, &dropped).await,
        }
    }
    write(&pool, &mut pending, &cfg, &dropped).await;
}

/// Deletes rows older than `keep`, in batches, for at most
/// [`PRUNE_BUDGET`]; the rest waits for the next run.
async fn prune_old(pool: &Pool, keep: Duration) {
    let before = now_unix() - keep.as_secs_f64();
    let started = Instant::now();
    loop {
        match crate::store::leases::prune_audit(pool, before, PRUNE_BATCH).await {
            Ok(n) => {
                metrics::counter!(crate::store::metrics::DB_PRUNED_ROWS.name, "table" => "lease_events")
                    .increment(n);
                if n < PRUNE_BATCH as u64 || started.elapsed() >= PRUNE_BUDGET {
                    return;
                }
            }
            Err(e) => {
                metrics::counter!(crate::store::metrics::DB_WRITE_ERRORS.name, "table" => "lease_events")
                    .increment(1);
                tracing::warn!(error = %e, "pruning the lease audit failed");
                return;
            }
        }
    }
}

/// Writes the pending batch; `false` when it failed (it is kept, bounded).
async fn write(
    pool: &Option<Pool>,
    pending: &mut Vec<AuditRecord>,
    cfg: &AuditConfig,
    dropped: &metrics::Counter,
) -> bool {
    let Some(pool) = pool else {
        pending.clear();
        return true;
    };
    if pending.is_empty() {
        return true;
    }
    let started = Instant::now();
    match crate::store::leases::insert_audit(pool, pending).await {
        Ok(n) => {
            metrics::histogram!(crate::store::metrics::DB_BATCH_DURATION.name, "table" => "lease_events")
                .record(started.elapsed().as_secs_f64());
            metrics::histogram!(crate::store::metrics::DB_BATCH_ROWS.name, "table" => "lease_events").record(n as f64);
            metrics::gauge!(crate::store::metrics::DB_LAST_WRITE.name, "table" => "lease_events")
                .set(now_unix());
            pending.clear();
            true
        }
        Err(e) => {
            metrics::counter!(crate::store::metrics::DB_WRITE_ERRORS.name, "table" => "lease_events").increment(1);
            tracing::warn!(error = %e, rows = pending.len(), "writing lease audit failed; will retry");
            // Keep the batch for the next flush, but bounded.
            if pending.len() > cfg.retry_max {
                let drop_n = pending.len() - cfg.retry_max;
                pending.drain(..drop_n);
                dropped.increment(drop_n as u64);
            }
            false
        }
    }
}
