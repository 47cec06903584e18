//! Scoring of one worker run (seed 003 "Scoring System"): reliability 35 %,
//! performance 25 %, data quality 30 %, resource efficiency 10 %, and the
//! quality level of the weighted combination.
//!
//! A component with nothing to score it from is `None` and left out: the
//! overall score is the weighted mean of the components that are present
//! (their weights renormalised), so a missing section neither helps nor
//! hurts. Reliability is always present (the outcome is required).
//! Every score is rounded to one decimal.

use lull_proto::msg::worker::{
    DataVerification, ExecutionOutcome, ExecutionScores, QualityLevel, ResourceMetrics,
    WorkerExecutionReport,
};

use super::aggregate::{mean, RunSample};
use super::config::{ScoreConfig, WorkerConfig};

/// Rounds to one decimal.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Reliability from the outcome alone.
pub fn reliability_score(outcome: ExecutionOutcome, cfg: &ScoreConfig) -> f64 {
    match outcome {
        ExecutionOutcome::Success => cfg.reliability_success,
        ExecutionOutcome::Partial => cfg.reliability_partial,
        ExecutionOutcome::Skipped => cfg.reliability_skipped,
        ExecutionOutcome::Timeout => cfg.reliability_timeout,
        ExecutionOutcome::Failure => cfg.reliability_failure,
    }
}

/// Rolling average duration (ms) of the `SUCCESS`/`PARTIAL` runs among
/// `prior`, or `None` with fewer than `performance_min_history` of them.
pub fn duration_baseline(prior: &[RunSample], cfg: &ScoreConfig) -> Option<f64> {
    let d: Vec<f64> = prior
        .iter()
        .filter(|s| s.outcome.did_work())
        .map(|s| s.duration_ms)
        .collect();
    if d.len() < cfg.performance_min_history.max(1) {
        return None;
    }
    mean(&d)
}

/// Performance from duration against the rolling average: 100 at or below
/// the average, 0 at `performance_zero_ratio` times it, linear in between.
/// `None` for runs that did no work (`FAILURE`, `TIMEOUT`, `SKIPPED`; their
/// outcome already scores them) and without a baseline.
pub fn performance_score(
    outcome: ExecutionOutcome,
    duration_ms: f64,
    baseline_ms: Option<f64>,
    cfg: &ScoreConfig,
) -> Option<f64> {
    if !outcome.did_work() {
        return None;
    }
    let base = baseline_ms.filter(|b| *b > 0.0)?;
    let r = duration_ms / base;
    let z = cfg.performance_zero_ratio;
    Some(if r <= 1.0 {
        100.0
    } else if r >= z {
        0.0
    } else {
        100.0 * (z - r) / (z - 1.0)
    })
}

/// The data-quality signals of a verification block, each 0..1, `None` when
/// the block does not carry it: (records, validation, completeness,
/// freshness, api).
pub fn data_quality_signals(
    dv: &DataVerification,
    stale_after_sec: f64,
    cfg: &ScoreConfig,
) -> [Option<f64>; 5] {
    let records = if dv.records_processed.is_some() || dv.records_failed.is_some() {
        let p = dv.records_processed.unwrap_or(0).max(0) as f64;
        let f = dv.records_failed.unwrap_or(0).max(0) as f64;
        (p + f > 0.0).then(|| p / (p + f))
    } else {
        None
    };

    let passed = dv.validation_checks_passed.unwrap_or(0).max(0) as f64;
    let failed = dv.validation_failures() as f64;
    let validation = (passed + failed > 0.0).then(|| passed / (passed + failed));

    let completeness = if dv.expected_fields_present.is_some() || !dv.missing_fields.is_empty() {
        let mut missing = dv.missing_fields.len();
        if dv.expected_fields_present == Some(false) && missing == 0 {
            missing = 1;
        }
        Some((1.0 - cfg.missing_field_penalty * missing as f64).max(0.0))
    } else {
        None
    };

    let freshness = dv.newest_record_age_seconds.map(|age| {
        let t = stale_after_sec;
        if age <= t {
            1.0
        } else if age >= 2.0 * t {
            0.0
        } else {
            2.0 - age / t
        }
    });

    let api_ratio = match (
        dv.api_calls_made,
        dv.api_calls_succeeded,
        dv.api_calls_failed,
    ) {
        (Some(made), succ, failed) if made > 0 => {
            let s = succ.unwrap_or(made - failed.unwrap_or(0)).clamp(0, made);
            Some(s as f64 / made as f64)
        }
        (_, succ, failed) if succ.unwrap_or(0) + failed.unwrap_or(0) > 0 => {
            let s = succ.unwrap_or(0).max(0) as f64;
            let f = failed.unwrap_or(0).max(0) as f64;
            Some(s / (s + f))
        }
        _ => dv.api_rate_limited.map(|_| 1.0),
    };
    let api = api_ratio.map(|r| {
        if dv.rate_limited() {
            r * (1.0 - cfg.rate_limit_penalty)
        } else {
            r
        }
    });

    [records, validation, completeness, freshness, api]
}

