//! Learning (seed 003 "Learning Metrics" and "Aggregation & Learning"): the
//! per-run timing and performance patterns computed at ingest, trends, the
//! best hour and day per worker, recommendations, and the replies of
//! `workers.stats`, `workers.learning`, `learning.system` and
//! `data_quality.summary` as pure functions of the aggregates and `now`.

use std::collections::BTreeMap;

use lull_proto::msg::worker::{
    AttentionItem, DataQualitySummaryReply, DayPerformance, ExecutionOutcome, HourLoad,
    HourPerformance, LearningMetrics, QualityLevel, ScheduleState, ScorePoint, SystemLearningReply,
    WorkerExecutionReport, WorkerLearningReply, WorkerQuality, WorkerStatsReply,
};

use super::aggregate::{mean, ratio, RunSample, WorkerAggregate};
use super::config::WorkerConfig;
use super::fleet_page::WorkerPage;
use super::missed;
use super::score::{duration_baseline, round1};

pub use super::calendar::{day_index, day_of_week, hour_index, hour_of_day};
pub use super::recommend::recommendations;
pub use super::slots::{best_day, best_hour, best_slot, busiest_slot};
use super::trend::round3;
pub use super::trend::{
    duration_trend, trend, volume_trend, work_durations, work_volumes, Direction, TrendReading,
};

/// The learning metrics of a run, computed at ingest from the aggregate as
/// it was before the run (so the run is never part of its own baseline).
pub fn learning_metrics(
    report: &WorkerExecutionReport,
    agg: &WorkerAggregate,
    cfg: &WorkerConfig,
) -> LearningMetrics {
    let t = report.started_at;
    let prior = agg.prior(t);
    let baseline = duration_baseline(prior, &cfg.score);
    let duration_vs_avg = if report.outcome == ExecutionOutcome::Skipped {
        None
    } else {
        baseline
            .filter(|b| *b > 0.0)
            .map(|b| round3(report.duration_ms / b))
    };
    let mut durations = work_durations(prior);
    let mut volumes = work_volumes(prior);
    if report.outcome.did_work() {
        durations.push(report.duration_ms);
        if let Some(v) = report.data_verification.volume() {
            volumes.push(v as f64);
        }
    }
    LearningMetrics {
        time_of_day_utc: hour_of_day(t),
        day_of_week: day_of_week(t),
        execution_number_today: agg.runs_on_day(day_index(t)).saturating_add(1),
        time_since_last_run_seconds: prior.last().map(|p| round3(t - p.started_at)),
        duration_vs_avg,
        duration_trend: duration_trend(&durations, cfg),
        data_volume_trend: volume_trend(&volumes, cfg),
        upstream_data_age_seconds: report.upstream_data_age_seconds,
        downstream_consumers_waiting: report.downstream_consumers_waiting,
    }
}

fn success_share(samples: &[RunSample]) -> Option<f64> {
    let ok = samples
        .iter()
        .filter(|s| s.outcome == ExecutionOutcome::Success)
        .count() as u64;
    ratio(ok, samples.len() as u64).map(round3)
}

/// `workers.stats` reply of one worker at `now`.
pub fn worker_stats(agg: &WorkerAggregate, now: f64, cfg: &WorkerConfig) -> WorkerStatsReply {
    let o = agg.outcomes;
    let trend_from = agg
        .recent
        .len()
        .saturating_sub(cfg.learning.score_trend_points);
    let score_trend = agg.recent[trend_from..]
        .iter()
        .map(|s| ScorePoint {
            started_at: s.started_at,
            overall_score: s.overall_score,
            quality_level: QualityLevel::from_score(s.overall_score),
        })
        .collect();
    let mut recent_anomalies = agg.recent_anomalies.clone();
    recent_anomalies.reverse();
    WorkerStatsReply {
        worker_name: agg.worker_name.clone(),
        total_executions: o.total(),
        successful_executions: o.success,
        failed_executions: o.failure + o.timeout,
        outcomes: o,
        success_rate: ratio(o.success, o.total()).map(round3).unwrap_or(0.0),
        recent_success_rate: success_share(&agg.recent),
        avg_duration_ms: agg.avg_duration_ms().map(round1),
        rolling_avg_duration_ms: mean(&work_durations(&agg.recent)).map(round1),
        avg_records_processed: agg.avg_records().map(round1),
        total_records_processed: agg.total_records,
        avg_overall_score: agg.avg_score().map(round1),
        rolling_avg_overall_score: rolling_score(agg),
        last_overall_score: agg.latest.as_ref().map(|l| l.overall_score),
        last_quality_level: agg.latest.as_ref().map(|l| l.quality_level),
        last_outcome: agg.latest.as_ref().map(|l| l.outcome),
        last_run_at: agg.last_run_at,
        last_success_at: agg.last_success_at,
        score_trend,
        schedule: missed::schedule_status(agg, now, cfg),
        recent_anomalies,
    }
}

