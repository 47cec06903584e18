//! End-to-end: lullctl's commands against a real coordinator, NATS and
//! Postgres, fed synthetic snapshots: `forecast` (heatmap and next
//! window), `history` (sparklines), `streaks`, `health` (exit code follows
//! the level), `leases --denied` (reason codes from the audit trail, with
//! `-o json` times as RFC 3339), `hosts forget` (refused while the host
//! reports, then while it holds a lease, then done, in memory and in
//! Postgres), `completion` and the help without server flags.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lull_common::runtime::now_unix;
use lull_proto::msg::hosts::QuietState;
use lull_proto::msg::lease::HeavyLeaseResponse;
use lull_proto::msg::stats::example_snapshot;
use lull_proto::subjects::endpoints as ep;
use lull_tests::{wait_until, Finished, Infra, Service};
use serde_json::{json, Value};
use support::*;

const HOST: &str = "cli-1";

/// Fast cadences so history, streaks and the forecast fill in seconds.
const FAST: &[(&str, &str)] = &[
    ("LULL_INGEST__SWEEP_SEC", "0.2"),
    ("LULL_INGEST__VIEWS_FLUSH_SEC", "0.1"),
    ("LULL_QUIET__CPU_WINDOW_SEC", "1.5"),
    ("LULL_QUIET__STREAKS__MIN_STREAK_SEC", "1.5"),
    ("LULL_QUIET__STREAKS__MAX_GAP_SEC", "3"),
    ("LULL_QUIET__HISTORY__ROLLUP_STEP_SEC", "2"),
    ("LULL_QUIET__FORECAST__MIN_SAMPLES", "1"),
    ("LULL_QUIET__FORECAST__THRESHOLD", "1"),
    ("LULL_HISTORY__QUIET_EVERY_SEC", "0.2"),
    ("LULL_HISTORY__GROUPS_EVERY_SEC", "0.5"),
    ("LULL_HISTORY__FLUSH_SEC", "0.3"),
    ("LULL_HISTORY__MAINTENANCE_SEC", "0.5"),
    ("LULL_HISTORY__ROLLUP_CHUNK_SEC", "4"),
    ("LULL_HISTORY__ROLLUP_DELAY_SEC", "0.5"),
    ("LULL_HISTORY__FORECAST_REFRESH_SEC", "1"),
    ("LULL_SCHEDULER__AUDIT_FLUSH_SEC", "0.2"),
];

async fn lullctl(infra: &Infra, args: &[&str]) -> Finished {
    Service::builder("lullctl")
        .envs(infra.lull_env())
        .args(args.iter().copied())
        .run(Duration::from_secs(30))
        .await
        .expect("lullctl finished")
}

/// Runs lullctl until `ok` holds for its output (the coordinator fills
/// history, streaks and the audit trail on its own cadence).
async fn lullctl_until(infra: &Infra, args: &[&str], ok: impl Fn(&Finished) -> bool) -> Finished {
    let ok = &ok;
    let _ = wait_until(Duration::from_secs(30), || async move {
        ok(&lullctl(infra, args).await)
    })
    .await;
    let f = lullctl(infra, args).await;
    assert!(ok(&f), "lullctl {args:?}:\n{}{}", f.stdout, f.stderr);
    f
}

