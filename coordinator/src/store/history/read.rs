//! Reading history: raw quiet samples and group snapshots, rollup steps,
//! streaks and forecast cells, and [`points`], which answers a planned
//! `stats.history` query from rollups up to the rollup watermark and from
//! raw samples after it.

use lull_proto::msg::hosts::QuietState;

use super::rollup::{parse_group_chunk, Acc, AggBucketer};
use super::HistoryStore;
use crate::store::StoreError;
use lull_engine::quiet::forecast::Heatmap;
use lull_engine::quiet::history::{numeric_fields, HistoryPlan, HistoryPoint, MetricGroup};
use lull_engine::quiet::streaks::ClosedStreak;

/// Name of the quiet score field in history points.
pub const QUIET_FIELD: &str = "quiet_score";

/// Raw quiet samples `(t, score)` of `host` in `[from, to]`.
pub async fn quiet_raw(
    store: &HistoryStore,
    host: &str,
    from: f64,
    to: f64,
) -> Result<Vec<(f64, f64)>, StoreError> {
    let client = store.pool.get().await?;
    let rows = client
        .query(
            "SELECT q.t + u.dt::float8, u.score
             FROM quiet_samples q CROSS JOIN LATERAL unnest(q.dts, q.scores) AS u(dt, score)
             WHERE q.host_id = $1 AND q.t >= $2 - $4::float8 AND q.t <= $3 AND q.t_end >= $2
               AND q.t + u.dt::float8 >= $2 AND q.t + u.dt::float8 <= $3
             LIMIT $5",
            &[
                &host,
                &from,
                &to,
                &store.cfg.quiet_chunk_max_sec,
                &store.cfg.max_read_rows,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, f64>(0), f64::from(r.get::<_, f32>(1))))
        .collect())
}

/// Quiet rollup steps `(t, aggregate)` of `host` in `[from, to)`.
pub async fn quiet_rollups(
    store: &HistoryStore,
    host: &str,
    from: f64,
    to: f64,
) -> Result<Vec<(f64, Acc)>, StoreError> {
    let client = store.pool.get().await?;
    let rows = client
        .query(
            "SELECT r.t + u.i * r.step, u.n, u.a, u.mn, u.mx
             FROM quiet_rollups r
               CROSS JOIN LATERAL unnest(r.idx, r.ns, r.avgs, r.mins, r.maxs) AS u(i, n, a, mn, mx)
             WHERE r.host_id = $1 AND r.t >= $2 - $4::float8 AND r.t < $3
               AND r.t + u.i * r.step >= $2 AND r.t + u.i * r.step < $3",
            &[&host, &from, &to, &store.cfg.rollup_chunk_sec],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let n = r.get::<_, i32>(1).max(0) as u64;
            let f = |i: usize| f64::from(r.get::<_, f32>(i));
            (r.get::<_, f64>(0), Acc::of(n, f(2), f(3), f(4)))
        })
        .collect())
}

