//! Worker execution reports (seed 003; PROTOCOL.md §2 `lull.report.worker.*`)
//! and the wire types of the worker queries (PROTOCOL.md §3 "Workers"):
//! scores, learning metrics, anomalies, schedule (missed-run) status,
//! recommendations, and the replies of `workers.executions`, `workers.stats`,
//! `workers.learning`, `learning.system` and `data_quality.summary`.
//!
//! The coordinator computes the derived values (`lull_coordinator::worker`);
//! this module only carries them, so that `lullctl` and other clients can
//! decode the replies without depending on the coordinator.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::validate::{self as v, Validate};

/// Most entries of `missing_fields` and `null_field_counts`.
pub const MAX_FIELD_LIST: usize = 256;

/// Most entries of `validation_errors`.
pub const MAX_VALIDATION_ERRORS: usize = 100;

/// Most top-level keys of `custom_metrics`.
pub const MAX_CUSTOM_METRICS: usize = 128;

/// Longest accepted run, in milliseconds (30 days).
pub const MAX_DURATION_MS: f64 = 30.0 * 86_400.0 * 1000.0;

/// Default `limit` of `workers.executions`.
pub const DEFAULT_EXECUTIONS_LIMIT: u32 = 20;

/// Highest `limit` of `workers.executions`.
pub const MAX_EXECUTIONS_LIMIT: u32 = 500;

/// How a worker run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ExecutionOutcome {
    /// Everything the run set out to do was done.
    Success,
    /// Some of the work was done (for example some records failed).
    Partial,
    /// The run failed.
    Failure,
    /// The run was stopped for taking too long.
    Timeout,
    /// The run decided there was nothing to do (or was told not to run).
    Skipped,
}

impl ExecutionOutcome {
    /// All outcomes, in wire order.
    pub const ALL: [ExecutionOutcome; 5] = [
        ExecutionOutcome::Success,
        ExecutionOutcome::Partial,
        ExecutionOutcome::Failure,
        ExecutionOutcome::Timeout,
        ExecutionOutcome::Skipped,
    ];

    /// The wire name (`SUCCESS`, ...), also a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionOutcome::Success => "SUCCESS",
            ExecutionOutcome::Partial => "PARTIAL",
            ExecutionOutcome::Failure => "FAILURE",
            ExecutionOutcome::Timeout => "TIMEOUT",
            ExecutionOutcome::Skipped => "SKIPPED",
        }
    }

    /// `SUCCESS` or `PARTIAL`: the run did work, so its duration and volume
    /// say something about the worker's performance.
    pub fn did_work(self) -> bool {
        matches!(self, ExecutionOutcome::Success | ExecutionOutcome::Partial)
    }

    /// `FAILURE` or `TIMEOUT`.
    pub fn is_failure(self) -> bool {
        matches!(self, ExecutionOutcome::Failure | ExecutionOutcome::Timeout)
    }
}

impl std::fmt::Display for ExecutionOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One worker run, as published on `lull.report.worker.<worker_name>`
/// (JetStream `LULL_REPORTS`, `Nats-Msg-Id` = `execution_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerExecutionReport {
    /// Unique id of this run; the report is stored once per id.
    pub execution_id: String,
    /// The worker; a subject token that must equal the subject's last token.
    pub worker_name: String,
    /// The host the run happened on (filled by the agent when a spool file
    /// leaves it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    /// Unix seconds when the run started.
    pub started_at: f64,
    /// Unix seconds when the run ended; not before `started_at`.
    pub completed_at: f64,
    /// How the run ended.
    pub outcome: ExecutionOutcome,
    /// Run time in milliseconds as measured by the worker.
    pub duration_ms: f64,
    /// Error text of a failed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// What the run read, wrote and checked. Every field is optional.
    #[serde(default)]
    pub data_verification: DataVerification,
    /// What the run consumed. Every field is optional.
    #[serde(default)]
    pub resource_metrics: ResourceMetrics,
    /// Seed 003 "Dependency Patterns": age of the run's input data, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_data_age_seconds: Option<f64>,
    /// Seed 003 "Dependency Patterns": workers blocked waiting for this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downstream_consumers_waiting: Option<i64>,
    /// Worker-specific figures, free form (for example the SSE guardian's
    /// `orphaned_streams`, `active_streams`, `orphaned_by_type`).
    #[serde(default)]
    pub custom_metrics: serde_json::Map<String, serde_json::Value>,
}