fn rolling_score(agg: &WorkerAggregate) -> Option<f64> {
    mean(
        &agg.recent
            .iter()
            .map(|s| s.overall_score)
            .collect::<Vec<_>>(),
    )
    .map(round1)
}

/// `workers.learning` reply of one worker; `quiet_hours` are the forecast
/// quiet UTC hours of its host (empty when unknown).
pub fn worker_learning(
    agg: &WorkerAggregate,
    quiet_hours: &[u8],
    cfg: &WorkerConfig,
) -> WorkerLearningReply {
    let (period, _) = missed::expected_period(agg, cfg);
    let hourly_performance = agg
        .by_hour
        .iter()
        .enumerate()
        .filter(|(_, s)| s.executions > 0)
        .map(|(h, s)| HourPerformance {
            hour: h as u8,
            executions: s.executions,
            success_rate: round3(s.success_rate()),
            avg_duration_ms: s.avg_duration_ms().map(round1),
            avg_score: round1(s.avg_score().unwrap_or(0.0)),
        })
        .collect();
    let daily_performance = agg
        .by_day
        .iter()
        .enumerate()
        .filter(|(_, s)| s.executions > 0)
        .map(|(d, s)| DayPerformance {
            day: d as u8,
            executions: s.executions,
            success_rate: round3(s.success_rate()),
            avg_duration_ms: s.avg_duration_ms().map(round1),
            avg_score: round1(s.avg_score().unwrap_or(0.0)),
        })
        .collect();
    let volumes = work_volumes(&agg.recent);
    WorkerLearningReply {
        worker_name: agg.worker_name.clone(),
        optimal_hour: best_hour(agg, cfg),
        optimal_day: best_day(agg, cfg),
        hourly_performance,
        daily_performance,
        duration_trend: duration_trend(&work_durations(&agg.recent), cfg),
        data_volume_trend: volume_trend(&volumes, cfg),
        recent_avg_records: mean(&volumes).map(round1),
        expected_period_sec: period,
        suggestions: recommendations(agg, period, quiet_hours, cfg),
    }
}

/// Why a worker needs attention at `now` (empty when it does not).
pub fn attention_reasons(
    agg: &WorkerAggregate,
    schedule: ScheduleState,
    now: f64,
    cfg: &WorkerConfig,
) -> Vec<String> {
    let l = &cfg.learning;
    let mut reasons = Vec::new();
    if let Some(latest) = &agg.latest {
        if latest.quality_level.needs_attention() {
            reasons.push(format!(
                "last run scored {:.1} ({}, {})",
                latest.overall_score, latest.quality_level, latest.outcome
            ));
        }
    }
    let n = agg.recent.len();
    let failed = agg.recent.iter().filter(|s| s.outcome.is_failure()).count();
    if n >= l.attention_min_runs.max(1) && failed as f64 / n as f64 >= l.attention_failure_rate {
        reasons.push(format!("{failed} of the last {n} runs failed or timed out"));
    }
    if matches!(schedule, ScheduleState::Late | ScheduleState::Missed) {
        let since = agg.last_run_at.map(|t| now - t).unwrap_or(0.0);
        reasons.push(format!("{}: no run for {since:.0} s", schedule.as_str()));
    }
    let window_start = now - f64::from(l.window_hours) * 3600.0;
    let recent: Vec<&str> = agg
        .recent_anomalies
        .iter()
        .filter(|a| a.detected_at > window_start && a.detected_at <= now)
        .map(|a| a.kind.as_str())
        .collect();
    if !recent.is_empty() {
        let mut kinds = recent.clone();
        kinds.sort_unstable();
        kinds.dedup();
        reasons.push(format!(
            "{} anomalies in the last {} h ({})",
            recent.len(),
            l.window_hours,
            kinds.join(", ")
        ));
    }
    reasons
}

