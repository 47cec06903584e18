//! End-to-end: the lease wait queue survives a kill -9 of the coordinator
//! and a failover to a standby. Waiters queued before keep their lease id
//! and ticket: their heartbeat after the restart finds them still queued,
//! and they are granted, in priority then age order, as room frees, without
//! asking again. A waiter that cancelled before the kill is never granted.
//! Real nats-server, Postgres and coordinator processes.

mod support;

use std::time::Duration;

use futures::StreamExt;
use lull_client::request::RequestError;
use lull_proto::msg::hosts::QuietState;
use lull_proto::msg::lease::{
    HeartbeatResponse, HeavyLeaseResponse, LeaseEvent, LeaseEventKind, LeaseState, OkResponse,
    SchedulerStatus,
};
use lull_proto::subjects::endpoints as ep;
use lull_proto::{ErrorCode, Subjects};
use lull_tests::{wait_for, wait_until, Infra};
use serde_json::json;
use support::*;

fn queue_env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![
        ("LULL_LEASE__HEARTBEAT_TTL_SEC", "6"),
        ("LULL_LEASE__RATE_PER_SEC", "1000"),
        ("LULL_LEASE__BURST", "1000"),
        ("LULL_SCHEDULER__GAUGES_SEC", "0.2"),
        ("LULL_HA__LEADER_TTL_SEC", "2"),
        ("LULL_HA__RENEW_SEC", "0.3"),
        ("LULL_HA__DRIFT_MARGIN_SEC", "0.4"),
        ("LULL_HA__RETRY_SEC", "0.3"),
    ];
    v.extend_from_slice(extra);
    v
}

/// A queued request, as its waiter knows it: the id, the ticket, and the
/// events subject it listens on.
struct Waiter {
    name: &'static str,
    id: String,
    ticket: String,
    events: async_nats::Subscriber,
}

/// What a heartbeat of a ticket says.
#[derive(Debug, PartialEq)]
enum Probe {
    Queued,
    /// Granted; the real token.
    Granted(String),
    Ended(LeaseState),
}

async fn status(client: &async_nats::Client) -> SchedulerStatus {
    call(client, ep::SCHEDULER_STATUS, &json!({}))
        .await
        .expect("scheduler.status")
}

/// The capacity of `h1` once the book knows the host as QUIET.
async fn capacity(client: &async_nats::Client) -> u32 {
    let cap = wait_for(Duration::from_secs(15), || async move {
        let st = status(client).await;
        st.hosts
            .iter()
            .find(|h| h.host_id == "h1" && h.state == QuietState::Quiet)
            .map(|h| h.capacity_units)
    })
    .await
    .expect("the book knows h1");
    cap.min(100)
}

/// Asks until granted (the book hears of the host shortly after the fleet).
async fn grant(client: &async_nats::Client, addon: &str, units: u32) -> (String, String) {
    let body = json!({"addon_id": addon, "job_type": "j", "host_id": "h1", "cost_units": units});
    let b = &body;
    let r: HeavyLeaseResponse = wait_for(Duration::from_secs(15), || async move {
        call::<_, HeavyLeaseResponse>(client, ep::LEASE_REQUEST, b)
            .await
            .ok()
            .filter(|r| r.approved)
    })
    .await
    .expect("a grant");
    (r.lease_id.unwrap(), r.token.unwrap())
}

async fn park(
    client: &async_nats::Client,
    name: &'static str,
    priority: &str,
    units: u32,
) -> Waiter {
    let body = json!({"addon_id": format!("w-{name}"), "job_type": "j", "host_id": "h1",
        "cost_units": units, "priority": priority, "wait": true, "wait_timeout_sec": 600});
    let r: HeavyLeaseResponse = call(client, ep::LEASE_REQUEST, &body)
        .await
        .expect("lease.request");
    assert!(!r.approved && r.queued, "{name}: {r:?}");
    let id = r.lease_id.expect("lease id");
    let events = client
        .subscribe(Subjects::default().lease_events(&id))
        .await
        .unwrap();
    Waiter {
        name,
        id,
        ticket: r.token.expect("ticket"),
        events,
    }
}

