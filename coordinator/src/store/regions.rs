//! Region persistence (docs/regions.md, "Storage"): build records and bare
//! fatigue events stored once per id (`region_builds`, `region_fatigue_events`),
//! imported region summaries (`region_baselines`), the campaign row
//! (`region_campaign`: imported campaign baseline and `through_seq`), the
//! persisted aggregates (`region_aggregates`) and pardons (`region_pardons`).
//!
//! The regions actor writes one transaction per batch: [`insert_builds`] /
//! [`insert_events`] insert the records whose id is new and return those ids,
//! the actor applies exactly those to its aggregates, and [`save_aggregates`]
//! / [`save_campaign`] persist the result before the commit. Every record
//! takes a number from `region_report_seq`; a persisted aggregate counts
//! every record up to `through_seq`, so a restart loads the aggregates and
//! replays only the records after it ([`replay_after`]).

use std::collections::{BTreeMap, HashSet};

use deadpool_postgres::Pool;
use futures::{pin_mut, TryStreamExt};
use lull_proto::msg::region::{BuildRecord, FatigueEventReport, RegionStats};
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{GenericClient, Transaction};

use super::{DocTable, StoreError};
use lull_engine::region::fatigue::Pardon;
use lull_engine::region::{CampaignBaseline, RegionAggregate};

