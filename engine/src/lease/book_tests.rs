//! Unit tests of the lease book.

use lull_proto::error::ErrorCode;
use lull_proto::msg::lease::{
    CancelRequest, DenyReason, HeavyLeaseRequest, HeavyLeaseResponse, LeaseEventKind, LeaseHandle,
    LeaseState, Priority, ProgressReport, ReleaseRequest, RevokeRequest,
};

use super::*;
use crate::lease::config::CapacityConfig;
use crate::lease::config::LeaseConfig;
use crate::lease::policy::HostView;
use crate::lease::token::{self, LeaseKey};
use lull_proto::msg::hosts::QuietState;
use lull_proto::msg::lease::Constraints;

const T0: f64 = 1_000_000.0;

fn key() -> LeaseKey {
    LeaseKey::from_bytes(vec![42u8; 32]).unwrap()
}

/// Capacity 70 on every QUIET host, whatever its cores and score.
fn cfg() -> LeaseConfig {
    LeaseConfig {
        capacity: CapacityConfig {
            base_units: 70.0,
            units_per_core: 0.0,
            headroom_pct: 0.0,
            score_weight: 0.0,
            normal_factor: 0.5,
            busy_factor: 0.2,
            ..CapacityConfig::default()
        },
        ..LeaseConfig::default()
    }
}

fn view(id: &str, state: QuietState, now: f64) -> HostView {
    HostView::new(id, state, 90.0, 4, now)
}

fn book_with(cfg: LeaseConfig) -> Book {
    let mut b = Book::new(cfg, key(), "t", T0);
    b.skip_grace();
    b.on_hosts_changed(vec![view("h1", QuietState::Quiet, T0)], T0);
    b
}

fn book() -> Book {
    book_with(cfg())
}

fn req(units: i64) -> HeavyLeaseRequest {
    HeavyLeaseRequest {
        addon_id: "indexer".into(),
        job_type: "reindex".into(),
        host_id: Some("h1".into()),
        cost_units: Some(units),
        cost_class: None,
        expected_duration_sec: None,
        priority: Priority::Normal,
        constraints: Constraints::default(),
        wait: false,
        wait_timeout_sec: None,
    }
}

fn waiting(units: i64) -> HeavyLeaseRequest {
    let mut r = req(units);
    r.wait = true;
    r
}

fn handle(resp: &HeavyLeaseResponse) -> LeaseHandle {
    LeaseHandle {
        lease_id: resp.lease_id.clone().unwrap(),
        token: resp.token.clone().unwrap(),
    }
}

fn events(fx: &[Effect]) -> Vec<(String, LeaseEventKind)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Publish(ev) => Some((ev.lease_id.clone(), ev.event)),
            Effect::Audit(_) | Effect::Queue(_) => None,
        })
        .collect()
}

fn audits(fx: &[Effect]) -> Vec<AuditKind> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Audit(a) => Some(a.kind),
            Effect::Publish(_) | Effect::Queue(_) => None,
        })
        .collect()
}

fn release_req(h: &LeaseHandle) -> ReleaseRequest {
    ReleaseRequest {
        lease_id: h.lease_id.clone(),
        token: h.token.clone(),
        outcome: Some("success".into()),
    }
}

fn grant(b: &mut Book, units: i64, now: f64) -> LeaseHandle {
    let out = b.request(req(units), now);
    assert!(out.reply.approved, "{:?}", out.reply);
    handle(&out.reply)
}

#[test]
fn grant_heartbeat_release() {
    let mut b = book();
    let out = b.request(req(30), T0);
    let r = &out.reply;
    assert!(r.approved);
    assert_eq!(r.host_id.as_deref(), Some("h1"));
    assert_eq!(r.expires_at, Some(T0 + 30.0));
    assert_eq!(r.limits.unwrap().heartbeat_interval_sec, 10.0);
    assert_eq!(
        r.reason.as_deref(),
        Some("Granted 30 units on h1 (used=30, capacity=70)")
    );
    assert!(r.reason_code.is_none());
    let h = handle(r);
    assert_eq!(h.lease_id, format!("t-{:x}-1", (T0 * 1000.0) as u64));
    assert_eq!(
        events(&out.effects),
        [(h.lease_id.clone(), LeaseEventKind::Granted)]
    );
    assert_eq!(
        audits(&out.effects),
        [AuditKind::Requested, AuditKind::Granted]
    );
    assert_eq!(b.used_units("h1"), 30);

    let hb = b.heartbeat(&h, T0 + 10.0).unwrap().reply;
    assert!(hb.ok);
    assert_eq!(hb.state, LeaseState::Active);
    assert_eq!(hb.expires_at, Some(T0 + 40.0));
    assert!(hb.token.is_none());

    let out = b.release(&release_req(&h), T0 + 12.0).unwrap();
    assert!(out.reply.ok);
    assert_eq!(
        events(&out.effects),
        [(h.lease_id.clone(), LeaseEventKind::Released)]
    );
    assert_eq!(audits(&out.effects), [AuditKind::Released]);
    assert_eq!(b.used_units("h1"), 0);
    assert_eq!(b.active_len(), 0);

    // Late heartbeat and second release learn the final state.
    let hb = b.heartbeat(&h, T0 + 13.0).unwrap().reply;
    assert!(!hb.ok);
    assert_eq!(hb.state, LeaseState::Released);
    assert_eq!(
        hb.reason.as_deref(),
        Some(format!("lease {} is RELEASED: success", h.lease_id).as_str())
    );
    let again = b.release(&release_req(&h), T0 + 14.0).unwrap().reply;
    assert!(!again.ok);

    let st = b.status(T0 + 14.0);
    assert_eq!(st.leases.recent.len(), 1);
    assert_eq!(st.leases.recent[0].state, LeaseState::Released);
    assert_eq!(st.leases.recent[0].outcome.as_deref(), Some("success"));
    assert_eq!(st.leases.recent[0].ended_at, Some(T0 + 12.0));
}