/// Seed 003 "Data Verification Metrics": record counts, freshness,
/// completeness, validation results, API health and cache status. A worker
/// fills what applies; absent fields are not scored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataVerification {
    /// Total records retrieved from the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_fetched: Option<i64>,
    /// Records successfully processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_processed: Option<i64>,
    /// Records written to storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_stored: Option<i64>,
    /// Records that failed processing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_failed: Option<i64>,
    /// Records intentionally skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_skipped: Option<i64>,

    /// Age of the most recent record, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_record_age_seconds: Option<f64>,
    /// Age of the oldest record, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_record_age_seconds: Option<f64>,
    /// Average record age, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_record_age_seconds: Option<f64>,

    /// All required fields exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_fields_present: Option<bool>,
    /// Names of missing fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_fields: Vec<String>,
    /// Count of nulls per field.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub null_field_counts: BTreeMap<String, i64>,

    /// Successful validations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_checks_passed: Option<i64>,
    /// Failed validations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_checks_failed: Option<i64>,
    /// Messages of the failed validations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation_errors: Vec<String>,

    /// Total API requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_calls_made: Option<i64>,
    /// Successful API requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_calls_succeeded: Option<i64>,
    /// Failed API requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_calls_failed: Option<i64>,
    /// Whether the run hit an API rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_rate_limited: Option<bool>,
    /// Remaining API quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_quota_remaining: Option<i64>,

    /// Data served from cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_hits: Option<i64>,
    /// Cache misses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_misses: Option<i64>,
    /// New cache entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_writes: Option<i64>,
    /// Cache expiration, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_ttl_seconds: Option<f64>,
}

impl DataVerification {
    /// The run's data volume: `records_processed`, else `records_fetched`.
    pub fn volume(&self) -> Option<u64> {
        self.records_processed
            .or(self.records_fetched)
            .map(|n| n.max(0) as u64)
    }

    /// Failed validations: `validation_checks_failed`, else the number of
    /// `validation_errors` (0 when neither is given).
    pub fn validation_failures(&self) -> u64 {
        match self.validation_checks_failed {
            Some(n) => n.max(0) as u64,
            None => self.validation_errors.len() as u64,
        }
    }

    /// Whether the run reported hitting a rate limit.
    pub fn rate_limited(&self) -> bool {
        self.api_rate_limited == Some(true)
    }
}

/// Seed 003 "Resource Metrics".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceMetrics {
    /// Peak memory use, MB (alert threshold 500 MB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_peak_mb: Option<f64>,
    /// Average CPU use, percent of one core (alert threshold 80 %).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent_avg: Option<f64>,
    /// Bytes downloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_bytes_received: Option<i64>,
    /// Database queries made (optimise if over 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_query_count: Option<i64>,
    /// Redis commands issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_operations: Option<i64>,
}

impl Validate for WorkerExecutionReport {
    fn validate(&self) -> Result<(), ValidationError> {
        v::id("execution_id", &self.execution_id)?;
        v::subject_token("worker_name", &self.worker_name)?;
        if let Some(h) = &self.host_id {
            v::subject_token("host_id", h)?;
        }
        v::non_negative("started_at", self.started_at)?;
        v::non_negative("completed_at", self.completed_at)?;
        if self.completed_at < self.started_at {
            return Err(ValidationError::OutOfRange {
                field: "completed_at".into(),
                rule: format!(">= started_at ({})", self.started_at),
                value: format!("{}", self.completed_at),
            });
        }
        v::range("duration_ms", self.duration_ms, 0.0, MAX_DURATION_MS)?;
        v::text_opt(
            "error_message",
            self.error_message.as_deref(),
            v::MAX_TEXT_LEN,
        )?;
        self.data_verification.validate()?;
        self.resource_metrics.validate()?;
        v::non_negative_opt("upstream_data_age_seconds", self.upstream_data_age_seconds)?;
        v::count_opt(
            "downstream_consumers_waiting",
            self.downstream_consumers_waiting,
        )?;
        v::max_items(
            "custom_metrics",
            self.custom_metrics.len(),
            MAX_CUSTOM_METRICS,
        )?;
        for key in self.custom_metrics.keys() {
            v::text("custom_metrics key", key, v::MAX_ID_LEN)?;
        }
        Ok(())
    }
}

