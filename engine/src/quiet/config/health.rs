//! Settings of the health rollup (`[quiet.health]`): recent agent
//! failures, database lag thresholds, the error share and listing limits.

use serde::{Deserialize, Serialize};

use super::error::QuietConfigError;

/// Health rollup settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthConfig {
    /// An agent loop failure this recent (seconds) makes its host `warn`.
    /// Default 300.
    pub agent_failure_recent_sec: f64,
    /// Database write lag (seconds) that makes the rollup `warn`. Default 10.
    pub db_lag_warn_sec: f64,
    /// Database write lag (seconds) that makes the rollup `error`.
    /// Default 60.
    pub db_lag_error_sec: f64,
    /// Share of hosts in PANIC, or stale, that makes the rollup `error`
    /// (below it, `warn`). Default 0.5.
    pub error_host_fraction: f64,
    /// Most hosts listed in the reply, worst first. Default 500.
    pub max_hosts_listed: usize,
    /// Most host names quoted in one reason. Default 5.
    pub max_names_in_reason: usize,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            agent_failure_recent_sec: 300.0,
            db_lag_warn_sec: 10.0,
            db_lag_error_sec: 60.0,
            error_host_fraction: 0.5,
            max_hosts_listed: 500,
            max_names_in_reason: 5,
        }
    }
}

impl HealthConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), QuietConfigError> {
        for (field, v) in [
            (
                "health.agent_failure_recent_sec",
                self.agent_failure_recent_sec,
            ),
            ("health.db_lag_warn_sec", self.db_lag_warn_sec),
            ("health.db_lag_error_sec", self.db_lag_error_sec),
            ("health.error_host_fraction", self.error_host_fraction),
        ] {
            if !v.is_finite() {
                return Err(QuietConfigError::NotFinite { field });
            }
            if v < 0.0 {
                return Err(QuietConfigError::OutOfRange {
                    field,
                    rule: "must be >= 0",
                    value: v,
                });
            }
        }
        if self.db_lag_error_sec < self.db_lag_warn_sec {
            return Err(QuietConfigError::OutOfRange {
                field: "health.db_lag_error_sec",
                rule: "must be >= db_lag_warn_sec",
                value: self.db_lag_error_sec,
            });
        }
        Ok(())
    }
}
