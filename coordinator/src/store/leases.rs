//! Lease persistence: the batched audit trail (`lease_events`), the token
//! signing key (`lease_keys`), and the recently ended leases a restarted
//! coordinator must still refuse.

use deadpool_postgres::Pool;
use lull_common::msg::lease::LeaseState;

use super::StoreError;
use crate::lease::AuditRecord;

/// Inserts audit records in one statement; returns how many.
pub async fn insert_audit(pool: &Pool, recs: &[AuditRecord]) -> Result<usize, StoreError> {
    if recs.is_empty() {
        return Ok(0);
    }
    let at: Vec<f64> = recs.iter().map(|r| r.at).collect();
    let kind: Vec<&str> = recs.iter().map(|r| r.kind.as_str()).collect();
    let lease: Vec<Option<&str>> = recs.iter().map(|r| r.lease_id.as_deref()).collect();
    let addon: Vec<&str> = recs.iter().map(|r| r.addon_id.as_str()).collect();
    let job: Vec<&str> = recs.iter().map(|r| r.job_type.as_str()).collect();
    let host: Vec<Option<&str>> = recs.iter().map(|r| r.host_id.as_deref()).collect();
    let cost: Vec<i32> = recs.iter().map(|r| r.cost_units as i32).collect();
    let prio: Vec<String> = recs
        .iter()
        .map(|r| format!("{:?}", r.priority).to_uppercase())
        .collect();
    let code: Vec<Option<&str>> = recs
        .iter()
        .map(|r| r.reason_code.map(|c| c.as_str()))
        .collect();
    let reason: Vec<Option<&str>> = recs.iter().map(|r| r.reason.as_deref()).collect();
    let detail: Vec<Option<serde_json::Value>> = recs.iter().map(|r| r.detail.clone()).collect();
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO lease_events
               (at, kind, lease_id, addon_id, job_type, host_id, cost_units, priority,
                reason_code, reason, detail)
             SELECT * FROM UNNEST($1::float8[], $2::text[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::int4[], $8::text[], $9::text[], $10::text[],
                                  $11::jsonb[])",
            &[
                &at, &kind, &lease, &addon, &job, &host, &cost, &prio, &code, &reason, &detail,
            ],
        )
        .await?;
    Ok(recs.len())
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
