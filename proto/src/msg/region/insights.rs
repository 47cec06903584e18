//! `lull.v1.regions.insights`: summaries, problem regions, speed and cost
//! rankings, badges, trends and fatigue counts over a window.

use serde::{Deserialize, Serialize};

use super::limits::MAX_FATIGUE_HOURS;
use super::select::RegionState;
use crate::error::ValidationError;
use crate::validate::{self as v, Validate};

/// `lull.v1.regions.insights` request (an empty body is fine).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionInsightsRequest {
    /// Window of the fatigue counts, hours (default: the coordinator's, 168).
    #[serde(default)]
    pub fatigue_window_hours: Option<f64>,
}

impl Validate for RegionInsightsRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        v::range_opt(
            "fatigue_window_hours",
            self.fatigue_window_hours,
            0.0,
            MAX_FATIGUE_HOURS,
        )
    }
}

/// A region in the "best regions" list (seed 001 "Key Insights").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionSummary {
    /// Region name.
    pub region: String,
    /// Success rate, percent.
    pub success_rate: f64,
    /// Successful builds.
    pub successes: u64,
    /// Builds recorded.
    pub total_builds: u64,
    /// Current streak (positive: wins).
    pub current_streak: i64,
    /// Average build duration, minutes.
    pub avg_duration_minutes: f64,
    /// Fatigue incidents ever.
    pub fatigue_incidents: u64,
    /// Current state.
    pub state: RegionState,
}

/// A region in the "problematic regions" list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemRegion {
    /// The region's figures.
    pub summary: RegionSummary,
    /// Whether it is outlawed.
    pub outlawed: bool,
    /// Why it is listed, one short phrase each.
    pub reasons: Vec<String>,
}

/// A region in the "speed champions" list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeedEntry {
    /// Region name.
    pub region: String,
    /// Average build duration, minutes.
    pub avg_duration_minutes: f64,
    /// Fastest build, minutes.
    pub fastest_minutes: Option<f64>,
    /// Builds recorded.
    pub total_builds: u64,
}

/// The champion badges of seed 001.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BadgeKind {
    /// Lowest average build duration.
    SpeedKing,
    /// Highest success rate.
    ReliabilityChampion,
    /// Lowest cost per successful build.
    CostLeader,
}

impl BadgeKind {
    /// The display title ("Speed King", ...).
    pub fn title(self) -> &'static str {
        match self {
            BadgeKind::SpeedKing => "Speed King",
            BadgeKind::ReliabilityChampion => "Reliability Champion",
            BadgeKind::CostLeader => "Cost Leader",
        }
    }
}

/// A badge awarded to a region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Badge {
    /// Which badge.
    pub badge: BadgeKind,
    /// Display title.
    pub title: String,
    /// The winner.
    pub region: String,
    /// The winning figure (minutes, percent or USD).
    pub value: f64,
    /// The figure in words.
    pub detail: String,
}

/// Direction of a region's success rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Trend {
    /// Success rate rose by more than the stable band.
    Improving,
    /// Success rate fell by more than the stable band.
    Declining,
    /// Within the band, or too few builds to tell.
    Stable,
}

/// Build figures of one time window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    /// Builds in the window.
    pub builds: u64,
    /// Successful builds in the window.
    pub successes: u64,
    /// Success rate, percent (`null` without builds).
    pub success_rate: Option<f64>,
    /// Average build duration, minutes (`null` without builds).
    pub avg_duration_minutes: Option<f64>,
}

/// A region's recent window against the one before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionTrend {
    /// Region name.
    pub region: String,
    /// Direction.
    pub trend: Trend,
    /// The last `window_days` days.
    pub recent: WindowStats,
    /// The `window_days` days before those.
    pub previous: WindowStats,
    /// `recent.success_rate - previous.success_rate`, percentage points.
    pub delta_success_rate: Option<f64>,
    /// Whether both windows had enough builds to judge.
    pub enough_data: bool,
}

/// Actual dollars per successful build of a region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostEntry {
    /// Region name.
    pub region: String,
    /// Cost of the builds whose cost is known, USD.
    pub total_cost_usd: f64,
    /// Builds whose cost is known.
    pub costed_builds: u64,
    /// Successful builds among those.
    pub costed_successes: u64,
    /// `total_cost_usd / costed_successes` (`null` without a success).
    pub cost_per_success_usd: Option<f64>,
}

/// Fatigue incidents of one region inside the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FatigueCount {
    /// Region name.
    pub region: String,
    /// Incidents with `fatigue_time` inside the window.
    pub incidents: u64,
    /// Incidents ever.
    pub total_incidents: u64,
    /// Newest fatigue reason.
    pub last_fatigue_reason: Option<String>,
    /// Newest fatigue code.
    pub last_fatigue_reason_code: Option<String>,
    /// Newest fatigue time.
    pub last_fatigue_time: Option<f64>,
    /// Current state.
    pub state: RegionState,
    /// When the current fatigue ends (`null` when not resting).
    pub until: Option<f64>,
}

/// Fatigue counts in a window ("how many fatigues in the last 7 days").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FatigueWindow {
    /// The window, hours.
    pub window_hours: f64,
    /// Unix seconds where the window starts.
    pub since: f64,
    /// Incidents in the window across regions.
    pub total: u64,
    /// Regions with at least one incident ever, most incidents in the window first.
    pub regions: Vec<FatigueCount>,
}

/// `lull.v1.regions.insights` reply (seed 001 "Key Insights" and "Future Use Cases").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionInsights {
    /// Unix seconds of the evaluation.
    pub generated_at: f64,
    /// Most reliable regions, best first.
    pub best: Vec<RegionSummary>,
    /// Outlawed, resting or unreliable regions, worst first.
    pub problematic: Vec<ProblemRegion>,
    /// Fastest regions by average duration.
    pub speed_champions: Vec<SpeedEntry>,
    /// Champion badges.
    pub badges: Vec<Badge>,
    /// Per-region trend of the success rate.
    pub trends: Vec<RegionTrend>,
    /// Per-region cost per success, cheapest first.
    pub cost_per_success: Vec<CostEntry>,
    /// Fatigue counts in the window.
    pub fatigue: FatigueWindow,
}