/// Publishes a quiet snapshot of HOST every 100 ms while `on` is set.
fn publish(client: async_nats::Client, on: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seq = 0u64;
        loop {
            if on.load(Ordering::Relaxed) {
                seq += 1;
                let mut s = example_snapshot(HOST, seq, now_unix());
                s.interval_sec = Some(0.5);
                let body = serde_json::to_vec(&s).expect("encode");
                let _ = client
                    .publish(format!("lull.stats.{HOST}"), body.into())
                    .await;
                let _ = client.flush().await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lullctl_commands_against_a_real_coordinator() {
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(&infra, FAST).await;
    let client = infra.nats.connect().await.expect("connect");
    let on = Arc::new(AtomicBool::new(true));
    let publisher = publish(client.clone(), on.clone());
    wait_state(&client, HOST, QuietState::Quiet).await;

    // history: one sparkline per signal.
    let f = lullctl_until(&infra, &["history", HOST, "--range", "1m"], |f| {
        f.stdout.contains("quiet_score")
    })
    .await;
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    assert!(f.stdout.contains("SIGNAL") && f.stdout.contains("HISTORY"));
    let line = f
        .stdout
        .lines()
        .find(|l| l.starts_with("quiet_score"))
        .unwrap();
    assert!(line.chars().any(|c| ('▁'..='█').contains(&c)), "{line}");

    // forecast: seven day rows and the next window (threshold 1: quiet now).
    let f = lullctl_until(&infra, &["forecast", HOST], |f| {
        let rows = f
            .stdout
            .lines()
            .filter(|l| l.len() > 5 && l.starts_with(char::is_uppercase));
        rows.filter(|l| l.contains('█')).count() > 0 && f.stdout.contains("next quiet window: ")
    })
    .await;
    for day in ["Mon  ", "Thu  ", "Sun  "] {
        assert!(f.stdout.contains(day), "{}", f.stdout);
    }
    assert!(!f.stdout.contains("none predicted"), "{}", f.stdout);
    let f = lullctl(&infra, &["forecast", "nobody"]).await;
    assert_eq!(f.status.code(), Some(1), "{}", f.stdout);
    assert!(f.stderr.starts_with("lullctl: "), "{}", f.stderr);

    // streaks: the quiet streak in progress, every host and one host.
    let f = lullctl_until(&infra, &["streaks"], |f| f.stdout.contains(HOST)).await;
    assert!(f.stdout.contains("DURATION"), "{}", f.stdout);
    let f = lullctl(&infra, &["-o", "json", "streaks", HOST]).await;
    let v: Value = serde_json::from_str(&f.stdout).expect("streaks json");
    assert_eq!(v[0]["host_id"], HOST, "{v}");
    assert!(
        v[0]["start_time"].as_str().is_some_and(|t| t.contains('T')),
        "{v}"
    );

    // health: the exit code follows the level.
    let f = lullctl(&infra, &["health"]).await;
    assert!(f.stdout.starts_with("fleet is "), "{}", f.stdout);
    let j = lullctl(&infra, &["--json", "health"]).await;
    let v: Value = serde_json::from_str(&j.stdout).expect("health json");
    let want = if v["status"] == "error" { 1 } else { 0 };
    assert_eq!(j.status.code(), Some(want), "{v}");
    assert_eq!(f.status.code(), Some(want), "{}", f.stdout);

    // leases --denied: a denial with its code and reason from the audit.
    let denied: HeavyLeaseResponse = call(
        &client,
        ep::LEASE_REQUEST,
        &json!({"addon_id": "e2e-denied", "job_type": "j", "host_id": "ghost", "cost_units": 1}),
    )
    .await
    .expect("lease reply");
    assert!(!denied.approved);
    let f = lullctl_until(
        &infra,
        &[
            "leases",
            "--denied",
            "--addon",
            "e2e-denied",
            "--since",
            "10m",
        ],
        |f| f.stdout.contains("unknown_host"),
    )
    .await;
    assert!(
        f.stdout.contains("ghost") && f.stdout.contains("1 denials since"),
        "{}",
        f.stdout
    );
    let f = lullctl(
        &infra,
        &["leases", "--denied", "--addon", "e2e-denied", "-o", "json"],
    )
    .await;
    let v: Value = serde_json::from_str(&f.stdout).expect("denied json");
    assert_eq!(v["decisions"][0]["reason_code"], "unknown_host", "{v}");
    assert!(
        v["decisions"][0]["at"]
            .as_str()
            .is_some_and(|t| t.contains('T')),
        "{v}"
    );
    assert_eq!(v["counts"]["unknown_host"], 1, "{v}");
    let f = lullctl(&infra, &["leases", "--denied", "--addon", "nobody"]).await;
    assert!(f.stdout.starts_with("no denials since"), "{}", f.stdout);

    // hosts forget: refused while the host reports.
    let f = lullctl(&infra, &["hosts", "forget", HOST]).await;
    assert_eq!(f.status.code(), Some(1), "{}", f.stdout);
    assert!(f.stdout.contains("still reports"), "{}", f.stdout);
    // ... and while it holds a lease, once silent.
    let lease: HeavyLeaseResponse = call(
        &client,
        ep::LEASE_REQUEST,
        &json!({"addon_id": "e2e", "job_type": "j", "host_id": HOST, "cost_units": 1}),
    )
    .await
    .expect("lease reply");
    assert!(lease.approved, "{lease:?}");
    on.store(false, Ordering::Relaxed);
    let f = lullctl_until(&infra, &["hosts", "forget", HOST], |f| {
        f.stdout.contains("active lease")
    })
    .await;
    assert_eq!(f.status.code(), Some(1), "{}", f.stdout);
    let _: Value = call(
        &client,
        ep::LEASE_RELEASE,
        &json!({"lease_id": lease.lease_id, "token": lease.token, "outcome": "done"}),
    )
    .await
    .expect("released");
    let f = lullctl(&infra, &["hosts", "forget", HOST]).await;
    assert_eq!(f.status.code(), Some(0), "{}{}", f.stdout, f.stderr);
    assert_eq!(f.stdout.trim(), format!("forgot {HOST}"));
    let f = lullctl(&infra, &["-o", "json", "hosts"]).await;
    let v: Value = serde_json::from_str(&f.stdout).expect("hosts json");
    assert!(v.as_array().is_some_and(|h| h.is_empty()), "{v}");
    let pg = infra.pg.client().await.expect("pg");
    let left: i64 = pg
        .query_one("SELECT count(*) FROM hosts WHERE host_id = $1", &[&HOST])
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 0, "the hosts row is deleted");
    let samples: i64 = pg
        .query_one(
            "SELECT count(*) FROM quiet_samples WHERE host_id = $1",
            &[&HOST],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(samples, 0, "its history is deleted");
    let f = lullctl(&infra, &["hosts", "forget", HOST]).await;
    assert_eq!(f.status.code(), Some(1), "{}", f.stdout);
    assert!(f.stderr.contains("not known"), "{}", f.stderr);
    // A forgotten host that reports again is simply new.
    on.store(true, Ordering::Relaxed);
    wait_state(&client, HOST, QuietState::Quiet).await;

    // completion scripts, and no server-only flags in the help.
    for shell in ["bash", "zsh", "fish"] {
        let f = lullctl(&infra, &["completion", shell]).await;
        assert_eq!(f.status.code(), Some(0), "{shell}: {}", f.stderr);
        assert!(
            f.stdout.contains("lullctl") && f.stdout.contains("forecast"),
            "{shell}"
        );
    }
    let f = lullctl(&infra, &["--help"]).await;
    assert!(
        !f.stdout.contains("--metrics-addr") && !f.stdout.contains("--log"),
        "{}",
        f.stdout
    );
    assert!(f.stdout.contains("-o, --output"), "{}", f.stdout);

    publisher.abort();
    drop(coord);
}
