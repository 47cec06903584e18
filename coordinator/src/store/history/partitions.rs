//! Time partitions of the history tables. Every big history table is
//! `PARTITION BY RANGE (t)` on Unix seconds; partitions are named
//! `<table>_p<lo>_<hi>` so their bounds can be read back from the name.
//! Partitions are created ahead of time (as a standalone table, then
//! attached, which does not block inserts into the parent) and dropped
//! whole once they are past retention (detached concurrently, then
//! dropped), so retention never deletes rows one by one and never takes a
//! lock that stalls ingest. The range arithmetic is pure and unit-tested;
//! the SQL is the thin shell around it.

use deadpool_postgres::Pool;

use crate::store::StoreError;

/// A partitioned table and how it is cut.
#[derive(Debug, Clone, PartialEq)]
pub struct Partitioned {
    /// Parent table.
    pub table: &'static str,
    /// Width of one partition, seconds.
    pub width_sec: i64,
    /// Rows are kept at least this long, seconds; a partition is dropped once
    /// its upper bound is older than this.
    pub retention_sec: f64,
}

/// `<table>_p<lo>_<hi>` (a negative bound is written with an `m`).
pub fn partition_name(table: &str, lo: i64, hi: i64) -> String {
    let n = |v: i64| {
        if v < 0 {
            format!("m{}", v.unsigned_abs())
        } else {
            v.to_string()
        }
    };
    format!("{table}_p{}_{}", n(lo), n(hi))
}

/// The bounds of a partition named by [`partition_name`].
pub fn parse_partition(table: &str, name: &str) -> Option<(i64, i64)> {
    let rest = name.strip_prefix(table)?.strip_prefix("_p")?;
    let (lo, hi) = rest.split_once('_')?;
    let n = |s: &str| -> Option<i64> {
        match s.strip_prefix('m') {
            Some(v) => v.parse::<i64>().ok().map(|v| -v),
            None => s.parse().ok(),
        }
    };
    let (lo, hi) = (n(lo)?, n(hi)?);
    (lo < hi).then_some((lo, hi))
}

/// The ranges to create so that `[from, to)` is covered: partition-aligned
/// slots of `width`, minus what `existing` ranges already cover (so a
/// change of width never produces an overlap).
pub fn missing(existing: &[(i64, i64)], from: f64, to: f64, width: i64) -> Vec<(i64, i64)> {
    if width <= 0 || !from.is_finite() || !to.is_finite() || to <= from {
        return Vec::new();
    }
    let mut have: Vec<(i64, i64)> = existing.to_vec();
    have.sort_unstable();
    let first = (from / width as f64).floor() as i64;
    let last = (to / width as f64).ceil() as i64;
    let mut out = Vec::new();
    for k in first..last {
        let (mut lo, hi) = (k * width, (k + 1) * width);
        // Walk the existing ranges in order, emitting the gaps inside [lo, hi).
        for &(a, b) in &have {
            if b <= lo || a >= hi {
                continue;
            }
            if a > lo {
                out.push((lo, a));
            }
            lo = lo.max(b);
            if lo >= hi {
                break;
            }
        }
        if lo < hi {
            out.push((lo, hi));
        }
    }
    out
}

/// The ranges wholly older than `cutoff` (their upper bound at or before it).
pub fn expired(existing: &[(i64, i64)], cutoff: f64) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = existing
        .iter()
        .copied()
        .filter(|(_, hi)| (*hi as f64) <= cutoff)
        .collect();
    out.sort_unstable();
    out
}

/// One partition as found in the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Table name.
    pub name: String,
    /// Lower bound (inclusive).
    pub lo: i64,
    /// Upper bound (exclusive).
    pub hi: i64,
    /// A concurrent detach was interrupted and must be finalized.
    pub detach_pending: bool,
}

/// The partitions of `table` whose names follow [`partition_name`].
pub async fn list(pool: &Pool, table: &str) -> Result<Vec<Found>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT c.relname::text, i.inhdetachpending
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = to_regclass($1)",
            &[&table],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let name: String = r.get(0);
            let (lo, hi) = parse_partition(table, &name)?;
            Some(Found {
                name,
                lo,
                hi,
                detach_pending: r.get(1),
            })
        })
        .collect())
}