impl Validate for DataVerification {
    fn validate(&self) -> Result<(), ValidationError> {
        const P: &str = "data_verification.";
        let counts = [
            ("records_fetched", self.records_fetched),
            ("records_processed", self.records_processed),
            ("records_stored", self.records_stored),
            ("records_failed", self.records_failed),
            ("records_skipped", self.records_skipped),
            ("validation_checks_passed", self.validation_checks_passed),
            ("validation_checks_failed", self.validation_checks_failed),
            ("api_calls_made", self.api_calls_made),
            ("api_calls_succeeded", self.api_calls_succeeded),
            ("api_calls_failed", self.api_calls_failed),
            ("api_quota_remaining", self.api_quota_remaining),
            ("cache_hits", self.cache_hits),
            ("cache_misses", self.cache_misses),
            ("cache_writes", self.cache_writes),
        ];
        for (name, value) in counts {
            v::count_opt(&format!("{P}{name}"), value)?;
        }
        let seconds = [
            ("newest_record_age_seconds", self.newest_record_age_seconds),
            ("oldest_record_age_seconds", self.oldest_record_age_seconds),
            ("avg_record_age_seconds", self.avg_record_age_seconds),
            ("cache_ttl_seconds", self.cache_ttl_seconds),
        ];
        for (name, value) in seconds {
            v::non_negative_opt(&format!("{P}{name}"), value)?;
        }
        v::max_items(
            &format!("{P}missing_fields"),
            self.missing_fields.len(),
            MAX_FIELD_LIST,
        )?;
        for (i, f) in self.missing_fields.iter().enumerate() {
            v::text(&format!("{P}missing_fields[{i}]"), f, v::MAX_ID_LEN)?;
        }
        v::max_items(
            &format!("{P}null_field_counts"),
            self.null_field_counts.len(),
            MAX_FIELD_LIST,
        )?;
        for (field, n) in &self.null_field_counts {
            v::text(&format!("{P}null_field_counts key"), field, v::MAX_ID_LEN)?;
            v::count(&format!("{P}null_field_counts.{field}"), *n)?;
        }
        v::max_items(
            &format!("{P}validation_errors"),
            self.validation_errors.len(),
            MAX_VALIDATION_ERRORS,
        )?;
        for (i, e) in self.validation_errors.iter().enumerate() {
            v::text(&format!("{P}validation_errors[{i}]"), e, v::MAX_TEXT_LEN)?;
        }
        Ok(())
    }
}

impl Validate for ResourceMetrics {
    fn validate(&self) -> Result<(), ValidationError> {
        v::non_negative_opt("resource_metrics.memory_peak_mb", self.memory_peak_mb)?;
        v::non_negative_opt("resource_metrics.cpu_percent_avg", self.cpu_percent_avg)?;
        v::count_opt(
            "resource_metrics.network_bytes_received",
            self.network_bytes_received,
        )?;
        v::count_opt(
            "resource_metrics.database_query_count",
            self.database_query_count,
        )?;
        v::count_opt("resource_metrics.redis_operations", self.redis_operations)?;
        Ok(())
    }
}

/// A minimal valid report (a successful run of `duration_ms` starting at
/// `started_at`), for tests and examples.
pub fn example_report(
    execution_id: &str,
    worker_name: &str,
    started_at: f64,
    duration_ms: f64,
) -> WorkerExecutionReport {
    WorkerExecutionReport {
        execution_id: execution_id.to_string(),
        worker_name: worker_name.to_string(),
        host_id: Some("web-1".into()),
        started_at,
        completed_at: started_at + duration_ms / 1000.0,
        outcome: ExecutionOutcome::Success,
        duration_ms,
        error_message: None,
        data_verification: DataVerification::default(),
        resource_metrics: ResourceMetrics::default(),
        upstream_data_age_seconds: None,
        downstream_consumers_waiting: None,
        custom_metrics: serde_json::Map::new(),
    }
}

// ---------------------------------------------------------------------------
// Derived values: scores, learning metrics, anomalies, schedule status.
// ---------------------------------------------------------------------------

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
}

impl AnomalyKind {
    /// The wire name, also a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::DurationSpike => "DURATION_SPIKE",
            AnomalyKind::QualityDrop => "QUALITY_DROP",
            AnomalyKind::ResourceThreshold => "RESOURCE_THRESHOLD",
            AnomalyKind::ResourceSpike => "RESOURCE_SPIKE",
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

// ---------------------------------------------------------------------------
// Requests and replies of the worker queries.
// ---------------------------------------------------------------------------

/// `lull.v1.workers.executions` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerExecutionsRequest {
    /// The worker.
    pub worker_name: String,
    /// Most runs to return, newest first (default 20, at most 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

impl WorkerExecutionsRequest {
    /// `limit` or its default.
    pub fn effective_limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_EXECUTIONS_LIMIT)
    }
}

impl Validate for WorkerExecutionsRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        v::subject_token("worker_name", &self.worker_name)?;
        if let Some(l) = self.limit {
            v::int_range("limit", i64::from(l), 1, i64::from(MAX_EXECUTIONS_LIMIT))?;
        }
        Ok(())
    }
}

/// `lull.v1.workers.stats` and `lull.v1.workers.learning` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRequest {
    /// The worker.
    pub worker_name: String,
}

impl Validate for WorkerRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        v::subject_token("worker_name", &self.worker_name)
    }
}

