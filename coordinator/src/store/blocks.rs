//! The `host_blocks` table: operator blocks, one row per blocked host, and
//! the row `'*'` for a fleet-wide block; and the `maintenance_windows`
//! table: blocks scheduled ahead, one row per window, by id. Loaded at
//! start and at each leadership; written by the block endpoints before the
//! fleet actor applies the change. A window's time zone is looked up here
//! (the system's tzdb, else the copy bundled in the binary), so the engine
//! gets it resolved.

use deadpool_postgres::Pool;
use jiff::tz::TimeZone;
use lull_proto::msg::hosts::Recurrence;

use super::StoreError;
use lull_engine::quiet::blocks::{Block, Blocks, Target};
use lull_engine::quiet::maintenance::{Weekly, Window};

/// The key of the fleet-wide block.
pub const FLEET_KEY: &str = "*";

fn key(target: &Target) -> &str {
    target.as_deref().unwrap_or(FLEET_KEY)
}

fn target_of(key: String) -> Target {
    (key != FLEET_KEY).then_some(key)
}

/// Sets (or replaces) a block.
pub async fn upsert(pool: &Pool, target: &Target, b: &Block) -> Result<(), StoreError> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO host_blocks (target, reason, until, blocked_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (target) DO UPDATE SET
               reason = EXCLUDED.reason, until = EXCLUDED.until, blocked_at = EXCLUDED.blocked_at",
            &[&key(target), &b.reason, &b.until, &b.blocked_at],
        )
        .await?;
    Ok(())
}

/// Lifts a block; returns whether a row existed.
pub async fn delete(pool: &Pool, target: &Target) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let n = client
        .execute("DELETE FROM host_blocks WHERE target = $1", &[&key(target)])
        .await?;
    Ok(n > 0)
}

/// Every stored block.
pub async fn load(pool: &Pool) -> Result<Vec<(Target, Block)>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT target, reason, until, blocked_at FROM host_blocks",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                target_of(r.get(0)),
                Block {
                    reason: r.get(1),
                    until: r.get(2),
                    blocked_at: r.get(3),
                },
            )
        })
        .collect())
}

/// The time zone `name` names (IANA), if this build knows it.
pub fn time_zone(name: &str) -> Result<TimeZone, jiff::Error> {
    TimeZone::get(name)
}

/// Stores a new window (its `id` is ignored) and returns the id it got.
pub async fn insert_window(pool: &Pool, target: &Target, w: &Window) -> Result<i64, StoreError> {
    let recurrence = w
        .weekly
        .as_ref()
        .map(|r| serde_json::to_value(r.recurrence()))
        .transpose()
        .map_err(StoreError::Encode)?;
    let client = pool.get().await?;
    let row = client
        .query_one(
            "INSERT INTO maintenance_windows (target, reason, from_time, until, recurrence, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[&key(target), &w.reason, &w.from, &w.until, &recurrence, &w.created_at],
        )
        .await?;
    Ok(row.get(0))
}

/// The stored windows not over at `now` (those with no end or an end
/// after it).
pub async fn live_window_count(pool: &Pool, now: f64) -> Result<i64, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT count(*) FROM maintenance_windows WHERE until IS NULL OR until > $1",
            &[&now],
        )
        .await?;
    Ok(row.get(0))
}

/// Removes the window `id`; returns whether a row existed.
pub async fn delete_window(pool: &Pool, id: i64) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let n = client
        .execute("DELETE FROM maintenance_windows WHERE id = $1", &[&id])
        .await?;
    Ok(n > 0)
}

/// Removes every window of `target`; returns how many there were.
pub async fn delete_windows_of(pool: &Pool, target: &Target) -> Result<u64, StoreError> {
    let client = pool.get().await?;
    Ok(client
        .execute(
            "DELETE FROM maintenance_windows WHERE target = $1",
            &[&key(target)],
        )
        .await?)
}

/// Every stored window. A window whose time zone this build does not know
/// (a tzdb that lost a name) is left out with an error in the log.
pub async fn load_windows(pool: &Pool) -> Result<Vec<(Target, Window)>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, target, reason, from_time, until, recurrence, created_at
             FROM maintenance_windows ORDER BY id",
            &[],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: i64 = r.get(0);
        let recurrence: Option<serde_json::Value> = r.get(5);
        let weekly = match recurrence {
            None => None,
            Some(v) => {
                let rec: Recurrence =
                    serde_json::from_value(v).map_err(|e| StoreError::Decode {
                        what: format!("maintenance_windows.recurrence of window {id}"),
                        source: Box::new(e),
                    })?;
                let built = time_zone(&rec.tz)
                    .map_err(|e| e.to_string())
                    .and_then(|tz| Weekly::new(&rec, tz).map_err(|e| e.to_string()));
                match built {
                    Ok(w) => Some(w),
                    Err(e) => {
                        tracing::error!(window = id, tz = %rec.tz, error = %e, "maintenance window skipped");
                        continue;
                    }
                }
            }
        };
        out.push((
            target_of(r.get(1)),
            Window {
                id,
                reason: r.get(2),
                from: r.get(3),
                until: r.get(4),
                weekly,
                created_at: r.get(6),
            },
        ));
    }
    Ok(out)
}

/// The stored blocks and windows still in force at `now`.
pub async fn load_all(pool: &Pool, now: f64) -> Result<Blocks, StoreError> {
    let rows = load(pool).await?;
    let windows = load_windows(pool).await?;
    Ok(Blocks::from_rows(rows, windows, now))
}