/// Data quality: the weighted mean of the signals present, times 100;
/// `None` when the block carries none of them.
pub fn data_quality_score(
    dv: &DataVerification,
    stale_after_sec: f64,
    cfg: &ScoreConfig,
) -> Option<f64> {
    let weights = [
        cfg.dq_weight_records,
        cfg.dq_weight_validation,
        cfg.dq_weight_completeness,
        cfg.dq_weight_freshness,
        cfg.dq_weight_api,
    ];
    weighted_mean(
        data_quality_signals(dv, stale_after_sec, cfg)
            .into_iter()
            .zip(weights)
            .filter_map(|(s, w)| s.map(|s| (s * 100.0, w))),
    )
}

/// One resource sub-score: 100 up to `threshold`, 0 from
/// `zero_factor * threshold`, linear in between.
pub fn resource_subscore(value: f64, threshold: f64, zero_factor: f64) -> f64 {
    let zero = threshold * zero_factor;
    if value <= threshold {
        100.0
    } else if value >= zero {
        0.0
    } else {
        100.0 * (zero - value) / (zero - threshold)
    }
}

/// Resource efficiency: the mean of the memory, CPU and database-query
/// sub-scores present; `None` when none is reported.
pub fn resource_efficiency_score(rm: &ResourceMetrics, cfg: &ScoreConfig) -> Option<f64> {
    let f = cfg.resource_zero_factor;
    let subs: Vec<f64> = [
        rm.memory_peak_mb
            .map(|m| resource_subscore(m, cfg.memory_threshold_mb, f)),
        rm.cpu_percent_avg
            .map(|c| resource_subscore(c, cfg.cpu_threshold_pct, f)),
        rm.database_query_count
            .map(|q| resource_subscore(q as f64, cfg.db_query_threshold, f)),
    ]
    .into_iter()
    .flatten()
    .collect();
    mean(&subs)
}

fn weighted_mean(items: impl Iterator<Item = (f64, f64)>) -> Option<f64> {
    let (sum, wsum) = items.fold((0.0, 0.0), |(s, ws), (v, w)| (s + v * w, ws + w));
    (wsum > 0.0).then(|| sum / wsum)
}

/// Combines the components: the weighted mean of those present.
pub fn overall_score(
    reliability: f64,
    performance: Option<f64>,
    data_quality: Option<f64>,
    resource: Option<f64>,
    cfg: &ScoreConfig,
) -> f64 {
    weighted_mean(
        [
            (Some(reliability), cfg.weight_reliability),
            (performance, cfg.weight_performance),
            (data_quality, cfg.weight_data_quality),
            (resource, cfg.weight_resource_efficiency),
        ]
        .into_iter()
        .filter_map(|(s, w)| s.map(|s| (s, w))),
    )
    .unwrap_or(reliability)
}

