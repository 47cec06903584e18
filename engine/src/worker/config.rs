//! `WorkerConfig`: every tunable number of worker scoring, learning, anomaly
//! detection and missed-run detection, with the documented defaults (seed 003
//! where it gives a number, otherwise the values explained in docs/workers.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::threshold::{self, ThresholdRule};

/// A setting is out of its allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("workers.{field} {reason}")]
pub struct WorkerConfigError {
    /// Dotted path of the setting below `workers.`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// Settings of the worker-report engine (TOML table `[workers]` of the
/// coordinator configuration).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerConfig {
    /// Scoring weights and thresholds.
    pub score: ScoreConfig,
    /// Aggregation windows, trends and recommendations.
    pub learning: LearningConfig,
    /// Anomaly detection.
    pub anomaly: AnomalyConfig,
    /// Missed-run detection.
    pub schedule: ScheduleConfig,
    /// Per-worker settings, keyed by worker name.
    pub overrides: BTreeMap<String, WorkerOverride>,
}

/// Settings of one worker that replace learned values or global defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerOverride {
    /// Expected interval between runs, seconds (default: learned from history).
    pub expected_period_sec: Option<f64>,
    /// Grace after the expected time, seconds (default: from `schedule`).
    pub grace_sec: Option<f64>,
    /// Newest-record age at which data starts to count as stale, seconds
    /// (default: `score.freshness_stale_after_sec`).
    pub freshness_stale_after_sec: Option<f64>,
}

/// Scoring (seed 003 "Scoring System").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScoreConfig {
    /// Weight of `reliability_score` (default 0.35).
    pub weight_reliability: f64,
    /// Weight of `performance_score` (default 0.25).
    pub weight_performance: f64,
    /// Weight of `data_quality_score` (default 0.30).
    pub weight_data_quality: f64,
    /// Weight of `resource_efficiency_score` (default 0.10).
    pub weight_resource_efficiency: f64,

    /// Reliability of a `SUCCESS` run (default 100).
    pub reliability_success: f64,
    /// Reliability of a `PARTIAL` run (default 60).
    pub reliability_partial: f64,
    /// Reliability of a `SKIPPED` run (default 80).
    pub reliability_skipped: f64,
    /// Reliability of a `TIMEOUT` run (default 20).
    pub reliability_timeout: f64,
    /// Reliability of a `FAILURE` run (default 0).
    pub reliability_failure: f64,

    /// Earlier `SUCCESS`/`PARTIAL` runs needed before duration is compared
    /// with the rolling average (default 3).
    pub performance_min_history: usize,
    /// Duration / rolling average at which `performance_score` reaches 0; at
    /// or below 1 it is 100, linear in between (default 3.0).
    pub performance_zero_ratio: f64,

    /// Weight of the record-success signal inside `data_quality_score` (default 0.30).
    pub dq_weight_records: f64,
    /// Weight of the validation signal (default 0.30).
    pub dq_weight_validation: f64,
    /// Weight of the completeness signal (default 0.20).
    pub dq_weight_completeness: f64,
    /// Weight of the freshness signal (default 0.10).
    pub dq_weight_freshness: f64,
    /// Weight of the API-health signal (default 0.10).
    pub dq_weight_api: f64,
    /// Completeness lost per missing field, 0..1 (default 0.25).
    pub missing_field_penalty: f64,
    /// Newest-record age from which freshness declines, reaching 0 at twice
    /// this age, seconds (default 86400).
    pub freshness_stale_after_sec: f64,
    /// Share of the API signal lost when the run was rate limited (default 0.25).
    pub rate_limit_penalty: f64,

    /// Peak memory alert threshold, MB (seed 003: 500).
    pub memory_threshold_mb: f64,
    /// Average CPU alert threshold, percent (seed 003: 80).
    pub cpu_threshold_pct: f64,
    /// Database queries per run above which to optimise (seed 003: 100).
    pub db_query_threshold: f64,
    /// A resource sub-score is 100 up to its threshold and falls linearly to
    /// 0 at this multiple of it (default 2.0).
    pub resource_zero_factor: f64,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        ScoreConfig {
            weight_reliability: 0.35,
            weight_performance: 0.25,
            weight_data_quality: 0.30,
            weight_resource_efficiency: 0.10,
            reliability_success: 100.0,
            reliability_partial: 60.0,
            reliability_skipped: 80.0,
            reliability_timeout: 20.0,
            reliability_failure: 0.0,
            performance_min_history: 3,
            performance_zero_ratio: 3.0,
            dq_weight_records: 0.30,
            dq_weight_validation: 0.30,
            dq_weight_completeness: 0.20,
            dq_weight_freshness: 0.10,
            dq_weight_api: 0.10,
            missing_field_penalty: 0.25,
            freshness_stale_after_sec: 86_400.0,
            rate_limit_penalty: 0.25,
            memory_threshold_mb: 500.0,
            cpu_threshold_pct: 80.0,
            db_query_threshold: 100.0,
            resource_zero_factor: 2.0,
        }
    }
}

