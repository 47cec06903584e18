//! End-to-end: hostile input against real NATS/JetStream, Postgres and the
//! coordinator (issue #16, items 1–3). A snapshot with `seq = u64::MAX`
//! followed by a newer one leaves the fleet working; a forged far-future
//! snapshot is rejected and cannot freeze a host, and an agent restart
//! starts a new sequence; far-future fatigue events, builds and worker
//! runs are rejected as invalid and change no aggregate; a far-past report
//! is rejected while the same data imports through `regions.import`.

mod support;

use std::time::Duration;

use lull_common::runtime::now_unix;
use lull_engine::region::{campaign_stats, recompute, Baselines, RegionConfig};
use lull_proto::msg::hosts::QuietState;
use lull_proto::msg::region::{example_build, example_fatigue_event, RegionSelectReply};
use lull_proto::msg::stats::{example_snapshot, SystemStatsSnapshot};
use lull_proto::msg::worker::{example_report, WorkerExecutionsReply};
use lull_proto::subjects::endpoints as ep;
use lull_tests::Infra;
use serde_json::{json, Value};
use support::*;

const DAY: f64 = 86_400.0;

const FAST: &[(&str, &str)] = &[
    ("LULL_INGEST__SWEEP_SEC", "0.2"),
    ("LULL_INGEST__VIEWS_FLUSH_SEC", "0.1"),
    ("LULL_QUIET__CPU_WINDOW_SEC", "1.5"),
];

/// A snapshot of `host` with a fixed boot time and the given memory use.
fn snap(host: &str, seq: u64, at: f64, boot: f64, mem: f64) -> SystemStatsSnapshot {
    let mut s = example_snapshot(host, seq, at);
    s.interval_sec = Some(0.5);
    s.host.boot_time = boot;
    s.host.mem_used_pct = mem;
    s
}

