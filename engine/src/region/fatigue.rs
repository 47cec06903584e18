//! Fatigue state of a region (FATIGUED / EXHAUSTED rest periods with
//! Envoy-style escalation), auto-outlaw and pardon. [`RegionConfig`] lives
//! in `config` and is re-exported here.
//!
//! Rules (docs/regions.md):
//! - A fatigue rests the region from `fatigue_time` for
//!   `fatigue_duration_hours`, or by default 4 h (FATIGUED) / 24 h (EXHAUSTED).
//! - Escalation: fatigues are folded in time order with a multiplier `m`.
//!   Before each fatigue, `m` loses one for every full
//!   `escalation_window_hours` of health since the previous rest ended; then
//!   `m` grows by one. When `m >= escalate_at`, the fatigue is escalated to
//!   EXHAUSTED (at least `exhausted_hours`). So a fatigue that comes within
//!   one window of health after the last one escalates, and it takes one
//!   healthy window per level to calm down again, as Envoy's outlier
//!   ejection multiplier does.
//! - Auto-outlaw (seed 001): more than `outlaw_fatigue_incidents_over`
//!   fatigue incidents and under `outlaw_success_rate_below` percent success,
//!   judged once there are `outlaw_min_builds` builds, all counted since the
//!   last pardon. A pardon records the counts at that moment.

use std::cmp::Ordering;

use lull_proto::msg::region::{FatigueType, RegionState};
use serde::{Deserialize, Serialize};

use super::aggregate::RegionAggregate;
pub use super::config::{ConfigError, RegionConfig};
use super::order::FatigueMark;

const HOUR: f64 = 3600.0;

/// The effective rest of one fatigue, after escalation.
#[derive(Debug, Clone, PartialEq)]
pub struct RestPeriod {
    /// `fatigue_time`.
    pub start: f64,
    /// When the rest ends.
    pub until: f64,
    /// Effective type (EXHAUSTED when escalated).
    pub fatigue_type: FatigueType,
    /// Whether escalation raised it to EXHAUSTED.
    pub escalated: bool,
    /// The multiplier after this fatigue.
    pub level: u32,
    /// Reason of the fatigue.
    pub reason: String,
    /// Code of the fatigue.
    pub reason_code: Option<String>,
}

/// Folds `marks` (in key order) into their rest periods, applying escalation.
pub fn rest_periods<'a>(
    marks: impl IntoIterator<Item = &'a FatigueMark>,
    cfg: &RegionConfig,
) -> Vec<RestPeriod> {
    let window = cfg.escalation_window_hours * HOUR;
    let mut level: u32 = 0;
    let mut prev_end: Option<f64> = None;
    let mut out = Vec::new();
    for m in marks {
        level = decayed(level, prev_end, m.time(), window) + 1;
        let own_hours = m.duration_hours.unwrap_or(cfg.hours_for(m.fatigue_type));
        let escalated = level >= cfg.escalate_at && m.fatigue_type == FatigueType::Fatigued;
        let (fatigue_type, hours) = if escalated {
            (FatigueType::Exhausted, own_hours.max(cfg.exhausted_hours))
        } else {
            (m.fatigue_type, own_hours)
        };
        let until = m.time() + hours * HOUR;
        prev_end = Some(prev_end.map_or(until, |p| p.max(until)));
        out.push(RestPeriod {
            start: m.time(),
            until,
            fatigue_type,
            escalated,
            level,
            reason: m.reason.clone(),
            reason_code: m.reason_code.clone(),
        });
    }
    out
}

/// The multiplier after `at - prev_end` seconds of health: one level less per
/// full window; no previous rest means no history at all.
fn decayed(level: u32, prev_end: Option<f64>, at: f64, window: f64) -> u32 {
    match prev_end {
        None => 0,
        Some(end) => {
            let healthy = (at - end).max(0.0);
            let steps = (healthy / window).floor();
            if steps >= f64::from(level) {
                0
            } else {
                level - steps as u32
            }
        }
    }
}

/// The fatigue side of a region's health at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct FatigueStatus {
    /// HEALTHY, FATIGUED or EXHAUSTED.
    pub state: RegionState,
    /// When every active rest is over (`None` when healthy).
    pub until: Option<f64>,
    /// The escalation multiplier now, after decay.
    pub escalation_level: u32,
    /// Reason of the most severe active rest (newest among equals).
    pub reason: Option<String>,
    /// Its code.
    pub reason_code: Option<String>,
}

