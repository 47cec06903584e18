//! Property tests of the lease book: over random interleavings of
//! requests (direct, placed, queued), heartbeats, reports, releases,
//! cancels, revokes, host changes, clock steps and expiries,
//! * used units on a host never exceed the capacity the granted request was
//!   judged against, nor the host's ceiling;
//! * the book's used units always equal the sum of its active leases, and
//!   a shadow ledger replayed from the published events agrees;
//! * every grant satisfies the policy (not blocked, stale, PANIC, cooling
//!   down; QUIET unless HIGH priority; no grant during the grace period);
//! * each lease reaches exactly one terminal state (`RELEASED`, `EXPIRED`
//!   or `REVOKED`), nothing happens to it afterwards, and late heartbeats
//!   report that state;
//! * the queue record replayed from the [`QueueChange`] effects always
//!   holds exactly the book's waiters, a waiter that left never comes back,
//!   and no id is granted while the record still has it queued.

use std::collections::{HashMap, HashSet};

use lull_proto::msg::hosts::QuietState;
use lull_proto::msg::lease::{Constraints, LeaseEventKind};
use proptest::prelude::*;

use lull_proto::msg::lease::{
    CancelRequest, HeavyLeaseRequest, LeaseHandle, LeaseState, Priority, ProgressReport,
    ReleaseRequest, RevokeRequest,
};

use super::*;
use crate::lease::capacity::{calculate_capacity, ceiling};
use crate::lease::config::LeaseConfig;
use crate::lease::policy::judge;
use crate::lease::policy::HostView;
use crate::lease::token::LeaseKey;

const T0: f64 = 2_000_000.0;
const HOSTS: [(&str, u32); 3] = [("h0", 2), ("h1", 4), ("h2", 8)];

#[derive(Debug, Clone)]
enum Op {
    Request {
        addon: u8,
        host: Option<usize>,
        units: i64,
        priority: u8,
        constraints: (bool, bool, bool),
        wait: bool,
        timeout: Option<f64>,
    },
    Heartbeat(usize),
    Report(usize),
    Release(usize),
    Cancel(usize),
    Revoke(usize),
    Host(usize, u8),
    Step(f64),
}

fn op() -> impl Strategy<Value = Op> {
    let request = (
        0u8..3,
        prop::option::weighted(0.7, 0usize..3),
        prop_oneof![1i64..=20, 1i64..=100],
        0u8..3,
        (any::<bool>(), any::<bool>(), any::<bool>()),
        any::<bool>(),
        prop::option::of(0.0f64..120.0),
    )
        .prop_map(
            |(addon, host, units, priority, constraints, wait, timeout)| Op::Request {
                addon,
                host,
                units,
                priority,
                constraints,
                wait,
                timeout,
            },
        );
    prop_oneof![
        6 => request,
        4 => any::<usize>().prop_map(Op::Heartbeat),
        1 => any::<usize>().prop_map(Op::Report),
        2 => any::<usize>().prop_map(Op::Release),
        1 => any::<usize>().prop_map(Op::Cancel),
        1 => any::<usize>().prop_map(Op::Revoke),
        2 => (0usize..3, 0u8..9).prop_map(|(h, v)| Op::Host(h, v)),
        3 => prop_oneof![0.0f64..5.0, 0.0f64..40.0].prop_map(Op::Step),
    ]
}