/// Aggregation, trends and recommendations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LearningConfig {
    /// Recent runs kept per worker for rolling averages, baselines, trends
    /// and period learning (default 60).
    pub history_window: usize,
    /// Runs in each half of a trend comparison: the mean of the latest N is
    /// compared with the mean of the N before (default 5).
    pub trend_window: usize,
    /// Relative change of that mean below which a trend is stable (default 0.10).
    pub trend_tolerance: f64,
    /// Runs an hour or day needs before it can be the best one (default 3).
    pub min_bucket_runs: u64,
    /// Hours of the recent window of the system views (default 24).
    pub window_hours: u32,
    /// Points of the score trend in `workers.stats` (default 20).
    pub score_trend_points: usize,
    /// Anomalies kept per worker for the views (default 20).
    pub recent_anomalies_kept: usize,
    /// Busiest and quietest hours listed by `learning.system` (default 3).
    pub busiest_hours_count: usize,
    /// Schedule suggestions are made only for workers whose expected period
    /// is at least this long, seconds (default 21600 = 6 h).
    pub schedule_hint_min_period_sec: f64,
    /// Mean-score advantage the best hour needs over the usual hour before
    /// a schedule change is suggested, points (default 5).
    pub schedule_gain_min_points: f64,
    /// Share of recent runs hitting a rate limit from which a batch hint is
    /// given (default 0.2).
    pub rate_limit_hint_share: f64,
    /// Share of recent runs ending in `FAILURE`/`TIMEOUT` from which a worker
    /// needs attention (default 0.2).
    pub attention_failure_rate: f64,
    /// Recent runs needed before that share is judged (default 3).
    pub attention_min_runs: usize,
}

impl Default for LearningConfig {
    fn default() -> Self {
        LearningConfig {
            history_window: 60,
            trend_window: 5,
            trend_tolerance: 0.10,
            min_bucket_runs: 3,
            window_hours: 24,
            score_trend_points: 20,
            recent_anomalies_kept: 20,
            busiest_hours_count: 3,
            schedule_hint_min_period_sec: 21_600.0,
            schedule_gain_min_points: 5.0,
            rate_limit_hint_share: 0.2,
            attention_failure_rate: 0.2,
            attention_min_runs: 3,
        }
    }
}

