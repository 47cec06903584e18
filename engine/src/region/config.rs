//! [`RegionConfig`]: every tunable of the region module with its default,
//! and its validation ([`ConfigError`]).

use lull_proto::msg::region::{FatigueType, SelectWeights};
use serde::{Deserialize, Serialize};

/// Every tunable of the region module. Deserialized with `#[serde(default)]`,
/// so a config file names only what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegionConfig {
    /// Rest of a FATIGUED region without its own duration, hours. Default 4.
    pub fatigued_hours: f64,
    /// Rest of an EXHAUSTED (or escalated) region, hours. Default 24.
    pub exhausted_hours: f64,
    /// Escalation window, hours: a fatigue that follows less than this much
    /// health after the previous rest counts as repeated, and each full window
    /// of health lowers the multiplier by one. Default 24.
    pub escalation_window_hours: f64,
    /// Multiplier at which a fatigue is escalated to EXHAUSTED. Default 2
    /// (the second fatigue inside the window).
    pub escalate_at: u32,
    /// Auto-outlaw needs more than this many fatigue incidents. Default 3.
    pub outlaw_fatigue_incidents_over: u64,
    /// Auto-outlaw needs a success rate under this percentage. Default 50.
    pub outlaw_success_rate_below: f64,
    /// Auto-outlaw judges a region only after this many builds. Default 3.
    pub outlaw_min_builds: u64,
    /// How long fatigue marks and hourly build buckets are kept, days, measured
    /// from the newest one (windows of insights cannot be longer). Default 30.
    pub history_days: f64,
    /// Rank regions with no data instead of excluding them as UNKNOWN. Default false.
    pub allow_unknown_regions: bool,
    /// Weights of `regions.select` when the request has none. Default 1/1/1.
    pub default_weights: SelectWeights,
    /// Pseudo-builds at 50% success added to the success score, so a region
    /// with few builds is not judged on one result. Default 2 (Laplace).
    pub success_prior_builds: f64,
    /// Component score of an unknown price or speed, 0..1. Default 0.5.
    pub unknown_component_score: f64,
    /// Length of the insights lists. Default 5.
    pub insights_top_n: usize,
    /// Most regions in each insights list that would otherwise name every
    /// region (`problematic`, `trends`, `cost_per_success`,
    /// `fatigue.regions`); each keeps its first ones in its own order
    /// (worst, cheapest, most fatigued; trends: the largest changes),
    /// so the reply stays within a NATS message. Default 100.
    pub insights_list_max: usize,
    /// Builds a region needs to compete for best/speed lists and badges. Default 3.
    pub insights_min_builds: u64,
    /// A region under this success rate (percent) is problematic. Default 80.
    pub problematic_success_rate_below: f64,
    /// Length of each trend window, days (last N days against the N before). Default 7.
    pub trend_window_days: f64,
    /// Builds each trend window needs before a trend is called. Default 3.
    pub trend_min_builds: u64,
    /// Change of success rate (percentage points) still called STABLE. Default 5.
    pub trend_stable_band_pct: f64,
    /// Window of the insights fatigue counts, hours. Default 168 (7 days).
    pub fatigue_window_hours: f64,
}

impl Default for RegionConfig {
    fn default() -> Self {
        RegionConfig {
            fatigued_hours: 4.0,
            exhausted_hours: 24.0,
            escalation_window_hours: 24.0,
            escalate_at: 2,
            outlaw_fatigue_incidents_over: 3,
            outlaw_success_rate_below: 50.0,
            outlaw_min_builds: 3,
            history_days: 30.0,
            allow_unknown_regions: false,
            default_weights: SelectWeights {
                price: 1.0,
                success: 1.0,
                speed: 1.0,
            },
            success_prior_builds: 2.0,
            unknown_component_score: 0.5,
            insights_top_n: 5,
            insights_list_max: 100,
            insights_min_builds: 3,
            problematic_success_rate_below: 80.0,
            trend_window_days: 7.0,
            trend_min_builds: 3,
            trend_stable_band_pct: 5.0,
            fatigue_window_hours: 168.0,
        }
    }
}

/// A [`RegionConfig`] value that makes no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("region config: {field} {problem}")]
pub struct ConfigError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl RegionConfig {
    /// Default rest of a fatigue type, hours.
    pub fn hours_for(&self, t: FatigueType) -> f64 {
        match t {
            FatigueType::Fatigued => self.fatigued_hours,
            FatigueType::Exhausted => self.exhausted_hours,
        }
    }

    /// Seconds that marks and hourly buckets are kept.
    pub fn history_secs(&self) -> f64 {
        self.history_days * 86_400.0
    }

    /// Checks that every number is finite and in a sensible range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("fatigued_hours", self.fatigued_hours),
            ("exhausted_hours", self.exhausted_hours),
            ("escalation_window_hours", self.escalation_window_hours),
            ("history_days", self.history_days),
            ("trend_window_days", self.trend_window_days),
            ("fatigue_window_hours", self.fatigue_window_hours),
        ];
        for (field, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(bad(field, format!("must be > 0, got {v}")));
            }
        }
        let non_negative = [
            ("success_prior_builds", self.success_prior_builds),
            ("trend_stable_band_pct", self.trend_stable_band_pct),
            ("default_weights.price", self.default_weights.price),
            ("default_weights.success", self.default_weights.success),
            ("default_weights.speed", self.default_weights.speed),
        ];
        for (field, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad(field, format!("must be >= 0, got {v}")));
            }
        }
        let pcts = [
            ("outlaw_success_rate_below", self.outlaw_success_rate_below),
            (
                "problematic_success_rate_below",
                self.problematic_success_rate_below,
            ),
        ];
        for (field, v) in pcts {
            if !(0.0..=100.0).contains(&v) {
                return Err(bad(field, format!("must be 0..100, got {v}")));
            }
        }
        if !(0.0..=1.0).contains(&self.unknown_component_score) {
            let v = self.unknown_component_score;
            return Err(bad(
                "unknown_component_score",
                format!("must be 0..1, got {v}"),
            ));
        }
        if self.default_weights.total() <= 0.0 {
            return Err(bad("default_weights", "must have a positive weight".into()));
        }
        if self.insights_list_max == 0 {
            return Err(bad("insights_list_max", "must be >= 1".into()));
        }
        if self.escalate_at == 0 {
            return Err(bad("escalate_at", "must be >= 1".into()));
        }
        Ok(())
    }
}

fn bad(field: &'static str, problem: String) -> ConfigError {
    ConfigError { field, problem }
}