/// Scores one run against the worker's earlier runs (`prior`, which must
/// not contain the run itself).
pub fn score_execution(
    report: &WorkerExecutionReport,
    prior: &[RunSample],
    cfg: &WorkerConfig,
) -> ExecutionScores {
    let sc = &cfg.score;
    let reliability = reliability_score(report.outcome, sc);
    let performance = performance_score(
        report.outcome,
        report.duration_ms,
        duration_baseline(prior, sc),
        sc,
    );
    let data_quality = data_quality_score(
        &report.data_verification,
        cfg.freshness_stale_after_sec(&report.worker_name),
        sc,
    );
    let resource = resource_efficiency_score(&report.resource_metrics, sc);
    let overall = round1(overall_score(
        reliability,
        performance,
        data_quality,
        resource,
        sc,
    ));
    ExecutionScores {
        reliability_score: round1(reliability),
        performance_score: performance.map(round1),
        data_quality_score: data_quality.map(round1),
        resource_efficiency_score: resource.map(round1),
        overall_score: overall,
        quality_level: QualityLevel::from_score(overall),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_proto::msg::worker::example_report;

    fn cfg() -> WorkerConfig {
        WorkerConfig::default()
    }

    fn sample(i: usize, duration_ms: f64, outcome: ExecutionOutcome) -> RunSample {
        RunSample {
            execution_id: format!("p{i}"),
            started_at: i as f64,
            completed_at: i as f64,
            outcome,
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

    fn baseline_1000ms() -> Vec<RunSample> {
        vec![
            sample(0, 900.0, ExecutionOutcome::Success),
            sample(1, 1000.0, ExecutionOutcome::Success),
            sample(2, 1100.0, ExecutionOutcome::Partial),
            // Ignored: did no work.
            sample(3, 50.0, ExecutionOutcome::Failure),
            sample(4, 0.0, ExecutionOutcome::Skipped),
        ]
    }

    #[test]
    fn golden_seed_example_report() {
        // Seed 003 "Detailed Usage": 200 fetched, 195 processed, 5 failed,
        // 4/4 API calls, 128 MB; history averaging 1000 ms; this run 1500 ms.
        let mut r = example_report("e", "youtube_worker", 1000.0, 1500.0);
        r.data_verification.records_fetched = Some(200);
        r.data_verification.records_processed = Some(195);
        r.data_verification.records_failed = Some(5);
        r.data_verification.api_calls_made = Some(4);
        r.data_verification.api_calls_succeeded = Some(4);
        r.data_verification.cache_writes = Some(4);
        r.resource_metrics.memory_peak_mb = Some(128.0);
        r.resource_metrics.redis_operations = Some(12);
        let s = score_execution(&r, &baseline_1000ms(), &cfg());
        assert_eq!(s.reliability_score, 100.0);
        // ratio 1.5 -> 100 * (3 - 1.5) / 2 = 75
        assert_eq!(s.performance_score, Some(75.0));
        // records 195/200 = 0.975 (w .3), api 1.0 (w .1) -> (29.25 + 10) / .4 = 98.125
        assert_eq!(s.data_quality_score, Some(98.1));
        assert_eq!(s.resource_efficiency_score, Some(100.0));
        // (35 + 18.75 + 29.4375 + 10) / 1.0 = 93.1875
        assert_eq!(s.overall_score, 93.2);
        assert_eq!(s.quality_level, QualityLevel::Excellent);
    }

    #[test]
    fn golden_degraded_run_with_every_section() {
        let mut r = example_report("e", "clip_radar_recap_worker", 1000.0, 2000.0);
        r.outcome = ExecutionOutcome::Partial;
        let dv = &mut r.data_verification;
        dv.records_processed = Some(80);
        dv.records_failed = Some(20); // 0.8
        dv.validation_checks_passed = Some(6);
        dv.validation_checks_failed = Some(4); // 0.6
        dv.expected_fields_present = Some(false);
        dv.missing_fields = vec!["a".into(), "b".into()]; // 1 - 0.5 = 0.5
        dv.newest_record_age_seconds = Some(129_600.0); // 1.5 days: 2 - 1.5 = 0.5
        dv.api_calls_made = Some(10);
        dv.api_calls_failed = Some(2); // 8/10 = 0.8 ...
        dv.api_rate_limited = Some(true); // ... * 0.75 = 0.6
        r.resource_metrics.memory_peak_mb = Some(750.0); // 50
        r.resource_metrics.cpu_percent_avg = Some(40.0); // 100
        r.resource_metrics.database_query_count = Some(200); // 0
        let s = score_execution(&r, &baseline_1000ms(), &cfg());
        assert_eq!(s.reliability_score, 60.0);
        // ratio 2.0 -> 50
        assert_eq!(s.performance_score, Some(50.0));
        // .3*.8 + .3*.6 + .2*.5 + .1*.5 + .1*.6 = .24+.18+.10+.05+.06 = .63
        assert_eq!(s.data_quality_score, Some(63.0));
        // (50 + 100 + 0) / 3 = 50
        assert_eq!(s.resource_efficiency_score, Some(50.0));
        // .35*60 + .25*50 + .3*63 + .1*50 = 21 + 12.5 + 18.9 + 5 = 57.4
        assert_eq!(s.overall_score, 57.4);
        assert_eq!(s.quality_level, QualityLevel::Degraded);
    }

    #[test]
    fn golden_failure_without_sections_is_failed() {
        let mut r = example_report("e", "coach_cleanup_worker", 1000.0, 20.0);
        r.outcome = ExecutionOutcome::Failure;
        let s = score_execution(&r, &baseline_1000ms(), &cfg());
        assert_eq!(s.reliability_score, 0.0);
        assert_eq!(s.performance_score, None);
        assert_eq!(s.data_quality_score, None);
        assert_eq!(s.resource_efficiency_score, None);
        assert_eq!(s.overall_score, 0.0);
        assert_eq!(s.quality_level, QualityLevel::Failed);
    }

    #[test]
    fn golden_missing_sections_are_neutral() {
        // Only the outcome and a resource figure: weights .35 and .10 renormalised.
        let mut r = example_report("e", "sse_guardian", 1000.0, 20.0);
        r.outcome = ExecutionOutcome::Timeout;
        r.resource_metrics.memory_peak_mb = Some(600.0); // 80
        let s = score_execution(&r, &[], &cfg());
        // (.35*20 + .1*80) / .45 = (7 + 8) / .45 = 33.33
        assert_eq!(s.overall_score, 33.3);
        assert_eq!(s.quality_level, QualityLevel::Poor);
        // A bare success with no history is Excellent, not penalised.
        let r = example_report("e", "sse_guardian", 1000.0, 20.0);
        let s = score_execution(&r, &[], &cfg());
        assert_eq!(s.overall_score, 100.0);
        assert_eq!(s.performance_score, None);
        // A skipped run scores its reliability only.
        let mut r = example_report("e", "sse_guardian", 1000.0, 20.0);
        r.outcome = ExecutionOutcome::Skipped;
        let s = score_execution(&r, &baseline_1000ms(), &cfg());
        assert_eq!(s.overall_score, 80.0);
        assert_eq!(s.quality_level, QualityLevel::Good);
    }

    #[test]
    fn performance_curve() {
        let c = ScoreConfig::default();
        let ok = ExecutionOutcome::Success;
        assert_eq!(performance_score(ok, 500.0, Some(1000.0), &c), Some(100.0));
        assert_eq!(performance_score(ok, 1000.0, Some(1000.0), &c), Some(100.0));
        assert_eq!(performance_score(ok, 2500.0, Some(1000.0), &c), Some(25.0));
        assert_eq!(performance_score(ok, 3000.0, Some(1000.0), &c), Some(0.0));
        assert_eq!(performance_score(ok, 9000.0, Some(1000.0), &c), Some(0.0));
        assert_eq!(performance_score(ok, 9000.0, None, &c), None);
        assert_eq!(performance_score(ok, 9000.0, Some(0.0), &c), None);
        assert_eq!(
            performance_score(ExecutionOutcome::Timeout, 9000.0, Some(1000.0), &c),
            None
        );
        // Needs three SUCCESS/PARTIAL runs of history.
        let two = &baseline_1000ms()[..2];
        assert_eq!(duration_baseline(two, &c), None);
        assert_eq!(duration_baseline(&baseline_1000ms(), &c), Some(1000.0));
    }

    #[test]
    fn data_quality_signals_one_by_one() {
        let c = ScoreConfig::default();
        let t = 86_400.0;
        let q = |dv: DataVerification| data_quality_score(&dv, t, &c);
        assert_eq!(q(DataVerification::default()), None);
        // Counts of zero carry no signal.
        assert_eq!(
            q(DataVerification {
                records_processed: Some(0),
                ..Default::default()
            }),
            None
        );
        // Validation errors without counts are failures.
        assert_eq!(
            q(DataVerification {
                validation_checks_passed: Some(3),
                validation_errors: vec!["x".into()],
                ..Default::default()
            }),
            Some(75.0)
        );
        assert_eq!(
            q(DataVerification {
                expected_fields_present: Some(true),
                ..Default::default()
            }),
            Some(100.0)
        );
        assert_eq!(
            q(DataVerification {
                expected_fields_present: Some(false),
                ..Default::default()
            }),
            Some(75.0)
        );
        assert_eq!(
            q(DataVerification {
                missing_fields: vec!["a".into(); 5],
                ..Default::default()
            }),
            Some(0.0)
        );
        assert_eq!(
            q(DataVerification {
                newest_record_age_seconds: Some(3.0 * t),
                ..Default::default()
            }),
            Some(0.0)
        );
        assert_eq!(
            q(DataVerification {
                api_rate_limited: Some(true),
                ..Default::default()
            }),
            Some(75.0)
        );
        assert_eq!(
            q(DataVerification {
                api_calls_succeeded: Some(3),
                api_calls_failed: Some(1),
                ..Default::default()
            }),
            Some(75.0)
        );
        // Null counts alone are informational.
        assert_eq!(
            q(DataVerification {
                null_field_counts: [("a".to_string(), 4)].into(),
                ..Default::default()
            }),
            None
        );
    }

    #[test]
    fn resource_curve_uses_the_seed_thresholds() {
        let c = ScoreConfig::default();
        let m = |mb: f64| {
            resource_efficiency_score(
                &ResourceMetrics {
                    memory_peak_mb: Some(mb),
                    ..Default::default()
                },
                &c,
            )
        };
        assert_eq!(m(500.0), Some(100.0));
        assert_eq!(m(750.0), Some(50.0));
        assert_eq!(m(1000.0), Some(0.0));
        assert_eq!(m(5000.0), Some(0.0));
        let cpu = resource_efficiency_score(
            &ResourceMetrics {
                cpu_percent_avg: Some(120.0),
                network_bytes_received: Some(1 << 30),
                redis_operations: Some(10_000),
                ..Default::default()
            },
            &c,
        );
        assert_eq!(cpu, Some(50.0));
        assert_eq!(
            resource_efficiency_score(&ResourceMetrics::default(), &c),
            None
        );
    }

    #[test]
    fn level_follows_the_rounded_overall() {
        // 89.96 rounds to 90.0, which is Excellent.
        let c = ScoreConfig::default();
        let o = overall_score(100.0, Some(100.0), Some(69.88), None, &c);
        assert!((o - 89.96).abs() < 0.01, "{o}");
        assert_eq!(QualityLevel::from_score(round1(o)), QualityLevel::Excellent);
    }
}
