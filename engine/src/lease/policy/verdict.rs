//! The policy's answer to one request on one host or the fleet: a
//! [`Grant`] or a [`Denial`] (with its code, reason and retry time), and
//! the helpers that build denials with a clamped retry.

use lull_proto::msg::hosts::QuietState;
use lull_proto::msg::lease::DenyReason;

use crate::lease::config::LeaseConfig;

/// A request may be granted.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// Where.
    pub host_id: String,
    /// Units charged.
    pub units: u32,
    /// Units in use on the host before this grant.
    pub used_units: u32,
    /// The capacity the request was checked against.
    pub capacity_units: u32,
    /// The state the request was judged in (see [`super::judge`]).
    pub judged_state: QuietState,
}

/// A request is denied.
#[derive(Debug, Clone, PartialEq)]
pub struct Denial {
    /// Machine-readable reason.
    pub code: DenyReason,
    /// Human-readable reason with the numbers.
    pub reason: String,
    /// When to ask again, seconds (clamped to the configured bounds).
    pub retry_after_sec: f64,
    /// The host the denial is about, when there is one.
    pub host_id: Option<String>,
}

/// The policy's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Grant it.
    Grant(Grant),
    /// Deny it.
    Deny(Denial),
}

impl Grant {
    /// The reason of a grant, e.g.
    /// `Granted 30 units on web-1 (used=30, capacity=70)`.
    pub fn reason(&self) -> String {
        format!(
            "Granted {} units on {} (used={}, capacity={})",
            self.units,
            self.host_id,
            self.used_units + self.units,
            self.capacity_units
        )
    }
}

impl Decision {
    /// Whether this is a grant.
    pub fn is_grant(&self) -> bool {
        matches!(self, Decision::Grant(_))
    }

    /// The denial code, if denied.
    pub fn code(&self) -> Option<DenyReason> {
        match self {
            Decision::Grant(_) => None,
            Decision::Deny(d) => Some(d.code),
        }
    }
}

/// A denial with its retry clamped to the configured bounds.
pub(super) fn deny(
    code: DenyReason,
    reason: String,
    retry: f64,
    host: Option<&str>,
    cfg: &LeaseConfig,
) -> Decision {
    Decision::Deny(Denial {
        code,
        reason,
        retry_after_sec: cfg.clamp_retry(retry),
        host_id: host.map(str::to_string),
    })
}

/// Seconds from `now` until `t`, when that is in the future.
pub(super) fn until(t: Option<f64>, now: f64) -> Option<f64> {
    t.map(|t| t - now).filter(|d| *d > 0.0)
}