#[test]
fn only_the_token_holder_may_act() {
    let mut b = book();
    let a = grant(&mut b, 10, T0);
    let other = grant(&mut b, 10, T0);
    let forged = LeaseHandle {
        lease_id: a.lease_id.clone(),
        token: "v1.AAAA.AAAA".into(),
    };
    assert_eq!(
        b.heartbeat(&forged, T0).unwrap_err(),
        BookError::Forbidden(a.lease_id.clone())
    );
    // Another lease's valid token.
    let swapped = LeaseHandle {
        lease_id: a.lease_id.clone(),
        token: other.token.clone(),
    };
    assert!(matches!(
        b.heartbeat(&swapped, T0),
        Err(BookError::Forbidden(_))
    ));
    assert!(matches!(
        b.release(&release_req(&swapped), T0),
        Err(BookError::Forbidden(_))
    ));
    let rep = ProgressReport {
        lease_id: a.lease_id.clone(),
        token: other.token.clone(),
        progress_pct: Some(5.0),
        message: None,
        metrics: None,
    };
    assert!(matches!(b.report(&rep, T0), Err(BookError::Forbidden(_))));
    // Nothing changed.
    assert_eq!(b.used_units("h1"), 20);
    // Unknown lease with a meaningless token.
    let unknown = LeaseHandle {
        lease_id: "nope".into(),
        token: "x".into(),
    };
    let e = b.heartbeat(&unknown, T0).unwrap_err();
    assert_eq!(e, BookError::NotFound("nope".into()));
    assert_eq!(e.code(), ErrorCode::NotFound);
    assert_eq!(
        BookError::Forbidden("x".into()).code(),
        ErrorCode::Forbidden
    );
    let rv = RevokeRequest {
        lease_id: "nope".into(),
        reason: None,
    };
    assert_eq!(
        b.revoke(&rv, T0).unwrap_err(),
        BookError::NotFound("nope".into())
    );
}

#[test]
fn expiry_without_heartbeat() {
    let mut b = book();
    let h = grant(&mut b, 30, T0);
    let kept = grant(&mut b, 10, T0);
    assert!(b.tick(T0 + 29.9).is_empty());
    b.heartbeat(&kept, T0 + 29.0).unwrap();
    let fx = b.tick(T0 + 30.0);
    assert_eq!(events(&fx), [(h.lease_id.clone(), LeaseEventKind::Expired)]);
    assert_eq!(audits(&fx), [AuditKind::Expired]);
    assert_eq!(b.used_units("h1"), 10);
    let hb = b.heartbeat(&h, T0 + 31.0).unwrap().reply;
    assert!(!hb.ok);
    assert_eq!(hb.state, LeaseState::Expired);
    assert!(hb.reason.unwrap().contains("no heartbeat for 30s"));
    // The heartbeated one lives on until 29 + 30.
    assert!(b.tick(T0 + 58.9).is_empty());
    assert_eq!(events(&b.tick(T0 + 59.0)).len(), 1);
}

