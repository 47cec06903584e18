//! End-to-end (issue #16, items 8 and 9) against real NATS/JetStream,
//! Postgres and the coordinator:
//! - the `LULL_REPORTS` stream gets the configured limits (`max_age`,
//!   `max_bytes`, discard `old`), also when it already existed without
//!   them, and a full stream drops its oldest reports instead of refusing
//!   publishers;
//! - a conflicting duplicate report (a stored `execution_id` or `build_id`
//!   with other content) is dropped, counted as `conflict` and logged with
//!   its id; the stored record is the first one; an identical duplicate is
//!   still counted `accepted`.

mod support;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use lull_common::runtime::now_unix;
use lull_proto::msg::region::{example_build, BuildRecord};
use lull_proto::msg::worker::{example_report, WorkerExecutionReport, WorkerExecutionsReply};
use lull_proto::subjects::endpoints as ep;
use lull_proto::Subjects;
use lull_tests::{scrape, wait_until, Infra};
use serde_json::json;
use support::*;

async fn stream_config(client: &async_nats::Client) -> stream::Config {
    let js = jetstream::new(client.clone());
    let mut s = js.get_stream("LULL_REPORTS").await.expect("LULL_REPORTS");
    s.info().await.expect("stream info").config.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_stream_gets_the_configured_limits() {
    let infra = Infra::start().await.expect("infra");
    let client = infra.nats.connect().await.unwrap();
    // The stream exists already, without limits (an agent created it, or a
    // coordinator from before the limits).
    let js = jetstream::new(client.clone());
    js.create_stream(stream::Config {
        name: "LULL_REPORTS".into(),
        subjects: vec!["lull.report.>".into()],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(3600),
        ..Default::default()
    })
    .await
    .unwrap();
    let before = stream_config(&client).await;
    assert_eq!(before.max_age, Duration::ZERO);
    assert_eq!(before.max_bytes, -1);

    let mut coord = start_coordinator(
        &infra,
        &[
            ("LULL_INGEST__REPORTS_STREAM_MAX_AGE_SEC", "3600"),
            ("LULL_INGEST__REPORTS_STREAM_MAX_BYTES", "65536"),
        ],
    )
    .await;
    let c = stream_config(&client).await;
    assert_eq!(c.max_age, Duration::from_secs(3600), "{}", coord.svc.logs());
    assert_eq!(c.max_bytes, 65_536);
    assert_eq!(c.discard, stream::DiscardPolicy::Old);
    assert_eq!(c.duplicate_window, Duration::from_secs(3600));
    assert!(coord.svc.logs().contains("reports stream limits changed"));

    // Full: the oldest reports go, publishers are never refused. Stop the
    // coordinator first, as in an outage.
    assert!(coord
        .svc
        .terminate(Duration::from_secs(15))
        .await
        .unwrap()
        .success());
    let now = now_unix();
    for i in 0..200 {
        let mut r = example_report(&format!("full-{i}"), "full_w", now - 600.0, 1000.0);
        r.custom_metrics
            .insert("padding".into(), json!("x".repeat(400)));
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", r.execution_id.as_str());
        js.publish_with_headers(
            Subjects::default().report_worker(&r.worker_name),
            headers,
            serde_json::to_vec(&r).unwrap().into(),
        )
        .await
        .expect("publish")
        .await
        .expect("a full stream still takes new reports");
    }
    let mut s = js.get_stream("LULL_REPORTS").await.unwrap();
    let state = s.info().await.unwrap().state.clone();
    assert!(state.bytes <= 65_536, "{state:?}");
    assert!(state.messages < 200, "{state:?}");
    assert!(state.first_sequence > 1, "the oldest went: {state:?}");

    // Restarted with the defaults: 7 days and 1 GiB.
    let coord = start_coordinator(&infra, &[]).await;
    let c = stream_config(&client).await;
    assert_eq!(
        c.max_age,
        Duration::from_secs(7 * 86_400),
        "{}",
        coord.svc.logs()
    );
    assert_eq!(c.max_bytes, 1 << 30);
    assert_eq!(c.discard, stream::DiscardPolicy::Old);
}

/// Publishes a report to JetStream with the given `Nats-Msg-Id` (a resend
/// within the duplicate window with the same id would be dropped by the
/// server before the coordinator saw it).
async fn report(client: &async_nats::Client, subject: String, msg_id: &str, body: Vec<u8>) {
    let js = jetstream::new(client.clone());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", msg_id);
    let ack = js
        .publish_with_headers(subject, headers, body.into())
        .await
        .expect("publish")
        .await
        .expect("stream ack");
    assert!(!ack.duplicate, "{msg_id} was dropped by the stream");
}

async fn run(client: &async_nats::Client, r: &WorkerExecutionReport, msg_id: &str) {
    let subject = Subjects::default().report_worker(&r.worker_name);
    report(client, subject, msg_id, serde_json::to_vec(r).unwrap()).await;
}

async fn build(client: &async_nats::Client, b: &BuildRecord, msg_id: &str) {
    let subject = Subjects::default().report_build(&b.region);
    report(client, subject, msg_id, serde_json::to_vec(b).unwrap()).await;
}

async fn reports(coord: &Coordinator, kind: &str, result: &str) -> f64 {
    let text = scrape(&coord.metrics_url).await.unwrap_or_default();
    metric(
        &text,
        "lull_reports_total",
        &[("kind", kind), ("result", result)],
    )
    .unwrap_or(0.0)
}

async fn wait_reports(coord: &Coordinator, kind: &str, result: &str, want: f64) {
    let r = wait_until(Duration::from_secs(30), || async {
        reports(coord, kind, result).await >= want
    })
    .await;
    assert!(
        r.is_ok(),
        "lull_reports_total{{kind={kind},result={result}}} never reached {want}: {}\n{}",
        reports(coord, kind, result).await,
        coord.svc.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_duplicates_are_counted_and_the_first_record_stays() {
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(&infra, &[]).await;
    let client = infra.nats.connect().await.unwrap();
    let pg = infra.pg.client().await.unwrap();
    let now = now_unix();

    // ---- Worker runs.
    let first = example_report("dup-run-1", "dup_w", now - 600.0, 1000.0);
    run(&client, &first, "a").await;
    wait_reports(&coord, "worker", "accepted", 1.0).await;
    let mut other = first.clone();
    other.duration_ms = 99_000.0;
    other.completed_at = other.started_at + 99.0;
    run(&client, &other, "b").await;
    wait_reports(&coord, "worker", "conflict", 1.0).await;
    // An identical resend (after the window, or under another message id)
    // is a plain duplicate.
    run(&client, &first, "c").await;
    wait_reports(&coord, "worker", "accepted", 2.0).await;
    // Two copies back to back (often in one batch): the second conflicts.
    let batch_first = example_report("dup-run-2", "dup_w", now - 500.0, 2000.0);
    let mut batch_other = batch_first.clone();
    batch_other.duration_ms = 3000.0;
    run(&client, &batch_first, "d").await;
    run(&client, &batch_other, "e").await;
    wait_reports(&coord, "worker", "accepted", 3.0).await;
    wait_reports(&coord, "worker", "conflict", 2.0).await;
    assert_eq!(reports(&coord, "worker", "accepted").await, 3.0);
    assert_eq!(reports(&coord, "worker", "conflict").await, 2.0);

    let stored: WorkerExecutionsReply = call(
        &client,
        ep::WORKERS_EXECUTIONS,
        &json!({"worker_name": "dup_w"}),
    )
    .await
    .unwrap();
    assert_eq!(stored.executions.len(), 2);
    for e in &stored.executions {
        let want = if e.report.execution_id == "dup-run-1" {
            1000.0
        } else {
            2000.0
        };
        assert_eq!(e.report.duration_ms, want, "{:?}", e.report);
    }
    let durations: Vec<f64> = pg
        .query(
            "SELECT duration_ms FROM worker_executions WHERE worker_name = 'dup_w' ORDER BY execution_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(durations, vec![1000.0, 2000.0]);

    // ---- Builds.
    let b = example_build("dup-region", "dup-build-1", now - 600.0, true);
    build(&client, &b, "f").await;
    wait_reports(&coord, "build", "accepted", 1.0).await;
    let mut forged = b.clone();
    forged.success = false;
    build(&client, &forged, "g").await;
    wait_reports(&coord, "build", "conflict", 1.0).await;
    build(&client, &b, "h").await;
    wait_reports(&coord, "build", "accepted", 2.0).await;
    assert_eq!(reports(&coord, "build", "conflict").await, 1.0);
    let success: bool = pg
        .query_one(
            "SELECT success FROM region_builds WHERE build_id = 'dup-build-1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(success, "the stored build is the first one");

    let logs = coord.svc.logs();
    for id in ["dup-run-1", "dup-run-2", "dup-build-1"] {
        assert!(
            logs.lines()
                .any(|l| l.contains("conflicting duplicate report") && l.contains(id)),
            "{id} not logged:\n{logs}"
        );
    }
}