/// Fatigue state at `now` from a region's marks. A rest is active while
/// `now < until` (a mark dated slightly in the future counts at once).
pub fn fatigue_status<'a>(
    marks: impl IntoIterator<Item = &'a FatigueMark>,
    cfg: &RegionConfig,
    now: f64,
) -> FatigueStatus {
    let periods = rest_periods(marks, cfg);
    let active: Vec<&RestPeriod> = periods.iter().filter(|p| now < p.until).collect();
    let worst = active.iter().copied().max_by(|a, b| severity(a, b));
    let last_end = periods.iter().map(|p| p.until).reduce(f64::max);
    let last_level = periods.last().map_or(0, |p| p.level);
    let window = cfg.escalation_window_hours * HOUR;
    FatigueStatus {
        state: match worst.map(|p| p.fatigue_type) {
            None => RegionState::Healthy,
            Some(FatigueType::Fatigued) => RegionState::Fatigued,
            Some(FatigueType::Exhausted) => RegionState::Exhausted,
        },
        until: active.iter().map(|p| p.until).reduce(f64::max),
        escalation_level: if worst.is_some() {
            last_level
        } else {
            decayed(last_level, last_end, now, window)
        },
        reason: worst.map(|p| p.reason.clone()),
        reason_code: worst.and_then(|p| p.reason_code.clone()),
    }
}

fn severity(a: &RestPeriod, b: &RestPeriod) -> Ordering {
    a.fatigue_type
        .cmp(&b.fatigue_type)
        .then(a.start.total_cmp(&b.start))
}

/// The counts auto-outlaw judges (taken from the aggregate).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutlawCounts {
    /// Builds.
    pub total_builds: u64,
    /// Successful builds.
    pub successes: u64,
    /// Fatigue incidents.
    pub fatigue_incidents: u64,
}

impl OutlawCounts {
    /// The counts of an aggregate.
    pub fn of(agg: &RegionAggregate) -> Self {
        OutlawCounts {
            total_builds: agg.total_builds(),
            successes: agg.successes(),
            fatigue_incidents: agg.fatigue_incidents(),
        }
    }

    fn since(self, base: OutlawCounts) -> OutlawCounts {
        OutlawCounts {
            total_builds: self.total_builds.saturating_sub(base.total_builds),
            successes: self.successes.saturating_sub(base.successes),
            fatigue_incidents: self
                .fatigue_incidents
                .saturating_sub(base.fatigue_incidents),
        }
    }
}

/// An operator's pardon of a region: persisted by the shell. Only what
/// happens after it counts toward a new outlaw verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pardon {
    /// Unix seconds of the pardon.
    pub pardoned_at: f64,
    /// The region's counts at that moment.
    pub at_counts: OutlawCounts,
}

/// Pardons a region now: the outlaw rule starts counting afresh.
pub fn pardon(agg: &RegionAggregate, now: f64) -> Pardon {
    Pardon {
        pardoned_at: now,
        at_counts: OutlawCounts::of(agg),
    }
}

/// Why a region is outlawed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutlawVerdict {
    /// Builds judged (since the last pardon).
    pub builds: u64,
    /// Successes among them.
    pub successes: u64,
    /// Fatigue incidents judged.
    pub fatigue_incidents: u64,
    /// Success rate judged, percent with one decimal.
    pub success_rate: f64,
    /// The verdict in words.
    pub reason: String,
}

/// Applies the auto-outlaw rule to `counts`, minus those at the last pardon.
pub fn judge_outlaw(
    counts: OutlawCounts,
    pardon: Option<&Pardon>,
    cfg: &RegionConfig,
) -> Option<OutlawVerdict> {
    let c = pardon.map_or(counts, |p| counts.since(p.at_counts));
    if c.total_builds == 0 || c.total_builds < cfg.outlaw_min_builds {
        return None;
    }
    let rate = c.successes as f64 * 100.0 / c.total_builds as f64;
    if c.fatigue_incidents <= cfg.outlaw_fatigue_incidents_over
        || rate >= cfg.outlaw_success_rate_below
    {
        return None;
    }
    let since = pardon.map_or(String::new(), |_| " since the last pardon".to_string());
    let rate1 = (rate * 10.0).round() / 10.0;
    Some(OutlawVerdict {
        builds: c.total_builds,
        successes: c.successes,
        fatigue_incidents: c.fatigue_incidents,
        success_rate: rate1,
        reason: format!(
            "{} fatigue incidents (> {}) and {rate1}% success (< {}%) over {} builds{since}",
            c.fatigue_incidents,
            cfg.outlaw_fatigue_incidents_over,
            cfg.outlaw_success_rate_below,
            c.total_builds
        ),
    })
}