/// Creates the partitions missing for `[from, to)`; returns how many. A
/// partition is created as a plain table and then attached, which takes
/// only a `SHARE UPDATE EXCLUSIVE` lock on the parent (inserts go on).
pub async fn ensure(
    pool: &Pool,
    p: &Partitioned,
    from: f64,
    to: f64,
    lock_timeout_ms: u64,
) -> Result<usize, StoreError> {
    let found = list(pool, p.table).await?;
    let have: Vec<(i64, i64)> = found.iter().map(|f| (f.lo, f.hi)).collect();
    let todo = missing(&have, from, to, p.width_sec);
    if todo.is_empty() {
        return Ok(0);
    }
    let mut client = pool.get().await?;
    for &(lo, hi) in &todo {
        let name = partition_name(p.table, lo, hi);
        let tx = client.transaction().await?;
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = '{lock_timeout_ms}ms';
             CREATE TABLE IF NOT EXISTS {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
             ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi});",
            table = p.table
        ))
        .await?;
        tx.commit().await?;
        tracing::debug!(table = p.table, partition = %name, "created partition");
    }
    Ok(todo.len())
}

/// Drops the partitions past retention at `now`; returns how many. Each is
/// detached concurrently first (no lock that blocks inserts into the
/// parent), then dropped. An interrupted detach is finalized.
pub async fn drop_expired(
    pool: &Pool,
    p: &Partitioned,
    now: f64,
    lock_timeout_ms: u64,
) -> Result<usize, StoreError> {
    let found = list(pool, p.table).await?;
    let cutoff = now - p.retention_sec;
    let client = pool.get().await?;
    let mut dropped = 0;
    for f in found.iter().filter(|f| (f.hi as f64) <= cutoff) {
        let detach = if f.detach_pending {
            format!(
                "ALTER TABLE {} DETACH PARTITION {} FINALIZE",
                p.table, f.name
            )
        } else {
            format!(
                "ALTER TABLE {} DETACH PARTITION {} CONCURRENTLY",
                p.table, f.name
            )
        };
        // DETACH ... CONCURRENTLY cannot run in a transaction block, so the
        // lock timeout is set for the session and reset afterwards.
        client
            .batch_execute(&format!("SET lock_timeout = '{lock_timeout_ms}ms'"))
            .await?;
        let result = client.batch_execute(&detach).await;
        client.batch_execute("RESET lock_timeout").await?;
        result?;
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS {}", f.name))
            .await?;
        tracing::info!(table = p.table, partition = %f.name, "dropped partition past retention");
        dropped += 1;
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let n = partition_name("quiet_samples", 1_762_732_800, 1_762_819_200);
        assert_eq!(n, "quiet_samples_p1762732800_1762819200");
        assert_eq!(
            parse_partition("quiet_samples", &n),
            Some((1_762_732_800, 1_762_819_200))
        );
        let n = partition_name("t", -10, 0);
        assert_eq!(parse_partition("t", &n), Some((-10, 0)));
        assert_eq!(parse_partition("quiet", &n), None);
        assert_eq!(parse_partition("t", "t_p5_5"), None);
        assert_eq!(parse_partition("t", "t_px_5"), None);
        // A similarly named table does not match another's partitions.
        assert_eq!(parse_partition("stats", "stats_rollups_p1_2"), None);
    }

    #[test]
    fn missing_covers_the_range_with_aligned_slots() {
        assert_eq!(
            missing(&[], 105.0, 260.0, 100),
            vec![(100, 200), (200, 300)]
        );
        assert_eq!(missing(&[(100, 200)], 105.0, 260.0, 100), vec![(200, 300)]);
        assert!(missing(&[(0, 1000)], 105.0, 260.0, 100).is_empty());
        assert!(missing(&[], 5.0, 5.0, 100).is_empty());
        assert!(missing(&[], 5.0, 50.0, 0).is_empty());
    }

    #[test]
    fn a_width_change_fills_only_the_gaps() {
        // Old partitions 60 s wide up to 180; new width 100.
        let have = [(0, 60), (60, 120), (120, 180)];
        let m = missing(&have, 0.0, 350.0, 100);
        assert_eq!(m, vec![(180, 200), (200, 300), (300, 400)]);
        // A hole in the middle of a slot.
        let m = missing(&[(0, 20), (50, 70)], 0.0, 100.0, 100);
        assert_eq!(m, vec![(20, 50), (70, 100)]);
        // Never overlapping anything that exists.
        for (lo, hi) in missing(&[(0, 20), (50, 70)], 0.0, 1000.0, 30) {
            for (a, b) in [(0, 20), (50, 70)] {
                assert!(hi <= a || lo >= b, "{lo}..{hi} overlaps {a}..{b}");
            }
        }
    }

    #[test]
    fn expired_are_those_wholly_before_the_cutoff() {
        let have = [(200, 300), (0, 100), (100, 200)];
        assert_eq!(expired(&have, 200.0), vec![(0, 100), (100, 200)]);
        assert!(expired(&have, 99.0).is_empty());
    }
}
