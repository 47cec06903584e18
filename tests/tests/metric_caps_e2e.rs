//! Region and worker names come from publishers, so their metric labels are
//! capped: with caps of 2, four regions and four workers leave two series
//! each plus `other`, and `lull_metric_label_overflow_total` counts the
//! rest. The APIs still know all four.

mod support;

use std::time::Duration;

use lull_common::runtime::now_unix;
use lull_proto::msg::region::BuildRecord;
use lull_proto::msg::worker::{
    DataVerification, ExecutionOutcome, ResourceMetrics, WorkerExecutionReport,
};
use lull_tests::{scrape, wait_until, Infra};
use serde_json::json;
use support::*;

fn build(region: &str, n: usize) -> BuildRecord {
    serde_json::from_value(json!({
        "timestamp": now_unix() - 60.0,
        "build_id": format!("cap-{region}-{n}"),
        "region": region,
        "build_type": "cap",
        "success": true,
        "status": "SUCCESS",
        "duration_seconds": 600,
        "queue_wait_seconds": 30,
        "cost_usd": 1.25,
    }))
    .expect("a valid build")
}

fn run(worker: &str, n: usize) -> WorkerExecutionReport {
    let started_at = now_unix() - 30.0;
    WorkerExecutionReport {
        execution_id: format!("cap-{worker}-{n}"),
        worker_name: worker.to_string(),
        host_id: Some("cap-host".into()),
        started_at,
        completed_at: started_at + 2.0,
        outcome: ExecutionOutcome::Success,
        duration_ms: 2000.0,
        error_message: None,
        data_verification: DataVerification::default(),
        resource_metrics: ResourceMetrics::default(),
        upstream_data_age_seconds: None,
        downstream_consumers_waiting: None,
        custom_metrics: serde_json::Map::new(),
    }
}

/// Distinct values of `label` among the series of `name`.
fn label_values(text: &str, name: &str, label: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| {
            let at = l.find(&format!("{label}=\""))? + label.len() + 2;
            let end = l[at..].find('"')? + at;
            Some(l[at..end].to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_and_worker_labels_are_capped_with_an_other_bucket() {
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(
        &infra,
        &[
            ("LULL_REGION_SERVICE__MAX_METRIC_REGIONS", "2"),
            ("LULL_INGEST__WORKERS_MAX_METRIC_LABELS", "2"),
        ],
    )
    .await;
    let client = infra.nats.connect().await.unwrap();
    for (i, name) in ["r-a", "r-b", "r-c", "r-d"].iter().enumerate() {
        report_build(&client, &build(name, i)).await;
    }
    for (i, name) in ["w-a", "w-b", "w-c", "w-d"].iter().enumerate() {
        report_run(&client, &run(name, i)).await;
    }
    let url = coord.metrics_url.clone();
    let settled = wait_until(Duration::from_secs(30), || {
        let url = url.clone();
        async move {
            let Ok(t) = scrape(&url).await else {
                return false;
            };
            metric(
                &t,
                "lull_region_build_duration_seconds_count",
                &[("region", "other")],
            ) == Some(2.0)
                && metric(
                    &t,
                    "lull_worker_executions_total",
                    &[("worker", "other"), ("outcome", "SUCCESS")],
                ) == Some(2.0)
        }
    })
    .await;
    let text = scrape(&coord.metrics_url).await.unwrap();
    assert!(
        settled.is_ok(),
        "no overflow bucket:\n{text}\n{}",
        coord.svc.logs()
    );

    let regions = label_values(&text, "lull_region_build_duration_seconds_count", "region");
    assert_eq!(regions, ["other", "r-a", "r-b"], "{text}");
    // Gauges of the regions beyond the cap are not exported at all.
    let ratio = label_values(&text, "lull_region_success_ratio", "region");
    assert_eq!(ratio, ["r-a", "r-b"], "{text}");
    let workers = label_values(&text, "lull_worker_executions_total", "worker");
    assert_eq!(workers, ["other", "w-a", "w-b"], "{text}");
    for label in ["region", "worker"] {
        let n = metric(
            &text,
            "lull_metric_label_overflow_total",
            &[("label", label)],
        );
        assert!(n.is_some_and(|n| n >= 2.0), "{label}: {n:?}\n{text}");
    }
    assert!(
        coord.svc.logs().contains("metric label cap reached"),
        "{}",
        coord.svc.logs()
    );
    // The APIs still know every region.
    let stats = regions_stats(&client).await;
    for r in ["r-a", "r-b", "r-c", "r-d"] {
        assert!(stats.to_string().contains(r), "{r} missing: {stats}");
    }
}
