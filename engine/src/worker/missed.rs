//! Missed and late runs, as Healthchecks.io and Sentry Crons detect them:
//! each worker has an expected period (configured, or learned as the median
//! interval between its recent run starts) and a grace. With `last` the
//! start of its latest run, at time `now` the worker is
//!
//! - `OK` while `now <= last + period + grace`,
//! - `LATE` after that (the expected run is overdue beyond its grace),
//! - `MISSED` from `last + period + grace + missed_after_periods * period`
//!   (a further period without a run),
//! - `UNKNOWN` when no period is known (cold start, nothing configured) or
//!   the worker never ran.
//!
//! Every check-in counts, whatever its outcome: failures are judged by the
//! scores, not here. The clock is injected (`now`).

use lull_proto::msg::worker::{PeriodSource, ScheduleState, ScheduleStatus};

use super::aggregate::WorkerAggregate;
use super::anomaly::median;
use super::config::{ScheduleConfig, WorkerConfig};

/// The median of the positive intervals between consecutive starts (sorted
/// or not), or `None` with fewer than `min_intervals` of them.
pub fn learned_period(starts: &[f64], min_intervals: usize) -> Option<f64> {
    let mut s: Vec<f64> = starts.to_vec();
    s.sort_by(f64::total_cmp);
    let intervals: Vec<f64> = s
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|d| *d > 0.0)
        .collect();
    if intervals.len() < min_intervals.max(1) {
        return None;
    }
    median(&intervals)
}

/// The expected period of a worker and where it came from: the configured
/// override first, else learned from its recent runs.
pub fn expected_period(agg: &WorkerAggregate, cfg: &WorkerConfig) -> (Option<f64>, PeriodSource) {
    if let Some(p) = cfg
        .override_for(&agg.worker_name)
        .and_then(|o| o.expected_period_sec)
    {
        return (Some(p), PeriodSource::Configured);
    }
    let starts: Vec<f64> = agg.recent.iter().map(|s| s.started_at).collect();
    match learned_period(&starts, cfg.schedule.min_intervals) {
        Some(p) => (Some(p), PeriodSource::Learned),
        None => (None, PeriodSource::None),
    }
}

/// The grace of a period: `grace_fraction * period` clamped to
/// `grace_min_sec..=grace_max_sec`.
pub fn default_grace(period: f64, cfg: &ScheduleConfig) -> f64 {
    (cfg.grace_fraction * period).clamp(cfg.grace_min_sec, cfg.grace_max_sec)
}

/// The schedule state of one worker from plain values.
pub fn evaluate(
    worker_name: &str,
    last_run_at: Option<f64>,
    period: Option<f64>,
    source: PeriodSource,
    grace: f64,
    missed_after_periods: f64,
    now: f64,
) -> ScheduleStatus {
    let unknown = |source| ScheduleStatus {
        worker_name: worker_name.to_string(),
        state: ScheduleState::Unknown,
        period_source: source,
        expected_period_sec: period,
        grace_sec: period.map(|_| grace),
        last_run_at,
        next_due_at: None,
        late_at: None,
        missed_at: None,
        overdue_sec: 0.0,
        missed_runs: 0,
    };
    let (Some(last), Some(p)) = (last_run_at, period.filter(|p| *p > 0.0)) else {
        return unknown(source);
    };
    let due = last + p;
    let late_at = due + grace;
    let missed_at = late_at + missed_after_periods * p;
    let state = if now > missed_at {
        ScheduleState::Missed
    } else if now > late_at {
        ScheduleState::Late
    } else {
        ScheduleState::Ok
    };
    let missed_runs = if state == ScheduleState::Ok {
        0
    } else {
        ((now - last - grace) / p).floor().max(1.0) as u64
    };
    ScheduleStatus {
        worker_name: worker_name.to_string(),
        state,
        period_source: source,
        expected_period_sec: Some(p),
        grace_sec: Some(grace),
        last_run_at: Some(last),
        next_due_at: Some(due),
        late_at: Some(late_at),
        missed_at: Some(missed_at),
        overdue_sec: (now - due).max(0.0),
        missed_runs,
    }
}

