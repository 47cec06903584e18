//! The wait queue's durability: the book's queue changes
//! ([`QueueChange`]) are written to Postgres (`lease_queue`) by a writer
//! task of their own, in fenced transactions, and nothing that reports a
//! change leaves before it is committed.
//!
//! The scheduler hands each decided batch's changes to the writer with
//! [`QueueLog::submit`], which waits when the writer is behind: unlike
//! events and audit records, a queue change is never dropped. The batch's
//! answers, lease events, audit records and replication record are *held*
//! ([`Held`]) until the writer has committed everything up to that batch;
//! later batches are held behind it, so outputs leave in decision order. A
//! batch that changes no queue and finds nothing held goes out at once: a
//! request that is not queued never waits for Postgres.
//!
//! The writer takes every batch already waiting (up to `write_rows` rows)
//! into one transaction (group commit), so under load one commit covers
//! many queue changes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use tokio::sync::mpsc;

use crate::store::queue::{apply, load, QueueWrite};
use crate::store::StoreError;
use lull_engine::lease::{Book, Effect, QueueChange};

/// Tunables of the queue writer.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Batches of changes waiting for the writer; past this the scheduler
    /// waits (back-pressure, never a drop).
    pub backlog: usize,
    /// Most rows written in one transaction.
    pub write_rows: usize,
    /// Wait before a failed write is tried again.
    pub retry: Duration,
}

/// One decided batch's queue changes.
#[derive(Debug)]
struct Batch {
    epoch: u64,
    seq: u64,
    changes: Vec<QueueChange>,
}

/// What the writer reports back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Every batch of `epoch` up to `seq` is committed.
    Written {
        /// The leadership term the batches were decided in.
        epoch: u64,
        /// The last batch committed.
        seq: u64,
    },
    /// The write of `epoch` was refused: another coordinator leads now.
    Fenced {
        /// The leadership term refused.
        epoch: u64,
    },
}

/// The scheduler's side of the writer.
pub struct QueueLog {
    tx: Option<mpsc::Sender<Batch>>,
    /// Acknowledgements from the writer.
    pub acks: mpsc::UnboundedReceiver<Ack>,
    /// Without a database: changes are acknowledged at once (memory only).
    direct: Option<mpsc::UnboundedSender<Ack>>,
    /// Last batch submitted.
    seq: u64,
}

impl QueueLog {
    /// Hands a batch of changes to the writer (waiting while its backlog is
    /// full); returns the batch's number, which [`Ack::Written`] reports.
    pub async fn submit(&mut self, epoch: u64, changes: Vec<QueueChange>) -> u64 {
        self.seq += 1;
        let seq = self.seq;
        let batch = Batch {
            epoch,
            seq,
            changes,
        };
        let sent = match &self.tx {
            Some(tx) => tx.send(batch).await.is_ok(),
            None => false,
        };
        if !sent {
            if let Some(direct) = &self.direct {
                let _ = direct.send(Ack::Written { epoch, seq });
            }
        }
        seq
    }

    /// The last batch submitted.
    pub fn last(&self) -> u64 {
        self.seq
    }

    /// Stops the writer once it has written what it was given.
    pub fn close(&mut self) {
        self.tx = None;
    }
}

/// Starts the writer. With no pool the queue lives in memory only, and
/// changes are acknowledged at once.
pub fn spawn(pool: Option<Pool>, cfg: QueueConfig) -> (QueueLog, tokio::task::JoinHandle<()>) {
    let (ack_tx, acks) = mpsc::unbounded_channel();
    let Some(pool) = pool else {
        let log = QueueLog {
            tx: None,
            acks,
            direct: Some(ack_tx),
            seq: 0,
        };
        return (log, tokio::spawn(async {}));
    };
    let (tx, rx) = mpsc::channel(cfg.backlog.max(1));
    let log = QueueLog {
        tx: Some(tx),
        acks,
        direct: None,
        seq: 0,
    };
    (log, tokio::spawn(run(rx, ack_tx, pool, cfg)))
}