/// Anomaly detection (robust statistics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnomalyConfig {
    /// Earlier runs in a baseline (the scored run is never part of it) (default 30).
    pub baseline_window: usize,
    /// Fewest baseline points before anything is judged (default 8).
    pub min_baseline_points: usize,
    /// Modified z-score above which a value is anomalous (default 3.5).
    pub z_threshold: f64,
    /// Floor of the MAD as a share of the baseline median; guards MAD = 0
    /// and near-constant baselines (default 0.05).
    pub mad_floor_fraction: f64,
    /// Absolute floor of the MAD, in the metric's unit (default 1.0).
    pub mad_floor_abs: f64,
    /// A duration or resource spike must also be at least this multiple of
    /// the baseline median (default 1.5).
    pub min_spike_ratio: f64,
    /// A quality drop must also be at least this many points below the
    /// baseline median (default 20).
    pub quality_drop_points: f64,
    /// Threshold rules over custom metrics (`[[workers.anomaly.custom_thresholds]]`).
    /// Setting the list replaces the defaults, seed 003's `stale_streams > 10`,
    /// `orphaned_streams > 5` and `orphan_rate > 0.1` (warnings); an empty
    /// list turns them off.
    pub custom_thresholds: Vec<ThresholdRule>,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            baseline_window: 30,
            min_baseline_points: 8,
            z_threshold: 3.5,
            mad_floor_fraction: 0.05,
            mad_floor_abs: 1.0,
            min_spike_ratio: 1.5,
            quality_drop_points: 20.0,
            custom_thresholds: threshold::default_rules(),
        }
    }
}

/// Missed-run detection (Healthchecks.io / Sentry Crons style).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScheduleConfig {
    /// Intervals between runs needed to learn a period (default 3).
    pub min_intervals: usize,
    /// Grace as a share of the period (default 0.2) ...
    pub grace_fraction: f64,
    /// ... but at least this many seconds (default 60) ...
    pub grace_min_sec: f64,
    /// ... and at most this many seconds (default 3600).
    pub grace_max_sec: f64,
    /// A late worker is missed this many periods after turning late (default 1.0).
    pub missed_after_periods: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            min_intervals: 3,
            grace_fraction: 0.2,
            grace_min_sec: 60.0,
            grace_max_sec: 3600.0,
            missed_after_periods: 1.0,
        }
    }
}

fn err(field: &str, reason: impl Into<String>) -> WorkerConfigError {
    WorkerConfigError {
        field: field.to_string(),
        reason: reason.into(),
    }
}

fn non_neg(field: &str, v: f64) -> Result<(), WorkerConfigError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(err(field, format!("must be a finite number >= 0, got {v}")))
    }
}

fn positive(field: &str, v: f64) -> Result<(), WorkerConfigError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(err(field, format!("must be a finite number > 0, got {v}")))
    }
}

fn unit(field: &str, v: f64) -> Result<(), WorkerConfigError> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(err(field, format!("must be within 0..1, got {v}")))
    }
}

fn score(field: &str, v: f64) -> Result<(), WorkerConfigError> {
    if v.is_finite() && (0.0..=100.0).contains(&v) {
        Ok(())
    } else {
        Err(err(field, format!("must be within 0..100, got {v}")))
    }
}

