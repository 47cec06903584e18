//! A [`Campaign`]: all regions, with duplicate detection by `build_id` and
//! `event_id` and the imported history ([`Baselines`]), and [`recompute`],
//! the reference result the incremental path must equal.

use std::collections::{BTreeMap, HashSet};

use lull_proto::msg::region::{BuildRecord, FatigueEventReport, RegionStats};
use serde::{Deserialize, Serialize};

use super::aggregate::RegionAggregate;
use super::config::RegionConfig;
use super::order::OrderKey;

/// Whether a record changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The record was new and is now counted.
    New,
    /// A record with this id was seen before; nothing changed.
    Duplicate,
}

/// The campaign-level part of imported history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CampaignBaseline {
    /// Imported `campaign_start`.
    #[serde(default)]
    pub campaign_start: Option<f64>,
    /// Imported `last_updated`.
    #[serde(default)]
    pub last_updated: Option<f64>,
    /// Imported builds not attributed to any region
    /// (`total_builds_all_regions` minus the sum of the regions).
    #[serde(default)]
    pub unattributed_builds: u64,
}

/// Imported history: what the shell persists besides the records themselves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baselines {
    /// Campaign-level fields.
    #[serde(default)]
    pub campaign: CampaignBaseline,
    /// Imported region summaries, each with the builds it already counts.
    #[serde(default)]
    pub regions: BTreeMap<String, RegionStats>,
}

/// All regions, with duplicate detection by `build_id` and `event_id`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Campaign {
    regions: BTreeMap<String, RegionAggregate>,
    seen_builds: HashSet<String>,
    seen_events: HashSet<String>,
    baselines: Baselines,
}

impl Campaign {
    /// An empty campaign.
    pub fn new() -> Self {
        Campaign::default()
    }

    /// A campaign that starts from imported history.
    pub fn from_baselines(b: &Baselines, cfg: &RegionConfig) -> Self {
        let mut c = Campaign::new();
        c.baselines.campaign = b.campaign;
        for (name, stats) in &b.regions {
            c.adopt_baseline(name, stats.clone(), cfg);
        }
        c
    }

    /// Adds an imported region summary (the region must be new to this campaign).
    pub(crate) fn adopt_baseline(&mut self, name: &str, stats: RegionStats, cfg: &RegionConfig) {
        for b in &stats.recent_builds {
            self.seen_builds.insert(b.build_id.clone());
        }
        let agg = RegionAggregate::from_baseline(name, &stats, cfg);
        self.regions.insert(name.to_string(), agg);
        self.baselines.regions.insert(name.to_string(), stats);
    }

    pub(crate) fn baselines_mut(&mut self) -> &mut Baselines {
        &mut self.baselines
    }

    /// A campaign assembled from persisted parts: the regions' aggregates and
    /// the imported history. It knows no ids: the caller (a store that
    /// upserts by id) must pass only new records from here on.
    pub fn from_parts(regions: BTreeMap<String, RegionAggregate>, baselines: Baselines) -> Self {
        Campaign {
            regions,
            baselines,
            ..Campaign::default()
        }
    }

    /// Replaces (or adds) one region's aggregate, e.g. a copy updated with
    /// [`RegionAggregate::apply_new_build`] once its records are committed.
    pub fn set_region(&mut self, name: &str, agg: RegionAggregate) {
        self.regions.insert(name.to_string(), agg);
    }

    /// Counts a build record unless its `build_id` was seen before.
    pub fn apply_build(&mut self, b: &BuildRecord, cfg: &RegionConfig) -> Applied {
        if !self.seen_builds.insert(b.build_id.clone()) {
            return Applied::Duplicate;
        }
        let agg = self.regions.entry(b.region.clone()).or_default();
        agg.apply_new_build(b, cfg);
        Applied::New
    }

    /// Counts a bare fatigue event unless its `event_id` was seen before.
    pub fn apply_fatigue_event(&mut self, e: &FatigueEventReport, cfg: &RegionConfig) -> Applied {
        if !self.seen_events.insert(e.event_id.clone()) {
            return Applied::Duplicate;
        }
        let agg = self.regions.entry(e.region.clone()).or_default();
        agg.apply_new_fatigue_event(e, cfg);
        Applied::New
    }

    /// Whether a build with this id is known (counted or imported).
    pub fn knows_build(&self, build_id: &str) -> bool {
        self.seen_builds.contains(build_id)
    }

    /// Whether a fatigue event with this id is known.
    pub fn knows_event(&self, event_id: &str) -> bool {
        self.seen_events.contains(event_id)
    }

    /// One region's aggregate.
    pub fn region(&self, name: &str) -> Option<&RegionAggregate> {
        self.regions.get(name)
    }

    /// Every region, by name.
    pub fn regions(&self) -> impl Iterator<Item = (&String, &RegionAggregate)> {
        self.regions.iter()
    }

    /// Number of regions.
    pub fn len(&self) -> usize {
        self.regions.len()
    }

    /// Whether no region is known.
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// Imported history (persist it after an import).
    pub fn baselines(&self) -> &Baselines {
        &self.baselines
    }

    /// `total_builds_all_regions`.
    pub fn total_builds(&self) -> u64 {
        let counted: u64 = self.regions.values().map(|r| r.total_builds()).sum();
        counted + self.baselines.campaign.unattributed_builds
    }

    /// `campaign_start`: the oldest known build or imported start.
    pub fn campaign_start(&self) -> Option<f64> {
        let firsts = self.regions.values().filter_map(|r| r.first_build());
        firsts
            .chain(self.baselines.campaign.campaign_start)
            .reduce(f64::min)
    }

    /// `last_updated`: the newest known fact or imported update.
    pub fn last_updated(&self) -> Option<f64> {
        let newest = self.regions.values().filter_map(|r| r.newest_time());
        newest
            .chain(self.baselines.campaign.last_updated)
            .reduce(f64::max)
    }
}

/// The reference result: imported history plus the unique records (first
/// occurrence wins) applied in key order.
pub fn recompute(
    baselines: &Baselines,
    builds: &[BuildRecord],
    events: &[FatigueEventReport],
    cfg: &RegionConfig,
) -> Campaign {
    let mut c = Campaign::from_baselines(baselines, cfg);
    let mut ids = HashSet::new();
    let mut unique: Vec<&BuildRecord> = builds
        .iter()
        .filter(|b| !c.knows_build(&b.build_id) && ids.insert(b.build_id.as_str()))
        .collect();
    unique.sort_by_key(|b| OrderKey::of_build(b));
    for b in unique {
        c.apply_build(b, cfg);
    }
    let mut ids = HashSet::new();
    let mut unique: Vec<&FatigueEventReport> = events
        .iter()
        .filter(|e| ids.insert(e.event_id.as_str()))
        .collect();
    unique.sort_by_key(|e| OrderKey::of_event(e));
    for e in unique {
        c.apply_fatigue_event(e, cfg);
    }
    c
}
