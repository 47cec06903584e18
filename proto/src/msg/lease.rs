//! Heavy-work lease messages (seed 002 §3; docs/protocol.md §3 leases).

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::msg::hosts::QuietState;
use crate::validate::{self as v, Validate};

/// Request priority.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Priority {
    /// Background work that can wait.
    Low,
    /// The default.
    #[default]
    Normal,
    /// May run on a host that is not QUIET (but never on PANIC).
    High,
}

impl Priority {
    /// The wire name (`LOW`, `NORMAL`, `HIGH`).
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "LOW",
            Priority::Normal => "NORMAL",
            Priority::High => "HIGH",
        }
    }
}

/// Legacy cost classes, mapped to units when `cost_units` is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CostClass {
    /// Light job.
    Low,
    /// Ordinary job.
    Normal,
    /// Heavy job.
    High,
}

/// Which resources a job stresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraints {
    /// Mostly CPU.
    #[serde(default)]
    pub cpu_heavy: bool,
    /// Mostly disk writes.
    #[serde(default)]
    pub disk_write_heavy: bool,
    /// Mostly network.
    #[serde(default)]
    pub network_heavy: bool,
}

/// `lull.v1.lease.request` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeavyLeaseRequest {
    /// Who asks.
    pub addon_id: String,
    /// What kind of job (free text, for audit).
    pub job_type: String,
    /// Target host; omit to let the coordinator place the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    /// Cost in units, 1..100 (canonical).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt"
    )]
    pub cost_units: Option<i64>,
    /// Legacy cost class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_class: Option<CostClass>,
    /// Expected duration, seconds (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_duration_sec: Option<f64>,
    /// Priority (default NORMAL).
    #[serde(default)]
    pub priority: Priority,
    /// Resource constraints.
    #[serde(default)]
    pub constraints: Constraints,
    /// Park the request in the queue when it cannot be granted now.
    #[serde(default)]
    pub wait: bool,
    /// How long a parked request may wait, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_timeout_sec: Option<f64>,
}

/// Highest cost of one lease.
pub const MAX_COST_UNITS: i64 = 100;

impl Validate for HeavyLeaseRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        v::subject_token("addon_id", &self.addon_id)?;
        v::id("job_type", &self.job_type)?;
        if let Some(h) = &self.host_id {
            v::subject_token("host_id", h)?;
        }
        match (self.cost_units, self.cost_class) {
            (Some(u), _) => v::int_range("cost_units", u, 1, MAX_COST_UNITS)?,
            (None, Some(_)) => {}
            (None, None) => {
                return Err(ValidationError::Missing {
                    field: "cost_units (or cost_class)".into(),
                })
            }
        }
        v::range_opt(
            "expected_duration_sec",
            self.expected_duration_sec,
            0.0,
            30.0 * 86_400.0,
        )?;
        v::range_opt("wait_timeout_sec", self.wait_timeout_sec, 0.0, 86_400.0)?;
        Ok(())
    }
}

/// Why a lease was denied (a denial is a normal reply, not an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyReason {
    /// The host is in PANIC.
    Panic,
    /// The host left PANIC recently and is cooling down.
    PanicCooldown,
    /// The host is not QUIET and the priority is not HIGH.
    NotQuiet,
    /// The host has no room for the cost.
    CapacityExceeded,
    /// The fleet-wide concurrency cap is reached.
    GlobalLimit,
    /// The addon's concurrency cap is reached.
    AddonLimit,
    /// The addon asks too often.
    RateLimited,
    /// The host never reported.
    UnknownHost,
    /// The host stopped reporting.
    StaleHost,
    /// The coordinator just started and waits for holders to re-assert.
    GracePeriod,
    /// An operator blocked the host or the fleet.
    Blocked,
}

impl DenyReason {
    /// All reason codes.
    pub const ALL: [DenyReason; 11] = [
        DenyReason::Panic,
        DenyReason::PanicCooldown,
        DenyReason::NotQuiet,
        DenyReason::CapacityExceeded,
        DenyReason::GlobalLimit,
        DenyReason::AddonLimit,
        DenyReason::RateLimited,
        DenyReason::UnknownHost,
        DenyReason::StaleHost,
        DenyReason::GracePeriod,
        DenyReason::Blocked,
    ];

