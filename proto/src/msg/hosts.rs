//! Quiet state and the host queries (seed 002 §1.2; docs/protocol.md §3 hosts).

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::msg::stats::SystemStatsSnapshot;
use crate::msg::telemetry::{LoopFailure, LoopHealth};
use crate::validate::{self as v, Validate};

/// How quiet a host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum QuietState {
    /// Idle enough for heavy work.
    Quiet,
    /// Ordinary load.
    Normal,
    /// Loaded: only HIGH priority work.
    Busy,
    /// Overloaded or out of a resource: no heavy work at all.
    Panic,
}

impl QuietState {
    /// All states, quietest first.
    pub const ALL: [QuietState; 4] = [
        QuietState::Quiet,
        QuietState::Normal,
        QuietState::Busy,
        QuietState::Panic,
    ];

    /// The wire name (`QUIET`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            QuietState::Quiet => "QUIET",
            QuietState::Normal => "NORMAL",
            QuietState::Busy => "BUSY",
            QuietState::Panic => "PANIC",
        }
    }
}

impl std::fmt::Display for QuietState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The figures the quiet score was computed from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QuietInputs {
    /// CPU percent averaged over the last two minutes of snapshots.
    pub cpu_avg_2m: f64,
    /// Memory used percent.
    pub mem_pct: f64,
    /// Swap used percent.
    pub swap_pct: f64,
    /// 1-minute load average divided by the core count.
    pub load_per_core: f64,
    /// Free percent of the fullest disk.
    pub disk_free_pct: Option<f64>,
    /// IO pressure (PSI `io some avg10`), when the host reports PSI.
    pub io_pressure: Option<f64>,
    /// Requests per second of the host's API, when reported.
    pub rps: Option<f64>,
    /// API error rate (0..1), when reported.
    pub error_rate: Option<f64>,
    /// API p95 latency in ms, when reported.
    pub p95_ms: Option<f64>,
    /// CPU pressure (PSI `cpu some avg10`), when the host reports PSI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_pressure: Option<f64>,
    /// Memory pressure (PSI `memory some avg10`), when the host reports PSI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_pressure: Option<f64>,
    /// Full memory stall (PSI `memory full avg10`), when the host reports PSI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_full_pressure: Option<f64>,
}

/// A host's quiet score, state and the reasons for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuietAssessment {
    /// 0 (overloaded) to 100 (idle).
    pub quiet_score: f64,
    /// The state after hysteresis and cool-down.
    pub state: QuietState,
    /// Human-readable reasons with the numbers.
    pub reasons: Vec<String>,
    /// The inputs of the score.
    pub inputs: QuietInputs,
}

/// One row of `lull.v1.hosts.list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSummary {
    /// Host id.
    pub host_id: String,
    /// Quiet state.
    pub state: QuietState,
    /// Quiet score.
    pub quiet_score: f64,
    /// Unix seconds of the last snapshot.
    pub last_seen: f64,
    /// No snapshot for 3 intervals.
    pub stale: bool,
    /// Blocked by an operator (host or fleet block).
    #[serde(default)]
    pub blocked: bool,
    /// The block in force, when blocked: scope, reason, end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<BlockInfo>,
}

/// A sender whose stats snapshots were rejected lately (one row per host
/// named in the subject), in `lull.v1.hosts.rejected`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedSender {
    /// The host its subject names (`?` for a subject that names none).
    pub host_id: String,
    /// The subject of the last rejected snapshot.
    pub subject: String,
    /// The last rejection's result (`invalid`, `bad_json`, `too_large`,
    /// `host_mismatch`, `bad_subject`, `host_limit`).
    pub result: String,
    /// Why, in words.
    pub reason: String,
    /// Snapshots rejected since it was first seen rejected.
    pub count: u64,
    /// Unix seconds of the last rejection.
    pub last_at: f64,
}

/// Reply of `lull.v1.hosts.rejected` (request `{}`): the senders rejected
/// in the last `window_sec`, most recent first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RejectedSenders {
    /// How far back the list looks, seconds.
    pub window_sec: f64,
    /// The senders.
    pub senders: Vec<RejectedSender>,
}

/// Request of `lull.v1.hosts.get`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostGetRequest {
    /// Host id.
    pub host_id: String,
}

