//! End-to-end: the lease API against a real coordinator, NATS and Postgres.
//! Grants, every denial reason code we can provoke with synthetic hosts,
//! heartbeat, report, release, revoke delivered to the holder, expiry, the
//! queue, placement, bad requests changing nothing, and the restart grace
//! period after a kill -9.

mod support;

use std::time::Duration;

use futures::StreamExt;
use lull_client::request::RequestError;
use lull_proto::msg::hosts::QuietState;
use lull_proto::msg::lease::{
    DenyReason, HeartbeatResponse, HeavyLeaseResponse, LeaseEvent, LeaseEventKind, LeaseState,
    OkResponse, SchedulerStatus,
};
use lull_proto::subjects::endpoints as ep;
use lull_proto::{ErrorCode, Subjects};
use lull_tests::{wait_for, wait_until, Infra};
use serde_json::json;
use support::*;

const TTL: &str = "2";

fn lease_env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![
        ("LULL_LEASE__HEARTBEAT_TTL_SEC", TTL),
        ("LULL_LEASE__RATE_PER_SEC", "100"),
        ("LULL_LEASE__BURST", "100"),
        ("LULL_QUIET__PANIC_COOLDOWN_SEC", "120"),
        ("LULL_SCHEDULER__GAUGES_SEC", "0.2"),
    ];
    v.extend_from_slice(extra);
    v
}

async fn request(client: &async_nats::Client, body: serde_json::Value) -> HeavyLeaseResponse {
    call(client, ep::LEASE_REQUEST, &body)
        .await
        .expect("lease.request reply")
}

async fn denied(
    client: &async_nats::Client,
    body: serde_json::Value,
    code: DenyReason,
) -> HeavyLeaseResponse {
    let r = request(client, body.clone()).await;
    assert!(!r.approved, "expected a denial for {body}, got {r:?}");
    assert_eq!(r.reason_code, Some(code), "{body} -> {r:?}");
    assert!(r.reason.as_deref().is_some_and(|s| !s.is_empty()));
    assert!(r.retry_after_sec.is_some_and(|s| s > 0.0), "{r:?}");
    r
}

/// Asks until the coordinator answers with `code` (the fleet's view of a
/// host reaches the scheduler within a push period).
async fn eventually_denied(client: &async_nats::Client, body: serde_json::Value, code: DenyReason) {
    let c = client.clone();
    wait_until(Duration::from_secs(15), || {
        let (c, body) = (c.clone(), body.clone());
        async move { request(&c, body).await.reason_code == Some(code) }
    })
    .await
    .unwrap_or_else(|_| panic!("never denied with {code:?}: {body}"));
}

async fn status(client: &async_nats::Client) -> SchedulerStatus {
    call(client, ep::SCHEDULER_STATUS, &json!({}))
        .await
        .unwrap()
}

async fn events(client: &async_nats::Client, lease_id: &str) -> async_nats::Subscriber {
    client
        .subscribe(Subjects::default().lease_events(lease_id))
        .await
        .unwrap()
}

async fn next_event(sub: &mut async_nats::Subscriber) -> LeaseEvent {
    let msg = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("an event in time")
        .expect("subscription open");
    serde_json::from_slice(&msg.payload).expect("a lease event")
}

/// Asks until the request is granted (the book hears of a host shortly
/// after the fleet does, and a start may be in its grace period).
async fn granted(client: &async_nats::Client, body: serde_json::Value) -> HeavyLeaseResponse {
    let b = &body;
    wait_for(Duration::from_secs(10), || async move {
        Some(request(client, b.clone()).await).filter(|r| r.approved)
    })
    .await
    .expect("a grant")
}

/// `lease.heartbeat`, which must answer (not an error reply).
async fn heartbeat(client: &async_nats::Client, body: serde_json::Value) -> HeartbeatResponse {
    call(client, ep::LEASE_HEARTBEAT, &body)
        .await
        .expect("lease.heartbeat reply")
}

