//! What acquiring or holding a lease can end in: a [`Denial`] and the
//! [`AcquireError`]s, [`LeaseError`] of the operator calls, how a lease
//! ended ([`LeaseEnd`]) and the progress of a wait ([`WaitProgress`]).

use std::time::Instant;

use crate::request::RequestError;
use lull_proto::error::ValidationError;
use lull_proto::msg::lease::{DenyReason, HeavyLeaseResponse, LeaseState};

/// A denial as the coordinator gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Denial {
    /// Human-readable reason with the numbers.
    pub reason: String,
    /// Machine-readable code.
    pub reason_code: Option<DenyReason>,
    /// When to ask again, seconds.
    pub retry_after_sec: Option<f64>,
}

impl Denial {
    /// The denial carried by a `lease.request` reply.
    pub fn from_response(r: &HeavyLeaseResponse) -> Denial {
        Denial {
            reason: r
                .reason
                .clone()
                .unwrap_or_else(|| "denied (no reason given)".to_string()),
            reason_code: r.reason_code,
            retry_after_sec: r.retry_after_sec,
        }
    }

    /// The reason code's wire name, or `denied`.
    pub fn code_str(&self) -> &'static str {
        self.reason_code.map(DenyReason::as_str).unwrap_or("denied")
    }
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.reason, self.code_str())?;
        if let Some(r) = self.retry_after_sec {
            write!(f, ", retry after {r:.1}s")?;
        }
        Ok(())
    }
}

/// Getting a lease failed.
#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    /// The request breaks a rule of the contract (checked before sending).
    #[error("invalid lease request: {0}")]
    Invalid(#[from] ValidationError),
    /// The coordinator said no.
    #[error("lease denied: {0}")]
    Denied(Denial),
    /// The request failed (no coordinator, error reply, bad reply).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// No grant before the deadline; `last` is the last denial seen.
    #[error("no lease within the deadline{}", .last.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    TimedOut {
        /// The last denial, if any.
        last: Option<Denial>,
    },
    /// The queued request was removed by the coordinator (an operator
    /// revoked it) before it was granted.
    #[error("queued lease request withdrawn: {reason}")]
    Withdrawn {
        /// Why.
        reason: String,
    },
    /// The caller cancelled the wait.
    #[error("lease wait cancelled")]
    Cancelled,
    /// The reply broke the contract (e.g. approved without a token).
    #[error("lease protocol error: {0}")]
    Protocol(String),
}

/// A lease operation (report, release) failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The body breaks a rule of the contract (checked before sending).
    #[error("invalid: {0}")]
    Invalid(#[from] ValidationError),
    /// The request failed.
    #[error(transparent)]
    Request(#[from] RequestError),
}

/// How a lease ended without its holder releasing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEnd {
    /// An operator or the coordinator revoked it: stop the work.
    Revoked {
        /// Why.
        reason: Option<String>,
    },
    /// It expired for want of heartbeats.
    Expired {
        /// Why.
        reason: Option<String>,
    },
    /// Someone else holding the token released it.
    Released {
        /// Why.
        reason: Option<String>,
    },
    /// The coordinator does not know the lease or refuses the token.
    Lost {
        /// Why.
        reason: String,
    },
}

impl LeaseEnd {
    /// The lease state this end corresponds to.
    pub fn state(&self) -> LeaseState {
        match self {
            LeaseEnd::Revoked { .. } | LeaseEnd::Lost { .. } => LeaseState::Revoked,
            LeaseEnd::Expired { .. } => LeaseState::Expired,
            LeaseEnd::Released { .. } => LeaseState::Released,
        }
    }

    /// The reason, if one was given.
    pub fn reason(&self) -> Option<&str> {
        match self {
            LeaseEnd::Revoked { reason }
            | LeaseEnd::Expired { reason }
            | LeaseEnd::Released { reason } => reason.as_deref(),
            LeaseEnd::Lost { reason } => Some(reason),
        }
    }
}

impl std::fmt::Display for LeaseEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self {
            LeaseEnd::Revoked { .. } => "revoked",
            LeaseEnd::Expired { .. } => "expired",
            LeaseEnd::Released { .. } => "released",
            LeaseEnd::Lost { .. } => "lost",
        };
        match self.reason() {
            Some(r) => write!(f, "{what}: {r}"),
            None => f.write_str(what),
        }
    }
}

/// Where a wait for a lease stands, given to the observer of
/// [`LeaseClient::acquire_wait_with`](super::LeaseClient::acquire_wait_with) at each change.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitProgress {
    /// The last denial (or the transport problem, as a reason without code).
    pub denial: Denial,
    /// Whether the request is parked in the coordinator's queue.
    pub queued: bool,
    /// When the next attempt is made (retry mode), if known.
    pub next_attempt: Option<Instant>,
    /// When the wait gives up.
    pub deadline: Instant,
    /// Attempts so far.
    pub attempts: u32,
}
