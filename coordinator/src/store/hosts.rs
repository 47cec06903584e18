//! The `hosts` table: first and last time each host reported. The table
//! keeps every host ever seen (the fleet forgets silent hosts from memory
//! only); `first_seen` keeps the earliest value written.

use deadpool_postgres::Pool;

use super::StoreError;

/// One row to upsert.
#[derive(Debug, Clone, PartialEq)]
pub struct HostRow {
    /// Host id.
    pub host_id: String,
    /// Unix seconds of the first snapshot.
    pub first_seen: f64,
    /// Unix seconds of the latest snapshot.
    pub last_seen: f64,
}

/// Upserts a batch in one statement: `first_seen` keeps the earliest value,
/// `last_seen` the latest.
pub async fn upsert(pool: &Pool, rows: &[HostRow]) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = rows.iter().map(|r| r.host_id.as_str()).collect();
    let first: Vec<f64> = rows.iter().map(|r| r.first_seen).collect();
    let last: Vec<f64> = rows.iter().map(|r| r.last_seen).collect();
    let client = pool.get().await?;
    let n = client
        .execute(
            "INSERT INTO hosts (host_id, first_seen, last_seen)
             SELECT * FROM UNNEST($1::text[], $2::float8[], $3::float8[])
             ON CONFLICT (host_id) DO UPDATE SET
               first_seen = LEAST(hosts.first_seen, EXCLUDED.first_seen),
               last_seen = GREATEST(hosts.last_seen, EXCLUDED.last_seen)",
            &[&ids, &first, &last],
        )
        .await?;
    Ok(n)
}