impl Validate for HostGetRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        v::subject_token("host_id", &self.host_id)
    }
}

/// The agent's own latest telemetry, as kept by the coordinator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// Latest `loop.health`.
    pub health: Option<LoopHealth>,
    /// Latest `loop.failure`.
    pub failure: Option<LoopFailure>,
    /// Unix seconds when the latest health arrived.
    #[serde(default)]
    pub health_at: Option<f64>,
    /// Unix seconds when the latest failure arrived.
    #[serde(default)]
    pub failure_at: Option<f64>,
}

/// Reply of `lull.v1.hosts.get`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostDetail {
    /// Latest snapshot.
    pub snapshot: SystemStatsSnapshot,
    /// Latest assessment.
    pub quiet: QuietAssessment,
    /// Agent loop telemetry.
    pub agent: AgentStatus,
    /// Unix seconds of the last snapshot.
    pub last_seen: f64,
    /// No snapshot for 3 intervals.
    pub stale: bool,
    /// The operator block in force on this host (its own, else the fleet's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<BlockInfo>,
}

/// Whom an operator block covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum BlockScope {
    /// One host.
    Host,
    /// Every host of the fleet.
    Fleet,
}

/// Request of `lull.v1.hosts.block`: stop heavy work on one host
/// (`host_id`) or on the whole fleet (`all: true`), optionally until a time
/// (a maintenance window). Blocking again replaces the earlier block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlockRequest {
    /// The host to block; absent with `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    /// Block the whole fleet.
    #[serde(default)]
    pub all: bool,
    /// Why (shown in `hosts.list`, lease denials and `lullctl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix seconds when the block lifts by itself; absent = until unblocked.
    /// With `recurrence`: when the schedule ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<f64>,
    /// Unix seconds when the block starts; absent = now. A request with
    /// `from` or `recurrence` adds a maintenance window (with an id of its
    /// own) instead of setting the target's block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<f64>,
    /// A recurring maintenance window: when it opens and for how long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<Recurrence>,
    /// Drain: also end the leases running on the target (a block in force
    /// now, not a window). They get `drain_timeout_sec` to end by
    /// themselves; those still running then are revoked with the reason.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drain: bool,
    /// With `drain`: seconds the running leases get to finish before they
    /// are revoked, 0..=3600. Default 0 (revoked at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_timeout_sec: Option<f64>,
}

/// Most seconds a drain waits for leases to end by themselves.
pub const MAX_DRAIN_TIMEOUT_SEC: f64 = 3600.0;

impl BlockRequest {
    /// Whether this request adds a maintenance window (a future start or a
    /// recurrence) rather than setting the block in force now.
    pub fn is_window(&self) -> bool {
        self.from.is_some() || self.recurrence.is_some()
    }
}

/// A day of the week, as written on the wire (`"mon"` to `"sun"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Weekday {
    /// Monday first.
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// 0 for Monday to 6 for Sunday.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The wire name (`"mon"`).
    pub fn as_str(self) -> &'static str {
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][self.index()]
    }
}

/// Longest opening of a recurring window: a week.
pub const MAX_WINDOW_SEC: f64 = 7.0 * 86_400.0;

/// A recurring maintenance window: it opens on each of `days` (every day
/// when empty) at the local time `at` in the time zone `tz`, and stays
/// open for `duration_sec` of elapsed time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recurrence {
    /// Days of the week it opens on; empty = every day.
    #[serde(default)]
    pub days: Vec<Weekday>,
    /// Local opening time, `"HH:MM"` (24-hour clock).
    pub at: String,
    /// How long each opening lasts, seconds (0 < d <= a week).
    pub duration_sec: f64,
    /// IANA time zone name (`"Europe/Berlin"`); default `"UTC"`.
    #[serde(default = "utc")]
    pub tz: String,
}

fn utc() -> String {
    "UTC".to_string()
}

impl Recurrence {
    /// The opening time as `(hour, minute)`, if `at` is a valid `"HH:MM"`.
    pub fn hour_minute(&self) -> Option<(u8, u8)> {
        let (h, m) = self.at.trim().split_once(':')?;
        if h.is_empty() || h.len() > 2 || m.len() != 2 {
            return None;
        }
        let (h, m) = (h.parse::<u8>().ok()?, m.parse::<u8>().ok()?);
        (h < 24 && m < 60).then_some((h, m))
    }
}

