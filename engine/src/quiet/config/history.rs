//! Settings of history queries (`[quiet.history]`): point and range
//! limits, default range and step, raw retention and the rollup step.

use serde::{Deserialize, Serialize};

use super::error::QuietConfigError;
use crate::quiet::duration::parse_duration;

/// History query limits and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoryConfig {
    /// Most points one reply may hold. Default 1500.
    pub max_points: u32,
    /// Longest range, seconds. Default 7776000 (90 days, the rollup
    /// retention).
    pub max_range_sec: f64,
    /// Shortest step, seconds. Default 1.
    pub min_step_sec: f64,
    /// Range when the request names none. Default "1h".
    pub default_range: String,
    /// Without a step, the step is the smallest round one giving at most
    /// this many points. Default 360.
    pub target_points: u32,
    /// How long raw samples are kept, seconds; older ranges read rollups.
    /// Default 604800 (7 days).
    pub raw_retention_sec: f64,
    /// Step of the rollups, seconds; a step at least this long reads
    /// rollups. Default 60.
    pub rollup_step_sec: f64,
    /// Most numeric fields taken from one payload by [`crate::quiet::history::numeric_fields`].
    /// Default 128.
    pub max_fields: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            max_points: 1500,
            max_range_sec: 90.0 * 86_400.0,
            min_step_sec: 1.0,
            default_range: "1h".into(),
            target_points: 360,
            raw_retention_sec: 7.0 * 86_400.0,
            rollup_step_sec: 60.0,
            max_fields: 128,
        }
    }
}

impl HistoryConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), QuietConfigError> {
        let positive = [
            ("history.max_range_sec", self.max_range_sec),
            ("history.min_step_sec", self.min_step_sec),
            ("history.raw_retention_sec", self.raw_retention_sec),
            ("history.rollup_step_sec", self.rollup_step_sec),
            ("history.max_points", f64::from(self.max_points)),
            ("history.target_points", f64::from(self.target_points)),
        ];
        for (field, v) in positive {
            if !v.is_finite() {
                return Err(QuietConfigError::NotFinite { field });
            }
            if v <= 0.0 {
                return Err(QuietConfigError::OutOfRange {
                    field,
                    rule: "must be > 0",
                    value: v,
                });
            }
        }
        if parse_duration(&self.default_range).is_err() {
            return Err(QuietConfigError::OutOfRange {
                field: "history.default_range",
                rule: "must be a duration like \"1h\"",
                value: f64::NAN,
            });
        }
        Ok(())
    }
}
