//! Quiet state and the host queries (seed 002 §1.2; PROTOCOL.md §3 hosts).

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_uppercase_and_ordered() {
        assert_eq!(serde_json::to_string(&QuietState::Panic).unwrap(), "\"PANIC\"");
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
}