#[test]
fn revoke_is_pushed_to_the_holder() {
    let mut b = book();
    let h = grant(&mut b, 30, T0);
    let out = b
        .revoke(
            &RevokeRequest {
                lease_id: h.lease_id.clone(),
                reason: Some("disk maintenance".into()),
            },
            T0 + 1.0,
        )
        .unwrap();
    assert!(out.reply.ok);
    let ev = out
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::Publish(ev) => Some(ev.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(ev.event, LeaseEventKind::Revoked);
    assert_eq!(ev.reason.as_deref(), Some("disk maintenance"));
    assert_eq!(audits(&out.effects), [AuditKind::Revoked]);
    let hb = b.heartbeat(&h, T0 + 2.0).unwrap().reply;
    assert!(!hb.ok);
    assert_eq!(hb.state, LeaseState::Revoked);
    assert!(hb.reason.unwrap().ends_with("is REVOKED: disk maintenance"));
    // Once only.
    let again = b
        .revoke(
            &RevokeRequest {
                lease_id: h.lease_id.clone(),
                reason: None,
            },
            T0 + 3.0,
        )
        .unwrap();
    assert!(!again.reply.ok);
    assert!(again.effects.is_empty());
    assert_eq!(b.used_units("h1"), 0);
}

#[test]
fn report_records_progress() {
    let mut b = book();
    let h = grant(&mut b, 30, T0);
    let mut metrics = serde_json::Map::new();
    metrics.insert("rows".into(), serde_json::json!(1200));
    let out = b
        .report(
            &ProgressReport {
                lease_id: h.lease_id.clone(),
                token: h.token.clone(),
                progress_pct: Some(40.0),
                message: Some("halfway-ish".into()),
                metrics: Some(metrics),
            },
            T0 + 5.0,
        )
        .unwrap();
    assert!(out.reply.ok);
    let Effect::Audit(a) = &out.effects[0] else {
        panic!("{:?}", out.effects)
    };
    assert_eq!(a.kind, AuditKind::Reported);
    assert_eq!(a.detail.as_ref().unwrap()["metrics"]["rows"], 1200);
    assert_eq!(b.lease(&h.lease_id).unwrap().progress_pct, Some(40.0));
    // A report on an ended lease is not ok.
    b.release(&release_req(&h), T0 + 6.0).unwrap();
    let r = b
        .report(
            &ProgressReport {
                lease_id: h.lease_id.clone(),
                token: h.token.clone(),
                progress_pct: None,
                message: None,
                metrics: None,
            },
            T0 + 7.0,
        )
        .unwrap();
    assert!(!r.reply.ok);
}

#[test]
fn capacity_denial_names_the_numbers_and_the_soonest_expiry() {
    let mut b = book();
    grant(&mut b, 30, T0);
    grant(&mut b, 30, T0 + 4.0);
    let out = b.request(req(30), T0 + 5.0);
    let r = out.reply;
    assert!(!r.approved);
    assert_eq!(r.reason_code, Some(DenyReason::CapacityExceeded));
    assert_eq!(
        r.reason.as_deref(),
        Some("Capacity exceeded: used=60, requested=30, capacity=70")
    );
    // The first lease expires at T0 + 30 unless heartbeated.
    assert_eq!(r.retry_after_sec, Some(25.0));
    assert!(r.lease_id.is_none() && r.token.is_none());
    assert_eq!(
        audits(&out.effects),
        [AuditKind::Requested, AuditKind::Denied]
    );
    // The addon summary records it.
    let s = b.addon_summary("indexer").unwrap();
    assert_eq!((s.granted, s.denied), (2, 1));
    assert_eq!(s.last_reason, r.reason);
    assert_eq!(s.cooldown_until, Some(T0 + 30.0));
}

#[test]
fn expected_duration_informs_retry_after() {
    let mut b = book();
    let mut long = req(60);
    long.expected_duration_sec = Some(600.0);
    assert!(b.request(long, T0).reply.approved);
    let r = b.request(req(30), T0 + 10.0).reply;
    assert_eq!(r.retry_after_sec, Some(590.0));
}

#[test]
fn rate_limit_per_addon() {
    let mut c = cfg();
    c.rate_per_sec = 1.0;
    c.burst = 2.0;
    let mut b = book_with(c);
    assert!(b.request(req(1), T0).reply.approved);
    assert!(b.request(req(1), T0).reply.approved);
    let r = b.request(req(1), T0).reply;
    assert_eq!(r.reason_code, Some(DenyReason::RateLimited));
    assert_eq!(r.retry_after_sec, Some(1.0));
    // Another addon has its own bucket.
    let mut other = req(1);
    other.addon_id = "thumbs".into();
    assert!(b.request(other, T0).reply.approved);
    // A rate-limited request is never queued.
    let r = b.request(waiting(1), T0).reply;
    assert!(!r.queued);
    assert_eq!(r.reason_code, Some(DenyReason::RateLimited));
    // One second later one more.
    assert!(b.request(req(1), T0 + 1.0).reply.approved);
}

#[test]
fn denied_requests_also_spend_tokens() {
    let mut c = cfg();
    c.rate_per_sec = 0.1;
    c.burst = 2.0;
    let mut b = book_with(c);
    assert_eq!(
        b.request(req(100), T0).reply.reason_code,
        Some(DenyReason::CapacityExceeded)
    );
    assert_eq!(
        b.request(req(100), T0).reply.reason_code,
        Some(DenyReason::CapacityExceeded)
    );
    assert_eq!(
        b.request(req(1), T0).reply.reason_code,
        Some(DenyReason::RateLimited)
    );
}

#[test]
fn addon_and_global_caps() {
    let mut c = cfg();
    c.max_per_addon = 2;
    c.max_global = 3;
    let mut b = book_with(c);
    grant(&mut b, 1, T0);
    grant(&mut b, 1, T0 + 2.0);
    let r = b.request(req(1), T0 + 5.0).reply;
    assert_eq!(r.reason_code, Some(DenyReason::AddonLimit));
    assert_eq!(
        r.reason.as_deref(),
        Some("Addon limit reached: addon=indexer, active=2, max=2")
    );
    assert_eq!(r.retry_after_sec, Some(25.0));
    let mut other = req(1);
    other.addon_id = "thumbs".into();
    assert!(b.request(other.clone(), T0 + 5.0).reply.approved);
    let r = b.request(other, T0 + 6.0).reply;
    assert_eq!(r.reason_code, Some(DenyReason::GlobalLimit));
    assert_eq!(r.retry_after_sec, Some(24.0));
}

#[test]
fn placement_names_the_host() {
    let mut b = book();
    let mut quieter = view("h2", QuietState::Quiet, T0);
    quieter.quiet_score = 99.0;
    b.on_hosts_changed(vec![quieter], T0);
    let mut r = req(10);
    r.host_id = None;
    let out = b.request(r.clone(), T0);
    assert!(out.reply.approved);
    assert_eq!(out.reply.host_id.as_deref(), Some("h2"));
    // h2 fills up; the next 70 go to h1.
    r.cost_units = Some(61);
    let out = b.request(r, T0);
    assert_eq!(out.reply.host_id.as_deref(), Some("h1"));
    assert_eq!(b.used_units("h1"), 61);
    assert_eq!(b.used_units("h2"), 10);
}

#[test]
fn grace_period_refuses_new_grants_then_ends() {
    let mut b = Book::new(cfg(), key(), "g", T0);
    b.on_hosts_changed(vec![view("h1", QuietState::Quiet, T0)], T0);
    assert!(b.in_grace(T0 + 1.0));
    let r = b.request(req(10), T0 + 10.0).reply;
    assert!(!r.approved);
    assert_eq!(r.reason_code, Some(DenyReason::GracePeriod));
    assert_eq!(r.retry_after_sec, Some(20.0));
    assert_eq!(b.status(T0 + 10.0).grace_until, Some(T0 + 30.0));
    assert_eq!(b.next_wakeup(), Some(T0 + 30.0));
    b.tick(T0 + 30.0);
    assert!(!b.in_grace(T0 + 30.0));
    assert_eq!(b.status(T0 + 30.0).grace_until, None);
    assert!(b.request(req(10), T0 + 30.0).reply.approved);
}

#[test]
fn a_queued_request_waits_out_the_grace_period() {
    let mut b = Book::new(cfg(), key(), "g", T0);
    b.on_hosts_changed(vec![view("h1", QuietState::Quiet, T0)], T0);
    let r = b.request(waiting(10), T0 + 1.0).reply;
    assert!(r.queued);
    assert_eq!(r.reason_code, Some(DenyReason::GracePeriod));
    // Host improvements during grace grant nothing.
    assert!(b
        .on_hosts_changed(vec![view("h2", QuietState::Quiet, T0 + 2.0)], T0 + 2.0)
        .is_empty());
    let fx = b.tick(T0 + 30.0);
    assert_eq!(
        events(&fx),
        [(r.lease_id.clone().unwrap(), LeaseEventKind::Granted)]
    );
}

/// The first coordinator grants; a second one with the same key and no
/// memory re-admits the lease from its token during its grace period.
#[test]
fn restart_reasserts_leases_from_their_tokens() {
    let mut old = book();
    let h = grant(&mut old, 50, T0);
    let released = grant(&mut old, 10, T0);
    old.release(&release_req(&released), T0 + 1.0).unwrap();

    // kill -9; a new coordinator starts at T0 + 5.
    let mut new = Book::new(cfg(), key(), "n", T0 + 5.0);
    new.restore_tombstones([(released.lease_id.clone(), LeaseState::Released)]);
    new.on_hosts_changed(vec![view("h1", QuietState::Quiet, T0 + 5.0)], T0 + 5.0);
    // New requests wait for the grace period...
    let r = new.request(req(30), T0 + 6.0).reply;
    assert_eq!(r.reason_code, Some(DenyReason::GracePeriod));
    // ...while the holder re-asserts.
    let out = new.heartbeat(&h, T0 + 8.0).unwrap();
    assert!(out.reply.ok);
    assert_eq!(out.reply.state, LeaseState::Active);
    assert_eq!(out.reply.expires_at, Some(T0 + 38.0));
    assert_eq!(audits(&out.effects), [AuditKind::Reclaimed]);
    let info = new.lease(&h.lease_id).unwrap();
    assert_eq!(info.granted_at, T0);
    assert_eq!(info.cost_units, 50);
    assert_eq!(info.addon_id, "indexer");
    assert_eq!(new.used_units("h1"), 50);
    // The released one stays dead.
    let hb = new.heartbeat(&released, T0 + 8.0).unwrap().reply;
    assert!(!hb.ok);
    assert_eq!(hb.state, LeaseState::Released);
    // After grace, the reclaimed units count: no over-grant.
    new.tick(T0 + 35.0);
    let r = new.request(req(30), T0 + 35.0).reply;
    assert_eq!(r.reason_code, Some(DenyReason::CapacityExceeded));
    assert_eq!(
        r.reason.as_deref(),
        Some("Capacity exceeded: used=50, requested=30, capacity=70")
    );
    // It keeps working as an ordinary lease.
    assert!(new.heartbeat(&h, T0 + 36.0).unwrap().reply.ok);
    assert!(new.release(&release_req(&h), T0 + 37.0).unwrap().reply.ok);
    assert_eq!(new.used_units("h1"), 0);
}

#[test]
fn reassert_after_the_grace_period_is_refused() {
    let mut old = book();
    let h = grant(&mut old, 10, T0);
    let mut new = Book::new(cfg(), key(), "n", T0 + 5.0);
    new.tick(T0 + 40.0);
    let out = new.heartbeat(&h, T0 + 40.0).unwrap();
    assert!(!out.reply.ok);
    assert_eq!(out.reply.state, LeaseState::Expired);
    assert!(out.effects.is_empty());
    assert_eq!(new.active_len(), 0);
}

#[test]
fn reassert_never_exceeds_the_host_ceiling() {
    let mut old = book();
    let a = grant(&mut old, 40, T0);
    // Forge a second, overlapping lease with the same key, as if the old
    // coordinator had expired `a` and re-granted its room before dying.
    let b_handle = {
        let mut other = book();
        other.request(req(20), T0);
        grant(&mut other, 40, T0)
    };
    let mut new = Book::new(cfg(), key(), "n", T0 + 1.0);
    new.on_hosts_changed(vec![view("h1", QuietState::Quiet, T0 + 1.0)], T0 + 1.0);
    assert!(new.heartbeat(&a, T0 + 2.0).unwrap().reply.ok);
    let out = new.heartbeat(&b_handle, T0 + 2.0).unwrap();
    assert!(!out.reply.ok);
    assert_eq!(out.reply.state, LeaseState::Expired);
    assert!(out
        .reply
        .reason
        .unwrap()
        .contains("used=40, requested=40, ceiling=70"));
    assert_eq!(
        events(&out.effects),
        [(b_handle.lease_id.clone(), LeaseEventKind::Expired)]
    );
    assert_eq!(new.used_units("h1"), 40);
}

#[test]
fn operator_can_revoke_a_lease_before_it_is_reasserted() {
    let mut old = book();
    let h = grant(&mut old, 10, T0);
    let mut new = Book::new(cfg(), key(), "n", T0 + 1.0);
    let out = new
        .revoke(
            &RevokeRequest {
                lease_id: h.lease_id.clone(),
                reason: Some("stop".into()),
            },
            T0 + 2.0,
        )
        .unwrap();
    assert!(out.reply.ok);
    assert_eq!(
        events(&out.effects),
        [(h.lease_id.clone(), LeaseEventKind::Revoked)]
    );
    let hb = new.heartbeat(&h, T0 + 3.0).unwrap().reply;
    assert!(!hb.ok);
    assert_eq!(hb.state, LeaseState::Revoked);
}

#[test]
fn release_of_an_unknown_lease_during_grace_is_remembered() {
    let mut old = book();
    let h = grant(&mut old, 10, T0);
    let mut new = Book::new(cfg(), key(), "n", T0 + 1.0);
    let out = new.release(&release_req(&h), T0 + 2.0).unwrap();
    assert!(out.reply.ok);
    assert_eq!(audits(&out.effects), [AuditKind::Released]);
    assert_eq!(new.ended_state(&h.lease_id), Some(LeaseState::Released));
    assert!(!new.heartbeat(&h, T0 + 3.0).unwrap().reply.ok);
    assert_eq!(new.used_units("h1"), 0);
}

#[test]
fn report_reasserts_during_grace() {
    let mut old = book();
    let h = grant(&mut old, 10, T0);
    let mut new = Book::new(cfg(), key(), "n", T0 + 1.0);
    let out = new
        .report(
            &ProgressReport {
                lease_id: h.lease_id.clone(),
                token: h.token.clone(),
                progress_pct: Some(70.0),
                message: None,
                metrics: None,
            },
            T0 + 2.0,
        )
        .unwrap();
    assert!(out.reply.ok);
    assert_eq!(
        audits(&out.effects),
        [AuditKind::Reclaimed, AuditKind::Reported]
    );
    assert_eq!(new.lease(&h.lease_id).unwrap().progress_pct, Some(70.0));
}

#[test]
fn queue_grants_a_waiter_after_a_release() {
    let mut b = book();
    let holder = grant(&mut b, 60, T0);
    let out = b.request(waiting(30), T0 + 1.0);
    let q = out.reply;
    assert!(!q.approved);
    assert!(q.queued);
    assert_eq!(q.reason_code, Some(DenyReason::CapacityExceeded));
    assert_eq!(
        audits(&out.effects),
        [AuditKind::Requested, AuditKind::Queued]
    );
    let w = handle(&q);
    assert_eq!(b.queue_len(), 1);
    assert_eq!(b.status(T0 + 1.0).queue_length, 1);
    // While queued, a heartbeat says so.
    assert_eq!(
        b.heartbeat(&w, T0 + 2.0).unwrap_err(),
        BookError::StillQueued(w.lease_id.clone())
    );
    // The holder releases: the waiter is granted, the grant is pushed.
    let out = b.release(&release_req(&holder), T0 + 3.0).unwrap();
    assert_eq!(
        events(&out.effects),
        [
            (holder.lease_id.clone(), LeaseEventKind::Released),
            (w.lease_id.clone(), LeaseEventKind::Granted)
        ]
    );
    assert_eq!(b.queue_len(), 0);
    assert_eq!(b.used_units("h1"), 30);
    let granted = b.lease(&w.lease_id).unwrap();
    assert_eq!(granted.granted_at, T0 + 3.0);
    // The waiter's ticket heartbeats once and gets the real token back.
    let hb = b.heartbeat(&w, T0 + 4.0).unwrap().reply;
    assert!(hb.ok);
    let real = hb.token.expect("replacement token");
    let w2 = LeaseHandle {
        lease_id: w.lease_id.clone(),
        token: real,
    };
    let hb = b.heartbeat(&w2, T0 + 5.0).unwrap().reply;
    assert!(hb.ok);
    assert!(hb.token.is_none());
    // The real token re-asserts after a restart; the ticket would not.
    let mut new = Book::new(cfg(), key(), "n", T0 + 6.0);
    let out = new.heartbeat(&w, T0 + 7.0).unwrap().reply;
    assert!(!out.ok);
    assert!(out.reason.unwrap().contains("no longer queued"));
    let mut new = Book::new(cfg(), key(), "n", T0 + 6.0);
    assert!(new.heartbeat(&w2, T0 + 7.0).unwrap().reply.ok);
}

#[test]
fn queue_order_is_priority_then_age() {
    let mut b = book();
    let holder = grant(&mut b, 70, T0);
    let mut low = waiting(40);
    low.priority = Priority::Low;
    let low = handle(&b.request(low, T0 + 1.0).reply);
    let n1 = handle(&b.request(waiting(40), T0 + 2.0).reply);
    let mut hi = waiting(40);
    hi.priority = Priority::High;
    let hi = handle(&b.request(hi, T0 + 3.0).reply);
    let n2 = handle(&b.request(waiting(30), T0 + 4.0).reply);
    let out = b.release(&release_req(&holder), T0 + 5.0).unwrap();
    // HIGH first (40), then the oldest NORMAL that fits: n1 (40) does not
    // fit beside it, n2 (30) does; LOW waits.
    let granted: Vec<String> = events(&out.effects)
        .into_iter()
        .filter(|(_, k)| *k == LeaseEventKind::Granted)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(granted, [hi.lease_id.clone(), n2.lease_id.clone()]);
    assert!(b.is_queued(&n1.lease_id));
    assert!(b.is_queued(&low.lease_id));
}

#[test]
fn queued_request_can_be_cancelled() {
    let mut b = book();
    let holder = grant(&mut b, 70, T0);
    let w = handle(&b.request(waiting(10), T0).reply);
    let out = b
        .cancel(
            &CancelRequest {
                lease_id: w.lease_id.clone(),
                token: w.token.clone(),
            },
            T0 + 1.0,
        )
        .unwrap();
    assert!(out.reply.ok);
    assert_eq!(audits(&out.effects), [AuditKind::Cancelled]);
    assert_eq!(b.queue_len(), 0);
    let out = b.release(&release_req(&holder), T0 + 2.0).unwrap();
    assert_eq!(events(&out.effects).len(), 1); // just RELEASED
    assert!(!b.heartbeat(&w, T0 + 3.0).unwrap().reply.ok);
    // Cancel with a wrong token is forbidden and changes nothing.
    let w = handle(&b.request(waiting(71), T0 + 4.0).reply);
    let bad = CancelRequest {
        lease_id: w.lease_id.clone(),
        token: holder.token.clone(),
    };
    assert!(matches!(
        b.cancel(&bad, T0 + 5.0),
        Err(BookError::Forbidden(_))
    ));
    assert_eq!(b.queue_len(), 1);
}

#[test]
fn cancel_after_grant_releases() {
    let mut b = book();
    let holder = grant(&mut b, 70, T0);
    let w = handle(&b.request(waiting(10), T0).reply);
    b.release(&release_req(&holder), T0 + 1.0).unwrap();
    assert!(b.lease(&w.lease_id).is_some());
    let out = b
        .cancel(
            &CancelRequest {
                lease_id: w.lease_id.clone(),
                token: w.token.clone(),
            },
            T0 + 2.0,
        )
        .unwrap();
    assert!(out.reply.ok);
    assert_eq!(
        events(&out.effects),
        [(w.lease_id.clone(), LeaseEventKind::Released)]
    );
    assert_eq!(b.used_units("h1"), 0);
}

#[test]
fn queued_request_gives_up_at_its_deadline() {
    let mut b = book();
    grant(&mut b, 70, T0);
    let mut r = waiting(10);
    r.wait_timeout_sec = Some(10.0);
    let w = handle(&b.request(r, T0).reply);
    assert!(b.tick(T0 + 9.0).is_empty());
    let fx = b.tick(T0 + 10.0);
    assert_eq!(events(&fx), [(w.lease_id.clone(), LeaseEventKind::Expired)]);
    assert_eq!(audits(&fx), [AuditKind::Denied]);
    assert_eq!(b.queue_len(), 0);
    let s = b.addon_summary("indexer").unwrap();
    assert_eq!(s.denied, 1);
    assert!(s
        .last_reason
        .as_deref()
        .unwrap()
        .starts_with("wait deadline passed; last: Capacity exceeded"));
    let hb = b.heartbeat(&w, T0 + 11.0).unwrap().reply;
    assert_eq!(hb.state, LeaseState::Expired);
}

#[test]
fn queue_is_re_evaluated_when_the_host_gets_quieter() {
    let mut b = book();
    b.on_hosts_changed(vec![view("h1", QuietState::Busy, T0)], T0);
    let w = handle(&b.request(waiting(10), T0).reply);
    assert_eq!(b.queue_len(), 1);
    // No improvement (same state, fresher snapshot): nothing happens.
    assert!(b
        .on_hosts_changed(vec![view("h1", QuietState::Busy, T0 + 2.0)], T0 + 2.0)
        .is_empty());
    // Worse: nothing either.
    assert!(b
        .on_hosts_changed(vec![view("h1", QuietState::Panic, T0 + 4.0)], T0 + 4.0)
        .is_empty());
    let fx = b.on_hosts_changed(vec![view("h1", QuietState::Quiet, T0 + 6.0)], T0 + 6.0);
    assert_eq!(events(&fx), [(w.lease_id.clone(), LeaseEventKind::Granted)]);
}

#[test]
fn queue_is_re_evaluated_on_tick_when_a_cool_down_ends() {
    let mut b = book();
    let mut v = view("h1", QuietState::Quiet, T0);
    v.cooldown_until = Some(T0 + 20.0);
    // Cool-down started: not an improvement.
    b.on_hosts_changed(vec![v.clone()], T0);
    let r = b.request(waiting(10), T0).reply;
    assert_eq!(r.reason_code, Some(DenyReason::PanicCooldown));
    assert_eq!(r.retry_after_sec, Some(20.0));
    assert_eq!(b.next_wakeup(), Some(T0 + 20.0));
    assert!(b.tick(T0 + 19.0).is_empty());
    // The view is fresh but unchanged; time alone ends the cool-down.
    v.last_seen = T0 + 20.0;
    b.on_hosts_changed(vec![v], T0 + 20.0);
    let fx = b.tick(T0 + 20.0);
    assert_eq!(
        events(&fx),
        [(r.lease_id.unwrap(), LeaseEventKind::Granted)]
    );
}

#[test]
fn a_waiter_on_a_maintenance_window_is_granted_when_it_ends() {
    let mut b = book();
    let mut v = view("h1", QuietState::Quiet, T0);
    v.blocked = true;
    v.blocked_reason = Some("patch window".into());
    v.blocked_until = Some(T0 + 30.0);
    b.on_hosts_changed(vec![v], T0);
    let r = b.request(waiting(10), T0).reply;
    assert_eq!(r.reason_code, Some(DenyReason::Blocked));
    assert_eq!(r.retry_after_sec, Some(30.0));
    assert!(b.tick(T0 + 29.0).is_empty());
    // No new view: the window's end alone frees the host.
    let fx = b.tick(T0 + 30.0);
    assert_eq!(
        events(&fx),
        [(r.lease_id.unwrap(), LeaseEventKind::Granted)]
    );
}

#[test]
fn queue_is_bounded() {
    let mut c = cfg();
    c.queue_max = 2;
    let mut b = book_with(c);
    grant(&mut b, 70, T0);
    let low = {
        let mut r = waiting(10);
        r.priority = Priority::Low;
        handle(&b.request(r, T0).reply)
    };
    b.request(waiting(10), T0);
    // Full of waiters at least as important: refused, not queued.
    let mut another_low = waiting(10);
    another_low.priority = Priority::Low;
    let r = b.request(another_low, T0).reply;
    assert!(!r.queued);
    assert!(r.reason.unwrap().ends_with("; the wait queue is full (2)"));
    // A HIGH request evicts the LOW one, which is told.
    let mut hi = waiting(10);
    hi.priority = Priority::High;
    let out = b.request(hi, T0);
    assert!(out.reply.queued);
    assert_eq!(
        events(&out.effects),
        [(low.lease_id.clone(), LeaseEventKind::Expired)]
    );
    assert_eq!(b.queue_len(), 2);
    assert!(!b.is_queued(&low.lease_id));
}

#[test]
fn operator_can_revoke_a_queued_request() {
    let mut b = book();
    grant(&mut b, 70, T0);
    let w = handle(&b.request(waiting(10), T0).reply);
    let out = b
        .revoke(
            &RevokeRequest {
                lease_id: w.lease_id.clone(),
                reason: None,
            },
            T0 + 1.0,
        )
        .unwrap();
    assert!(out.reply.ok);
    assert_eq!(
        events(&out.effects),
        [(w.lease_id.clone(), LeaseEventKind::Revoked)]
    );
    assert_eq!(b.queue_len(), 0);
}

#[test]
fn constrained_request_through_the_book() {
    let mut b = book();
    let mut v = view("h1", QuietState::Busy, T0);
    v.cpu_avg_pct = Some(95.0);
    v.io_pressure = Some(1.0);
    v.disk_free_pct = Some(70.0);
    b.on_hosts_changed(vec![v], T0);
    let mut r = req(30);
    assert_eq!(
        b.request(r.clone(), T0).reply.reason_code,
        Some(DenyReason::NotQuiet)
    );
    r.constraints.disk_write_heavy = true;
    assert!(b.request(r, T0).reply.approved);
}

#[test]
fn status_shows_leases_hosts_and_addons() {
    let mut c = cfg();
    c.recent_max = 2;
    let mut b = book_with(c);
    b.on_hosts_changed(vec![view("h2", QuietState::Normal, T0)], T0);
    let a = grant(&mut b, 30, T0);
    let keep = grant(&mut b, 10, T0 + 1.0);
    b.request(req(100), T0 + 2.0);
    for i in 0..3 {
        let h = grant(&mut b, 1, T0 + 3.0 + f64::from(i));
        b.release(&release_req(&h), T0 + 10.0 + f64::from(i))
            .unwrap();
    }
    b.release(&release_req(&a), T0 + 20.0).unwrap();
    let st = b.status(T0 + 21.0);
    assert_eq!(st.leases.active.len(), 1);
    assert_eq!(st.leases.active[0].lease_id, keep.lease_id);
    // Newest first, bounded.
    assert_eq!(st.leases.recent.len(), 2);
    assert_eq!(st.leases.recent[0].lease_id, a.lease_id);
    assert_eq!(st.hosts.len(), 2);
    assert_eq!(st.hosts[0].host_id, "h1");
    assert_eq!(st.hosts[0].capacity_units, 70);
    assert_eq!(st.hosts[0].used_units, 10);
    assert_eq!(st.hosts[1].capacity_units, 35);
    assert_eq!(st.hosts[1].state, QuietState::Normal);
    assert_eq!(st.addons.len(), 1);
    assert_eq!(st.addons[0].granted, 5);
    assert_eq!(st.addons[0].denied, 1);
    assert_eq!(st.queue_length, 0);
    assert_eq!(st.grace_until, None);
    let json = serde_json::to_value(&st).unwrap();
    assert_eq!(json["hosts"][1]["state"], "NORMAL");
    assert_eq!(json["leases"]["active"][0]["state"], "ACTIVE");
}

#[test]
fn status_pages_hosts_and_active_leases_exactly_once() {
    let mut b = book();
    let ids: Vec<String> = (0..7).map(|i| format!("h{i:02}")).collect();
    b.on_hosts_changed(
        ids.iter().map(|h| view(h, QuietState::Quiet, T0)).collect(),
        T0,
    );
    // Three leases granted at the same time: the id breaks the tie.
    let leases: Vec<String> = (0..3).map(|_| grant(&mut b, 1, T0).lease_id).collect();
    let mut cursor = StatusCursor::default();
    let (mut hosts, mut active, mut pages) = (Vec::new(), Vec::new(), 0);
    loop {
        let st = b.status_page(T0, 2, &cursor);
        pages += 1;
        assert!(st.hosts.len() <= 2 && st.leases.active.len() <= 2);
        hosts.extend(st.hosts.into_iter().map(|h| h.host_id));
        active.extend(st.leases.active.into_iter().map(|l| l.lease_id));
        match st.next_cursor {
            Some(c) => cursor = StatusCursor::decode(&c).unwrap(),
            None => break,
        }
    }
    // h1 and h00..h06: 8 hosts, 4 pages.
    assert_eq!(pages, 4);
    let mut want: Vec<String> = ids.clone();
    want.push("h1".into());
    want.sort();
    assert_eq!(hosts, want);
    let mut sorted = leases.clone();
    sorted.sort();
    assert_eq!(active, sorted);
    assert_eq!(b.status(T0).next_cursor, None);
    for bad in [
        "",
        "x",
        "a|",
        "s|q",
        "s|azz:L",
        "s|a7ff0000000000000:L",
        "|d",
    ] {
        assert_eq!(StatusCursor::decode(bad), Err(BadCursor), "{bad}");
    }
    let c = StatusCursor {
        hosts: Pos::After("h3".into()),
        leases: Pos::After((T0 + 0.5, "L-1".into())),
    };
    assert_eq!(StatusCursor::decode(&c.encode()).unwrap(), c);
}

#[test]
fn tables_are_bounded() {
    let mut c = cfg();
    c.tombstones_max = 3;
    c.addons_max = 2;
    let mut b = book_with(c);
    let mut handles = Vec::new();
    for i in 0..5 {
        let h = grant(&mut b, 1, T0 + f64::from(i));
        b.release(&release_req(&h), T0 + f64::from(i)).unwrap();
        handles.push(h);
    }
    assert_eq!(b.ended_state(&handles[0].lease_id), None);
    assert_eq!(
        b.ended_state(&handles[4].lease_id),
        Some(LeaseState::Released)
    );
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let mut r = req(1);
        r.addon_id = name.into();
        b.request(r, T0 + 10.0 + i as f64);
    }
    let ids: Vec<String> = b
        .addon_decisions()
        .into_iter()
        .map(|a| a.addon_id)
        .collect();
    assert_eq!(ids, ["b", "c"]);
}

