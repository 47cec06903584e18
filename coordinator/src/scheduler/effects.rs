//! Carrying out the book's effects: lease events are published on
//! `lull.lease.events.<lease_id>` at once; audit records are written to the
//! `lease_events` table in batches by a writer task of their own.

use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use lull_common::runtime::now_unix;
use lull_common::Subjects;
use tokio::sync::mpsc;

use crate::lease::{AuditRecord, Effect};

/// Tunables of the effects task.
#[derive(Debug, Clone)]
pub struct EffectsConfig {
    /// Capacity of the effects channel.
    pub queue: usize,
    /// Largest audit batch.
    pub audit_batch: usize,
    /// Longest time an audit record waits before its batch is written.
    pub audit_flush: Duration,
}

/// Runs until the channel closes. Lease events are published at once, in
/// order; audit records go to a separate writer task, so a slow database
/// never delays a `REVOKED` or `EXPIRED` event. When the writer falls
/// behind, audit records (never events) are dropped and counted.
pub async fn run(
    mut rx: mpsc::Receiver<Effect>,
    client: async_nats::Client,
    subjects: Subjects,
    pool: Option<Pool>,
    cfg: EffectsConfig,
) {
    let (atx, arx) = mpsc::channel::<AuditRecord>(cfg.queue.max(16));
    let writer = tokio::spawn(audit_writer(arx, pool, cfg.clone()));
    while let Some(fx) = rx.recv().await {
        match fx {
            Effect::Publish(ev) => {
                let subject = subjects.lease_events(&ev.lease_id);
                match serde_json::to_vec(&ev) {
                    Ok(body) => {
                        if let Err(e) = client.publish(subject, body.into()).await {
                            tracing::warn!(error = %e, lease = %ev.lease_id, "publishing a lease event failed");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "encoding a lease event"),
                }
            }
            Effect::Audit(rec) => {
                if atx.try_send(rec).is_err() {
                    metrics::counter!("lull_lease_effects_dropped_total").increment(1);
                }
            }
        }
    }
    drop(atx);
    let _ = writer.await;
    let _ = client.flush().await;
}

/// Batches audit records to Postgres: a batch is written when it is full
/// or when the flush period passes; what is left is written at the end.
async fn audit_writer(mut rx: mpsc::Receiver<AuditRecord>, pool: Option<Pool>, cfg: EffectsConfig) {
    let mut pending: Vec<AuditRecord> = Vec::new();
    let mut flush = tokio::time::interval(cfg.audit_flush);
    loop {
        tokio::select! {
            rec = rx.recv() => match rec {
                Some(rec) => {
                    pending.push(rec);
                    if pending.len() >= cfg.audit_batch {
                        write(&pool, &mut pending).await;
                    }
                }
                None => break,
            },
            _ = flush.tick() => write(&pool, &mut pending).await,
        }
    }
    write(&pool, &mut pending).await;
}

async fn write(pool: &Option<Pool>, pending: &mut Vec<AuditRecord>) {
    let Some(pool) = pool else {
        pending.clear();
        return;
    };
    if pending.is_empty() {
        return;
    }
    let started = Instant::now();
    match crate::store::leases::insert_audit(pool, pending).await {
        Ok(n) => {
            metrics::histogram!("lull_db_batch_duration_seconds", "table" => "lease_events")
                .record(started.elapsed().as_secs_f64());
            metrics::histogram!("lull_db_batch_rows", "table" => "lease_events").record(n as f64);
            metrics::gauge!("lull_db_last_write_timestamp_seconds", "table" => "lease_events")
                .set(now_unix());
            pending.clear();
        }
        Err(e) => {
            metrics::counter!("lull_db_write_errors_total", "table" => "lease_events").increment(1);
            tracing::warn!(error = %e, rows = pending.len(), "writing lease audit failed; will retry");
            // Keep the batch for the next flush, but bounded.
            if pending.len() > 100_000 {
                let drop_n = pending.len() - 100_000;
                pending.drain(..drop_n);
                metrics::counter!("lull_lease_effects_dropped_total").increment(drop_n as u64);
            }
        }
    }
}