/// `learning.system` reply over all workers at `now`. `quiet_hours` maps a
/// worker name to the forecast quiet UTC hours of its host (missing: none).
pub fn system_learning(
    aggs: &[WorkerAggregate],
    quiet_hours: &BTreeMap<String, Vec<u8>>,
    now: f64,
    cfg: &WorkerConfig,
) -> SystemLearningReply {
    system_learning_page(aggs, &WorkerPage::all(), quiet_hours, now, cfg)
}

/// `learning.system` whose per-worker lists (`schedules`,
/// `workers_needing_attention`, `optimization_opportunities`) hold the
/// workers of `page` only; the totals and hours count every worker.
pub fn system_learning_page(
    aggs: &[WorkerAggregate],
    page: &WorkerPage,
    quiet_hours: &BTreeMap<String, Vec<u8>>,
    now: f64,
    cfg: &WorkerConfig,
) -> SystemLearningReply {
    let listed = page.select(aggs);
    let l = &cfg.learning;
    let mut executions = 0u64;
    let mut score_tenths = 0u64;
    let mut load = [0u64; 24];
    let mut attention = Vec::new();
    let mut opportunities = Vec::new();
    let mut schedules = Vec::new();
    for agg in aggs {
        for b in agg.window(now, l.window_hours) {
            executions += b.executions;
            score_tenths = score_tenths.saturating_add(b.sum_score_tenths);
        }
        for (h, s) in agg.by_hour.iter().enumerate() {
            load[h] += s.executions;
        }
        if !listed.has(&agg.worker_name) {
            continue;
        }
        let schedule = missed::schedule_status(agg, now, cfg);
        let reasons = attention_reasons(agg, schedule.state, now, cfg);
        if !reasons.is_empty() {
            attention.push(AttentionItem {
                worker_name: agg.worker_name.clone(),
                reasons,
                last_overall_score: agg.latest.as_ref().map(|x| x.overall_score),
                last_quality_level: agg.latest.as_ref().map(|x| x.quality_level),
                schedule_state: schedule.state,
            });
        }
        let quiet = quiet_hours
            .get(&agg.worker_name)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        opportunities.extend(recommendations(
            agg,
            schedule.expected_period_sec,
            quiet,
            cfg,
        ));
        schedules.push(schedule);
    }
    attention.sort_by(by_attention);
    schedules.sort_by(|a, b| a.worker_name.cmp(&b.worker_name));
    let mut hours: Vec<HourLoad> = load
        .iter()
        .enumerate()
        .map(|(h, n)| HourLoad {
            hour: h as u8,
            executions: *n,
        })
        .collect();
    hours.sort_by(|a, b| b.executions.cmp(&a.executions).then(a.hour.cmp(&b.hour)));
    let busiest = hours.iter().take(l.busiest_hours_count).copied().collect();
    hours.sort_by(|a, b| a.executions.cmp(&b.executions).then(a.hour.cmp(&b.hour)));
    let quietest = hours.iter().take(l.busiest_hours_count).copied().collect();
    SystemLearningReply {
        generated_at: now,
        window_hours: l.window_hours,
        workers: aggs.len() as u64,
        total_executions_24h: executions,
        average_score: ratio(score_tenths, executions).map(|t| round1(t / 10.0)),
        busiest_hours: busiest,
        quietest_hours: quietest,
        workers_needing_attention: attention,
        optimization_opportunities: opportunities,
        schedules,
        next_cursor: listed.next_cursor,
    }
}

/// `data_quality.summary` reply over all workers at `now`.
pub fn data_quality_summary(
    aggs: &[WorkerAggregate],
    now: f64,
    cfg: &WorkerConfig,
) -> DataQualitySummaryReply {
    data_quality_page(aggs, &WorkerPage::all(), now, cfg)
}

