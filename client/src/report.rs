//! Durable report publisher (docs/protocol.md §2): validates a build record, a
//! fatigue event or a worker execution report, then publishes it to the
//! JetStream stream `LULL_REPORTS` on its subject with `Nats-Msg-Id` set to
//! the record's id, and waits for the stream's acknowledgement (a resend of
//! the same id is acknowledged as a duplicate and stored once).
//!
//! The subject names the publishing host:
//! `lull.report.<kind>.<host_id>.<key>`. It is a worker report's own
//! `host_id` when it has one, else the publisher's host id
//! ([`ReportPublisher::with_host_id`], default
//! [`default_host_id`](crate::host::default_host_id)). The coordinator
//! refuses a worker report whose `host_id` differs from its subject's, and
//! the generated NATS permissions let a host's user publish only under its
//! own id (docs/deploy-nats.md).
//!
//! [`PreparedReport`] (pure: decode, validate, route) is separate from
//! [`ReportPublisher`] (the NATS shell).

use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use lull_proto::error::ValidationError;
use lull_proto::msg::region::{BuildRecord, FatigueEventReport};
use lull_proto::msg::worker::WorkerExecutionReport;
use lull_proto::subjects::Subjects;
use lull_proto::validate::{decode, Validate, DEFAULT_MAX_PAYLOAD};

/// Which kind of durable report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportKind {
    /// A build record (`lull.report.build.<host_id>.<region>`, id
    /// `build_id`).
    Build,
    /// A fatigue event without a build
    /// (`lull.report.fatigue.<host_id>.<region>`, id `event_id`).
    Fatigue,
    /// A worker execution report
    /// (`lull.report.worker.<host_id>.<worker_name>`, id `execution_id`).
    Worker,
}

impl ReportKind {
    /// `build`, `fatigue` or `worker`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Build => "build",
            ReportKind::Fatigue => "fatigue",
            ReportKind::Worker => "worker",
        }
    }
}

impl std::fmt::Display for ReportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReportKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "build" => Ok(ReportKind::Build),
            "fatigue" => Ok(ReportKind::Fatigue),
            "worker" => Ok(ReportKind::Worker),
            other => Err(format!(
                "unknown report kind {other:?} (expected build, fatigue or worker)"
            )),
        }
    }
}

/// A validated report ready to publish: its kind, id (the `Nats-Msg-Id`),
/// subject key (region or worker name), the host it names (a worker
/// report's `host_id`) and the exact bytes to send.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedReport {
    /// Kind.
    pub kind: ReportKind,
    /// Record id.
    pub id: String,
    /// Last subject token: the region or the worker name.
    pub key: String,
    /// The host the report itself names (a worker report's `host_id`);
    /// it is the subject's host when present.
    pub host_id: Option<String>,
    /// JSON body.
    pub payload: Bytes,
}

impl PreparedReport {
    /// Decodes and validates `bytes` as a report of `kind` (at most
    /// `max_bytes`). The original bytes are kept, so fields this version
    /// does not know travel on unchanged.
    pub fn from_json(
        kind: ReportKind,
        bytes: &[u8],
        max_bytes: usize,
    ) -> Result<Self, ValidationError> {
        let (id, key, host_id) = match kind {
            ReportKind::Build => {
                let r: BuildRecord = decode(bytes, max_bytes)?;
                (r.build_id, r.region, None)
            }
            ReportKind::Fatigue => {
                let r: FatigueEventReport = decode(bytes, max_bytes)?;
                (r.event_id, r.region, None)
            }
            ReportKind::Worker => {
                let r: WorkerExecutionReport = decode(bytes, max_bytes)?;
                (r.execution_id, r.worker_name, r.host_id)
            }
        };
        Ok(PreparedReport {
            kind,
            id,
            key,
            host_id,
            payload: Bytes::copy_from_slice(bytes),
        })
    }