    /// The wire name, also a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::Panic => "panic",
            DenyReason::PanicCooldown => "panic_cooldown",
            DenyReason::NotQuiet => "not_quiet",
            DenyReason::CapacityExceeded => "capacity_exceeded",
            DenyReason::GlobalLimit => "global_limit",
            DenyReason::AddonLimit => "addon_limit",
            DenyReason::RateLimited => "rate_limited",
            DenyReason::UnknownHost => "unknown_host",
            DenyReason::StaleHost => "stale_host",
            DenyReason::GracePeriod => "grace_period",
            DenyReason::Blocked => "blocked",
        }
    }
}

/// Heartbeat guidance returned with a grant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LeaseLimits {
    /// A lease without a heartbeat for this long expires.
    pub heartbeat_ttl_sec: f64,
    /// How often the holder should heartbeat.
    pub heartbeat_interval_sec: f64,
}

/// `lull.v1.lease.request` reply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HeavyLeaseResponse {
    /// Whether the lease was granted.
    pub approved: bool,
    /// Public lease handle.
    #[serde(default)]
    pub lease_id: Option<String>,
    /// Secret lease handle: only its holder can heartbeat, report or release.
    #[serde(default)]
    pub token: Option<String>,
    /// The host the lease is on.
    #[serde(default)]
    pub host_id: Option<String>,
    /// Unix seconds when the lease expires without a heartbeat.
    #[serde(default)]
    pub expires_at: Option<f64>,
    /// Heartbeat guidance.
    #[serde(default)]
    pub limits: Option<LeaseLimits>,
    /// Human-readable reason with the numbers.
    #[serde(default)]
    pub reason: Option<String>,
    /// Machine-readable denial code.
    #[serde(default)]
    pub reason_code: Option<DenyReason>,
    /// When to ask again, seconds.
    #[serde(default)]
    pub retry_after_sec: Option<f64>,
    /// The request was parked in the queue; the grant will come as a
    /// `GRANTED` event on `lull.lease.events.<lease_id>`.
    #[serde(default)]
    pub queued: bool,
}

/// Lease lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LeaseState {
    /// Held.
    Active,
    /// No heartbeat within the TTL.
    Expired,
    /// Released by its holder.
    Released,
    /// Revoked by an operator or the coordinator.
    Revoked,
}

impl LeaseState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Active => "ACTIVE",
            LeaseState::Expired => "EXPIRED",
            LeaseState::Released => "RELEASED",
            LeaseState::Revoked => "REVOKED",
        }
    }
}

/// `{lease_id, token}`: a holder's proof, used by heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseHandle {
    /// Public id.
    pub lease_id: String,
    /// Secret token.
    pub token: String,
}

/// Longest accepted lease token (a token carries the lease's terms, so it is
/// longer than an id).
pub const MAX_TOKEN_LEN: usize = 1024;

fn validate_handle(lease_id: &str, token: &str) -> Result<(), ValidationError> {
    v::subject_token("lease_id", lease_id)?;
    if token.trim().is_empty() {
        return Err(ValidationError::Missing {
            field: "token".to_string(),
        });
    }
    v::text("token", token, MAX_TOKEN_LEN)
}

impl Validate for LeaseHandle {
    fn validate(&self) -> Result<(), ValidationError> {
        validate_handle(&self.lease_id, &self.token)
    }
}

/// `lull.v1.lease.heartbeat` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// The lease is still held.
    pub ok: bool,
    /// Its state.
    pub state: LeaseState,
    /// New expiry, Unix seconds.
    #[serde(default)]
    pub expires_at: Option<f64>,
    /// Why not ok.
    #[serde(default)]
    pub reason: Option<String>,
    /// A replacement token: when present, the holder must use it from now
    /// on (sent once to a waiter granted from the queue, whose queue ticket
    /// cannot re-assert the lease after a coordinator restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// `lull.v1.lease.release` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRequest {
    /// Public id.
    pub lease_id: String,
    /// Secret token.
    pub token: String,
    /// How the job ended (`success`, `failure`, `exit_3`, ...).
    #[serde(default)]
    pub outcome: Option<String>,
}

impl Validate for ReleaseRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        validate_handle(&self.lease_id, &self.token)?;
        v::text_opt("outcome", self.outcome.as_deref(), v::MAX_ID_LEN)
    }
}