#[test]
fn next_wakeup_is_the_soonest_expiry() {
    let mut b = book();
    assert_eq!(b.next_wakeup(), None);
    grant(&mut b, 1, T0);
    let h = grant(&mut b, 1, T0 + 5.0);
    assert_eq!(b.next_wakeup(), Some(T0 + 30.0));
    b.heartbeat(&h, T0 + 6.0).unwrap();
    b.tick(T0 + 30.0);
    assert_eq!(b.next_wakeup(), Some(T0 + 36.0));
}

#[test]
fn every_audit_kind_is_produced() {
    let mut b = Book::new(cfg(), key(), "a", T0);
    let mut old = book();
    let old_lease = grant(&mut old, 10, T0);
    let mut seen = std::collections::HashSet::new();
    let mut note = |fx: &[Effect]| {
        for k in audits(fx) {
            seen.insert(k);
        }
    };
    b.on_hosts_changed(vec![view("h1", QuietState::Quiet, T0)], T0);
    note(&b.heartbeat(&old_lease, T0 + 1.0).unwrap().effects);
    note(&b.tick(T0 + 30.0));
    let out = b.request(req(30), T0 + 30.0);
    note(&out.effects);
    let l1 = handle(&out.reply);
    note(&b.request(req(100), T0 + 30.0).effects);
    let out = b.request(waiting(100), T0 + 30.0);
    note(&out.effects);
    let w = handle(&out.reply);
    note(
        &b.cancel(
            &CancelRequest {
                lease_id: w.lease_id,
                token: w.token,
            },
            T0 + 31.0,
        )
        .unwrap()
        .effects,
    );
    note(
        &b.report(
            &ProgressReport {
                lease_id: l1.lease_id.clone(),
                token: l1.token.clone(),
                progress_pct: Some(1.0),
                message: None,
                metrics: None,
            },
            T0 + 31.0,
        )
        .unwrap()
        .effects,
    );
    note(&b.release(&release_req(&l1), T0 + 32.0).unwrap().effects);
    b.on_hosts_changed(vec![view("h1", QuietState::Quiet, T0 + 32.0)], T0 + 32.0);
    let l2 = handle(&b.request(req(1), T0 + 32.0).reply);
    note(
        &b.revoke(
            &RevokeRequest {
                lease_id: l2.lease_id,
                reason: None,
            },
            T0 + 33.0,
        )
        .unwrap()
        .effects,
    );
    grant(&mut b, 1, T0 + 33.0);
    note(&b.tick(T0 + 100.0));
    for k in [
        AuditKind::Requested,
        AuditKind::Granted,
        AuditKind::Denied,
        AuditKind::Queued,
        AuditKind::Cancelled,
        AuditKind::Released,
        AuditKind::Expired,
        AuditKind::Revoked,
        AuditKind::Reclaimed,
        AuditKind::Reported,
    ] {
        assert!(seen.contains(&k), "{k:?} missing");
    }
    assert_eq!(
        serde_json::to_value(AuditKind::Reclaimed).unwrap(),
        "reclaimed"
    );
    assert_eq!(AuditKind::Reclaimed.as_str(), "reclaimed");
}

