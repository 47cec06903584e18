//! The `host_blocks` table: operator blocks, one row per blocked host, and
//! the row `'*'` for a fleet-wide block. Loaded at start; written by the
//! block endpoints before the fleet actor applies the change.

use deadpool_postgres::Pool;

use super::StoreError;
use lull_engine::quiet::blocks::{Block, Target};

/// The key of the fleet-wide block.
pub const FLEET_KEY: &str = "*";

fn key(target: &Target) -> &str {
    target.as_deref().unwrap_or(FLEET_KEY)
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
            let t: String = r.get(0);
            let target = (t != FLEET_KEY).then_some(t);
            (
                target,
                Block {
                    reason: r.get(1),
                    until: r.get(2),
                    blocked_at: r.get(3),
                },
            )
        })
        .collect())
}