/// A region's whole health at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionHealth {
    /// OUTLAWED beats EXHAUSTED beats FATIGUED beats HEALTHY.
    pub state: RegionState,
    /// When the region is usable again by itself (`None`: healthy now, or
    /// outlawed until pardoned).
    pub until: Option<f64>,
    /// The fatigue side.
    pub fatigue: FatigueStatus,
    /// The outlaw verdict, if any.
    pub outlaw: Option<OutlawVerdict>,
}

/// Health of `agg` at `now`, given its pardon (if any).
pub fn region_health(
    agg: &RegionAggregate,
    pardon: Option<&Pardon>,
    cfg: &RegionConfig,
    now: f64,
) -> RegionHealth {
    let fatigue = fatigue_status(agg.fatigue_marks(), cfg, now);
    let outlaw = judge_outlaw(OutlawCounts::of(agg), pardon, cfg);
    let (state, until) = match &outlaw {
        Some(_) => (RegionState::Outlawed, None),
        None => (fatigue.state, fatigue.until),
    };
    RegionHealth {
        state,
        until,
        fatigue,
        outlaw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::aggregate::OrderKey;
    use lull_proto::msg::region::SelectWeights;

    const T0: f64 = 1_763_026_000.0;

    fn mark(hours_after: f64, t: FatigueType, hours: Option<f64>) -> FatigueMark {
        FatigueMark {
            key: OrderKey::new(T0 + hours_after * HOUR, &format!("e:{hours_after}"), 0),
            fatigue_type: t,
            duration_hours: hours,
            reason: format!("reason at {hours_after}"),
            reason_code: Some("queue-timeout".into()),
        }
    }

    fn at(h: f64) -> f64 {
        T0 + h * HOUR
    }

    #[test]
    fn defaults_are_the_seed_numbers() {
        let c = RegionConfig::default();
        assert_eq!((c.fatigued_hours, c.exhausted_hours), (4.0, 24.0));
        assert_eq!(c.outlaw_fatigue_incidents_over, 3);
        assert_eq!(c.outlaw_success_rate_below, 50.0);
        assert!(c.validate().is_ok());
        let partial: RegionConfig = serde_json::from_str(r#"{"fatigued_hours": 2}"#).unwrap();
        assert_eq!(partial.fatigued_hours, 2.0);
        assert_eq!(partial.exhausted_hours, 24.0);
    }

    #[test]
    fn config_validation() {
        let mut c = RegionConfig {
            fatigued_hours: 0.0,
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "fatigued_hours");
        c.fatigued_hours = f64::NAN;
        assert!(c.validate().is_err());
        let c = RegionConfig {
            outlaw_success_rate_below: 150.0,
            ..Default::default()
        };
        assert!(c.validate().is_err());
        let c = RegionConfig {
            default_weights: SelectWeights::default(),
            ..Default::default()
        };
        assert!(c.validate().is_err());
        let c = RegionConfig {
            escalate_at: 0,
            ..Default::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn fatigued_for_four_hours_by_default() {
        let cfg = RegionConfig::default();
        let marks = [mark(0.0, FatigueType::Fatigued, None)];
        let s = fatigue_status(&marks, &cfg, at(3.99));
        assert_eq!(s.state, RegionState::Fatigued);
        assert_eq!(s.until, Some(at(4.0)));
        assert_eq!(s.reason_code.as_deref(), Some("queue-timeout"));
        assert_eq!(
            fatigue_status(&marks, &cfg, at(4.0)).state,
            RegionState::Healthy
        );
        assert_eq!(fatigue_status(&marks, &cfg, at(4.0)).until, None);
    }

    #[test]
    fn own_duration_and_exhausted_type() {
        let cfg = RegionConfig::default();
        let marks = [mark(0.0, FatigueType::Fatigued, Some(1.0))];
        assert_eq!(
            fatigue_status(&marks, &cfg, at(1.5)).state,
            RegionState::Healthy
        );
        let marks = [mark(0.0, FatigueType::Exhausted, None)];
        let s = fatigue_status(&marks, &cfg, at(23.0));
        assert_eq!(s.state, RegionState::Exhausted);
        assert_eq!(s.until, Some(at(24.0)));
        assert_eq!(
            fatigue_status(&marks, &cfg, at(24.0)).state,
            RegionState::Healthy
        );
    }

    #[test]
    fn repeated_fatigue_inside_the_window_escalates() {
        let cfg = RegionConfig::default();
        // rest ends at 4 h; the next fatigue comes 6 h of health later (< 24 h)
        let marks = [
            mark(0.0, FatigueType::Fatigued, None),
            mark(10.0, FatigueType::Fatigued, None),
        ];
        let p = rest_periods(&marks, &cfg);
        assert!(!p[0].escalated);
        assert!(p[1].escalated);
        assert_eq!(p[1].fatigue_type, FatigueType::Exhausted);
        assert_eq!(p[1].until, at(34.0));
        let s = fatigue_status(&marks, &cfg, at(20.0));
        assert_eq!(s.state, RegionState::Exhausted);
        assert_eq!(s.escalation_level, 2);
    }

    #[test]
    fn escalation_decays_one_level_per_healthy_window() {
        let cfg = RegionConfig::default();
        let quick = |extra: f64| {
            vec![
                mark(0.0, FatigueType::Fatigued, None),
                mark(5.0, FatigueType::Fatigued, None), // level 2, exhausted until 29 h
                mark(29.0 + extra, FatigueType::Fatigued, None),
            ]
        };
        // 23 h of health: still level 2 -> 3, escalated
        assert!(rest_periods(&quick(23.0), &cfg)[2].escalated);
        // 24 h of health: 2 -> 1 -> 2, still escalated
        let p = rest_periods(&quick(24.0), &cfg);
        assert_eq!(p[2].level, 2);
        assert!(p[2].escalated);
        // 48 h of health: 2 -> 0 -> 1, back to a plain FATIGUED
        let p = rest_periods(&quick(48.0), &cfg);
        assert_eq!(p[2].level, 1);
        assert!(!p[2].escalated);
        assert_eq!(p[2].until, at(29.0 + 48.0 + 4.0));
        // the level reported now decays the same way
        let s = fatigue_status(&quick(0.0)[..2], &cfg, at(29.0 + 24.0));
        assert_eq!((s.state, s.escalation_level), (RegionState::Healthy, 1));
    }

    #[test]
    fn overlapping_fatigue_has_no_health_between() {
        let cfg = RegionConfig {
            escalate_at: 3,
            ..Default::default()
        };
        let marks = [
            mark(0.0, FatigueType::Fatigued, None),
            mark(1.0, FatigueType::Fatigued, None),
            mark(2.0, FatigueType::Fatigued, None),
        ];
        let p = rest_periods(&marks, &cfg);
        assert_eq!(
            p.iter().map(|p| p.escalated).collect::<Vec<_>>(),
            [false, false, true]
        );
    }

    #[test]
    fn the_most_severe_active_rest_wins() {
        let cfg = RegionConfig {
            escalate_at: 10,
            ..Default::default()
        };
        let marks = [
            mark(0.0, FatigueType::Exhausted, Some(10.0)),
            mark(1.0, FatigueType::Fatigued, Some(20.0)),
        ];
        let s = fatigue_status(&marks, &cfg, at(5.0));
        assert_eq!(s.state, RegionState::Exhausted);
        assert_eq!(s.until, Some(at(21.0)));
        assert_eq!(s.reason.as_deref(), Some("reason at 0"));
        let s = fatigue_status(&marks, &cfg, at(15.0));
        assert_eq!(s.state, RegionState::Fatigued);
    }

    #[test]
    fn outlaw_rule_of_seed_001() {
        let cfg = RegionConfig::default();
        let c = |b, s, f| OutlawCounts {
            total_builds: b,
            successes: s,
            fatigue_incidents: f,
        };
        assert!(judge_outlaw(c(10, 4, 4), None, &cfg).is_some());
        assert!(
            judge_outlaw(c(10, 4, 3), None, &cfg).is_none(),
            "needs more than 3"
        );
        assert!(
            judge_outlaw(c(10, 5, 4), None, &cfg).is_none(),
            "needs under 50%"
        );
        assert!(
            judge_outlaw(c(2, 0, 9), None, &cfg).is_none(),
            "too few builds"
        );
        assert!(judge_outlaw(c(0, 0, 9), None, &cfg).is_none());
        let v = judge_outlaw(c(5, 1, 5), None, &cfg).unwrap();
        assert_eq!(v.success_rate, 20.0);
        assert_eq!(
            v.reason,
            "5 fatigue incidents (> 3) and 20% success (< 50%) over 5 builds"
        );
    }

    #[test]
    fn pardon_restarts_the_count() {
        let cfg = RegionConfig::default();
        let now = OutlawCounts {
            total_builds: 10,
            successes: 2,
            fatigue_incidents: 6,
        };
        let p = Pardon {
            pardoned_at: T0,
            at_counts: now,
        };
        assert!(judge_outlaw(now, Some(&p), &cfg).is_none());
        let later = OutlawCounts {
            total_builds: 14,
            successes: 2,
            fatigue_incidents: 10,
        };
        let v = judge_outlaw(later, Some(&p), &cfg).unwrap();
        assert_eq!((v.builds, v.fatigue_incidents), (4, 4));
        assert!(v.reason.ends_with("since the last pardon"));
    }
}