/// `data_quality.summary` whose `workers` list holds the workers of `page`
/// only; the totals, the overall score and `workers_breaching` count every
/// worker.
pub fn data_quality_page(
    aggs: &[WorkerAggregate],
    page: &WorkerPage,
    now: f64,
    cfg: &WorkerConfig,
) -> DataQualitySummaryReply {
    let listed = page.select(aggs);
    let mut workers: Vec<WorkerQuality> = Vec::with_capacity(aggs.len());
    let (mut records_24h, mut vfail_24h, mut limited_24h) = (0u64, 0u64, 0u64);
    let mut breaches_24h = 0u64;
    for agg in aggs {
        for b in agg.window(now, cfg.learning.window_hours) {
            records_24h = records_24h.saturating_add(b.records);
            vfail_24h = vfail_24h.saturating_add(b.validation_failures);
            limited_24h += b.rate_limited;
            breaches_24h = breaches_24h.saturating_add(b.threshold_breaches);
        }
        let quality_score = rolling_score(agg);
        let dq: Vec<f64> = agg
            .recent
            .iter()
            .filter_map(|s| s.data_quality_score)
            .collect();
        workers.push(WorkerQuality {
            worker_name: agg.worker_name.clone(),
            quality_score,
            quality_level: quality_score.map(QualityLevel::from_score),
            data_quality_score: mean(&dq).map(round1),
            executions: agg.total_executions(),
            records_processed: agg.total_records,
            validation_failures: agg.validation_failures,
            rate_limit_incidents: agg.rate_limit_incidents,
            threshold_breaches: agg.total_threshold_breaches(),
            active_breaches: agg
                .latest
                .as_ref()
                .map(|l| l.breaches.clone())
                .unwrap_or_default(),
        });
    }
    workers.sort_by(by_quality);
    let scores: Vec<f64> = workers.iter().filter_map(|w| w.quality_score).collect();
    let overall = mean(&scores).map(round1);
    let mut reply = DataQualitySummaryReply {
        generated_at: now,
        overall_quality_level: overall.map(QualityLevel::from_score),
        overall_score: overall,
        total_records_processed: workers.iter().map(|w| w.records_processed).sum(),
        records_processed_24h: records_24h,
        validation_failures: workers.iter().map(|w| w.validation_failures).sum(),
        validation_failures_24h: vfail_24h,
        rate_limit_incidents: workers.iter().map(|w| w.rate_limit_incidents).sum(),
        rate_limit_incidents_24h: limited_24h,
        threshold_breaches: workers
            .iter()
            .fold(0u64, |a, w| a.saturating_add(w.threshold_breaches)),
        threshold_breaches_24h: breaches_24h,
        workers_breaching: workers
            .iter()
            .filter(|w| !w.active_breaches.is_empty())
            .count() as u64,
        workers: Vec::new(),
        next_cursor: listed.next_cursor.clone(),
    };
    workers.retain(|w| listed.has(&w.worker_name));
    reply.workers = workers;
    reply
}

/// The order of `workers_needing_attention`: most reasons first, then the
/// lowest last score, then by name.
pub fn by_attention(a: &AttentionItem, b: &AttentionItem) -> std::cmp::Ordering {
    b.reasons
        .len()
        .cmp(&a.reasons.len())
        .then(
            a.last_overall_score
                .unwrap_or(0.0)
                .total_cmp(&b.last_overall_score.unwrap_or(0.0)),
        )
        .then(a.worker_name.cmp(&b.worker_name))
}

