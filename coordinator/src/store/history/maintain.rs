//! The history maintenance task: creates partitions ahead of time, rolls
//! finished chunks of raw samples up into per-step aggregates (one row per
//! host and chunk, idempotent, resumed from a persisted watermark), drops
//! partitions past retention, and deletes old streaks and ended blocks in
//! small batches. Every step is independent: one failing is logged and
//! counted, and the others still run.

use std::time::{Duration, Instant};

use futures::{pin_mut, TryStreamExt};
use lull_common::runtime::now_unix;
use tokio_postgres::types::ToSql;
use tokio_util::sync::CancellationToken;

use super::accounting::record;
use super::rollup::{due_chunks, GroupChunk};
use super::{partitions, HistoryStore, QUIET_ROLLUPS, QUIET_STREAKS, STATS_ROLLUPS};
use crate::store::metrics as m;
use crate::store::StoreError;
use lull_engine::quiet::history::numeric_fields;

const WATERMARK_KEY: &str = "rollup_watermark";

/// Creates the partitions every history table needs from a little before
/// `from` (or now, whichever is earlier) through `now + partition_ahead_sec`.
pub async fn ensure_partitions(store: &HistoryStore, from: f64) -> Result<(), StoreError> {
    let now = now_unix();
    let ahead = now + store.cfg.partition_ahead_sec as f64;
    for p in store.cfg.partitioned(&store.quiet) {
        let start = from.min(now) - p.width_sec as f64;
        let made =
            partitions::ensure(&store.pool, &p, start, ahead, store.cfg.lock_timeout_ms).await?;
        if made > 0 {
            metrics::counter!(m::HISTORY_PARTITIONS_CREATED.name, "table" => p.table)
                .increment(made as u64);
        }
    }
    store.shared.set_ready_until(ahead);
    Ok(())
}

/// Loads the rollup watermark, or (first start) picks where rolling up
/// begins: the oldest raw sample still kept, or now when there is none.
pub async fn load_watermark(store: &HistoryStore, now: f64) -> Result<f64, StoreError> {
    let client = store.pool.get().await?;
    let row = client
        .query_opt(
            "SELECT value FROM history_state WHERE key = $1",
            &[&WATERMARK_KEY],
        )
        .await?;
    if let Some(r) = row {
        return Ok(r.get(0));
    }
    let oldest: Option<f64> = client
        .query_one(
            "SELECT least((SELECT min(t) FROM quiet_samples), (SELECT min(t) FROM stats_samples))",
            &[],
        )
        .await?
        .get(0);
    let chunk = store.cfg.rollup_chunk_sec;
    let floor = now - store.quiet.history.raw_retention_sec;
    let start = oldest.unwrap_or(now).max(floor).min(now);
    Ok((start / chunk).floor() * chunk)
}

async fn save_watermark(store: &HistoryStore, t: f64) -> Result<(), StoreError> {
    let client = store.pool.get().await?;
    client
        .execute(
            "INSERT INTO history_state (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&WATERMARK_KEY, &t],
        )
        .await?;
    Ok(())
}

/// Rolls the quiet samples of chunk `[c, c + chunk)` up: one row per host
/// with the per-step count/avg/min/max. Replaces what an earlier run wrote.
pub async fn rollup_quiet(store: &HistoryStore, c: f64) -> Result<u64, StoreError> {
    let end = c + store.cfg.rollup_chunk_sec;
    let step = store.quiet.history.rollup_step_sec;
    let slack = store.cfg.quiet_chunk_max_sec;
    let client = store.pool.get().await?;
    Ok(client
        .execute(
            "INSERT INTO quiet_rollups (host_id, t, step, points, score_sum, idx, ns, avgs, mins, maxs)
             SELECT host_id, $1::float8, $3::float8, count(*)::int4, sum(a::float8),
                    array_agg(i ORDER BY i), array_agg(n ORDER BY i), array_agg(a ORDER BY i),
                    array_agg(mn ORDER BY i), array_agg(mx ORDER BY i)
             FROM (
               SELECT q.host_id, floor((q.t + u.dt - $1) / $3)::int4 AS i, count(*)::int4 AS n,
                      avg(u.score)::real AS a, min(u.score) AS mn, max(u.score) AS mx
               FROM quiet_samples q CROSS JOIN LATERAL unnest(q.dts, q.scores) AS u(dt, score)
               WHERE q.t >= $1 - $4::float8 AND q.t < $2
                 AND q.t + u.dt >= $1 AND q.t + u.dt < $2
               GROUP BY 1, 2
             ) m
             GROUP BY host_id
             ON CONFLICT (host_id, t) DO UPDATE SET
               step = EXCLUDED.step, points = EXCLUDED.points, score_sum = EXCLUDED.score_sum,
               idx = EXCLUDED.idx, ns = EXCLUDED.ns, avgs = EXCLUDED.avgs,
               mins = EXCLUDED.mins, maxs = EXCLUDED.maxs",
            &[&c, &end, &step, &slack],
        )
        .await?)
}

