//! Values the coordinator derives from reports: scores and quality level,
//! learning metrics and trends, anomalies, schedule (missed-run) status and
//! recommendations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::report::WorkerExecutionReport;

/// Seed 003 quality levels, by overall score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum QualityLevel {
    /// 90–100: all validations passed, data complete.
    #[serde(alias = "Excellent", alias = "excellent")]
    Excellent,
    /// 70–89: minor issues, data usable.
    #[serde(alias = "Good", alias = "good")]
    Good,
    /// 50–69: some data missing or stale.
    #[serde(alias = "Degraded", alias = "degraded")]
    Degraded,
    /// 30–49: significant issues, data questionable.
    #[serde(alias = "Poor", alias = "poor")]
    Poor,
    /// 0–29: data validation failed.
    #[serde(alias = "Failed", alias = "failed")]
    Failed,
}

impl QualityLevel {
    /// All levels, best first.
    pub const ALL: [QualityLevel; 5] = [
        QualityLevel::Excellent,
        QualityLevel::Good,
        QualityLevel::Degraded,
        QualityLevel::Poor,
        QualityLevel::Failed,
    ];

    /// The level of a 0..100 score: `>= 90` Excellent, `>= 70` Good,
    /// `>= 50` Degraded, `>= 30` Poor, otherwise Failed (NaN is Failed).
    pub fn from_score(score: f64) -> QualityLevel {
        if score >= 90.0 {
            QualityLevel::Excellent
        } else if score >= 70.0 {
            QualityLevel::Good
        } else if score >= 50.0 {
            QualityLevel::Degraded
        } else if score >= 30.0 {
            QualityLevel::Poor
        } else {
            QualityLevel::Failed
        }
    }

    /// The wire name (`EXCELLENT`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            QualityLevel::Excellent => "EXCELLENT",
            QualityLevel::Good => "GOOD",
            QualityLevel::Degraded => "DEGRADED",
            QualityLevel::Poor => "POOR",
            QualityLevel::Failed => "FAILED",
        }
    }

    /// Poor or Failed: the worker needs attention.
    pub fn needs_attention(self) -> bool {
        matches!(self, QualityLevel::Poor | QualityLevel::Failed)
    }
}

impl std::fmt::Display for QualityLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Seed 003 "Scoring System": the four component scores (0..100) and their
/// weighted combination. A component is `null` when the report had nothing
/// to score it from; the overall score is then the weighted mean of the
/// components that are present.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExecutionScores {
    /// From the outcome (weight 35 %).
    pub reliability_score: f64,
    /// Duration against the worker's own history (weight 25 %).
    pub performance_score: Option<f64>,
    /// From `data_verification` (weight 30 %).
    pub data_quality_score: Option<f64>,
    /// From memory, CPU and query counts (weight 10 %).
    pub resource_efficiency_score: Option<f64>,
    /// Weighted combination, 0..100.
    pub overall_score: f64,
    /// Level of `overall_score`.
    pub quality_level: QualityLevel,
}

/// Direction of a worker's run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DurationTrend {
    /// Recent runs are quicker than the ones before.
    #[serde(alias = "faster")]
    Faster,
    /// Recent runs are slower than the ones before.
    #[serde(alias = "slower")]
    Slower,
    /// No clear change.
    #[serde(alias = "stable")]
    Stable,
}

/// Direction of a worker's data volume (records per run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum VolumeTrend {
    /// Recent runs handle more records than the ones before.
    #[serde(alias = "increasing")]
    Increasing,
    /// Recent runs handle fewer records than the ones before.
    #[serde(alias = "decreasing")]
    Decreasing,
    /// No clear change.
    #[serde(alias = "stable")]
    Stable,
}

/// Seed 003 "Learning Metrics" of one run, computed at ingest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearningMetrics {
    /// UTC hour of `started_at` (0..23).
    pub time_of_day_utc: u8,
    /// UTC day of week of `started_at` (0 = Monday .. 6 = Sunday).
    pub day_of_week: u8,
    /// This run's number among the worker's runs of the same UTC day, in
    /// arrival order (1 = first).
    pub execution_number_today: u32,
    /// Seconds since the previous run started; `null` for the first run.
    pub time_since_last_run_seconds: Option<f64>,
    /// Duration divided by the worker's rolling average; `null` without
    /// enough history.
    pub duration_vs_avg: Option<f64>,
    /// Run-time direction; `null` without enough history.
    pub duration_trend: Option<DurationTrend>,
    /// Volume direction; `null` without enough history.
    pub data_volume_trend: Option<VolumeTrend>,
    /// Copied from the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_data_age_seconds: Option<f64>,
    /// Copied from the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downstream_consumers_waiting: Option<i64>,
}

/// What kind of anomaly was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AnomalyKind {
    /// The run took far longer than its baseline (modified z-score).
    DurationSpike,
    /// The overall or data-quality score fell sharply below its baseline.
    QualityDrop,
    /// Memory or CPU above the seed's alert threshold.
    ResourceThreshold,
    /// Memory or CPU far above the worker's own baseline.
    ResourceSpike,
    /// A custom metric past a configured threshold rule (seed 003's
    /// stream-health thresholds and the operator's own).
    CustomThreshold,
}

