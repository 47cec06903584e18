//! Anomaly detection on one run against the worker's earlier runs (seed 003
//! "Detects Anomalies"), with robust statistics: the baseline is the median
//! and the median absolute deviation (MAD) of the last `baseline_window`
//! earlier runs (never the scored run), and a value is anomalous when its
//! modified z-score `0.6745 * (x - median) / MAD` passes `z_threshold`
//! (Iglewicz and Hoaglin's 3.5). The MAD is floored at
//! `max(mad_floor_fraction * |median|, mad_floor_abs)`, which guards MAD = 0
//! (a perfectly steady baseline) and near-constant baselines. Nothing is
//! judged with fewer than `min_baseline_points` points (cold start).
//!
//! Kinds: duration spikes, sudden quality drops (overall and data-quality
//! scores), resource figures over the seed's thresholds, resource spikes
//! against the worker's own baseline, and custom metrics past a threshold
//! rule ([`super::threshold`]). Each carries its evidence.

use std::collections::BTreeMap;

use lull_proto::msg::worker::{
    Anomaly, AnomalyKind, ExecutionOutcome, ExecutionScores, WorkerExecutionReport,
};

use super::aggregate::RunSample;
use super::config::{AnomalyConfig, WorkerConfig};

/// A resource figure to check: metric name, this run's value, alert
/// threshold, unit, and how to read it from an earlier run.
type ResourceCheck = (
    &'static str,
    Option<f64>,
    f64,
    &'static str,
    fn(&RunSample) -> Option<f64>,
);

/// Scale that makes the MAD comparable to a standard deviation for normal data.
pub const MAD_SCALE: f64 = 0.6745;

/// Median and MAD of a baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RobustStats {
    /// Median.
    pub median: f64,
    /// Median absolute deviation from the median.
    pub mad: f64,
    /// The MAD after the floor, used as the scale.
    pub mad_used: f64,
    /// Number of points.
    pub points: usize,
}

impl RobustStats {
    /// Modified z-score of `x`.
    pub fn modified_z(&self, x: f64) -> f64 {
        MAD_SCALE * (x - self.median) / self.mad_used
    }
}

/// Median of a list (mean of the two middle values when even), `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Robust statistics of `baseline` (oldest first; only its last
/// `baseline_window` values are used), `None` with fewer than
/// `min_baseline_points` values.
pub fn robust_stats(baseline: &[f64], cfg: &AnomalyConfig) -> Option<RobustStats> {
    let from = baseline.len().saturating_sub(cfg.baseline_window);
    let window = &baseline[from..];
    if window.len() < cfg.min_baseline_points.max(1) {
        return None;
    }
    let m = median(window)?;
    let deviations: Vec<f64> = window.iter().map(|x| (x - m).abs()).collect();
    let mad = median(&deviations)?;
    let floor = (cfg.mad_floor_fraction * m.abs()).max(cfg.mad_floor_abs);
    Some(RobustStats {
        median: m,
        mad,
        mad_used: mad.max(floor),
        points: window.len(),
    })
}

fn evidence(value: f64, s: &RobustStats, z: f64, cfg: &AnomalyConfig) -> BTreeMap<String, f64> {
    let r = |x: f64| (x * 1000.0).round() / 1000.0;
    BTreeMap::from([
        ("value".to_string(), r(value)),
        ("baseline_median".to_string(), r(s.median)),
        ("mad".to_string(), r(s.mad)),
        ("mad_used".to_string(), r(s.mad_used)),
        ("modified_z".to_string(), r(z)),
        ("z_threshold".to_string(), cfg.z_threshold),
        ("baseline_points".to_string(), s.points as f64),
    ])
}

/// An upward spike of `value` against `baseline`: modified z above the
/// threshold and at least `min_spike_ratio` times the median.
pub fn spike(value: f64, baseline: &[f64], cfg: &AnomalyConfig) -> Option<(RobustStats, f64)> {
    let s = robust_stats(baseline, cfg)?;
    let z = s.modified_z(value);
    (z > cfg.z_threshold && value >= s.median * cfg.min_spike_ratio).then_some((s, z))
}

/// A drop of `value` against `baseline`: modified z below minus the
/// threshold and at least `quality_drop_points` below the median.
pub fn drop(value: f64, baseline: &[f64], cfg: &AnomalyConfig) -> Option<(RobustStats, f64)> {
    let s = robust_stats(baseline, cfg)?;
    let z = s.modified_z(value);
    (z < -cfg.z_threshold && s.median - value >= cfg.quality_drop_points).then_some((s, z))
}