/// The order of `data_quality.summary` workers: worst quality first (no
/// score last), then by name.
pub fn by_quality(a: &WorkerQuality, b: &WorkerQuality) -> std::cmp::Ordering {
    let key = |w: &WorkerQuality| w.quality_score.unwrap_or(f64::INFINITY);
    key(a)
        .total_cmp(&key(b))
        .then(a.worker_name.cmp(&b.worker_name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::ingest;
    use lull_proto::msg::worker::{example_report, ExecutionOutcome as O};
    use lull_proto::msg::worker::{DurationTrend, RecommendationKind, VolumeTrend};

    // 2025-11-13 (a Thursday) 00:00:00 UTC.
    const THU: f64 = 1_762_992_000.0;

    #[test]
    fn calendar_helpers() {
        assert_eq!(day_of_week(0.0), 3); // 1970-01-01, Thursday
        assert_eq!(day_of_week(THU), 3);
        assert_eq!(day_of_week(THU + 4.0 * 86_400.0), 0); // Monday
        assert_eq!(day_of_week(THU + 3.0 * 86_400.0 + 86_399.0), 6); // Sunday 23:59:59
        assert_eq!(hour_of_day(THU + 13.0 * 3600.0 + 59.0 * 60.0), 13);
        assert_eq!(hour_of_day(THU - 1.0), 23);
        assert_eq!(day_index(THU), 20_405);
    }

    #[test]
    fn trend_compares_halves() {
        let t = trend(&[10.0, 10.0, 10.0, 12.0, 12.0, 12.0], 3, 0.1).unwrap();
        assert_eq!(t.direction, Direction::Up);
        assert_eq!((t.earlier_mean, t.recent_mean), (10.0, 12.0));
        assert_eq!(
            trend(&[10.0, 10.0, 10.5, 10.5], 2, 0.1).unwrap().direction,
            Direction::Flat
        );
        assert_eq!(
            trend(&[10.0, 10.0, 8.0, 8.0], 2, 0.1).unwrap().direction,
            Direction::Down
        );
        assert_eq!(trend(&[1.0, 2.0, 3.0], 2, 0.1), None);
        assert_eq!(
            trend(&[0.0, 0.0, 0.0, 0.0], 2, 0.1).unwrap().direction,
            Direction::Flat
        );
        assert_eq!(
            trend(&[0.0, 0.0, 1.0, 1.0], 2, 0.1).unwrap().direction,
            Direction::Up
        );
    }

    #[test]
    fn learning_metrics_at_ingest() {
        let cfg = WorkerConfig::default();
        let mut agg = WorkerAggregate::new("analytics_flush_worker");
        // Ten hourly runs from Thursday 00:05, 1000 ms, then five at 2000 ms.
        let mut last = None;
        for i in 0..15 {
            let mut r = example_report(
                &format!("e{i}"),
                "analytics_flush_worker",
                THU + 300.0 + f64::from(i) * 3600.0,
                if i < 10 { 1000.0 } else { 2000.0 },
            );
            r.data_verification.records_processed = Some(if i < 10 { 100 } else { 150 });
            last = Some(ingest(&mut agg, r, &cfg).unwrap().unwrap());
        }
        let l = last.unwrap().learning;
        assert_eq!(l.time_of_day_utc, 14);
        assert_eq!(l.day_of_week, 3);
        assert_eq!(l.execution_number_today, 15);
        assert_eq!(l.time_since_last_run_seconds, Some(3600.0));
        // Baseline: 10 x 1000 + 4 x 2000 over 14 = 1285.714..; 2000 / that.
        assert_eq!(l.duration_vs_avg, Some(1.556));
        assert_eq!(l.duration_trend, Some(DurationTrend::Slower));
        assert_eq!(l.data_volume_trend, Some(VolumeTrend::Increasing));

        // The first run of the next day starts the count again.
        let r = example_report(
            "next",
            "analytics_flush_worker",
            THU + 86_400.0 + 60.0,
            2000.0,
        );
        let e = ingest(&mut agg, r, &cfg).unwrap().unwrap();
        assert_eq!(e.learning.execution_number_today, 1);
        assert_eq!(e.learning.day_of_week, 4);
        assert_eq!(
            e.learning.time_since_last_run_seconds,
            Some(86_400.0 + 60.0 - 300.0 - 14.0 * 3600.0)
        );
        // Last five 2000 ms against 1000 x 4 and 2000: still slower.
        assert_eq!(e.learning.duration_trend, Some(DurationTrend::Slower));

        // Cold start: nothing to compare with.
        let fresh = WorkerAggregate::new("w");
        let r = example_report("a", "w", THU, 10.0);
        let l = learning_metrics(&r, &fresh, &cfg);
        assert_eq!(l.execution_number_today, 1);
        assert_eq!(l.time_since_last_run_seconds, None);
        assert_eq!(l.duration_vs_avg, None);
        assert_eq!(l.duration_trend, None);
        assert_eq!(l.data_volume_trend, None);
    }

    /// A daily worker that runs at 14:00 mostly, and at 03:00 sometimes,
    /// where it scores better.
    fn daily_worker(cfg: &WorkerConfig) -> WorkerAggregate {
        let mut agg = WorkerAggregate::new("clip_radar_recap_worker");
        for d in 0..20 {
            let hour = if d % 4 == 0 { 3.0 } else { 14.0 };
            let mut r = example_report(
                &format!("d{d}"),
                "clip_radar_recap_worker",
                THU + f64::from(d) * 86_400.0 + hour * 3600.0,
                60_000.0,
            );
            if hour == 14.0 {
                r.outcome = O::Partial;
            }
            ingest(&mut agg, r, cfg).unwrap();
        }
        agg
    }

    #[test]
    fn best_hour_and_day() {
        let cfg = WorkerConfig::default();
        let agg = daily_worker(&cfg);
        assert_eq!(best_hour(&agg, &cfg), Some(3));
        assert_eq!(busiest_slot(&agg.by_hour), Some(14));
        // Day 0, 4, 8, 12, 16 from a Thursday: Thu, Mon, Fri, Tue, Sat (03:00, SUCCESS).
        let day = best_day(&agg, &cfg).unwrap();
        assert!(agg.by_day[usize::from(day)].executions >= 3);
        // With a high minimum no slot qualifies.
        let mut strict = cfg.clone();
        strict.learning.min_bucket_runs = 100;
        assert_eq!(best_hour(&agg, &strict), None);
    }

    #[test]
    fn schedule_and_quiet_window_recommendations() {
        let cfg = WorkerConfig::default();
        let agg = daily_worker(&cfg);
        let recs = recommendations(&agg, Some(86_400.0), &[1, 2, 3, 4], &cfg);
        let sched = recs
            .iter()
            .find(|r| r.kind == RecommendationKind::Schedule)
            .unwrap();
        assert_eq!(sched.evidence["best_hour"], 3.0);
        assert_eq!(sched.evidence["usual_hour"], 14.0);
        assert!(sched.message.contains("03:00 UTC"), "{}", sched.message);
        let quiet = recs
            .iter()
            .find(|r| r.kind == RecommendationKind::QuietWindow)
            .unwrap();
        assert_eq!(quiet.evidence["suggested_hour"], 3.0);
        // Quiet hours without history: the nearest to the usual hour.
        let recs = recommendations(&agg, Some(86_400.0), &[22, 5], &cfg);
        let quiet = recs
            .iter()
            .find(|r| r.kind == RecommendationKind::QuietWindow)
            .unwrap();
        assert_eq!(quiet.evidence["suggested_hour"], 22.0);
        // Frequent workers are never told to move.
        let recs = recommendations(&agg, Some(3600.0), &[1, 2], &cfg);
        assert!(recs.iter().all(|r| !matches!(
            r.kind,
            RecommendationKind::Schedule | RecommendationKind::QuietWindow
        )));
        // Already in the quiet window: no quiet-window hint.
        let recs = recommendations(&agg, Some(86_400.0), &[14], &cfg);
        assert!(recs
            .iter()
            .all(|r| r.kind != RecommendationKind::QuietWindow));
    }

    #[test]
    fn batch_and_resource_recommendations() {
        let cfg = WorkerConfig::default();
        let mut agg = WorkerAggregate::new("intel_aggregation_hourly");
        for i in 0..10 {
            let mut r = example_report(
                &format!("e{i}"),
                "intel_aggregation_hourly",
                THU + f64::from(i) * 3600.0,
                if i < 5 { 1000.0 } else { 1500.0 },
            );
            r.data_verification.records_processed = Some(if i < 5 { 100 } else { 200 });
            r.data_verification.api_rate_limited = Some(i >= 7);
            r.resource_metrics.memory_peak_mb = Some(600.0);
            r.resource_metrics.cpu_percent_avg = Some(20.0);
            r.resource_metrics.database_query_count = Some(150);
            ingest(&mut agg, r, &cfg).unwrap();
        }
        let recs = recommendations(&agg, Some(3600.0), &[], &cfg);
        let kinds: Vec<_> = recs.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            vec![
                RecommendationKind::BatchSize,
                RecommendationKind::BatchSize,
                RecommendationKind::Resource,
                RecommendationKind::Resource
            ],
            "{recs:#?}"
        );
        assert_eq!(recs[0].evidence["records_recent_mean"], 200.0);
        assert_eq!(recs[0].evidence["duration_recent_mean_ms"], 1500.0);
        assert_eq!(recs[1].evidence["rate_limited_runs"], 3.0);
        assert_eq!(recs[2].evidence["avg_memory_peak_mb"], 600.0);
        assert_eq!(recs[3].evidence["avg_database_queries"], 150.0);
    }

    #[test]
    fn stats_and_learning_replies() {
        let cfg = WorkerConfig::default();
        let agg = daily_worker(&cfg);
        let now = agg.last_run_at.unwrap() + 600.0;
        let s = worker_stats(&agg, now, &cfg);
        assert_eq!(s.total_executions, 20);
        assert_eq!(s.successful_executions, 5);
        assert_eq!(s.outcomes.partial, 15);
        assert_eq!(s.failed_executions, 0);
        assert_eq!(s.success_rate, 0.25);
        assert_eq!(s.avg_duration_ms, Some(60_000.0));
        assert_eq!(s.score_trend.len(), 20);
        assert_eq!(s.last_outcome, Some(O::Partial));
        assert_eq!(s.schedule.state, ScheduleState::Ok);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["schedule"]["state"], "OK");

        let l = worker_learning(&agg, &[], &cfg);
        assert_eq!(l.optimal_hour, Some(3));
        assert_eq!(l.hourly_performance.len(), 2);
        assert_eq!(l.hourly_performance[0].hour, 3);
        assert_eq!(l.hourly_performance[0].executions, 5);
        assert_eq!(l.hourly_performance[0].success_rate, 1.0);
        assert_eq!(l.expected_period_sec, Some(86_400.0));
        assert!(l
            .suggestions
            .iter()
            .any(|r| r.kind == RecommendationKind::Schedule));
    }

    #[test]
    fn system_and_data_quality_views() {
        let cfg = WorkerConfig::default();
        let base = THU + 10.0 * 86_400.0;
        // An hourly worker, healthy, 30 runs up to `base`.
        let mut hourly = WorkerAggregate::new("intel_aggregation_hourly");
        for i in 0..30 {
            let mut r = example_report(
                &format!("h{i}"),
                "intel_aggregation_hourly",
                base - f64::from(29 - i) * 3600.0,
                1000.0,
            );
            r.data_verification.records_processed = Some(10);
            r.data_verification.validation_checks_passed = Some(5);
            ingest(&mut hourly, r, &cfg).unwrap();
        }
        // A failing worker that hits rate limits.
        let mut bad = WorkerAggregate::new("coach_cleanup_worker");
        for i in 0..4 {
            let mut r = example_report(
                &format!("b{i}"),
                "coach_cleanup_worker",
                base - f64::from(3 - i) * 3600.0,
                500.0,
            );
            r.outcome = if i == 0 { O::Success } else { O::Failure };
            r.data_verification.records_processed = Some(1);
            r.data_verification.validation_checks_failed = Some(2);
            r.data_verification.api_rate_limited = Some(true);
            ingest(&mut bad, r, &cfg).unwrap();
        }
        let now = base + 60.0;
        let aggs = vec![hourly, bad];
        let sys = system_learning(&aggs, &BTreeMap::new(), now, &cfg);
        // The hourly worker's last 24 clock hours (24 runs) and all 4 bad runs.
        assert_eq!(sys.total_executions_24h, 28);
        assert_eq!(sys.workers, 2);
        assert_eq!(sys.workers_needing_attention.len(), 1);
        let att = &sys.workers_needing_attention[0];
        assert_eq!(att.worker_name, "coach_cleanup_worker");
        assert!(
            att.reasons
                .iter()
                .any(|r| r.contains("3 of the last 4 runs")),
            "{:?}",
            att.reasons
        );
        assert_eq!(sys.busiest_hours.len(), 3);
        assert_eq!(sys.quietest_hours.len(), 3);
        assert!(sys.busiest_hours[0].executions >= sys.busiest_hours[1].executions);
        assert_eq!(sys.schedules.len(), 2);
        // Mean score of the 28 runs in the window.
        let avg = sys.average_score.unwrap();
        assert!(avg > 80.0 && avg < 100.0, "{avg}");
        assert!(sys
            .optimization_opportunities
            .iter()
            .any(|r| r.worker_name == "coach_cleanup_worker"
                && r.kind == RecommendationKind::BatchSize));

        // Paged by name: one worker a page, the totals stay fleet-wide.
        let first = WorkerPage {
            after: None,
            limit: 1,
        };
        let p1 = system_learning_page(&aggs, &first, &BTreeMap::new(), now, &cfg);
        assert_eq!(p1.next_cursor.as_deref(), Some("coach_cleanup_worker"));
        assert_eq!(p1.schedules.len(), 1);
        assert_eq!(p1.workers_needing_attention.len(), 1);
        assert_eq!(
            (p1.workers, p1.total_executions_24h, p1.average_score),
            (2, 28, sys.average_score)
        );
        let second = WorkerPage {
            after: Some("coach_cleanup_worker"),
            limit: 1,
        };
        let p2 = system_learning_page(&aggs, &second, &BTreeMap::new(), now, &cfg);
        assert_eq!(p2.next_cursor, None);
        assert_eq!(p2.schedules[0].worker_name, "intel_aggregation_hourly");
        assert!(p2.workers_needing_attention.is_empty());
        let q1 = data_quality_page(&aggs, &first, now, &cfg);
        let q2 = data_quality_page(&aggs, &second, now, &cfg);
        let whole = data_quality_summary(&aggs, now, &cfg);
        assert_eq!(q1.total_records_processed, whole.total_records_processed);
        assert_eq!(q2.overall_score, whole.overall_score);
        let joined: Vec<_> = q1.workers.iter().chain(&q2.workers).cloned().collect();
        assert_eq!(joined, whole.workers);

        let dq = data_quality_summary(&aggs, now, &cfg);
        assert_eq!(dq.workers[0].worker_name, "coach_cleanup_worker");
        assert_eq!(dq.total_records_processed, 304);
        assert_eq!(dq.records_processed_24h, 244);
        assert_eq!(dq.validation_failures, 8);
        assert_eq!(dq.validation_failures_24h, 8);
        assert_eq!(dq.rate_limit_incidents, 4);
        assert_eq!(dq.workers[1].quality_score, Some(100.0));
        assert_eq!(dq.workers[1].quality_level, Some(QualityLevel::Excellent));
        let overall = dq.overall_score.unwrap();
        assert_eq!(
            dq.overall_quality_level,
            Some(QualityLevel::from_score(overall))
        );

        // Empty fleet.
        let empty = data_quality_summary(&[], now, &cfg);
        assert_eq!(empty.overall_quality_level, None);
        let sys = system_learning(&[], &BTreeMap::new(), now, &cfg);
        assert_eq!(sys.total_executions_24h, 0);
        assert_eq!(sys.average_score, None);
        assert_eq!(empty.threshold_breaches, 0);
        assert_eq!(empty.workers_breaching, 0);
    }

    #[test]
    fn data_quality_counts_threshold_breaches() {
        let cfg = WorkerConfig::default();
        let base = THU + 10.0 * 86_400.0;
        let mut g = WorkerAggregate::new("sse_guardian");
        // Two days ago: 3 runs breach stale_streams (11 > 10); then runs at
        // (10) and below (9) the threshold; the last one breaches two rules.
        let runs: [(f64, serde_json::Value); 6] = [
            (
                base - 2.0 * 86_400.0,
                serde_json::json!({"stale_streams": 11}),
            ),
            (
                base - 2.0 * 86_400.0 + 10.0,
                serde_json::json!({"stale_streams": 12}),
            ),
            (
                base - 2.0 * 86_400.0 + 20.0,
                serde_json::json!({"stale_streams": 13}),
            ),
            (
                base - 600.0,
                serde_json::json!({"stale_streams": 10, "orphan_rate": 0.1}),
            ),
            (
                base - 300.0,
                serde_json::json!({"stale_streams": 9, "orphaned_streams": 5}),
            ),
            (
                base - 10.0,
                serde_json::json!({"orphaned_streams": 6, "orphan_rate": 0.25}),
            ),
        ];
        for (i, (at, m)) in runs.into_iter().enumerate() {
            let mut r = example_report(&format!("g{i}"), "sse_guardian", at, 40.0);
            r.custom_metrics = m.as_object().unwrap().clone();
            ingest(&mut g, r, &cfg).unwrap();
        }
        assert_eq!(g.threshold_breaches["stale_streams"], 3);
        assert_eq!(g.threshold_breaches["orphaned_streams"], 1);
        assert_eq!(g.threshold_breaches["orphan_rate"], 1);
        let quiet = WorkerAggregate::new("coach_cleanup_worker");
        let dq = data_quality_summary(&[g.clone(), quiet], base, &cfg);
        assert_eq!(dq.threshold_breaches, 5);
        assert_eq!(dq.threshold_breaches_24h, 2);
        assert_eq!(dq.workers_breaching, 1);
        let w = dq
            .workers
            .iter()
            .find(|w| w.worker_name == "sse_guardian")
            .unwrap();
        assert_eq!(w.threshold_breaches, 5);
        let active: Vec<&str> = w
            .active_breaches
            .iter()
            .map(|a| a.rule.as_deref().unwrap())
            .collect();
        assert_eq!(active, vec!["orphaned_streams", "orphan_rate"]);

        // A later run under every threshold clears the active breaches.
        let mut r = example_report("g6", "sse_guardian", base - 5.0, 40.0);
        r.custom_metrics
            .insert("orphaned_streams".into(), serde_json::json!(0));
        ingest(&mut g, r, &cfg).unwrap();
        let dq = data_quality_summary(&[g.clone()], base, &cfg);
        assert_eq!(dq.workers_breaching, 0);
        assert_eq!(dq.threshold_breaches, 5);
        // The aggregate survives its JSON document (the store) and a rebuild.
        let back: WorkerAggregate =
            serde_json::from_value(serde_json::to_value(&g).unwrap()).unwrap();
        assert_eq!(back, g);
    }
}