/// Rolls the raw group snapshots of chunk `[c, c + chunk)` up, one row per
/// host and group, streaming the raw rows in (host, group) order so memory
/// holds one host's group at a time.
pub async fn rollup_groups(store: &HistoryStore, c: f64) -> Result<u64, StoreError> {
    let end = c + store.cfg.rollup_chunk_sec;
    let step = store.quiet.history.rollup_step_sec;
    let max_fields = store.quiet.history.max_fields;
    let max_rows = store.cfg.max_batch_rows.max(1);
    let client = store.pool.get().await?;
    let params: [&(dyn ToSql + Sync); 2] = [&c, &end];
    let stream = client
        .query_raw(
            "SELECT host_id, grp, t, payload FROM stats_samples
             WHERE t >= $1 AND t < $2 ORDER BY host_id, grp",
            params,
        )
        .await?;
    pin_mut!(stream);
    let mut out: Vec<(String, String, serde_json::Value)> = Vec::new();
    let mut key: Option<(String, String)> = None;
    let mut acc = GroupChunk::default();
    let mut written = 0;
    while let Some(row) = stream.try_next().await? {
        let (h, g): (String, String) = (row.get(0), row.get(1));
        let t: f64 = row.get(2);
        let payload: serde_json::Value = row.get(3);
        if key.as_ref().is_none_or(|(kh, kg)| *kh != h || *kg != g) {
            if let Some((kh, kg)) = key.take() {
                if !acc.is_empty() {
                    out.push((kh, kg, acc.to_json()));
                }
            }
            acc = GroupChunk::default();
            key = Some((h, g));
            if out.len() >= max_rows {
                written += upsert_group_rollups(store, c, step, &out).await?;
                out.clear();
            }
        }
        acc.add(c, step, t, &numeric_fields(&payload, max_fields));
    }
    if let Some((kh, kg)) = key {
        if !acc.is_empty() {
            out.push((kh, kg, acc.to_json()));
        }
    }
    written += upsert_group_rollups(store, c, step, &out).await?;
    Ok(written)
}

async fn upsert_group_rollups(
    store: &HistoryStore,
    c: f64,
    step: f64,
    rows: &[(String, String, serde_json::Value)],
) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let hosts: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let groups: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    let steps: Vec<&serde_json::Value> = rows.iter().map(|r| &r.2).collect();
    let started = Instant::now();
    let client = store.pool.get().await?;
    let r = client
        .execute(
            "INSERT INTO stats_rollups (host_id, grp, t, step, steps)
             SELECT x.h, x.g, $3::float8, $4::float8, x.s
             FROM UNNEST($1::text[], $2::text[], $5::jsonb[]) AS x(h, g, s)
             ON CONFLICT (host_id, grp, t) DO UPDATE SET
               step = EXCLUDED.step, steps = EXCLUDED.steps",
            &[&hosts, &groups, &c, &step, &steps],
        )
        .await
        .map_err(StoreError::from);
    record(store, STATS_ROLLUPS, rows.len(), started, &r);
    r
}

/// Rolls up every chunk that is due at `now` (at most `rollup_max_chunks`),
/// advancing and persisting the watermark after each. Returns the chunks
/// done.
pub async fn rollup_due(store: &HistoryStore, now: f64) -> Result<usize, StoreError> {
    // Raw rows older than the raw retention are gone: no use rolling them.
    let oldest_kept = now - store.quiet.history.raw_retention_sec;
    let wm = store
        .shared
        .watermark()
        .max((oldest_kept / store.cfg.rollup_chunk_sec).floor() * store.cfg.rollup_chunk_sec);
    let cutoff = now - store.cfg.rollup_delay_sec;
    let chunks = due_chunks(
        wm,
        cutoff,
        store.cfg.rollup_chunk_sec,
        store.cfg.rollup_max_chunks.max(1),
    );
    for &c in &chunks {
        // Partitions for the rollup rows (chunks can be older than today).
        ensure_partitions(store, c).await?;
        let started = Instant::now();
        let r = rollup_quiet(store, c).await;
        let n = r.as_ref().map(|n| *n as usize).unwrap_or(0);
        record(store, QUIET_ROLLUPS, n, started, &r);
        r?;
        rollup_groups(store, c).await?;
        let next = c + store.cfg.rollup_chunk_sec;
        save_watermark(store, next).await?;
        store.shared.set_watermark(next);
        metrics::gauge!(m::HISTORY_ROLLUP_WATERMARK.name).set(next);
    }
    Ok(chunks.len())
}

