//! End-to-end: several coordinators on one NATS and one Postgres. Exactly
//! one leads; a kill -9 of the leader hands over within seconds with the
//! exact live lease set (no grace period, no lease lost, nothing granted
//! twice); a graceful stop hands over at once; a paused leader grants
//! nothing after it wakes.

mod support;

use std::time::{Duration, Instant};

use lull_proto::msg::hosts::QuietState;
use lull_proto::msg::lease::{HeartbeatResponse, HeavyLeaseResponse, SchedulerStatus};
use lull_proto::subjects::endpoints as ep;
use lull_tests::{wait_until, Infra};
use nix::sys::signal::Signal;
use serde_json::json;
use support::*;

fn ha_env<'a>() -> Vec<(&'a str, &'a str)> {
    vec![
        ("LULL_LEASE__HEARTBEAT_TTL_SEC", "10"),
        ("LULL_LEASE__RATE_PER_SEC", "1000"),
        ("LULL_LEASE__BURST", "1000"),
        ("LULL_HA__LEADER_TTL_SEC", "2"),
        ("LULL_HA__RENEW_SEC", "0.3"),
        ("LULL_HA__DRIFT_MARGIN_SEC", "0.4"),
        ("LULL_HA__RETRY_SEC", "0.3"),
    ]
}

async fn request(
    client: &async_nats::Client,
    addon: &str,
    units: u32,
) -> Option<HeavyLeaseResponse> {
    let body = json!({"addon_id": addon, "job_type": "j", "host_id": "h1", "cost_units": units});
    tokio::time::timeout(
        Duration::from_millis(800),
        call(client, ep::LEASE_REQUEST, &body),
    )
    .await
    .ok()
    .and_then(|r| r.ok())
}

async fn heartbeat(
    client: &async_nats::Client,
    id: &str,
    token: &str,
) -> Option<HeartbeatResponse> {
    call(
        client,
        ep::LEASE_HEARTBEAT,
        &json!({"lease_id": id, "token": token}),
    )
    .await
    .ok()
}

async fn status(client: &async_nats::Client) -> SchedulerStatus {
    call(client, ep::SCHEDULER_STATUS, &json!({}))
        .await
        .unwrap()
}

/// `lull_coordinator_leader` of each instance (None when unreadable).
async fn leaders(coords: &[&Coordinator]) -> Vec<Option<f64>> {
    let mut v = Vec::new();
    for c in coords {
        let text = lull_tests::http::http_get(&c.metrics_url)
            .await
            .map(|r| r.body)
            .unwrap_or_default();
        v.push(metric(&text, "lull_coordinator_leader", &[]));
    }
    v
}

async fn leading(c: &Coordinator) -> bool {
    let text = lull_tests::http::http_get(&c.metrics_url)
        .await
        .map(|r| r.body)
        .unwrap_or_default();
    metric(&text, "lull_coordinator_leader", &[]) == Some(1.0)
}

/// Waits until `c` leads (`lead`) or stands by; `Err` after `within`.
async fn wait_role(c: &Coordinator, lead: bool, within: Duration) -> Result<(), ()> {
    wait_until(within, || async move { leading(c).await == lead })
        .await
        .map_err(|_| ())
}

