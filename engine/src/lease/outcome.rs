//! What a book method hands back: the reply with its [`Effect`]s
//! ([`Outcome`]), or a [`BookError`] that becomes an error reply.

use lull_proto::error::ErrorCode;
use lull_proto::msg::lease::LeaseEvent;
use thiserror::Error;

use super::audit::AuditRecord;

/// Something the shell must do after a book method returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Publish on `lull.lease.events.<lease_id>`.
    Publish(LeaseEvent),
    /// Write an audit record.
    Audit(AuditRecord),
}

/// A reply and the effects of producing it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<R> {
    /// What to answer the caller.
    pub reply: R,
    /// What to publish and write.
    pub effects: Vec<Effect>,
}

/// A lease operation that is an error reply, not a normal answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BookError {
    /// No such lease (and the token does not prove one).
    #[error("unknown lease {0}")]
    NotFound(String),
    /// The token is not this lease's.
    #[error("the token does not match lease {0}")]
    Forbidden(String),
    /// The lease is still waiting in the queue.
    #[error("lease {0} is still queued; wait for its GRANTED event")]
    StillQueued(String),
}

impl BookError {
    /// The error reply code.
    pub fn code(&self) -> ErrorCode {
        match self {
            BookError::NotFound(_) => ErrorCode::NotFound,
            BookError::Forbidden(_) => ErrorCode::Forbidden,
            BookError::StillQueued(_) => ErrorCode::InvalidRequest,
        }
    }
}