/// `lull.v1.lease.report` body: progress and accounting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressReport {
    /// Public id.
    pub lease_id: String,
    /// Secret token.
    pub token: String,
    /// Progress, percent.
    #[serde(default)]
    pub progress_pct: Option<f64>,
    /// Free text.
    #[serde(default)]
    pub message: Option<String>,
    /// Job metrics.
    #[serde(default)]
    pub metrics: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Validate for ProgressReport {
    fn validate(&self) -> Result<(), ValidationError> {
        validate_handle(&self.lease_id, &self.token)?;
        v::range_opt("progress_pct", self.progress_pct, 0.0, 100.0)?;
        v::text_opt("message", self.message.as_deref(), v::MAX_TEXT_LEN)?;
        if let Some(m) = &self.metrics {
            v::max_items("metrics", m.len(), 64)?;
        }
        Ok(())
    }
}

/// `lull.v1.lease.revoke` body (operators).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeRequest {
    /// Public id.
    pub lease_id: String,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
}

impl Validate for RevokeRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        v::subject_token("lease_id", &self.lease_id)?;
        v::text_opt("reason", self.reason.as_deref(), v::MAX_TEXT_LEN)
    }
}

/// `lull.v1.lease.cancel` body: withdraw a queued request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRequest {
    /// Public id returned with `queued: true`.
    pub lease_id: String,
    /// Secret token returned with it.
    pub token: String,
}

impl Validate for CancelRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        validate_handle(&self.lease_id, &self.token)
    }
}

/// `{ok}` reply of release, report, revoke and cancel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OkResponse {
    /// Whether the operation took effect.
    pub ok: bool,
    /// Why not, or the lease state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Kind of a lease event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LeaseEventKind {
    /// Granted (also pushed to a queued waiter).
    Granted,
    /// Revoked: the holder must stop.
    Revoked,
    /// Expired for want of heartbeats.
    Expired,
    /// Released by its holder.
    Released,
}

/// Published on `lull.lease.events.<lease_id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseEvent {
    /// Lease id.
    pub lease_id: String,
    /// What happened.
    pub event: LeaseEventKind,
    /// Unix seconds.
    pub at: f64,
    /// Host of the lease.
    #[serde(default)]
    pub host_id: Option<String>,
    /// Addon of the lease.
    #[serde(default)]
    pub addon_id: Option<String>,
    /// Why (revokes, expiries).
    #[serde(default)]
    pub reason: Option<String>,
    /// Expiry (grants).
    #[serde(default)]
    pub expires_at: Option<f64>,
    /// Heartbeat guidance (grants).
    #[serde(default)]
    pub limits: Option<LeaseLimits>,
    /// The leadership epoch (fencing term) of the coordinator that
    /// decided; absent from coordinators before leader election.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt"
    )]
    pub epoch: Option<u64>,
}

/// One lease as shown by `scheduler.status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// Public id.
    pub lease_id: String,
    /// Holder addon.
    pub addon_id: String,
    /// Job type.
    pub job_type: String,
    /// Host.
    pub host_id: String,
    /// Cost.
    pub cost_units: u32,
    /// Priority.
    pub priority: Priority,
    /// State.
    pub state: LeaseState,
    /// Unix seconds.
    pub granted_at: f64,
    /// Unix seconds.
    pub last_heartbeat_at: f64,
    /// Unix seconds.
    pub expires_at: f64,
    /// Unix seconds when it ended.
    #[serde(default)]
    pub ended_at: Option<f64>,
    /// Last progress report.
    #[serde(default)]
    pub progress_pct: Option<f64>,
    /// Release outcome or revoke reason.
    #[serde(default)]
    pub outcome: Option<String>,
}

/// Host row of `scheduler.status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostCapacity {
    /// Host.
    pub host_id: String,
    /// Quiet state.
    pub state: QuietState,
    /// Quiet score.
    pub quiet_score: f64,
    /// Capacity, units.
    pub capacity_units: u32,
    /// Used, units.
    pub used_units: u32,
}

/// Addon row of `scheduler.status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddonDecisions {
    /// Addon.
    pub addon_id: String,
    /// Grants so far.
    pub granted: u64,
    /// Denials so far.
    pub denied: u64,
    /// Last denial reason.
    #[serde(default)]
    pub last_reason: Option<String>,
    /// Unix seconds until which it should not ask again.
    #[serde(default)]
    pub cooldown_until: Option<f64>,
}

