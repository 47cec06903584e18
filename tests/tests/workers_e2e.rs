//! End-to-end: worker execution reports (seed 003) through JetStream into
//! the coordinator and Postgres, as real processes. A backdated run history
//! of the seed's workers (hourly, daily, the 10-second SSE guardian) is
//! published with `Nats-Msg-Id` headers, with resends and invalid reports;
//! then every worker query, the metrics and `lullctl workers` are checked.
//! A second test kills the coordinator with SIGKILL in the middle of a
//! stream and checks that nothing is lost and nothing is counted twice.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_nats::jetstream;
use lull_common::runtime::now_unix;
use lull_proto::msg::worker::{
    AnomalyKind, DataQualitySummaryReply, DataVerification, ExecutionOutcome, PeriodSource,
    RecommendationKind, ResourceMetrics, ScheduleState, SystemLearningReply, WorkerExecutionReport,
    WorkerExecutionsReply, WorkerLearningReply, WorkerStatsReply,
};
use lull_proto::subjects::endpoints as ep;
use lull_proto::{ErrorCode, Subjects};
use lull_tests::{scrape, wait_for, wait_until, Infra, Service};
use serde_json::json;
use support::*;

const HOUR: f64 = 3600.0;
const DAY: f64 = 86_400.0;

/// Deterministic jitter in -1..1.
fn jitter(i: usize, salt: u64) -> f64 {
    let mut x = (i as u64 + 1).wrapping_mul(6_364_136_223_846_793_005) ^ salt;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x % 2001) as f64 / 1000.0 - 1.0
}

fn hour_of(t: f64) -> u32 {
    ((t / HOUR).floor() as i64).rem_euclid(24) as u32
}

fn base(worker: &str, id: String, started_at: f64, duration_ms: f64) -> WorkerExecutionReport {
    WorkerExecutionReport {
        execution_id: id,
        worker_name: worker.to_string(),
        host_id: Some("web-1".into()),
        started_at,
        completed_at: started_at + duration_ms / 1000.0,
        outcome: ExecutionOutcome::Success,
        duration_ms,
        error_message: None,
        data_verification: DataVerification::default(),
        resource_metrics: ResourceMetrics::default(),
        upstream_data_age_seconds: None,
        downstream_consumers_waiting: None,
        custom_metrics: serde_json::Map::new(),
    }
}

fn custom(pairs: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    pairs.as_object().cloned().unwrap_or_default()
}

/// Hourly analytics flush: 72 runs, the last 20 minutes ago; worse data in
/// the 14:00–16:59 UTC hours; one duration spike 11 runs before the end.
fn analytics_flush(now: f64) -> Vec<WorkerExecutionReport> {
    let last = now - 20.0 * 60.0;
    (0..72)
        .map(|i| {
            let start = last - (71 - i) as f64 * HOUR;
            let bad = (14..=16).contains(&hour_of(start));
            let spike = i == 60;
            let dur = if spike {
                9000.0
            } else {
                1200.0 + 40.0 * jitter(i, 1)
            };
            let mut r = base("analytics_flush_worker", format!("afw-{i:03}"), start, dur);
            let fetched = 500 + 3 * i as i64;
            let failed = if bad { 40 } else { 2 };
            r.data_verification = DataVerification {
                records_fetched: Some(fetched),
                records_processed: Some(fetched - failed),
                records_stored: Some(fetched - failed),
                records_failed: Some(failed),
                validation_checks_passed: Some(20),
                validation_checks_failed: Some(if bad { 6 } else { 0 }),
                api_calls_made: Some(3),
                api_calls_succeeded: Some(3),
                cache_hits: Some(10),
                cache_misses: Some(1),
                newest_record_age_seconds: Some(120.0),
                ..Default::default()
            };
            r.resource_metrics = ResourceMetrics {
                memory_peak_mb: Some(120.0 + 5.0 * jitter(i, 2)),
                cpu_percent_avg: Some(30.0),
                database_query_count: Some(12),
                redis_operations: Some(40),
                network_bytes_received: Some(65_536),
            };
            r.custom_metrics = custom(json!({
                "events_flushed": fetched - failed,
                "asset_types_updated": 7,
            }));
            r
        })
        .collect()
}

/// Hourly coach cleanup: 72 runs, the last 2 hours ago (so it is LATE);
/// some failures and skipped runs, and too many database queries.
fn coach_cleanup(now: f64) -> Vec<WorkerExecutionReport> {
    let last = now - 2.0 * HOUR;
    (0..72)
        .map(|i| {
            let start = last - (71 - i) as f64 * HOUR;
            let mut r = base(
                "coach_cleanup_worker",
                format!("ccw-{i:03}"),
                start,
                800.0 + 30.0 * jitter(i, 3),
            );
            match i % 12 {
                5 => {
                    r.outcome = ExecutionOutcome::Failure;
                    r.error_message = Some("redis: connection reset".into());
                }
                9 => {
                    r.outcome = ExecutionOutcome::Skipped;
                    r.duration_ms = 5.0;
                    r.completed_at = start + 0.005;
                    return r;
                }
                _ => {}
            }
            let cleaned = 30 + (i % 7) as i64;
            r.data_verification = DataVerification {
                records_processed: Some(cleaned),
                records_skipped: Some(3),
                ..Default::default()
            };
            r.resource_metrics.redis_operations = Some(cleaned * 2);
            // Over the seed's "optimize if > 100" database queries.
            r.resource_metrics.database_query_count = Some(150);
            r.custom_metrics = custom(json!({"sessions_cleaned": cleaned, "sessions_skipped": 3}));
            r
        })
        .collect()
}

