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

/// Tables whose rows belong to one host (the `hosts` row last).
const HOST_TABLES: [&str; 6] = [
    "quiet_samples",
    "stats_samples",
    "quiet_rollups",
    "stats_rollups",
    "quiet_streaks",
    "hosts",
];

/// Deletes a host's rows (its `hosts` row, history, rollups and streaks)
/// in one transaction; returns whether it had a `hosts` row. Operator
/// blocks are the operator's and stay.
pub async fn forget(pool: &Pool, host_id: &str) -> Result<bool, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let mut had_row = false;
    for table in HOST_TABLES {
        let n = tx
            .execute(
                &format!("DELETE FROM {table} WHERE host_id = $1"),
                &[&host_id],
            )
            .await?;
        if table == "hosts" {
            had_row = n > 0;
        }
    }
    tx.commit().await?;
    Ok(had_row)
}