async fn run(
    mut rx: mpsc::Receiver<Batch>,
    acks: mpsc::UnboundedSender<Ack>,
    pool: Pool,
    cfg: QueueConfig,
) {
    let mut carried: Option<Batch> = None;
    let max_rows = cfg.write_rows.max(1);
    loop {
        let first = match carried.take() {
            Some(b) => b,
            None => match rx.recv().await {
                Some(b) => b,
                None => break,
            },
        };
        let epoch = first.epoch;
        let mut seq = first.seq;
        let mut write = QueueWrite::default();
        let mut changes = first.changes.len();
        for c in first.changes {
            write.add(c);
        }
        // Group commit: every batch already waiting, of the same term.
        while changes < max_rows {
            match rx.try_recv() {
                Ok(b) if b.epoch == epoch => {
                    seq = b.seq;
                    changes += b.changes.len();
                    for c in b.changes {
                        write.add(c);
                    }
                }
                Ok(b) => {
                    carried = Some(b);
                    break;
                }
                Err(_) => break,
            }
        }
        let ack = write_until_done(&pool, epoch, seq, &write, &cfg, &acks).await;
        match ack {
            Some(a) => {
                if acks.send(a).is_err() {
                    // The scheduler is gone: nobody waits for the rest.
                    break;
                }
            }
            None => break,
        }
    }
}

/// Writes one group, retrying failures until it commits or is fenced;
/// `None` when the scheduler is gone while the database fails.
async fn write_until_done(
    pool: &Pool,
    epoch: u64,
    seq: u64,
    write: &QueueWrite,
    cfg: &QueueConfig,
    acks: &mpsc::UnboundedSender<Ack>,
) -> Option<Ack> {
    loop {
        let started = Instant::now();
        match apply(pool, Some(epoch), write).await {
            Ok(()) => {
                super::metrics::queue_write("ok", write.len(), started.elapsed());
                return Some(Ack::Written { epoch, seq });
            }
            Err(StoreError::Fenced { mine, current }) => {
                super::metrics::queue_write("fenced", 0, started.elapsed());
                tracing::warn!(
                    mine,
                    current,
                    rows = write.len(),
                    "queue write refused: another coordinator leads"
                );
                return Some(Ack::Fenced { epoch });
            }
            Err(e) => {
                super::metrics::queue_write("error", 0, started.elapsed());
                tracing::warn!(error = %e, rows = write.len(), "writing the lease queue; retrying");
                if acks.is_closed() {
                    return None;
                }
                tokio::time::sleep(cfg.retry).await;
            }
        }
    }
}