#[test]
fn lease_ids_differ_between_starts_even_with_the_same_prefix() {
    let mut first = Book::new(cfg(), key(), "L", T0);
    first.skip_grace();
    first.on_hosts_changed(vec![view("h1", QuietState::Quiet, T0)], T0);
    let old = grant(&mut first, 10, T0);
    let mut second = Book::new(cfg(), key(), "L", T0 + 3.0);
    second.skip_grace();
    second.on_hosts_changed(vec![view("h1", QuietState::Quiet, T0 + 3.0)], T0 + 3.0);
    let new = grant(&mut second, 10, T0 + 3.0);
    assert_ne!(old.lease_id, new.lease_id);
    assert!(new.lease_id.starts_with("L-"));
    // The old token cannot act on the new lease.
    let cross = LeaseHandle {
        lease_id: new.lease_id.clone(),
        token: old.token.clone(),
    };
    assert!(matches!(
        second.heartbeat(&cross, T0 + 4.0),
        Err(BookError::Forbidden(_))
    ));
    // Odd prefixes are cleaned up into a subject-safe id.
    let mut odd = Book::new(cfg(), key(), "a.b c>*", T0);
    odd.skip_grace();
    odd.on_hosts_changed(vec![view("h1", QuietState::Quiet, T0)], T0);
    let h = grant(&mut odd, 1, T0);
    assert!(lull_proto::validate::subject_token("lease_id", &h.lease_id).is_ok());
    assert!(h.lease_id.starts_with("abc-"));
}

