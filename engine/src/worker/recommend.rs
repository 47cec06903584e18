//! Recommendations for one worker: schedule moves toward its best hour
//! and the fleet's quiet hours, batch-size hints from its trends, and
//! resource hints, each with the evidence behind it.

use std::collections::BTreeMap;

use lull_proto::msg::worker::{Recommendation, RecommendationKind};

use super::aggregate::{mean, RunSample, WorkerAggregate};
use super::config::WorkerConfig;
use super::score::round1;
use super::slots::{best_slot, busiest_slot};
use super::trend::{trend, work_durations, work_volumes, Direction};

fn hh(h: usize) -> String {
    format!("{h:02}:00 UTC")
}

fn evidence<const N: usize>(items: [(&str, f64); N]) -> BTreeMap<String, f64> {
    items.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn circular_distance(a: usize, b: usize) -> usize {
    let d = a.abs_diff(b) % 24;
    d.min(24 - d)
}

/// Suggested optimisations of one worker: schedule changes toward its best
/// hour and toward the hosts' forecast quiet hours (`quiet_hours`, UTC hours,
/// may be empty), batch-size hints from the volume and duration trends and
/// rate limits, and resource hints. `period` is the expected interval.
pub fn recommendations(
    agg: &WorkerAggregate,
    period: Option<f64>,
    quiet_hours: &[u8],
    cfg: &WorkerConfig,
) -> Vec<Recommendation> {
    let l = &cfg.learning;
    let s = &cfg.score;
    let name = &agg.worker_name;
    let mut out = Vec::new();
    let rec = |kind, message: String, evidence| Recommendation {
        worker_name: name.clone(),
        kind,
        message,
        evidence,
    };

    // Schedule hints only make sense for workers that run rarely enough to
    // be moved (a 10-second guardian cannot move).
    let movable = period.is_some_and(|p| p >= l.schedule_hint_min_period_sec);
    let usual = busiest_slot(&agg.by_hour);
    if let (true, Some(usual)) = (movable, usual) {
        if let Some(best) = best_slot(&agg.by_hour, l.min_bucket_runs) {
            let best_avg = agg.by_hour[best].avg_score().unwrap_or(0.0);
            let usual_avg = agg.by_hour[usual].avg_score().unwrap_or(0.0);
            if best != usual && best_avg - usual_avg >= l.schedule_gain_min_points {
                out.push(rec(
                    RecommendationKind::Schedule,
                    format!(
                        "runs at {} score {:.1} on average against {:.1} at {} where it usually runs: schedule toward {}",
                        hh(best), best_avg, usual_avg, hh(usual), hh(best)
                    ),
                    evidence([
                        ("best_hour", best as f64),
                        ("best_hour_avg_score", round1(best_avg)),
                        ("usual_hour", usual as f64),
                        ("usual_hour_avg_score", round1(usual_avg)),
                    ]),
                ));
            }
        }
        let quiet: Vec<usize> = quiet_hours
            .iter()
            .map(|h| usize::from(*h))
            .filter(|h| *h < 24)
            .collect();
        if !quiet.is_empty() && !quiet.contains(&usual) {
            // Prefer a quiet hour that already scores well, else the nearest.
            let scored = quiet
                .iter()
                .copied()
                .filter(|h| agg.by_hour[*h].executions >= l.min_bucket_runs.max(1))
                .max_by(|a, b| {
                    let sa = agg.by_hour[*a].avg_score().unwrap_or(0.0);
                    let sb = agg.by_hour[*b].avg_score().unwrap_or(0.0);
                    sa.total_cmp(&sb).then(b.cmp(a))
                });
            let target = scored.or_else(|| {
                quiet
                    .iter()
                    .copied()
                    .min_by_key(|h| (circular_distance(*h, usual), *h))
            });
            if let Some(target) = target {
                out.push(rec(
                    RecommendationKind::QuietWindow,
                    format!(
                        "usually runs at {}, outside the hosts' forecast quiet hours: move it to {}",
                        hh(usual),
                        hh(target)
                    ),
                    evidence([
                        ("usual_hour", usual as f64),
                        ("suggested_hour", target as f64),
                        ("quiet_hours", quiet.len() as f64),
                    ]),
                ));
            }
        }
    }

    // Batch size: growing volume with slowing runs, or frequent rate limits.
    let k = l.trend_window;
    let vol = trend(&work_volumes(&agg.recent), k, l.trend_tolerance);
    let dur = trend(&work_durations(&agg.recent), k, l.trend_tolerance);
    if let (Some(v), Some(d)) = (vol, dur) {
        if v.direction == Direction::Up && d.direction == Direction::Up {
            out.push(rec(
                RecommendationKind::BatchSize,
                format!(
                    "volume is rising ({:.0} -> {:.0} records per run) and runs are slowing ({:.0} -> {:.0} ms): use smaller batches or run more often",
                    v.earlier_mean, v.recent_mean, d.earlier_mean, d.recent_mean
                ),
                evidence([
                    ("records_earlier_mean", round1(v.earlier_mean)),
                    ("records_recent_mean", round1(v.recent_mean)),
                    ("duration_earlier_mean_ms", round1(d.earlier_mean)),
                    ("duration_recent_mean_ms", round1(d.recent_mean)),
                ]),
            ));
        }
    }
    let n = agg.recent.len();
    let limited = agg.recent.iter().filter(|s| s.rate_limited).count();
    if n > 0 && limited > 0 && limited as f64 / n as f64 >= l.rate_limit_hint_share {
        out.push(rec(
            RecommendationKind::BatchSize,
            format!(
                "{limited} of the last {n} runs hit an API rate limit: use smaller batches or spread the calls out"
            ),
            evidence([
                ("rate_limited_runs", limited as f64),
                ("recent_runs", n as f64),
            ]),
        ));
    }

    // Resources: averages of the recent runs against the seed's thresholds.
    let avg_of = |f: fn(&RunSample) -> Option<f64>| {
        mean(&agg.recent.iter().filter_map(f).collect::<Vec<_>>())
    };
    if let Some(m) = avg_of(|s| s.memory_peak_mb) {
        if m > s.memory_threshold_mb {
            out.push(rec(
                RecommendationKind::Resource,
                format!(
                    "average peak memory {m:.0} MB is over the {:.0} MB threshold: give it more memory or process the data in smaller chunks",
                    s.memory_threshold_mb
                ),
                evidence([
                    ("avg_memory_peak_mb", round1(m)),
                    ("threshold_mb", s.memory_threshold_mb),
                ]),
            ));
        }
    }
    if let Some(c) = avg_of(|s| s.cpu_percent_avg) {
        if c > s.cpu_threshold_pct {
            out.push(rec(
                RecommendationKind::Resource,
                format!(
                    "average CPU {c:.0}% is over the {:.0}% threshold: give it more CPU or run it in a quiet window",
                    s.cpu_threshold_pct
                ),
                evidence([
                    ("avg_cpu_percent", round1(c)),
                    ("threshold_pct", s.cpu_threshold_pct),
                ]),
            ));
        }
    }
    if let Some(q) = avg_of(|s| s.database_query_count.map(|q| q as f64)) {
        if q > s.db_query_threshold {
            out.push(rec(
                RecommendationKind::Resource,
                format!(
                    "{q:.0} database queries per run on average (over {:.0}): batch or cache the queries",
                    s.db_query_threshold
                ),
                evidence([
                    ("avg_database_queries", round1(q)),
                    ("threshold", s.db_query_threshold),
                ]),
            ));
        }
    }
    out
}
