//! End-to-end, without NATS auth (issue #16 items 4 and 5): the
//! coordinator itself refuses what a subject and its payload disagree on.
//! A `lease.request` on `lull.v1.lease.request.<addon_id>` whose payload
//! names another addon is refused `forbidden`, counted, and takes no token
//! from that addon's bucket; a worker report on
//! `lull.report.worker.<host>.<worker>` whose `host_id` names another host
//! is rejected as `host_mismatch`, counted and not stored, while one without
//! `host_id` is stored under the subject's host. The legacy subjects keep
//! working (deprecation period).

mod support;

use std::time::Duration;

use async_nats::jetstream;
use lull_common::runtime::now_unix;
use lull_proto::msg::lease::{DenyReason, HeavyLeaseRequest, HeavyLeaseResponse};
use lull_proto::msg::worker::{example_report, WorkerExecutionsReply};
use lull_proto::subjects::endpoints as ep;
use lull_proto::{ErrorCode, Subjects};
use lull_tests::{scrape, wait_until, Infra};
use serde_json::json;
use support::*;

async fn metric_now(coord: &Coordinator, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = scrape(&coord.metrics_url).await.unwrap_or_default();
    metric(&text, name, labels).unwrap_or(0.0)
}

fn ask(addon: &str) -> HeavyLeaseRequest {
    HeavyLeaseRequest {
        addon_id: addon.into(),
        job_type: "reindex".into(),
        host_id: Some("nowhere".into()),
        cost_units: Some(1),
        cost_class: None,
        expected_duration_sec: None,
        priority: Default::default(),
        constraints: Default::default(),
        wait: false,
        wait_timeout_sec: None,
    }
}

async fn request_on(
    client: &async_nats::Client,
    subject: String,
    req: &HeavyLeaseRequest,
) -> Result<HeavyLeaseResponse, lull_client::request::RequestError> {
    lull_client::request::request(client, subject, req, Duration::from_secs(5)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_request_under_another_addons_id_is_refused_and_counted() {
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(
        &infra,
        &[
            ("LULL_LEASE__BURST", "2"),
            ("LULL_LEASE__RATE_PER_SEC", "0.01"),
            ("LULL_LEASE__GRACE_PERIOD_SEC", "0"),
        ],
    )
    .await;
    let client = infra.nats.connect().await.unwrap();
    let s = Subjects::default();

    for _ in 0..4 {
        let e = request_on(&client, s.lease_request_as("backup"), &ask("indexer"))
            .await
            .expect_err("refused");
        match e {
            lull_client::request::RequestError::Service { code, message } => {
                assert_eq!(code, ErrorCode::Forbidden);
                assert!(
                    message.contains("\"indexer\"") && message.contains("\"backup\""),
                    "{message}"
                );
            }
            other => panic!("expected forbidden, got {other}"),
        }
    }
    assert_eq!(
        metric_now(&coord, "lull_lease_identity_rejections_total", &[]).await,
        4.0
    );
    // indexer's bucket (2 requests) is untouched: both its requests are
    // decided on their merits, on its own subject and on the bare one.
    let own = request_on(&client, s.lease_request_as("indexer"), &ask("indexer"))
        .await
        .expect("decided");
    assert_eq!(own.reason_code, Some(DenyReason::UnknownHost), "{own:?}");
    let deprecated = || {
        metric_now(
            &coord,
            "lull_deprecated_subject_messages_total",
            &[("kind", "lease.request")],
        )
    };
    let before = deprecated().await;
    let legacy: HeavyLeaseResponse = call(&client, ep::LEASE_REQUEST, &ask("indexer"))
        .await
        .expect("the bare subject still works");
    assert_eq!(
        legacy.reason_code,
        Some(DenyReason::UnknownHost),
        "{legacy:?}"
    );
    // The bare subject is counted as deprecated.
    assert_eq!(deprecated().await, before + 1.0);
    // Its third is rate limited: the bucket is real.
    let third = request_on(&client, s.lease_request_as("indexer"), &ask("indexer"))
        .await
        .expect("decided");
    assert_eq!(
        third.reason_code,
        Some(DenyReason::RateLimited),
        "{third:?}"
    );
    assert_eq!(
        metric_now(&coord, "lull_lease_identity_rejections_total", &[]).await,
        4.0
    );
}

/// Publishes a report to JetStream and waits for the stream's ack.
async fn report(client: &async_nats::Client, subject: String, id: &str, body: Vec<u8>) {
    let js = jetstream::new(client.clone());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", id);
    js.publish_with_headers(subject, headers, body.into())
        .await
        .expect("publish")
        .await
        .expect("stream ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_for_another_host_is_rejected_and_counted() {
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(&infra, &[]).await;
    let client = infra.nats.connect().await.unwrap();
    let s = Subjects::default();
    let now = now_unix();

    // web2 publishes a run that claims web1.
    let mut forged = example_report("idn-forged", "idn_worker", now - 60.0, 1000.0);
    forged.host_id = Some("web1".into());
    report(
        &client,
        s.report_worker_by("web2", "idn_worker"),
        "idn-forged",
        serde_json::to_vec(&forged).unwrap(),
    )
    .await;
    // web2's own run without host_id, and a legacy-subject run of web1.
    let mut own = example_report("idn-own", "idn_worker", now - 50.0, 1000.0);
    own.host_id = None;
    report(
        &client,
        s.report_worker_by("web2", "idn_worker"),
        "idn-own",
        serde_json::to_vec(&own).unwrap(),
    )
    .await;
    let mut legacy = example_report("idn-legacy", "idn_worker", now - 40.0, 1000.0);
    legacy.host_id = Some("web1".into());
    report(
        &client,
        s.report_worker("idn_worker"),
        "idn-legacy",
        serde_json::to_vec(&legacy).unwrap(),
    )
    .await;

    let counted = wait_until(Duration::from_secs(20), || async {
        metric_now(
            &coord,
            "lull_reports_total",
            &[("kind", "worker"), ("result", "host_mismatch")],
        )
        .await
            >= 1.0
            && metric_now(
                &coord,
                "lull_reports_total",
                &[("kind", "worker"), ("result", "accepted")],
            )
            .await
                >= 2.0
    })
    .await;
    assert!(counted.is_ok(), "{}", coord.svc.logs());
    assert_eq!(
        metric_now(
            &coord,
            "lull_deprecated_subject_messages_total",
            &[("kind", "report.worker")]
        )
        .await,
        1.0,
        "only the legacy-subject run counts as deprecated"
    );
    assert_eq!(
        metric_now(
            &coord,
            "lull_reports_total",
            &[("kind", "worker"), ("result", "host_mismatch")],
        )
        .await,
        1.0
    );
    let runs: WorkerExecutionsReply = call(
        &client,
        ep::WORKERS_EXECUTIONS,
        &json!({"worker_name": "idn_worker"}),
    )
    .await
    .expect("workers.executions");
    let mut stored: Vec<(String, Option<String>)> = runs
        .executions
        .iter()
        .map(|r| (r.report.execution_id.clone(), r.report.host_id.clone()))
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        vec![
            ("idn-legacy".to_string(), Some("web1".to_string())),
            ("idn-own".to_string(), Some("web2".to_string())),
        ]
    );
    let logs = coord.svc.logs();
    assert!(
        logs.contains("idn-forged") && logs.contains("web2") && logs.contains("host_id"),
        "the rejection is logged with its id\n{logs}"
    );
}
