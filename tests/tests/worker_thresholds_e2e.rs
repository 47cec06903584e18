//! End-to-end (issue #17, item 4): seed 003's stream-health thresholds on a
//! worker's custom metrics, through real NATS/JetStream, Postgres and the
//! coordinator. Runs below, at and above each threshold
//! (`stale_streams > 10`, `orphaned_streams > 5`, `orphan_rate > 0.1`, plus
//! a configured `>=` rule on a nested metric) are published as execution
//! reports; the breaches show in `workers.executions` anomalies, in
//! `data_quality.summary` and in the metrics, clear with a run back within
//! the thresholds, and the breach counters survive a restart.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream;
use lull_common::runtime::now_unix;
use lull_proto::msg::worker::{
    example_report, AnomalyKind, DataQualitySummaryReply, ScoredExecution, Severity,
    WorkerExecutionReport, WorkerExecutionsReply,
};
use lull_proto::subjects::endpoints as ep;
use lull_proto::Subjects;
use lull_tests::{scrape, wait_until, Infra};
use serde_json::{json, Value};
use support::*;

const W: &str = "sse_guardian";

/// The seed's three rules (a set list replaces the defaults, so they are
/// repeated) and a critical `>=` rule on a nested metric.
fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("coordinator.toml");
    std::fs::write(
        &path,
        r#"
[[workers.anomaly.custom_thresholds]]
metric = "stale_streams"
threshold = 10

[[workers.anomaly.custom_thresholds]]
metric = "orphaned_streams"
op = ">"
threshold = 5
severity = "warning"

[[workers.anomaly.custom_thresholds]]
metric = "orphan_rate"
threshold = 0.1

[[workers.anomaly.custom_thresholds]]
name = "gen_orphans"
metric = "orphaned_by_type.generation"
op = ">="
threshold = 3
severity = "critical"
workers = ["sse_guardian"]
"#,
    )
    .unwrap();
    path
}

fn guardian(id: &str, started_at: f64, metrics: Value) -> WorkerExecutionReport {
    let mut r = example_report(id, W, started_at, 40.0);
    r.custom_metrics = metrics.as_object().unwrap().clone();
    r
}