/// `lull.v1.workers.executions` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerExecutionsReply {
    /// The worker.
    pub worker_name: String,
    /// Runs, newest first.
    pub executions: Vec<ScoredExecution>,
}

/// Runs per outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeCounts {
    /// `SUCCESS` runs.
    pub success: u64,
    /// `PARTIAL` runs.
    pub partial: u64,
    /// `FAILURE` runs.
    pub failure: u64,
    /// `TIMEOUT` runs.
    pub timeout: u64,
    /// `SKIPPED` runs.
    pub skipped: u64,
}

impl OutcomeCounts {
    /// Adds one run.
    pub fn add(&mut self, o: ExecutionOutcome) {
        match o {
            ExecutionOutcome::Success => self.success += 1,
            ExecutionOutcome::Partial => self.partial += 1,
            ExecutionOutcome::Failure => self.failure += 1,
            ExecutionOutcome::Timeout => self.timeout += 1,
            ExecutionOutcome::Skipped => self.skipped += 1,
        }
    }

    /// The count of one outcome.
    pub fn get(&self, o: ExecutionOutcome) -> u64 {
        match o {
            ExecutionOutcome::Success => self.success,
            ExecutionOutcome::Partial => self.partial,
            ExecutionOutcome::Failure => self.failure,
            ExecutionOutcome::Timeout => self.timeout,
            ExecutionOutcome::Skipped => self.skipped,
        }
    }

    /// All runs.
    pub fn total(&self) -> u64 {
        self.success + self.partial + self.failure + self.timeout + self.skipped
    }
}

/// One point of a score trend.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScorePoint {
    /// Unix seconds: the run's start.
    pub started_at: f64,
    /// Its overall score.
    pub overall_score: f64,
    /// Its level.
    pub quality_level: QualityLevel,
}

/// `lull.v1.workers.stats` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatsReply {
    /// The worker.
    pub worker_name: String,
    /// All runs ever recorded.
    pub total_executions: u64,
    /// `SUCCESS` runs.
    pub successful_executions: u64,
    /// `FAILURE` and `TIMEOUT` runs.
    pub failed_executions: u64,
    /// Runs per outcome.
    pub outcomes: OutcomeCounts,
    /// `SUCCESS` share of all runs, 0..1.
    pub success_rate: f64,
    /// `SUCCESS` share of the recent window, 0..1.
    pub recent_success_rate: Option<f64>,
    /// Mean duration of all runs except `SKIPPED`, ms.
    pub avg_duration_ms: Option<f64>,
    /// Mean duration of the recent `SUCCESS`/`PARTIAL` runs, ms.
    pub rolling_avg_duration_ms: Option<f64>,
    /// Mean records per run, over runs that reported a volume.
    pub avg_records_processed: Option<f64>,
    /// Sum of records processed (or fetched when processed is absent).
    pub total_records_processed: u64,
    /// Mean overall score of all runs.
    pub avg_overall_score: Option<f64>,
    /// Mean overall score of the recent window.
    pub rolling_avg_overall_score: Option<f64>,
    /// Overall score of the latest run.
    pub last_overall_score: Option<f64>,
    /// Level of the latest run.
    pub last_quality_level: Option<QualityLevel>,
    /// Outcome of the latest run.
    pub last_outcome: Option<ExecutionOutcome>,
    /// Unix seconds: start of the latest run.
    pub last_run_at: Option<f64>,
    /// Unix seconds: end of the latest `SUCCESS` run.
    pub last_success_at: Option<f64>,
    /// Recent overall scores, oldest first.
    pub score_trend: Vec<ScorePoint>,
    /// Schedule (missed-run) status now.
    pub schedule: ScheduleStatus,
    /// Recent anomalies, newest first.
    pub recent_anomalies: Vec<Anomaly>,
}

/// Performance of the runs started in one hour of the day.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HourPerformance {
    /// UTC hour, 0..23.
    pub hour: u8,
    /// Runs.
    pub executions: u64,
    /// `SUCCESS` share, 0..1.
    pub success_rate: f64,
    /// Mean duration of the runs except `SKIPPED`, ms.
    pub avg_duration_ms: Option<f64>,
    /// Mean overall score.
    pub avg_score: f64,
}

/// Performance of the runs started on one day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DayPerformance {
    /// UTC day of week, 0 = Monday.
    pub day: u8,
    /// Runs.
    pub executions: u64,
    /// `SUCCESS` share, 0..1.
    pub success_rate: f64,
    /// Mean duration of the runs except `SKIPPED`, ms.
    pub avg_duration_ms: Option<f64>,
    /// Mean overall score.
    pub avg_score: f64,
}

