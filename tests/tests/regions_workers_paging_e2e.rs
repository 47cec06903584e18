//! End-to-end: the region and worker endpoints page, and the regions and
//! workers kept in memory are bounded (issue #16, "bounded everything").
//!
//! One coordinator with tiny pages (`lists.default_limit` 2,
//! `lists.max_limit` 3) and tiny caps (`region_service.max_regions` and
//! `ingest.max_workers` 5), real NATS/JetStream and Postgres:
//! `regions.stats`, `workers.executions`, `data_quality.summary` and
//! `learning.system` are read page by page to the end, and the union is
//! the whole truth with no duplicates; a cursor the endpoint did not make
//! is `invalid_request`; a report that would add a sixth region or worker
//! is not kept, is counted, and is terminated; lullctl reads every page.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use lull_common::runtime::now_unix;
use lull_proto::error::ErrorCode;
use lull_proto::msg::page::PageRequest;
use lull_proto::msg::region::{example_build, CampaignStats};
use lull_proto::msg::worker::{
    example_report, DataQualitySummaryReply, SystemLearningReply, WorkerExecutionsReply,
    WorkerExecutionsRequest,
};
use lull_proto::subjects::endpoints as ep;
use lull_tests::{Infra, Service};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use support::*;

/// The caps on regions and workers.
const CAP: usize = 5;
/// Runs of the busiest worker (`w-0`).
const RUNS: usize = 7;

fn region(i: usize) -> String {
    format!("r-{i}")
}

fn worker(i: usize) -> String {
    format!("w-{i}")
}

/// Reads every page of `endpoint`: `ask` makes the request for a cursor,
/// `next` takes a page's `next_cursor`. Fails on a page that repeats.
async fn pages<B: Serialize, P: DeserializeOwned>(
    client: &async_nats::Client,
    endpoint: &str,
    ask: impl Fn(Option<String>) -> B,
    next: impl Fn(&P) -> Option<String>,
) -> Vec<P> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let p: P = call(client, endpoint, &ask(cursor.clone()))
            .await
            .unwrap_or_else(|e| panic!("{endpoint} page after {cursor:?}: {e}"));
        let c = next(&p);
        out.push(p);
        assert!(out.len() < 100, "{endpoint} never ends");
        match c {
            Some(c) => {
                assert_ne!(Some(&c), cursor.as_ref(), "{endpoint}: the cursor repeats");
                cursor = Some(c);
            }
            None => return out,
        }
    }
}

/// The names, checking that none repeats.
fn unique(names: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for n in names {
        assert!(seen.insert(n.clone()), "{n} is on two pages");
    }
    seen
}

async fn invalid(client: &async_nats::Client, endpoint: &str, body: Value, text: &str) {
    match call::<_, Value>(client, endpoint, &body).await {
        Err(lull_client::request::RequestError::Service { code, message }) => {
            assert_eq!(
                code,
                ErrorCode::InvalidRequest,
                "{endpoint} {body}: {message}"
            );
            assert!(message.contains(text), "{endpoint} {body}: {message}");
        }
        other => panic!("{endpoint} {body}: expected invalid_request, got {other:?}"),
    }
}