async fn publish(js: &jetstream::Context, r: &WorkerExecutionReport) {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", r.execution_id.as_str());
    js.publish_with_headers(
        Subjects::default().report_worker(&r.worker_name),
        headers,
        serde_json::to_vec(r).unwrap().into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stream ack");
}

async fn executions(client: &async_nats::Client) -> Vec<ScoredExecution> {
    call::<_, WorkerExecutionsReply>(client, ep::WORKERS_EXECUTIONS, &json!({"worker_name": W}))
        .await
        .map(|r| r.executions)
        .unwrap_or_default()
}

async fn wait_runs(client: &async_nats::Client, n: usize, coord: &Coordinator) {
    let r = wait_until(Duration::from_secs(30), || async {
        executions(client).await.len() >= n
    })
    .await;
    assert!(r.is_ok(), "{n} runs never stored:\n{}", coord.svc.logs());
}

/// The (rule, severity, value) of the custom-threshold anomalies of a run.
fn breaches(e: &ScoredExecution) -> Vec<(String, Severity, f64)> {
    e.anomalies
        .iter()
        .filter(|a| a.kind == AnomalyKind::CustomThreshold)
        .map(|a| {
            (
                a.rule.clone().unwrap(),
                a.severity.unwrap(),
                a.evidence["value"],
            )
        })
        .collect()
}

async fn quality(client: &async_nats::Client) -> DataQualitySummaryReply {
    call(client, ep::DATA_QUALITY_SUMMARY, &json!({}))
        .await
        .expect("data_quality.summary")
}

async fn gauge(coord: &Coordinator, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let text = scrape(&coord.metrics_url).await.unwrap_or_default();
    metric(&text, name, labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_health_thresholds_below_at_and_above() {
    let infra = Infra::start().await.expect("infra");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let config = config.to_str().unwrap().to_string();
    let env = [("LULL_CONFIG", config.as_str())];
    let mut coord = start_coordinator(&infra, &env).await;
    let client = infra.nats.connect().await.unwrap();
    let js = jetstream::new(client.clone());
    let t = now_unix() - 600.0;

    let below = guardian(
        "g-below",
        t,
        json!({"stale_streams": 9, "orphaned_streams": 4, "orphan_rate": 0.09,
               "orphaned_by_type": {"generation": 2}, "active_streams": 40}),
    );
    let at = guardian(
        "g-at",
        t + 10.0,
        json!({"stale_streams": 10, "orphaned_streams": 5, "orphan_rate": 0.1,
               "orphaned_by_type": {"generation": 3}, "active_streams": 50}),
    );
    let above = guardian(
        "g-above",
        t + 20.0,
        json!({"stale_streams": 11, "orphaned_streams": 6, "orphan_rate": 0.11,
               "orphaned_by_type": {"generation": 4}, "active_streams": 55}),
    );
    for r in [&below, &at, &above] {
        publish(&js, r).await;
    }
    wait_runs(&client, 3, &coord).await;

    // ---- The anomalies of each run.
    let runs = executions(&client).await;
    let of = |id: &str| runs.iter().find(|e| e.report.execution_id == id).unwrap();
    assert_eq!(breaches(of("g-below")), vec![]);
    // At the thresholds: the seed's rules are strict (">"); the ">=" rule fires.
    assert_eq!(
        breaches(of("g-at")),
        vec![("gen_orphans".into(), Severity::Critical, 3.0)]
    );
    assert_eq!(
        breaches(of("g-above")),
        vec![
            ("stale_streams".into(), Severity::Warning, 11.0),
            ("orphaned_streams".into(), Severity::Warning, 6.0),
            ("orphan_rate".into(), Severity::Warning, 0.11),
            ("gen_orphans".into(), Severity::Critical, 4.0),
        ]
    );
    let a = of("g-above")
        .anomalies
        .iter()
        .find(|a| a.rule.as_deref() == Some("stale_streams"))
        .unwrap();
    assert_eq!(a.metric, "stale_streams");
    assert_eq!(a.evidence["threshold"], 10.0);
    assert!(
        a.message.contains("over the warning threshold of 10"),
        "{}",
        a.message
    );

    // ---- data_quality.summary.
    let q = quality(&client).await;
    assert_eq!(q.threshold_breaches, 5);
    assert_eq!(q.threshold_breaches_24h, 5);
    assert_eq!(q.workers_breaching, 1);
    let w = q.workers.iter().find(|w| w.worker_name == W).unwrap();
    assert_eq!(w.threshold_breaches, 5);
    let active: Vec<&str> = w
        .active_breaches
        .iter()
        .map(|a| a.rule.as_deref().unwrap())
        .collect();
    assert_eq!(
        active,
        [
            "stale_streams",
            "orphaned_streams",
            "orphan_rate",
            "gen_orphans"
        ]
    );

    // ---- Metrics.
    let url = coord.metrics_url.clone();
    let settled = wait_until(Duration::from_secs(10), || {
        let url = url.clone();
        async move {
            let t = scrape(&url).await.unwrap_or_default();
            metric(
                &t,
                "lull_worker_anomalies_total",
                &[("worker", W), ("kind", "CUSTOM_THRESHOLD")],
            ) == Some(5.0)
        }
    })
    .await;
    assert!(settled.is_ok(), "{}", coord.svc.logs());
    for (rule, n) in [
        ("stale_streams", 1.0),
        ("orphaned_streams", 1.0),
        ("orphan_rate", 1.0),
        ("gen_orphans", 2.0),
    ] {
        assert_eq!(
            gauge(
                &coord,
                "lull_worker_threshold_breaches_total",
                &[("worker", W), ("rule", rule)]
            )
            .await,
            Some(n),
            "{rule}"
        );
    }
    for (rule, severity) in [
        ("stale_streams", "warning"),
        ("orphan_rate", "warning"),
        ("gen_orphans", "critical"),
    ] {
        assert_eq!(
            gauge(
                &coord,
                "lull_worker_threshold_breached",
                &[("worker", W), ("rule", rule), ("severity", severity)]
            )
            .await,
            Some(1.0),
            "{rule}"
        );
    }
    assert_eq!(
        gauge(
            &coord,
            "lull_worker_custom_metric",
            &[("worker", W), ("metric", "stale_streams")]
        )
        .await,
        Some(11.0)
    );
    assert_eq!(
        gauge(
            &coord,
            "lull_worker_custom_metric",
            &[("worker", W), ("metric", "orphaned_by_type.generation")]
        )
        .await,
        Some(4.0)
    );
    // Only the rules' metrics are exported, never the reports' other keys.
    assert_eq!(
        gauge(
            &coord,
            "lull_worker_custom_metric",
            &[("worker", W), ("metric", "active_streams")]
        )
        .await,
        None
    );

    // ---- A run back below every threshold clears the standing breaches.
    let clear = guardian(
        "g-clear",
        t + 30.0,
        json!({"stale_streams": 0, "orphaned_streams": 0, "orphan_rate": 0.0,
               "orphaned_by_type": {"generation": 0}}),
    );
    publish(&js, &clear).await;
    wait_runs(&client, 4, &coord).await;
    let q = quality(&client).await;
    assert_eq!(q.workers_breaching, 0);
    assert_eq!(q.threshold_breaches, 5);
    assert!(q.workers[0].active_breaches.is_empty());
    let cleared = wait_until(Duration::from_secs(10), || async {
        gauge(
            &coord,
            "lull_worker_threshold_breached",
            &[("worker", W), ("rule", "stale_streams")],
        )
        .await
            == Some(0.0)
    })
    .await;
    assert!(cleared.is_ok(), "{}", coord.svc.logs());
    assert_eq!(
        gauge(
            &coord,
            "lull_worker_threshold_breached",
            &[("worker", W), ("rule", "gen_orphans")]
        )
        .await,
        Some(0.0)
    );

    // ---- The counters come back from the database after a restart.
    assert!(coord
        .svc
        .terminate(Duration::from_secs(15))
        .await
        .unwrap()
        .success());
    let coord = start_coordinator(&infra, &env).await;
    assert_eq!(
        gauge(
            &coord,
            "lull_worker_threshold_breaches_total",
            &[("worker", W), ("rule", "gen_orphans")]
        )
        .await,
        Some(2.0),
        "{}",
        coord.svc.logs()
    );
    assert_eq!(quality(&client).await.threshold_breaches, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_rules_apply_without_configuration() {
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(&infra, &[]).await;
    let client = infra.nats.connect().await.unwrap();
    let js = jetstream::new(client.clone());
    let t = now_unix() - 600.0;
    publish(
        &js,
        &guardian("d-1", t, json!({"orphaned_streams": 6, "orphan_rate": 0.1})),
    )
    .await;
    wait_runs(&client, 1, &coord).await;
    let runs = executions(&client).await;
    assert_eq!(
        breaches(&runs[0]),
        vec![("orphaned_streams".into(), Severity::Warning, 6.0)]
    );
    assert_eq!(quality(&client).await.workers_breaching, 1);
}
