//! Unit tests of the crash-safe queue: the queue record kept from the
//! book's [`QueueChange`] effects, a book restarted from it (order,
//! tickets, no resurrection, no second grant).

use std::collections::BTreeMap;

use lull_proto::msg::hosts::QuietState;
use lull_proto::msg::lease::{
    CancelRequest, Constraints, HeavyLeaseRequest, LeaseEventKind, LeaseHandle, LeaseState,
    Priority, ReleaseRequest, RevokeRequest,
};

use super::*;
use crate::lease::config::{CapacityConfig, LeaseConfig};
use crate::lease::policy::HostView;
use crate::lease::queue::Waiter;
use crate::lease::token::LeaseKey;

const T0: f64 = 3_000_000.0;

fn key() -> LeaseKey {
    LeaseKey::from_bytes(vec![7u8; 32]).unwrap()
}

/// Capacity 70 on every QUIET host.
fn cfg() -> LeaseConfig {
    LeaseConfig {
        capacity: CapacityConfig {
            base_units: 70.0,
            units_per_core: 0.0,
            headroom_pct: 0.0,
            score_weight: 0.0,
            ..CapacityConfig::default()
        },
        ..LeaseConfig::default()
    }
}

fn open(prefix: &str, now: f64, grace: bool) -> Book {
    let mut b = Book::new(cfg(), key(), prefix, now);
    if !grace {
        b.skip_grace();
    }
    b.on_hosts_changed(
        vec![HostView::new("h1", QuietState::Quiet, 90.0, 4, now)],
        now,
    );
    b
}

fn req(units: i64, priority: Priority, wait: bool) -> HeavyLeaseRequest {
    HeavyLeaseRequest {
        addon_id: "indexer".into(),
        job_type: "reindex".into(),
        host_id: Some("h1".into()),
        cost_units: Some(units),
        cost_class: None,
        expected_duration_sec: None,
        priority,
        constraints: Constraints::default(),
        wait,
        wait_timeout_sec: None,
    }
}

/// What the shell keeps durably: the queue as recorded from the effects.
#[derive(Default)]
struct Record(BTreeMap<String, Waiter>);

impl Record {
    fn apply(&mut self, fx: &[Effect]) {
        for e in fx {
            match e {
                Effect::Queue(QueueChange::Parked(w)) => {
                    self.0.insert(w.lease_id.clone(), (**w).clone());
                }
                Effect::Queue(QueueChange::Left(id)) => {
                    self.0.remove(id);
                }
                _ => {}
            }
        }
    }

    fn waiters(&self) -> Vec<Waiter> {
        // A table has no order: hand them back shuffled.
        let mut v: Vec<Waiter> = self.0.values().cloned().collect();
        v.reverse();
        v
    }
}

fn ask(b: &mut Book, rec: &mut Record, r: HeavyLeaseRequest, now: f64) -> LeaseHandle {
    let out = b.request(r, now);
    rec.apply(&out.effects);
    LeaseHandle {
        lease_id: out.reply.lease_id.clone().unwrap(),
        token: out.reply.token.clone().unwrap(),
    }
}

fn release(b: &mut Book, rec: &mut Record, h: &LeaseHandle, now: f64) -> Vec<Effect> {
    let out = b
        .release(
            &ReleaseRequest {
                lease_id: h.lease_id.clone(),
                token: h.token.clone(),
                outcome: None,
            },
            now,
        )
        .unwrap();
    assert!(out.reply.ok, "{:?}", out.reply);
    rec.apply(&out.effects);
    out.effects
}

fn granted(fx: &[Effect]) -> Vec<String> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Publish(ev) if ev.event == LeaseEventKind::Granted => Some(ev.lease_id.clone()),
            _ => None,
        })
        .collect()
}

