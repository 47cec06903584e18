//! `lullctl block HOST --drain`: the block is in force, and the leases
//! running on the host are revoked with the reason; their holders get
//! REVOKED at once. With `--drain-timeout`, a lease that ends in time is
//! reported as finished, not revoked.

mod support;

use std::time::Duration;

use lull_client::lease::{LeaseClient, LeaseEnd};
use lull_proto::msg::hosts::{DrainReport, QuietState};
use lull_proto::msg::lease::HeavyLeaseRequest;
use lull_proto::Subjects;
use lull_tests::{wait_for, Infra, Service};
use support::*;

const HOST: &str = "drain-host";

fn req(addon: &str) -> HeavyLeaseRequest {
    HeavyLeaseRequest {
        addon_id: addon.into(),
        job_type: "e2e".into(),
        host_id: Some(HOST.into()),
        cost_units: Some(10),
        cost_class: None,
        expected_duration_sec: None,
        priority: Default::default(),
        constraints: Default::default(),
        wait: false,
        wait_timeout_sec: None,
    }
}

async fn lullctl(infra: &Infra, args: &[&str]) -> lull_tests::Finished {
    Service::builder("lullctl")
        .envs(infra.lull_env())
        .args(args.iter().copied())
        .run(Duration::from_secs(60))
        .await
        .expect("lullctl finished")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_revokes_the_running_leases_and_the_holders_hear_it() {
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(
        &infra,
        &[
            ("LULL_LEASE__HEARTBEAT_TTL_SEC", "3"),
            ("LULL_LEASE__RATE_PER_SEC", "100"),
            ("LULL_LEASE__BURST", "100"),
        ],
    )
    .await;
    let client = infra.nats.connect().await.unwrap();
    let feeder = Feeder::start(client.clone(), Duration::from_millis(300));
    feeder.set(HOST, Load::idle(8));
    wait_state(&client, HOST, QuietState::Quiet).await;
    let lc = LeaseClient::new(client.clone(), Subjects::default());
    let first = wait_for(Duration::from_secs(20), || {
        let lc = lc.clone();
        async move { lc.acquire(req("a1")).await.ok() }
    })
    .await
    .unwrap_or_else(|_| panic!("no first lease\n{}", coord.svc.logs()));
    let second = lc.acquire(req("a2")).await.expect("second lease");

    let f = lullctl(
        &infra,
        &["block", HOST, "--drain", "--reason", "kernel upgrade"],
    )
    .await;
    assert_eq!(f.status.code(), Some(0), "{}{}", f.stdout, f.stderr);
    for g in [&first, &second] {
        assert!(
            f.stdout
                .contains(&format!("lease {} revoked", g.lease_id())),
            "{}",
            f.stdout
        );
        let end = tokio::time::timeout(Duration::from_secs(5), g.revoked())
            .await
            .expect("the holder hears of the revoke");
        match end {
            LeaseEnd::Revoked { reason } => {
                let r = reason.unwrap_or_default();
                assert!(r.contains("drained") && r.contains("kernel upgrade"), "{r}");
            }
            other => panic!("expected REVOKED, got {other:?}"),
        }
    }
    // Blocked: a new request is denied.
    let denied = lc.acquire(req("a3")).await.expect_err("blocked");
    assert!(denied.to_string().contains("blocked"), "{denied}");
    // `lullctl hosts` and `lullctl hosts HOST` show the block and its reason.
    for args in [&["hosts"][..], &["hosts", HOST][..]] {
        let f = lullctl(&infra, args).await;
        assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
        assert!(
            f.stdout
                .contains("blocked until unblocked (kernel upgrade)"),
            "{args:?}:\n{}",
            f.stdout
        );
    }

    // A drain with a timeout: a lease that ends in time is finished.
    // A block with an end shows it in local time.
    let f = lullctl(
        &infra,
        &["block", HOST, "--until", "2h", "--reason", "later"],
    )
    .await;
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    let f = lullctl(&infra, &["hosts"]).await;
    assert!(
        f.stdout.contains("blocked until ") && f.stdout.contains("(later)"),
        "{}",
        f.stdout
    );
    assert!(!f.stdout.contains("until unblocked"), "{}", f.stdout);
    let f = lullctl(&infra, &["unblock", HOST]).await;
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    let third = wait_for(Duration::from_secs(10), || {
        let lc = lc.clone();
        async move { lc.acquire(req("a4")).await.ok() }
    })
    .await
    .expect("a lease after the unblock");
    let id = third.lease_id().to_string();
    let drain = tokio::spawn({
        let env = infra.lull_env();
        async move {
            Service::builder("lullctl")
                .envs(env)
                .args(["--json", "block", HOST, "--drain", "--drain-timeout", "20s"])
                .run(Duration::from_secs(60))
                .await
                .expect("lullctl finished")
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(third.release("done").await.unwrap().ok);
    let f = drain.await.unwrap();
    assert_eq!(f.status.code(), Some(0), "{}{}", f.stdout, f.stderr);
    // -o json shows times in RFC 3339, so read it as plain JSON.
    let r: serde_json::Value = serde_json::from_str(&f.stdout).expect("block --json");
    let d: DrainReport = serde_json::from_value(r["drain"].clone()).expect("a drain report");
    assert_eq!(d.finished, vec![id]);
    assert!(d.revoked.is_empty(), "{d:?}");
}