/// Raw snapshots `(t, payload)` of one group of `host` in `[from, to]`.
pub async fn group_raw(
    store: &HistoryStore,
    host: &str,
    group: &str,
    from: f64,
    to: f64,
) -> Result<Vec<(f64, serde_json::Value)>, StoreError> {
    let client = store.pool.get().await?;
    let rows = client
        .query(
            "SELECT t, payload FROM stats_samples
             WHERE host_id = $1 AND grp = $2 AND t >= $3 AND t <= $4
             LIMIT $5",
            &[&host, &group, &from, &to, &store.cfg.max_read_rows],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Group rollup rows `(chunk start, step, steps)` of `host` overlapping
/// `[from, to)`.
pub async fn group_rollups(
    store: &HistoryStore,
    host: &str,
    group: &str,
    from: f64,
    to: f64,
) -> Result<Vec<(f64, f64, serde_json::Value)>, StoreError> {
    let client = store.pool.get().await?;
    let rows = client
        .query(
            "SELECT t, step, steps FROM stats_rollups
             WHERE host_id = $1 AND grp = $2 AND t >= $3 - $5::float8 AND t < $4",
            &[&host, &group, &from, &to, &store.cfg.rollup_chunk_sec],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// The points of a planned history query for `host`. Quiet samples still
/// waiting in the fleet actor (`pending`, `(t, score)`) are included, so
/// the newest samples show before they are written.
pub async fn points(
    store: &HistoryStore,
    host: &str,
    plan: &HistoryPlan,
    pending: &[(f64, f64)],
) -> Result<Vec<HistoryPoint>, StoreError> {
    let mut b = AggBucketer::new(plan);
    // Rollups serve what is before the watermark; raw samples the rest.
    let raw_from = if plan.use_rollups {
        let wm = store.shared.watermark().clamp(plan.start, plan.end);
        if wm > plan.start {
            match &plan.group {
                MetricGroup::Quiet => {
                    for (t, a) in quiet_rollups(store, host, plan.start, wm).await? {
                        b.add(t, a.n, [(QUIET_FIELD, a)]);
                    }
                }
                g => {
                    let group = g.to_string();
                    for (c, step, steps) in
                        group_rollups(store, host, &group, plan.start, wm).await?
                    {
                        for s in parse_group_chunk(c, step, &steps) {
                            if s.t < wm {
                                b.add(s.t, s.n, s.fields.iter().map(|(k, a)| (k.as_str(), *a)));
                            }
                        }
                    }
                }
            }
        }
        wm
    } else {
        plan.start
    };
    match &plan.group {
        MetricGroup::Quiet => {
            for (t, s) in quiet_raw(store, host, raw_from, plan.end).await? {
                b.add(t, 1, [(QUIET_FIELD, Acc::one(s))]);
            }
            for &(t, s) in pending.iter().filter(|(t, _)| *t >= raw_from) {
                b.add(t, 1, [(QUIET_FIELD, Acc::one(s))]);
            }
        }
        g => {
            let max_fields = store.quiet.history.max_fields;
            for (t, payload) in group_raw(store, host, &g.to_string(), raw_from, plan.end).await? {
                let fields = numeric_fields(&payload, max_fields);
                b.add(t, 1, fields.iter().map(|(k, v)| (k.as_str(), Acc::one(*v))));
            }
        }
    }
    Ok(b.finish())
}

/// Stored streaks of `host` that end at or after `from` and start after
/// `after`, oldest first, at most `limit`.
pub async fn streaks(
    store: &HistoryStore,
    host: &str,
    from: f64,
    after: Option<f64>,
    limit: i64,
) -> Result<Vec<ClosedStreak>, StoreError> {
    let client = store.pool.get().await?;
    let rows = client
        .query(
            "SELECT start_time, end_time, avg_score, min_score FROM quiet_streaks
             WHERE host_id = $1 AND end_time >= $2
               AND ($4::float8 IS NULL OR start_time > $4)
             ORDER BY start_time LIMIT $3",
            &[&host, &from, &limit, &after],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ClosedStreak {
            start_time: r.get(0),
            end_time: r.get(1),
            avg_score: round1(f64::from(r.get::<_, f32>(2))),
            min_score: round1(f64::from(r.get::<_, f32>(3))),
        })
        .collect())
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Unix time of Monday 1970-01-05 00:00 UTC: `MONDAY + h × 3600` lies in
/// hour-of-week cell `h`.
const MONDAY: f64 = 345_600.0;

/// The forecast heatmap of `host` from the rollups since `since`.
pub async fn heatmap(store: &HistoryStore, host: &str, since: f64) -> Result<Heatmap, StoreError> {
    let client = store.pool.get().await?;
    let rows = client
        .query(
            "SELECT t, points, score_sum FROM quiet_rollups WHERE host_id = $1 AND t >= $2",
            &[&host, &since],
        )
        .await?;
    let mut h = Heatmap::new(store.quiet.forecast.min_samples);
    for r in &rows {
        let (t, n, sum): (f64, i32, f64) = (r.get(0), r.get(1), r.get(2));
        if n > 0 {
            h.add_many(t, sum / f64::from(n), n as u32);
        }
    }
    Ok(h)
}

/// Every host's forecast heatmap from the rollups since `since`, aggregated
/// by hour of the week in the database.
pub async fn heatmaps(
    store: &HistoryStore,
    since: f64,
) -> Result<Vec<(String, Heatmap)>, StoreError> {
    let client = store.pool.get().await?;
    let rows = client
        .query(
            "SELECT host_id, ((floor(t / 3600)::bigint + 72) % 168)::int4 AS how,
                    sum(points)::int8, sum(score_sum)
             FROM quiet_rollups WHERE t >= $1
             GROUP BY 1, 2 ORDER BY 1",
            &[&since],
        )
        .await?;
    let min = store.quiet.forecast.min_samples;
    let mut out: Vec<(String, Heatmap)> = Vec::new();
    for r in &rows {
        let (host, how, n, sum): (String, i32, i64, f64) = (r.get(0), r.get(1), r.get(2), r.get(3));
        if n <= 0 {
            continue;
        }
        if out.last().is_none_or(|(h, _)| *h != host) {
            out.push((host, Heatmap::new(min)));
        }
        if let Some((_, h)) = out.last_mut() {
            let count = u32::try_from(n).unwrap_or(u32::MAX);
            h.add_many(MONDAY + f64::from(how) * 3600.0, sum / n as f64, count);
        }
    }
    Ok(out)
}

/// Decodes a state code of `quiet_samples.states`.
pub fn state_of(code: i16) -> Option<QuietState> {
    match code {
        0 => Some(QuietState::Quiet),
        1 => Some(QuietState::Normal),
        2 => Some(QuietState::Busy),
        3 => Some(QuietState::Panic),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_engine::quiet::forecast::hour_of_week;

    #[test]
    fn monday_anchor_maps_to_each_cell() {
        for h in [0usize, 1, 71, 72, 167] {
            assert_eq!(hour_of_week(MONDAY + h as f64 * 3600.0), h);
        }
    }

    #[test]
    fn state_codes_round_trip() {
        for s in QuietState::ALL {
            assert_eq!(state_of(super::super::state_code(s)), Some(s));
        }
        assert_eq!(state_of(9), None);
    }
}
