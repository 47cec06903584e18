//! Ingest of what agents publish: stats snapshots and loop telemetry on core
//! NATS (soft state), and durable reports from JetStream.

pub mod agent_health;
pub mod conflicts;
pub(crate) mod metrics;
pub mod rejected;
pub mod reports;
pub mod stats;
pub mod stream;

/// Why a message from the network was not accepted; also the `result`
/// label of the ingest counters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// The subject does not have the expected shape.
    #[error("subject {0:?} does not match")]
    BadSubject(String),
    /// The payload broke a validation rule.
    #[error("{0}")]
    Invalid(#[from] lull_proto::ValidationError),
    /// The subject's host id differs from the payload's.
    #[error("subject host {subject:?} does not match payload host_id {payload:?}")]
    HostMismatch {
        /// Host of the subject.
        subject: String,
        /// Host of the payload.
        payload: String,
    },
}

impl Rejection {
    /// Bounded label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::BadSubject(_) => "bad_subject",
            Rejection::Invalid(e) => match e.kind() {
                "too_large" => "too_large",
                "bad_json" => "bad_json",
                _ => "invalid",
            },
            Rejection::HostMismatch { .. } => "host_mismatch",
        }
    }
}