impl WorkerConfig {
    /// Checks every setting; the coordinator refuses to start otherwise.
    pub fn validate(&self) -> Result<(), WorkerConfigError> {
        let s = &self.score;
        let weights = [
            ("score.weight_reliability", s.weight_reliability),
            ("score.weight_performance", s.weight_performance),
            ("score.weight_data_quality", s.weight_data_quality),
            (
                "score.weight_resource_efficiency",
                s.weight_resource_efficiency,
            ),
        ];
        for (f, w) in weights {
            non_neg(f, w)?;
        }
        positive("score.weight_reliability", s.weight_reliability)?;
        for (f, v) in [
            ("score.reliability_success", s.reliability_success),
            ("score.reliability_partial", s.reliability_partial),
            ("score.reliability_skipped", s.reliability_skipped),
            ("score.reliability_timeout", s.reliability_timeout),
            ("score.reliability_failure", s.reliability_failure),
        ] {
            score(f, v)?;
        }
        if !(s.performance_zero_ratio.is_finite() && s.performance_zero_ratio > 1.0) {
            return Err(err(
                "score.performance_zero_ratio",
                format!("must be > 1, got {}", s.performance_zero_ratio),
            ));
        }
        let dq = [
            ("score.dq_weight_records", s.dq_weight_records),
            ("score.dq_weight_validation", s.dq_weight_validation),
            ("score.dq_weight_completeness", s.dq_weight_completeness),
            ("score.dq_weight_freshness", s.dq_weight_freshness),
            ("score.dq_weight_api", s.dq_weight_api),
        ];
        for (f, w) in dq {
            non_neg(f, w)?;
        }
        unit("score.missing_field_penalty", s.missing_field_penalty)?;
        unit("score.rate_limit_penalty", s.rate_limit_penalty)?;
        positive(
            "score.freshness_stale_after_sec",
            s.freshness_stale_after_sec,
        )?;
        positive("score.memory_threshold_mb", s.memory_threshold_mb)?;
        positive("score.cpu_threshold_pct", s.cpu_threshold_pct)?;
        positive("score.db_query_threshold", s.db_query_threshold)?;
        if !(s.resource_zero_factor.is_finite() && s.resource_zero_factor > 1.0) {
            return Err(err(
                "score.resource_zero_factor",
                format!("must be > 1, got {}", s.resource_zero_factor),
            ));
        }

        let l = &self.learning;
        if l.history_window < 2 {
            return Err(err("learning.history_window", "must be at least 2"));
        }
        if l.trend_window == 0 {
            return Err(err("learning.trend_window", "must be at least 1"));
        }
        unit("learning.trend_tolerance", l.trend_tolerance)?;
        if l.window_hours == 0 || l.window_hours > 24 * 7 {
            return Err(err("learning.window_hours", "must be within 1..168"));
        }
        positive(
            "learning.schedule_hint_min_period_sec",
            l.schedule_hint_min_period_sec,
        )?;
        non_neg(
            "learning.schedule_gain_min_points",
            l.schedule_gain_min_points,
        )?;
        unit("learning.rate_limit_hint_share", l.rate_limit_hint_share)?;
        unit("learning.attention_failure_rate", l.attention_failure_rate)?;

        let a = &self.anomaly;
        if a.min_baseline_points < 3 {
            return Err(err("anomaly.min_baseline_points", "must be at least 3"));
        }
        if a.baseline_window < a.min_baseline_points {
            return Err(err(
                "anomaly.baseline_window",
                "must be at least anomaly.min_baseline_points",
            ));
        }
        positive("anomaly.z_threshold", a.z_threshold)?;
        non_neg("anomaly.mad_floor_fraction", a.mad_floor_fraction)?;
        positive("anomaly.mad_floor_abs", a.mad_floor_abs)?;
        non_neg("anomaly.min_spike_ratio", a.min_spike_ratio)?;
        non_neg("anomaly.quality_drop_points", a.quality_drop_points)?;
        threshold::validate(&a.custom_thresholds).map_err(|e| WorkerConfigError {
            field: e.field,
            reason: e.reason,
        })?;

        let sc = &self.schedule;
        if sc.min_intervals == 0 {
            return Err(err("schedule.min_intervals", "must be at least 1"));
        }
        unit("schedule.grace_fraction", sc.grace_fraction)?;
        non_neg("schedule.grace_min_sec", sc.grace_min_sec)?;
        non_neg("schedule.grace_max_sec", sc.grace_max_sec)?;
        if sc.grace_max_sec < sc.grace_min_sec {
            return Err(err(
                "schedule.grace_max_sec",
                "must be at least schedule.grace_min_sec",
            ));
        }
        positive("schedule.missed_after_periods", sc.missed_after_periods)?;

        for (name, o) in &self.overrides {
            if let Some(p) = o.expected_period_sec {
                positive(&format!("overrides.{name}.expected_period_sec"), p)?;
            }
            if let Some(g) = o.grace_sec {
                non_neg(&format!("overrides.{name}.grace_sec"), g)?;
            }
            if let Some(f) = o.freshness_stale_after_sec {
                positive(&format!("overrides.{name}.freshness_stale_after_sec"), f)?;
            }
        }
        Ok(())
    }