/// Parks the stored waiters in a fresh `book` at a takeover (after the
/// replica's re-admissions), retrying a failed load while `leading()`;
/// returns the effects (stale or unreadable rows to forget, waiters past
/// the bound giving up), or `None` once leadership was lost.
pub async fn restore(
    pool: &Pool,
    book: &mut Book,
    now: f64,
    leading: impl Fn() -> bool,
) -> Option<Vec<Effect>> {
    let loaded = loop {
        if !leading() {
            return None;
        }
        match load(pool).await {
            Ok(l) => break l,
            Err(e) => {
                tracing::error!(error = %e, "cannot load the lease wait queue; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let mut fx = Vec::new();
    for (id, why) in loaded.unreadable {
        tracing::warn!(lease_id = %id, why, "unreadable wait-queue row dropped");
        fx.push(Effect::Queue(QueueChange::Left(id)));
    }
    let stored = loaded.waiters.len();
    fx.extend(book.restore_queue(loaded.waiters, now));
    tracing::info!(
        restored = book.queue_len(),
        stored,
        "restored the lease wait queue"
    );
    Some(fx)
}

/// Takes the queue changes out of `effects`.
pub fn take_changes(effects: &mut Vec<Effect>) -> Vec<QueueChange> {
    let mut changes = Vec::new();
    effects.retain_mut(|e| match e {
        Effect::Queue(c) => {
            changes.push(std::mem::replace(c, QueueChange::Left(String::new())));
            false
        }
        _ => true,
    });
    changes
}

/// A decided batch whose outputs wait for the queue writer.
pub struct Pending<A> {
    /// The batch number that must be committed first.
    pub upto: u64,
    /// Its answers.
    pub answers: Vec<A>,
    /// Its lease effects (events, audit; the queue changes taken out).
    pub effects: Vec<Effect>,
}

/// The outputs held until the queue writer catches up, in decision order.
pub struct Held<A> {
    epoch: u64,
    items: VecDeque<Pending<A>>,
}

impl<A> Default for Held<A> {
    fn default() -> Self {
        Held {
            epoch: 0,
            items: VecDeque::new(),
        }
    }
}

impl<A> Held<A> {
    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Holds a batch's outputs of leadership term `epoch`.
    pub fn push(&mut self, epoch: u64, p: Pending<A>) {
        if self.epoch != epoch {
            self.items.clear();
            self.epoch = epoch;
        }
        self.items.push_back(p);
    }

    /// The held batches that `ack` lets go, in order (none for an ack of
    /// another term).
    pub fn release(&mut self, ack: Ack) -> Vec<Pending<A>> {
        let Ack::Written { epoch, seq } = ack else {
            return Vec::new();
        };
        if epoch != self.epoch {
            return Vec::new();
        }
        let mut out = Vec::new();
        while self.items.front().is_some_and(|p| p.upto <= seq) {
            if let Some(p) = self.items.pop_front() {
                out.push(p);
            }
        }
        out
    }

    /// Drops everything held (this instance stopped leading: nothing it
    /// decided may be reported any more).
    pub fn clear(&mut self) -> usize {
        let n = self.items.len();
        self.items.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(upto: u64) -> Pending<u64> {
        Pending {
            upto,
            answers: vec![upto],
            effects: Vec::new(),
        }
    }

    #[test]
    fn held_outputs_leave_in_order_once_written() {
        let mut h = Held::default();
        h.push(3, pending(1));
        h.push(3, pending(1));
        h.push(3, pending(2));
        let ups = |v: Vec<Pending<u64>>| v.iter().map(|p| p.upto).collect::<Vec<_>>();
        assert!(h.release(Ack::Written { epoch: 2, seq: 9 }).is_empty());
        assert!(h.release(Ack::Fenced { epoch: 3 }).is_empty());
        assert_eq!(ups(h.release(Ack::Written { epoch: 3, seq: 1 })), [1, 1]);
        assert!(!h.is_empty());
        assert_eq!(ups(h.release(Ack::Written { epoch: 3, seq: 2 })), [2]);
        assert!(h.is_empty());
        // A new term forgets what an older one held.
        h.push(3, pending(5));
        h.push(4, pending(6));
        assert_eq!(ups(h.release(Ack::Written { epoch: 4, seq: 6 })), [6]);
    }

    #[test]
    fn queue_changes_are_taken_out_of_the_effects() {
        let mut fx = vec![
            Effect::Queue(QueueChange::Left("a".into())),
            Effect::Audit(lull_engine::lease::AuditRecord::of_terms(
                lull_engine::lease::AuditKind::Released,
                &lull_engine::lease::LeaseTerms {
                    lease_id: "b".into(),
                    host_id: None,
                    addon_id: "x".into(),
                    job_type: "j".into(),
                    cost_units: 1,
                    priority: lull_proto::msg::lease::Priority::Normal,
                    granted: true,
                    issued_at: 1.0,
                    ttl_sec: 30.0,
                    expected_duration_sec: None,
                    epoch: None,
                },
                None,
                1.0,
            )),
            Effect::Queue(QueueChange::Left("c".into())),
        ];
        let ch = take_changes(&mut fx);
        assert_eq!(
            ch,
            [QueueChange::Left("a".into()), QueueChange::Left("c".into())]
        );
        assert_eq!(fx.len(), 1);
    }
}