/// Inserts the builds whose `build_id` is not stored yet and returns the ids
/// that were inserted. `counted: false` marks builds that an imported region
/// summary already counts (kept for `recent_builds` and deduplication only).
pub async fn insert_builds(
    tx: &Transaction<'_>,
    builds: &[&BuildRecord],
    counted: bool,
    received_at: f64,
) -> Result<HashSet<String>, StoreError> {
    if builds.is_empty() {
        return Ok(HashSet::new());
    }
    let ids: Vec<&str> = builds.iter().map(|b| b.build_id.as_str()).collect();
    let regions: Vec<&str> = builds.iter().map(|b| b.region.as_str()).collect();
    let ts: Vec<f64> = builds.iter().map(|b| b.timestamp).collect();
    let success: Vec<bool> = builds.iter().map(|b| b.success).collect();
    let minutes: Vec<f64> = builds.iter().map(|b| b.duration_minutes_value()).collect();
    let queue: Vec<f64> = builds
        .iter()
        .map(|b| b.queue_wait_minutes_value())
        .collect();
    let cost: Vec<Option<f64>> = builds.iter().map(|b| b.effective_cost_usd()).collect();
    let fatigues: Vec<i32> = builds
        .iter()
        .map(|b| i32::try_from(b.fatigues.len()).unwrap_or(i32::MAX))
        .collect();
    let records: Vec<Json<&BuildRecord>> = builds.iter().map(|b| Json(*b)).collect();
    let rows = tx
        .query(
            "INSERT INTO region_builds
               (build_id, region, ts, success, duration_minutes, queue_wait_minutes,
                cost_usd, fatigues, record, counted, received_at)
             SELECT u.*, $10::bool, $11::float8 FROM UNNEST($1::text[], $2::text[],
                 $3::float8[], $4::bool[], $5::float8[], $6::float8[], $7::float8[],
                 $8::int4[], $9::jsonb[]) AS u
             ON CONFLICT (build_id) DO NOTHING
             RETURNING build_id",
            &[
                &ids,
                &regions,
                &ts,
                &success,
                &minutes,
                &queue,
                &cost,
                &fatigues,
                &records,
                &counted,
                &received_at,
            ],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Inserts the bare fatigue events whose `event_id` is not stored yet and
/// returns the ids that were inserted.
pub async fn insert_events(
    tx: &Transaction<'_>,
    events: &[&FatigueEventReport],
    received_at: f64,
) -> Result<HashSet<String>, StoreError> {
    if events.is_empty() {
        return Ok(HashSet::new());
    }
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    let regions: Vec<&str> = events.iter().map(|e| e.region.as_str()).collect();
    let times: Vec<f64> = events.iter().map(|e| e.fatigue_time).collect();
    let types: Vec<&str> = events.iter().map(|e| e.fatigue_type.as_str()).collect();
    let records: Vec<Json<&FatigueEventReport>> = events.iter().map(|e| Json(*e)).collect();
    let rows = tx
        .query(
            "INSERT INTO region_fatigue_events
               (event_id, region, fatigue_time, fatigue_type, record, received_at)
             SELECT u.*, $6::float8 FROM UNNEST($1::text[], $2::text[], $3::float8[],
                 $4::text[], $5::jsonb[]) AS u
             ON CONFLICT (event_id) DO NOTHING
             RETURNING event_id",
            &[&ids, &regions, &times, &types, &records, &received_at],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Which of `builds` (whose ids are already stored) were stored with other
/// content: conflicting duplicates (compared as JSONB).
pub async fn conflicting_builds(
    tx: &Transaction<'_>,
    builds: &[&BuildRecord],
) -> Result<HashSet<String>, StoreError> {
    let items: Vec<(&str, &BuildRecord)> =
        builds.iter().map(|b| (b.build_id.as_str(), *b)).collect();
    let t = DocTable {
        table: "region_builds",
        id: "build_id",
        doc: "record",
    };
    super::differing(tx, t, &items).await
}

/// Which of `events` (whose ids are already stored) were stored with other
/// content: conflicting duplicates (compared as JSONB).
pub async fn conflicting_events(
    tx: &Transaction<'_>,
    events: &[&FatigueEventReport],
) -> Result<HashSet<String>, StoreError> {
    let items: Vec<(&str, &FatigueEventReport)> =
        events.iter().map(|e| (e.event_id.as_str(), *e)).collect();
    let t = DocTable {
        table: "region_fatigue_events",
        id: "event_id",
        doc: "record",
    };
    super::differing(tx, t, &items).await
}

/// Which of `ids` are stored builds (counted or kept by a baseline).
pub async fn known_builds(
    tx: &Transaction<'_>,
    ids: &[&str],
) -> Result<HashSet<String>, StoreError> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let rows = tx
        .query(
            "SELECT build_id FROM region_builds WHERE build_id = ANY($1::text[])",
            &[&ids],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The newest number `region_report_seq` has handed out (0 before any).
/// With one writer, every record numbered up to it is committed or in the
/// current transaction.
pub async fn current_seq(tx: &Transaction<'_>) -> Result<i64, StoreError> {
    let row = tx
        .query_one(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM region_report_seq",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// One region's aggregate to persist, with its outlaw verdict.
#[derive(Debug)]
pub struct AggregateRow<'a> {
    /// Region name.
    pub region: &'a str,
    /// The aggregate.
    pub aggregate: &'a RegionAggregate,
    /// Why it is outlawed, if it is.
    pub outlaw_reason: Option<String>,
}

/// Upserts persisted aggregates.
pub async fn save_aggregates(
    tx: &Transaction<'_>,
    rows: &[AggregateRow<'_>],
    now: f64,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let regions: Vec<&str> = rows.iter().map(|r| r.region).collect();
    let aggs: Vec<Json<&RegionAggregate>> = rows.iter().map(|r| Json(r.aggregate)).collect();
    let total: Vec<i64> = rows
        .iter()
        .map(|r| i64::try_from(r.aggregate.total_builds()).unwrap_or(i64::MAX))
        .collect();
    let ok: Vec<i64> = rows
        .iter()
        .map(|r| i64::try_from(r.aggregate.successes()).unwrap_or(i64::MAX))
        .collect();
    let incidents: Vec<i64> = rows
        .iter()
        .map(|r| i64::try_from(r.aggregate.fatigue_incidents()).unwrap_or(i64::MAX))
        .collect();
    let outlawed: Vec<bool> = rows.iter().map(|r| r.outlaw_reason.is_some()).collect();
    let reasons: Vec<Option<&str>> = rows.iter().map(|r| r.outlaw_reason.as_deref()).collect();
    tx.execute(
        "INSERT INTO region_aggregates
           (region, aggregate, total_builds, successes, fatigue_incidents, outlawed,
            outlaw_reason, updated_at)
         SELECT u.*, $8::float8 FROM UNNEST($1::text[], $2::jsonb[], $3::int8[], $4::int8[],
             $5::int8[], $6::bool[], $7::text[]) AS u
         ON CONFLICT (region) DO UPDATE SET
           aggregate = EXCLUDED.aggregate, total_builds = EXCLUDED.total_builds,
           successes = EXCLUDED.successes, fatigue_incidents = EXCLUDED.fatigue_incidents,
           outlawed = EXCLUDED.outlawed, outlaw_reason = EXCLUDED.outlaw_reason,
           updated_at = EXCLUDED.updated_at",
        &[
            &regions, &aggs, &total, &ok, &incidents, &outlawed, &reasons, &now,
        ],
    )
    .await?;
    Ok(())
}

/// Upserts the campaign row: the imported campaign baseline and how far the
/// persisted aggregates reach.
pub async fn save_campaign(
    tx: &Transaction<'_>,
    baseline: &CampaignBaseline,
    through_seq: i64,
    now: f64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO region_campaign (id, baseline, through_seq, updated_at)
         VALUES (1, $1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET baseline = EXCLUDED.baseline,
           through_seq = EXCLUDED.through_seq, updated_at = EXCLUDED.updated_at",
        &[&Json(baseline), &through_seq, &now],
    )
    .await?;
    Ok(())
}

/// Stores region summaries adopted by an import.
pub async fn save_baselines(
    tx: &Transaction<'_>,
    baselines: &BTreeMap<String, RegionStats>,
    now: f64,
) -> Result<(), StoreError> {
    for (region, stats) in baselines {
        tx.execute(
            "INSERT INTO region_baselines (region, stats, imported_at) VALUES ($1, $2, $3)
             ON CONFLICT (region) DO UPDATE SET stats = EXCLUDED.stats,
               imported_at = EXCLUDED.imported_at",
            &[region, &Json(stats), &now],
        )
        .await?;
    }
    Ok(())
}

/// Stores a region's pardon (replacing an older one) and its outlaw flag.
pub async fn save_pardon(pool: &Pool, region: &str, pardon: &Pardon) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    super::fence::check(&tx).await?;
    tx.execute(
        "INSERT INTO region_pardons (region, pardon, pardoned_at) VALUES ($1, $2, $3)
         ON CONFLICT (region) DO UPDATE SET pardon = EXCLUDED.pardon,
           pardoned_at = EXCLUDED.pardoned_at",
        &[&region, &Json(pardon), &pardon.pardoned_at],
    )
    .await?;
    tx.execute(
        "UPDATE region_aggregates SET outlawed = false, outlaw_reason = NULL WHERE region = $1",
        &[&region],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What a start-up reads (everything but the records themselves).
#[derive(Debug, Default)]
pub struct Loaded {
    /// The imported campaign baseline.
    pub campaign: CampaignBaseline,
    /// How far the persisted aggregates reach in `region_report_seq`.
    pub through_seq: i64,
    /// Persisted aggregates by region; `Err` when one does not decode (for
    /// example after a format change), which asks for a full replay.
    pub aggregates: BTreeMap<String, Result<RegionAggregate, String>>,
    /// Imported region summaries.
    pub baselines: BTreeMap<String, RegionStats>,
    /// Pardons by region.
    pub pardons: BTreeMap<String, Pardon>,
}

/// Reads the campaign row, the aggregates, the baselines and the pardons.
pub async fn load(pool: &Pool) -> Result<Loaded, StoreError> {
    let client = pool.get().await?;
    let mut out = Loaded::default();
    if let Some(row) = client
        .query_opt(
            "SELECT baseline, through_seq FROM region_campaign WHERE id = 1",
            &[],
        )
        .await?
    {
        let Json(b): Json<CampaignBaseline> = row
            .try_get(0)
            .map_err(|e| StoreError::decode("region_campaign.baseline", e))?;
        out.campaign = b;
        out.through_seq = row.get(1);
    }
    for row in client
        .query("SELECT region, aggregate::text FROM region_aggregates", &[])
        .await?
    {
        let region: String = row.get(0);
        let text: &str = row.get(1);
        let agg = serde_json::from_str::<RegionAggregate>(text).map_err(|e| e.to_string());
        out.aggregates.insert(region, agg);
    }
    for row in client
        .query("SELECT region, stats FROM region_baselines", &[])
        .await?
    {
        let region: String = row.get(0);
        let Json(stats): Json<RegionStats> = row
            .try_get(1)
            .map_err(|e| StoreError::decode(format!("region_baselines[{region}]"), e))?;
        out.baselines.insert(region, stats);
    }
    for row in client
        .query("SELECT region, pardon FROM region_pardons", &[])
        .await?
    {
        let region: String = row.get(0);
        let Json(p): Json<Pardon> = row
            .try_get(1)
            .map_err(|e| StoreError::decode(format!("region_pardons[{region}]"), e))?;
        out.pardons.insert(region, p);
    }
    Ok(out)
}

/// A stored record, as replayed.
#[derive(Debug)]
pub enum StoredRecord {
    /// A counted build.
    Build(Box<BuildRecord>),
    /// A bare fatigue event.
    Event(Box<FatigueEventReport>),
}

/// Streams every counted build and every event numbered after `seq` (in no
/// particular order: the aggregates do not depend on it) into `f`, without
/// holding them all in memory. Returns how many were replayed.
pub async fn replay_after<F>(pool: &Pool, seq: i64, mut f: F) -> Result<u64, StoreError>
where
    F: FnMut(StoredRecord),
{
    let client = pool.get().await?;
    let mut n = 0;
    let params: [&(dyn ToSql + Sync); 1] = [&seq];
    let builds = client
        .query_raw(
            "SELECT record::text FROM region_builds WHERE counted AND seq > $1",
            params.iter().copied(),
        )
        .await?;
    pin_mut!(builds);
    while let Some(row) = builds.try_next().await? {
        let text: &str = row.get(0);
        let b: BuildRecord = serde_json::from_str(text)
            .map_err(|e| StoreError::decode("region_builds.record", e))?;
        f(StoredRecord::Build(Box::new(b)));
        n += 1;
    }
    let events = client
        .query_raw(
            "SELECT record::text FROM region_fatigue_events WHERE seq > $1",
            params.iter().copied(),
        )
        .await?;
    pin_mut!(events);
    while let Some(row) = events.try_next().await? {
        let text: &str = row.get(0);
        let e: FatigueEventReport = serde_json::from_str(text)
            .map_err(|e| StoreError::decode("region_fatigue_events.record", e))?;
        f(StoredRecord::Event(Box::new(e)));
        n += 1;
    }
    Ok(n)
}

/// Every stored fact, for tests and tools that recompute from scratch:
/// counted builds and bare events (baselines come from [`load`]).
pub async fn all_facts<C: GenericClient>(
    client: &C,
) -> Result<(Vec<BuildRecord>, Vec<FatigueEventReport>), StoreError> {
    let mut builds = Vec::new();
    for row in client
        .query(
            "SELECT record::text FROM region_builds WHERE counted ORDER BY seq",
            &[],
        )
        .await?
    {
        let text: &str = row.get(0);
        builds.push(
            serde_json::from_str(text)
                .map_err(|e| StoreError::decode("region_builds.record", e))?,
        );
    }
    let mut events = Vec::new();
    for row in client
        .query(
            "SELECT record::text FROM region_fatigue_events ORDER BY seq",
            &[],
        )
        .await?
    {
        let text: &str = row.get(0);
        events.push(
            serde_json::from_str(text)
                .map_err(|e| StoreError::decode("region_fatigue_events.record", e))?,
        );
    }
    Ok((builds, events))
}