/// A heartbeat with the ticket, retried while no coordinator answers.
async fn probe(client: &async_nats::Client, id: &str, token: &str) -> Probe {
    let body = json!({"lease_id": id, "token": token});
    for _ in 0..100 {
        match call::<_, HeartbeatResponse>(client, ep::LEASE_HEARTBEAT, &body).await {
            Ok(h) if h.ok => return Probe::Granted(h.token.unwrap_or_else(|| token.to_string())),
            Ok(h) => return Probe::Ended(h.state),
            Err(RequestError::Service { code, message }) => {
                assert_eq!(code, ErrorCode::InvalidRequest, "{message}");
                assert!(message.contains("still queued"), "{message}");
                return Probe::Queued;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    panic!("no answer to the heartbeat of {id}");
}

async fn release(client: &async_nats::Client, id: &str, token: &str) {
    let r: OkResponse = call(
        client,
        ep::LEASE_RELEASE,
        &json!({"lease_id": id, "token": token}),
    )
    .await
    .expect("lease.release");
    assert!(r.ok, "release {id}: {r:?}");
}

/// The next `GRANTED` event on a waiter's subject (within 20 s).
async fn granted_event(w: &mut Waiter) -> LeaseEvent {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), w.events.next())
            .await
            .unwrap_or_else(|_| panic!("{} was never granted", w.name))
            .expect("subscription open");
        let ev: LeaseEvent = serde_json::from_slice(&msg.payload).expect("a lease event");
        assert_eq!(ev.lease_id, w.id);
        assert_ne!(ev.event, LeaseEventKind::Expired, "{}: {ev:?}", w.name);
        if ev.event == LeaseEventKind::Granted {
            return ev;
        }
    }
}

