//! The database jobs of the regions actor, each one transaction: a batch of
//! reports (insert new ids, apply exactly those to the copies, persist), an
//! import (plan against the stored ids, store baselines and builds, apply,
//! persist every region) and a pardon. A job works on copies; the actor
//! swaps them in only when the job committed.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Instant;

use deadpool_postgres::Pool;
use lull_common::runtime::now_unix;
use lull_proto::msg::region::{BuildRecord, CampaignStats, FatigueEventReport};

use crate::store::regions::{self as db, AggregateRow};
use crate::store::StoreError;
use lull_engine::region::fatigue::{judge_outlaw, OutlawCounts, Pardon};
use lull_engine::region::{
    apply_import, plan_import_with, Campaign, CampaignBaseline, ImportReport, RegionAggregate,
    RegionConfig,
};

/// A batch of reports (possibly empty: a snapshot only).
pub(crate) struct ReportsJob {
    /// Build records in arrival order.
    pub builds: Vec<BuildRecord>,
    /// Bare fatigue events in arrival order.
    pub events: Vec<FatigueEventReport>,
    /// Copies of the aggregates of every region named by the records.
    pub regions: BTreeMap<String, RegionAggregate>,
    /// Persist the aggregates: `regions` (after applying) and `others`.
    pub snapshot: bool,
    /// Copies of the other changed-but-unpersisted regions (with `snapshot`).
    pub others: BTreeMap<String, RegionAggregate>,
    /// The campaign baseline (persisted with a snapshot).
    pub baseline: CampaignBaseline,
    /// Pardons of the regions being persisted (for their outlaw flag).
    pub pardons: BTreeMap<String, Pardon>,
}

/// What a committed batch did.
pub(crate) struct ReportsDone {
    /// The updated copies of the regions that got new records.
    pub changed: BTreeMap<String, RegionAggregate>,
    /// The builds that were new (for the histograms).
    pub new_builds: Vec<BuildRecord>,
    /// New bare events.
    pub new_events: u64,
    /// Positions in the job's `builds` of conflicting duplicates (an id
    /// stored, or earlier in the batch, with other content).
    pub conflict_builds: Vec<usize>,
    /// Positions in the job's `events` of conflicting duplicates.
    pub conflict_events: Vec<usize>,
    /// Records that were already stored.
    pub duplicate_builds: u64,
    /// Events that were already stored.
    pub duplicate_events: u64,
    /// Whether every changed aggregate is now persisted.
    pub snapshot: bool,
}

/// The first record of each id (the first copy wins, as in `recompute`),
/// and the positions of later copies with other content (conflicts).
fn first_of_each<T: PartialEq>(items: &[T], id: impl Fn(&T) -> &str) -> (Vec<&T>, Vec<usize>) {
    let (kept, conflicts) = crate::handoff::first_of_each(items, id);
    (kept.into_iter().map(|i| &items[i]).collect(), conflicts)
}

/// Positions of the records that are conflicting duplicates: later copies
/// in the batch with other content (`conflicts`), and first copies whose id
/// is in `stored` (stored with other content).
fn conflict_positions<T>(
    items: &[T],
    id: impl Fn(&T) -> &str,
    mut conflicts: Vec<usize>,
    stored: &HashSet<String>,
) -> Vec<usize> {
    let mut firsts = HashSet::new();
    for (i, x) in items.iter().enumerate() {
        if firsts.insert(id(x)) && stored.contains(id(x)) {
            conflicts.push(i);
        }
    }
    conflicts.sort_unstable();
    conflicts
}

fn outlaw_reason(
    name: &str,
    agg: &RegionAggregate,
    pardons: &BTreeMap<String, Pardon>,
    cfg: &RegionConfig,
) -> Option<String> {
    judge_outlaw(OutlawCounts::of(agg), pardons.get(name), cfg).map(|v| v.reason)
}

