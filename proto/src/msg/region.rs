//! Region build and fatigue reports and the campaign stats JSON (seeds 000, 001).
//!
//! Owns the wire shapes of PROTOCOL.md §2 (`lull.report.build.<region>`,
//! `lull.report.fatigue.<region>`) and §3 "Regions" (`lull.v1.regions.stats`,
//! `.select`, `.insights`), their validation, and the migration of the legacy
//! region-level `fatigue_reason` / `fatigue_time` fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::validate::{self as v, Validate};

/// `recent_builds` keeps the newest this many builds per region (seed 000).
pub const RECENT_BUILDS_LIMIT: usize = 100;
/// `last_error` is cut to this many characters (seed 001).
pub const LAST_ERROR_MAX_CHARS: usize = 80;
/// `last_fatigue_reason` is cut to this many characters (seed 001).
pub const LAST_FATIGUE_REASON_MAX_CHARS: usize = 60;
/// Most fatigue events accepted inside one build record.
pub const MAX_FATIGUES_PER_BUILD: usize = 64;
/// Longest accepted build duration or queue wait, in seconds (30 days).
pub const MAX_BUILD_SECONDS: f64 = 30.0 * 86_400.0;
/// Longest accepted fatigue duration, in hours (one year).
pub const MAX_FATIGUE_HOURS: f64 = 8_760.0;
/// Largest accepted `cost_usd` of one build and `spot_price_per_hour`.
pub const MAX_USD: f64 = 1_000_000.0;
/// Most regions accepted in one campaign stats document.
pub const MAX_REGIONS: usize = 1024;
/// Most `recent_builds` accepted per region when importing a document.
pub const MAX_RECENT_BUILDS_IMPORT: usize = 1000;
/// Most candidates in one `regions.select` request.
pub const MAX_CANDIDATES: usize = 256;

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
    #[serde(default)]
    pub total_steps: Option<u32>,
    /// The step that failed, if any.
    #[serde(default)]
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

/// Per-region aggregate: every field of seed 001 plus
/// `last_fatigue_reason_code` and `recent_builds` (seed 000).
///
/// Decoding also accepts the legacy region-level `fatigue_reason`,
/// `fatigue_reason_code` and `fatigue_time` and moves them to the
/// `last_fatigue_*` names (a missing code becomes `null`); serializing always
/// writes the new names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "RegionStatsWire")]
pub struct RegionStats {
    /// Builds recorded in this region.
    pub total_builds: u64,
    /// Successful builds.
    pub successes: u64,
    /// Failed builds.
    pub failures: u64,
    /// `successes / total_builds` as a percentage with one decimal (0 without builds).
    pub success_rate: f64,
    /// Sum of build durations, minutes.
    pub total_duration_minutes: f64,
    /// Sum of queue waits, minutes.
    pub total_queue_wait_minutes: f64,
    /// Average build duration, minutes (0 without builds).
    pub avg_duration_minutes: f64,
    /// Average queue wait, minutes (0 without builds).
    pub avg_queue_wait_minutes: f64,
    /// Shortest build, minutes (`null` without builds).
    pub fastest_minutes: Option<f64>,
    /// Longest build, minutes (`null` without builds).
    pub slowest_minutes: Option<f64>,
    /// Concise error of the newest failed build (at most 80 chars).
    pub last_error: Option<String>,
    /// Timestamp of that build.
    pub last_error_time: Option<f64>,
    /// Fatigue events ever recorded: a build's fatigues and bare events.
    pub fatigue_incidents: u64,
    /// Reason of the newest fatigue (at most 60 chars).
    pub last_fatigue_reason: Option<String>,
    /// Code of the newest fatigue (`null` for migrated legacy data).
    pub last_fatigue_reason_code: Option<String>,
    /// Time of the newest fatigue.
    pub last_fatigue_time: Option<f64>,
    /// Positive: consecutive successes at the end; negative: consecutive failures.
    pub current_streak: i64,
    /// Timestamp of the newest build.
    pub last_used: Option<f64>,
    /// The newest builds, newest first, at most 100 in replies.
    pub recent_builds: Vec<BuildRecord>,
}

