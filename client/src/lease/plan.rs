//! Pure decisions of the lease client: no NATS, no clock (times are
//! passed in), no randomness (jitter is passed in as a number in `[0, 1)`).

use super::config::LeaseClientConfig;
use super::errors::{Denial, LeaseEnd};
use lull_proto::error::ErrorCode;
use lull_proto::msg::lease::{
    HeartbeatResponse, LeaseEvent, LeaseEventKind, LeaseLimits, LeaseState,
};

/// Seconds to wait before asking again after a denial carrying
/// `retry_after_sec`: the server's hint (or the default), clamped to
/// `[min_retry_sec, max_retry_sec]`, plus up to `retry_jitter` of it
/// (`jitter` in `[0, 1)`), and never past the time left.
pub fn retry_delay(
    retry_after_sec: Option<f64>,
    remaining_sec: f64,
    cfg: &LeaseClientConfig,
    jitter: f64,
) -> f64 {
    let base = retry_after_sec
        .filter(|r| r.is_finite())
        .unwrap_or(cfg.default_retry_sec)
        .max(cfg.min_retry_sec)
        .min(cfg.max_retry_sec);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let d = base * (1.0 + cfg.retry_jitter.max(0.0) * jitter);
    d.min(remaining_sec.max(0.0))
}

/// The heartbeat interval for a grant: the coordinator's guidance,
/// bounded below by `min_heartbeat_interval_sec` and above by half the
/// TTL (so one lost heartbeat never expires the lease); the default
/// when the grant carries no limits.
pub fn heartbeat_interval(limits: Option<&LeaseLimits>, cfg: &LeaseClientConfig) -> f64 {
    let Some(l) = limits else {
        return cfg
            .default_heartbeat_interval_sec
            .max(cfg.min_heartbeat_interval_sec);
    };
    let mut i = if l.heartbeat_interval_sec.is_finite() && l.heartbeat_interval_sec > 0.0 {
        l.heartbeat_interval_sec
    } else {
        cfg.default_heartbeat_interval_sec
    };
    if l.heartbeat_ttl_sec.is_finite() && l.heartbeat_ttl_sec > 0.0 {
        i = i.min(l.heartbeat_ttl_sec / 2.0);
    }
    i.max(cfg.min_heartbeat_interval_sec)
}

/// Delay before the next heartbeat after one that got no answer.
pub fn heartbeat_retry(interval: f64, cfg: &LeaseClientConfig) -> f64 {
    interval
        .min(cfg.heartbeat_retry_sec)
        .max(cfg.min_heartbeat_interval_sec)
}

/// What a heartbeat reply means.
#[derive(Debug, Clone, PartialEq)]
pub enum Beat {
    /// Still held; maybe with a new expiry and a replacement token.
    Alive {
        /// New expiry.
        expires_at: Option<f64>,
        /// Token to use from now on.
        new_token: Option<String>,
    },
    /// The lease is over.
    Ended(LeaseEnd),
    /// No verdict (transport problem, coordinator unavailable): try again.
    Retry(String),
}

/// Interprets a heartbeat reply.
pub fn on_heartbeat(r: &HeartbeatResponse) -> Beat {
    if r.ok {
        return Beat::Alive {
            expires_at: r.expires_at,
            new_token: r.token.clone().filter(|t| !t.is_empty()),
        };
    }
    let reason = r.reason.clone();
    Beat::Ended(match r.state {
        LeaseState::Expired => LeaseEnd::Expired { reason },
        LeaseState::Released => LeaseEnd::Released { reason },
        LeaseState::Revoked => LeaseEnd::Revoked { reason },
        LeaseState::Active => LeaseEnd::Lost {
            reason: reason.unwrap_or_else(|| "heartbeat refused".to_string()),
        },
    })
}

/// Interprets a heartbeat error reply of `code` (`None` for a transport
/// or decoding failure): an unknown lease or a refused token is the
/// end; anything else is retried.
pub fn on_heartbeat_error(code: Option<ErrorCode>, message: &str) -> Beat {
    match code {
        Some(ErrorCode::NotFound) | Some(ErrorCode::Forbidden) => Beat::Ended(LeaseEnd::Lost {
            reason: message.to_string(),
        }),
        _ => Beat::Retry(message.to_string()),
    }
}

/// What an event on the lease's subject means to a holder: the end of
/// the lease, or nothing (`GRANTED`, another lease's event).
pub fn on_event(lease_id: &str, e: &LeaseEvent) -> Option<LeaseEnd> {
    if e.lease_id != lease_id {
        return None;
    }
    let reason = e.reason.clone();
    match e.event {
        LeaseEventKind::Granted => None,
        LeaseEventKind::Revoked => Some(LeaseEnd::Revoked { reason }),
        LeaseEventKind::Expired => Some(LeaseEnd::Expired { reason }),
        LeaseEventKind::Released => Some(LeaseEnd::Released { reason }),
    }
}

/// What to do while queued.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueStep {
    /// Granted: build the guard.
    Granted,
    /// Still waiting.
    Waiting,
    /// Removed by an operator: give up.
    Withdrawn(String),
    /// Given up by the coordinator (its deadline, evicted): ask again if
    /// time is left.
    GivenUp(String),
}

/// Interprets an event on a queued request's subject.
pub fn queue_event(lease_id: &str, e: &LeaseEvent) -> QueueStep {
    if e.lease_id != lease_id {
        return QueueStep::Waiting;
    }
    let why = |d: &str| e.reason.clone().unwrap_or_else(|| d.to_string());
    match e.event {
        LeaseEventKind::Granted => QueueStep::Granted,
        LeaseEventKind::Revoked => QueueStep::Withdrawn(why("revoked")),
        LeaseEventKind::Expired => QueueStep::GivenUp(why("the wait expired")),
        LeaseEventKind::Released => QueueStep::Withdrawn(why("released")),
    }
}

/// Interprets a heartbeat probe of a queue ticket: an error reply of
/// `invalid_request` means still queued.
pub fn queue_probe(r: Result<&HeartbeatResponse, (Option<ErrorCode>, &str)>) -> QueueStep {
    match r {
        Ok(h) if h.ok => QueueStep::Granted,
        Ok(h) => {
            let why = h
                .reason
                .clone()
                .unwrap_or_else(|| h.state.as_str().to_string());
            // Revoked by an operator: give up. Expired (deadline,
            // eviction) or unknown after a coordinator restart: ask again.
            match h.state {
                LeaseState::Revoked => QueueStep::Withdrawn(why),
                _ => QueueStep::GivenUp(why),
            }
        }
        Err((Some(ErrorCode::NotFound), m)) | Err((Some(ErrorCode::Forbidden), m)) => {
            QueueStep::Withdrawn(m.to_string())
        }
        Err(_) => QueueStep::Waiting,
    }
}

/// A denial-shaped description of a transport problem, for the wait
/// observer.
pub fn transport_denial(message: &str) -> Denial {
    Denial {
        reason: format!("coordinator unreachable: {message}"),
        reason_code: None,
        retry_after_sec: None,
    }
}
