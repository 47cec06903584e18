//! Writing history: the rows the fleet actor hands over ([`HistoryBatch`]),
//! the split of a snapshot into metric groups, and the batched multi-row
//! `UNNEST` inserts (with partitions created when one is missing). The
//! writer task that runs them is in `writer`.

use std::collections::HashMap;

use lull_common::runtime::now_unix;
use lull_proto::msg::hosts::QuietState;
use lull_proto::msg::stats::SystemStatsSnapshot;
use serde_json::Value;

use super::{state_code, HistoryStore};
use crate::store::StoreError;
use lull_engine::quiet::streaks::ClosedStreak;

/// One stored quiet sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuietPoint {
    /// Unix seconds (coordinator clock).
    pub t: f64,
    /// Quiet score.
    pub score: f32,
    /// State after hysteresis.
    pub state: QuietState,
}

/// Consecutive quiet samples of one host, stored as one row.
#[derive(Debug, Clone, PartialEq)]
pub struct QuietChunk {
    /// Host id.
    pub host_id: String,
    /// Samples, oldest first (at least one).
    pub samples: Vec<QuietPoint>,
}

/// A snapshot kept for the raw group history.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotSample {
    /// Unix seconds it arrived (coordinator clock).
    pub t: f64,
    /// The snapshot.
    pub snapshot: SystemStatsSnapshot,
}

/// A finished quiet streak of one host.
#[derive(Debug, Clone, PartialEq)]
pub struct StreakRow {
    /// Host id.
    pub host_id: String,
    /// The streak.
    pub streak: ClosedStreak,
}

/// What the fleet actor hands to the writer in one go.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryBatch {
    /// Unix seconds when the batch was handed over.
    pub created_at: f64,
    /// Quiet chunks.
    pub quiet: Vec<QuietChunk>,
    /// Snapshots for the group history.
    pub snapshots: Vec<SnapshotSample>,
    /// Closed streaks.
    pub streaks: Vec<StreakRow>,
}

impl HistoryBatch {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.quiet.is_empty() && self.snapshots.is_empty() && self.streaks.is_empty()
    }

    /// Rows it holds (samples, snapshots, streaks).
    pub fn rows(&self) -> usize {
        self.quiet.iter().map(|c| c.samples.len()).sum::<usize>()
            + self.snapshots.len()
            + self.streaks.len()
    }
}

/// A raw group row: host, group, time, payload.
pub type GroupRow = (String, String, f64, Value);

/// Splits chunks whose samples span more than `max_span` seconds (so reads
/// can bound their look-back), keeping order.
pub fn split_chunk(chunk: QuietChunk, max_span: f64) -> Vec<QuietChunk> {
    let mut out: Vec<QuietChunk> = Vec::new();
    for s in chunk.samples {
        match out.last_mut() {
            Some(c) if c.samples.first().is_some_and(|f| s.t - f.t <= max_span) => {
                c.samples.push(s)
            }
            _ => out.push(QuietChunk {
                host_id: chunk.host_id.clone(),
                samples: vec![s],
            }),
        }
    }
    out
}

/// The metric groups of a snapshot: `host`, `process` (when any),
/// `api` (when reported) and `addon:<id>` for each addon, as JSON.
pub fn groups_of(s: &SystemStatsSnapshot) -> Vec<(String, Value)> {
    let mut out = Vec::with_capacity(3 + s.addons.len());
    if let Ok(v) = serde_json::to_value(&s.host) {
        out.push(("host".to_string(), v));
    }
    if !s.process.is_empty() {
        if let Ok(v) = serde_json::to_value(&s.process) {
            out.push(("process".to_string(), v));
        }
    }
    if let Some(api) = &s.api {
        if let Ok(v) = serde_json::to_value(api) {
            out.push(("api".to_string(), v));
        }
    }
    for (id, a) in &s.addons {
        if let Ok(v) = serde_json::to_value(a) {
            out.push((format!("addon:{id}"), v));
        }
    }
    out
}

/// Inserts quiet chunks in one statement: the samples of every chunk go in
/// flat arrays, each row takes its slice.
pub async fn insert_quiet(store: &HistoryStore, chunks: &[QuietChunk]) -> Result<u64, StoreError> {
    let chunks: Vec<&QuietChunk> = chunks.iter().filter(|c| !c.samples.is_empty()).collect();
    if chunks.is_empty() {
        return Ok(0);
    }
    let n = chunks.len();
    let total: usize = chunks.iter().map(|c| c.samples.len()).sum();
    let (mut hosts, mut t0s, mut t1s, mut from, mut to) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut dts, mut scores, mut states) = (
        Vec::<f32>::with_capacity(total),
        Vec::<f32>::with_capacity(total),
        Vec::<i16>::with_capacity(total),
    );
    for c in &chunks {
        let t0 = c.samples[0].t;
        let t1 = c.samples.last().map_or(t0, |s| s.t);
        hosts.push(c.host_id.as_str());
        t0s.push(t0);
        t1s.push(t1);
        from.push(dts.len() as i32 + 1);
        for s in &c.samples {
            dts.push((s.t - t0) as f32);
            scores.push(s.score);
            states.push(state_code(s.state));
        }
        to.push(dts.len() as i32);
    }
    let client = store.pool.get().await?;
    let rows = client
        .execute(
            "INSERT INTO quiet_samples (host_id, t, t_end, dts, scores, states)
             SELECT x.h, x.t0, x.t1, ($6::real[])[x.a:x.b], ($7::real[])[x.a:x.b],
                    ($8::int2[])[x.a:x.b]
             FROM UNNEST($1::text[], $2::float8[], $3::float8[], $4::int4[], $5::int4[])
                  AS x(h, t0, t1, a, b)",
            &[&hosts, &t0s, &t1s, &from, &to, &dts, &scores, &states],
        )
        .await?;
    Ok(rows)
}

