//! Durable report ingest: a durable pull consumer on the `LULL_REPORTS`
//! stream. Each fetched batch is decoded and validated; invalid records are
//! terminated (never redelivered), counted and logged with their id; valid
//! ones are handed to the owning actor of their domain (regions or workers),
//! which commits them to Postgres. Messages are acked only after that
//! commit, and nak'ed for redelivery when it fails, so a crash anywhere
//! loses nothing; the actors upsert by record id, so nothing counts twice.
//! A record whose id is stored with other content is a conflict: dropped,
//! counted as `conflict` and logged with its id (rate-limited). A record
//! that would add a region or worker past its cap is not stored: counted
//! as `region_limit` or `worker_limit` and terminated.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, AckKind};
use futures::StreamExt;
use lull_common::runtime::now_unix;
use lull_proto::msg::region::{BuildRecord, FatigueEventReport};
use lull_proto::msg::worker::WorkerExecutionReport;
use lull_proto::validate::{CheckTimes, TimeWindow};
use lull_proto::{decode, Subjects, ValidationError};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::conflicts::ConflictLog;
use super::Rejection;
use crate::builds::RegionReport;
use crate::handoff::Batch;

/// A decoded report of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// Region reports.
    Region(RegionReport),
    /// A worker execution report (`lull.report.worker.<worker>`).
    Worker(Box<WorkerExecutionReport>),
}

impl Report {
    /// Kind label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Report::Region(RegionReport::Build(_)) => "build",
            Report::Region(RegionReport::Fatigue(_)) => "fatigue",
            Report::Worker(_) => "worker",
        }
    }
}

/// Where decoded reports go: the owning actor of each domain.
#[derive(Debug, Clone)]
pub struct Sinks {
    /// The regions actor.
    pub regions: mpsc::Sender<Batch<RegionReport>>,
    /// The workers actor.
    pub workers: mpsc::Sender<Batch<WorkerExecutionReport>>,
}

impl Sinks {
    /// Sinks and the receivers their actors read from.
    #[allow(clippy::type_complexity)]
    pub fn channel(
        capacity: usize,
    ) -> (
        Sinks,
        mpsc::Receiver<Batch<RegionReport>>,
        mpsc::Receiver<Batch<WorkerExecutionReport>>,
    ) {
        let (rtx, rrx) = mpsc::channel(capacity.max(1));
        let (wtx, wrx) = mpsc::channel(capacity.max(1));
        (
            Sinks {
                regions: rtx,
                workers: wtx,
            },
            rrx,
            wrx,
        )
    }
}

/// Tunables of the consumer.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Durable consumer name.
    pub durable: String,
    /// Most messages per fetch (one database transaction per domain).
    pub batch: usize,
    /// How long a fetch waits for messages.
    pub fetch_wait: Duration,
    /// How long the server waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// Delay asked for when nak'ing after a failed commit.
    pub retry_delay: Duration,
    /// Where a report's timestamps must lie around the coordinator's
    /// clock (`ingest.reports_future_skew_sec`, `ingest.reports_max_age_days`).
    pub times: TimeWindow,
    /// Conflicting reports logged per minute
    /// (`ingest.reports_conflict_logs_per_min`).
    pub conflict_logs_per_min: u32,
}

/// Decodes one report by its subject: `<prefix>.report.<kind>.<host>.<key>`
/// or the legacy `<prefix>.report.<kind>.<key>`. The key must equal the
/// record's region or worker name, and its timestamps must lie within
/// `times` around `now`. The subject's host (the publisher, bound to its
/// NATS user by the permissions) must equal a worker report's `host_id`
/// ([`Rejection::HostMismatch`] otherwise) and fills it when absent.
pub fn classify(
    subjects: &Subjects,
    subject: &str,
    payload: &[u8],
    max_payload: usize,
    now: f64,
    times: &TimeWindow,
) -> Result<Report, Rejection> {
    let address = subjects
        .report_address(subject)
        .ok_or_else(|| Rejection::BadSubject(subject.to_string()))?;
    let (kind, key) = (address.kind, address.key);
    if let Some(host) = address.host {
        lull_proto::validate::subject_token("subject host", host)?;
    }
    let mismatch = |field: &str, value: &str| {
        Rejection::Invalid(ValidationError::Invalid {
            field: field.to_string(),
            reason: format!("{value:?} does not match the subject's {key:?}"),
        })
    };
    match kind {
        "build" => {
            let r: BuildRecord = decode(payload, max_payload)?;
            if r.region != key {
                return Err(mismatch("region", &r.region));
            }
            r.check_times(now, times)?;
            Ok(Report::Region(RegionReport::Build(Box::new(r))))
        }
        "fatigue" => {
            let r: FatigueEventReport = decode(payload, max_payload)?;
            if r.region != key {
                return Err(mismatch("region", &r.region));
            }
            r.check_times(now, times)?;
            Ok(Report::Region(RegionReport::Fatigue(Box::new(r))))
        }
        "worker" => {
            let mut r: WorkerExecutionReport = decode(payload, max_payload)?;
            if r.worker_name != key {
                return Err(mismatch("worker_name", &r.worker_name));
            }
            match (address.host, &r.host_id) {
                (Some(subject), Some(payload)) if subject != payload => {
                    return Err(Rejection::HostMismatch {
                        subject: subject.to_string(),
                        payload: payload.clone(),
                    })
                }
                (Some(subject), None) => r.host_id = Some(subject.to_string()),
                _ => {}
            }
            r.check_times(now, times)?;
            Ok(Report::Worker(Box::new(r)))
        }
        _ => Err(Rejection::BadSubject(subject.to_string())),
    }
}

