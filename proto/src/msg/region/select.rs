//! `lull.v1.regions.select`: the request with its weights, and the ranked
//! and excluded regions of the reply.

use serde::{Deserialize, Serialize};

use super::limits::MAX_CANDIDATES;
use crate::error::ValidationError;
use crate::validate::{self as v, Validate};

/// The health state of a region, most severe last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RegionState {
    /// Usable.
    Healthy,
    /// Resting after a fatigue event (default 4 h).
    Fatigued,
    /// Resting longer after a severe or repeated fatigue (default 24 h).
    Exhausted,
    /// Excluded until an operator pardons it (seed 001 auto-outlaw).
    Outlawed,
}

impl RegionState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RegionState::Healthy => "HEALTHY",
            RegionState::Fatigued => "FATIGUED",
            RegionState::Exhausted => "EXHAUSTED",
            RegionState::Outlawed => "OUTLAWED",
        }
    }
}

/// Weights of the selection score's components (need not sum to 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SelectWeights {
    /// Weight of cheapness (latest `spot_price_per_hour`); 0 when omitted.
    #[serde(default)]
    pub price: f64,
    /// Weight of the success rate; 0 when omitted.
    #[serde(default)]
    pub success: f64,
    /// Weight of speed (average build duration); 0 when omitted.
    #[serde(default)]
    pub speed: f64,
}

impl SelectWeights {
    /// Sum of the three weights.
    pub fn total(&self) -> f64 {
        self.price + self.success + self.speed
    }
}

/// `lull.v1.regions.select` request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionSelectRequest {
    /// Regions to choose from; empty means every known region.
    #[serde(default)]
    pub candidates: Vec<String>,
    /// Component weights; omitted means the coordinator's configured defaults.
    #[serde(default)]
    pub weights: Option<SelectWeights>,
}

impl Validate for RegionSelectRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        v::max_items("candidates", self.candidates.len(), MAX_CANDIDATES)?;
        for (i, c) in self.candidates.iter().enumerate() {
            v::subject_token(&format!("candidates[{i}]"), c)?;
        }
        if let Some(w) = &self.weights {
            v::range("weights.price", w.price, 0.0, 1e6)?;
            v::range("weights.success", w.success, 0.0, 1e6)?;
            v::range("weights.speed", w.speed, 0.0, 1e6)?;
            if w.total() <= 0.0 {
                return Err(ValidationError::Invalid {
                    field: "weights".into(),
                    reason: "must have at least one positive weight".into(),
                });
            }
        }
        Ok(())
    }
}

/// Component scores of a region, each in `0..=1` (1 is best).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ComponentScores {
    /// Cheapest eligible price divided by this region's price.
    pub price: f64,
    /// Smoothed success rate.
    pub success: f64,
    /// Fastest eligible average duration divided by this region's.
    pub speed: f64,
}

/// One eligible region of a selection, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedRegion {
    /// 1 for the best region.
    pub rank: u32,
    /// Region name.
    pub region: String,
    /// Weighted score in `0..=1`.
    pub score: f64,
    /// The components the score was made of.
    pub scores: ComponentScores,
    /// Latest known spot price, USD per hour.
    pub spot_price_per_hour: Option<f64>,
    /// Success rate, percent.
    pub success_rate: f64,
    /// Average build duration, minutes (`null` without builds).
    pub avg_duration_minutes: Option<f64>,
    /// Builds recorded.
    pub total_builds: u64,
}

/// Why a candidate region was left out of a selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ExclusionCode {
    /// Auto-outlawed; excluded until pardoned.
    Outlawed,
    /// EXHAUSTED until `until`.
    Exhausted,
    /// FATIGUED until `until`.
    Fatigued,
    /// No data about this region.
    Unknown,
}

/// A candidate region left out of a selection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExcludedRegion {
    /// Region name.
    pub region: String,
    /// Machine-readable cause.
    pub code: ExclusionCode,
    /// Human-readable cause with the numbers.
    pub reason: String,
    /// Unix seconds when the region becomes eligible again (`null`: not by
    /// itself, e.g. outlawed until pardoned).
    pub until: Option<f64>,
}

/// `lull.v1.regions.select` reply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionSelectReply {
    /// Eligible regions, best first.
    pub ranked: Vec<RankedRegion>,
    /// Candidates left out, with why and until when.
    pub excluded: Vec<ExcludedRegion>,
    /// The weights that were applied.
    pub weights: SelectWeights,
    /// Unix seconds of the evaluation.
    pub evaluated_at: f64,
}
