//! Durable region reports (docs/protocol.md §2): a build record
//! (`lull.report.build.<region>`) with its fatigues, and a bare fatigue
//! event (`lull.report.fatigue.<region>`), with their validation and the
//! migration of the legacy region-level fatigue fields.

use serde::{Deserialize, Serialize};

use super::limits::{MAX_BUILD_SECONDS, MAX_FATIGUES_PER_BUILD, MAX_FATIGUE_HOURS, MAX_USD};
use super::whole;
use crate::error::ValidationError;
use crate::validate::{self as v, CheckTimes, TimeWindow, Validate};

/// Severity of a fatigue event (seed 000): FATIGUED (4 h) or EXHAUSTED (24 h).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum FatigueType {
    /// Short rest (default 4 hours). The default when a producer omits the type.
    #[default]
    Fatigued,
    /// Long rest (default 24 hours).
    Exhausted,
}

impl FatigueType {
    /// The wire name (`FATIGUED`, `EXHAUSTED`).
    pub fn as_str(self) -> &'static str {
        match self {
            FatigueType::Fatigued => "FATIGUED",
            FatigueType::Exhausted => "EXHAUSTED",
        }
    }
}

/// One fatigue event inside a build's `fatigues[]` (seed 000, plain names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildFatigue {
    /// Human-readable reason, e.g. `Queue timeout - 45min QUEUED`.
    pub fatigue_reason: String,
    /// Machine-readable reason, e.g. `queue-timeout` (nullable: legacy data has none).
    #[serde(default)]
    pub fatigue_reason_code: Option<String>,
    /// Unix seconds when the fatigue occurred.
    pub fatigue_time: f64,
    /// How long the region rests, hours; `null` means the default of its type.
    #[serde(default, serialize_with = "whole::opt")]
    pub fatigue_duration_hours: Option<f64>,
    /// FATIGUED or EXHAUSTED (default FATIGUED when omitted).
    #[serde(default)]
    pub fatigue_type: FatigueType,
}

impl BuildFatigue {
    fn validate_at(&self, path: &str) -> Result<(), ValidationError> {
        validate_fatigue_fields(
            path,
            &self.fatigue_reason,
            self.fatigue_reason_code.as_deref(),
            self.fatigue_time,
            self.fatigue_duration_hours,
        )
    }
}

fn validate_fatigue_fields(
    path: &str,
    reason: &str,
    code: Option<&str>,
    time: f64,
    hours: Option<f64>,
) -> Result<(), ValidationError> {
    if reason.trim().is_empty() {
        return Err(ValidationError::Missing {
            field: format!("{path}fatigue_reason"),
        });
    }
    v::text(&format!("{path}fatigue_reason"), reason, v::MAX_TEXT_LEN)?;
    v::text_opt(&format!("{path}fatigue_reason_code"), code, v::MAX_ID_LEN)?;
    v::non_negative(&format!("{path}fatigue_time"), time)?;
    if let Some(h) = hours {
        let field = format!("{path}fatigue_duration_hours");
        v::range(&field, h, 0.0, MAX_FATIGUE_HOURS)?;
        if h <= 0.0 {
            return Err(ValidationError::OutOfRange {
                field,
                rule: "> 0".into(),
                value: format!("{h}"),
            });
        }
    }
    Ok(())
}

