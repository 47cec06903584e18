//! The bounded priority queue of lease requests waiting for room (seed 002
//! §3.6): ordered by priority (HIGH first), then age (first come, first
//! served), with cancel and per-request deadlines. A queue can be rebuilt
//! from persisted waiters in their original order ([`WaitQueue::restore`]).
//! Pure.

use std::collections::{BTreeMap, HashMap};

use lull_proto::msg::lease::{DenyReason, HeavyLeaseRequest, Priority};
use serde::{Deserialize, Serialize};

/// A parked request (also the form it is persisted in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waiter {
    /// The lease id it will be granted under.
    pub lease_id: String,
    /// The request as received.
    pub req: HeavyLeaseRequest,
    /// Units it costs.
    pub units: u32,
    /// Unix seconds when it was parked.
    pub enqueued_at: f64,
    /// Unix seconds after which it gives up.
    pub deadline: f64,
    /// Unix seconds of its next re-evaluation on a plain clock tick (events
    /// such as a release re-evaluate it at once).
    pub retry_at: f64,
    /// Why it is still waiting.
    pub last_code: DenyReason,
    /// The human reason of that.
    pub last_reason: String,
    /// Arrival order, assigned by [`WaitQueue::push`] and kept across
    /// restarts: with the priority it is the waiter's place in the queue.
    #[serde(default)]
    pub pos: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    /// 0 = HIGH, 1 = NORMAL, 2 = LOW.
    rank: u8,
    /// Arrival order.
    seq: u64,
}

fn rank(p: Priority) -> u8 {
    match p {
        Priority::High => 0,
        Priority::Normal => 1,
        Priority::Low => 2,
    }
}

/// The queue.
#[derive(Debug, Clone, Default)]
pub struct WaitQueue {
    max: usize,
    seq: u64,
    entries: BTreeMap<Key, Waiter>,
    index: HashMap<String, Key>,
}

/// What [`WaitQueue::push`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Pushed {
    /// Parked.
    Queued,
    /// Parked; the queue was full, so the lowest-priority youngest waiter
    /// (returned) was evicted to make room.
    Evicted(Box<Waiter>),
    /// The queue is full of waiters at least as important; the request
    /// (returned) was not parked.
    Full(Box<Waiter>),
}

impl WaitQueue {
    /// An empty queue holding at most `max` waiters (at least 1).
    pub fn new(max: usize) -> Self {
        WaitQueue {
            max: max.max(1),
            ..Default::default()
        }
    }

    /// Waiters parked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No waiter.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Parks a waiter (it gets the next arrival order in `pos`). A lease id
    /// already parked is replaced in place, keeping its place.
    pub fn push(&mut self, mut w: Waiter) -> Pushed {
        if let Some(key) = self.index.get(&w.lease_id) {
            w.pos = key.seq;
            self.entries.insert(*key, w);
            return Pushed::Queued;
        }
        let key = Key {
            rank: rank(w.req.priority),
            seq: self.seq,
        };
        let mut evicted = None;
        if self.entries.len() >= self.max {
            let Some((&worst, _)) = self.entries.last_key_value() else {
                return Pushed::Full(Box::new(w));
            };
            if worst.rank <= key.rank {
                return Pushed::Full(Box::new(w));
            }
            if let Some(old) = self.entries.remove(&worst) {
                self.index.remove(&old.lease_id);
                evicted = Some(old);
            }
        }
        self.seq += 1;
        w.pos = key.seq;
        self.index.insert(w.lease_id.clone(), key);
        self.entries.insert(key, w);
        match evicted {
            Some(e) => Pushed::Evicted(Box::new(e)),
            None => Pushed::Queued,
        }
    }

    /// Parks persisted waiters again in their original order (priority,
    /// then `pos`), as they were before a restart or a failover; later
    /// pushes queue behind all of them. Meant for an empty queue: a waiter
    /// whose id or place is taken, and those past the bound (the least
    /// important), are not parked and are returned, in queue order.
    pub fn restore(&mut self, waiters: Vec<Waiter>) -> Vec<Waiter> {
        let mut sorted = waiters;
        sorted.sort_by_key(|w| (rank(w.req.priority), w.pos));
        let mut left = Vec::new();
        for w in sorted {
            let key = Key {
                rank: rank(w.req.priority),
                seq: w.pos,
            };
            let taken = self.index.contains_key(&w.lease_id) || self.entries.contains_key(&key);
            if taken || self.entries.len() >= self.max {
                left.push(w);
                continue;
            }
            self.seq = self.seq.max(w.pos.saturating_add(1));
            self.index.insert(w.lease_id.clone(), key);
            self.entries.insert(key, w);
        }
        left
    }