/// What a region object may look like on input, current or legacy.
#[derive(Deserialize)]
struct RegionStatsWire {
    total_builds: u64,
    successes: u64,
    failures: u64,
    #[serde(default)]
    success_rate: f64,
    #[serde(default)]
    total_duration_minutes: f64,
    #[serde(default)]
    total_queue_wait_minutes: f64,
    #[serde(default)]
    avg_duration_minutes: f64,
    #[serde(default)]
    avg_queue_wait_minutes: f64,
    #[serde(default)]
    fastest_minutes: Option<f64>,
    #[serde(default)]
    slowest_minutes: Option<f64>,
    #[serde(default)]
    last_error: Option<String>,
    #[serde(default)]
    last_error_time: Option<f64>,
    #[serde(default)]
    fatigue_incidents: u64,
    #[serde(default)]
    last_fatigue_reason: Option<String>,
    #[serde(default)]
    last_fatigue_reason_code: Option<String>,
    #[serde(default)]
    last_fatigue_time: Option<f64>,
    #[serde(default)]
    fatigue_reason: Option<String>,
    #[serde(default)]
    fatigue_reason_code: Option<String>,
    #[serde(default)]
    fatigue_time: Option<f64>,
    #[serde(default)]
    current_streak: i64,
    #[serde(default)]
    last_used: Option<f64>,
    #[serde(default)]
    recent_builds: Vec<BuildRecord>,
}

impl From<RegionStatsWire> for RegionStats {
    fn from(w: RegionStatsWire) -> Self {
        // Migration (seed 000): a file without the new names keeps its legacy
        // values under the new names; a present new name always wins.
        let legacy = w.last_fatigue_reason.is_none() && w.last_fatigue_time.is_none();
        let (reason, code, time) = if legacy {
            (
                w.fatigue_reason,
                w.last_fatigue_reason_code.or(w.fatigue_reason_code),
                w.fatigue_time,
            )
        } else {
            (
                w.last_fatigue_reason,
                w.last_fatigue_reason_code,
                w.last_fatigue_time,
            )
        };
        RegionStats {
            total_builds: w.total_builds,
            successes: w.successes,
            failures: w.failures,
            success_rate: w.success_rate,
            total_duration_minutes: w.total_duration_minutes,
            total_queue_wait_minutes: w.total_queue_wait_minutes,
            avg_duration_minutes: w.avg_duration_minutes,
            avg_queue_wait_minutes: w.avg_queue_wait_minutes,
            fastest_minutes: w.fastest_minutes,
            slowest_minutes: w.slowest_minutes,
            last_error: w.last_error,
            last_error_time: w.last_error_time,
            fatigue_incidents: w.fatigue_incidents,
            last_fatigue_reason: reason,
            last_fatigue_reason_code: code,
            last_fatigue_time: time,
            current_streak: w.current_streak,
            last_used: w.last_used,
            recent_builds: w.recent_builds,
        }
    }
}