/// Hourly intel aggregation: 72 runs, the last 5 hours ago (MISSED); every
/// fourth run is PARTIAL after hitting the API rate limit.
fn intel_hourly(now: f64) -> Vec<WorkerExecutionReport> {
    let last = now - 5.0 * HOUR;
    (0..72)
        .map(|i| {
            let start = last - (71 - i) as f64 * HOUR;
            let mut r = base(
                "intel_aggregation_hourly",
                format!("iah-{i:03}"),
                start,
                4000.0 + 100.0 * jitter(i, 4),
            );
            let limited = i % 4 == 3;
            if limited {
                r.outcome = ExecutionOutcome::Partial;
            }
            r.data_verification = DataVerification {
                records_fetched: Some(120),
                records_processed: Some(if limited { 90 } else { 120 }),
                records_failed: Some(if limited { 30 } else { 0 }),
                api_calls_made: Some(12),
                api_calls_succeeded: Some(if limited { 9 } else { 12 }),
                api_calls_failed: Some(if limited { 3 } else { 0 }),
                api_rate_limited: Some(limited),
                api_quota_remaining: Some(5000 - i as i64 * 12),
                ..Default::default()
            };
            r.custom_metrics = custom(json!({"categories_aggregated": 12}));
            r
        })
        .collect()
}

/// Daily clip radar recap: 14 runs, the last 2 hours ago; one run two days
/// ago used 800 MB.
fn clip_radar(now: f64) -> Vec<WorkerExecutionReport> {
    let last = now - 2.0 * HOUR;
    (0..14)
        .map(|i| {
            let start = last - (13 - i) as f64 * DAY;
            let mut r = base(
                "clip_radar_recap_worker",
                format!("crr-{i:03}"),
                start,
                45_000.0 + 2000.0 * jitter(i, 5),
            );
            let clips = 300 + 10 * i as i64;
            r.data_verification = DataVerification {
                records_fetched: Some(clips),
                records_processed: Some(clips),
                records_stored: Some(3),
                validation_checks_passed: Some(5),
                validation_checks_failed: Some(0),
                expected_fields_present: Some(true),
                ..Default::default()
            };
            r.resource_metrics.memory_peak_mb = Some(if i == 12 { 800.0 } else { 180.0 });
            r.custom_metrics = custom(json!({
                "total_clips": clips, "viral_clips": clips / 20, "recaps_created": 3,
            }));
            r
        })
        .collect()
}

/// Daily intel roll-up: 10 runs, the last 26 hours ago; its period is
/// configured (so it is LATE, not learned).
fn intel_daily(now: f64) -> Vec<WorkerExecutionReport> {
    let last = now - 26.0 * HOUR;
    (0..10)
        .map(|i| {
            let start = last - (9 - i) as f64 * DAY;
            let mut r = base(
                "intel_aggregation_daily",
                format!("iad-{i:03}"),
                start,
                60_000.0 + 3000.0 * jitter(i, 6),
            );
            r.data_verification = DataVerification {
                records_fetched: Some(288),
                records_processed: Some(288),
                newest_record_age_seconds: Some(3600.0),
                validation_checks_passed: Some(10),
                validation_checks_failed: Some(if i == 4 { 2 } else { 0 }),
                validation_errors: if i == 4 {
                    vec!["category music: negative count".into()]
                } else {
                    vec![]
                },
                ..Default::default()
            };
            r.custom_metrics = custom(json!({"categories_rolled_up": 24}));
            r
        })
        .collect()
}

/// The SSE guardian: 120 runs 10 s apart, the last 10 minutes ago (MISSED),
/// with the seed's stream figures in `custom_metrics`.
fn sse_guardian(now: f64) -> Vec<WorkerExecutionReport> {
    let last = now - 600.0;
    (0..120)
        .map(|i| {
            let start = last - (119 - i) as f64 * 10.0;
            let mut r = base(
                "sse_guardian",
                format!("sse-{i:03}"),
                start,
                35.0 + 5.0 * jitter(i, 7),
            );
            let active = 40 + (i % 5) as i64;
            let orphaned = (i % 3) as i64;
            r.resource_metrics.memory_peak_mb = Some(40.0);
            r.custom_metrics = custom(json!({
                "active_streams": active,
                "healthy_streams": active - orphaned - 1,
                "stale_streams": 1,
                "orphaned_streams": orphaned,
                "cleaned_streams": orphaned,
                "orphan_rate": orphaned as f64 / active as f64,
                "orphaned_by_type": {"generation": orphaned, "coach_start": 0,
                    "coach_continue": 0, "profile_start": 0, "profile_continue": 0},
            }));
            r
        })
        .collect()
}

async fn publish(
    js: &jetstream::Context,
    r: &WorkerExecutionReport,
    msg_id: Option<&str>,
) -> jetstream::publish::PublishAck {
    let subject = Subjects::default().report_worker(&r.worker_name);
    let body = serde_json::to_vec(r).unwrap();
    publish_raw(js, &subject, body, msg_id).await
}

