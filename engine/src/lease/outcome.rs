//! What a book method hands back: the reply with its [`Effect`]s
//! ([`Outcome`]), or a [`BookError`] that becomes an error reply.

use lull_proto::error::ErrorCode;
use lull_proto::msg::lease::LeaseEvent;
use thiserror::Error;

use super::audit::AuditRecord;
use super::queue::Waiter;

/// Something the shell must do after a book method returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Publish on `lull.lease.events.<lease_id>`.
    Publish(LeaseEvent),
    /// Write an audit record.
    Audit(AuditRecord),
    /// Record a change of the wait queue durably. Unlike events and audit
    /// records this may not be dropped: nothing that reports the change
    /// (the reply, the events, later answers) may leave before it is
    /// recorded, or a restart could forget a waiter or bring back one that
    /// left.
    Queue(QueueChange),
}

/// A change of the wait queue.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueChange {
    /// A request was parked.
    Parked(Box<Waiter>),
    /// A waiter left the queue (granted, cancelled, gave up, evicted,
    /// revoked, or found granted already): it must never come back.
    Left(String),
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
