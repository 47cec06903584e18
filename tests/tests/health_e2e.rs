//! End-to-end: the HTTP endpoints of the coordinator and the agent.
//! `/healthz` is 200 while the process lives; `/readyz` is 200 on a ready
//! leader and a ready standby (the body names the role), 503 while Postgres
//! is down and 200 again after; `/readyz?leader` is 200 only on the leader;
//! unknown paths are 404, other methods 405, and `/metrics` carries the
//! versioned Prometheus Content-Type. `lull-coordinator --probe /readyz`
//! (the compose healthcheck, for images without curl) follows `/readyz`.

mod support;

use std::time::Duration;

use lull_tests::http::{http_get, http_request};
use lull_tests::{wait_until, Infra, Service};
use support::*;

/// Exit code of `lull-coordinator --probe PATH` against the coordinator
/// whose metrics listen on `port` (given as the wildcard address, as in a
/// container).
async fn probe(port: u16, path: &str) -> Option<i32> {
    let f = Service::builder("lull-coordinator")
        .env("LULL_METRICS_ADDR", format!("0.0.0.0:{port}"))
        .args(["--probe", path])
        .run(Duration::from_secs(20))
        .await
        .expect("probe finished");
    f.status.code()
}

fn ha_env<'a>() -> Vec<(&'a str, &'a str)> {
    vec![
        ("LULL_HA__LEADER_TTL_SEC", "2"),
        ("LULL_HA__RENEW_SEC", "0.3"),
        ("LULL_HA__DRIFT_MARGIN_SEC", "0.4"),
        ("LULL_HA__RETRY_SEC", "0.3"),
    ]
}

fn base(c: &Coordinator) -> String {
    format!("http://127.0.0.1:{}", c.metrics_port)
}

async fn status_of(url: &str) -> u16 {
    http_get(url).await.map(|r| r.status).unwrap_or(0)
}

/// Waits until GET `url` answers `status`; panics with `logs` after `within`.
async fn wait_status(url: &str, status: u16, within: Duration, logs: impl Fn() -> String) {
    let ok = wait_until(within, || async move { status_of(url).await == status }).await;
    if ok.is_err() {
        let last = http_get(url).await;
        panic!("{url} never answered {status}; last: {last:?}\n{}", logs());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_health_readiness_and_leader_check() {
    let mut infra = Infra::start().await.expect("infra");
    let env = ha_env();
    let a = start_coordinator(&infra, &env).await;
    let b = start_instance(&infra, &env).await;
    let (ua, ub) = (base(&a), base(&b));

    // Liveness.
    for u in [&ua, &ub] {
        let r = http_get(&format!("{u}/healthz")).await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body.trim(), "ok");
    }

    // Both ready, with their roles; only the leader passes the leader check.
    wait_status(
        &format!("{ua}/readyz"),
        200,
        Duration::from_secs(10),
        || a.svc.logs(),
    )
    .await;
    wait_status(
        &format!("{ub}/readyz"),
        200,
        Duration::from_secs(10),
        || b.svc.logs(),
    )
    .await;
    let ra = http_get(&format!("{ua}/readyz")).await.unwrap();
    assert!(ra.body.starts_with("ready leader"), "{ra:?}");
    for check in ["ok nats", "ok postgres", "ok startup", "ok shutdown"] {
        assert!(ra.body.contains(check), "{check} missing: {ra:?}");
    }
    let rb = http_get(&format!("{ub}/readyz")).await.unwrap();
    assert!(rb.body.starts_with("ready standby"), "{rb:?}");
    assert_eq!(status_of(&format!("{ua}/readyz?leader")).await, 200);
    let rl = http_get(&format!("{ub}/readyz?leader")).await.unwrap();
    assert_eq!(rl.status, 503, "{rl:?}");
    assert!(rl.body.contains("does not lead"), "{rl:?}");

    // Routing, methods, Content-Type.
    let r = http_get(&format!("{ua}/nonexistent")).await.unwrap();
    assert_eq!(r.status, 404, "{r:?}");
    let r = http_request("POST", &format!("{ua}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status, 405, "{r:?}");
    let r = http_get(&format!("{ua}/metrics")).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8"),
        "{:?}",
        r.headers
    );
    assert!(r.body.contains("lull_coordinator_leader"), "{}", r.body);

    // Postgres down: not ready (the process stays alive); back: ready.
    infra.pg.stop().await.unwrap();
    for (u, c) in [(&ua, &a), (&ub, &b)] {
        wait_status(&format!("{u}/readyz"), 503, Duration::from_secs(15), || {
            c.svc.logs()
        })
        .await;
        let r = http_get(&format!("{u}/readyz")).await.unwrap();
        assert!(r.body.contains("FAIL postgres"), "{r:?}");
        assert_eq!(status_of(&format!("{u}/healthz")).await, 200);
    }
    assert_eq!(probe(a.metrics_port, "/readyz").await, Some(1));
    assert_eq!(probe(a.metrics_port, "/healthz").await, Some(0));
    infra.pg.start_again().await.unwrap();
    for (u, c) in [(&ua, &a), (&ub, &b)] {
        wait_status(&format!("{u}/readyz"), 200, Duration::from_secs(30), || {
            c.svc.logs()
        })
        .await;
    }
    assert_eq!(probe(a.metrics_port, "/readyz").await, Some(0));
    // Someone leads again, and exactly one passes the leader check.
    let ok = wait_until(Duration::from_secs(20), || {
        let (ua, ub) = (ua.clone(), ub.clone());
        async move {
            let la = status_of(&format!("{ua}/readyz?leader")).await == 200;
            let lb = status_of(&format!("{ub}/readyz?leader")).await == 200;
            la != lb
        }
    })
    .await;
    assert!(ok.is_ok(), "no single leader after Postgres came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_health_and_readiness() {
    let infra = Infra::start().await.expect("infra");
    let (svc, port) = start_agent(&infra, "health-h1", &[]);
    let u = format!("http://127.0.0.1:{port}");
    wait_status(
        &format!("{u}/healthz"),
        200,
        Duration::from_secs(15),
        || svc.logs(),
    )
    .await;
    wait_status(&format!("{u}/readyz"), 200, Duration::from_secs(15), || {
        svc.logs()
    })
    .await;
    let r = http_get(&format!("{u}/readyz")).await.unwrap();
    assert!(r.body.contains("ok nats: connected"), "{r:?}");
    assert_eq!(status_of(&format!("{u}/nope")).await, 404);
    let r = http_get(&format!("{u}/metrics")).await.unwrap();
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
}
