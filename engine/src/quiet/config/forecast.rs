//! Settings of the quiet forecast (`[quiet.forecast]`): the quiet
//! threshold, samples per cell and lookback.

use serde::{Deserialize, Serialize};

use super::error::QuietConfigError;

/// Forecast settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForecastConfig {
    /// Forecast score from which an hour counts as quiet. Default 75 (the
    /// default `quiet_min_score`).
    pub threshold: f64,
    /// Points a cell needs before its average is trusted. Default 3.
    pub min_samples: u32,
    /// How many days of rollups feed the heatmap. Default 28.
    pub lookback_days: u32,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        ForecastConfig {
            threshold: 75.0,
            min_samples: 3,
            lookback_days: 28,
        }
    }
}

impl ForecastConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), QuietConfigError> {
        if !self.threshold.is_finite() {
            return Err(QuietConfigError::NotFinite {
                field: "forecast.threshold",
            });
        }
        if !(0.0..=100.0).contains(&self.threshold) {
            return Err(QuietConfigError::OutOfRange {
                field: "forecast.threshold",
                rule: "must be 0..100",
                value: self.threshold,
            });
        }
        if self.lookback_days == 0 {
            return Err(QuietConfigError::OutOfRange {
                field: "forecast.lookback_days",
                rule: "must be >= 1",
                value: 0.0,
            });
        }
        Ok(())
    }
}