fn host_view(idx: usize, variant: u8, now: f64) -> HostView {
    let (id, cores) = HOSTS[idx];
    let mut v = HostView::new(id, QuietState::Quiet, 95.0, cores, now);
    match variant {
        0 => {}
        1 => v.quiet_score = 70.0,
        2 => {
            v.state = QuietState::Normal;
            v.quiet_score = 55.0;
        }
        3 => {
            // CPU-busy, idle disks and network.
            v.state = QuietState::Busy;
            v.quiet_score = 30.0;
            v.cpu_avg_pct = Some(95.0);
            v.load_per_core = Some(1.8);
            v.mem_pct = Some(40.0);
            v.io_pressure = Some(1.0);
            v.disk_free_pct = Some(60.0);
            v.net_bps = Some(1e6);
        }
        4 => {
            v.state = QuietState::Panic;
            v.quiet_score = 5.0;
        }
        5 => v.cooldown_until = Some(now + 15.0),
        6 => v.blocked = true,
        7 => {
            v.io_pressure = Some(40.0);
            v.net_bps = Some(8e7);
        }
        _ => v.stale = true,
    }
    v
}

fn request(op: &Op) -> Option<HeavyLeaseRequest> {
    let Op::Request {
        addon,
        host,
        units,
        priority,
        constraints,
        wait,
        timeout,
    } = op
    else {
        return None;
    };
    Some(HeavyLeaseRequest {
        addon_id: format!("addon{addon}"),
        job_type: "job".into(),
        host_id: host.map(|h| HOSTS[h].0.to_string()),
        cost_units: Some(*units),
        cost_class: None,
        expected_duration_sec: None,
        priority: match priority {
            0 => Priority::Low,
            1 => Priority::Normal,
            _ => Priority::High,
        },
        constraints: Constraints {
            cpu_heavy: constraints.0,
            disk_write_heavy: constraints.1,
            network_heavy: constraints.2,
        },
        wait: *wait,
        wait_timeout_sec: *timeout,
    })
}

/// The test's own ledger, rebuilt only from what the book published.
#[derive(Default)]
struct Ledger {
    /// Granted and not ended: host, units.
    active: HashMap<String, (String, u32)>,
    /// Per-host units according to the events.
    used: HashMap<String, u32>,
    /// Ids that were granted.
    granted: HashSet<String>,
    /// Terminal event of each id.
    terminal: HashMap<String, LeaseEventKind>,
    /// The request behind each lease id handed out.
    requests: HashMap<String, HeavyLeaseRequest>,
    /// The queue as recorded from the queue changes.
    queued: HashSet<String>,
    /// Ids that left the queue.
    left: HashSet<String>,
}

fn replay(b: &Book, l: &mut Ledger, fx: &[Effect], now: f64) -> Result<(), TestCaseError> {
    let cfg = b.config().clone();
    for e in fx {
        match e {
            Effect::Queue(QueueChange::Parked(w)) => {
                prop_assert!(!l.left.contains(&w.lease_id), "{} parked again", w.lease_id);
                prop_assert!(l.queued.insert(w.lease_id.clone()));
            }
            Effect::Queue(QueueChange::Left(id)) => {
                prop_assert!(l.queued.remove(id), "{id} left but was not recorded");
                l.left.insert(id.clone());
            }
            _ => {}
        }
        let Effect::Publish(ev) = e else { continue };
        let id = ev.lease_id.clone();
        prop_assert!(
            ev.event != LeaseEventKind::Granted || !l.queued.contains(&id),
            "{id} granted while recorded as queued"
        );
        prop_assert!(
            !l.terminal.contains_key(&id),
            "event {:?} after terminal {:?} for {id}",
            ev.event,
            l.terminal.get(&id)
        );
        match ev.event {
            LeaseEventKind::Granted => {
                prop_assert!(!b.in_grace(now), "grant during the grace period");
                prop_assert!(l.granted.insert(id.clone()), "{id} granted twice");
                let req = l.requests.get(&id).cloned();
                prop_assert!(req.is_some(), "grant of an unknown request {id}");
                let req = req.unwrap_or_else(|| unreachable!());
                let host = ev.host_id.clone().unwrap_or_default();
                let units = cfg.units_for(&req);
                let used = l.used.entry(host.clone()).or_insert(0);
                *used += units;
                let used = *used;
                l.active.insert(id.clone(), (host.clone(), units));
                let view = b.hosts().get(&host).cloned();
                prop_assert!(view.is_some(), "grant on unknown host {host}");
                let view = view.unwrap_or_else(|| unreachable!());
                prop_assert!(!view.is_blocked(now) && !view.is_stale(now, &cfg));
                prop_assert!(view.state != QuietState::Panic);
                prop_assert!(!view.cooldown_until.is_some_and(|c| c > now));
                let j = judge(&req.constraints, &view, &cfg.constraints);
                prop_assert!(j.state != QuietState::Panic);
                prop_assert!(j.state == QuietState::Quiet || req.priority == Priority::High);
                let cap =
                    calculate_capacity(view.cpu_count, j.state, view.quiet_score, &cfg.capacity);
                prop_assert!(
                    used <= cap,
                    "{host}: used {used} > capacity {cap} after granting {id}"
                );
                prop_assert!(used <= ceiling(view.cpu_count, &cfg.capacity));
            }
            kind => {
                if let Some((host, units)) = l.active.remove(&id) {
                    if let Some(u) = l.used.get_mut(&host) {
                        *u -= units;
                    }
                } else {
                    // Only a waiter that never got a grant ends without one.
                    prop_assert!(!l.granted.contains(&id));
                    prop_assert!(
                        kind != LeaseEventKind::Released,
                        "release of an ungranted {id}"
                    );
                }
                l.terminal.insert(id, kind);
            }
        }
    }
    Ok(())
}