impl Validate for Recurrence {
    fn validate(&self) -> Result<(), ValidationError> {
        if self.hour_minute().is_none() {
            return Err(ValidationError::Invalid {
                field: "recurrence.at".into(),
                reason: format!("must be a local time \"HH:MM\", got {:?}", self.at),
            });
        }
        v::finite("recurrence.duration_sec", self.duration_sec)?;
        if !(self.duration_sec > 0.0 && self.duration_sec <= MAX_WINDOW_SEC) {
            return Err(ValidationError::Invalid {
                field: "recurrence.duration_sec".into(),
                reason: format!(
                    "must be over 0 and at most a week, got {}",
                    self.duration_sec
                ),
            });
        }
        if self.tz.trim().is_empty() {
            return Err(ValidationError::Missing {
                field: "recurrence.tz".into(),
            });
        }
        v::text("recurrence.tz", &self.tz, 64)
    }
}

/// Exactly one of `host_id` and `all`.
fn one_target(host_id: Option<&str>, all: bool) -> Result<(), ValidationError> {
    match (host_id, all) {
        (Some(h), false) => v::subject_token("host_id", h),
        (None, true) => Ok(()),
        (Some(_), true) => Err(ValidationError::Invalid {
            field: "all".into(),
            reason: "give either host_id or all, not both".into(),
        }),
        (None, false) => Err(ValidationError::Missing {
            field: "host_id (or all: true)".into(),
        }),
    }
}

impl Validate for BlockRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        one_target(self.host_id.as_deref(), self.all)?;
        v::text_opt("reason", self.reason.as_deref(), v::MAX_TEXT_LEN)?;
        if let Some(u) = self.until {
            v::non_negative("until", u)?;
        }
        if let Some(f) = self.from {
            v::non_negative("from", f)?;
            if self.until.is_some_and(|u| u <= f) {
                return Err(ValidationError::Invalid {
                    field: "until".into(),
                    reason: "must be after from".into(),
                });
            }
        }
        if let Some(r) = &self.recurrence {
            r.validate()?;
        }
        if self.drain && self.is_window() {
            return Err(ValidationError::Invalid {
                field: "drain".into(),
                reason: "drains a block in force now; a maintenance window (from, recurrence) cannot drain".into(),
            });
        }
        if let Some(t) = self.drain_timeout_sec {
            if !self.drain {
                return Err(ValidationError::Invalid {
                    field: "drain_timeout_sec".into(),
                    reason: "needs drain: true".into(),
                });
            }
            v::range_opt("drain_timeout_sec", Some(t), 0.0, MAX_DRAIN_TIMEOUT_SEC)?;
        }
        Ok(())
    }
}

/// Request of `lull.v1.hosts.unblock`: lift the block of one host or the
/// fleet-wide block. Lifting a block that does not exist is not an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnblockRequest {
    /// The host to unblock; absent with `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    /// Lift the fleet-wide block.
    #[serde(default)]
    pub all: bool,
    /// Remove the maintenance window with this id (instead of a target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_id: Option<i64>,
    /// With a target: also remove every maintenance window of that target.
    #[serde(default)]
    pub windows: bool,
}

impl Validate for UnblockRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        match self.window_id {
            Some(_) if self.host_id.is_some() || self.all || self.windows => {
                Err(ValidationError::Invalid {
                    field: "window_id".into(),
                    reason: "give either window_id or a target, not both".into(),
                })
            }
            Some(id) => v::count("window_id", id),
            None => one_target(self.host_id.as_deref(), self.all),
        }
    }
}

/// One active operator block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockInfo {
    /// `HOST` or `FLEET`.
    pub scope: BlockScope,
    /// The blocked host (absent for the fleet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    /// Why, when the operator said.
    #[serde(default)]
    pub reason: Option<String>,
    /// Unix seconds when it lifts by itself, if ever.
    #[serde(default)]
    pub until: Option<f64>,
    /// Unix seconds when it was set (for a maintenance window: when the
    /// opening in force began).
    pub blocked_at: f64,
    /// The maintenance window this block comes from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_id: Option<i64>,
}