fn left(fx: &[Effect]) -> Vec<String> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Queue(QueueChange::Left(id)) => Some(id.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_restarted_book_grants_restored_waiters_in_order_on_their_tickets() {
    let mut rec = Record::default();
    let mut a = open("a", T0, false);
    let holder = ask(&mut a, &mut rec, req(70, Priority::Normal, false), T0);
    let low = ask(&mut a, &mut rec, req(70, Priority::Low, true), T0 + 1.0);
    let n1 = ask(&mut a, &mut rec, req(70, Priority::Normal, true), T0 + 2.0);
    let h1 = ask(&mut a, &mut rec, req(70, Priority::High, true), T0 + 3.0);
    let n2 = ask(&mut a, &mut rec, req(70, Priority::Normal, true), T0 + 4.0);
    let h2 = ask(&mut a, &mut rec, req(70, Priority::High, true), T0 + 5.0);
    // Three that leave before the crash: cancelled, revoked, timed out.
    let cancelled = ask(&mut a, &mut rec, req(70, Priority::High, true), T0 + 6.0);
    let out = a
        .cancel(
            &CancelRequest {
                lease_id: cancelled.lease_id.clone(),
                token: cancelled.token.clone(),
            },
            T0 + 7.0,
        )
        .unwrap();
    rec.apply(&out.effects);
    let revoked = ask(&mut a, &mut rec, req(70, Priority::High, true), T0 + 7.0);
    let out = a
        .revoke(
            &RevokeRequest {
                lease_id: revoked.lease_id.clone(),
                reason: None,
            },
            T0 + 8.0,
        )
        .unwrap();
    rec.apply(&out.effects);
    let mut short = req(70, Priority::High, true);
    short.wait_timeout_sec = Some(2.0);
    let timed_out = ask(&mut a, &mut rec, short, T0 + 8.0);
    rec.apply(&a.tick(T0 + 10.0));
    assert_eq!(a.queue_len(), 5);
    assert_eq!(rec.0.len(), 5);

    // kill -9: a new book (in its grace period) from the record alone.
    let t1 = T0 + 20.0;
    let mut b = open("b", t1, true);
    let fx = b.restore_queue(rec.waiters(), t1);
    assert!(fx.is_empty(), "{fx:?}");
    assert_eq!(b.queue_len(), 5);
    // Every waiter's ticket still works: its heartbeat finds it queued.
    for w in [&low, &n1, &h1, &n2, &h2] {
        assert_eq!(
            b.heartbeat(w, t1 + 1.0).unwrap_err(),
            BookError::StillQueued(w.lease_id.clone())
        );
    }
    // Those that left are not brought back.
    for gone in [&cancelled, &revoked, &timed_out] {
        let hb = b.heartbeat(gone, t1 + 1.0).unwrap().reply;
        assert!(!hb.ok);
        assert_eq!(hb.state, LeaseState::Expired);
        assert!(!b.is_queued(&gone.lease_id));
    }
    // The holder re-asserts its lease during the grace period.
    assert!(b.heartbeat(&holder, t1 + 2.0).unwrap().reply.ok);
    // A newcomer queues behind the restored waiters of its priority.
    let n3 = ask(&mut b, &mut rec, req(70, Priority::Normal, true), t1 + 3.0);
    let mut after_grace = b.tick(t1 + 31.0);
    rec.apply(&after_grace);
    assert!(granted(&after_grace).is_empty());
    after_grace.clear();
    assert!(b.heartbeat(&holder, t1 + 31.0).unwrap().reply.ok);
    // Room frees one lease at a time: priority, then age.
    let mut order = Vec::new();
    let mut current = holder.clone();
    for i in 0..6 {
        let at = t1 + 32.0 + f64::from(i);
        b.on_hosts_changed(
            vec![HostView::new("h1", QuietState::Quiet, 90.0, 4, at)],
            at,
        );
        let g = granted(&release(
            &mut b,
            &mut rec,
            &current,
            t1 + 32.0 + f64::from(i),
        ));
        assert_eq!(g.len(), 1, "{g:?}");
        let id = g[0].clone();
        let ticket = [&low, &n1, &h1, &n2, &h2, &n3]
            .into_iter()
            .find(|h| h.lease_id == id)
            .unwrap()
            .clone();
        // The ticket's heartbeat now hands over the real token.
        let hb = b
            .heartbeat(&ticket, t1 + 32.5 + f64::from(i))
            .unwrap()
            .reply;
        assert!(hb.ok && hb.token.is_some(), "{hb:?}");
        order.push(id);
        current = ticket;
    }
    let ids = |hs: &[&LeaseHandle]| hs.iter().map(|h| h.lease_id.clone()).collect::<Vec<_>>();
    assert_eq!(order, ids(&[&h1, &h2, &n1, &n2, &n3, &low]));
    assert!(rec.0.is_empty());
    assert_eq!(b.queue_len(), 0);
}

#[test]
fn a_granted_waiter_whose_leave_was_lost_is_not_admitted_twice() {
    let mut rec = Record::default();
    let mut a = open("a", T0, false);
    let holder = ask(&mut a, &mut rec, req(70, Priority::Normal, false), T0);
    let w = ask(&mut a, &mut rec, req(70, Priority::Normal, true), T0 + 1.0);
    let stale = rec.waiters();
    let fx = release(&mut a, &mut rec, &holder, T0 + 2.0);
    assert_eq!(granted(&fx), std::slice::from_ref(&w.lease_id));
    assert_eq!(left(&fx), std::slice::from_ref(&w.lease_id));
    let real = LeaseHandle {
        lease_id: w.lease_id.clone(),
        token: a.heartbeat(&w, T0 + 3.0).unwrap().reply.token.unwrap(),
    };

    // A failover: the replica re-admits the lease first; the stale row is
    // then dropped, not parked.
    let t1 = T0 + 10.0;
    let mut b = open("b", t1, true);
    assert!(b.heartbeat(&real, t1).unwrap().reply.ok);
    b.skip_grace();
    let fx = b.restore_queue(stale.clone(), t1);
    assert_eq!(left(&fx), std::slice::from_ref(&w.lease_id));
    assert_eq!(b.queue_len(), 0);
    assert_eq!(b.used_units("h1"), 70);

    // A restart from the stale record alone: the waiter is parked again,
    // then the holder's granted token takes it out of the queue and is
    // re-admitted once; the queue never grants it a second time.
    let mut c = open("c", t1, true);
    assert!(c.restore_queue(stale, t1).is_empty());
    assert!(c.is_queued(&w.lease_id));
    let out = c.heartbeat(&real, t1 + 1.0).unwrap();
    assert!(out.reply.ok, "{:?}", out.reply);
    assert_eq!(left(&out.effects), std::slice::from_ref(&w.lease_id));
    assert!(!c.is_queued(&w.lease_id));
    assert_eq!(c.used_units("h1"), 70);
    c.on_hosts_changed(
        vec![HostView::new("h1", QuietState::Quiet, 90.0, 4, t1 + 30.0)],
        t1 + 30.0,
    );
    assert!(c.heartbeat(&real, t1 + 30.0).unwrap().reply.ok);
    let fx = c.tick(t1 + 31.0);
    assert!(granted(&fx).is_empty());
    assert_eq!(c.used_units("h1"), 70);
    // The ticket still works for the granted lease, which is live once.
    let hb = c.heartbeat(&w, t1 + 32.0).unwrap().reply;
    assert!(hb.ok);
    assert_eq!(c.active_len(), 1);
}

#[test]
fn ended_ids_and_waiters_past_the_bound_are_not_parked_again() {
    let mut rec = Record::default();
    let mut a = open("a", T0, false);
    ask(&mut a, &mut rec, req(70, Priority::Normal, false), T0);
    let w1 = ask(&mut a, &mut rec, req(70, Priority::High, true), T0 + 1.0);
    let w2 = ask(&mut a, &mut rec, req(70, Priority::Normal, true), T0 + 2.0);
    let w3 = ask(&mut a, &mut rec, req(70, Priority::Low, true), T0 + 3.0);
    let mut small = cfg();
    small.queue_max = 1;
    let mut b = Book::new(small, key(), "b", T0 + 5.0);
    b.restore_tombstones([(w1.lease_id.clone(), LeaseState::Released)]);
    let fx = b.restore_queue(rec.waiters(), T0 + 5.0);
    // w1 ended (tombstone): dropped; w2 parked; w3 past the bound gives up.
    assert_eq!(left(&fx), [w1.lease_id.clone(), w3.lease_id.clone()]);
    let expired: Vec<String> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Publish(ev) if ev.event == LeaseEventKind::Expired => Some(ev.lease_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(expired, std::slice::from_ref(&w3.lease_id));
    assert!(b.is_queued(&w2.lease_id));
    assert_eq!(b.queue_len(), 1);
}
