//! `lull.v1.coordinator.leader`: which coordinator leads, answered by every
//! coordinator (leader and standbys) from the election row and its own
//! role. A client that asks repeatedly sees each instance over time; the
//! `leader` and `epoch` fields agree across instances once the election row
//! is read.

use serde::{Deserialize, Serialize};

/// Role of the answering instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoordinatorRole {
    /// Decides leases and writes reports.
    Leader,
    /// Hot standby.
    Standby,
}

/// The reply of `coordinator.leader`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderReply {
    /// The instance that answered.
    pub instance: String,
    /// Its role.
    pub role: CoordinatorRole,
    /// The leading instance as stored in the election row (empty when the
    /// last leader resigned and none leads yet).
    pub leader: String,
    /// The current epoch (fencing term); every takeover increments it.
    pub epoch: u64,
    /// Unix seconds when the current leader was elected.
    #[serde(default)]
    pub elected_at: Option<f64>,
    /// Seconds since the answering instance started.
    pub uptime_sec: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let r = LeaderReply {
            instance: "c1".into(),
            role: CoordinatorRole::Standby,
            leader: "c2".into(),
            epoch: 7,
            elected_at: Some(1.0e9),
            uptime_sec: 12.5,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert!(s.contains("\"role\":\"standby\""));
        assert_eq!(serde_json::from_str::<LeaderReply>(&s).unwrap(), r);
    }
}