/// One cloud build, exactly as seed 000 shows an entry of `recent_builds`,
/// plus `region`. Published on `lull.report.build.<region>` with
/// `Nats-Msg-Id` = `build_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildRecord {
    /// Unix seconds when the build finished (orders the region's history).
    pub timestamp: f64,
    /// Unique build id; a second record with the same id is a duplicate.
    pub build_id: String,
    /// The region. Required in a report; inside a campaign stats document the
    /// region is the map key, so it is left out there (empty here).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    /// What was built, e.g. `pytorch-clean`.
    #[serde(default)]
    pub build_type: Option<String>,
    /// Machine type, e.g. `c3-standard-176`.
    #[serde(default)]
    pub machine_type: Option<String>,
    /// Whether the build succeeded.
    pub success: bool,
    /// Final build status, e.g. `SUCCESS`, `FAILURE`, `TIMEOUT`.
    #[serde(default)]
    pub status: Option<String>,
    /// Total time including the queue wait, seconds.
    #[serde(default, serialize_with = "whole::opt")]
    pub duration_seconds: Option<f64>,
    /// Total time including the queue wait, minutes.
    #[serde(default)]
    pub duration_minutes: Option<f64>,
    /// Time spent QUEUED, seconds.
    #[serde(default, serialize_with = "whole::opt")]
    pub queue_wait_seconds: Option<f64>,
    /// Time spent QUEUED, minutes.
    #[serde(default)]
    pub queue_wait_minutes: Option<f64>,
    /// Time spent WORKING, seconds.
    #[serde(default, serialize_with = "whole::opt")]
    pub working_seconds: Option<f64>,
    /// Number of build steps.
    #[serde(default, deserialize_with = "crate::int::opt")]
    pub total_steps: Option<u32>,
    /// The step that failed, if any.
    #[serde(default, deserialize_with = "crate::int::opt")]
    pub failed_step: Option<u32>,
    /// Spot price of the machine, USD per hour.
    #[serde(default)]
    pub spot_price_per_hour: Option<f64>,
    /// What the build cost, USD.
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// Error message of a failed build.
    #[serde(default)]
    pub error: Option<String>,
    /// Which state timed out (`QUEUED`, `WORKING`), if the build timed out.
    #[serde(default)]
    pub timeout_reason: Option<String>,
    /// Fatigue events that happened in this build (scenario 1); empty for
    /// a normal success or failure.
    #[serde(default)]
    pub fatigues: Vec<BuildFatigue>,
}

impl BuildRecord {
    /// Total duration in minutes: `duration_minutes`, else `duration_seconds / 60`.
    pub fn duration_minutes_value(&self) -> f64 {
        minutes_of(self.duration_minutes, self.duration_seconds)
    }

    /// Queue wait in minutes: `queue_wait_minutes`, else
    /// `queue_wait_seconds / 60`, else 0.
    pub fn queue_wait_minutes_value(&self) -> f64 {
        minutes_of(self.queue_wait_minutes, self.queue_wait_seconds)
    }

    /// What the build cost: `cost_usd`, else `spot_price_per_hour` times the
    /// duration in hours (how seed 000's figures were made), else `None`.
    pub fn effective_cost_usd(&self) -> Option<f64> {
        self.cost_usd.or_else(|| {
            self.spot_price_per_hour
                .map(|p| p * self.duration_minutes_value() / 60.0)
        })
    }

    /// Checks every field except `region` (which a campaign document implies).
    pub fn validate_fields(&self) -> Result<(), ValidationError> {
        v::id("build_id", &self.build_id)?;
        v::non_negative("timestamp", self.timestamp)?;
        v::text_opt("build_type", self.build_type.as_deref(), v::MAX_ID_LEN)?;
        v::text_opt("machine_type", self.machine_type.as_deref(), v::MAX_ID_LEN)?;
        v::text_opt("status", self.status.as_deref(), v::MAX_ID_LEN)?;
        self.validate_durations()?;
        if let (Some(failed), Some(total)) = (self.failed_step, self.total_steps) {
            if failed > total {
                return Err(ValidationError::Invalid {
                    field: "failed_step".into(),
                    reason: format!("must not exceed total_steps ({failed} > {total})"),
                });
            }
        }
        v::range_opt(
            "spot_price_per_hour",
            self.spot_price_per_hour,
            0.0,
            MAX_USD,
        )?;
        v::range_opt("cost_usd", self.cost_usd, 0.0, MAX_USD)?;
        v::text_opt("error", self.error.as_deref(), v::MAX_TEXT_LEN)?;
        v::text_opt(
            "timeout_reason",
            self.timeout_reason.as_deref(),
            v::MAX_ID_LEN,
        )?;
        v::max_items("fatigues", self.fatigues.len(), MAX_FATIGUES_PER_BUILD)?;
        for (i, f) in self.fatigues.iter().enumerate() {
            f.validate_at(&format!("fatigues[{i}]."))?;
        }
        Ok(())
    }