impl AnomalyKind {
    /// The wire name, also a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::DurationSpike => "DURATION_SPIKE",
            AnomalyKind::QualityDrop => "QUALITY_DROP",
            AnomalyKind::ResourceThreshold => "RESOURCE_THRESHOLD",
            AnomalyKind::ResourceSpike => "RESOURCE_SPIKE",
            AnomalyKind::CustomThreshold => "CUSTOM_THRESHOLD",
        }
    }
}

/// How serious a threshold breach is (set by the rule).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Needs a look (seed 003: "Warning if > ...").
    #[default]
    Warning,
    /// Needs action now.
    Critical,
}

impl Severity {
    /// The wire name, also a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One anomaly with the figures that triggered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// The worker.
    pub worker_name: String,
    /// The run that showed it.
    pub execution_id: String,
    /// Unix seconds: the run's `completed_at`.
    pub detected_at: f64,
    /// What kind.
    pub kind: AnomalyKind,
    /// The metric concerned (`duration_ms`, `overall_score`, `memory_peak_mb`, ...).
    pub metric: String,
    /// Human-readable description with the numbers.
    pub message: String,
    /// The numbers: value, baseline median, MAD, z-score, threshold, points...
    pub evidence: BTreeMap<String, f64>,
    /// `CUSTOM_THRESHOLD` only: the name of the rule that fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// `CUSTOM_THRESHOLD` only: the rule's severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

/// A run as returned by `workers.executions`: the report, its scores
/// (flattened: `reliability_score`, ..., `quality_level`), the learning
/// metrics and the anomalies found at ingest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredExecution {
    /// The report as received.
    #[serde(flatten)]
    pub report: WorkerExecutionReport,
    /// Its scores.
    #[serde(flatten)]
    pub scores: ExecutionScores,
    /// Learning metrics computed at ingest.
    pub learning: LearningMetrics,
    /// Anomalies found at ingest.
    #[serde(default)]
    pub anomalies: Vec<Anomaly>,
}

/// Whether a worker runs when expected (Healthchecks.io / Sentry Crons style).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ScheduleState {
    /// The last run is within period + grace.
    Ok,
    /// Past period + grace without a new run.
    Late,
    /// Past a further period without a run: at least one run is missing.
    Missed,
    /// No expected period known yet (cold start and nothing configured).
    Unknown,
}

impl ScheduleState {
    /// The wire name (`OK`, ...), also a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleState::Ok => "OK",
            ScheduleState::Late => "LATE",
            ScheduleState::Missed => "MISSED",
            ScheduleState::Unknown => "UNKNOWN",
        }
    }

    /// Gauge value: 0 ok, 1 late, 2 missed, -1 unknown.
    pub fn as_gauge(self) -> f64 {
        match self {
            ScheduleState::Ok => 0.0,
            ScheduleState::Late => 1.0,
            ScheduleState::Missed => 2.0,
            ScheduleState::Unknown => -1.0,
        }
    }
}

/// Where the expected period came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PeriodSource {
    /// Set in the coordinator's configuration.
    Configured,
    /// The median interval between the worker's recent runs.
    Learned,
    /// Not known.
    None,
}

/// A worker's schedule status at a given moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleStatus {
    /// The worker.
    pub worker_name: String,
    /// The state.
    pub state: ScheduleState,
    /// Where the period came from.
    pub period_source: PeriodSource,
    /// Expected interval between runs, seconds.
    pub expected_period_sec: Option<f64>,
    /// Tolerance after the expected time, seconds.
    pub grace_sec: Option<f64>,
    /// Unix seconds: start of the latest run.
    pub last_run_at: Option<f64>,
    /// Unix seconds: when the next run is expected (`last_run_at + period`).
    pub next_due_at: Option<f64>,
    /// Unix seconds: when the worker turns `LATE` (`next_due_at + grace`).
    pub late_at: Option<f64>,
    /// Unix seconds: when the worker turns `MISSED`.
    pub missed_at: Option<f64>,
    /// Seconds past `next_due_at` (0 when not yet due).
    pub overdue_sec: f64,
    /// Whole expected runs that did not happen (0 unless late or missed).
    pub missed_runs: u64,
}

/// What a recommendation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecommendationKind {
    /// Move runs toward the worker's best hour.
    Schedule,
    /// Move runs into the hosts' forecast quiet window.
    QuietWindow,
    /// Change batch size or run frequency.
    BatchSize,
    /// Memory, CPU or database allocation.
    Resource,
}

/// A suggested optimisation with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The worker.
    pub worker_name: String,
    /// What it is about.
    pub kind: RecommendationKind,
    /// Human-readable suggestion with the numbers.
    pub message: String,
    /// The numbers behind it.
    pub evidence: BTreeMap<String, f64>,
}