    fn typed<T: Serialize + Validate>(
        kind: ReportKind,
        r: &T,
        id: &str,
        key: &str,
        host_id: Option<&str>,
    ) -> Result<Self, ValidationError> {
        r.validate()?;
        let payload = serde_json::to_vec(r).map_err(|e| ValidationError::Invalid {
            field: "report".into(),
            reason: e.to_string(),
        })?;
        lull_proto::validate::check_size(&payload, DEFAULT_MAX_PAYLOAD)?;
        Ok(PreparedReport {
            kind,
            id: id.to_string(),
            key: key.to_string(),
            host_id: host_id.map(str::to_string),
            payload: payload.into(),
        })
    }

    /// A build record.
    pub fn build(r: &BuildRecord) -> Result<Self, ValidationError> {
        Self::typed(ReportKind::Build, r, &r.build_id, &r.region, None)
    }

    /// A fatigue event.
    pub fn fatigue(r: &FatigueEventReport) -> Result<Self, ValidationError> {
        Self::typed(ReportKind::Fatigue, r, &r.event_id, &r.region, None)
    }

    /// A worker execution report.
    pub fn worker(r: &WorkerExecutionReport) -> Result<Self, ValidationError> {
        Self::typed(
            ReportKind::Worker,
            r,
            &r.execution_id,
            &r.worker_name,
            r.host_id.as_deref(),
        )
    }

    /// The subject it is published on by a publisher on
    /// `publisher_host`: `lull.report.<kind>.<host>.<key>`, the host being
    /// the report's own `host_id` when it names one.
    pub fn subject(&self, subjects: &Subjects, publisher_host: &str) -> String {
        let host = self.host_id.as_deref().unwrap_or(publisher_host);
        subjects.report_by(self.kind.as_str(), host, &self.key)
    }
}

/// Publishing a report failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The report is not valid.
    #[error("invalid report: {0}")]
    Invalid(#[from] ValidationError),
    /// JetStream did not take it (no stream, no server).
    #[error("publishing to {subject}: {message}")]
    Publish {
        /// Subject.
        subject: String,
        /// Cause.
        message: String,
    },
    /// No acknowledgement in time.
    #[error("no acknowledgement from JetStream for {subject} within {timeout:?}")]
    AckTimeout {
        /// Subject.
        subject: String,
        /// How long we waited.
        timeout: Duration,
    },
}

/// The stream's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Published {
    /// Kind of report.
    pub kind: &'static str,
    /// Record id.
    pub id: String,
    /// Subject.
    pub subject: String,
    /// Stream that stored it.
    pub stream: String,
    /// Its sequence in the stream.
    pub sequence: u64,
    /// The stream had it already (same id): it is not stored again.
    pub duplicate: bool,
}

/// Publishes reports to JetStream and waits for the acknowledgement.
#[derive(Debug, Clone)]
pub struct ReportPublisher {
    js: async_nats::jetstream::Context,
    subjects: Subjects,
    host_id: String,
    ack_timeout: Duration,
}

impl ReportPublisher {
    /// A publisher over `client` with subjects under `subjects`' prefix,
    /// publishing as this host ([`default_host_id`](crate::host::default_host_id))
    /// with an acknowledgement timeout of 10 s.
    pub fn new(client: async_nats::Client, subjects: Subjects) -> Self {
        ReportPublisher {
            js: async_nats::jetstream::new(client),
            subjects,
            host_id: crate::host::default_host_id(),
            ack_timeout: Duration::from_secs(10),
        }
    }

    /// Publishes as `host_id` (the host token of the subjects of reports
    /// that do not name their own host). It must be a valid subject token.
    pub fn with_host_id(mut self, host_id: impl Into<String>) -> Result<Self, ValidationError> {
        let host_id = host_id.into();
        lull_proto::validate::subject_token("host_id", &host_id)?;
        self.host_id = host_id;
        Ok(self)
    }