/// Runs a batch in one transaction.
pub(crate) async fn reports(
    pool: &Pool,
    cfg: &Arc<RegionConfig>,
    mut job: ReportsJob,
) -> Result<ReportsDone, StoreError> {
    let started = Instant::now();
    let now = now_unix();
    let (builds, batch_conflicts_b) = first_of_each(&job.builds, |b| b.build_id.as_str());
    let (events, batch_conflicts_e) = first_of_each(&job.events, |e| e.event_id.as_str());
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    crate::store::fence::check(&tx).await?;
    let new_b = db::insert_builds(&tx, &builds, true, now).await?;
    let new_e = db::insert_events(&tx, &events, now).await?;
    let old_b: Vec<&BuildRecord> = builds
        .iter()
        .copied()
        .filter(|b| !new_b.contains(&b.build_id))
        .collect();
    let old_e: Vec<&FatigueEventReport> = events
        .iter()
        .copied()
        .filter(|e| !new_e.contains(&e.event_id))
        .collect();
    let stored_b = db::conflicting_builds(&tx, &old_b).await?;
    let stored_e = db::conflicting_events(&tx, &old_e).await?;
    let conflict_builds = conflict_positions(
        &job.builds,
        |b| b.build_id.as_str(),
        batch_conflicts_b,
        &stored_b,
    );
    let conflict_events = conflict_positions(
        &job.events,
        |e| e.event_id.as_str(),
        batch_conflicts_e,
        &stored_e,
    );
    let mut touched = BTreeSet::new();
    let mut new_builds = Vec::with_capacity(new_b.len());
    for b in builds.iter().filter(|b| new_b.contains(&b.build_id)) {
        if let Some(agg) = job.regions.get_mut(&b.region) {
            agg.apply_new_build(b, cfg);
            touched.insert(b.region.clone());
            new_builds.push((*b).clone());
        }
    }
    for e in events.iter().filter(|e| new_e.contains(&e.event_id)) {
        if let Some(agg) = job.regions.get_mut(&e.region) {
            agg.apply_new_fatigue_event(e, cfg);
            touched.insert(e.region.clone());
        }
    }
    if job.snapshot {
        // Every copy of the batch (changed or not) and every other
        // unpersisted region: after this, the aggregates count every record
        // numbered up to `through`.
        let mut rows: Vec<AggregateRow> = Vec::new();
        for (name, agg) in job.regions.iter().chain(
            job.others
                .iter()
                .filter(|(name, _)| !job.regions.contains_key(*name)),
        ) {
            rows.push(AggregateRow {
                region: name,
                aggregate: agg,
                outlaw_reason: outlaw_reason(name, agg, &job.pardons, cfg),
            });
        }
        db::save_aggregates(&tx, &rows, now).await?;
        let through = db::current_seq(&tx).await?;
        db::save_campaign(&tx, &job.baseline, through, now).await?;
    }
    tx.commit().await?;
    let changed: BTreeMap<String, RegionAggregate> = job
        .regions
        .into_iter()
        .filter(|(name, _)| touched.contains(name))
        .collect();
    let rows = (builds.len() + events.len()) as f64;
    metrics::histogram!(crate::store::metrics::DB_BATCH_DURATION.name, "table" => "region_reports")
        .record(started.elapsed().as_secs_f64());
    metrics::histogram!(crate::store::metrics::DB_BATCH_ROWS.name, "table" => "region_reports")
        .record(rows);
    metrics::gauge!(crate::store::metrics::DB_LAST_WRITE.name, "table" => "region_reports")
        .set(now_unix());
    Ok(ReportsDone {
        conflict_builds,
        conflict_events,
        duplicate_builds: (job.builds.len() - new_b.len()) as u64,
        duplicate_events: (job.events.len() - new_e.len()) as u64,
        changed,
        new_builds,
        new_events: new_e.len() as u64,
        snapshot: job.snapshot,
    })
}

/// Imports a validated document into a copy of the campaign, in one
/// transaction, persisting every region. Returns the new campaign.
pub(crate) async fn import(
    pool: &Pool,
    cfg: &Arc<RegionConfig>,
    mut campaign: Campaign,
    doc: &CampaignStats,
    pardons: &BTreeMap<String, Pardon>,
) -> Result<(Campaign, ImportReport), StoreError> {
    let now = now_unix();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    crate::store::fence::check(&tx).await?;
    let ids: Vec<&str> = doc
        .regions
        .values()
        .flat_map(|r| r.recent_builds.iter().map(|b| b.build_id.as_str()))
        .collect();
    let known = db::known_builds(&tx, &ids).await?;
    let plan = plan_import_with(doc, &campaign, |id| known.contains(id));
    db::save_baselines(&tx, &plan.baselines, now).await?;
    let adopted: Vec<BuildRecord> = plan
        .baselines
        .iter()
        .flat_map(|(name, stats)| {
            stats.recent_builds.iter().map(move |b| BuildRecord {
                region: name.clone(),
                ..b.clone()
            })
        })
        .collect();
    let adopted_refs: Vec<&BuildRecord> = adopted.iter().collect();
    db::insert_builds(&tx, &adopted_refs, false, now).await?;
    let merged: Vec<&BuildRecord> = plan.builds.iter().collect();
    let inserted = db::insert_builds(&tx, &merged, true, now).await?;
    if inserted.len() != merged.len() {
        // Cannot happen with one writer; refuse rather than count wrongly.
        return Err(StoreError::Inconsistent(format!(
            "import: {} of {} new builds were already stored",
            merged.len() - inserted.len(),
            merged.len()
        )));
    }
    apply_import(&mut campaign, &plan, cfg);
    let rows: Vec<AggregateRow> = campaign
        .regions()
        .map(|(name, agg)| AggregateRow {
            region: name,
            aggregate: agg,
            outlaw_reason: outlaw_reason(name, agg, pardons, cfg),
        })
        .collect();
    db::save_aggregates(&tx, &rows, now).await?;
    let through = db::current_seq(&tx).await?;
    db::save_campaign(&tx, &campaign.baselines().campaign, through, now).await?;
    tx.commit().await?;
    Ok((campaign, plan.report))
}
