//! Settings of quiet streaks (`[quiet.streaks]`): shortest streak, longest
//! gap and the default range.

use serde::{Deserialize, Serialize};

use super::error::QuietConfigError;
use crate::quiet::duration::parse_duration;

/// Streak detection settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreakConfig {
    /// Shortest streak kept, seconds. Default 60.
    pub min_streak_sec: f64,
    /// A gap between samples longer than this ends a streak, seconds.
    /// Default 30.
    pub max_gap_sec: f64,
    /// Range of `lull.v1.quiet.streaks` when the request names none.
    /// Default "24h".
    pub default_range: String,
}

impl Default for StreakConfig {
    fn default() -> Self {
        StreakConfig {
            min_streak_sec: 60.0,
            max_gap_sec: 30.0,
            default_range: "24h".into(),
        }
    }
}

impl StreakConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), QuietConfigError> {
        for (field, v) in [
            ("streaks.min_streak_sec", self.min_streak_sec),
            ("streaks.max_gap_sec", self.max_gap_sec),
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
        if parse_duration(&self.default_range).is_err() {
            return Err(QuietConfigError::OutOfRange {
                field: "streaks.default_range",
                rule: "must be a duration like \"24h\"",
                value: f64::NAN,
            });
        }
        Ok(())
    }
}