/// Best-effort id of a record, for logging a rejected one.
fn record_id(payload: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| {
            ["build_id", "event_id", "execution_id"]
                .iter()
                .find_map(|k| v.get(*k).and_then(|x| x.as_str()).map(str::to_string))
        })
        .unwrap_or_else(|| "?".into())
}

/// Creates (idempotently) the durable consumer and runs until `shutdown`.
pub async fn run(
    client: async_nats::Client,
    subjects: Subjects,
    sinks: Sinks,
    cfg: ConsumerConfig,
    max_payload: usize,
    shutdown: CancellationToken,
) -> Result<(), async_nats::Error> {
    let js = jetstream::new(client);
    let stream = js.get_stream(lull_proto::subjects::REPORTS_STREAM).await?;
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(
            &cfg.durable,
            pull::Config {
                durable_name: Some(cfg.durable.clone()),
                filter_subject: subjects.reports_all(),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: cfg.ack_wait,
                max_ack_pending: (cfg.batch * 4) as i64,
                ..Default::default()
            },
        )
        .await?;
    let mut conflicts = ConflictLog::new(cfg.conflict_logs_per_min);
    // Host mismatches are logged within the same budget, separately.
    let mut mismatches = ConflictLog::new(cfg.conflict_logs_per_min);
    while !shutdown.is_cancelled() {
        let fetched = tokio::select! {
            f = consumer.fetch().max_messages(cfg.batch).expires(cfg.fetch_wait).messages() => f,
            _ = shutdown.cancelled() => break,
        };
        let mut batch = match fetched {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "fetching reports failed; retrying");
                tokio::time::sleep(cfg.retry_delay).await;
                continue;
            }
        };
        let mut messages = Vec::with_capacity(cfg.batch);
        while let Some(m) = batch.next().await {
            match m {
                Ok(m) => messages.push(m),
                Err(e) => {
                    tracing::debug!(error = %e, "batch ended early");
                    break;
                }
            }
        }
        if !messages.is_empty() {
            process(
                &subjects,
                &sinks,
                &cfg,
                max_payload,
                messages,
                &mut conflicts,
                &mut mismatches,
            )
            .await;
        }
    }
    Ok(())
}