/// Inserts raw group snapshots (one row per host, group and time).
pub async fn insert_groups(store: &HistoryStore, rows: &[GroupRow]) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let hosts: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let groups: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    let ts: Vec<f64> = rows.iter().map(|r| r.2).collect();
    let payloads: Vec<&Value> = rows.iter().map(|r| &r.3).collect();
    let client = store.pool.get().await?;
    Ok(client
        .execute(
            "INSERT INTO stats_samples (host_id, grp, t, payload)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::float8[], $4::jsonb[])",
            &[&hosts, &groups, &ts, &payloads],
        )
        .await?)
}

/// Upserts streaks by (host, start); the last of duplicates wins.
pub async fn upsert_streaks(store: &HistoryStore, rows: &[StreakRow]) -> Result<u64, StoreError> {
    let mut by_key: HashMap<(&str, u64), &StreakRow> = HashMap::new();
    for r in rows {
        by_key.insert((r.host_id.as_str(), r.streak.start_time.to_bits()), r);
    }
    if by_key.is_empty() {
        return Ok(0);
    }
    let rows: Vec<&StreakRow> = by_key.into_values().collect();
    let hosts: Vec<&str> = rows.iter().map(|r| r.host_id.as_str()).collect();
    let start: Vec<f64> = rows.iter().map(|r| r.streak.start_time).collect();
    let end: Vec<f64> = rows.iter().map(|r| r.streak.end_time).collect();
    let avg: Vec<f32> = rows.iter().map(|r| r.streak.avg_score as f32).collect();
    let min: Vec<f32> = rows.iter().map(|r| r.streak.min_score as f32).collect();
    let client = store.pool.get().await?;
    Ok(client
        .execute(
            "INSERT INTO quiet_streaks (host_id, start_time, end_time, avg_score, min_score)
             SELECT * FROM UNNEST($1::text[], $2::float8[], $3::float8[], $4::real[], $5::real[])
             ON CONFLICT (host_id, start_time) DO UPDATE SET
               end_time = GREATEST(quiet_streaks.end_time, EXCLUDED.end_time),
               avg_score = EXCLUDED.avg_score,
               min_score = EXCLUDED.min_score",
            &[&hosts, &start, &end, &avg, &min],
        )
        .await?)
}

/// Whether an insert failed because no partition holds a row.
fn is_missing_partition(e: &StoreError) -> bool {
    match e {
        StoreError::Db(e) => e
            .as_db_error()
            .is_some_and(|d| d.message().starts_with("no partition of relation")),
        _ => false,
    }
}

/// Makes sure partitions exist for rows up to `max_t`.
async fn ensure_ahead(store: &HistoryStore, max_t: f64) {
    if max_t < store.shared.ready_until() {
        return;
    }
    if let Err(e) = super::maintain::ensure_partitions(store, now_unix().min(max_t)).await {
        tracing::warn!(error = %e, "creating history partitions failed");
    }
}

/// Runs one insert; when it fails for want of a partition, creates the
/// partitions and tries once more.
pub(super) async fn with_partition_retry<'a, F, Fut>(
    store: &'a HistoryStore,
    max_t: f64,
    f: F,
) -> Result<u64, StoreError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<u64, StoreError>> + 'a,
{
    ensure_ahead(store, max_t).await;
    match f().await {
        Err(e) if is_missing_partition(&e) => {
            store.shared.set_ready_until(0.0);
            if let Err(e2) = super::maintain::ensure_partitions(store, max_t).await {
                tracing::warn!(error = %e2, "creating history partitions failed");
            }
            f().await
        }
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_proto::msg::stats::example_snapshot;

    fn p(t: f64) -> QuietPoint {
        QuietPoint {
            t,
            score: 90.0,
            state: QuietState::Quiet,
        }
    }

    #[test]
    fn long_chunks_are_split() {
        let c = QuietChunk {
            host_id: "h".into(),
            samples: [0.0, 5.0, 10.0, 11.0, 25.0].map(p).to_vec(),
        };
        let parts = split_chunk(c, 10.0);
        let ts: Vec<Vec<f64>> = parts
            .iter()
            .map(|c| c.samples.iter().map(|s| s.t).collect())
            .collect();
        assert_eq!(ts, vec![vec![0.0, 5.0, 10.0], vec![11.0], vec![25.0]]);
        assert!(parts.iter().all(|c| c.host_id == "h"));
    }

    #[test]
    fn snapshots_split_into_groups() {
        let s = example_snapshot("h", 1, 10.0);
        let g = groups_of(&s);
        let names: Vec<&str> = g.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[0], "host");
        assert!(g[0].1.get("cpu_pct").is_some());
        for (n, _) in &g[1..] {
            assert!(
                n == "process" || n == "api" || n.starts_with("addon:"),
                "{n}"
            );
        }
        let b = HistoryBatch {
            created_at: 0.0,
            quiet: vec![QuietChunk {
                host_id: "h".into(),
                samples: vec![p(1.0), p(2.0)],
            }],
            snapshots: vec![SnapshotSample {
                t: 1.0,
                snapshot: s,
            }],
            streaks: vec![],
        };
        assert_eq!(b.rows(), 3);
        assert!(!b.is_empty());
        assert!(HistoryBatch::default().is_empty());
    }
}
