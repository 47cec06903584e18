//! Sending input the way agents and SDKs do, and reading what the
//! coordinator made of it: stats snapshots on core NATS, reports through
//! JetStream (with `Nats-Msg-Id`), counters from `/metrics`. Shared by the
//! hostile-input suites.

use std::time::Duration;

use async_nats::jetstream;
use lull_proto::msg::region::{BuildRecord, FatigueEventReport};
use lull_proto::msg::stats::SystemStatsSnapshot;
use lull_proto::msg::worker::WorkerExecutionReport;
use lull_proto::subjects::endpoints as ep;
use lull_proto::Subjects;
use lull_tests::{scrape, wait_until};
use serde_json::{json, Value};

use super::{call, metric, Coordinator};

/// Publishes a snapshot on `lull.stats.<host_id>` and flushes.
pub async fn publish_snapshot(client: &async_nats::Client, s: &SystemStatsSnapshot) {
    let body = serde_json::to_vec(s).unwrap();
    publish_raw(client, Subjects::default().stats(&s.host_id), body).await;
}

/// Publishes raw bytes on a core NATS subject and flushes.
pub async fn publish_raw(client: &async_nats::Client, subject: String, body: Vec<u8>) {
    client.publish(subject, body.into()).await.unwrap();
    client.flush().await.unwrap();
}

/// Publishes a report to JetStream with `Nats-Msg-Id: id` and waits for
/// the stream's ack.
pub async fn publish_report(client: &async_nats::Client, subject: String, id: &str, body: Vec<u8>) {
    let js = jetstream::new(client.clone());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", id);
    js.publish_with_headers(subject, headers, body.into())
        .await
        .expect("publish")
        .await
        .expect("stream ack");
}

/// Publishes a build record on `lull.report.build.<region>`.
pub async fn report_build(client: &async_nats::Client, b: &BuildRecord) {
    let subject = Subjects::default().report_build(&b.region);
    publish_report(client, subject, &b.build_id, serde_json::to_vec(b).unwrap()).await;
}

/// Publishes a fatigue event on `lull.report.fatigue.<region>`.
pub async fn report_fatigue(client: &async_nats::Client, e: &FatigueEventReport) {
    let subject = Subjects::default().report_fatigue(&e.region);
    publish_report(client, subject, &e.event_id, serde_json::to_vec(e).unwrap()).await;
}

/// Publishes a worker run on `lull.report.worker.<worker_name>`.
pub async fn report_run(client: &async_nats::Client, r: &WorkerExecutionReport) {
    let subject = Subjects::default().report_worker(&r.worker_name);
    let body = serde_json::to_vec(r).unwrap();
    publish_report(client, subject, &r.execution_id, body).await;
}

/// The `regions.stats` document.
pub async fn regions_stats(client: &async_nats::Client) -> Value {
    call::<_, Value>(client, ep::REGIONS_STATS, &json!({}))
        .await
        .expect("regions.stats")
}

/// The current value of a counter or gauge (0 when absent).
pub async fn metric_now(coord: &Coordinator, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = scrape(&coord.metrics_url).await.unwrap();
    metric(&text, name, labels).unwrap_or(0.0)
}

/// Waits (30 s at most) until a metric reaches `want`, else fails with the
/// coordinator's logs.
pub async fn wait_metric(coord: &Coordinator, name: &str, labels: &[(&str, &str)], want: f64) {
    let r = wait_until(Duration::from_secs(30), || async {
        metric_now(coord, name, labels).await >= want
    })
    .await;
    assert!(
        r.is_ok(),
        "{name}{labels:?} never reached {want}: {}\n{}",
        metric_now(coord, name, labels).await,
        coord.svc.logs()
    );
}

/// `lull_reports_total{kind,result}`.
pub async fn reports_count(coord: &Coordinator, kind: &str, result: &str) -> f64 {
    metric_now(
        coord,
        "lull_reports_total",
        &[("kind", kind), ("result", result)],
    )
    .await
}

/// Waits until `lull_reports_total{kind,result}` reaches `want`.
pub async fn wait_reports(coord: &Coordinator, kind: &str, result: &str, want: f64) {
    wait_metric(
        coord,
        "lull_reports_total",
        &[("kind", kind), ("result", result)],
        want,
    )
    .await
}