/// The next event that ends a lease. A holder that subscribes after its
/// grant reply may or may not see its own `GRANTED` first: that is skipped.
async fn next_end_event(sub: &mut async_nats::Subscriber) -> LeaseEvent {
    loop {
        let e = next_event(sub).await;
        if e.event != LeaseEventKind::Granted {
            return e;
        }
    }
}

fn service_code(e: RequestError) -> ErrorCode {
    match e {
        RequestError::Service { code, .. } => code,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_lifecycle_denials_queue_and_placement() {
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(&infra, &lease_env(&[("LULL_LEASE__MAX_PER_ADDON", "3")])).await;
    let client = infra.nats.connect().await.unwrap();
    let feeder = Feeder::start(client.clone(), Duration::from_millis(300));
    feeder.set("quiet-a", Load::idle(8));
    feeder.set("quiet-b", Load::idle(4));
    feeder.set("small", Load::idle(1));
    feeder.set("busy", Load::busy(8));
    feeder.set("panicky", Load::panic(8));
    feeder.set("fading", Load::idle(8));
    wait_state(&client, "quiet-a", QuietState::Quiet).await;
    wait_state(&client, "small", QuietState::Quiet).await;
    wait_state(&client, "busy", QuietState::Busy).await;
    wait_state(&client, "panicky", QuietState::Panic).await;
    // Let the fleet push its views to the scheduler.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Grant, heartbeat, report, release.
    let g = request(&client, json!({"addon_id": "indexer", "job_type": "reindex", "host_id": "quiet-a", "cost_units": 10})).await;
    assert!(g.approved, "{g:?}\n{}", coord.svc.logs());
    assert_eq!(g.host_id.as_deref(), Some("quiet-a"));
    let id = g.lease_id.clone().unwrap();
    let token = g.token.clone().unwrap();
    let limits = g.limits.unwrap();
    assert_eq!(limits.heartbeat_ttl_sec, 2.0);
    assert!(g.expires_at.unwrap() > lull_common::runtime::now_unix());
    let mut ev = events(&client, &id).await;

    let hb = heartbeat(&client, json!({"lease_id": id, "token": token})).await;
    assert!(hb.ok);
    assert_eq!(hb.state, LeaseState::Active);
    let wrong = call::<_, HeartbeatResponse>(
        &client,
        ep::LEASE_HEARTBEAT,
        &json!({"lease_id": id, "token": "not-the-token"}),
    )
    .await;
    assert_eq!(service_code(wrong.unwrap_err()), ErrorCode::Forbidden);
    let unknown = call::<_, HeartbeatResponse>(
        &client,
        ep::LEASE_HEARTBEAT,
        &json!({"lease_id": "L999999", "token": "x"}),
    )
    .await;
    assert_eq!(service_code(unknown.unwrap_err()), ErrorCode::NotFound);
    let rep: OkResponse = call(
        &client,
        ep::LEASE_REPORT,
        &json!({"lease_id": id, "token": token, "progress_pct": 50.0, "message": "half"}),
    )
    .await
    .unwrap();
    assert!(rep.ok);
    let st = status(&client).await;
    let active = st
        .leases
        .active
        .iter()
        .find(|l| l.lease_id == id)
        .expect("active lease listed");
    assert_eq!(active.progress_pct, Some(50.0));
    let quiet_a = st.hosts.iter().find(|h| h.host_id == "quiet-a").unwrap();
    assert_eq!(quiet_a.used_units, 10);
    assert!(quiet_a.capacity_units >= 10);
    let rel: OkResponse = call(
        &client,
        ep::LEASE_RELEASE,
        &json!({"lease_id": id, "token": token, "outcome": "success"}),
    )
    .await
    .unwrap();
    assert!(rel.ok);
    assert_eq!(
        next_end_event(&mut ev).await.event,
        LeaseEventKind::Released
    );
    let hb = heartbeat(&client, json!({"lease_id": id, "token": token})).await;
    assert!(!hb.ok);
    assert_eq!(hb.state, LeaseState::Released);

    // Revoke reaches the holder at once.
    let g = request(&client, json!({"addon_id": "indexer", "job_type": "reindex", "host_id": "quiet-a", "cost_units": 10})).await;
    assert!(g.approved, "{g:?}");
    let id = g.lease_id.clone().unwrap();
    let token = g.token.clone().unwrap();
    let mut ev = events(&client, &id).await;
    let r: OkResponse = call(
        &client,
        ep::LEASE_REVOKE,
        &json!({"lease_id": id, "reason": "maintenance"}),
    )
    .await
    .unwrap();
    assert!(r.ok);
    let e = next_end_event(&mut ev).await;
    assert_eq!(e.event, LeaseEventKind::Revoked);
    let hb = heartbeat(&client, json!({"lease_id": id, "token": token})).await;
    assert!(!hb.ok);
    assert_eq!(hb.state, LeaseState::Revoked);

    // Expiry: no heartbeat for the TTL (2 s) expires within a second.
    let g = request(&client, json!({"addon_id": "indexer", "job_type": "reindex", "host_id": "quiet-a", "cost_units": 10})).await;
    let id = g.lease_id.clone().unwrap();
    let token = g.token.clone().unwrap();
    let mut ev = events(&client, &id).await;
    let e = next_end_event(&mut ev).await;
    assert_eq!(e.event, LeaseEventKind::Expired);
    assert!(
        e.at <= g.expires_at.unwrap() + 1.0,
        "expired late: {e:?} vs {g:?}"
    );
    let hb = heartbeat(&client, json!({"lease_id": id, "token": token})).await;
    assert_eq!((hb.ok, hb.state), (false, LeaseState::Expired));

    // Denials, each with its code, a reason and a retry hint.
    denied(
        &client,
        json!({"addon_id": "a1", "job_type": "j", "host_id": "busy", "cost_units": 5}),
        DenyReason::NotQuiet,
    )
    .await;
    let high = request(&client, json!({"addon_id": "a1", "job_type": "j", "host_id": "busy", "cost_units": 5, "priority": "HIGH"})).await;
    assert!(
        high.approved || high.reason_code == Some(DenyReason::CapacityExceeded),
        "HIGH may use a BUSY host: {high:?}"
    );
    denied(&client, json!({"addon_id": "a1", "job_type": "j", "host_id": "panicky", "cost_units": 5, "priority": "HIGH"}), DenyReason::Panic).await;
    denied(
        &client,
        json!({"addon_id": "a1", "job_type": "j", "host_id": "ghost", "cost_units": 5}),
        DenyReason::UnknownHost,
    )
    .await;
    let cap = denied(
        &client,
        json!({"addon_id": "a1", "job_type": "j", "host_id": "small", "cost_units": 100}),
        DenyReason::CapacityExceeded,
    )
    .await;
    assert!(cap
        .reason
        .unwrap()
        .starts_with("Capacity exceeded: used=0, requested=100, capacity="));
    for _ in 0..3 {
        let g = request(
            &client,
            json!({"addon_id": "greedy", "job_type": "j", "host_id": "quiet-a", "cost_units": 1}),
        )
        .await;
        assert!(g.approved, "{g:?}");
        // Keep them alive for the rest of the test.
        let (id, token) = (g.lease_id.unwrap(), g.token.unwrap());
        let c = client.clone();
        tokio::spawn(async move {
            loop {
                let _: Result<HeartbeatResponse, _> = call(
                    &c,
                    ep::LEASE_HEARTBEAT,
                    &json!({"lease_id": id, "token": token}),
                )
                .await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
    denied(
        &client,
        json!({"addon_id": "greedy", "job_type": "j", "host_id": "quiet-a", "cost_units": 1}),
        DenyReason::AddonLimit,
    )
    .await;

    // Stale: a host that stops reporting is refused.
    feeder.silence("fading");
    eventually_denied(
        &client,
        json!({"addon_id": "a2", "job_type": "j", "host_id": "fading", "cost_units": 1}),
        DenyReason::StaleHost,
    )
    .await;

    // PANIC cool-down: the host recovers but stays off limits for a while.
    feeder.set("panicky", Load::idle(8));
    eventually_denied(&client, json!({"addon_id": "a3", "job_type": "j", "host_id": "panicky", "cost_units": 1, "priority": "HIGH"}), DenyReason::PanicCooldown).await;

    // Operator block: a blocked host is refused with `blocked`, then
    // admits again once unblocked.
    let _: serde_json::Value = call(
        &client,
        ep::HOSTS_BLOCK,
        &json!({"host_id": "quiet-b", "reason": "maintenance window"}),
    )
    .await
    .unwrap();
    eventually_denied(
        &client,
        json!({"addon_id": "a4", "job_type": "j", "host_id": "quiet-b", "cost_units": 1}),
        DenyReason::Blocked,
    )
    .await;
    let _: serde_json::Value = call(&client, ep::HOSTS_UNBLOCK, &json!({"host_id": "quiet-b"}))
        .await
        .unwrap();
    let c = client.clone();
    wait_until(Duration::from_secs(5), || {
        let c = c.clone();
        async move {
            let r = request(
                &c,
                json!({"addon_id": "a4", "job_type": "j", "host_id": "quiet-b", "cost_units": 1}),
            )
            .await;
            if r.approved {
                let _: Result<OkResponse, _> = call(
                    &c,
                    ep::LEASE_RELEASE,
                    &json!({"lease_id": r.lease_id, "token": r.token}),
                )
                .await;
            }
            r.approved
        }
    })
    .await
    .expect("unblocked host admits again");

    // Placement: no host named → the quietest eligible host with room.
    let p = request(
        &client,
        json!({"addon_id": "placer", "job_type": "j", "cost_units": 20}),
    )
    .await;
    assert!(p.approved, "{p:?}");
    let placed = p.host_id.clone().unwrap();
    assert!(
        ["quiet-a", "quiet-b", "small"].contains(&placed.as_str()),
        "placed on {placed}"
    );
    let _: OkResponse = call(
        &client,
        ep::LEASE_RELEASE,
        &json!({"lease_id": p.lease_id, "token": p.token}),
    )
    .await
    .unwrap();
    // A request too large for the small host but fine elsewhere never lands there.
    let p = request(
        &client,
        json!({"addon_id": "placer", "job_type": "j", "cost_units": 60}),
    )
    .await;
    assert!(p.approved, "{p:?}");
    assert_ne!(p.host_id.as_deref(), Some("small"));
    let _: OkResponse = call(
        &client,
        ep::LEASE_RELEASE,
        &json!({"lease_id": p.lease_id, "token": p.token}),
    )
    .await
    .unwrap();

    // Queue: fill the small host, park a waiter, release → the waiter is granted.
    let full = request(
        &client,
        json!({"addon_id": "filler", "job_type": "j", "host_id": "small", "cost_units": 40}),
    )
    .await;
    assert!(full.approved, "{full:?}");
    let q = request(&client, json!({"addon_id": "waiter", "job_type": "j", "host_id": "small", "cost_units": 40, "wait": true, "wait_timeout_sec": 30})).await;
    assert!(!q.approved && q.queued, "{q:?}");
    let qid = q.lease_id.clone().expect("queued lease id");
    let mut qev = events(&client, &qid).await;
    assert_eq!(status(&client).await.queue_length, 1);
    let _: OkResponse = call(
        &client,
        ep::LEASE_RELEASE,
        &json!({"lease_id": full.lease_id, "token": full.token}),
    )
    .await
    .unwrap();
    let granted = next_event(&mut qev).await;
    assert_eq!(granted.event, LeaseEventKind::Granted);
    assert_eq!(granted.host_id.as_deref(), Some("small"));
    let hb = heartbeat(&client, json!({"lease_id": qid, "token": q.token})).await;
    assert!(hb.ok);

    // Bad requests get error replies and change nothing.
    let before = status(&client).await;
    for bad in [
        json!({"addon_id": "a", "job_type": "j", "host_id": "quiet-a", "cost_units": 0}),
        json!({"addon_id": "a", "job_type": "j", "host_id": "quiet-a", "cost_units": 101}),
        json!({"addon_id": "a", "job_type": "j", "host_id": "quiet-a", "cost_units": "ten"}),
        json!({"addon_id": 7, "job_type": "j", "cost_units": 5}),
        json!({"addon_id": "a", "job_type": "j", "cost_units": 5, "priority": "URGENT"}),
        json!({"addon_id": "a", "job_type": "j", "cost_units": 5, "padding": "x".repeat(300 * 1024)}),
    ] {
        let e = call::<_, HeavyLeaseResponse>(&client, ep::LEASE_REQUEST, &bad)
            .await
            .unwrap_err();
        assert_eq!(
            service_code(e),
            ErrorCode::InvalidRequest,
            "{}",
            &bad.to_string()[..80.min(bad.to_string().len())]
        );
    }
    let reply = call_raw(&client, ep::LEASE_RELEASE, b"not json".to_vec()).await;
    assert!(reply.headers.is_some());
    let e = call::<_, OkResponse>(
        &client,
        ep::LEASE_RELEASE,
        &json!({"lease_id": qid, "token": "wrong"}),
    )
    .await
    .unwrap_err();
    assert_eq!(service_code(e), ErrorCode::Forbidden);
    let e = call::<_, OkResponse>(&client, ep::LEASE_REVOKE, &json!({"lease_id": "nope"}))
        .await
        .unwrap_err();
    assert_eq!(service_code(e), ErrorCode::NotFound);
    let after = status(&client).await;
    assert_eq!(before.leases.active.len(), after.leases.active.len());
    assert_eq!(
        before.hosts.iter().map(|h| h.used_units).sum::<u32>(),
        after.hosts.iter().map(|h| h.used_units).sum::<u32>()
    );

    // The decisions are in the metrics, by reason.
    let text = lull_tests::scrape(&coord.metrics_url).await.unwrap();
    for code in [
        "not_quiet",
        "panic",
        "unknown_host",
        "capacity_exceeded",
        "addon_limit",
        "stale_host",
        "panic_cooldown",
    ] {
        assert!(
            metric(
                &text,
                "lull_lease_decisions_total",
                &[("result", "denied"), ("reason", code)]
            )
            .is_some(),
            "no denial metric for {code}"
        );
    }
    assert!(metric(
        &text,
        "lull_lease_decisions_total",
        &[("result", "granted")]
    )
    .is_some());
    assert!(text.contains("lull_request_duration_seconds_bucket{endpoint=\"lease.request\""));
    // Audit rows reach Postgres in batches.
    let pg = infra.pg.client().await.unwrap();
    let pgc = &pg;
    wait_until(Duration::from_secs(5), || async move {
        pgc.query_one(
            "SELECT count(*) FROM lease_events WHERE kind = 'denied'",
            &[],
        )
        .await
        .map(|r| r.get::<_, i64>(0) >= 7)
        .unwrap_or(false)
    })
    .await
    .expect("audit rows written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_and_global_limits() {
    let infra = Infra::start().await.expect("infra");
    let _coord = start_coordinator(
        &infra,
        &[
            ("LULL_LEASE__RATE_PER_SEC", "0.01"),
            ("LULL_LEASE__BURST", "3"),
            ("LULL_LEASE__MAX_GLOBAL", "2"),
        ],
    )
    .await;
    let client = infra.nats.connect().await.unwrap();
    let feeder = Feeder::start(client.clone(), Duration::from_millis(300));
    feeder.set("h1", Load::idle(8));
    wait_state(&client, "h1", QuietState::Quiet).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a = request(
        &client,
        json!({"addon_id": "one", "job_type": "j", "host_id": "h1", "cost_units": 1}),
    )
    .await;
    let b = request(
        &client,
        json!({"addon_id": "two", "job_type": "j", "host_id": "h1", "cost_units": 1}),
    )
    .await;
    assert!(a.approved && b.approved, "{a:?} {b:?}");
    denied(
        &client,
        json!({"addon_id": "three", "job_type": "j", "host_id": "h1", "cost_units": 1}),
        DenyReason::GlobalLimit,
    )
    .await;
    // "one" has used 1 of its burst of 3; two more are allowed, then it is throttled.
    for _ in 0..2 {
        let r = request(
            &client,
            json!({"addon_id": "one", "job_type": "j", "host_id": "h1", "cost_units": 1}),
        )
        .await;
        assert_ne!(r.reason_code, Some(DenyReason::RateLimited), "{r:?}");
    }
    denied(
        &client,
        json!({"addon_id": "one", "job_type": "j", "host_id": "h1", "cost_units": 1}),
        DenyReason::RateLimited,
    )
    .await;
    drop(feeder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_restart_keeps_heartbeating_leases_and_refuses_new_grants_in_grace() {
    let infra = Infra::start().await.expect("infra");
    let env = lease_env(&[("LULL_LEASE__GRACE_PERIOD_SEC", "3")]);
    let mut coord = start_coordinator(&infra, &env).await;
    let client = infra.nats.connect().await.unwrap();
    let feeder = Feeder::start(client.clone(), Duration::from_millis(300));
    feeder.set("h1", Load::idle(2));
    wait_state(&client, "h1", QuietState::Quiet).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let g = request(
        &client,
        json!({"addon_id": "keeper", "job_type": "j", "host_id": "h1", "cost_units": 30}),
    )
    .await;
    assert!(g.approved, "{g:?}");
    let (id, token) = (g.lease_id.clone().unwrap(), g.token.clone().unwrap());
    let cap = status(&client).await.hosts[0].capacity_units;

    coord.svc.kill9();
    let coord2 = start_coordinator_on(&infra, coord.metrics_port, &env).await;
    // During the grace period new grants are refused...
    denied(
        &client,
        json!({"addon_id": "newcomer", "job_type": "j", "host_id": "h1", "cost_units": 1}),
        DenyReason::GracePeriod,
    )
    .await;
    // ...and the holder re-asserts its lease with a heartbeat.
    let hb = heartbeat(&client, json!({"lease_id": id, "token": token})).await;
    assert!(hb.ok, "{hb:?}\n{}", coord2.svc.logs());
    assert_eq!(hb.state, LeaseState::Active);
    // A forged token is refused even in grace.
    let forged = format!("{token}x");
    let e = call::<_, HeartbeatResponse>(
        &client,
        ep::LEASE_HEARTBEAT,
        &json!({"lease_id": id, "token": forged}),
    )
    .await;
    assert!(e.is_err() || !e.unwrap().ok);
    // After the grace period, capacity accounts for the re-asserted lease:
    // never over-granted.
    let c = client.clone();
    let (id2, token2) = (id.clone(), token.clone());
    let hb_task = tokio::spawn(async move {
        loop {
            let _: Result<HeartbeatResponse, _> = call(
                &c,
                ep::LEASE_HEARTBEAT,
                &json!({"lease_id": id2, "token": token2}),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    let st = status(&client).await;
    assert!(st.leases.active.iter().any(|l| l.lease_id == id), "{st:?}");
    let h = st.hosts.iter().find(|h| h.host_id == "h1").unwrap();
    assert_eq!(h.used_units, 30);
    let room = cap.saturating_sub(30) + 1;
    let over = request(&client, json!({"addon_id": "newcomer", "job_type": "j", "host_id": "h1", "cost_units": room.min(100)})).await;
    if room <= 100 {
        assert_eq!(
            over.reason_code,
            Some(DenyReason::CapacityExceeded),
            "{over:?}"
        );
    }
    let fits = request(
        &client,
        json!({"addon_id": "newcomer", "job_type": "j", "host_id": "h1", "cost_units": 1}),
    )
    .await;
    assert!(fits.approved, "{fits:?}");
    hb_task.abort();
    drop(feeder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_rows_are_written_in_batches_and_pruned_past_retention() {
    let infra = Infra::start().await.expect("infra");
    // Keep audit rows for 0.0002 days (17 s) and prune every 0.2 s.
    let coord = start_coordinator(
        &infra,
        &lease_env(&[
            ("LULL_SCHEDULER__AUDIT_RETENTION_DAYS", "0.0002"),
            ("LULL_SCHEDULER__AUDIT_PRUNE_SEC", "0.2"),
            ("LULL_SCHEDULER__AUDIT_FLUSH_SEC", "0.1"),
        ]),
    )
    .await;
    let client = infra.nats.connect().await.unwrap();
    let feeder = Feeder::start(client.clone(), Duration::from_millis(300));
    feeder.set("h1", Load::idle(8));
    wait_state(&client, "h1", QuietState::Quiet).await;
    // The book hears of the host shortly after the fleet does, and the
    // grace period (one TTL) must pass.
    let r = granted(
        &client,
        json!({"addon_id": "auditor", "job_type": "j", "host_id": "h1", "cost_units": 2}),
    )
    .await;
    let lease_id = r.lease_id.clone().unwrap();

    let pg = infra.pg.client().await.unwrap();
    // An old row, as if written 2 days ago.
    pg.execute(
        "INSERT INTO lease_events (at, kind, lease_id, addon_id, job_type, host_id,
                                   cost_units, priority)
         VALUES (extract(epoch from now()) - 172800, 'granted', 'old-1', 'auditor', 'j',
                 'h1', 1, 'NORMAL')",
        &[],
    )
    .await
    .unwrap();
    let pgc = &pg;
    let lid = lease_id.as_str();
    wait_until(Duration::from_secs(10), || async move {
        let kinds: Vec<String> = pgc
            .query(
                "SELECT kind FROM lease_events WHERE lease_id = $1 OR (kind = 'requested' AND addon_id = 'auditor')",
                &[&lid],
            )
            .await
            .map(|rows| rows.iter().map(|r| r.get(0)).collect())
            .unwrap_or_default();
        let old: i64 = pgc
            .query_one("SELECT count(*) FROM lease_events WHERE lease_id = 'old-1'", &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or(1);
        kinds.contains(&"requested".to_string()) && kinds.contains(&"granted".to_string()) && old == 0
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "the grant is not audited (requested + granted) or the 2-day-old row is not pruned: {e}\n{}",
            coord.svc.logs()
        )
    });
    // The row keeps every field of the grant.
    let row = pg
        .query_one(
            "SELECT addon_id, job_type, host_id, cost_units, priority FROM lease_events
             WHERE lease_id = $1 AND kind = 'granted'",
            &[&lease_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "auditor");
    assert_eq!(row.get::<_, &str>(1), "j");
    assert_eq!(row.get::<_, &str>(2), "h1");
    assert_eq!(row.get::<_, i32>(3), 2);
    assert_eq!(row.get::<_, &str>(4), "NORMAL");
    drop(feeder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_entering_panic_revokes_its_leases() {
    let infra = Infra::start().await.expect("infra");
    let _coord = start_coordinator(&infra, &lease_env(&[])).await;
    let client = infra.nats.connect().await.unwrap();
    let feeder = Feeder::start(client.clone(), Duration::from_millis(200));
    feeder.set("h1", Load::idle(8));
    feeder.set("h2", Load::idle(8));
    wait_state(&client, "h1", QuietState::Quiet).await;
    wait_state(&client, "h2", QuietState::Quiet).await;
    let grant = |host: &str| {
        granted(
            &client,
            json!({"addon_id": "backup", "job_type": "j", "host_id": host, "cost_units": 5}),
        )
    };
    let on_h1 = grant("h1").await;
    let on_h2 = grant("h2").await;
    let id1 = on_h1.lease_id.clone().unwrap();
    let mut ev = events(&client, &id1).await;
    client.flush().await.unwrap();

    feeder.set("h1", Load::panic(8));
    let e = next_end_event(&mut ev).await;
    assert_eq!(e.event, LeaseEventKind::Revoked, "{e:?}");
    assert!(
        e.reason.as_deref().unwrap_or("").contains("entered PANIC"),
        "{e:?}"
    );
    let hb = heartbeat(&client, json!({"lease_id": id1, "token": on_h1.token})).await;
    assert!(!hb.ok);
    assert_eq!(hb.state, LeaseState::Revoked);
    // The quiet host's lease is untouched.
    let hb = heartbeat(
        &client,
        json!({"lease_id": on_h2.lease_id, "token": on_h2.token}),
    )
    .await;
    assert!(hb.ok, "{hb:?}");
    drop(feeder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_signing_key_still_re_admits_leases_and_swaps_their_tokens() {
    let infra = Infra::start().await.expect("infra");
    let base = [("LULL_LEASE__GRACE_PERIOD_SEC", "5")];
    let mut coord = start_coordinator(&infra, &lease_env(&base)).await;
    let client = infra.nats.connect().await.unwrap();
    let feeder = Feeder::start(client.clone(), Duration::from_millis(300));
    feeder.set("h1", Load::idle(8));
    wait_state(&client, "h1", QuietState::Quiet).await;
    let g = granted(
        &client,
        json!({"addon_id": "keeper", "job_type": "j", "host_id": "h1", "cost_units": 5}),
    )
    .await;
    let (id, old_token) = (g.lease_id.clone().unwrap(), g.token.clone().unwrap());
    let pg = infra.pg.client().await.unwrap();
    let count_keys = || async {
        pg.query_one("SELECT count(*) FROM lease_keys", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(count_keys().await, 1);

    // Restart with a key older than the rotation age: a second key signs,
    // the first still verifies, and the holder is handed a new token.
    coord.svc.kill9();
    let mut rotate = base.to_vec();
    rotate.push(("LULL_SCHEDULER__KEY_ROTATE_DAYS", "0.000001"));
    let mut coord2 = start_coordinator_on(&infra, coord.metrics_port, &lease_env(&rotate)).await;
    assert_eq!(count_keys().await, 2);
    let hb = heartbeat(&client, json!({"lease_id": id, "token": old_token})).await;
    assert!(hb.ok, "{hb:?}\n{}", coord2.svc.logs());
    let new_token = hb.token.clone().expect("a token signed with the new key");
    assert_ne!(new_token, old_token);
    let hb = heartbeat(&client, json!({"lease_id": id, "token": new_token})).await;
    assert!(hb.ok && hb.token.is_none(), "{hb:?}");

    // Restart keeping replaced keys for no time: the old key is gone, so
    // only the new token can re-assert the lease.
    coord2.svc.kill9();
    let mut forget = base.to_vec();
    forget.push(("LULL_SCHEDULER__KEY_ROTATE_DAYS", "0"));
    forget.push(("LULL_SCHEDULER__KEY_KEEP_DAYS", "0"));
    let coord3 = start_coordinator_on(&infra, coord.metrics_port, &lease_env(&forget)).await;
    assert_eq!(count_keys().await, 1);
    let old = call::<_, HeartbeatResponse>(
        &client,
        ep::LEASE_HEARTBEAT,
        &json!({"lease_id": id, "token": old_token}),
    )
    .await;
    assert_eq!(service_code(old.unwrap_err()), ErrorCode::NotFound);
    let hb = heartbeat(&client, json!({"lease_id": id, "token": new_token})).await;
    assert!(hb.ok, "{hb:?}\n{}", coord3.svc.logs());
    drop(feeder);
}