    /// The host id this publisher publishes as.
    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    /// Changes the acknowledgement timeout.
    pub fn with_ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// Publishes with `Nats-Msg-Id` = the record id and waits for the ack.
    pub async fn publish(&self, r: &PreparedReport) -> Result<Published, ReportError> {
        let subject = r.subject(&self.subjects, &self.host_id);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, r.id.as_str());
        let ack = self
            .js
            .publish_with_headers(subject.clone(), headers, r.payload.clone())
            .await
            .map_err(|e| ReportError::Publish {
                subject: subject.clone(),
                message: e.to_string(),
            })?;
        let ack = match tokio::time::timeout(self.ack_timeout, ack).await {
            Err(_) => {
                return Err(ReportError::AckTimeout {
                    subject,
                    timeout: self.ack_timeout,
                })
            }
            Ok(Err(e)) => {
                return Err(ReportError::Publish {
                    subject,
                    message: e.to_string(),
                })
            }
            Ok(Ok(a)) => a,
        };
        Ok(Published {
            kind: r.kind.as_str(),
            id: r.id.clone(),
            subject,
            stream: ack.stream,
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_proto::msg::worker::example_report;

    #[test]
    fn kinds_parse() {
        assert_eq!("build".parse::<ReportKind>().unwrap(), ReportKind::Build);
        assert_eq!(
            "fatigue".parse::<ReportKind>().unwrap(),
            ReportKind::Fatigue
        );
        assert_eq!("worker".parse::<ReportKind>().unwrap(), ReportKind::Worker);
        assert!("builds".parse::<ReportKind>().is_err());
    }

    #[test]
    fn worker_report_is_routed_by_name_and_id() {
        let r = example_report("exec-1", "sse_guardian", 1_763_000_000.0, 1500.0);
        let p = PreparedReport::worker(&r).unwrap();
        assert_eq!(p.id, "exec-1");
        // The report names its host (web-1): that is the subject's host.
        assert_eq!(
            p.subject(&Subjects::default(), "here"),
            "lull.report.worker.web-1.sse_guardian"
        );
        let mut anonymous = r.clone();
        anonymous.host_id = None;
        let p = PreparedReport::worker(&anonymous).unwrap();
        assert_eq!(
            p.subject(&Subjects::default(), "here"),
            "lull.report.worker.here.sse_guardian"
        );
        // From JSON, unknown fields survive byte for byte.
        let mut v = serde_json::to_value(&r).unwrap();
        v["future_field"] = serde_json::json!(1);
        let bytes = serde_json::to_vec(&v).unwrap();
        let p = PreparedReport::from_json(ReportKind::Worker, &bytes, 1 << 20).unwrap();
        assert_eq!(&p.payload[..], &bytes[..]);
        assert_eq!(p.key, "sse_guardian");
    }

    #[test]
    fn invalid_reports_are_refused() {
        let mut r = example_report("exec-1", "sse_guardian", 100.0, 1500.0);
        r.completed_at = 50.0;
        assert!(PreparedReport::worker(&r).is_err());
        // Wrong kind for the body.
        let ok = serde_json::to_vec(&example_report("e", "w", 1.0, 1.0)).unwrap();
        assert!(PreparedReport::from_json(ReportKind::Build, &ok, 1 << 20).is_err());
        // Too large.
        assert!(PreparedReport::from_json(ReportKind::Worker, &ok, 10).is_err());
        // Not JSON.
        assert!(PreparedReport::from_json(ReportKind::Worker, b"nope", 1 << 20).is_err());
    }

    #[test]
    fn fatigue_event_is_routed_by_region() {
        let body = serde_json::json!({
            "event_id": "ev-1",
            "region": "us-west2",
            "fatigue_reason": "Pool creation timeout",
            "fatigue_reason_code": "beacon-timeout",
            "fatigue_time": 1_763_000_000.0,
            "fatigue_duration_hours": 1,
            "fatigue_type": "FATIGUED",
            "error_message": "timed out"
        });
        let bytes = serde_json::to_vec(&body).unwrap();
        let p = PreparedReport::from_json(ReportKind::Fatigue, &bytes, 1 << 20).unwrap();
        assert_eq!(p.id, "ev-1");
        assert_eq!(
            p.subject(&Subjects::new("acme"), "web1"),
            "acme.report.fatigue.web1.us-west2"
        );
        let bad = serde_json::json!({"event_id": "ev-1", "region": "us.west2",
            "fatigue_reason": "x", "fatigue_time": 1.0});
        let bytes = serde_json::to_vec(&bad).unwrap();
        assert!(PreparedReport::from_json(ReportKind::Fatigue, &bytes, 1 << 20).is_err());
    }
}
