//! Requests and replies of the worker queries (`workers.executions`,
//! `workers.stats`, `workers.learning`, `learning.system`,
//! `data_quality.summary`).

use serde::{Deserialize, Serialize};

use super::derived::{
    Anomaly, DurationTrend, QualityLevel, Recommendation, ScheduleState, ScheduleStatus,
    ScoredExecution, VolumeTrend,
};
use super::report::{ExecutionOutcome, DEFAULT_EXECUTIONS_LIMIT, MAX_EXECUTIONS_LIMIT};
use crate::error::ValidationError;
use crate::validate::{self as v, Validate};

/// `lull.v1.workers.executions` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerExecutionsRequest {
    /// The worker.
    pub worker_name: String,
    /// Most runs to return, newest first (default 20, at most 500).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::opt"
    )]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (opaque); absent: the newest
    /// runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
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
        match &self.cursor {
            Some(c) => ExecutionCursor::parse(c).map(|_| ()),
            None => Ok(()),
        }
    }
}

/// The position of a run in `workers.executions`' order (newest first):
/// its start and id, written `<started_at>|<execution_id>` in a cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionCursor {
    /// Unix seconds: the run's start.
    pub started_at: f64,
    /// The run's id.
    pub execution_id: String,
}

impl ExecutionCursor {
    /// The cursor text of a run.
    pub fn encode(started_at: f64, execution_id: &str) -> String {
        format!("{started_at:?}|{execution_id}")
    }

    /// Reads a cursor made by [`ExecutionCursor::encode`]; anything else is
    /// an invalid `cursor`.
    pub fn parse(text: &str) -> Result<ExecutionCursor, ValidationError> {
        let bad = || ValidationError::Invalid {
            field: "cursor".into(),
            reason: "is not a cursor of workers.executions; pass next_cursor unchanged".into(),
        };
        v::text("cursor", text, crate::msg::page::MAX_CURSOR_LEN)?;
        let (t, id) = text.split_once('|').ok_or_else(bad)?;
        let started_at: f64 = t.parse().map_err(|_| bad())?;
        if !started_at.is_finite() || started_at < 0.0 || v::id("cursor", id).is_err() {
            return Err(bad());
        }
        Ok(ExecutionCursor {
            started_at,
            execution_id: id.to_string(),
        })
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
    /// More (older) runs remain: pass it as `cursor` for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
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
    /// Schedule status of every worker (of this page's workers).
    pub schedules: Vec<ScheduleStatus>,
    /// More workers after this page (by name): pass it as `cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
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
    /// Custom-metric threshold breaches (`CUSTOM_THRESHOLD` anomalies), all time.
    #[serde(default)]
    pub threshold_breaches: u64,
    /// The threshold breaches of the worker's latest run: the alerts that
    /// stand until a run comes back under the thresholds.
    #[serde(default)]
    pub active_breaches: Vec<Anomaly>,
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
    /// Custom-metric threshold breaches, all time, all workers.
    #[serde(default)]
    pub threshold_breaches: u64,
    /// Custom-metric threshold breaches in the recent window.
    #[serde(default)]
    pub threshold_breaches_24h: u64,
    /// Workers whose latest run breaches a threshold rule.
    #[serde(default)]
    pub workers_breaching: u64,
    /// More workers after this page (by name): pass it as `cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
