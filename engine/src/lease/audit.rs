//! The audit trail of the lease book: what happened ([`AuditKind`]) and
//! the record the shell writes to Postgres ([`AuditRecord`]), with the
//! constructors that fill a record from a request, an active lease or the
//! terms of a token.

use lull_proto::msg::lease::{DenyReason, HeavyLeaseRequest, LeaseInfo, Priority};
use serde::Serialize;

use super::policy::Denial;
use super::token::LeaseTerms;

/// Kind of an audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// A request arrived.
    Requested,
    /// A lease was granted (directly or from the queue).
    Granted,
    /// A request was denied (or gave up waiting in the queue).
    Denied,
    /// A request was parked in the queue.
    Queued,
    /// A queued request was withdrawn (cancel, release) or evicted.
    Cancelled,
    /// The holder released its lease.
    Released,
    /// A lease expired for want of heartbeats.
    Expired,
    /// An operator revoked a lease or a queued request.
    Revoked,
    /// A lease was re-asserted after a coordinator restart.
    Reclaimed,
    /// The holder reported progress.
    Reported,
}

impl AuditKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Requested => "requested",
            AuditKind::Granted => "granted",
            AuditKind::Denied => "denied",
            AuditKind::Queued => "queued",
            AuditKind::Cancelled => "cancelled",
            AuditKind::Released => "released",
            AuditKind::Expired => "expired",
            AuditKind::Revoked => "revoked",
            AuditKind::Reclaimed => "reclaimed",
            AuditKind::Reported => "reported",
        }
    }
}

/// One audit record, for the shell to write (in batches) to Postgres.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    /// Unix seconds.
    pub at: f64,
    /// What happened.
    pub kind: AuditKind,
    /// The lease, when one exists (a plain denial has none).
    pub lease_id: Option<String>,
    /// The addon.
    pub addon_id: String,
    /// The job type.
    pub job_type: String,
    /// The host, when known.
    pub host_id: Option<String>,
    /// Units.
    pub cost_units: u32,
    /// Priority.
    pub priority: Priority,
    /// Denial code (denials, queued requests, given-up waits).
    pub reason_code: Option<DenyReason>,
    /// Human reason, release outcome or revoke reason.
    pub reason: Option<String>,
    /// Extra data (progress reports).
    pub detail: Option<serde_json::Value>,
}

impl AuditRecord {
    /// A record of a request (`units` charged, `lease_id` when it has one,
    /// the denial `d` when it was denied or queued).
    pub fn of_request(
        kind: AuditKind,
        req: &HeavyLeaseRequest,
        units: u32,
        lease_id: Option<&str>,
        d: Option<&Denial>,
        now: f64,
    ) -> AuditRecord {
        AuditRecord {
            at: now,
            kind,
            lease_id: lease_id.map(str::to_string),
            addon_id: req.addon_id.clone(),
            job_type: req.job_type.clone(),
            host_id: req.host_id.clone(),
            cost_units: units,
            priority: req.priority,
            reason_code: d.map(|d| d.code),
            reason: d.map(|d| d.reason.clone()),
            detail: None,
        }
    }

    /// A record of an active (or just ended) lease.
    pub fn of_lease(
        kind: AuditKind,
        info: &LeaseInfo,
        reason: Option<String>,
        detail: Option<serde_json::Value>,
        now: f64,
    ) -> AuditRecord {
        AuditRecord {
            at: now,
            kind,
            lease_id: Some(info.lease_id.clone()),
            addon_id: info.addon_id.clone(),
            job_type: info.job_type.clone(),
            host_id: Some(info.host_id.clone()),
            cost_units: info.cost_units,
            priority: info.priority,
            reason_code: None,
            reason,
            detail,
        }
    }

    /// A record of a lease known only from its token's terms.
    pub fn of_terms(
        kind: AuditKind,
        terms: &LeaseTerms,
        reason: Option<String>,
        now: f64,
    ) -> AuditRecord {
        AuditRecord {
            at: now,
            kind,
            lease_id: Some(terms.lease_id.clone()),
            addon_id: terms.addon_id.clone(),
            job_type: terms.job_type.clone(),
            host_id: terms.host_id.clone(),
            cost_units: terms.cost_units,
            priority: terms.priority,
            reason_code: None,
            reason,
            detail: None,
        }
    }
}