async fn process(
    subjects: &Subjects,
    sinks: &Sinks,
    cfg: &ConsumerConfig,
    max_payload: usize,
    messages: Vec<jetstream::Message>,
    conflicts: &mut ConflictLog,
    mismatches: &mut ConflictLog,
) {
    let mut regions = (Vec::new(), Vec::new());
    let mut workers = (Vec::new(), Vec::new());
    for m in messages {
        if let Ok(info) = m.info() {
            let published = info.published.unix_timestamp_nanos() as f64 / 1e9;
            metrics::histogram!(super::metrics::REPORTS_INGEST_LAG.name)
                .record((now_unix() - published).max(0.0));
        }
        if let Some(a) = subjects.report_address(m.subject.as_str()) {
            if let (None, Some(old)) = (a.host, crate::deprecated::Old::report(a.kind)) {
                crate::deprecated::seen(old, m.subject.as_str());
            }
        }
        match classify(
            subjects,
            m.subject.as_str(),
            &m.payload,
            max_payload,
            now_unix(),
            &cfg.times,
        ) {
            Ok(Report::Region(r)) => {
                regions.0.push(r);
                regions.1.push(m);
            }
            Ok(Report::Worker(r)) => {
                workers.0.push(*r);
                workers.1.push(m);
            }
            Err(rejection) => {
                let kind = match subjects.report_parts(m.subject.as_str()).map(|(k, _)| k) {
                    Some("build") => "build",
                    Some("fatigue") => "fatigue",
                    Some("worker") => "worker",
                    _ => "unknown",
                };
                let result = if matches!(rejection, Rejection::HostMismatch { .. }) {
                    // A publisher can repeat this at will: rate-limited.
                    if let Some(held_back) = mismatches.admit(std::time::Instant::now()) {
                        tracing::warn!(subject = %m.subject, id = %record_id(&m.payload), %rejection, held_back, "report rejected: its host_id is not the publishing host's");
                    }
                    "host_mismatch"
                } else {
                    tracing::warn!(subject = %m.subject, id = %record_id(&m.payload), %rejection, "report rejected");
                    "invalid"
                };
                metrics::counter!(super::metrics::REPORTS.name, "kind" => kind, "result" => result)
                    .increment(1);
                if let Err(e) = m.ack_with(AckKind::Term).await {
                    tracing::warn!(error = %e, "terminating an invalid report failed");
                }
            }
        }
    }
    let region_kinds: Vec<&'static str> = regions
        .0
        .iter()
        .map(|r| match r {
            RegionReport::Build(_) => "build",
            RegionReport::Fatigue(_) => "fatigue",
        })
        .collect();
    let worker_kinds = vec!["worker"; workers.0.len()];
    let (a, b) = tokio::join!(
        deliver(&sinks.regions, regions.0, regions.1, region_kinds, cfg),
        deliver(&sinks.workers, workers.0, workers.1, worker_kinds, cfg),
    );
    let now = std::time::Instant::now();
    for (kind, id) in a.into_iter().chain(b) {
        conflicts.log(kind, &id, now);
    }
}