impl RegionStats {
    /// Checks the region object found under key `region` of a document.
    pub fn validate_in(&self, region: &str) -> Result<(), ValidationError> {
        let p = |f: &str| format!("regions.{region}.{f}");
        if self.successes.checked_add(self.failures) != Some(self.total_builds) {
            return Err(ValidationError::Invalid {
                field: p("total_builds"),
                reason: format!(
                    "must equal successes + failures ({} != {} + {})",
                    self.total_builds, self.successes, self.failures
                ),
            });
        }
        if self.current_streak.unsigned_abs() > self.total_builds {
            return Err(ValidationError::Invalid {
                field: p("current_streak"),
                reason: format!(
                    "must not exceed total_builds in size ({} > {})",
                    self.current_streak, self.total_builds
                ),
            });
        }
        v::pct(&p("success_rate"), self.success_rate)?;
        v::non_negative(&p("total_duration_minutes"), self.total_duration_minutes)?;
        v::non_negative(
            &p("total_queue_wait_minutes"),
            self.total_queue_wait_minutes,
        )?;
        v::non_negative(&p("avg_duration_minutes"), self.avg_duration_minutes)?;
        v::non_negative(&p("avg_queue_wait_minutes"), self.avg_queue_wait_minutes)?;
        v::non_negative_opt(&p("fastest_minutes"), self.fastest_minutes)?;
        v::non_negative_opt(&p("slowest_minutes"), self.slowest_minutes)?;
        if let (Some(f), Some(s)) = (self.fastest_minutes, self.slowest_minutes) {
            if f > s {
                return Err(ValidationError::Invalid {
                    field: p("fastest_minutes"),
                    reason: format!("must not exceed slowest_minutes ({f} > {s})"),
                });
            }
        }
        v::text_opt(
            &p("last_error"),
            self.last_error.as_deref(),
            v::MAX_TEXT_LEN,
        )?;
        v::non_negative_opt(&p("last_error_time"), self.last_error_time)?;
        let reason = self.last_fatigue_reason.as_deref();
        v::text_opt(&p("last_fatigue_reason"), reason, v::MAX_TEXT_LEN)?;
        let code = self.last_fatigue_reason_code.as_deref();
        v::text_opt(&p("last_fatigue_reason_code"), code, v::MAX_ID_LEN)?;
        v::non_negative_opt(&p("last_fatigue_time"), self.last_fatigue_time)?;
        v::non_negative_opt(&p("last_used"), self.last_used)?;
        self.validate_recent_builds(region)
    }

    fn validate_recent_builds(&self, region: &str) -> Result<(), ValidationError> {
        let field = format!("regions.{region}.recent_builds");
        v::max_items(&field, self.recent_builds.len(), MAX_RECENT_BUILDS_IMPORT)?;
        for (i, b) in self.recent_builds.iter().enumerate() {
            b.validate_fields()
                .map_err(|e| nest(&format!("{field}[{i}]"), e))?;
            if !b.region.is_empty() && b.region != region {
                return Err(ValidationError::Invalid {
                    field: format!("{field}[{i}].region"),
                    reason: format!("must be {region:?} or absent, got {:?}", b.region),
                });
            }
        }
        Ok(())
    }
}

/// Prefixes the field path of a nested record's error.
fn nest(prefix: &str, e: ValidationError) -> ValidationError {
    let join = |f: String| format!("{prefix}.{f}");
    match e {
        ValidationError::Missing { field } => ValidationError::Missing { field: join(field) },
        ValidationError::NotFinite { field } => ValidationError::NotFinite { field: join(field) },
        ValidationError::OutOfRange { field, rule, value } => ValidationError::OutOfRange {
            field: join(field),
            rule,
            value,
        },
        ValidationError::Invalid { field, reason } => ValidationError::Invalid {
            field: join(field),
            reason,
        },
        other => other,
    }
}

/// The campaign stats document (`campaign_stats.json`, seeds 000 and 001):
/// the reply of `lull.v1.regions.stats` and the format of import/export.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CampaignStats {
    /// Unix seconds of the first recorded build (`null` before any).
    #[serde(default)]
    pub campaign_start: Option<f64>,
    /// Unix seconds of the newest data in the document.
    #[serde(default)]
    pub last_updated: Option<f64>,
    /// Builds across all regions.
    #[serde(default)]
    pub total_builds_all_regions: u64,
    /// Per-region aggregates keyed by region name.
    #[serde(default)]
    pub regions: BTreeMap<String, RegionStats>,
}