/// Publishes `n` snapshots 100 ms apart, `seq` counting up from `first`.
async fn feed(client: &async_nats::Client, host: &str, first: u64, n: u64, boot: f64, mem: f64) {
    for k in 0..n {
        publish_snapshot(client, &snap(host, first + k, now_unix(), boot, mem)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Keeps publishing in the background until the handle is aborted.
fn feed_forever(
    client: &async_nats::Client,
    host: &str,
    first: u64,
    boot: f64,
    mem: f64,
) -> tokio::task::JoinHandle<()> {
    let client = client.clone();
    let host = host.to_string();
    tokio::spawn(async move {
        let mut seq = first;
        loop {
            publish_snapshot(&client, &snap(&host, seq, now_unix(), boot, mem)).await;
            seq += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seq_u64_max_then_a_newer_snapshot_keeps_the_fleet_working() {
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(&infra, FAST).await;
    let client = infra.nats.connect().await.unwrap();
    let boot = now_unix() - 1000.0;

    publish_snapshot(&client, &snap("max-1", u64::MAX, now_unix(), boot, 30.0)).await;
    wait_metric(
        &coord,
        "lull_stats_messages_total",
        &[("result", "accepted")],
        1.0,
    )
    .await;
    // A newer snapshot (the agent's counter wrapped or restarted), then the
    // host under memory pressure: its state follows.
    let feeder = feed_forever(&client, "max-1", 1, boot, 98.0);
    wait_state(&client, "max-1", QuietState::Panic).await;
    feeder.abort();
    assert!(ping(&client).await, "{}", coord.svc.logs());
    assert!(
        !coord.svc.logs().contains("panicked"),
        "{}",
        coord.svc.logs()
    );
    // Another host is still served.
    feed(&client, "max-2", 1, 5, boot, 98.0).await;
    wait_state(&client, "max-2", QuietState::Panic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_snapshot_does_not_freeze_a_host_and_a_restart_is_a_new_sequence() {
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(&infra, FAST).await;
    let client = infra.nats.connect().await.unwrap();
    let boot = now_unix() - 1000.0;

    feed(&client, "forged-1", 1, 10, boot, 30.0).await;
    // Forged: a huge seq, collected far in the future, same boot time.
    publish_snapshot(
        &client,
        &snap("forged-1", u64::MAX - 1, now_unix() + 1e6, boot, 30.0),
    )
    .await;
    // The genuine agent goes on, now under memory pressure: applied.
    feed(&client, "forged-1", 11, 10, boot, 98.0).await;
    wait_state(&client, "forged-1", QuietState::Panic).await;
    wait_metric(
        &coord,
        "lull_stats_messages_total",
        &[("result", "invalid")],
        1.0,
    )
    .await;

    // Within the clock skew a huge seq is taken; an agent that restarts
    // (a new boot, seq from 1, its clock behind that one) starts a new
    // sequence instead of being dropped as out of order.
    publish_snapshot(
        &client,
        &snap("forged-1", u64::MAX - 1, now_unix() + 120.0, boot, 30.0),
    )
    .await;
    let before = metric_now(
        &coord,
        "lull_stats_messages_total",
        &[("result", "out_of_order")],
    )
    .await;
    feed(&client, "forged-1", 1, 3, boot + 60.0, 30.0).await;
    let feeder = feed_forever(&client, "forged-1", 4, boot + 60.0, 98.0);
    wait_state(&client, "forged-1", QuietState::Panic).await;
    feeder.abort();
    let after = metric_now(
        &coord,
        "lull_stats_messages_total",
        &[("result", "out_of_order")],
    )
    .await;
    assert_eq!(before, after, "a restart is not out of order");

    // A late snapshot is dropped under its own result, not as accepted.
    feed(&client, "forged-1", 100, 3, boot + 60.0, 98.0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let accepted = metric_now(
        &coord,
        "lull_stats_messages_total",
        &[("result", "accepted")],
    )
    .await;
    publish_snapshot(
        &client,
        &snap("forged-1", 50, now_unix() - 10.0, boot + 60.0, 30.0),
    )
    .await;
    wait_metric(
        &coord,
        "lull_stats_messages_total",
        &[("result", "out_of_order")],
        after + 1.0,
    )
    .await;
    assert_eq!(
        metric_now(
            &coord,
            "lull_stats_messages_total",
            &[("result", "accepted")],
        )
        .await,
        accepted
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn far_future_reports_are_invalid_and_change_no_aggregate() {
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(&infra, &[]).await;
    let client = infra.nats.connect().await.unwrap();
    let now = now_unix();

    report_build(
        &client,
        &example_build("fut-r", "fut-ok", now - 600.0, true),
    )
    .await;
    report_run(
        &client,
        &example_report("fut-run-ok", "fut-w", now - 600.0, 1000.0),
    )
    .await;
    wait_reports(&coord, "build", "accepted", 1.0).await;
    wait_reports(&coord, "worker", "accepted", 1.0).await;

    report_fatigue(&client, &example_fatigue_event("fut-r", "fut-ev", 1e11)).await;
    report_build(&client, &example_build("fut-r", "fut-late", 1e11, true)).await;
    let mut inner = example_build("fut-r", "fut-inner", now - 300.0, true);
    inner.fatigues = vec![lull_proto::msg::region::example_build_fatigue(
        1e11,
        "Queue timeout",
        "queue-timeout",
    )];
    report_build(&client, &inner).await;
    report_run(&client, &example_report("fut-run", "fut-w", 1e11, 1000.0)).await;
    for (kind, n) in [("fatigue", 1.0), ("build", 2.0), ("worker", 1.0)] {
        wait_reports(&coord, kind, "invalid", n).await;
    }
    let logs = coord.svc.logs();
    assert!(
        logs.contains("fatigue_time") && logs.contains("ahead of the receiver's clock"),
        "{logs}"
    );

    // Nothing changed: the region is selectable, the genuine build heads
    // recent_builds, the worker has only its genuine run.
    let sel: RegionSelectReply = call(
        &client,
        ep::REGIONS_SELECT,
        &json!({"candidates": ["fut-r"]}),
    )
    .await
    .unwrap();
    assert_eq!(sel.ranked.len(), 1, "{sel:?}");
    assert_eq!(sel.ranked[0].region, "fut-r");
    let s = regions_stats(&client).await;
    let r = &s["regions"]["fut-r"];
    assert_eq!(r["total_builds"], 1, "{s}");
    assert_eq!(r["recent_builds"][0]["build_id"], "fut-ok", "{s}");
    let ex: WorkerExecutionsReply = call(
        &client,
        ep::WORKERS_EXECUTIONS,
        &json!({"worker_name": "fut-w"}),
    )
    .await
    .unwrap();
    let ids: Vec<&str> = ex
        .executions
        .iter()
        .map(|e| e.report.execution_id.as_str())
        .collect();
    assert_eq!(ids, ["fut-run-ok"]);
    assert_eq!(reports_count(&coord, "build", "accepted").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_far_past_report_is_invalid_but_imports() {
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(&infra, &[]).await;
    let client = infra.nats.connect().await.unwrap();
    let old = now_unix() - 500.0 * DAY;

    let b = example_build("past-r", "past-1", old, true);
    report_build(&client, &b).await;
    wait_reports(&coord, "build", "invalid", 1.0).await;
    assert!(
        coord.svc.logs().contains("behind the receiver's clock"),
        "{}",
        coord.svc.logs()
    );
    let s = regions_stats(&client).await;
    assert!(s["regions"].get("past-r").is_none(), "{s}");

    // The same build imports (old campaign files carry old data).
    let doc = campaign_stats(&recompute(
        &Baselines::default(),
        std::slice::from_ref(&b),
        &[],
        &RegionConfig::default(),
    ));
    let reply: Value = call(&client, ep::REGIONS_IMPORT, &doc).await.unwrap();
    assert_eq!(reply["regions_adopted"], json!(["past-r"]), "{reply}");
    let s = regions_stats(&client).await;
    assert_eq!(s["regions"]["past-r"]["total_builds"], 1, "{s}");
    assert_eq!(
        s["regions"]["past-r"]["recent_builds"][0]["build_id"],
        "past-1"
    );
}