/// Every anomaly of one run. `prior` is the worker's recent runs that started
/// before this one (oldest first), as [`super::WorkerAggregate::prior`] gives.
pub fn detect(
    report: &WorkerExecutionReport,
    scores: &ExecutionScores,
    prior: &[RunSample],
    cfg: &WorkerConfig,
) -> Vec<Anomaly> {
    let a = &cfg.anomaly;
    let mut out = Vec::new();
    let mut push = |kind, metric: &str, message: String, evidence| {
        out.push(Anomaly {
            worker_name: report.worker_name.clone(),
            execution_id: report.execution_id.clone(),
            detected_at: report.completed_at,
            kind,
            metric: metric.to_string(),
            message,
            evidence,
            rule: None,
            severity: None,
        })
    };

    // Duration spikes, against runs that did work.
    if report.outcome != ExecutionOutcome::Skipped {
        let base: Vec<f64> = prior
            .iter()
            .filter(|s| s.outcome.did_work())
            .map(|s| s.duration_ms)
            .collect();
        if let Some((s, z)) = spike(report.duration_ms, &base, a) {
            let mut ev = evidence(report.duration_ms, &s, z, a);
            if s.median > 0.0 {
                ev.insert(
                    "ratio".into(),
                    ((report.duration_ms / s.median) * 1000.0).round() / 1000.0,
                );
            }
            push(
                AnomalyKind::DurationSpike,
                "duration_ms",
                format!(
                    "run took {:.0} ms against a median of {:.0} ms (modified z {:.1} > {}, {} runs)",
                    report.duration_ms, s.median, z, a.z_threshold, s.points
                ),
                ev,
            );
        }
    }

    // Sudden quality drops.
    let overall: Vec<f64> = prior.iter().map(|s| s.overall_score).collect();
    if let Some((s, z)) = drop(scores.overall_score, &overall, a) {
        let mut ev = evidence(scores.overall_score, &s, z, a);
        ev.insert("drop_points".into(), s.median - scores.overall_score);
        push(
            AnomalyKind::QualityDrop,
            "overall_score",
            format!(
                "overall score {:.1} against a median of {:.1} ({:.1} points lower, modified z {:.1})",
                scores.overall_score,
                s.median,
                s.median - scores.overall_score,
                z
            ),
            ev,
        );
    }
    if let Some(dq) = scores.data_quality_score {
        let base: Vec<f64> = prior.iter().filter_map(|s| s.data_quality_score).collect();
        if let Some((s, z)) = drop(dq, &base, a) {
            let mut ev = evidence(dq, &s, z, a);
            ev.insert("drop_points".into(), s.median - dq);
            push(
                AnomalyKind::QualityDrop,
                "data_quality_score",
                format!(
                    "data-quality score {dq:.1} against a median of {:.1} ({:.1} points lower, modified z {z:.1})",
                    s.median,
                    s.median - dq
                ),
                ev,
            );
        }
    }

    // Resources: the seed's alert thresholds, then spikes against the
    // worker's own baseline.
    let sc = &cfg.score;
    let resources: [ResourceCheck; 2] = [
        (
            "memory_peak_mb",
            report.resource_metrics.memory_peak_mb,
            sc.memory_threshold_mb,
            "MB",
            |s| s.memory_peak_mb,
        ),
        (
            "cpu_percent_avg",
            report.resource_metrics.cpu_percent_avg,
            sc.cpu_threshold_pct,
            "%",
            |s| s.cpu_percent_avg,
        ),
    ];
    for (metric, value, threshold, unit, get) in resources {
        let Some(value) = value else { continue };
        if value > threshold {
            push(
                AnomalyKind::ResourceThreshold,
                metric,
                format!("{metric} {value:.1} {unit} is over the alert threshold of {threshold:.0} {unit}"),
                BTreeMap::from([
                    ("value".to_string(), value),
                    ("threshold".to_string(), threshold),
                ]),
            );
        }
        let base: Vec<f64> = prior.iter().filter_map(get).collect();
        if let Some((s, z)) = spike(value, &base, a) {
            push(
                AnomalyKind::ResourceSpike,
                metric,
                format!(
                    "{metric} {value:.1} {unit} against a median of {:.1} {unit} (modified z {z:.1} > {})",
                    s.median, a.z_threshold
                ),
                evidence(value, &s, z, a),
            );
        }
    }
    // Custom metrics against the threshold rules (no baseline needed).
    out.extend(super::threshold::breaches(report, &a.custom_thresholds));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::score::score_execution;
    use lull_proto::msg::worker::example_report;

    fn sample(i: usize, duration_ms: f64) -> RunSample {
        RunSample {
            execution_id: format!("p{i}"),
            started_at: i as f64 * 3600.0,
            completed_at: i as f64 * 3600.0 + duration_ms / 1000.0,
            outcome: ExecutionOutcome::Success,
            duration_ms,
            records: None,
            overall_score: 100.0,
            data_quality_score: None,
            memory_peak_mb: None,
            cpu_percent_avg: None,
            database_query_count: None,
            rate_limited: false,
        }
    }

    /// Durations around 1000 ms with ordinary jitter.
    fn jittery(n: usize) -> Vec<RunSample> {
        let jitter = [0.0, 40.0, -30.0, 55.0, -60.0, 20.0, -10.0, 35.0, -45.0, 5.0];
        (0..n).map(|i| sample(i, 1000.0 + jitter[i % 10])).collect()
    }

    fn run(duration_ms: f64, prior: &[RunSample]) -> Vec<Anomaly> {
        let cfg = WorkerConfig::default();
        let r = example_report("now", "intel_aggregation_hourly", 1e6, duration_ms);
        let s = score_execution(&r, prior, &cfg);
        detect(&r, &s, prior, &cfg)
    }

    /// Only the duration spikes of a run.
    fn spikes(duration_ms: f64, prior: &[RunSample]) -> Vec<Anomaly> {
        run(duration_ms, prior)
            .into_iter()
            .filter(|a| a.kind == AnomalyKind::DurationSpike)
            .collect()
    }

    #[test]
    fn median_and_mad() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let cfg = AnomalyConfig::default();
        let s = robust_stats(&[1.0, 2.0, 3.0, 4.0, 100.0, 6.0, 7.0, 8.0], &cfg).unwrap();
        // median 5, deviations 4 3 2 1 95 1 2 3 -> MAD 2.5
        assert_eq!(s.median, 5.0);
        assert_eq!(s.mad, 2.5);
        assert_eq!(s.mad_used, 2.5);
        assert_eq!(s.points, 8);
        // Only the last `baseline_window` points count.
        let long: Vec<f64> = (0..100).map(f64::from).collect();
        let s = robust_stats(&long, &cfg).unwrap();
        assert_eq!(s.points, 30);
        assert_eq!(s.median, 84.5);
    }

    #[test]
    fn spike_is_caught_with_its_evidence() {
        let prior = jittery(20);
        let all = run(5000.0, &prior);
        // The slow run also drags the overall score down (performance 0).
        assert!(all
            .iter()
            .any(|a| a.kind == AnomalyKind::QualityDrop && a.metric == "overall_score"));
        let found = spikes(5000.0, &prior);
        assert_eq!(found.len(), 1, "{all:#?}");
        let a = &found[0];
        assert_eq!(a.kind, AnomalyKind::DurationSpike);
        assert_eq!(a.metric, "duration_ms");
        assert_eq!(a.execution_id, "now");
        // Baseline: median 1002.5, MAD 32.5; the floor, 5 % of the median
        // (50.125), is larger, so it is the scale.
        assert_eq!(a.evidence["baseline_median"], 1002.5);
        assert_eq!(a.evidence["mad"], 32.5);
        assert_eq!(a.evidence["mad_used"], 50.125);
        assert_eq!(a.evidence["baseline_points"], 20.0);
        let z = MAD_SCALE * (5000.0 - 1002.5) / 50.125;
        assert_eq!(a.evidence["modified_z"], (z * 1000.0).round() / 1000.0);
        assert_eq!(a.evidence["ratio"], 4.988);
        assert!(a.message.contains("5000 ms"), "{}", a.message);
    }

    #[test]
    fn steady_series_raises_nothing() {
        // Replaying a jittery series: no run is an anomaly against the ones before.
        let series = jittery(40);
        for i in 0..series.len() {
            let found = run(series[i].duration_ms, &series[..i]);
            assert!(found.is_empty(), "run {i}: {found:#?}");
        }
        // A moderately slower run (1.3x) is not a spike either.
        assert!(run(1300.0, &series).is_empty());
    }

    #[test]
    fn mad_zero_is_guarded() {
        // Perfectly constant baseline: MAD = 0.
        let flat: Vec<RunSample> = (0..10).map(|i| sample(i, 1000.0)).collect();
        let cfg = AnomalyConfig::default();
        let s = robust_stats(&[1000.0; 10], &cfg).unwrap();
        assert_eq!(s.mad, 0.0);
        assert_eq!(s.mad_used, 50.0);
        // 1001 ms (or 1200 ms) is not a spike, though its raw z would be infinite.
        assert!(run(1001.0, &flat).is_empty());
        assert!(run(1200.0, &flat).is_empty());
        // 2000 ms is: z = 0.6745 * 1000 / 50 = 13.5.
        let found = run(2000.0, &flat);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].evidence["modified_z"], 13.49);
        // All-zero baseline: the absolute floor keeps the scale finite.
        let zero: Vec<RunSample> = (0..10).map(|i| sample(i, 0.0)).collect();
        assert!(run(0.0, &zero).is_empty());
        let found = run(500.0, &zero);
        assert_eq!(found.len(), 1);
        assert!(found[0].evidence["modified_z"].is_finite());
        assert!(!found[0].evidence.contains_key("ratio"));
    }

    #[test]
    fn cold_start_judges_nothing() {
        assert!(run(1e6, &[]).is_empty());
        assert!(run(1e6, &jittery(7)).is_empty());
        assert_eq!(spikes(1e6, &jittery(8)).len(), 1);
    }

    #[test]
    fn quality_drop() {
        let cfg = WorkerConfig::default();
        let mut prior = jittery(12);
        for p in &mut prior {
            p.data_quality_score = Some(100.0);
        }
        let mut r = example_report("now", "w", 1e6, 1000.0);
        r.outcome = ExecutionOutcome::Failure;
        r.data_verification.validation_checks_passed = Some(1);
        r.data_verification.validation_checks_failed = Some(3);
        let s = score_execution(&r, &prior, &cfg);
        let found = detect(&r, &s, &prior, &cfg);
        let kinds: Vec<_> = found.iter().map(|a| (a.kind, a.metric.as_str())).collect();
        assert_eq!(
            kinds,
            vec![
                (AnomalyKind::QualityDrop, "overall_score"),
                (AnomalyKind::QualityDrop, "data_quality_score")
            ]
        );
        assert_eq!(found[1].evidence["value"], 25.0);
        assert_eq!(found[1].evidence["drop_points"], 75.0);
        // A small dip (100 -> 85) is not a sudden drop.
        let mut r = example_report("now", "w", 1e6, 1000.0);
        r.data_verification.validation_checks_passed = Some(17);
        r.data_verification.validation_checks_failed = Some(3);
        let s = score_execution(&r, &prior, &cfg);
        assert_eq!(s.data_quality_score, Some(85.0));
        assert!(detect(&r, &s, &prior, &cfg).is_empty());
    }

    #[test]
    fn custom_thresholds_join_the_anomalies() {
        let cfg = WorkerConfig::default();
        let prior = jittery(10);
        let mut r = example_report("now", "sse_guardian", 1e6, 1000.0);
        r.custom_metrics
            .insert("orphaned_streams".into(), serde_json::json!(6));
        r.custom_metrics
            .insert("stale_streams".into(), serde_json::json!(10));
        let s = score_execution(&r, &prior, &cfg);
        let found = detect(&r, &s, &prior, &cfg);
        let kinds: Vec<_> = found.iter().map(|a| (a.kind, a.metric.as_str())).collect();
        assert_eq!(
            kinds,
            vec![(AnomalyKind::CustomThreshold, "orphaned_streams")],
            "{found:#?}"
        );
        // Turned off by an empty list.
        let mut off = cfg.clone();
        off.anomaly.custom_thresholds.clear();
        assert!(detect(&r, &s, &prior, &off).is_empty());
    }

    #[test]
    fn resource_anomalies() {
        let cfg = WorkerConfig::default();
        let mut prior = jittery(10);
        for (i, p) in prior.iter_mut().enumerate() {
            p.memory_peak_mb = Some(100.0 + i as f64);
            p.cpu_percent_avg = Some(30.0);
        }
        // Over the seed's 500 MB and far above its own ~105 MB baseline.
        let mut r = example_report("now", "w", 1e6, 1000.0);
        r.resource_metrics.memory_peak_mb = Some(640.0);
        r.resource_metrics.cpu_percent_avg = Some(31.0);
        let s = score_execution(&r, &prior, &cfg);
        let found = detect(&r, &s, &prior, &cfg);
        let kinds: Vec<_> = found.iter().map(|a| (a.kind, a.metric.as_str())).collect();
        assert_eq!(
            kinds,
            vec![
                (AnomalyKind::ResourceThreshold, "memory_peak_mb"),
                (AnomalyKind::ResourceSpike, "memory_peak_mb")
            ],
            "{found:#?}"
        );
        assert_eq!(found[0].evidence["threshold"], 500.0);
        // CPU over 80 % with no history: threshold only.
        let mut r = example_report("now", "w", 1e6, 1000.0);
        r.resource_metrics.cpu_percent_avg = Some(95.0);
        let s = score_execution(&r, &[], &cfg);
        let found = detect(&r, &s, &[], &cfg);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, AnomalyKind::ResourceThreshold);
        assert_eq!(found[0].metric, "cpu_percent_avg");
    }
}
