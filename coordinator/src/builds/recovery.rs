//! Recovery at start: the persisted region aggregates, brought up to date
//! by replaying the records committed after them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use deadpool_postgres::Pool;

use crate::store::regions::{self as db, StoredRecord};
use crate::store::StoreError;
use lull_engine::region::fatigue::Pardon;
use lull_engine::region::{Baselines, Campaign, RegionAggregate, RegionConfig};

/// What [`load`] found: the campaign to start from, its pardons, and the
/// regions whose aggregates changed by the replay (to persist first).
pub struct LoadedState {
    pub(super) campaign: Campaign,
    pub(super) pardons: BTreeMap<String, Pardon>,
    pub(super) replayed: BTreeSet<String>,
}

impl LoadedState {
    /// The loaded campaign.
    pub fn campaign(&self) -> &Campaign {
        &self.campaign
    }
}

/// Loads the persisted aggregates and replays the records committed after
/// them (everything when an aggregate is missing or unreadable). Holds at
/// most one record at a time besides the aggregates.
pub async fn load(pool: &Pool, cfg: &RegionConfig) -> Result<LoadedState, StoreError> {
    let started = Instant::now();
    let stored = db::load(pool).await?;
    let baselines = Baselines {
        campaign: stored.campaign,
        regions: stored.baselines,
    };
    let readable = stored.aggregates.values().all(Result::is_ok)
        && baselines
            .regions
            .keys()
            .all(|r| stored.aggregates.contains_key(r));
    let (mut regions, from) = if readable {
        let regions: BTreeMap<String, RegionAggregate> = stored
            .aggregates
            .into_iter()
            .filter_map(|(k, v)| v.ok().map(|a| (k, a)))
            .collect();
        (regions, stored.through_seq)
    } else {
        tracing::warn!(
            "persisted region aggregates are incomplete or unreadable; replaying every record"
        );
        let regions = baselines
            .regions
            .iter()
            .map(|(name, s)| (name.clone(), RegionAggregate::from_baseline(name, s, cfg)))
            .collect();
        (regions, 0)
    };
    let mut replayed = BTreeSet::new();
    let n = db::replay_after(pool, from, |r| match r {
        StoredRecord::Build(b) => {
            regions
                .entry(b.region.clone())
                .or_default()
                .apply_new_build(&b, cfg);
            replayed.insert(b.region);
        }
        StoredRecord::Event(e) => {
            regions
                .entry(e.region.clone())
                .or_default()
                .apply_new_fatigue_event(&e, cfg);
            replayed.insert(e.region);
        }
    })
    .await?;
    tracing::info!(
        regions = regions.len(),
        replayed = n,
        through_seq = from,
        secs = started.elapsed().as_secs_f64(),
        "region aggregates loaded"
    );
    Ok(LoadedState {
        campaign: Campaign::from_parts(regions, baselines),
        pardons: stored.pardons,
        replayed,
    })
}