/// The schedule status of a worker at `now`.
pub fn schedule_status(agg: &WorkerAggregate, now: f64, cfg: &WorkerConfig) -> ScheduleStatus {
    let (period, source) = expected_period(agg, cfg);
    let grace = cfg
        .override_for(&agg.worker_name)
        .and_then(|o| o.grace_sec)
        .or_else(|| period.map(|p| default_grace(p, &cfg.schedule)))
        .unwrap_or(0.0);
    evaluate(
        &agg.worker_name,
        agg.last_run_at,
        period,
        source,
        grace,
        cfg.schedule.missed_after_periods,
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::config::WorkerOverride;
    use crate::worker::ingest;
    use lull_proto::msg::worker::example_report;

    const T0: f64 = 1_763_020_800.0;

    fn hourly(n: u32) -> WorkerAggregate {
        let cfg = WorkerConfig::default();
        let mut agg = WorkerAggregate::new("intel_aggregation_hourly");
        for i in 0..n {
            // A few seconds of jitter around each hour.
            let t = T0 + f64::from(i) * 3600.0 + if i % 3 == 1 { 5.0 } else { 0.0 };
            ingest(
                &mut agg,
                example_report(&format!("e{i}"), "intel_aggregation_hourly", t, 800.0),
                &cfg,
            )
            .unwrap();
        }
        agg
    }

    #[test]
    fn period_is_the_median_interval() {
        assert_eq!(learned_period(&[0.0, 10.0, 20.0, 31.0], 3), Some(10.0));
        assert_eq!(learned_period(&[31.0, 0.0, 20.0, 10.0], 3), Some(10.0));
        // One long gap (an outage) does not move the median.
        assert_eq!(
            learned_period(&[0.0, 60.0, 120.0, 180.0, 3000.0, 3060.0], 3),
            Some(60.0)
        );
        assert_eq!(learned_period(&[0.0, 10.0, 20.0], 3), None);
        // Duplicate starts are not intervals.
        assert_eq!(learned_period(&[5.0, 5.0, 5.0, 5.0], 1), None);
    }

    #[test]
    fn ok_late_missed_with_an_injected_clock() {
        let cfg = WorkerConfig::default();
        let agg = hourly(10);
        let last = agg.last_run_at.unwrap();
        assert_eq!(last, T0 + 9.0 * 3600.0);
        let at = |now: f64| schedule_status(&agg, now, &cfg);

        let s = at(last + 60.0);
        assert_eq!(s.state, ScheduleState::Ok);
        assert_eq!(s.period_source, PeriodSource::Learned);
        assert_eq!(s.expected_period_sec, Some(3600.0));
        // Grace: 20 % of an hour = 720 s, within 60..3600.
        assert_eq!(s.grace_sec, Some(720.0));
        assert_eq!(s.next_due_at, Some(last + 3600.0));
        assert_eq!(s.late_at, Some(last + 4320.0));
        assert_eq!(s.missed_at, Some(last + 7920.0));
        assert_eq!(s.overdue_sec, 0.0);

        // Due but within grace: still OK, overdue counted.
        let s = at(last + 4000.0);
        assert_eq!(s.state, ScheduleState::Ok);
        assert_eq!(s.overdue_sec, 400.0);
        assert_eq!(at(last + 4320.0).state, ScheduleState::Ok);

        let s = at(last + 4321.0);
        assert_eq!(s.state, ScheduleState::Late);
        assert_eq!(s.missed_runs, 1);
        assert_eq!(at(last + 7920.0).state, ScheduleState::Late);

        let s = at(last + 7921.0);
        assert_eq!(s.state, ScheduleState::Missed);
        assert_eq!(s.missed_runs, 2);
        assert_eq!(at(last + 5.0 * 3600.0 + 720.0).missed_runs, 5);

        // A new run puts it back to OK.
        let mut agg2 = agg.clone();
        ingest(
            &mut agg2,
            example_report("late", "intel_aggregation_hourly", last + 8000.0, 800.0),
            &cfg,
        )
        .unwrap();
        assert_eq!(
            schedule_status(&agg2, last + 8100.0, &cfg).state,
            ScheduleState::Ok
        );
    }

    #[test]
    fn cold_start_is_unknown_until_a_period_is_known() {
        let cfg = WorkerConfig::default();
        let empty = WorkerAggregate::new("clip_radar_recap_worker");
        let s = schedule_status(&empty, T0, &cfg);
        assert_eq!(s.state, ScheduleState::Unknown);
        assert_eq!(s.period_source, PeriodSource::None);
        assert_eq!(s.last_run_at, None);
        // Three runs give two intervals: not enough to learn.
        let agg = hourly(3);
        let s = schedule_status(&agg, T0 + 1e6, &cfg);
        assert_eq!(s.state, ScheduleState::Unknown);
        assert!(s.last_run_at.is_some());
        assert_eq!(
            schedule_status(&hourly(4), T0 + 1e6, &cfg).state,
            ScheduleState::Missed
        );
    }

    #[test]
    fn configured_period_and_grace_win() {
        let mut cfg = WorkerConfig::default();
        cfg.overrides.insert(
            "intel_aggregation_daily".into(),
            WorkerOverride {
                expected_period_sec: Some(86_400.0),
                grace_sec: Some(1800.0),
                ..Default::default()
            },
        );
        let mut agg = WorkerAggregate::new("intel_aggregation_daily");
        ingest(
            &mut agg,
            example_report("d1", "intel_aggregation_daily", T0, 60_000.0),
            &cfg,
        )
        .unwrap();
        let s = schedule_status(&agg, T0 + 86_400.0 + 1800.0, &cfg);
        assert_eq!(s.period_source, PeriodSource::Configured);
        assert_eq!(s.state, ScheduleState::Ok);
        assert_eq!(
            schedule_status(&agg, T0 + 86_400.0 + 1801.0, &cfg).state,
            ScheduleState::Late
        );
        assert_eq!(
            schedule_status(&agg, T0 + 2.0 * 86_400.0 + 1801.0, &cfg).state,
            ScheduleState::Missed
        );
    }

    #[test]
    fn grace_is_clamped() {
        let c = ScheduleConfig::default();
        assert_eq!(default_grace(10.0, &c), 60.0); // the 10-second SSE guardian
        assert_eq!(default_grace(3600.0, &c), 720.0);
        assert_eq!(default_grace(86_400.0, &c), 3600.0);
    }
}