    /// A waiter by lease id.
    pub fn get(&self, lease_id: &str) -> Option<&Waiter> {
        self.index.get(lease_id).and_then(|k| self.entries.get(k))
    }

    /// A waiter by lease id, mutable (its key fields must not change).
    pub fn get_mut(&mut self, lease_id: &str) -> Option<&mut Waiter> {
        match self.index.get(lease_id) {
            Some(k) => self.entries.get_mut(k),
            None => None,
        }
    }

    /// Whether a lease id is parked.
    pub fn contains(&self, lease_id: &str) -> bool {
        self.index.contains_key(lease_id)
    }

    /// Removes a waiter (cancel, grant, revoke).
    pub fn remove(&mut self, lease_id: &str) -> Option<Waiter> {
        let key = self.index.remove(lease_id)?;
        self.entries.remove(&key)
    }

    /// Removes and returns, in queue order, every waiter whose deadline is
    /// at or before `now`.
    pub fn take_expired(&mut self, now: f64) -> Vec<Waiter> {
        let keys: Vec<Key> = self
            .entries
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(w) = self.entries.remove(&k) {
                self.index.remove(&w.lease_id);
                out.push(w);
            }
        }
        out
    }

    /// Waiters in queue order.
    pub fn iter(&self) -> impl Iterator<Item = &Waiter> {
        self.entries.values()
    }

    /// Lease ids in queue order.
    pub fn ids(&self) -> Vec<String> {
        self.entries.values().map(|w| w.lease_id.clone()).collect()
    }

    /// The soonest deadline or re-evaluation time, so the owner knows when
    /// to tick next.
    pub fn next_wakeup(&self) -> Option<f64> {
        self.entries
            .values()
            .map(|w| w.deadline.min(w.retry_at))
            .min_by(|a, b| a.total_cmp(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(id: &str, p: Priority, at: f64, deadline: f64) -> Waiter {
        Waiter {
            lease_id: id.into(),
            req: HeavyLeaseRequest {
                addon_id: "a".into(),
                job_type: "j".into(),
                host_id: None,
                cost_units: Some(10),
                cost_class: None,
                expected_duration_sec: None,
                priority: p,
                constraints: Default::default(),
                wait: true,
                wait_timeout_sec: None,
            },
            units: 10,
            enqueued_at: at,
            deadline,
            retry_at: at + 5.0,
            last_code: DenyReason::CapacityExceeded,
            last_reason: "full".into(),
            pos: 0,
        }
    }

    #[test]
    fn priority_then_age() {
        let mut q = WaitQueue::new(10);
        q.push(waiter("low1", Priority::Low, 1.0, 100.0));
        q.push(waiter("n1", Priority::Normal, 2.0, 100.0));
        q.push(waiter("h1", Priority::High, 3.0, 100.0));
        q.push(waiter("n2", Priority::Normal, 4.0, 100.0));
        q.push(waiter("h2", Priority::High, 5.0, 100.0));
        assert_eq!(q.ids(), ["h1", "h2", "n1", "n2", "low1"]);
        assert_eq!(q.len(), 5);
    }

    #[test]
    fn cancel_removes_only_that_waiter() {
        let mut q = WaitQueue::new(10);
        q.push(waiter("a", Priority::Normal, 1.0, 100.0));
        q.push(waiter("b", Priority::Normal, 2.0, 100.0));
        assert_eq!(q.remove("a").unwrap().lease_id, "a");
        assert!(q.remove("a").is_none());
        assert!(!q.contains("a"));
        assert!(q.contains("b"));
        assert_eq!(q.ids(), ["b"]);
    }

    #[test]
    fn deadlines() {
        let mut q = WaitQueue::new(10);
        q.push(waiter("a", Priority::Normal, 1.0, 10.0));
        q.push(waiter("b", Priority::High, 1.0, 20.0));
        q.push(waiter("c", Priority::Low, 1.0, 10.0));
        assert_eq!(q.next_wakeup(), Some(6.0));
        assert!(q.take_expired(9.9).is_empty());
        let gone: Vec<String> = q
            .take_expired(10.0)
            .into_iter()
            .map(|w| w.lease_id)
            .collect();
        assert_eq!(gone, ["a", "c"]);
        assert_eq!(q.ids(), ["b"]);
        assert!(q.get("a").is_none());
    }

    #[test]
    fn bounded_with_priority_eviction() {
        let mut q = WaitQueue::new(2);
        assert_eq!(
            q.push(waiter("n1", Priority::Normal, 1.0, 99.0)),
            Pushed::Queued
        );
        assert_eq!(
            q.push(waiter("l1", Priority::Low, 2.0, 99.0)),
            Pushed::Queued
        );
        // Same priority as the worst: refused.
        match q.push(waiter("l2", Priority::Low, 3.0, 99.0)) {
            Pushed::Full(w) => assert_eq!(w.lease_id, "l2"),
            other => panic!("{other:?}"),
        }
        // Higher than the worst: the worst goes.
        match q.push(waiter("h1", Priority::High, 4.0, 99.0)) {
            Pushed::Evicted(w) => assert_eq!(w.lease_id, "l1"),
            other => panic!("{other:?}"),
        }
        assert_eq!(q.ids(), ["h1", "n1"]);
        // NORMAL against a queue of HIGH + NORMAL: refused.
        assert!(matches!(
            q.push(waiter("n2", Priority::Normal, 5.0, 99.0)),
            Pushed::Full(_)
        ));
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn re_push_replaces_in_place() {
        let mut q = WaitQueue::new(2);
        q.push(waiter("a", Priority::Normal, 1.0, 99.0));
        q.push(waiter("b", Priority::Normal, 2.0, 99.0));
        let mut a = waiter("a", Priority::Normal, 1.0, 99.0);
        a.last_reason = "still full".into();
        assert_eq!(q.push(a), Pushed::Queued);
        assert_eq!(q.ids(), ["a", "b"]);
        assert_eq!(q.get("a").unwrap().last_reason, "still full");
        q.get_mut("b").unwrap().retry_at = 1.0;
        assert_eq!(q.next_wakeup(), Some(1.0));
    }

    #[test]
    fn restore_keeps_the_original_order_and_new_ones_queue_behind() {
        let mut q = WaitQueue::new(10);
        q.push(waiter("low1", Priority::Low, 1.0, 100.0));
        q.push(waiter("n1", Priority::Normal, 2.0, 100.0));
        q.push(waiter("h1", Priority::High, 3.0, 100.0));
        q.push(waiter("n2", Priority::Normal, 4.0, 100.0));
        q.push(waiter("h2", Priority::High, 5.0, 100.0));
        // What was persisted, in any order (a table has none).
        let mut saved: Vec<Waiter> = q.iter().cloned().collect();
        saved.reverse();
        saved.swap(0, 3);
        let mut back = WaitQueue::new(10);
        assert!(back.restore(saved).is_empty());
        assert_eq!(back.ids(), q.ids());
        assert_eq!(back.ids(), ["h1", "h2", "n1", "n2", "low1"]);
        // A newcomer of the same priority queues behind the restored ones.
        back.push(waiter("n3", Priority::Normal, 6.0, 100.0));
        back.push(waiter("h3", Priority::High, 7.0, 100.0));
        assert_eq!(back.ids(), ["h1", "h2", "h3", "n1", "n2", "n3", "low1"]);
        let n3 = back.get("n3").unwrap().pos;
        assert!(n3 > back.get("low1").unwrap().pos, "{n3}");
    }

    #[test]
    fn restore_refuses_duplicates_and_overflow() {
        let mut q = WaitQueue::new(10);
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            q.push(waiter(id, Priority::Normal, i as f64, 100.0));
        }
        let mut saved: Vec<Waiter> = q.iter().cloned().collect();
        saved.push(saved[0].clone());
        let mut small = WaitQueue::new(2);
        let left: Vec<String> = small
            .restore(saved)
            .into_iter()
            .map(|w| w.lease_id)
            .collect();
        assert_eq!(small.ids(), ["a", "b"]);
        assert_eq!(left, ["a", "c"]);
    }
}
