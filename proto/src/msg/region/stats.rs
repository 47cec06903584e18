//! The campaign stats JSON (`lull.v1.regions.stats`, seed 001): one
//! region's summary ([`RegionStats`], also read from the legacy wire
//! shape) and the whole campaign ([`CampaignStats`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::limits::{MAX_RECENT_BUILDS_IMPORT, MAX_REGIONS};
use super::report::BuildRecord;
use crate::error::ValidationError;
use crate::validate::{self as v, Validate};

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
    #[serde(deserialize_with = "crate::int::de")]
    pub total_builds: u64,
    /// Successful builds.
    #[serde(deserialize_with = "crate::int::de")]
    pub successes: u64,
    /// Failed builds.
    #[serde(deserialize_with = "crate::int::de")]
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
    #[serde(deserialize_with = "crate::int::de")]
    pub fatigue_incidents: u64,
    /// Reason of the newest fatigue (at most 60 chars).
    pub last_fatigue_reason: Option<String>,
    /// Code of the newest fatigue (`null` for migrated legacy data).
    pub last_fatigue_reason_code: Option<String>,
    /// Time of the newest fatigue.
    pub last_fatigue_time: Option<f64>,
    /// Positive: consecutive successes at the end; negative: consecutive failures.
    #[serde(deserialize_with = "crate::int::de")]
    pub current_streak: i64,
    /// Timestamp of the newest build.
    pub last_used: Option<f64>,
    /// The newest builds, newest first, at most 100 in replies.
    pub recent_builds: Vec<BuildRecord>,
}

/// What a region object may look like on input, current or legacy.
#[derive(Deserialize)]
struct RegionStatsWire {
    #[serde(deserialize_with = "crate::int::de")]
    total_builds: u64,
    #[serde(deserialize_with = "crate::int::de")]
    successes: u64,
    #[serde(deserialize_with = "crate::int::de")]
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
    #[serde(default, deserialize_with = "crate::int::de")]
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
    #[serde(default, deserialize_with = "crate::int::de")]
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
    #[serde(default, deserialize_with = "crate::int::de")]
    pub total_builds_all_regions: u64,
    /// Per-region aggregates keyed by region name.
    #[serde(default)]
    pub regions: BTreeMap<String, RegionStats>,
    /// In a `regions.stats` reply with more regions after this page: pass
    /// it as `cursor` for the next page. Absent on the last page; ignored
    /// by `regions.import`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
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
