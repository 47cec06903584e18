//! The lease wait queue in Postgres (`lease_queue`): one row per waiting
//! request, so that waiters survive a restart or a failover. The
//! scheduler's queue writer applies the book's queue changes here in
//! batches, one fenced transaction each; a new leader loads the rows at its
//! takeover.

use std::collections::HashMap;

use deadpool_postgres::Pool;
use lull_engine::lease::queue::Waiter;
use lull_engine::lease::QueueChange;
use lull_proto::msg::lease::Priority;

use super::StoreError;

/// Queue changes folded for one write: rows to insert and ids to delete. A
/// waiter that parks and leaves within the same batch is written not at all
/// (an id never parks again after leaving, so the order of the two
/// statements does not matter).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct QueueWrite {
    /// Waiters parked, by lease id.
    pub parked: HashMap<String, Waiter>,
    /// Ids that left the queue.
    pub left: Vec<String>,
}

impl QueueWrite {
    /// Folds one change in.
    pub fn add(&mut self, change: QueueChange) {
        match change {
            QueueChange::Parked(w) => {
                self.parked.insert(w.lease_id.clone(), *w);
            }
            QueueChange::Left(id) => {
                if self.parked.remove(&id).is_none() {
                    self.left.push(id);
                }
            }
        }
    }

    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.parked.is_empty() && self.left.is_empty()
    }

    /// Rows touched.
    pub fn len(&self) -> usize {
        self.parked.len() + self.left.len()
    }
}

fn rank(p: Priority) -> i16 {
    match p {
        Priority::High => 0,
        Priority::Normal => 1,
        Priority::Low => 2,
    }
}

/// Applies `w` in one transaction, fenced by `epoch`: the transaction takes
/// a share lock on the election row and is refused ([`StoreError::Fenced`])
/// unless the row's epoch is `epoch`, so a former leader's change either
/// commits before the next leader's epoch increment (which waits for the
/// lock, and then loads the queue) or never. `None` writes unfenced (no
/// election: tools and tests).
pub async fn apply(pool: &Pool, epoch: Option<u64>, w: &QueueWrite) -> Result<(), StoreError> {
    if w.is_empty() {
        return Ok(());
    }
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    if let Some(mine) = epoch {
        super::fence::check_epoch(&tx, mine).await?;
    }
    let epoch_col = i64::try_from(epoch.unwrap_or(0)).unwrap_or(i64::MAX);
    if !w.parked.is_empty() {
        let mut ids = Vec::with_capacity(w.parked.len());
        let mut ranks = Vec::with_capacity(w.parked.len());
        let mut positions = Vec::with_capacity(w.parked.len());
        let mut bodies = Vec::with_capacity(w.parked.len());
        for (id, waiter) in &w.parked {
            ids.push(id.as_str());
            ranks.push(rank(waiter.req.priority));
            positions.push(i64::try_from(waiter.pos).unwrap_or(i64::MAX));
            bodies.push(serde_json::to_value(waiter).map_err(StoreError::Encode)?);
        }
        tx.execute(
            "INSERT INTO lease_queue (lease_id, rank, pos, epoch, waiter)
             SELECT id, r, p, $4, w FROM UNNEST($1::text[], $2::int2[], $3::int8[], $5::jsonb[])
               AS t(id, r, p, w)
             ON CONFLICT (lease_id) DO NOTHING",
            &[&ids, &ranks, &positions, &epoch_col, &bodies],
        )
        .await?;
    }
    if !w.left.is_empty() {
        tx.execute(
            "DELETE FROM lease_queue WHERE lease_id = ANY($1)",
            &[&w.left],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// What [`load`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every readable waiter (in no particular order).
    pub waiters: Vec<Waiter>,
    /// Ids of rows that could not be read (with why); the caller forgets
    /// them rather than refusing to lead.
    pub unreadable: Vec<(String, String)>,
}

/// Every waiter in the table.
pub async fn load(pool: &Pool) -> Result<Loaded, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query("SELECT lease_id, waiter FROM lease_queue", &[])
        .await?;
    let mut out = Loaded::default();
    for r in rows {
        let id: String = r.get(0);
        let body: serde_json::Value = r.get(1);
        match serde_json::from_value::<Waiter>(body) {
            Ok(w) if w.lease_id == id => out.waiters.push(w),
            Ok(w) => out
                .unreadable
                .push((id, format!("the row holds waiter {}", w.lease_id))),
            Err(e) => out.unreadable.push((id, e.to_string())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_proto::msg::lease::{DenyReason, HeavyLeaseRequest};

    fn waiter(id: &str) -> Waiter {
        Waiter {
            lease_id: id.into(),
            req: HeavyLeaseRequest {
                addon_id: "a".into(),
                job_type: "j".into(),
                host_id: None,
                cost_units: Some(1),
                cost_class: None,
                expected_duration_sec: None,
                priority: Priority::Normal,
                constraints: Default::default(),
                wait: true,
                wait_timeout_sec: None,
            },
            units: 1,
            enqueued_at: 1.0,
            deadline: 2.0,
            retry_at: 1.5,
            last_code: DenyReason::CapacityExceeded,
            last_reason: "full".into(),
            pos: 3,
        }
    }

    #[test]
    fn a_waiter_that_parks_and_leaves_in_one_batch_is_not_written() {
        let mut w = QueueWrite::default();
        w.add(QueueChange::Parked(Box::new(waiter("a"))));
        w.add(QueueChange::Parked(Box::new(waiter("b"))));
        w.add(QueueChange::Left("a".into()));
        w.add(QueueChange::Left("old".into()));
        assert_eq!(w.parked.keys().collect::<Vec<_>>(), ["b"]);
        assert_eq!(w.left, ["old"]);
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn a_waiter_round_trips_through_its_stored_form() {
        let w = waiter("x");
        let v = serde_json::to_value(&w).unwrap();
        assert_eq!(serde_json::from_value::<Waiter>(v).unwrap(), w);
    }
}