#[test]
fn a_host_entering_panic_has_its_leases_revoked() {
    let mut b = book();
    b.on_hosts_changed(vec![view("h2", QuietState::Quiet, T0)], T0);
    let on_h1 = b.request(req(10), T0).reply;
    let mut r2 = req(5);
    r2.host_id = Some("h2".into());
    let on_h2 = b.request(r2, T0).reply;
    assert!(on_h1.approved && on_h2.approved);
    let fx = b.on_hosts_changed(vec![view("h1", QuietState::Panic, T0 + 1.0)], T0 + 1.0);
    let id1 = on_h1.lease_id.clone().unwrap();
    assert_eq!(events(&fx), vec![(id1.clone(), LeaseEventKind::Revoked)]);
    let reason = fx
        .iter()
        .find_map(|e| match e {
            Effect::Publish(ev) => ev.reason.clone(),
            Effect::Audit(_) | Effect::Queue(_) => None,
        })
        .unwrap();
    assert!(reason.contains("h1 entered PANIC"), "{reason}");
    assert_eq!(b.used_units("h1"), 0);
    assert_eq!(b.ended_state(&id1), Some(LeaseState::Revoked));
    let hb = b.heartbeat(&handle(&on_h1), T0 + 2.0).unwrap().reply;
    assert!(!hb.ok);
    assert_eq!(hb.state, LeaseState::Revoked);
    // The other host's lease is untouched, and a host still in PANIC is
    // not revoked again.
    assert!(b.heartbeat(&handle(&on_h2), T0 + 2.0).unwrap().reply.ok);
    let again = b.on_hosts_changed(vec![view("h1", QuietState::Panic, T0 + 3.0)], T0 + 3.0);
    assert!(events(&again).is_empty());
}

