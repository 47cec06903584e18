//! The durable worker execution report (seed 003, `lull.report.worker.*`):
//! outcome, data verification and resource metrics, their validation and
//! limits, and [`example_report`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::validate::{self as v, CheckTimes, TimeWindow, Validate};

/// Most entries of `missing_fields` and `null_field_counts`.
pub const MAX_FIELD_LIST: usize = 256;

/// Most entries of `validation_errors`.
pub const MAX_VALIDATION_ERRORS: usize = 100;

/// Most top-level keys of `custom_metrics`.
pub const MAX_CUSTOM_METRICS: usize = 128;

/// Longest accepted run, in milliseconds (30 days).
pub const MAX_DURATION_MS: f64 = 30.0 * 86_400.0 * 1000.0;

/// Largest accepted age or TTL in seconds (`*_age_seconds`,
/// `cache_ttl_seconds`): 10 years.
pub const MAX_AGE_SECONDS: f64 = 10.0 * 365.0 * 86_400.0;

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
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt"
    )]
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
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt"
    )]
    pub records_fetched: Option<i64>,
    /// Records successfully processed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt"
    )]
    pub records_processed: Option<i64>,
    /// Records written to storage.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt"
    )]
    pub records_stored: Option<i64>,
    /// Records that failed processing.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt"
    )]
    pub records_failed: Option<i64>,
    /// Records intentionally skipped.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt"
    )]
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
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt"
    )]
    pub validation_checks_passed: Option<i64>,
    /// Failed validations.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt"
    )]
    pub validation_checks_failed: Option<i64>,
    /// Messages of the failed validations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation_errors: Vec<String>,

    /// Total API requests.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt"
    )]
    pub api_calls_made: Option<i64>,
    /// Successful API requests.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt"
    )]
    pub api_calls_succeeded: Option<i64>,
    /// Failed API requests.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt"
    )]
    pub api_calls_failed: Option<i64>,
    /// Whether the run hit an API rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_rate_limited: Option<bool>,
    /// Remaining API quota.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt"
    )]
    pub api_quota_remaining: Option<i64>,

    /// Data served from cache.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt"
    )]
    pub cache_hits: Option<i64>,
    /// Cache misses.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt"
    )]
    pub cache_misses: Option<i64>,
    /// New cache entries.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt"
    )]
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
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt"
    )]
    pub network_bytes_received: Option<i64>,
    /// Database queries made (optimise if over 100).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt"
    )]
    pub database_query_count: Option<i64>,
    /// Redis commands issued.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt"
    )]
    pub redis_operations: Option<i64>,
}

impl CheckTimes for WorkerExecutionReport {
    fn check_times(&self, now: f64, window: &TimeWindow) -> Result<(), ValidationError> {
        v::time_in_window("started_at", self.started_at, now, window)?;
        v::time_in_window("completed_at", self.completed_at, now, window)
    }
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
        let span = self.completed_at - self.started_at;
        if span > MAX_DURATION_MS / 1000.0 {
            return Err(ValidationError::OutOfRange {
                field: "completed_at".into(),
                rule: format!("at most {}s after started_at", MAX_DURATION_MS / 1000.0),
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
        v::range_opt(
            "upstream_data_age_seconds",
            self.upstream_data_age_seconds,
            0.0,
            MAX_AGE_SECONDS,
        )?;
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
            v::range_opt(&format!("{P}{name}"), value, 0.0, MAX_AGE_SECONDS)?;
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