/// Waits until some coordinator answers a lease request; returns it and
/// how long that took.
async fn first_answer(
    client: &async_nats::Client,
    addon: &str,
    since: Instant,
) -> (HeavyLeaseResponse, Duration) {
    loop {
        if let Some(r) = request(client, addon, 1).await {
            return (r, since.elapsed());
        }
        assert!(
            since.elapsed() < Duration::from_secs(20),
            "no leader answered for 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A leader (`a`) and a standby (`b`) on `infra`, with host `h1` fed as
/// idle and QUIET, and the standby's replica synced.
struct Pair {
    infra: Infra,
    a: Coordinator,
    b: Coordinator,
    client: async_nats::Client,
    feeder: Feeder,
}

async fn pair_on(infra: Infra, a_extra: &[(&str, &str)]) -> Pair {
    pair_with(infra, a_extra, &[]).await
}

async fn pair_with(infra: Infra, a_extra: &[(&str, &str)], b_extra: &[(&str, &str)]) -> Pair {
    let env = ha_env();
    let mut a_env = env.clone();
    a_env.extend_from_slice(a_extra);
    let mut b_env = env.clone();
    b_env.extend_from_slice(b_extra);
    let a = start_coordinator(&infra, &a_env).await;
    let b = start_instance(&infra, &b_env).await;
    let client = infra.nats.connect().await.unwrap();
    let feeder = Feeder::start(client.clone(), Duration::from_millis(300));
    feeder.set("h1", Load::idle(4));
    wait_state(&client, "h1", QuietState::Quiet).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    Pair {
        infra,
        a,
        b,
        client,
        feeder,
    }
}

async fn pair() -> Pair {
    pair_on(Infra::start().await.expect("infra"), &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_the_leader_hands_over_in_seconds_with_the_exact_live_set() {
    let Pair {
        infra: _infra,
        mut a,
        b,
        client,
        feeder,
    } = pair().await;
    assert_eq!(leaders(&[&a, &b]).await, vec![Some(1.0), Some(0.0)]);

    let g1 = request(&client, "keeper", 20).await.expect("a reply");
    assert!(g1.approved, "{g1:?}");
    // A lease released before the failover: its (stale) token must not
    // bring it back on the new leader.
    let gone = request(&client, "gone", 5).await.expect("a reply");
    assert!(gone.approved, "{gone:?}");
    let released: lull_proto::msg::lease::OkResponse = call(
        &client,
        ep::LEASE_RELEASE,
        &json!({"lease_id": gone.lease_id, "token": gone.token}),
    )
    .await
    .unwrap();
    assert!(released.ok);
    // Let the standby sync, then grant once more just before the kill: the
    // standby must know this grant from the replication stream alone.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let g2 = request(&client, "tail", 20).await.expect("a reply");
    assert!(g2.approved, "{g2:?}");
    let used_before = status(&client).await.hosts[0].used_units;
    a.svc.kill9();
    let killed = Instant::now();

    let (first, took) = first_answer(&client, "after", killed).await;
    assert!(
        took < Duration::from_secs(6),
        "first answer after {took:?}\n{}",
        b.svc.logs()
    );
    // An exact replica: no grace period, new grants go on at once.
    assert!(first.approved, "{first:?}\n{}", b.svc.logs());
    assert!(leading(&b).await);
    // Both leases are live on the new leader before any heartbeat, and no
    // capacity was handed out twice.
    let st = status(&client).await;
    for g in [&g1, &g2] {
        let id = g.lease_id.as_deref().unwrap();
        assert!(
            st.leases.active.iter().any(|l| l.lease_id == id),
            "{id} lost: {st:?}\n{}",
            b.svc.logs()
        );
    }
    assert_eq!(st.hosts[0].used_units, used_before + 1, "{st:?}");
    // New ids carry the new epoch, so none repeats an old one.
    let new_id = first.lease_id.clone().unwrap();
    assert!(new_id != g1.lease_id.clone().unwrap() && new_id != g2.lease_id.clone().unwrap());
    // A stale token (released before the kill) and a forged one (another
    // epoch written into a real token) re-admit nothing.
    let stale = heartbeat(
        &client,
        gone.lease_id.as_deref().unwrap(),
        gone.token.as_deref().unwrap(),
    )
    .await;
    assert!(stale.is_none_or(|h| !h.ok), "a released lease came back");
    let mut forged = g1.token.clone().unwrap();
    forged.insert(forged.len() / 2, 'A');
    let f = heartbeat(&client, g1.lease_id.as_deref().unwrap(), &forged).await;
    assert!(f.is_none_or(|h| !h.ok), "a forged token was accepted");
    let st2 = status(&client).await;
    assert_eq!(st2.hosts[0].used_units, st.hosts[0].used_units, "{st2:?}");
    // The holders' tokens keep working.
    for g in [&g1, &g2] {
        let hb = heartbeat(
            &client,
            g.lease_id.as_deref().unwrap(),
            g.token.as_deref().unwrap(),
        )
        .await
        .expect("heartbeat reply");
        assert!(hb.ok, "{hb:?}");
    }
    drop(feeder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_hands_over_and_one_leads_among_three() {
    let infra = Infra::start().await.expect("infra");
    let env = ha_env();
    let mut a = start_coordinator(&infra, &env).await;
    let b = start_instance(&infra, &env).await;
    let c = start_instance(&infra, &env).await;
    let client = infra.nats.connect().await.unwrap();
    for _ in 0..10 {
        let v = leaders(&[&a, &b, &c]).await;
        assert_eq!(v.iter().filter(|x| **x == Some(1.0)).count(), 1, "{v:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A fourth joins without disturbing the leader.
    let d = start_instance(&infra, &env).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(leading(&a).await);
    assert_eq!(leaders(&[&b, &c, &d]).await, vec![Some(0.0); 3]);

    let feeder = Feeder::start(client.clone(), Duration::from_millis(300));
    feeder.set("h1", Load::idle(4));
    wait_state(&client, "h1", QuietState::Quiet).await;
    let stopped = Instant::now();
    a.svc
        .terminate(Duration::from_secs(10))
        .await
        .expect("graceful stop");
    let (_, took) = first_answer(&client, "after", stopped).await;
    assert!(took < Duration::from_secs(4), "handover took {took:?}");
    let v = leaders(&[&b, &c, &d]).await;
    assert_eq!(v.iter().filter(|x| **x == Some(1.0)).count(), 1, "{v:?}");
    drop(feeder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_grants_nothing_after_it_wakes() {
    let Pair {
        infra: _infra,
        a,
        b,
        client,
        feeder,
    } = pair().await;
    let g = request(&client, "keeper", 20).await.expect("reply");
    assert!(g.approved);
    let old_prefix = g.lease_id.clone().unwrap();
    let old_prefix = old_prefix.split('-').next().unwrap().to_string();

    a.svc.signal(Signal::SIGSTOP);
    // Twice the leader TTL.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let ok = wait_role(&b, true, Duration::from_secs(10)).await;
    assert!(ok.is_ok(), "the standby never took over:\n{}", b.svc.logs());
    a.svc.signal(Signal::SIGCONT);
    // Every grant after the wake comes from the new leader's epoch.
    for i in 0..20 {
        if let Some(r) = request(&client, &format!("w{i}"), 1).await {
            if let Some(id) = &r.lease_id {
                assert!(
                    !id.starts_with(&format!("{old_prefix}-")),
                    "old leader granted {id}"
                );
            }
        }
    }
    let ok = wait_role(&a, false, Duration::from_secs(5)).await;
    assert!(
        ok.is_ok(),
        "the old leader still claims to lead:\n{}",
        a.svc.logs()
    );
    let st = status(&client).await;
    assert!(st
        .leases
        .active
        .iter()
        .any(|l| Some(&l.lease_id) == g.lease_id.as_ref()));
    assert!(st.hosts[0].used_units <= st.hosts[0].capacity_units);
    drop(feeder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_under_steady_load_loses_no_lease_and_never_over_grants() {
    use futures::StreamExt;
    use lull_proto::msg::lease::LeaseEvent;
    use lull_tests::checker::check;
    use lull_tests::lease_load::{self, Seen};

    let Pair {
        infra,
        mut a,
        b,
        client,
        feeder,
    } = pair().await;
    let cap = status(&client).await.hosts[0].capacity_units;

    // The checker's own view of the coordinators' events.
    let mut events = client
        .subscribe(lull_proto::Subjects::default().lease_events(">"))
        .await
        .unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen::default()));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut clients = Vec::new();
    for i in 0..6 {
        clients.push(tokio::spawn(lease_load::client(
            infra.nats.connect().await.unwrap(),
            format!("load{i}"),
            stop.clone(),
            seen.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    a.svc.kill9();
    let killed = lull_common::runtime::now_unix();
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.cancel();
    for c in clients {
        let _ = c.await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut obs = std::mem::take(&mut seen.lock().unwrap().obs);
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), events.next()).await {
        if let Ok(ev) = serde_json::from_slice::<LeaseEvent>(&m.payload) {
            obs.push(lease_load::observe(ev));
        }
    }
    let s = seen.lock().unwrap();
    let findings = check(
        &obs,
        &std::collections::HashMap::from([("h1".to_string(), cap)]),
    );
    assert!(findings.leases > 10, "too little load: {findings:?}");
    assert!(findings.clean(), "{findings:?}\n{}", b.svc.logs());
    assert!(
        s.lost.is_empty(),
        "leases lost: {:?}\n{}",
        s.lost,
        b.svc.logs()
    );
    // A standby answered within a few seconds of the kill.
    let first_after = s
        .answers
        .iter()
        .copied()
        .filter(|t| *t > killed)
        .fold(f64::INFINITY, f64::min);
    assert!(
        first_after - killed < 5.0,
        "first answer {:.2} s after the kill",
        first_after - killed
    );
    drop(feeder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_postgres_steps_down_and_a_standby_takes_over() {
    let infra = Infra::start().await.expect("infra");
    // The leader reaches Postgres through a proxy that can black-hole it.
    let proxy = lull_tests::proxy::Proxy::start(infra.pg.port())
        .await
        .unwrap();
    let via_proxy = format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        proxy.port(),
        infra.pg.database()
    );
    let Pair {
        infra: _infra,
        a,
        b,
        client,
        feeder,
    } = pair_on(infra, &[("LULL_DATABASE_URL", via_proxy.as_str())]).await;
    let g = request(&client, "keeper", 20).await.expect("reply");
    assert!(g.approved, "{g:?}");
    assert!(leading(&a).await);

    proxy.black_hole(true);
    let cut = Instant::now();
    // The leader stops within its TTL (2 s here)...
    let ok = wait_role(&a, false, Duration::from_secs(4)).await;
    assert!(
        ok.is_ok(),
        "the cut-off leader kept leading:\n{}",
        a.svc.logs()
    );
    let stepped_down = cut.elapsed();
    assert!(
        stepped_down < Duration::from_millis(2600),
        "stepped down after {stepped_down:?}"
    );
    // ...and the standby, which reaches Postgres, takes over and answers.
    let (r, took) = first_answer(&client, "after", cut).await;
    assert!(
        took < Duration::from_secs(8),
        "took {took:?}\n{}",
        b.svc.logs()
    );
    assert!(leading(&b).await);
    let new_id = r.lease_id.clone().unwrap_or_default();
    assert!(r.approved, "{r:?}");
    assert_ne!(
        new_id.split('-').next(),
        g.lease_id.as_deref().unwrap().split('-').next()
    );
    // The lease granted before the cut is still live on the new leader.
    let st = status(&client).await;
    assert!(
        st.leases
            .active
            .iter()
            .any(|l| Some(&l.lease_id) == g.lease_id.as_ref()),
        "{st:?}"
    );
    assert!(st.hosts[0].used_units <= st.hosts[0].capacity_units);
    proxy.black_hole(false);
    drop(feeder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_and_malformed_replication_changes_nothing() {
    use lull_coordinator::scheduler::replica::{seal_record, Body, Change, SealKey};

    let Pair {
        infra,
        mut a,
        b,
        client,
        feeder,
    } = pair().await;
    let g = request(&client, "keeper", 20).await.expect("reply");
    assert!(g.approved);
    let id = g.lease_id.clone().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let ended = |epoch: u64, seq: u64| Body {
        epoch,
        seq,
        changes: vec![Change::Ended {
            lease_id: id.clone(),
        }],
    };
    let subject = "lull.ha.leases";
    // Garbage.
    client.publish(subject, "{not json".into()).await.unwrap();
    // A record sealed with a key no coordinator has.
    let stranger = SealKey::derive(&[7u8; 32]);
    client
        .publish(subject, seal_record(&stranger, &ended(1, 999)))
        .await
        .unwrap();
    // A record sealed with the real key, but of an epoch before the
    // current one (a former leader's).
    let pg = infra.pg.client().await.unwrap();
    let key_hex: String = pg
        .query_one(
            "SELECT key_hex FROM lease_keys ORDER BY created_at DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let real = SealKey::from_hex(&key_hex).unwrap();
    client
        .publish(subject, seal_record(&real, &ended(0, 1)))
        .await
        .unwrap();
    client.flush().await.unwrap();

    let url = b.metrics_url.clone();
    let ok = wait_until(Duration::from_secs(5), || {
        let url = url.clone();
        async move {
            let t = lull_tests::http::http_get(&url)
                .await
                .map(|r| r.body)
                .unwrap_or_default();
            ["malformed", "bad_mac", "stale_epoch"].iter().all(|r| {
                metric(&t, "lull_lease_replica_messages_total", &[("result", r)]).unwrap_or(0.0)
                    >= 1.0
            })
        }
    })
    .await;
    assert!(ok.is_ok(), "bad records not counted:\n{}", b.svc.logs());

    // None of them changed the standby's replica: after a kill -9 it takes
    // over exactly, with the lease live and no grace period.
    a.svc.kill9();
    let (first, _) = first_answer(&client, "after", Instant::now()).await;
    assert!(first.approved, "{first:?}");
    let st = status(&client).await;
    assert!(st.leases.active.iter().any(|l| l.lease_id == id), "{st:?}");
    drop(feeder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_former_leaders_writes_are_fenced_at_the_storage() {
    use lull_coordinator::store::{self, fence, StoreError};

    let pg = lull_tests::Postgres::start().await.expect("postgres");
    let pool = store::pool(&pg.url(), 4).unwrap();
    store::migrations::migrate(&pool).await.unwrap();
    let admin = pg.client().await.unwrap();
    admin
        .execute("UPDATE lull_leader SET epoch = 6 WHERE id = 1", &[])
        .await
        .unwrap();

    // The current leader writes; a former one (epoch 5) and a standby (0)
    // are refused.
    fence::lead(6);
    let mut c = pool.get().await.unwrap();
    let tx = c.transaction().await.unwrap();
    fence::check(&tx).await.expect("the current epoch writes");
    // While that transaction is open, a takeover's epoch increment waits
    // for it: the write lands before the next leader loads.
    let bump = tokio::spawn({
        let pool = pool.clone();
        async move {
            let c = pool.get().await.unwrap();
            c.execute("UPDATE lull_leader SET epoch = epoch + 1 WHERE id = 1", &[])
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !bump.is_finished(),
        "the epoch moved under an open fenced write"
    );
    tx.commit().await.unwrap();
    assert_eq!(bump.await.unwrap(), 1);
    // Now epoch 7: the old leader's next write is refused.
    let tx = c.transaction().await.unwrap();
    assert!(matches!(
        fence::check(&tx).await,
        Err(StoreError::Fenced {
            mine: 6,
            current: 7
        })
    ));
    drop(tx);
    fence::stand_by();
    let tx = c.transaction().await.unwrap();
    assert!(matches!(
        fence::check(&tx).await,
        Err(StoreError::Fenced {
            mine: 0,
            current: 7
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_owning_task_ends_the_process_and_a_standby_takes_over() {
    let Pair {
        infra: _infra,
        mut a,
        b,
        client,
        feeder,
    } = pair_on(
        Infra::start().await.expect("infra"),
        &[("LULL_FAULT_END_TASK", "fleet")],
    )
    .await;
    // The leader's fleet actor is aborted a second after start: the process
    // must not stay half alive, it exits non-zero.
    let status = a
        .svc
        .wait(Duration::from_secs(15))
        .await
        .expect("the leader exits");
    assert!(!status.success(), "exit status {status:?}");
    assert!(
        a.svc.logs().contains("an owning task ended unexpectedly"),
        "{}",
        a.svc.logs()
    );
    let (r, _) = first_answer(&client, "after", Instant::now()).await;
    assert!(r.approved || r.reason_code.is_some(), "{r:?}");
    assert!(leading(&b).await);
    drop(feeder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_at_the_takeover_keeps_every_token_valid() {
    // The standby rotates the signing key when it takes over (its key is
    // "older" than a fraction of a second).
    let Pair {
        infra: _infra,
        mut a,
        b,
        client,
        feeder,
    } = pair_with(
        Infra::start().await.expect("infra"),
        &[],
        &[("LULL_SCHEDULER__KEY_ROTATE_DAYS", "0.00001")],
    )
    .await;
    let g = request(&client, "keeper", 20).await.expect("reply");
    assert!(g.approved, "{g:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.svc.kill9();
    let (first, _) = first_answer(&client, "after", Instant::now()).await;
    assert!(first.approved, "{first:?}\n{}", b.svc.logs());
    assert!(
        b.svc.logs().contains("rotated the lease signing key"),
        "{}",
        b.svc.logs()
    );
    // The old token still works, and the holder is handed one of the new key.
    let id = g.lease_id.as_deref().unwrap();
    let hb = heartbeat(&client, id, g.token.as_deref().unwrap())
        .await
        .expect("reply");
    assert!(hb.ok, "{hb:?}");
    let fresh = hb.token.expect("a replacement token");
    assert_ne!(Some(fresh.as_str()), g.token.as_deref());
    let hb = heartbeat(&client, id, &fresh).await.expect("reply");
    assert!(hb.ok && hb.token.is_none(), "{hb:?}");
    drop(feeder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_across_a_failover_are_all_counted_once() {
    use async_nats::jetstream;
    use lull_proto::msg::worker::{example_report, WorkerStatsReply};

    let Pair {
        infra,
        mut a,
        b,
        client,
        feeder,
    } = pair().await;
    let js = jetstream::new(client.clone());
    let now = lull_common::runtime::now_unix();
    let publish = |i: usize| {
        let js = js.clone();
        async move {
            let r = example_report(
                &format!("fo-{i:04}"),
                "failover_worker",
                now - 10_000.0 + i as f64 * 5.0,
                40.0,
            );
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Msg-Id", r.execution_id.as_str());
            js.publish_with_headers(
                lull_proto::Subjects::default().report_worker(&r.worker_name),
                h,
                serde_json::to_vec(&r).unwrap().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
    };
    for i in 0..150 {
        publish(i).await;
    }
    // Kill the leader while it consumes; publish the rest (and some again).
    tokio::time::sleep(Duration::from_millis(150)).await;
    a.svc.kill9();
    for i in 100..300 {
        publish(i).await;
    }
    let ok = wait_until(Duration::from_secs(30), || {
        let client = client.clone();
        async move {
            let r: Result<WorkerStatsReply, _> = call(
                &client,
                ep::WORKERS_STATS,
                &json!({"worker_name": "failover_worker"}),
            )
            .await;
            r.is_ok_and(|s| s.total_executions == 300)
        }
    })
    .await;
    assert!(
        ok.is_ok(),
        "not every report counted once:\n{}",
        b.svc.logs()
    );
    // Stored once each, and the stored aggregate equals a recomputation
    // from the stored rows (the new leader loaded and extended it).
    let pg = infra.pg.client().await.unwrap();
    let n: i64 = pg
        .query_one(
            "SELECT count(*) FROM worker_executions WHERE worker_name = 'failover_worker'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 300);
    let s: WorkerStatsReply = call(
        &client,
        ep::WORKERS_STATS,
        &json!({"worker_name": "failover_worker"}),
    )
    .await
    .unwrap();
    assert_eq!(s.total_executions, 300);
    let pool = lull_coordinator::store::pool(&infra.pg.url(), 2).unwrap();
    let rows = lull_coordinator::store::workers::all_executions(&pool, "failover_worker")
        .await
        .unwrap();
    let cfg = lull_engine::worker::WorkerConfig::default();
    let recomputed = lull_engine::worker::WorkerAggregate::rebuild("failover_worker", &rows, &cfg);
    let stored = lull_coordinator::store::workers::load_aggregates(&pool)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.worker_name == "failover_worker")
        .expect("stored aggregate")
        .aggregate
        .expect("decodes");
    assert_eq!(
        stored, recomputed,
        "the aggregate drifted across the failover"
    );
    drop(feeder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_leader_a_request_is_unavailable_at_once() {
    let nats = lull_tests::NatsServer::start().await.expect("nats");
    let client = nats.connect().await.unwrap();
    let started = Instant::now();
    let r: Result<HeavyLeaseResponse, _> = lull_client::request::request(
        &client,
        lull_proto::Subjects::default().endpoint(ep::LEASE_REQUEST),
        &json!({"addon_id": "a", "job_type": "j", "cost_units": 1}),
        Duration::from_secs(5),
    )
    .await;
    let e = r.expect_err("nobody leads");
    assert_eq!(e.code(), Some(lull_proto::ErrorCode::Unavailable), "{e}");
    assert!(e.to_string().contains("no coordinator answers"), "{e}");
    // NATS says "no responders" at once: no waiting for the timeout.
    assert!(started.elapsed() < Duration::from_secs(2));
}