async fn lullctl_json(infra: &Infra, args: &[&str]) -> Value {
    let mut all = vec!["-o", "json"];
    all.extend_from_slice(args);
    let f = Service::builder("lullctl")
        .envs(infra.lull_env())
        .args(all.iter().copied())
        .run(Duration::from_secs(30))
        .await
        .expect("lullctl finished");
    assert!(
        f.status.success(),
        "lullctl {args:?}:\n{}{}",
        f.stdout,
        f.stderr
    );
    serde_json::from_str(&f.stdout)
        .unwrap_or_else(|e| panic!("lullctl {args:?}: {e}\n{}", f.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_and_workers_page_and_stay_bounded() {
    let infra = Infra::start().await.expect("infra");
    let cap = CAP.to_string();
    let coord = start_coordinator(
        &infra,
        &[
            ("LULL_LISTS__DEFAULT_LIMIT", "2"),
            ("LULL_LISTS__MAX_LIMIT", "3"),
            ("LULL_REGION_SERVICE__MAX_REGIONS", cap.as_str()),
            ("LULL_INGEST__MAX_WORKERS", cap.as_str()),
        ],
    )
    .await;
    let client = infra.nats.connect().await.expect("connect");
    let t0 = now_unix() - 3600.0;

    // Up to the caps: five regions (r-0 twice) and five workers (w-0 seven times).
    for i in 0..CAP {
        let b = example_build(&region(i), &format!("b-{i}"), t0 + i as f64, i % 2 == 0);
        report_build(&client, &b).await;
    }
    report_build(
        &client,
        &example_build(&region(0), "b-extra", t0 + 10.0, true),
    )
    .await;
    for i in 0..CAP {
        let runs = if i == 0 { RUNS } else { 1 };
        for k in 0..runs {
            let r = example_report(
                &format!("x-{i}-{k}"),
                &worker(i),
                t0 + (k * 60) as f64,
                500.0,
            );
            report_run(&client, &r).await;
        }
    }
    wait_reports(&coord, "build", "accepted", (CAP + 1) as f64).await;
    wait_reports(&coord, "worker", "accepted", (RUNS + CAP - 1) as f64).await;

    // One past each cap: not kept, counted, terminated.
    report_build(
        &client,
        &example_build(&region(CAP), "b-over", t0 + 20.0, true),
    )
    .await;
    let over = example_report("x-over", &worker(CAP), t0 + 30.0, 500.0);
    report_run(&client, &over).await;
    wait_reports(&coord, "build", "region_limit", 1.0).await;
    wait_reports(&coord, "worker", "worker_limit", 1.0).await;
    wait_metric(&coord, "lull_regions_rejected_total", &[], 1.0).await;
    wait_metric(&coord, "lull_workers_rejected_total", &[], 1.0).await;
    // A known region and worker still get in at the cap.
    report_build(
        &client,
        &example_build(&region(1), "b-known", t0 + 40.0, true),
    )
    .await;
    report_run(
        &client,
        &example_report("x-known", &worker(1), t0 + 600.0, 500.0),
    )
    .await;
    wait_reports(&coord, "build", "accepted", (CAP + 2) as f64).await;
    wait_reports(&coord, "worker", "accepted", (RUNS + CAP) as f64).await;
    let logs = coord.svc.logs();
    assert_eq!(logs.matches("region limit reached").count(), 1, "{logs}");
    assert_eq!(logs.matches("worker limit reached").count(), 1, "{logs}");

    // regions.stats: without limit, the default page of two.
    let first: CampaignStats = call(&client, ep::REGIONS_STATS, &json!({})).await.unwrap();
    assert_eq!(first.regions.len(), 2);
    assert_eq!(first.next_cursor.as_deref(), Some("r-1"));
    // To the end with a limit over max_limit (lowered to 3).
    let all: Vec<CampaignStats> = pages(
        &client,
        ep::REGIONS_STATS,
        |c| json!({"limit": 100, "cursor": c, "recent_builds_limit": 0}),
        |p: &CampaignStats| p.next_cursor.clone(),
    )
    .await;
    assert_eq!(all.len(), 2);
    let names = unique(all.iter().flat_map(|p| p.regions.keys().cloned()));
    let truth: BTreeSet<String> = (0..CAP).map(region).collect();
    assert_eq!(names, truth, "r-{CAP} is past the cap");
    let total: u64 = all
        .iter()
        .flat_map(|p| p.regions.values())
        .map(|r| r.total_builds)
        .sum();
    for p in &all {
        assert!(p.regions.len() <= 3);
        assert_eq!(
            p.total_builds_all_regions, total,
            "totals stay whole on every page"
        );
        assert_eq!(p.total_builds_all_regions, (CAP + 2) as u64);
        assert_eq!(p.campaign_start, first.campaign_start);
    }
    // The whole document, as lullctl reads it, is the union.
    let doc = lullctl_json(&infra, &["regions"]).await;
    let doc_names: BTreeSet<String> = doc["regions"]
        .as_object()
        .expect("regions")
        .keys()
        .cloned()
        .collect();
    assert_eq!(doc_names, truth);
    assert!(doc.get("next_cursor").is_none(), "{doc}");

    // workers.executions: pages of three, newest first, equal to one read.
    let whole: WorkerExecutionsReply = call(
        &client,
        ep::WORKERS_EXECUTIONS,
        &json!({"worker_name": worker(0), "limit": 500}),
    )
    .await
    .unwrap();
    assert_eq!(whole.executions.len(), RUNS);
    assert!(whole.next_cursor.is_none());
    let paged: Vec<WorkerExecutionsReply> = pages(
        &client,
        ep::WORKERS_EXECUTIONS,
        |cursor| WorkerExecutionsRequest {
            worker_name: worker(0),
            limit: Some(3),
            cursor,
        },
        |p: &WorkerExecutionsReply| p.next_cursor.clone(),
    )
    .await;
    assert_eq!(paged.len(), 3);
    let ids: Vec<String> = paged
        .iter()
        .flat_map(|p| p.executions.iter().map(|e| e.report.execution_id.clone()))
        .collect();
    unique(ids.clone());
    let truth_ids: Vec<String> = whole
        .executions
        .iter()
        .map(|e| e.report.execution_id.clone())
        .collect();
    assert_eq!(ids, truth_ids);
    let lullctl_runs = lullctl_json(&infra, &["workers", &worker(0), "--executions", "600"]).await;
    assert_eq!(
        lullctl_runs["executions"]["executions"]
            .as_array()
            .map(Vec::len),
        Some(RUNS),
        "{lullctl_runs}"
    );

    // data_quality.summary and learning.system: `{}` is a first page of two.
    let dq: DataQualitySummaryReply = call(&client, ep::DATA_QUALITY_SUMMARY, &json!({}))
        .await
        .unwrap();
    assert_eq!(dq.workers.len(), 2);
    assert_eq!(dq.next_cursor.as_deref(), Some("w-1"));
    let page = |cursor| PageRequest {
        limit: Some(3),
        cursor,
    };
    let dqs: Vec<DataQualitySummaryReply> = pages(
        &client,
        ep::DATA_QUALITY_SUMMARY,
        page,
        |p: &DataQualitySummaryReply| p.next_cursor.clone(),
    )
    .await;
    let workers_truth: BTreeSet<String> = (0..CAP).map(worker).collect();
    let dq_names = unique(
        dqs.iter()
            .flat_map(|p| p.workers.iter().map(|w| w.worker_name.clone())),
    );
    assert_eq!(dq_names, workers_truth, "w-{CAP} is past the cap");
    let runs: u64 = dqs
        .iter()
        .flat_map(|p| &p.workers)
        .map(|w| w.executions)
        .sum();
    assert_eq!(runs, (RUNS + CAP) as u64);
    for p in &dqs {
        assert!(p.workers.len() <= 3);
        assert_eq!(p.total_records_processed, dq.total_records_processed);
        assert_eq!(p.overall_score, dq.overall_score);
    }
    let sys: Vec<SystemLearningReply> = pages(
        &client,
        ep::LEARNING_SYSTEM,
        page,
        |p: &SystemLearningReply| p.next_cursor.clone(),
    )
    .await;
    let sys_names = unique(
        sys.iter()
            .flat_map(|p| p.schedules.iter().map(|s| s.worker_name.clone())),
    );
    assert_eq!(sys_names, workers_truth);
    for p in &sys {
        assert_eq!(p.workers, CAP as u64, "the worker count is fleet-wide");
        assert_eq!(p.total_executions_24h, sys[0].total_executions_24h);
    }
    let listed = lullctl_json(&infra, &["workers"]).await;
    assert_eq!(
        listed["quality"]["workers"].as_array().map(Vec::len),
        Some(CAP),
        "{listed}"
    );
    assert_eq!(
        listed["system"]["schedules"].as_array().map(Vec::len),
        Some(CAP),
        "{listed}"
    );

    // Cursors the endpoints did not make.
    invalid(
        &client,
        ep::REGIONS_STATS,
        json!({"cursor": "not a region"}),
        "cursor",
    )
    .await;
    invalid(
        &client,
        ep::WORKERS_EXECUTIONS,
        json!({"worker_name": worker(0), "cursor": "r-1"}),
        "not a cursor of workers.executions",
    )
    .await;
    invalid(
        &client,
        ep::LEARNING_SYSTEM,
        json!({"cursor": "w.0"}),
        "cursor",
    )
    .await;
    invalid(
        &client,
        ep::DATA_QUALITY_SUMMARY,
        json!({"limit": 0}),
        "limit",
    )
    .await;

    // An import that would add a region past the cap is refused.
    invalid(
        &client,
        ep::REGIONS_IMPORT,
        json!({"regions": {"r-new": {"total_builds": 0, "successes": 0, "failures": 0}}}),
        "max_regions",
    )
    .await;

    // The refused reports were terminated, not left to be redelivered.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(reports_count(&coord, "build", "region_limit").await, 1.0);
    assert_eq!(reports_count(&coord, "worker", "worker_limit").await, 1.0);
    let stats: CampaignStats = call(
        &client,
        ep::REGIONS_STATS,
        &json!({"regions": [region(CAP)]}),
    )
    .await
    .unwrap();
    assert!(stats.regions.is_empty());
    match call::<_, Value>(
        &client,
        ep::WORKERS_STATS,
        &json!({"worker_name": worker(CAP)}),
    )
    .await
    {
        Err(lull_client::request::RequestError::Service { code, .. }) => {
            assert_eq!(code, ErrorCode::NotFound)
        }
        other => panic!("w-{CAP} should be unknown: {other:?}"),
    }
}