    /// The override of `worker`, if any.
    pub fn override_for(&self, worker: &str) -> Option<&WorkerOverride> {
        self.overrides.get(worker)
    }

    /// Freshness threshold of `worker`: its override or the global default.
    pub fn freshness_stale_after_sec(&self, worker: &str) -> f64 {
        self.override_for(worker)
            .and_then(|o| o.freshness_stale_after_sec)
            .unwrap_or(self.score.freshness_stale_after_sec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_follow_the_seed() {
        let c = WorkerConfig::default();
        c.validate().unwrap();
        assert_eq!(c.score.weight_reliability, 0.35);
        assert_eq!(c.score.weight_performance, 0.25);
        assert_eq!(c.score.weight_data_quality, 0.30);
        assert_eq!(c.score.weight_resource_efficiency, 0.10);
        assert_eq!(c.score.memory_threshold_mb, 500.0);
        assert_eq!(c.score.cpu_threshold_pct, 80.0);
        assert_eq!(c.score.db_query_threshold, 100.0);
        assert_eq!(c.anomaly.z_threshold, 3.5);
        let rules: Vec<(&str, &str, f64)> = c
            .anomaly
            .custom_thresholds
            .iter()
            .map(|r| (r.metric.as_str(), r.op.as_str(), r.threshold))
            .collect();
        assert_eq!(
            rules,
            vec![
                ("stale_streams", ">", 10.0),
                ("orphaned_streams", ">", 5.0),
                ("orphan_rate", ">", 0.1)
            ]
        );
    }

    #[test]
    fn partial_toml_keeps_the_other_defaults() {
        let c: WorkerConfig = toml_like(serde_json::json!({
            "anomaly": {"z_threshold": 4.0},
            "overrides": {"intel_aggregation_daily": {"expected_period_sec": 86400.0}}
        }));
        assert_eq!(c.anomaly.z_threshold, 4.0);
        assert_eq!(c.anomaly.min_baseline_points, 8);
        assert_eq!(c.score, ScoreConfig::default());
        assert_eq!(
            c.override_for("intel_aggregation_daily")
                .and_then(|o| o.expected_period_sec),
            Some(86_400.0)
        );
        c.validate().unwrap();
    }

    fn toml_like(v: serde_json::Value) -> WorkerConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn bad_settings_are_refused_with_their_name() {
        let mut c = WorkerConfig::default();
        c.score.weight_reliability = 0.0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("workers.score.weight_reliability"));
        let mut c = WorkerConfig::default();
        c.anomaly.min_baseline_points = 2;
        assert!(c.validate().is_err());
        let mut c = WorkerConfig::default();
        c.anomaly.custom_thresholds[0].threshold = f64::INFINITY;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("workers.anomaly.custom_thresholds[0].threshold"));
        let mut c = WorkerConfig::default();
        c.schedule.grace_max_sec = 10.0;
        assert!(c.validate().is_err());
        let mut c = WorkerConfig::default();
        c.score.performance_zero_ratio = 1.0;
        assert!(c.validate().is_err());
        let mut c = WorkerConfig::default();
        c.overrides.insert(
            "w".into(),
            WorkerOverride {
                expected_period_sec: Some(0.0),
                ..Default::default()
            },
        );
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "workers.overrides.w.expected_period_sec must be a finite number > 0, got 0"
        );
    }

    #[test]
    fn freshness_override() {
        let mut c = WorkerConfig::default();
        c.overrides.insert(
            "sse_guardian".into(),
            WorkerOverride {
                freshness_stale_after_sec: Some(30.0),
                ..Default::default()
            },
        );
        assert_eq!(c.freshness_stale_after_sec("sse_guardian"), 30.0);
        assert_eq!(c.freshness_stale_after_sec("other"), 86_400.0);
    }
}
