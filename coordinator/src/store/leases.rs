//! Lease persistence: the batched audit trail (`lease_events`), the token
//! signing key (`lease_keys`), and the recently ended leases a restarted
//! coordinator must still refuse.

use deadpool_postgres::Pool;
use lull_common::msg::lease::LeaseState;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use super::StoreError;
use crate::lease::AuditRecord;

/// Writes audit records with one binary `COPY` (the cheapest bulk load
/// Postgres has); returns how many.
pub async fn insert_audit(pool: &Pool, recs: &[AuditRecord]) -> Result<usize, StoreError> {
    if recs.is_empty() {
        return Ok(0);
    }
    let client = pool.get().await?;
    let sink = client
        .copy_in(
            "COPY lease_events (at, kind, lease_id, addon_id, job_type, host_id, cost_units,
                                priority, reason_code, reason, detail)
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let types = [
        Type::FLOAT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT4,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::JSONB,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    futures::pin_mut!(writer);
    for r in recs {
        let cost = i32::try_from(r.cost_units).unwrap_or(i32::MAX);
        writer
            .as_mut()
            .write(&[
                &r.at,
                &r.kind.as_str(),
                &r.lease_id.as_deref(),
                &r.addon_id.as_str(),
                &r.job_type.as_str(),
                &r.host_id.as_deref(),
                &cost,
                &r.priority.as_str(),
                &r.reason_code.map(|c| c.as_str()),
                &r.reason.as_deref(),
                &r.detail,
            ])
            .await?;
    }
    let n = writer.finish().await?;
    Ok(usize::try_from(n).unwrap_or(recs.len()))
}

/// Deletes up to `limit` audit rows older than `before` (Unix seconds);
/// returns how many went. Old rows are found through the BRIN index on
/// `at`, so a call costs little when there is nothing to delete.
pub async fn prune_audit(pool: &Pool, before: f64, limit: i64) -> Result<u64, StoreError> {
    let client = pool.get().await?;
    let n = client
        .execute(
            "DELETE FROM lease_events WHERE ctid = ANY(ARRAY(
               SELECT ctid FROM lease_events WHERE at < $1 LIMIT $2))",
            &[&before, &limit],
        )
        .await?;
    Ok(n)
}

/// The signing key, created (from `fresh`) on first use. Returns the key and
/// whether it was created just now (then no lease can predate this start).
pub async fn load_or_create_key(
    pool: &Pool,
    fresh: &str,
    now: f64,
) -> Result<(String, bool), StoreError> {
    let client = pool.get().await?;
    let inserted = client
        .execute(
            "INSERT INTO lease_keys (id, key_hex, created_at) VALUES (1, $1, $2)
             ON CONFLICT (id) DO NOTHING",
            &[&fresh, &now],
        )
        .await?;
    let row = client
        .query_one("SELECT key_hex FROM lease_keys WHERE id = 1", &[])
        .await?;
    Ok((row.get(0), inserted == 1))
}

/// Leases that ended since `since` (released, expired or revoked), so their
/// holders cannot re-assert them after a restart.
pub async fn ended_since(pool: &Pool, since: f64) -> Result<Vec<(String, LeaseState)>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT DISTINCT ON (lease_id) lease_id, kind FROM lease_events
             WHERE at >= $1 AND lease_id IS NOT NULL
               AND kind IN ('released', 'expired', 'revoked', 'cancelled')
             ORDER BY lease_id, at DESC",
            &[&since],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let state = match r.get::<_, &str>(1) {
                "expired" => LeaseState::Expired,
                "revoked" => LeaseState::Revoked,
                _ => LeaseState::Released,
            };
            (r.get(0), state)
        })
        .collect())
}