#[test]
fn panic_revocation_can_be_turned_off() {
    let mut b = book_with(LeaseConfig {
        revoke_on_panic: false,
        ..cfg()
    });
    let granted = b.request(req(10), T0).reply;
    let fx = b.on_hosts_changed(vec![view("h1", QuietState::Panic, T0 + 1.0)], T0 + 1.0);
    assert!(events(&fx).is_empty());
    assert!(b.heartbeat(&handle(&granted), T0 + 2.0).unwrap().reply.ok);
    // New requests are still refused on a PANIC host.
    let d = b.request(req(1), T0 + 2.0).reply;
    assert_eq!(d.reason_code, Some(DenyReason::Panic));
}

#[test]
fn tokens_of_a_previous_key_are_re_admitted_and_replaced() {
    let mut before = book();
    let granted = before.request(req(10), T0).reply;
    assert!(granted.approved);
    // A restart with a rotated key; the old one is kept for verification.
    let new_key = LeaseKey::from_bytes(vec![7u8; 32]).unwrap();
    let restarted = |previous: Option<LeaseKey>| {
        let mut b = Book::new(cfg(), new_key.clone(), "t2", T0 + 5.0);
        b.add_previous_keys(previous);
        b.on_hosts_changed(vec![view("h1", QuietState::Quiet, T0 + 5.0)], T0 + 5.0);
        b
    };
    let mut b = restarted(Some(key()));
    let hb = b.heartbeat(&handle(&granted), T0 + 6.0).unwrap().reply;
    assert!(hb.ok, "{hb:?}");
    let fresh = hb.token.clone().expect("a token of the current key");
    assert!(token::verify(&fresh, &new_key).is_ok());
    assert!(token::verify(&fresh, &key()).is_err());
    // The old token still works until the holder switches; each answer
    // repeats the replacement. The new one needs no replacement.
    let again = b.heartbeat(&handle(&granted), T0 + 7.0).unwrap().reply;
    assert!(again.ok);
    assert_eq!(again.token.as_deref(), Some(fresh.as_str()));
    let switched = LeaseHandle {
        lease_id: granted.lease_id.clone().unwrap(),
        token: fresh,
    };
    let hb = b.heartbeat(&switched, T0 + 8.0).unwrap().reply;
    assert!(hb.ok && hb.token.is_none(), "{hb:?}");
    // Once the old key is dropped, its tokens prove nothing.
    let mut b = restarted(None);
    assert!(matches!(
        b.heartbeat(&handle(&granted), T0 + 6.0),
        Err(BookError::NotFound(_))
    ));
}