/// One scheduled maintenance window (open now or not).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowInfo {
    /// Its id (for `hosts.unblock` `window_id`).
    pub id: i64,
    /// `HOST` or `FLEET`.
    pub scope: BlockScope,
    /// The host (absent for the fleet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    /// Why, when the operator said.
    #[serde(default)]
    pub reason: Option<String>,
    /// Unix seconds it starts (a one-off window), or from when its
    /// recurrence applies.
    pub from: f64,
    /// Unix seconds it ends (a one-off window), or when its recurrence
    /// stops; absent = until removed.
    #[serde(default)]
    pub until: Option<f64>,
    /// How it recurs; absent for a one-off window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<Recurrence>,
    /// Unix seconds it was added.
    pub created_at: f64,
    /// It is open now.
    pub open: bool,
    /// Unix seconds the opening in force (or else the next one) starts;
    /// absent when none is left within a week.
    #[serde(default)]
    pub next_start: Option<f64>,
    /// Unix seconds that opening ends; absent when it has no end.
    #[serde(default)]
    pub next_end: Option<f64>,
}

/// Reply of `lull.v1.hosts.block`, `lull.v1.hosts.unblock` and
/// `lull.v1.hosts.blocks`: whether something changed, and the blocks now
/// in force (a page of them: see `next_cursor`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockReply {
    /// The request was applied (always true for a reply that is not an error).
    pub ok: bool,
    /// A block was set, replaced or lifted.
    pub changed: bool,
    /// Every active block, the fleet-wide one first, then hosts by id.
    pub blocks: Vec<BlockInfo>,
    /// Every scheduled maintenance window, by id.
    #[serde(default)]
    pub windows: Vec<WindowInfo>,
    /// What a drain did (`hosts.block` with `drain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainReport>,
    /// Set when more blocks or windows follow: pass it as `cursor` to
    /// `hosts.blocks` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The leases a drain ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainReport {
    /// Leases that ended by themselves within the drain timeout.
    pub finished: Vec<String>,
    /// Leases revoked when the timeout ran out (or at once).
    pub revoked: Vec<String>,
}

/// Request of `lull.v1.hosts.forget`: delete a decommissioned host from
/// the coordinator's memory and database. Refused while the host still
/// reports or holds leases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgetRequest {
    /// Host id.
    pub host_id: String,
}

impl Validate for ForgetRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        v::subject_token("host_id", &self.host_id)
    }
}