async fn publish_raw(
    js: &jetstream::Context,
    subject: &str,
    body: Vec<u8>,
    msg_id: Option<&str>,
) -> jetstream::publish::PublishAck {
    let mut headers = async_nats::HeaderMap::new();
    if let Some(id) = msg_id {
        headers.insert("Nats-Msg-Id", id);
    }
    js.publish_with_headers(subject.to_string(), headers, body.into())
        .await
        .expect("publish")
        .await
        .expect("stream ack")
}

async fn stats(client: &async_nats::Client, worker: &str) -> Option<WorkerStatsReply> {
    call(client, ep::WORKERS_STATS, &json!({ "worker_name": worker }))
        .await
        .ok()
}

/// Waits until every worker in `expected` has that many stored runs.
async fn wait_totals(
    client: &async_nats::Client,
    expected: &BTreeMap<String, u64>,
    timeout: Duration,
    logs: impl Fn() -> String,
) {
    let r = wait_until(timeout, || {
        let client = client.clone();
        let expected = expected.clone();
        async move {
            for (w, n) in &expected {
                match stats(&client, w).await {
                    Some(s) if s.total_executions == *n => {}
                    _ => return false,
                }
            }
            true
        }
    })
    .await;
    if r.is_err() {
        let mut got = BTreeMap::new();
        for w in expected.keys() {
            got.insert(
                w.clone(),
                stats(client, w).await.map(|s| s.total_executions),
            );
        }
        panic!("totals never reached {expected:?}, got {got:?}\n{}", logs());
    }
}