/// Hands one domain's records to its actor, then acks or naks them.
/// Returns the kind and id of each conflicting duplicate.
async fn deliver<T>(
    sink: &mpsc::Sender<Batch<T>>,
    items: Vec<T>,
    messages: Vec<jetstream::Message>,
    kinds: Vec<&'static str>,
    cfg: &ConsumerConfig,
) -> Vec<(&'static str, String)> {
    let mut conflicts = Vec::new();
    if items.is_empty() {
        return conflicts;
    }
    let (tx, rx) = oneshot::channel();
    let outcome = match sink.send(Batch { items, done: tx }).await {
        Ok(()) => rx
            .await
            .unwrap_or_else(|_| Err("the actor stopped before committing".into())),
        Err(_) => Err("the actor has stopped".into()),
    };
    match outcome {
        Ok(committed) => {
            for (i, (m, kind)) in messages.iter().zip(kinds).enumerate() {
                let over = committed.over_limit.contains(&i);
                let result = if over {
                    // Not stored: terminated, so it is not redelivered.
                    if kind == "worker" {
                        "worker_limit"
                    } else {
                        "region_limit"
                    }
                } else if committed.conflicts.contains(&i) {
                    conflicts.push((kind, record_id(&m.payload)));
                    "conflict"
                } else {
                    "accepted"
                };
                metrics::counter!(super::metrics::REPORTS.name, "kind" => kind, "result" => result)
                    .increment(1);
                let acked = if over {
                    m.ack_with(AckKind::Term).await
                } else {
                    m.ack().await
                };
                if let Err(e) = acked {
                    // The commit stands; a redelivery is an idempotent no-op.
                    tracing::debug!(error = %e, "ack failed after commit");
                }
            }
        }
        Err(reason) => {
            tracing::warn!(%reason, n = messages.len(), "committing reports failed; will retry");
            for (m, kind) in messages.iter().zip(kinds) {
                metrics::counter!(super::metrics::REPORTS.name, "kind" => kind, "result" => "retried")
                    .increment(1);
                let _ = m.ack_with(AckKind::Nak(Some(cfg.retry_delay))).await;
            }
        }
    }
    conflicts
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMES: TimeWindow = TimeWindow {
        future_skew_sec: 300.0,
        max_age_sec: Some(400.0 * 86_400.0),
    };

    fn classify(s: &Subjects, subject: &str, body: &[u8], max: usize) -> Result<Report, Rejection> {
        super::classify(s, subject, body, max, 1763026500.0, &TIMES)
    }

    #[test]
    fn classify_rejects_timestamps_outside_the_window() {
        let s = Subjects::default();
        let mut fatigue = serde_json::json!({
            "event_id": "e1", "region": "r1", "fatigue_reason": "x",
            "fatigue_time": 1e11, "fatigue_duration_hours": 4, "fatigue_type": "FATIGUED"
        });
        let e = classify(
            &s,
            "lull.report.fatigue.r1",
            &serde_json::to_vec(&fatigue).unwrap(),
            1 << 16,
        )
        .unwrap_err();
        assert_eq!(e.label(), "invalid");
        assert!(e.to_string().contains("fatigue_time"), "{e}");
        fatigue["fatigue_time"] = serde_json::json!(1763026500.0 - 401.0 * 86_400.0);
        let e = classify(
            &s,
            "lull.report.fatigue.r1",
            &serde_json::to_vec(&fatigue).unwrap(),
            1 << 16,
        )
        .unwrap_err();
        assert!(e.to_string().contains("behind"), "{e}");
        let run = lull_proto::msg::worker::example_report("x1", "w1", 1e11, 1000.0);
        let e = classify(
            &s,
            "lull.report.worker.w1",
            &serde_json::to_vec(&run).unwrap(),
            1 << 16,
        )
        .unwrap_err();
        assert!(e.to_string().contains("started_at"), "{e}");
    }

    #[test]
    fn classify_checks_the_publishing_host() {
        let s = Subjects::default();
        let mut run = lull_proto::msg::worker::example_report("x1", "w1", 1763026000.0, 1000.0);
        run.host_id = Some("web1".into());
        let body = serde_json::to_vec(&run).unwrap();
        // Its own host: accepted, on the new subject and the legacy one.
        let r = classify(&s, "lull.report.worker.web1.w1", &body, 1 << 16).unwrap();
        assert_eq!(r, Report::Worker(Box::new(run.clone())));
        assert!(classify(&s, "lull.report.worker.w1", &body, 1 << 16).is_ok());
        // Another host's report: refused as a host mismatch.
        let e = classify(&s, "lull.report.worker.web2.w1", &body, 1 << 16).unwrap_err();
        assert_eq!(e.label(), "host_mismatch");
        assert!(
            e.to_string().contains("web2") && e.to_string().contains("web1"),
            "{e}"
        );
        // No host_id: the subject's host fills it.
        run.host_id = None;
        let body = serde_json::to_vec(&run).unwrap();
        match classify(&s, "lull.report.worker.web2.w1", &body, 1 << 16).unwrap() {
            Report::Worker(w) => assert_eq!(w.host_id.as_deref(), Some("web2")),
            other => panic!("{other:?}"),
        }
        // A subject host that is no host id.
        let e = classify(&s, "lull.report.worker.we$b.w1", &body, 1 << 16).unwrap_err();
        assert_eq!(e.label(), "invalid");
        // Region reports carry no host: the subject's is attribution only,
        // but the region must still match.
        let fatigue = serde_json::json!({
            "event_id": "e1", "region": "r1", "fatigue_reason": "x",
            "fatigue_time": 1763026000.0, "fatigue_duration_hours": 4, "fatigue_type": "FATIGUED"
        });
        let body = serde_json::to_vec(&fatigue).unwrap();
        assert!(classify(&s, "lull.report.fatigue.web1.r1", &body, 1 << 16).is_ok());
        let e = classify(&s, "lull.report.fatigue.web1.r2", &body, 1 << 16).unwrap_err();
        assert_eq!(e.label(), "invalid");
    }

    #[test]
    fn classify_checks_subject_against_payload() {
        let s = Subjects::default();
        let fatigue = serde_json::json!({
            "event_id": "e1", "region": "us-west2", "fatigue_reason": "Pool creation timeout",
            "fatigue_reason_code": "beacon-timeout", "fatigue_time": 1763026500.0,
            "fatigue_duration_hours": 4, "fatigue_type": "FATIGUED", "error_message": null
        });
        let body = serde_json::to_vec(&fatigue).unwrap();
        let r = classify(&s, "lull.report.fatigue.us-west2", &body, 1 << 16).unwrap();
        assert_eq!(r.kind(), "fatigue");
        let e = classify(&s, "lull.report.fatigue.eu-west1", &body, 1 << 16).unwrap_err();
        assert_eq!(e.label(), "invalid");
        let e = classify(&s, "lull.report.nope.x", &body, 1 << 16).unwrap_err();
        assert_eq!(e.label(), "bad_subject");
        let e = classify(&s, "lull.report.build.us-west2", b"{}", 1 << 16).unwrap_err();
        assert_eq!(e.label(), "bad_json");
        assert_eq!(record_id(&body), "e1");
    }
}