impl Validate for CampaignStats {
    fn validate(&self) -> Result<(), ValidationError> {
        v::non_negative_opt("campaign_start", self.campaign_start)?;
        v::non_negative_opt("last_updated", self.last_updated)?;
        v::max_items("regions", self.regions.len(), MAX_REGIONS)?;
        for (name, r) in &self.regions {
            v::subject_token("regions key", name)?;
            r.validate_in(name)?;
        }
        Ok(())
    }
}

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

/// Serializes whole-valued floats as JSON integers (`2700`, not `2700.0`), so
/// fields the seeds show as integers keep that shape on output.
mod whole {
    use serde::Serializer;

    /// Largest integer an f64 holds exactly.
    const EXACT: f64 = 9_007_199_254_740_992.0;

    pub fn opt<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(x) if x.fract() == 0.0 && x.abs() <= EXACT => s.serialize_i64(*x as i64),
            Some(x) => s.serialize_f64(*x),
            None => s.serialize_none(),
        }
    }
}

/// Cuts `text` to its first non-empty line and at most `max` characters
/// (the "concise" `last_error` / `last_fatigue_reason` of seed 001).
pub fn concise(text: &str, max: usize) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    line.chars()
        .take(max)
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// A small valid build record (10 minutes, 1 minute queued, $6/h), for
/// tests and examples. A failed one carries `error of <id>`.
pub fn example_build(region: &str, id: &str, t: f64, ok: bool) -> BuildRecord {
    BuildRecord {
        timestamp: t,
        build_id: id.into(),
        region: region.into(),
        build_type: Some("pytorch-clean".into()),
        machine_type: Some("c3-standard-176".into()),
        success: ok,
        status: Some(if ok { "SUCCESS" } else { "FAILURE" }.into()),
        duration_seconds: Some(600.0),
        duration_minutes: Some(10.0),
        queue_wait_seconds: Some(60.0),
        queue_wait_minutes: Some(1.0),
        working_seconds: Some(540.0),
        total_steps: Some(72),
        failed_step: None,
        spot_price_per_hour: Some(6.0),
        cost_usd: None,
        error: (!ok).then(|| format!("error of {id}")),
        timeout_reason: None,
        fatigues: vec![],
    }
}

/// A 4-hour `FATIGUED` build fatigue, for tests and examples.
pub fn example_build_fatigue(t: f64, reason: &str, code: &str) -> BuildFatigue {
    BuildFatigue {
        fatigue_reason: reason.into(),
        fatigue_reason_code: Some(code.into()),
        fatigue_time: t,
        fatigue_duration_hours: Some(4.0),
        fatigue_type: FatigueType::Fatigued,
    }
}

/// A fatigue event with no build (a pool-creation timeout), for tests and
/// examples.
pub fn example_fatigue_event(region: &str, id: &str, t: f64) -> FatigueEventReport {
    FatigueEventReport {
        event_id: id.into(),
        region: region.into(),
        fatigue_reason: "Pool creation timeout".into(),
        fatigue_reason_code: Some("beacon-timeout".into()),
        fatigue_time: t,
        fatigue_duration_hours: None,
        fatigue_type: FatigueType::Fatigued,
        error_message: Some("beacon never answered".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concise_keeps_first_line_and_limit() {
        assert_eq!(concise("  \nfirst line\nsecond", 80), "first line");
        assert_eq!(concise(&"é".repeat(100), 60).chars().count(), 60);
        assert_eq!(concise("", 10), "");
    }

    #[test]
    fn whole_numbers_serialize_as_integers() {
        let f = BuildFatigue {
            fatigue_reason: "r".into(),
            fatigue_reason_code: None,
            fatigue_time: 1.0,
            fatigue_duration_hours: Some(4.0),
            fatigue_type: FatigueType::Fatigued,
        };
        let s = serde_json::to_string(&f).unwrap();
        assert!(s.contains("\"fatigue_duration_hours\":4,"), "{s}");
        assert!(s.contains("\"fatigue_time\":1.0"), "{s}");
    }
}