/// `lull.v1.workers.learning` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerLearningReply {
    /// The worker.
    pub worker_name: String,
    /// Best UTC hour to run (highest mean score among hours with enough runs).
    pub optimal_hour: Option<u8>,
    /// Best UTC day of week to run (0 = Monday).
    pub optimal_day: Option<u8>,
    /// Hours with at least one run.
    pub hourly_performance: Vec<HourPerformance>,
    /// Days with at least one run.
    pub daily_performance: Vec<DayPerformance>,
    /// Current run-time direction.
    pub duration_trend: Option<DurationTrend>,
    /// Current volume direction.
    pub data_volume_trend: Option<VolumeTrend>,
    /// Mean records of the recent runs that reported a volume.
    pub recent_avg_records: Option<f64>,
    /// Expected interval between runs, seconds (configured or learned).
    pub expected_period_sec: Option<f64>,
    /// Suggested optimisations.
    pub suggestions: Vec<Recommendation>,
}

/// Runs started in one hour of the day, all workers together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourLoad {
    /// UTC hour, 0..23.
    pub hour: u8,
    /// Runs.
    pub executions: u64,
}

/// A worker that needs attention, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttentionItem {
    /// The worker.
    pub worker_name: String,
    /// Reasons, with numbers.
    pub reasons: Vec<String>,
    /// Overall score of its latest run.
    pub last_overall_score: Option<f64>,
    /// Level of its latest run.
    pub last_quality_level: Option<QualityLevel>,
    /// Its schedule state.
    pub schedule_state: ScheduleState,
}

/// `lull.v1.learning.system` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemLearningReply {
    /// Unix seconds the view was computed at.
    pub generated_at: f64,
    /// Length of the recent window, hours (the current hour and the ones before).
    pub window_hours: u32,
    /// Workers known.
    pub workers: u64,
    /// Runs started in the window, all workers.
    pub total_executions_24h: u64,
    /// Mean overall score of the runs in the window.
    pub average_score: Option<f64>,
    /// Hours of the day with the most runs (all history), busiest first.
    pub busiest_hours: Vec<HourLoad>,
    /// Hours of the day with the fewest runs (all history), quietest first.
    pub quietest_hours: Vec<HourLoad>,
    /// Workers needing attention, worst first.
    pub workers_needing_attention: Vec<AttentionItem>,
    /// Suggestions across all workers.
    pub optimization_opportunities: Vec<Recommendation>,
    /// Schedule status of every worker.
    pub schedules: Vec<ScheduleStatus>,
}

/// Data quality of one worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerQuality {
    /// The worker.
    pub worker_name: String,
    /// Mean overall score of its recent runs.
    pub quality_score: Option<f64>,
    /// Level of `quality_score`.
    pub quality_level: Option<QualityLevel>,
    /// Mean data-quality score of its recent runs that had one.
    pub data_quality_score: Option<f64>,
    /// All its runs.
    pub executions: u64,
    /// Records processed, all time.
    pub records_processed: u64,
    /// Failed validations, all time.
    pub validation_failures: u64,
    /// Runs that hit a rate limit, all time.
    pub rate_limit_incidents: u64,
}