fn write_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("coordinator.toml");
    std::fs::write(
        &path,
        "[workers.overrides.intel_aggregation_daily]\n\
         expected_period_sec = 86400.0\n\
         grace_sec = 1800.0\n",
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_reports_end_to_end() {
    let infra = Infra::start().await.expect("infra");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let config = config.to_str().unwrap();
    let coord = start_coordinator(
        &infra,
        &[
            ("LULL_CONFIG", config),
            ("LULL_INGEST__WORKERS_SCHEDULE_EVAL_SEC", "0.5"),
        ],
    )
    .await;
    let client = infra.nats.connect().await.unwrap();
    let js = jetstream::new(client.clone());

    let now = now_unix();
    let mut all: Vec<WorkerExecutionReport> = [
        analytics_flush(now),
        coach_cleanup(now),
        intel_hourly(now),
        clip_radar(now),
        intel_daily(now),
        sse_guardian(now),
    ]
    .concat();
    // Arrive roughly in time order, as they would from a live fleet.
    all.sort_by(|a, b| a.started_at.total_cmp(&b.started_at));
    for r in &all {
        let ack = publish(&js, r, Some(&r.execution_id)).await;
        assert!(!ack.duplicate);
    }
    // A resend with the same Nats-Msg-Id is dropped by the stream...
    for r in all.iter().step_by(97) {
        let ack = publish(&js, r, Some(&r.execution_id)).await;
        assert!(ack.duplicate, "{} was not deduplicated", r.execution_id);
    }
    // ...one under another message id (the agent's spool and a direct
    // publish, or a resend after the duplicate window) reaches the
    // coordinator, which stores each execution_id once.
    let resent: Vec<&WorkerExecutionReport> = all.iter().skip(5).step_by(83).collect();
    for r in &resent {
        let ack = publish(&js, r, Some(&format!("spool-{}", r.execution_id))).await;
        assert!(!ack.duplicate);
        publish(&js, r, None).await;
    }
    // Invalid reports: a negative count, a subject that names another
    // worker, and broken JSON.
    let mut negative = base(
        "coach_cleanup_worker",
        "invalid-neg".into(),
        now - 60.0,
        10.0,
    );
    negative.data_verification.records_failed = Some(-1);
    publish(&js, &negative, Some("invalid-neg")).await;
    let mismatch = base(
        "analytics_flush_worker",
        "invalid-subject".into(),
        now - 60.0,
        10.0,
    );
    publish_raw(
        &js,
        &Subjects::default().report_worker("sse_guardian"),
        serde_json::to_vec(&mismatch).unwrap(),
        Some("invalid-subject"),
    )
    .await;
    publish_raw(
        &js,
        &Subjects::default().report_worker("sse_guardian"),
        b"{oops".to_vec(),
        Some("invalid-json"),
    )
    .await;

    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let mut outcomes: BTreeMap<(String, ExecutionOutcome), u64> = BTreeMap::new();
    for r in &all {
        *expected.entry(r.worker_name.clone()).or_default() += 1;
        *outcomes
            .entry((r.worker_name.clone(), r.outcome))
            .or_default() += 1;
    }
    assert_eq!(expected.len(), 6);
    wait_totals(&client, &expected, Duration::from_secs(60), || {
        coord.svc.logs()
    })
    .await;

    // ---- workers.stats: totals and outcomes, each run once.
    for (w, n) in &expected {
        let s = stats(&client, w).await.unwrap();
        assert_eq!(s.total_executions, *n, "{w}");
        for o in ExecutionOutcome::ALL {
            let want = outcomes.get(&(w.clone(), o)).copied().unwrap_or(0);
            assert_eq!(s.outcomes.get(o), want, "{w} {o}");
        }
        assert!(s.avg_duration_ms.is_some(), "{w}");
        assert!(s.last_overall_score.is_some(), "{w}");
        assert!(s.last_quality_level.is_some(), "{w}");
        assert!(!s.score_trend.is_empty(), "{w}");
        assert_eq!(
            s.last_run_at,
            all.iter()
                .filter(|r| &r.worker_name == w)
                .map(|r| r.started_at)
                .reduce(f64::max)
        );
    }
    let coach = stats(&client, "coach_cleanup_worker").await.unwrap();
    assert_eq!(coach.failed_executions, 6);
    assert_eq!(coach.successful_executions, 60);
    assert!(
        (coach.success_rate - 60.0 / 72.0).abs() < 0.001,
        "{}",
        coach.success_rate
    );
    let analytics = stats(&client, "analytics_flush_worker").await.unwrap();
    let total_records: u64 = all
        .iter()
        .filter(|r| r.worker_name == "analytics_flush_worker")
        .filter_map(|r| r.data_verification.volume())
        .sum();
    assert_eq!(analytics.total_records_processed, total_records);
    assert!(
        analytics
            .recent_anomalies
            .iter()
            .any(|a| a.kind == AnomalyKind::DurationSpike && a.execution_id == "afw-060"),
        "{:?}",
        analytics.recent_anomalies
    );
    assert_eq!(analytics.schedule.state, ScheduleState::Ok);

    // ---- workers.executions: newest first, with scores, learning, anomalies.
    let ex: WorkerExecutionsReply = call(
        &client,
        ep::WORKERS_EXECUTIONS,
        &json!({"worker_name": "analytics_flush_worker", "limit": 15}),
    )
    .await
    .unwrap();
    assert_eq!(ex.executions.len(), 15);
    let ids: Vec<&str> = ex
        .executions
        .iter()
        .map(|e| e.report.execution_id.as_str())
        .collect();
    assert_eq!(ids[0], "afw-071");
    assert_eq!(ids[14], "afw-057");
    for w in ex.executions.windows(2) {
        assert!(w[0].report.started_at > w[1].report.started_at);
    }
    for e in &ex.executions {
        assert!((0.0..=100.0).contains(&e.scores.overall_score));
        assert_eq!(e.scores.reliability_score, 100.0);
        assert!(e.scores.data_quality_score.is_some());
        assert!(e.scores.resource_efficiency_score.is_some());
        assert!(e.scores.performance_score.is_some());
        assert_eq!(e.learning.time_since_last_run_seconds, Some(HOUR));
        assert_eq!(
            u32::from(e.learning.time_of_day_utc),
            hour_of(e.report.started_at)
        );
        assert!(e.learning.duration_vs_avg.is_some());
        assert!(e.learning.duration_trend.is_some());
        assert!(e.learning.data_volume_trend.is_some());
        assert_eq!(e.report.custom_metrics["asset_types_updated"], 7);
    }
    let spike = ex
        .executions
        .iter()
        .find(|e| e.report.execution_id == "afw-060")
        .unwrap();
    let a = spike
        .anomalies
        .iter()
        .find(|a| a.kind == AnomalyKind::DurationSpike)
        .expect("duration spike");
    assert!(a.evidence["modified_z"] > 3.5, "{a:?}");
    assert_eq!(a.evidence["value"], 9000.0);
    assert!(spike.scores.performance_score.unwrap() < 50.0);
    // The whole report survives, including the guardian's nested figures.
    let sse: WorkerExecutionsReply = call(
        &client,
        ep::WORKERS_EXECUTIONS,
        &json!({"worker_name": "sse_guardian"}),
    )
    .await
    .unwrap();
    assert_eq!(sse.executions.len(), 20, "default limit");
    let newest = &sse.executions[0];
    assert_eq!(newest.report.execution_id, "sse-119");
    let original = all.iter().find(|r| r.execution_id == "sse-119").unwrap();
    assert_eq!(&newest.report, original);
    assert!(newest.report.custom_metrics["orphaned_by_type"]["generation"].is_number());
    // No data_verification: data quality is neutral (null), not a failure.
    assert_eq!(newest.scores.data_quality_score, None);
    assert!(newest.scores.overall_score >= 90.0, "{:?}", newest.scores);
    // A memory threshold breach is an anomaly of its run.
    let clips: WorkerExecutionsReply = call(
        &client,
        ep::WORKERS_EXECUTIONS,
        &json!({"worker_name": "clip_radar_recap_worker", "limit": 3}),
    )
    .await
    .unwrap();
    assert!(clips.executions[1]
        .anomalies
        .iter()
        .any(|a| a.kind == AnomalyKind::ResourceThreshold));
    assert!(
        clips.executions[1]
            .scores
            .resource_efficiency_score
            .unwrap()
            < 50.0
    );

    // Bad requests are error replies.
    let e = call::<_, WorkerExecutionsReply>(
        &client,
        ep::WORKERS_EXECUTIONS,
        &json!({"worker_name": "no_such_worker"}),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            e,
            lull_client::request::RequestError::Service {
                code: ErrorCode::NotFound,
                ..
            }
        ),
        "{e}"
    );
    for (endpoint, body) in [
        (ep::WORKERS_STATS, json!({"worker_name": "no_such_worker"})),
        (
            ep::WORKERS_LEARNING,
            json!({"worker_name": "no_such_worker"}),
        ),
    ] {
        let e = call::<_, serde_json::Value>(&client, endpoint, &body)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                lull_client::request::RequestError::Service {
                    code: ErrorCode::NotFound,
                    ..
                }
            ),
            "{endpoint}: {e}"
        );
    }
    for (endpoint, body) in [
        (
            ep::WORKERS_EXECUTIONS,
            json!({"worker_name": "sse_guardian", "limit": 0}),
        ),
        (
            ep::WORKERS_EXECUTIONS,
            json!({"worker_name": "sse_guardian", "limit": 501}),
        ),
        (ep::WORKERS_STATS, json!({"worker_name": "a.b"})),
        (ep::WORKERS_LEARNING, json!({})),
    ] {
        let e = call::<_, serde_json::Value>(&client, endpoint, &body)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                lull_client::request::RequestError::Service {
                    code: ErrorCode::InvalidRequest,
                    ..
                }
            ),
            "{endpoint} {body}: {e}"
        );
    }

    // ---- workers.learning: best hour and day, breakdowns, trends, period.
    let l: WorkerLearningReply = call(
        &client,
        ep::WORKERS_LEARNING,
        &json!({"worker_name": "analytics_flush_worker"}),
    )
    .await
    .unwrap();
    assert_eq!(l.hourly_performance.len(), 24);
    assert!(l.hourly_performance.iter().all(|h| h.executions == 3));
    let best = l.optimal_hour.expect("optimal hour");
    assert!(!(14..=16).contains(&best), "best hour {best}");
    let worst = l
        .hourly_performance
        .iter()
        .min_by(|a, b| a.avg_score.total_cmp(&b.avg_score))
        .unwrap();
    assert!(
        (14..=16).contains(&worst.hour)
            || worst.hour
                == hour_of(
                    all.iter()
                        .find(|r| r.execution_id == "afw-060")
                        .unwrap()
                        .started_at
                ) as u8
    );
    assert!(l.optimal_day.is_some());
    assert!(!l.daily_performance.is_empty());
    assert!(l.duration_trend.is_some());
    assert!(l.data_volume_trend.is_some());
    assert!(l.recent_avg_records.is_some());
    assert_eq!(l.expected_period_sec, Some(HOUR));
    let l: WorkerLearningReply = call(
        &client,
        ep::WORKERS_LEARNING,
        &json!({"worker_name": "clip_radar_recap_worker"}),
    )
    .await
    .unwrap();
    assert_eq!(l.expected_period_sec, Some(DAY));
    assert_eq!(l.hourly_performance.len(), 1);
    let l: WorkerLearningReply = call(
        &client,
        ep::WORKERS_LEARNING,
        &json!({"worker_name": "sse_guardian"}),
    )
    .await
    .unwrap();
    assert_eq!(l.expected_period_sec, Some(10.0));

    // Recommendations: frequent rate limits and too many queries.
    let l: WorkerLearningReply = call(
        &client,
        ep::WORKERS_LEARNING,
        &json!({"worker_name": "intel_aggregation_hourly"}),
    )
    .await
    .unwrap();
    assert!(
        l.suggestions
            .iter()
            .any(|s| s.kind == RecommendationKind::BatchSize && s.message.contains("rate limit")),
        "{:?}",
        l.suggestions
    );
    let l: WorkerLearningReply = call(
        &client,
        ep::WORKERS_LEARNING,
        &json!({"worker_name": "coach_cleanup_worker"}),
    )
    .await
    .unwrap();
    let hint = l
        .suggestions
        .iter()
        .find(|s| s.kind == RecommendationKind::Resource)
        .unwrap_or_else(|| panic!("{:?}", l.suggestions));
    assert_eq!(hint.evidence["avg_database_queries"], 150.0);

    // ---- learning.system: 24 h view, attention, schedules.
    let sys: SystemLearningReply = call(&client, ep::LEARNING_SYSTEM, &json!({}))
        .await
        .unwrap();
    assert_eq!(sys.workers, 6);
    assert_eq!(sys.window_hours, 24);
    let now_hour = (sys.generated_at / HOUR).floor() as i64;
    let in_window = all
        .iter()
        .filter(|r| {
            let h = (r.started_at / HOUR).floor() as i64;
            h > now_hour - 24 && h <= now_hour
        })
        .count() as u64;
    assert_eq!(sys.total_executions_24h, in_window);
    let avg = sys.average_score.expect("average score");
    assert!((0.0..=100.0).contains(&avg));
    assert_eq!(sys.busiest_hours.len(), 3);
    assert_eq!(sys.quietest_hours.len(), 3);
    // The guardian's 120 runs all fall into one or two clock hours.
    assert!(
        sys.busiest_hours[0].executions >= 60,
        "{:?}",
        sys.busiest_hours
    );
    let state = |w: &str| {
        sys.schedules
            .iter()
            .find(|s| s.worker_name == w)
            .unwrap_or_else(|| panic!("no schedule for {w}"))
            .clone()
    };
    assert_eq!(state("analytics_flush_worker").state, ScheduleState::Ok);
    assert_eq!(state("clip_radar_recap_worker").state, ScheduleState::Ok);
    assert_eq!(state("coach_cleanup_worker").state, ScheduleState::Late);
    assert_eq!(
        state("intel_aggregation_hourly").state,
        ScheduleState::Missed
    );
    assert!(state("intel_aggregation_hourly").missed_runs >= 3);
    assert_eq!(state("sse_guardian").state, ScheduleState::Missed);
    let daily = state("intel_aggregation_daily");
    assert_eq!(daily.state, ScheduleState::Late);
    assert_eq!(daily.period_source, PeriodSource::Configured);
    assert_eq!(daily.grace_sec, Some(1800.0));
    assert_eq!(
        state("coach_cleanup_worker").period_source,
        PeriodSource::Learned
    );
    let attention: BTreeSet<&str> = sys
        .workers_needing_attention
        .iter()
        .map(|a| a.worker_name.as_str())
        .collect();
    for w in [
        "coach_cleanup_worker",
        "intel_aggregation_hourly",
        "intel_aggregation_daily",
        "sse_guardian",
        "analytics_flush_worker",
    ] {
        assert!(attention.contains(w), "{w} not in {attention:?}");
    }
    assert!(
        !attention.contains("clip_radar_recap_worker"),
        "{attention:?}"
    );
    let opportunities: BTreeSet<(&str, RecommendationKind)> = sys
        .optimization_opportunities
        .iter()
        .map(|r| (r.worker_name.as_str(), r.kind))
        .collect();
    assert!(opportunities.contains(&("intel_aggregation_hourly", RecommendationKind::BatchSize)));
    assert!(opportunities.contains(&("coach_cleanup_worker", RecommendationKind::Resource)));
    let analytics_reasons = &sys
        .workers_needing_attention
        .iter()
        .find(|a| a.worker_name == "analytics_flush_worker")
        .unwrap()
        .reasons;
    assert!(
        analytics_reasons
            .iter()
            .any(|r| r.contains("DURATION_SPIKE")),
        "{analytics_reasons:?}"
    );

    // ---- data_quality.summary.
    let q: DataQualitySummaryReply = call(&client, ep::DATA_QUALITY_SUMMARY, &json!({}))
        .await
        .unwrap();
    assert_eq!(q.workers.len(), 6);
    assert!(q.overall_quality_level.is_some());
    assert!(q.overall_score.is_some());
    let records: u64 = all
        .iter()
        .filter_map(|r| r.data_verification.volume())
        .sum();
    let vfail: u64 = all
        .iter()
        .map(|r| r.data_verification.validation_failures())
        .sum();
    let limited = all
        .iter()
        .filter(|r| r.data_verification.rate_limited())
        .count() as u64;
    assert_eq!(q.total_records_processed, records);
    assert_eq!(q.validation_failures, vfail);
    assert_eq!(q.rate_limit_incidents, limited);
    assert!(limited > 0 && vfail > 0);
    let ia = q
        .workers
        .iter()
        .find(|w| w.worker_name == "intel_aggregation_hourly")
        .unwrap();
    assert_eq!(ia.rate_limit_incidents, limited);
    assert_eq!(ia.executions, 72);
    assert!(q.workers.iter().all(|w| w.quality_level.is_some()));
    // Worst first.
    for w in q.workers.windows(2) {
        assert!(w[0].quality_score <= w[1].quality_score, "{:?}", q.workers);
    }
    let in_window_records: u64 = all
        .iter()
        .filter(|r| {
            let h = (r.started_at / HOUR).floor() as i64;
            let qh = (q.generated_at / HOUR).floor() as i64;
            h > qh - 24 && h <= qh
        })
        .filter_map(|r| r.data_verification.volume())
        .sum();
    assert_eq!(q.records_processed_24h, in_window_records);

    // ---- Postgres holds each valid run once, and none of the invalid ones.
    let pg = infra.pg.client().await.unwrap();
    let n: i64 = pg
        .query_one("SELECT count(*) FROM worker_executions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n as usize, all.len());
    let n: i64 = pg
        .query_one(
            "SELECT count(*) FROM worker_executions WHERE execution_id LIKE 'invalid-%' OR scores IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    let n: i64 = pg
        .query_one("SELECT count(*) FROM worker_aggregates", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 6);

    // ---- Metrics.
    let url = coord.metrics_url.clone();
    let text = wait_for(Duration::from_secs(10), || {
        let url = url.clone();
        async move {
            let t = scrape(&url).await.ok()?;
            (metric(
                &t,
                "lull_reports_total",
                &[("kind", "worker"), ("result", "invalid")],
            ) == Some(3.0)
                && metric(
                    &t,
                    "lull_worker_schedule_state",
                    &[("worker", "coach_cleanup_worker"), ("state", "LATE")],
                ) == Some(1.0))
            .then_some(t)
        }
    })
    .await
    .unwrap_or_else(|_| panic!("metrics never settled:\n{}", coord.svc.logs()));
    assert_eq!(
        metric(
            &text,
            "lull_worker_executions_total",
            &[("worker", "coach_cleanup_worker"), ("outcome", "FAILURE")]
        ),
        Some(6.0)
    );
    assert_eq!(
        metric(
            &text,
            "lull_worker_executions_total",
            &[("worker", "sse_guardian"), ("outcome", "SUCCESS")]
        ),
        Some(120.0)
    );
    assert!(
        metric(&text, "lull_worker_duplicate_reports_total", &[]).unwrap_or(0.0)
            >= 2.0 * resent.len() as f64,
        "{text}"
    );
    let accepted = metric(
        &text,
        "lull_reports_total",
        &[("kind", "worker"), ("result", "accepted")],
    )
    .unwrap();
    assert!(
        accepted >= (all.len() + 2 * resent.len()) as f64,
        "{accepted}"
    );
    assert!(metric(
        &text,
        "lull_worker_last_overall_score",
        &[("worker", "analytics_flush_worker")]
    )
    .is_some());
    let last_ok = metric(
        &text,
        "lull_worker_last_success_timestamp_seconds",
        &[("worker", "sse_guardian")],
    )
    .unwrap();
    assert!((last_ok - original.completed_at).abs() < 1.0, "{last_ok}");
    assert!(
        text.contains("lull_worker_duration_seconds_bucket{worker=\"sse_guardian\",le=\"0.05\"}"),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "lull_worker_anomalies_total",
            &[
                ("worker", "analytics_flush_worker"),
                ("kind", "DURATION_SPIKE")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "lull_worker_schedule_state",
            &[("worker", "sse_guardian"), ("state", "MISSED")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "lull_worker_schedule_state",
            &[("worker", "analytics_flush_worker"), ("state", "OK")]
        ),
        Some(1.0)
    );
    for m in [
        "lull_worker_executions_total",
        "lull_worker_last_overall_score",
        "lull_worker_last_success_timestamp_seconds",
        "lull_worker_duration_seconds",
        "lull_worker_anomalies_total",
        "lull_worker_schedule_state",
        "lull_reports_total",
    ] {
        assert!(text.contains(&format!("# HELP {m} ")), "no HELP for {m}");
    }
    assert!(
        metric(
            &text,
            "lull_db_batch_rows_count",
            &[("table", "worker_executions")]
        )
        .is_some(),
        "{text}"
    );

    // ---- lullctl workers.
    let nats_url = infra.nats.url();
    let ctl = |args: Vec<&str>| {
        let nats_url = nats_url.clone();
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        async move {
            let out = Service::builder("lullctl")
                .env("LULL_NATS_URL", nats_url)
                .args(args.clone())
                .run(Duration::from_secs(20))
                .await
                .unwrap();
            assert!(
                out.status.success(),
                "lullctl {args:?}: {}{}",
                out.stdout,
                out.stderr
            );
            out.stdout
        }
    };
    let out = ctl(vec!["workers"]).await;
    for w in expected.keys() {
        assert!(out.contains(w.as_str()), "{out}");
    }
    assert!(out.contains("MISSED") && out.contains("LATE"), "{out}");
    let out = ctl(vec![
        "workers",
        "analytics_flush_worker",
        "--executions",
        "3",
        "--learning",
    ])
    .await;
    assert!(out.contains("afw-071") && out.contains("afw-069"), "{out}");
    assert!(out.contains("DURATION_SPIKE"), "{out}");
    assert!(out.contains("best hour"), "{out}");
    let out = ctl(vec!["--json", "workers", "sse_guardian"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["total_executions"], 120);
    let out = ctl(vec!["--json", "workers", "system"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["workers"], 6);
    let out = ctl(vec!["workers", "system"]).await;
    assert!(out.contains("NEEDS ATTENTION"), "{out}");
    assert!(
        out.contains("intel_aggregation_hourly [BatchSize]"),
        "{out}"
    );
    let out = ctl(vec!["workers", "quality"]).await;
    assert!(
        out.contains("intel_aggregation_hourly") && out.contains("RATE LIMITS"),
        "{out}"
    );
    let out = ctl(vec!["--json", "workers", "quality"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["rate_limit_incidents"], limited);
}

/// A large stream of runs of two workers, 10 s apart.
fn bulk(now: f64, n: usize) -> Vec<WorkerExecutionReport> {
    (0..n)
        .map(|i| {
            let worker = if i % 2 == 0 { "bulk_a" } else { "bulk_b" };
            let start = now - (n - i) as f64 * 10.0;
            let mut r = base(
                worker,
                format!("bulk-{i:05}"),
                start,
                200.0 + 20.0 * jitter(i, 9),
            );
            if i % 17 == 0 {
                r.outcome = ExecutionOutcome::Failure;
            }
            r.data_verification.records_processed = Some(10);
            r
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_stream_loses_nothing_and_counts_nothing_twice() {
    let infra = Infra::start().await.expect("infra");
    // Small batches make the stream take a while; a short ack wait brings
    // the unacknowledged messages back soon after the crash.
    let env = [
        ("LULL_INGEST__REPORTS_BATCH", "10"),
        ("LULL_INGEST__REPORTS_ACK_WAIT_SEC", "3"),
    ];
    let mut coord = start_coordinator(&infra, &env).await;
    let port = coord.metrics_port;
    let client = infra.nats.connect().await.unwrap();
    let js = jetstream::new(client.clone());
    let pg = infra.pg.client().await.unwrap();

    let now = now_unix();
    let all = bulk(now, 3000);
    let js2 = js.clone();
    let to_send = all.clone();
    let publisher = tokio::spawn(async move {
        for r in &to_send {
            publish(&js2, r, Some(&r.execution_id)).await;
        }
    });
    // Kill the coordinator once part of the stream is committed.
    let at_kill = wait_for(Duration::from_secs(60), || {
        let pg = &pg;
        async move {
            let n: i64 = pg
                .query_one("SELECT count(*) FROM worker_executions", &[])
                .await
                .ok()?
                .get(0);
            (n >= 300).then_some(n)
        }
    })
    .await
    .unwrap_or_else(|_| panic!("nothing committed:\n{}", coord.svc.logs()));
    coord.svc.kill9();
    let committed: i64 = pg
        .query_one("SELECT count(*) FROM worker_executions", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        (committed as usize) < all.len(),
        "the whole stream was committed before the kill ({at_kill})"
    );
    publisher.await.unwrap();
    // Resends while the coordinator is down, under other message ids.
    for r in all.iter().step_by(50) {
        publish(&js, r, Some(&format!("resend-{}", r.execution_id))).await;
    }

    let coord = start_coordinator_on(&infra, port, &env).await;
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for r in &all {
        *expected.entry(r.worker_name.clone()).or_default() += 1;
    }
    wait_totals(&client, &expected, Duration::from_secs(120), || {
        coord.svc.logs()
    })
    .await;

    let n: i64 = pg
        .query_one(
            "SELECT count(*) FROM worker_executions WHERE scores IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n as usize, all.len());
    for (w, total) in &expected {
        let s = stats(&client, w).await.unwrap();
        let failures = all
            .iter()
            .filter(|r| &r.worker_name == w && r.outcome == ExecutionOutcome::Failure)
            .count() as u64;
        assert_eq!(s.total_executions, *total);
        assert_eq!(s.outcomes.failure, failures, "{w}");
        assert_eq!(s.total_records_processed, 10 * total, "{w}");
        let stored: i64 = pg
            .query_one(
                "SELECT executions FROM worker_aggregates WHERE worker_name = $1",
                &[w],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(stored as u64, *total);
    }
    // The run counters continue from the stored totals: exactly once each.
    let url = coord.metrics_url.clone();
    let expected_success = all
        .iter()
        .filter(|r| r.worker_name == "bulk_a" && r.outcome == ExecutionOutcome::Success)
        .count() as f64;
    wait_until(Duration::from_secs(10), || {
        let url = url.clone();
        async move {
            let t = scrape(&url).await.unwrap_or_default();
            metric(
                &t,
                "lull_worker_executions_total",
                &[("worker", "bulk_a"), ("outcome", "SUCCESS")],
            ) == Some(expected_success)
        }
    })
    .await
    .unwrap_or_else(|_| panic!("counter is not {expected_success}:\n{}", coord.svc.logs()));
    // Newest first, as stored.
    let ex: WorkerExecutionsReply = call(
        &client,
        ep::WORKERS_EXECUTIONS,
        &json!({"worker_name": "bulk_b", "limit": 500}),
    )
    .await
    .unwrap();
    assert_eq!(ex.executions.len(), 500);
    assert_eq!(ex.executions[0].report.execution_id, "bulk-02999");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_retries_without_half_applied_batches() {
    let mut infra = Infra::start().await.expect("infra");
    let env = [
        ("LULL_INGEST__REPORTS_BATCH", "20"),
        ("LULL_INGEST__REPORTS_RETRY_DELAY_SEC", "0.5"),
    ];
    let coord = start_coordinator(&infra, &env).await;
    let client = infra.nats.connect().await.unwrap();
    let js = jetstream::new(client.clone());
    let now = now_unix();
    let all = bulk(now, 300);
    let (first, rest) = all.split_at(100);
    for r in first {
        publish(&js, r, Some(&r.execution_id)).await;
    }
    let count = |rs: &[WorkerExecutionReport]| {
        let mut m: BTreeMap<String, u64> = BTreeMap::new();
        for r in rs {
            *m.entry(r.worker_name.clone()).or_default() += 1;
        }
        m
    };
    wait_totals(&client, &count(first), Duration::from_secs(30), || {
        coord.svc.logs()
    })
    .await;

    // The database goes away: commits fail, the reports are nak'ed, and
    // the aggregates the queries see do not move.
    // (A fast shutdown, not SIGKILL: the harness runs Postgres with
    // synchronous_commit=off, so a crash of Postgres itself could drop
    // transactions it had already reported committed.)
    infra.pg.stop().await.unwrap();
    for r in rest {
        publish(&js, r, Some(&r.execution_id)).await;
    }
    // Either the commits fail and are retried, or (the election lives in
    // Postgres too) the coordinator stops leading and stops consuming: in
    // both cases nothing is applied without a commit.
    let url = coord.metrics_url.clone();
    wait_until(Duration::from_secs(30), || {
        let url = url.clone();
        async move {
            let t = scrape(&url).await.unwrap_or_default();
            let retried = metric(
                &t,
                "lull_db_write_errors_total",
                &[("table", "worker_executions")],
            )
            .unwrap_or(0.0)
                >= 2.0
                && metric(
                    &t,
                    "lull_reports_total",
                    &[("kind", "worker"), ("result", "retried")],
                )
                .unwrap_or(0.0)
                    >= 20.0;
            let stepped_down = metric(&t, "lull_coordinator_leader", &[]) == Some(0.0);
            retried || stepped_down
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no failed commits seen:\n{}", coord.svc.logs()));
    for (w, n) in count(first) {
        // Without a leader the worker queries are unavailable; with one
        // they must not have moved.
        if let Some(s) = stats(&client, &w).await {
            assert_eq!(s.total_executions, n, "{w} moved without a commit");
        }
    }

    // Back: everything arrives, once.
    infra.pg.start_again().await.unwrap();
    wait_totals(&client, &count(&all), Duration::from_secs(60), || {
        coord.svc.logs()
    })
    .await;
    let pg = infra.pg.client().await.unwrap();
    let n: i64 = pg
        .query_one(
            "SELECT count(*) FROM worker_executions WHERE scores IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n as usize, all.len());
    let t = scrape(&coord.metrics_url).await.unwrap();
    let successes = all
        .iter()
        .filter(|r| r.worker_name == "bulk_b" && r.outcome == ExecutionOutcome::Success)
        .count() as f64;
    assert_eq!(
        metric(
            &t,
            "lull_worker_executions_total",
            &[("worker", "bulk_b"), ("outcome", "SUCCESS")]
        ),
        Some(successes)
    );
}