fn check_book(b: &Book, l: &Ledger) -> Result<(), TestCaseError> {
    let mut sums: HashMap<String, u32> = HashMap::new();
    for info in b.active_leases() {
        *sums.entry(info.host_id.clone()).or_insert(0) += info.cost_units;
        prop_assert!(
            l.active.contains_key(&info.lease_id),
            "{} active without GRANTED",
            info.lease_id
        );
    }
    prop_assert_eq!(b.active_len(), l.active.len());
    prop_assert_eq!(b.queue_len(), l.queued.len());
    for id in &l.queued {
        prop_assert!(b.is_queued(id), "{id} recorded as queued, not in the book");
    }
    for (id, cores) in HOSTS {
        let used = b.used_units(id);
        prop_assert_eq!(used, sums.get(id).copied().unwrap_or(0));
        prop_assert_eq!(used, l.used.get(id).copied().unwrap_or(0));
        prop_assert!(used <= ceiling(cores, &b.config().capacity));
    }
    Ok(())
}

fn pick(handles: &[LeaseHandle], i: usize) -> Option<LeaseHandle> {
    (!handles.is_empty()).then(|| handles[i % handles.len()].clone())
}

fn run(ops: Vec<Op>, grace: bool) -> Result<(), TestCaseError> {
    let cfg = LeaseConfig {
        burst: 50.0,
        ..LeaseConfig::default()
    };
    let key = LeaseKey::from_bytes(vec![9u8; 32]).unwrap_or_else(|_| unreachable!());
    let mut b = Book::new(cfg, key, "p", T0);
    if !grace {
        b.skip_grace();
    }
    let mut now = T0;
    let views: Vec<HostView> = (0..3).map(|i| host_view(i, 0, now)).collect();
    b.on_hosts_changed(views, now);
    let mut l = Ledger::default();
    let mut handles: Vec<LeaseHandle> = Vec::new();

    for op in ops {
        let fx = match &op {
            Op::Request { .. } => {
                let req = request(&op).unwrap_or_else(|| unreachable!());
                let out = b.request(req.clone(), now);
                if let Some(id) = &out.reply.lease_id {
                    prop_assert!(out.reply.approved || out.reply.queued);
                    l.requests.insert(id.clone(), req);
                    if let Some(token) = &out.reply.token {
                        handles.push(LeaseHandle {
                            lease_id: id.clone(),
                            token: token.clone(),
                        });
                    }
                } else {
                    prop_assert!(!out.reply.approved);
                    prop_assert!(out.reply.reason_code.is_some());
                    let retry = out.reply.retry_after_sec.unwrap_or(0.0);
                    prop_assert!((1.0..=3600.0).contains(&retry), "retry {retry}");
                }
                out.effects
            }
            Op::Heartbeat(i) => {
                let Some(h) = pick(&handles, *i) else {
                    continue;
                };
                match b.heartbeat(&h, now) {
                    Ok(out) => {
                        let ended = l.terminal.get(&h.lease_id).copied();
                        if let Some(kind) = ended {
                            prop_assert!(!out.reply.ok, "heartbeat ok after {kind:?}");
                            if let Some(state) = b.ended_state(&h.lease_id) {
                                let want = match kind {
                                    LeaseEventKind::Released => LeaseState::Released,
                                    LeaseEventKind::Revoked => LeaseState::Revoked,
                                    _ => LeaseState::Expired,
                                };
                                prop_assert_eq!(state, want);
                                prop_assert_eq!(out.reply.state, want);
                            }
                        } else {
                            prop_assert!(out.reply.ok);
                        }
                        if let Some(t) = out.reply.token.clone() {
                            let idx = *i % handles.len();
                            handles[idx].token = t;
                        }
                        out.effects
                    }
                    Err(BookError::StillQueued(id)) => {
                        prop_assert!(b.is_queued(&id));
                        continue;
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("heartbeat: {e}"))),
                }
            }
            Op::Report(i) => {
                let Some(h) = pick(&handles, *i) else {
                    continue;
                };
                let r = ProgressReport {
                    lease_id: h.lease_id.clone(),
                    token: h.token.clone(),
                    progress_pct: Some(50.0),
                    message: None,
                    metrics: None,
                };
                match b.report(&r, now) {
                    Ok(out) => out.effects,
                    Err(e) => return Err(TestCaseError::fail(format!("report: {e}"))),
                }
            }
            Op::Release(i) | Op::Cancel(i) => {
                let Some(h) = pick(&handles, *i) else {
                    continue;
                };
                let res = if matches!(op, Op::Release(_)) {
                    b.release(
                        &ReleaseRequest {
                            lease_id: h.lease_id.clone(),
                            token: h.token.clone(),
                            outcome: None,
                        },
                        now,
                    )
                } else {
                    b.cancel(
                        &CancelRequest {
                            lease_id: h.lease_id.clone(),
                            token: h.token.clone(),
                        },
                        now,
                    )
                };
                match res {
                    Ok(out) => {
                        // A withdrawn waiter ends silently: note it.
                        if out.reply.ok && !l.granted.contains(&h.lease_id) {
                            l.terminal
                                .insert(h.lease_id.clone(), LeaseEventKind::Released);
                        }
                        out.effects
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("release: {e}"))),
                }
            }
            Op::Revoke(i) => {
                let Some(h) = pick(&handles, *i) else {
                    continue;
                };
                let r = RevokeRequest {
                    lease_id: h.lease_id.clone(),
                    reason: None,
                };
                match b.revoke(&r, now) {
                    Ok(out) => out.effects,
                    Err(e) => return Err(TestCaseError::fail(format!("revoke: {e}"))),
                }
            }
            Op::Host(h, v) => b.on_hosts_changed(vec![host_view(*h, *v, now)], now),
            Op::Step(dt) => {
                now += dt;
                b.tick(now)
            }
        };
        replay(&b, &mut l, &fx, now)?;
        check_book(&b, &l)?;
    }

    // Let everything run out: every granted lease ends exactly once.
    now += 10_000.0;
    let fx = b.tick(now);
    replay(&b, &mut l, &fx, now)?;
    check_book(&b, &l)?;
    prop_assert_eq!(b.active_len(), 0);
    prop_assert_eq!(b.queue_len(), 0);
    for id in &l.granted {
        prop_assert!(l.terminal.contains_key(id), "{id} never ended");
    }
    for h in &handles {
        prop_assert!(
            l.terminal.contains_key(&h.lease_id),
            "{} never ended",
            h.lease_id
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn capacity_holds_and_every_lease_ends_once(ops in prop::collection::vec(op(), 1..120)) {
        run(ops, false)?;
    }

    #[test]
    fn the_same_holds_from_a_start_in_grace(ops in prop::collection::vec(op(), 1..80)) {
        run(ops, true)?;
    }
}

/// Restarts with the same key: leases re-asserted during the grace period
/// never push a host past its ceiling, and after the grace period new
/// grants count them.
mod restart {
    use super::*;

    #[derive(Debug, Clone)]
    enum ROp {
        Request(usize, i64),
        Heartbeat(usize),
        Step(f64),
        Restart,
    }

    fn rop() -> impl Strategy<Value = ROp> {
        prop_oneof![
            4 => (0usize..3, 1i64..=60).prop_map(|(h, u)| ROp::Request(h, u)),
            4 => any::<usize>().prop_map(ROp::Heartbeat),
            2 => (0.0f64..20.0).prop_map(ROp::Step),
            1 => Just(ROp::Restart),
        ]
    }

    fn fresh(key: &LeaseKey, boot: u32, now: f64) -> Book {
        let mut b = Book::new(LeaseConfig::default(), key.clone(), format!("b{boot}"), now);
        let views: Vec<HostView> = (0..3).map(|i| host_view(i, 0, now)).collect();
        b.on_hosts_changed(views, now);
        b
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn reasserted_leases_never_overfill_a_host(ops in prop::collection::vec(rop(), 1..100)) {
            let key = LeaseKey::from_bytes(vec![3u8; 32]).unwrap_or_else(|_| unreachable!());
            let mut now = T0;
            let mut boot = 0;
            let mut b = fresh(&key, boot, now);
            let mut handles: Vec<LeaseHandle> = Vec::new();
            for op in ops {
                match op {
                    ROp::Request(h, units) => {
                        let r = HeavyLeaseRequest {
                            addon_id: format!("a{}", units % 3),
                            job_type: "j".into(),
                            host_id: Some(HOSTS[h].0.to_string()),
                            cost_units: Some(units),
                            cost_class: None,
                            expected_duration_sec: None,
                            priority: Priority::Normal,
                            constraints: Constraints::default(),
                            wait: false,
                            wait_timeout_sec: None,
                        };
                        let before = b.used_units(HOSTS[h].0);
                        let out = b.request(r, now);
                        if out.reply.approved {
                            prop_assert!(!b.in_grace(now));
                            let cap = calculate_capacity(HOSTS[h].1, QuietState::Quiet, 95.0, &b.config().capacity);
                            prop_assert!(before + units as u32 <= cap);
                            handles.push(LeaseHandle {
                                lease_id: out.reply.lease_id.clone().unwrap_or_default(),
                                token: out.reply.token.clone().unwrap_or_default(),
                            });
                        }
                    }
                    ROp::Heartbeat(i) => {
                        if let Some(h) = pick(&handles, i) {
                            let r = b.heartbeat(&h, now);
                            prop_assert!(r.is_ok(), "{r:?}");
                        }
                    }
                    ROp::Step(dt) => {
                        now += dt;
                        let views: Vec<HostView> = (0..3).map(|i| host_view(i, 0, now)).collect();
                        b.on_hosts_changed(views, now);
                        b.tick(now);
                    }
                    ROp::Restart => {
                        boot += 1;
                        b = fresh(&key, boot, now);
                    }
                }
                for (id, cores) in HOSTS {
                    let used = b.used_units(id);
                    let sum: u32 = b.active_leases().filter(|l| l.host_id == id).map(|l| l.cost_units).sum();
                    prop_assert_eq!(used, sum);
                    prop_assert!(used <= ceiling(cores, &b.config().capacity), "{id}: {used}");
                }
            }
        }
    }
}