/// Leases block of `scheduler.status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LeaseLists {
    /// Active leases.
    pub active: Vec<LeaseInfo>,
    /// Recently ended leases, newest first.
    pub recent: Vec<LeaseInfo>,
}

/// `lull.v1.scheduler.status` reply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedulerStatus {
    /// Active and recent leases.
    pub leases: LeaseLists,
    /// Hosts with capacity.
    pub hosts: Vec<HostCapacity>,
    /// Per-addon decisions.
    pub addons: Vec<AddonDecisions>,
    /// Requests parked in the queue.
    #[serde(default)]
    pub queue_length: u64,
    /// Unix seconds until which new grants are refused after a restart.
    #[serde(default)]
    pub grace_until: Option<f64>,
    /// Set when `hosts` or `leases.active` has more: pass it as `cursor`
    /// for the next page (whose `recent`, `addons`, `queue_length` and
    /// `grace_until` repeat the first page's, freshly read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::decode;

    #[test]
    fn request_rules() {
        let ok = r#"{"addon_id":"indexer","job_type":"reindex","cost_units":30}"#;
        let r: HeavyLeaseRequest = decode(ok.as_bytes(), 1 << 16).unwrap();
        assert_eq!(r.priority, Priority::Normal);
        assert!(!r.wait);

        let zero = r#"{"addon_id":"a","job_type":"j","cost_units":0}"#;
        assert_eq!(
            decode::<HeavyLeaseRequest>(zero.as_bytes(), 1 << 16)
                .unwrap_err()
                .to_string(),
            "cost_units must be 1..100, got 0"
        );
        let neither = r#"{"addon_id":"a","job_type":"j"}"#;
        assert!(decode::<HeavyLeaseRequest>(neither.as_bytes(), 1 << 16).is_err());
        let class = r#"{"addon_id":"a","job_type":"j","cost_class":"HIGH","priority":"HIGH"}"#;
        let r: HeavyLeaseRequest = decode(class.as_bytes(), 1 << 16).unwrap();
        assert_eq!(r.cost_class, Some(CostClass::High));
        let lower = r#"{"addon_id":"a","job_type":"j","cost_units":1,"priority":"high"}"#;
        assert!(decode::<HeavyLeaseRequest>(lower.as_bytes(), 1 << 16).is_err());
        let typed = r#"{"addon_id":"a","job_type":"j","cost_units":"ten"}"#;
        assert!(decode::<HeavyLeaseRequest>(typed.as_bytes(), 1 << 16).is_err());
        let inf = r#"{"addon_id":"a","job_type":"j","cost_units":5,"expected_duration_sec":1e999}"#;
        assert!(decode::<HeavyLeaseRequest>(inf.as_bytes(), 1 << 16).is_err());
    }

    #[test]
    fn reason_codes_have_protocol_names() {
        for r in DenyReason::ALL {
            let s = serde_json::to_string(&r).unwrap();
            assert_eq!(s, format!("\"{}\"", r.as_str()));
        }
    }

    #[test]
    fn handles_are_validated() {
        assert!(decode::<LeaseHandle>(br#"{"lease_id":"L1","token":""}"#, 1024).is_err());
        assert!(decode::<LeaseHandle>(br#"{"lease_id":"L1","token":"t"}"#, 1024).is_ok());
        let long = format!(
            r#"{{"lease_id":"L1","token":"{}"}}"#,
            "t".repeat(MAX_TOKEN_LEN)
        );
        assert!(decode::<LeaseHandle>(long.as_bytes(), 4096).is_ok());
        let too_long = format!(
            r#"{{"lease_id":"L1","token":"{}"}}"#,
            "t".repeat(MAX_TOKEN_LEN + 1)
        );
        assert!(decode::<LeaseHandle>(too_long.as_bytes(), 4096).is_err());
        let bad = r#"{"lease_id":"L1","token":"t","progress_pct":120}"#;
        assert!(decode::<ProgressReport>(bad.as_bytes(), 1024).is_err());
    }

    #[test]
    fn response_round_trip() {
        let r = HeavyLeaseResponse {
            approved: false,
            reason: Some("Capacity exceeded: used=60, requested=30, capacity=70".into()),
            reason_code: Some(DenyReason::CapacityExceeded),
            retry_after_sec: Some(12.0),
            ..Default::default()
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["reason_code"], "capacity_exceeded");
        let back: HeavyLeaseResponse = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }
}