/// Reply of `lull.v1.hosts.forget`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForgetReply {
    /// Host id.
    pub host_id: String,
    /// The host is gone from memory and storage.
    pub forgotten: bool,
    /// Why not, when refused (it still reports, or holds leases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_is_validated() {
        let base = || BlockRequest {
            host_id: Some("web-1".into()),
            drain: true,
            ..Default::default()
        };
        assert!(base().validate().is_ok());
        let timed = BlockRequest {
            drain_timeout_sec: Some(30.0),
            ..base()
        };
        assert!(timed.validate().is_ok());
        let too_long = BlockRequest {
            drain_timeout_sec: Some(MAX_DRAIN_TIMEOUT_SEC + 1.0),
            ..base()
        };
        assert!(too_long.validate().is_err());
        let negative = BlockRequest {
            drain_timeout_sec: Some(-1.0),
            ..base()
        };
        assert!(negative.validate().is_err());
        let no_drain = BlockRequest {
            drain: false,
            drain_timeout_sec: Some(5.0),
            ..base()
        };
        let e = no_drain.validate().unwrap_err().to_string();
        assert!(e.contains("drain_timeout_sec"), "{e}");
        let window = BlockRequest {
            from: Some(2e9),
            ..base()
        };
        let e = window.validate().unwrap_err().to_string();
        assert!(e.contains("drain"), "{e}");
    }

    #[test]
    fn states_are_uppercase_and_ordered() {
        assert_eq!(
            serde_json::to_string(&QuietState::Panic).unwrap(),
            "\"PANIC\""
        );
        let s: QuietState = serde_json::from_str("\"QUIET\"").unwrap();
        assert_eq!(s, QuietState::Quiet);
        assert!(serde_json::from_str::<QuietState>("\"quiet\"").is_err());
        assert!(QuietState::Quiet < QuietState::Panic);
    }

    #[test]
    fn host_get_request_is_validated() {
        let r: HostGetRequest = serde_json::from_str(r#"{"host_id":"a.b"}"#).unwrap();
        assert!(r.validate().is_err());
        assert!(serde_json::from_str::<HostGetRequest>("{}").is_err());
    }

    #[test]
    fn block_requests_name_exactly_one_target() {
        let ok: BlockRequest =
            serde_json::from_str(r#"{"host_id":"web-1","reason":"patching","until":1.0}"#).unwrap();
        assert!(ok.validate().is_ok());
        let all: BlockRequest = serde_json::from_str(r#"{"all":true}"#).unwrap();
        assert!(all.validate().is_ok());
        let none: BlockRequest = serde_json::from_str("{}").unwrap();
        assert!(none.validate().is_err());
        let both: BlockRequest = serde_json::from_str(r#"{"all":true,"host_id":"a"}"#).unwrap();
        assert!(both.validate().is_err());
        let bad: BlockRequest = serde_json::from_str(r#"{"host_id":"a.b"}"#).unwrap();
        assert!(bad.validate().is_err());
        let neg: BlockRequest = serde_json::from_str(r#"{"all":true,"until":-5}"#).unwrap();
        assert!(neg.validate().is_err());
        let un: UnblockRequest = serde_json::from_str("{}").unwrap();
        assert!(un.validate().is_err());
        let un: UnblockRequest = serde_json::from_str(r#"{"all":true}"#).unwrap();
        assert!(un.validate().is_ok());
        assert_eq!(
            serde_json::to_string(&BlockScope::Fleet).unwrap(),
            "\"FLEET\""
        );
    }

    #[test]
    fn window_requests_are_validated() {
        let parse = |j: &str| serde_json::from_str::<BlockRequest>(j).unwrap();
        let ok = parse(
            r#"{"host_id":"a","recurrence":{"days":["sat","sun"],"at":"02:00","duration_sec":14400,"tz":"Europe/Berlin"}}"#,
        );
        assert!(ok.validate().is_ok() && ok.is_window());
        let r = ok.recurrence.unwrap();
        assert_eq!(r.days, vec![Weekday::Sat, Weekday::Sun]);
        assert_eq!(r.hour_minute(), Some((2, 0)));
        let daily = parse(r#"{"all":true,"recurrence":{"at":"9:30","duration_sec":60}}"#);
        assert!(daily.validate().is_ok());
        assert_eq!(daily.recurrence.unwrap().tz, "UTC");
        let once = parse(r#"{"host_id":"a","from":100,"until":200}"#);
        assert!(once.validate().is_ok() && once.is_window());
        assert!(!parse(r#"{"host_id":"a","until":200}"#).is_window());
        for bad in [
            r#"{"host_id":"a","from":300,"until":200}"#,
            r#"{"host_id":"a","from":-1}"#,
            r#"{"host_id":"a","recurrence":{"at":"24:00","duration_sec":60}}"#,
            r#"{"host_id":"a","recurrence":{"at":"02:0","duration_sec":60}}"#,
            r#"{"host_id":"a","recurrence":{"at":"02:00","duration_sec":0}}"#,
            r#"{"host_id":"a","recurrence":{"at":"02:00","duration_sec":700000}}"#,
            r#"{"host_id":"a","recurrence":{"at":"02:00","duration_sec":60,"tz":""}}"#,
        ] {
            assert!(parse(bad).validate().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<BlockRequest>(
            r#"{"host_id":"a","recurrence":{"days":["caturday"],"at":"02:00","duration_sec":60}}"#
        )
        .is_err());
        let un = |j: &str| {
            serde_json::from_str::<UnblockRequest>(j)
                .unwrap()
                .validate()
        };
        assert!(un(r#"{"window_id":3}"#).is_ok());
        assert!(un(r#"{"host_id":"a","windows":true}"#).is_ok());
        assert!(un(r#"{"window_id":3,"host_id":"a"}"#).is_err());
        assert!(un(r#"{"window_id":-3}"#).is_err());
        assert!(un(r#"{"windows":true}"#).is_err());
    }
}