    fn validate_durations(&self) -> Result<(), ValidationError> {
        let max_min = MAX_BUILD_SECONDS / 60.0;
        v::range_opt(
            "duration_seconds",
            self.duration_seconds,
            0.0,
            MAX_BUILD_SECONDS,
        )?;
        v::range_opt("duration_minutes", self.duration_minutes, 0.0, max_min)?;
        v::range_opt(
            "queue_wait_seconds",
            self.queue_wait_seconds,
            0.0,
            MAX_BUILD_SECONDS,
        )?;
        v::range_opt("queue_wait_minutes", self.queue_wait_minutes, 0.0, max_min)?;
        v::range_opt(
            "working_seconds",
            self.working_seconds,
            0.0,
            MAX_BUILD_SECONDS,
        )?;
        if self.duration_minutes.is_none() && self.duration_seconds.is_none() {
            return Err(ValidationError::Missing {
                field: "duration_minutes or duration_seconds".into(),
            });
        }
        Ok(())
    }
}

fn minutes_of(minutes: Option<f64>, seconds: Option<f64>) -> f64 {
    minutes.or_else(|| seconds.map(|s| s / 60.0)).unwrap_or(0.0)
}

impl CheckTimes for BuildRecord {
    fn check_times(&self, now: f64, window: &TimeWindow) -> Result<(), ValidationError> {
        v::time_in_window("timestamp", self.timestamp, now, window)?;
        for (i, f) in self.fatigues.iter().enumerate() {
            v::time_in_window(
                &format!("fatigues[{i}].fatigue_time"),
                f.fatigue_time,
                now,
                window,
            )?;
        }
        Ok(())
    }
}

impl Validate for BuildRecord {
    fn validate(&self) -> Result<(), ValidationError> {
        v::subject_token("region", &self.region)?;
        self.validate_fields()
    }
}

/// A fatigue event with no build (seed 000 scenario 2, e.g. a pool-creation
/// timeout). Published on `lull.report.fatigue.<region>` with
/// `Nats-Msg-Id` = `event_id`. A build's own fatigues travel inside its
/// build record instead; do not report them twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FatigueEventReport {
    /// Unique event id; a second report with the same id is a duplicate.
    pub event_id: String,
    /// The region.
    pub region: String,
    /// Human-readable reason, e.g. `Pool creation timeout`.
    pub fatigue_reason: String,
    /// Machine-readable reason, e.g. `beacon-timeout`.
    #[serde(default)]
    pub fatigue_reason_code: Option<String>,
    /// Unix seconds when the fatigue occurred.
    pub fatigue_time: f64,
    /// How long the region rests, hours; `null` means the default of its type.
    #[serde(default, serialize_with = "whole::opt")]
    pub fatigue_duration_hours: Option<f64>,
    /// FATIGUED or EXHAUSTED (default FATIGUED).
    #[serde(default)]
    pub fatigue_type: FatigueType,
    /// The underlying error text.
    #[serde(default)]
    pub error_message: Option<String>,
}

impl FatigueEventReport {
    /// The event's fatigue in the shape used inside build records.
    pub fn as_fatigue(&self) -> BuildFatigue {
        BuildFatigue {
            fatigue_reason: self.fatigue_reason.clone(),
            fatigue_reason_code: self.fatigue_reason_code.clone(),
            fatigue_time: self.fatigue_time,
            fatigue_duration_hours: self.fatigue_duration_hours,
            fatigue_type: self.fatigue_type,
        }
    }
}

impl CheckTimes for FatigueEventReport {
    fn check_times(&self, now: f64, window: &TimeWindow) -> Result<(), ValidationError> {
        v::time_in_window("fatigue_time", self.fatigue_time, now, window)
    }
}

impl Validate for FatigueEventReport {
    fn validate(&self) -> Result<(), ValidationError> {
        v::id("event_id", &self.event_id)?;
        v::subject_token("region", &self.region)?;
        validate_fatigue_fields(
            "",
            &self.fatigue_reason,
            self.fatigue_reason_code.as_deref(),
            self.fatigue_time,
            self.fatigue_duration_hours,
        )?;
        v::text_opt(
            "error_message",
            self.error_message.as_deref(),
            v::MAX_TEXT_LEN,
        )
    }
}