#[test]
fn a_lease_on_a_host_in_panic_is_not_re_admitted_after_a_restart() {
    let mut before = book();
    let granted = before.request(req(10), T0).reply;
    let mut b = Book::new(cfg(), key(), "t2", T0 + 5.0);
    b.on_hosts_changed(vec![view("h1", QuietState::Panic, T0 + 5.0)], T0 + 5.0);
    let hb = b.heartbeat(&handle(&granted), T0 + 6.0).unwrap().reply;
    assert!(!hb.ok);
    assert_eq!(hb.state, LeaseState::Revoked);
    assert!(hb.reason.unwrap().contains("PANIC"));
    assert_eq!(b.active_len(), 0);
    // It stays ended.
    let hb = b.heartbeat(&handle(&granted), T0 + 7.0).unwrap().reply;
    assert_eq!(hb.state, LeaseState::Revoked);
}

#[test]
fn a_host_is_forgotten_only_without_active_leases() {
    let mut b = book();
    let first = b.request(req(10), T0).reply;
    let second = b.request(req(10), T0).reply;
    assert!(first.approved && second.approved);
    assert_eq!(b.leases_on("h1"), 2);
    let e = b.forget_host("h1").unwrap_err();
    assert_eq!(e, "host h1 holds 2 active leases");
    // Refused: the host is still known.
    b.release(&release_req(&handle(&first)), T0 + 1.0).unwrap();
    assert_eq!(
        b.forget_host("h1").unwrap_err(),
        "host h1 holds 1 active lease"
    );
    b.release(&release_req(&handle(&second)), T0 + 1.0).unwrap();
    assert_eq!(b.forget_host("h1"), Ok(()));
    assert_eq!(b.leases_on("h1"), 0);
    let denied = b.request(req(10), T0 + 2.0).reply;
    assert_eq!(denied.reason_code, Some(DenyReason::UnknownHost));
}
