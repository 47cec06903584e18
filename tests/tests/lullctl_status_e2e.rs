//! End-to-end: `lullctl status` with several coordinators on one NATS and
//! one Postgres. It names every instance, says which one leads and in which
//! epoch (the leader's own `lull_coordinator_epoch`), in the table and in
//! the `coordinators` array of `--json`; after a graceful handover it names
//! the new leader in a newer epoch; with no coordinator left it says so and
//! exits non-zero.

mod support;

use std::time::Duration;

use lull_proto::msg::leader::LeaderReply;
use lull_proto::subjects::endpoints as ep;
use lull_tests::{wait_until, Finished, Infra, Service};
use serde_json::Value;
use support::*;

const FIRST: &str = "coord-first";
const SECOND: &str = "coord-second";

fn env(instance: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("LULL_HA__INSTANCE", instance),
        ("LULL_HA__LEADER_TTL_SEC", "2"),
        ("LULL_HA__RENEW_SEC", "0.3"),
        ("LULL_HA__DRIFT_MARGIN_SEC", "0.4"),
        ("LULL_HA__RETRY_SEC", "0.3"),
    ]
}

async fn lullctl(infra: &Infra, args: &[&str]) -> Finished {
    Service::builder("lullctl")
        .envs(infra.lull_env())
        .args(args.iter().copied())
        .run(Duration::from_secs(30))
        .await
        .expect("lullctl finished")
}

/// The coordinator table's line for `instance`, split into cells.
fn line<'a>(stdout: &'a str, instance: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.get(1) == Some(&instance))
        .unwrap_or_else(|| panic!("no line for {instance}:\n{stdout}"))
}

/// Waits until `instance` answers `coordinator.leader` itself: a started
/// instance answers `$SRV.PING` before its endpoints are subscribed.
async fn answers(client: &async_nats::Client, instance: &str) {
    let ok = wait_until(Duration::from_secs(20), || {
        let client = client.clone();
        async move {
            // The shared queue group hands each request to a random member.
            for _ in 0..8 {
                let r: Result<LeaderReply, _> =
                    call(&client, ep::COORDINATOR_LEADER, &serde_json::json!({})).await;
                if r.is_ok_and(|r| r.instance == instance) {
                    return true;
                }
            }
            false
        }
    })
    .await;
    assert!(ok.is_ok(), "{instance} never answered coordinator.leader");
}

/// `lull_coordinator_epoch` of a coordinator.
async fn epoch(c: &Coordinator) -> f64 {
    let text = lull_tests::http::http_get(&c.metrics_url)
        .await
        .map(|r| r.body)
        .unwrap_or_default();
    metric(&text, "lull_coordinator_epoch", &[]).expect("lull_coordinator_epoch")
}

/// `lullctl --json status`'s `coordinators`, checked to be a leader and a
/// standby in that order; returns the leader's epoch.
async fn json_roles(infra: &Infra, leader: &str, standby: &str) -> u64 {
    let f = lullctl(infra, &["--json", "status"]).await;
    assert_eq!(f.status.code(), Some(0), "{}{}", f.stdout, f.stderr);
    let v: Value = serde_json::from_str(&f.stdout).expect("status --json");
    assert!(v["hosts"].is_array(), "the scheduler status is kept: {v}");
    let c = v["coordinators"].as_array().expect("coordinators array");
    assert_eq!(c.len(), 2, "{v}");
    assert_eq!(
        (c[0]["instance"].as_str(), c[0]["role"].as_str()),
        (Some(leader), Some("leader"))
    );
    assert_eq!(
        (c[1]["instance"].as_str(), c[1]["role"].as_str()),
        (Some(standby), Some("standby"))
    );
    // Both read the same election row.
    assert_eq!(c[0]["leader"], leader);
    assert_eq!(c[1]["leader"], leader);
    assert_eq!(c[0]["epoch"], c[1]["epoch"]);
    assert!(c[0]["uptime_sec"].as_f64().is_some_and(|u| u > 0.0), "{v}");
    c[0]["epoch"].as_u64().expect("epoch")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_the_leader_and_the_standbys() {
    let infra = Infra::start().await.expect("infra");
    let mut first = start_coordinator(&infra, &env(FIRST)).await;
    let mut second = start_instance(&infra, &env(SECOND)).await;
    let client = infra.nats.connect().await.expect("connect");
    answers(&client, SECOND).await;

    // The table: the leader's line with its epoch, the standby's with none.
    let f = lullctl(&infra, &["status"]).await;
    assert_eq!(f.status.code(), Some(0), "{}{}", f.stdout, f.stderr);
    assert!(f.stdout.starts_with("COORDINATORS\n"), "{}", f.stdout);
    assert!(
        f.stdout.contains("ROLE") && f.stdout.contains("EPOCH") && f.stdout.contains("HOSTS"),
        "{}",
        f.stdout
    );
    assert!(!f.stdout.contains("note:"), "{}", f.stdout);
    let e1 = epoch(&first).await;
    let lead = line(&f.stdout, FIRST);
    assert_eq!(lead[0], "leader", "{}", f.stdout);
    assert_eq!(lead[2].parse::<f64>().ok(), Some(e1), "{}", f.stdout);
    let stand = line(&f.stdout, SECOND);
    assert_eq!(&stand[..3], ["standby", SECOND, "-"], "{}", f.stdout);
    assert_eq!(json_roles(&infra, FIRST, SECOND).await as f64, e1);

    // A graceful stop hands over at once: the standby leads in a newer
    // epoch, and a restarted first instance comes back as its standby.
    first
        .svc
        .terminate(Duration::from_secs(10))
        .await
        .expect("graceful stop");
    let led = wait_until(Duration::from_secs(20), || {
        let client = client.clone();
        async move { has_endpoint(&client, "lease.request").await }
    })
    .await;
    assert!(led.is_ok(), "no takeover:\n{}", second.svc.logs());
    let again = start_instance(&infra, &env(FIRST)).await;
    answers(&client, FIRST).await;
    let e2 = json_roles(&infra, SECOND, FIRST).await;
    assert!(e2 as f64 > e1, "epoch {e2} after {e1}");
    assert_eq!(epoch(&second).await, e2 as f64);
    let f = lullctl(&infra, &["status"]).await;
    assert_eq!(line(&f.stdout, SECOND)[0], "leader", "{}", f.stdout);
    assert_eq!(line(&f.stdout, FIRST)[0], "standby", "{}", f.stdout);
    drop(again);

    // With no coordinator left: the instances' section says so, and the
    // scheduler status fails (no responders).
    second
        .svc
        .terminate(Duration::from_secs(10))
        .await
        .expect("graceful stop");
    let gone = wait_until(Duration::from_secs(20), || {
        let client = client.clone();
        async move { !ping(&client).await }
    })
    .await;
    assert!(gone.is_ok(), "a coordinator still answers $SRV.PING");
    let f = lullctl(&infra, &["status"]).await;
    assert_ne!(f.status.code(), Some(0), "{}{}", f.stdout, f.stderr);
    assert!(
        f.stdout
            .contains("note: no coordinator answered coordinator.leader"),
        "{}{}",
        f.stdout,
        f.stderr
    );
}