/// Heartbeats a lease every second until aborted.
fn keep_alive(client: &async_nats::Client, id: &str, token: &str) -> tokio::task::JoinHandle<()> {
    let (c, body) = (client.clone(), json!({"lease_id": id, "token": token}));
    tokio::spawn(async move {
        loop {
            let _ = call::<_, HeartbeatResponse>(&c, ep::LEASE_HEARTBEAT, &body).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

async fn stored_waiters(infra: &Infra) -> i64 {
    let pg = infra.pg.client().await.expect("postgres");
    pg.query_one("SELECT count(*) FROM lease_queue", &[])
        .await
        .expect("lease_queue")
        .get(0)
}

/// Frees the room one lease at a time and checks that the waiters are
/// granted in `order`, each on its original ticket, while the others still
/// wait. Returns the last grant's id and token.
async fn drain_in_order(
    client: &async_nats::Client,
    first: (String, String),
    mut order: Vec<Waiter>,
) -> (String, String) {
    let mut current = first;
    while !order.is_empty() {
        let mut w = order.remove(0);
        release(client, &current.0, &current.1).await;
        let ev = granted_event(&mut w).await;
        assert_eq!(ev.host_id.as_deref(), Some("h1"));
        let Probe::Granted(token) = probe(client, &w.id, &w.ticket).await else {
            panic!(
                "{} has a GRANTED event but its ticket is not granted",
                w.name
            );
        };
        for other in &order {
            assert_eq!(
                probe(client, &other.id, &other.ticket).await,
                Probe::Queued,
                "{} was granted before {}",
                w.name,
                other.name
            );
        }
        current = (w.id.clone(), token);
    }
    current
}

/// No `GRANTED` for a waiter that left.
async fn never_granted(client: &async_nats::Client, w: &mut Waiter) {
    while let Ok(Some(msg)) =
        tokio::time::timeout(Duration::from_millis(300), w.events.next()).await
    {
        let ev: LeaseEvent = serde_json::from_slice(&msg.payload).expect("a lease event");
        assert_ne!(ev.event, LeaseEventKind::Granted, "{} came back", w.name);
    }
    let st = status(client).await;
    assert!(!st.leases.active.iter().any(|l| l.lease_id == w.id));
    assert!(matches!(
        probe(client, &w.id, &w.ticket).await,
        Probe::Ended(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_keeps_five_waiters_in_order_and_forgets_the_cancelled_one() {
    let infra = Infra::start().await.expect("infra");
    let env = queue_env(&[("LULL_LEASE__GRACE_PERIOD_SEC", "3")]);
    let mut coord = start_coordinator(&infra, &env).await;
    let client = infra.nats.connect().await.unwrap();
    let feeder = Feeder::start(client.clone(), Duration::from_millis(300));
    feeder.set("h1", Load::idle(2));
    wait_state(&client, "h1", QuietState::Quiet).await;
    let cap = capacity(&client).await;
    let holder = grant(&client, "keeper", cap).await;
    let keeper = keep_alive(&client, &holder.0, &holder.1);

    // Five waiters, each needing the whole host, in this arrival order.
    let n1 = park(&client, "n1", "NORMAL", cap).await;
    let l1 = park(&client, "l1", "LOW", cap).await;
    let h1 = park(&client, "h1", "HIGH", cap).await;
    let n2 = park(&client, "n2", "NORMAL", cap).await;
    let h2 = park(&client, "h2", "HIGH", cap).await;
    // A sixth, most important of all, cancels before the kill.
    let mut gone = park(&client, "cancelled", "HIGH", cap).await;
    let c: OkResponse = call(
        &client,
        ep::LEASE_CANCEL,
        &json!({"lease_id": gone.id, "token": gone.ticket}),
    )
    .await
    .expect("lease.cancel");
    assert!(c.ok, "{c:?}");
    // The replies went out after the rows were committed.
    assert_eq!(stored_waiters(&infra).await, 5);
    assert_eq!(status(&client).await.queue_length, 5);
    assert_eq!(probe(&client, &n1.id, &n1.ticket).await, Probe::Queued);

    coord.svc.kill9();
    let coord2 = start_coordinator_on(&infra, coord.metrics_port, &env).await;
    // Every waiter's ticket still works: still queued, in the same queue.
    for w in [&n1, &l1, &h1, &n2, &h2] {
        assert_eq!(
            probe(&client, &w.id, &w.ticket).await,
            Probe::Queued,
            "{}\n{}",
            w.name,
            coord2.svc.logs()
        );
    }
    assert_eq!(status(&client).await.queue_length, 5);
    // The holder re-asserts its lease in the grace period; the grace ends.
    let c2 = client.clone();
    let holder_id = holder.0.clone();
    wait_until(Duration::from_secs(20), || {
        let (c2, holder_id) = (c2.clone(), holder_id.clone());
        async move {
            let st = status(&c2).await;
            st.grace_until.is_none() && st.leases.active.iter().any(|l| l.lease_id == holder_id)
        }
    })
    .await
    .expect("the holder re-asserted and the grace period ended");
    // Nothing was granted while the room stayed taken.
    assert_eq!(probe(&client, &n1.id, &n1.ticket).await, Probe::Queued);
    keeper.abort();

    let last = drain_in_order(&client, holder, vec![h1, h2, n1, n2, l1]).await;
    never_granted(&client, &mut gone).await;
    release(&client, &last.0, &last.1).await;
    assert_eq!(status(&client).await.queue_length, 0);
    let pg_left = wait_until(Duration::from_secs(5), || async {
        stored_waiters(&infra).await == 0
    })
    .await;
    assert!(pg_left.is_ok(), "rows left in lease_queue");
    drop(feeder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_the_waiters_of_a_killed_leader() {
    let infra = Infra::start().await.expect("infra");
    let env = queue_env(&[]);
    let mut a = start_coordinator(&infra, &env).await;
    let b = start_instance(&infra, &env).await;
    let client = infra.nats.connect().await.unwrap();
    let feeder = Feeder::start(client.clone(), Duration::from_millis(300));
    feeder.set("h1", Load::idle(4));
    wait_state(&client, "h1", QuietState::Quiet).await;
    let cap = capacity(&client).await;
    let holder = grant(&client, "keeper", cap).await;
    let keeper = keep_alive(&client, &holder.0, &holder.1);
    let n1 = park(&client, "n1", "NORMAL", cap).await;
    let l1 = park(&client, "l1", "LOW", cap).await;
    let h1 = park(&client, "h1", "HIGH", cap).await;
    let mut gone = park(&client, "cancelled", "HIGH", cap).await;
    let c: OkResponse = call(
        &client,
        ep::LEASE_CANCEL,
        &json!({"lease_id": gone.id, "token": gone.ticket}),
    )
    .await
    .expect("lease.cancel");
    assert!(c.ok);
    // Let the standby follow the leader's stream.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    a.svc.kill9();
    for w in [&n1, &l1, &h1] {
        assert_eq!(
            probe(&client, &w.id, &w.ticket).await,
            Probe::Queued,
            "{}\n{}",
            w.name,
            b.svc.logs()
        );
    }
    assert_eq!(status(&client).await.queue_length, 3);
    keeper.abort();
    let last = drain_in_order(&client, holder, vec![h1, n1, l1]).await;
    never_granted(&client, &mut gone).await;
    release(&client, &last.0, &last.1).await;
    drop(feeder);
}