/// `lull.v1.data_quality.summary` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataQualitySummaryReply {
    /// Unix seconds the view was computed at.
    pub generated_at: f64,
    /// Level of `overall_score`.
    pub overall_quality_level: Option<QualityLevel>,
    /// Mean of the workers' `quality_score`s (each worker counts once).
    pub overall_score: Option<f64>,
    /// Per-worker quality, worst first.
    pub workers: Vec<WorkerQuality>,
    /// Records processed, all time, all workers.
    pub total_records_processed: u64,
    /// Records processed in the recent window.
    pub records_processed_24h: u64,
    /// Failed validations, all time.
    pub validation_failures: u64,
    /// Failed validations in the recent window.
    pub validation_failures_24h: u64,
    /// Runs that hit a rate limit, all time.
    pub rate_limit_incidents: u64,
    /// Runs that hit a rate limit in the recent window.
    pub rate_limit_incidents_24h: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{decode, DEFAULT_MAX_PAYLOAD};

    fn full_report() -> WorkerExecutionReport {
        let mut r = example_report("exec-1", "youtube_worker", 1_763_026_000.0, 5000.0);
        r.data_verification = DataVerification {
            records_fetched: Some(200),
            records_processed: Some(195),
            records_stored: Some(195),
            records_failed: Some(5),
            records_skipped: Some(0),
            newest_record_age_seconds: Some(30.0),
            oldest_record_age_seconds: Some(3600.0),
            avg_record_age_seconds: Some(900.5),
            expected_fields_present: Some(false),
            missing_fields: vec!["thumbnail_url".into()],
            null_field_counts: BTreeMap::from([("description".to_string(), 3)]),
            validation_checks_passed: Some(19),
            validation_checks_failed: Some(1),
            validation_errors: vec!["video 42: negative view count".into()],
            api_calls_made: Some(4),
            api_calls_succeeded: Some(4),
            api_calls_failed: Some(0),
            api_rate_limited: Some(false),
            api_quota_remaining: Some(9808),
            cache_hits: Some(10),
            cache_misses: Some(2),
            cache_writes: Some(4),
            cache_ttl_seconds: Some(300.0),
        };
        r.resource_metrics = ResourceMetrics {
            memory_peak_mb: Some(128.0),
            cpu_percent_avg: Some(35.5),
            network_bytes_received: Some(1_048_576),
            database_query_count: Some(12),
            redis_operations: Some(12),
        };
        r.upstream_data_age_seconds = Some(60.0);
        r.downstream_consumers_waiting = Some(0);
        r.error_message = None;
        r.custom_metrics.insert(
            "categories_fetched".into(),
            serde_json::json!(["gaming", "music", "entertainment"]),
        );
        r.custom_metrics
            .insert("quota_used_today".into(), serde_json::json!(192));
        r
    }

    fn decode_value(v: serde_json::Value) -> Result<WorkerExecutionReport, ValidationError> {
        decode(&serde_json::to_vec(&v).unwrap(), DEFAULT_MAX_PAYLOAD)
    }

    #[test]
    fn full_report_round_trips() {
        let r = full_report();
        let bytes = serde_json::to_vec(&r).unwrap();
        let back: WorkerExecutionReport = decode(&bytes, DEFAULT_MAX_PAYLOAD).unwrap();
        assert_eq!(back, r);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["outcome"], "SUCCESS");
        assert_eq!(v["data_verification"]["missing_fields"][0], "thumbnail_url");
        assert_eq!(
            v["data_verification"]["null_field_counts"]["description"],
            3
        );
        assert_eq!(v["data_verification"]["api_rate_limited"], false);
        assert_eq!(v["resource_metrics"]["memory_peak_mb"], 128.0);
        assert_eq!(v["custom_metrics"]["quota_used_today"], 192);
    }

    #[test]
    fn minimal_report_decodes_with_empty_sections() {
        let json = r#"{"execution_id":"e1","worker_name":"coach_cleanup_worker",
            "started_at":1763026000.0,"completed_at":1763026002.5,
            "outcome":"PARTIAL","duration_ms":2500}"#;
        let r: WorkerExecutionReport = decode(json.as_bytes(), DEFAULT_MAX_PAYLOAD).unwrap();
        assert_eq!(r.outcome, ExecutionOutcome::Partial);
        assert_eq!(r.host_id, None);
        assert_eq!(r.data_verification, DataVerification::default());
        assert_eq!(r.resource_metrics, ResourceMetrics::default());
        assert!(r.custom_metrics.is_empty());
        // Empty sections are left out when encoding again.
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["data_verification"], serde_json::json!({}));
    }

    #[test]
    fn outcomes_have_protocol_names() {
        for o in ExecutionOutcome::ALL {
            assert_eq!(
                serde_json::to_string(&o).unwrap(),
                format!("\"{}\"", o.as_str())
            );
        }
        let mut v = serde_json::to_value(full_report()).unwrap();
        v["outcome"] = serde_json::json!("success");
        assert!(matches!(decode_value(v), Err(ValidationError::Json(_))));
        let mut v = serde_json::to_value(full_report()).unwrap();
        v["outcome"] = serde_json::json!("CRASHED");
        assert!(decode_value(v).is_err());
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let mut v = serde_json::to_value(full_report()).unwrap();
        v["schema_version"] = serde_json::json!(2);
        v["data_verification"]["future_metric"] = serde_json::json!(1);
        assert!(decode_value(v).is_ok());
    }

    #[test]
    fn missing_required_fields_are_rejected() {
        for field in [
            "execution_id",
            "worker_name",
            "started_at",
            "completed_at",
            "outcome",
            "duration_ms",
        ] {
            let mut v = serde_json::to_value(full_report()).unwrap();
            v.as_object_mut().unwrap().remove(field);
            let err = decode_value(v).unwrap_err();
            assert!(err.to_string().contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn negative_counts_are_rejected_with_the_field_path() {
        let mut v = serde_json::to_value(full_report()).unwrap();
        v["data_verification"]["records_failed"] = serde_json::json!(-1);
        assert_eq!(
            decode_value(v).unwrap_err().to_string(),
            "data_verification.records_failed must be >= 0, got -1"
        );
        let mut v = serde_json::to_value(full_report()).unwrap();
        v["data_verification"]["null_field_counts"]["description"] = serde_json::json!(-2);
        assert_eq!(
            decode_value(v).unwrap_err().to_string(),
            "data_verification.null_field_counts.description must be >= 0, got -2"
        );
        let mut v = serde_json::to_value(full_report()).unwrap();
        v["resource_metrics"]["memory_peak_mb"] = serde_json::json!(-0.5);
        assert!(decode_value(v).is_err());
        let mut v = serde_json::to_value(full_report()).unwrap();
        v["duration_ms"] = serde_json::json!(-5);
        assert!(decode_value(v).is_err());
        let mut v = serde_json::to_value(full_report()).unwrap();
        v["downstream_consumers_waiting"] = serde_json::json!(-5);
        assert!(decode_value(v).is_err());
    }

    #[test]
    fn non_finite_numbers_are_rejected() {
        let mut r = full_report();
        r.resource_metrics.cpu_percent_avg = Some(f64::NAN);
        assert!(matches!(
            r.validate(),
            Err(ValidationError::NotFinite { .. })
        ));
        let mut r = full_report();
        r.data_verification.newest_record_age_seconds = Some(f64::INFINITY);
        assert!(r.validate().is_err());
        let mut r = full_report();
        r.duration_ms = f64::NAN;
        assert!(r.validate().is_err());
        let mut r = full_report();
        r.started_at = f64::NEG_INFINITY;
        assert!(r.validate().is_err());
        // JSON cannot carry NaN; an overflowing literal is refused too.
        let mut s = serde_json::to_string(&full_report()).unwrap();
        s = s.replace("\"duration_ms\":5000.0", "\"duration_ms\":1e999");
        assert!(s.contains("1e999"));
        assert!(decode::<WorkerExecutionReport>(s.as_bytes(), DEFAULT_MAX_PAYLOAD).is_err());
    }

    #[test]
    fn completed_before_started_is_rejected() {
        let mut r = full_report();
        r.completed_at = r.started_at - 1.0;
        let err = r.validate().unwrap_err().to_string();
        assert!(
            err.starts_with("completed_at must be >= started_at"),
            "{err}"
        );
        r.completed_at = r.started_at;
        assert!(r.validate().is_ok());
    }

    #[test]
    fn identifiers_are_checked() {
        let mut r = full_report();
        r.worker_name = "a.b".into();
        assert!(r.validate().is_err());
        let mut r = full_report();
        r.worker_name = String::new();
        assert!(r.validate().is_err());
        let mut r = full_report();
        r.execution_id = " ".into();
        assert!(r.validate().is_err());
        let mut r = full_report();
        r.host_id = Some("web 1".into());
        assert!(r.validate().is_err());
        let mut r = full_report();
        r.execution_id = "2f1c9a7e-1b7d-4e55-a2c0-5f0f6ad0b0c1".into();
        assert!(r.validate().is_ok());
    }

    #[test]
    fn oversized_lists_and_texts_are_rejected() {
        let mut r = full_report();
        r.data_verification.missing_fields = vec!["f".into(); MAX_FIELD_LIST + 1];
        assert!(r
            .validate()
            .unwrap_err()
            .to_string()
            .contains("missing_fields"));
        let mut r = full_report();
        r.data_verification.validation_errors = vec!["e".into(); MAX_VALIDATION_ERRORS + 1];
        assert!(r.validate().is_err());
        let mut r = full_report();
        r.data_verification.validation_errors = vec!["e".repeat(v::MAX_TEXT_LEN + 1)];
        assert!(r.validate().is_err());
        let mut r = full_report();
        r.data_verification.null_field_counts =
            (0..=MAX_FIELD_LIST).map(|i| (format!("f{i}"), 1)).collect();
        assert!(r.validate().is_err());
        let mut r = full_report();
        r.custom_metrics = (0..=MAX_CUSTOM_METRICS)
            .map(|i| (format!("m{i}"), serde_json::json!(i)))
            .collect();
        assert!(r.validate().is_err());
        let mut r = full_report();
        r.error_message = Some("x".repeat(v::MAX_TEXT_LEN + 1));
        assert!(r.validate().is_err());
        let mut r = full_report();
        r.duration_ms = MAX_DURATION_MS + 1.0;
        assert!(r.validate().is_err());
        // Over the payload limit before any rule.
        let mut r = full_report();
        r.custom_metrics.insert(
            "blob".into(),
            serde_json::json!("x".repeat(DEFAULT_MAX_PAYLOAD)),
        );
        let bytes = serde_json::to_vec(&r).unwrap();
        assert!(matches!(
            decode::<WorkerExecutionReport>(&bytes, DEFAULT_MAX_PAYLOAD),
            Err(ValidationError::TooLarge { .. })
        ));
    }

    #[test]
    fn verification_helpers() {
        let r = full_report();
        assert_eq!(r.data_verification.volume(), Some(195));
        assert_eq!(r.data_verification.validation_failures(), 1);
        assert!(!r.data_verification.rate_limited());
        let d = DataVerification {
            records_fetched: Some(7),
            validation_errors: vec!["a".into(), "b".into()],
            api_rate_limited: Some(true),
            ..Default::default()
        };
        assert_eq!(d.volume(), Some(7));
        assert_eq!(d.validation_failures(), 2);
        assert!(d.rate_limited());
        assert_eq!(DataVerification::default().volume(), None);
    }

    #[test]
    fn quality_level_boundaries() {
        let cases = [
            (100.0, QualityLevel::Excellent),
            (90.0, QualityLevel::Excellent),
            (89.9, QualityLevel::Good),
            (70.0, QualityLevel::Good),
            (69.9, QualityLevel::Degraded),
            (50.0, QualityLevel::Degraded),
            (49.9, QualityLevel::Poor),
            (30.0, QualityLevel::Poor),
            (29.9, QualityLevel::Failed),
            (0.0, QualityLevel::Failed),
            (f64::NAN, QualityLevel::Failed),
        ];
        for (s, l) in cases {
            assert_eq!(QualityLevel::from_score(s), l, "{s}");
        }
        let l: QualityLevel = serde_json::from_str("\"Excellent\"").unwrap();
        assert_eq!(l, QualityLevel::Excellent);
        assert_eq!(serde_json::to_string(&l).unwrap(), "\"EXCELLENT\"");
        let t: DurationTrend = serde_json::from_str("\"faster\"").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"FASTER\"");
    }

    #[test]
    fn scored_execution_is_flat() {
        let s = ScoredExecution {
            report: full_report(),
            scores: ExecutionScores {
                reliability_score: 100.0,
                performance_score: None,
                data_quality_score: Some(88.5),
                resource_efficiency_score: Some(100.0),
                overall_score: 95.7,
                quality_level: QualityLevel::Excellent,
            },
            learning: LearningMetrics {
                time_of_day_utc: 9,
                day_of_week: 3,
                execution_number_today: 1,
                time_since_last_run_seconds: None,
                duration_vs_avg: None,
                duration_trend: None,
                data_volume_trend: Some(VolumeTrend::Stable),
                upstream_data_age_seconds: None,
                downstream_consumers_waiting: None,
            },
            anomalies: vec![Anomaly {
                worker_name: "youtube_worker".into(),
                execution_id: "exec-1".into(),
                detected_at: 1.0,
                kind: AnomalyKind::DurationSpike,
                metric: "duration_ms".into(),
                message: "m".into(),
                evidence: BTreeMap::from([("modified_z".to_string(), 9.1)]),
            }],
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["execution_id"], "exec-1");
        assert_eq!(v["overall_score"], 95.7);
        assert_eq!(v["quality_level"], "EXCELLENT");
        assert_eq!(v["performance_score"], serde_json::Value::Null);
        assert_eq!(v["learning"]["data_volume_trend"], "STABLE");
        assert_eq!(v["anomalies"][0]["kind"], "DURATION_SPIKE");
        let back: ScoredExecution = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn requests_are_validated() {
        let r: WorkerExecutionsRequest =
            decode(br#"{"worker_name":"sse_guardian"}"#, 1024).unwrap();
        assert_eq!(r.effective_limit(), DEFAULT_EXECUTIONS_LIMIT);
        assert!(decode::<WorkerExecutionsRequest>(
            br#"{"worker_name":"sse_guardian","limit":0}"#,
            1024
        )
        .is_err());
        assert!(decode::<WorkerExecutionsRequest>(
            br#"{"worker_name":"sse_guardian","limit":501}"#,
            1024
        )
        .is_err());
        assert!(decode::<WorkerRequest>(br#"{"worker_name":"a>b"}"#, 1024).is_err());
        assert!(
            decode::<WorkerRequest>(br#"{"worker_name":"intel_aggregation_daily"}"#, 1024).is_ok()
        );
    }

    #[test]
    fn schedule_and_outcome_helpers() {
        assert_eq!(ScheduleState::Missed.as_gauge(), 2.0);
        assert_eq!(
            serde_json::to_string(&ScheduleState::Late).unwrap(),
            "\"LATE\""
        );
        let mut c = OutcomeCounts::default();
        for o in ExecutionOutcome::ALL {
            c.add(o);
        }
        c.add(ExecutionOutcome::Success);
        assert_eq!(c.total(), 6);
        assert_eq!(c.get(ExecutionOutcome::Success), 2);
        assert!(ExecutionOutcome::Partial.did_work());
        assert!(ExecutionOutcome::Timeout.is_failure());
        assert!(!ExecutionOutcome::Skipped.is_failure());
    }
}