/// Deletes rows matching `condition` (with `$1` the cutoff) from `table` in
/// batches of `batch` rows, pausing briefly between batches so no long
/// lock or long transaction forms. Returns the rows deleted.
async fn delete_in_batches(
    store: &HistoryStore,
    table: &'static str,
    condition: &str,
    cutoff: f64,
) -> Result<u64, StoreError> {
    let batch = store.cfg.delete_batch_rows.max(1);
    let sql = format!(
        "DELETE FROM {table} WHERE ctid = ANY(ARRAY(
           SELECT ctid FROM {table} WHERE {condition} LIMIT $2))"
    );
    let mut total = 0;
    loop {
        let client = store.pool.get().await?;
        let n = client.execute(sql.as_str(), &[&cutoff, &batch]).await?;
        drop(client);
        total += n;
        if n < batch as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if total > 0 {
        metrics::counter!(m::HISTORY_ROWS_DELETED.name, "table" => table).increment(total);
    }
    Ok(total)
}

/// Drops partitions past retention and deletes old streaks and ended
/// blocks. Returns (partitions dropped, rows deleted).
pub async fn retention(store: &HistoryStore, now: f64) -> Result<(usize, u64), StoreError> {
    let mut dropped = 0;
    for p in store.cfg.partitioned(&store.quiet) {
        let n = partitions::drop_expired(&store.pool, &p, now, store.cfg.lock_timeout_ms).await?;
        if n > 0 {
            metrics::counter!(m::HISTORY_PARTITIONS_DROPPED.name, "table" => p.table)
                .increment(n as u64);
        }
        dropped += n;
        let left = partitions::list(&store.pool, p.table).await?.len();
        metrics::gauge!(m::HISTORY_PARTITIONS.name, "table" => p.table).set(left as f64);
    }
    let mut deleted = delete_in_batches(
        store,
        QUIET_STREAKS,
        "end_time < $1",
        now - store.cfg.streak_retention_sec,
    )
    .await?;
    deleted += delete_in_batches(
        store,
        "host_blocks",
        "until IS NOT NULL AND until < $1",
        now,
    )
    .await?;
    deleted += delete_in_batches(
        store,
        "maintenance_windows",
        "until IS NOT NULL AND until < $1",
        now,
    )
    .await?;
    Ok((dropped, deleted))
}

/// One maintenance run at `now`: partitions, rollups, retention.
pub async fn run_once(store: &HistoryStore, now: f64) {
    let step = |name: &'static str, r: Result<(), StoreError>| {
        if let Err(e) = r {
            metrics::counter!(m::HISTORY_MAINTENANCE_ERRORS.name, "step" => name).increment(1);
            tracing::warn!(step = name, error = %e, "history maintenance step failed");
        }
    };
    step("partitions", ensure_partitions(store, now).await);
    step("rollups", rollup_due(store, now).await.map(|_| ()));
    step("retention", retention(store, now).await.map(|_| ()));
    metrics::gauge!(m::HISTORY_MAINTENANCE_LAST_RUN.name).set(now_unix());
}

/// Gets the store ready before ingest starts: partitions for today and
/// ahead, and the rollup watermark (so reads know where rollups end).
pub async fn prepare(store: &HistoryStore) -> Result<(), StoreError> {
    let now = now_unix();
    ensure_partitions(store, now).await?;
    let wm = load_watermark(store, now).await?;
    store.shared.set_watermark(wm);
    metrics::gauge!(m::HISTORY_ROLLUP_WATERMARK.name).set(wm);
    Ok(())
}

/// The maintenance task: runs every `maintenance_sec` until `shutdown`
/// (call [`prepare`] first).
pub async fn run(store: HistoryStore, shutdown: CancellationToken) {
    let period = Duration::from_secs_f64(store.cfg.maintenance_sec.max(0.05));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => break,
        }
        tokio::select! {
            _ = run_once(&store, now_unix()) => {}
            _ = shutdown.cancelled() => break,
        }
    }
}
