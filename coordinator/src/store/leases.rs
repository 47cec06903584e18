//! Lease persistence: the batched audit trail (`lease_events`), the token
//! signing key (`lease_keys`), and the recently ended leases a restarted
//! coordinator must still refuse.

use deadpool_postgres::Pool;
use lull_proto::msg::decisions::{Decision, DecisionCursor, DecisionKind};
use lull_proto::msg::lease::LeaseState;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use super::StoreError;
use lull_engine::lease::AuditRecord;

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

/// The token signing keys, newest (the one that signs) first.
#[derive(Debug, Clone, PartialEq)]
pub struct SigningKeys {
    /// Hex keys, newest first; never empty.
    pub keys_hex: Vec<String>,
    /// The first key was created just now (no lease can predate this start).
    pub first: bool,
    /// A new key was made just now because the newest was too old.
    pub rotated: bool,
}

/// Loads the signing keys. The first key is created from `fresh` on first
/// use; a new one (also `fresh`) when the newest is older than
/// `rotate_after_sec` (`None`: never). A key replaced more than `keep_sec`
/// ago is deleted: its tokens can no longer be re-asserted. Runs under a
/// table lock, so coordinators starting together agree on the keys.
pub async fn load_keys(
    pool: &Pool,
    fresh: &str,
    now: f64,
    rotate_after_sec: Option<f64>,
    keep_sec: f64,
) -> Result<SigningKeys, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.batch_execute("LOCK TABLE lease_keys IN SHARE ROW EXCLUSIVE MODE")
        .await?;
    let rows = tx
        .query(
            "SELECT id, key_hex, created_at FROM lease_keys ORDER BY created_at DESC, id DESC",
            &[],
        )
        .await?;
    let mut keys: Vec<(i32, String, f64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let first = keys.is_empty();
    let rotated = !first
        && rotate_after_sec.is_some_and(|age| keys.first().is_some_and(|k| now - k.2 >= age));
    if first || rotated {
        let id = keys.iter().map(|k| k.0).max().unwrap_or(0) + 1;
        tx.execute(
            "INSERT INTO lease_keys (id, key_hex, created_at) VALUES ($1, $2, $3)",
            &[&id, &fresh, &now],
        )
        .await?;
        keys.insert(0, (id, fresh.to_string(), now));
    }
    // keys[i] was replaced when keys[i - 1] was created.
    let cut = (1..keys.len()).find(|&i| now - keys[i - 1].2 > keep_sec);
    if let Some(cut) = cut {
        let gone: Vec<i32> = keys[cut..].iter().map(|k| k.0).collect();
        tx.execute("DELETE FROM lease_keys WHERE id = ANY($1)", &[&gone])
            .await?;
        keys.truncate(cut);
    }
    tx.commit().await?;
    Ok(SigningKeys {
        keys_hex: keys.into_iter().map(|k| k.1).collect(),
        first,
        rotated,
    })
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

/// Filters of [`decisions`].
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionFilter {
    /// Audit kinds to list (`granted`, `denied`, `queued`).
    pub kinds: Vec<&'static str>,
    /// Only this addon.
    pub addon_id: Option<String>,
    /// Only this host.
    pub host_id: Option<String>,
    /// Unix seconds: rows at or after.
    pub since: f64,
    /// Most rows.
    pub limit: i64,
    /// Where the page starts (the rows after this cursor).
    pub before: Option<DecisionCursor>,
}

/// A wire enum from its stored name (`None` when unknown).
fn wire_enum<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}

/// Recent decisions matching `f`, newest first (at most `f.limit`), and
/// the number of matching rows per reason code (`none` for grants).
pub async fn decisions(
    pool: &Pool,
    f: &DecisionFilter,
) -> Result<(Vec<Decision>, Vec<(String, i64)>), StoreError> {
    const WHERE: &str = "WHERE at >= $1 AND kind = ANY($2)
          AND ($3::text IS NULL OR addon_id = $3)
          AND ($4::text IS NULL OR host_id = $4)";
    let client = pool.get().await?;
    let kinds: Vec<&str> = f.kinds.clone();
    let rows = client
        .query(
            &format!(
                "SELECT at, kind, addon_id, job_type, host_id, cost_units, priority,
                        lease_id, reason_code, reason
                 FROM lease_events {WHERE}
                   AND ($6::float8 IS NULL OR at <= $6)
                 ORDER BY at DESC, kind, addon_id, job_type, host_id, lease_id,
                          reason_code, reason, cost_units, priority
                 LIMIT $5 OFFSET $7"
            ),
            &[
                &f.since,
                &kinds,
                &f.addon_id,
                &f.host_id,
                &f.limit,
                &f.before.map(|c| c.at),
                &f.before.map_or(0, |c| i64::from(c.skip)),
            ],
        )
        .await?;
    let counts = client
        .query(
            &format!(
                "SELECT COALESCE(reason_code, 'none'), count(*) FROM lease_events {WHERE}
                 GROUP BY 1 ORDER BY 1"
            ),
            &[&f.since, &kinds, &f.addon_id, &f.host_id],
        )
        .await?;
    Ok((
        rows.iter()
            .filter_map(|r| {
                Some(Decision {
                    at: r.get(0),
                    kind: DecisionKind::parse(r.get(1))?,
                    addon_id: r.get(2),
                    job_type: r.get(3),
                    host_id: r.get(4),
                    cost_units: u32::try_from(r.get::<_, i32>(5)).unwrap_or(0),
                    priority: wire_enum(r.get(6)).unwrap_or_default(),
                    lease_id: r.get(7),
                    reason_code: r.get::<_, Option<String>>(8).and_then(|c| wire_enum(&c)),
                    reason: r.get(9),
                })
            })
            .collect(),
        counts.iter().map(|r| (r.get(0), r.get(1))).collect(),
    ))
}
