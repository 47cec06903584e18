//! The campaign stats JSON of seed 000 (`lull.v1.regions.stats`, export),
//! and the import of an existing `campaign_stats.json`, legacy or current.
//!
//! Import rules (docs/regions.md):
//! - a region Lull does not track yet is adopted whole: its summary becomes
//!   a baseline (its counts, sums, streak and `last_*` fields stay as the file
//!   has them) and its `recent_builds` are kept as already-counted builds;
//! - for a region Lull already tracks, only the file's builds Lull does not
//!   know are added, as ordinary build records (the file's summary would
//!   count the known ones twice);
//! - a build id Lull knows, or that the file lists twice, is skipped, so
//!   importing the same file again changes nothing;
//! - `campaign_start` / `last_updated` merge as min / max; builds the file
//!   counts in `total_builds_all_regions` but in no region are kept as
//!   unattributed, once, when the import adopts a region.

use std::collections::{BTreeMap, HashSet};

use lull_proto::msg::region::{BuildRecord, CampaignStats, RegionStats};
use serde::{Deserialize, Serialize};

use super::campaign::{Campaign, CampaignBaseline};
use super::fatigue::RegionConfig;

/// The seed 000 document for everything the campaign knows.
pub fn campaign_stats(c: &Campaign) -> CampaignStats {
    CampaignStats {
        campaign_start: c.campaign_start(),
        last_updated: c.last_updated(),
        total_builds_all_regions: c.total_builds(),
        regions: c.regions().map(|(n, a)| (n.clone(), a.stats())).collect(),
        next_cursor: None,
    }
}

/// The part of the campaign document a `regions.stats` request asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsPage<'a> {
    /// Only these regions (empty: every region).
    pub only: &'a [String],
    /// At most this many `recent_builds` per region.
    pub recent_builds: usize,
    /// The regions after this name (the previous page's cursor).
    pub after: Option<&'a str>,
    /// At most this many regions.
    pub limit: usize,
}

/// One page of the seed 000 document: the regions named after `after`, in
/// name order, at most `limit` of them, and `next_cursor` (the page's last
/// name) when more remain. The campaign fields describe the whole campaign
/// on every page.
pub fn campaign_stats_page(c: &Campaign, p: &StatsPage) -> CampaignStats {
    let wanted = c
        .regions()
        .filter(|(n, _)| p.only.is_empty() || p.only.contains(n))
        .map(|(n, a)| (n.as_str(), a));
    let page = crate::page::after(wanted, |(n, _)| *n, p.after.as_ref(), p.limit);
    let next_cursor = page
        .more
        .then(|| page.items.last().map(|(n, _)| n.to_string()))
        .flatten();
    CampaignStats {
        campaign_start: c.campaign_start(),
        last_updated: c.last_updated(),
        total_builds_all_regions: c.total_builds(),
        regions: page
            .items
            .into_iter()
            .map(|(n, a)| {
                let mut s = a.stats();
                s.recent_builds.truncate(p.recent_builds);
                (n.to_string(), s)
            })
            .collect(),
        next_cursor,
    }
}

/// What an import did (the reply of `lullctl regions import`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    /// Regions adopted whole from the file.
    pub regions_adopted: Vec<String>,
    /// Regions Lull already tracked; only unknown builds were added.
    pub regions_merged: Vec<String>,
    /// Builds added as new records to merged regions.
    pub builds_added: u64,
    /// Builds of adopted regions kept as already counted.
    pub builds_adopted: u64,
    /// Builds skipped because Lull knew them or the file repeated them.
    pub builds_skipped: u64,
    /// Builds counted by the file in no region, added to the campaign total.
    pub unattributed_builds: u64,
}

/// The changes an import makes; apply with [`apply_import`] and persist
/// `baselines` and `builds` the same way.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportPlan {
    /// Region summaries to adopt, with the builds they already count.
    pub baselines: BTreeMap<String, RegionStats>,
    /// New builds for regions already tracked (each with `region` set).
    pub builds: Vec<BuildRecord>,
    /// The campaign-level baseline after the import.
    pub campaign: CampaignBaseline,
    /// Summary.
    pub report: ImportReport,
}

/// Plans the import of a validated document into `existing`.
pub fn plan_import(doc: &CampaignStats, existing: &Campaign) -> ImportPlan {
    plan_import_with(doc, existing, |id| existing.knows_build(id))
}

/// Like [`plan_import`], with the known build ids given by `known` (for a
/// shell whose store, not the campaign, remembers every `build_id`).
pub fn plan_import_with(
    doc: &CampaignStats,
    existing: &Campaign,
    known: impl Fn(&str) -> bool,
) -> ImportPlan {
    let mut plan = ImportPlan::default();
    let mut in_file = HashSet::new();
    for (name, stats) in &doc.regions {
        let mut fresh = Vec::new();
        for b in &stats.recent_builds {
            if known(&b.build_id) || !in_file.insert(b.build_id.clone()) {
                plan.report.builds_skipped += 1;
            } else {
                fresh.push(BuildRecord {
                    region: name.clone(),
                    ..b.clone()
                });
            }
        }
        if existing.region(name).is_some() {
            plan.report.regions_merged.push(name.clone());
            plan.report.builds_added += fresh.len() as u64;
            plan.builds.extend(fresh);
        } else {
            plan.report.regions_adopted.push(name.clone());
            plan.report.builds_adopted += fresh.len() as u64;
            let recent_builds = fresh
                .into_iter()
                .map(|b| BuildRecord {
                    region: String::new(),
                    ..b
                })
                .collect();
            let adopted = RegionStats {
                recent_builds,
                ..stats.clone()
            };
            plan.baselines.insert(name.clone(), adopted);
        }
    }
    plan.campaign = merged_baseline(doc, existing.baselines().campaign, &mut plan.report);
    plan
}

fn merged_baseline(
    doc: &CampaignStats,
    old: CampaignBaseline,
    report: &mut ImportReport,
) -> CampaignBaseline {
    let in_regions: u64 = doc.regions.values().map(|r| r.total_builds).sum();
    if !report.regions_adopted.is_empty() {
        report.unattributed_builds = doc.total_builds_all_regions.saturating_sub(in_regions);
    }
    CampaignBaseline {
        campaign_start: min_opt(old.campaign_start, doc.campaign_start),
        last_updated: max_opt(old.last_updated, doc.last_updated),
        unattributed_builds: old.unattributed_builds + report.unattributed_builds,
    }
}

fn min_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    a.into_iter().chain(b).reduce(f64::min)
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    a.into_iter().chain(b).reduce(f64::max)
}

/// Applies a plan made by [`plan_import`] against this same campaign.
pub fn apply_import(c: &mut Campaign, plan: &ImportPlan, cfg: &RegionConfig) {
    for (name, stats) in &plan.baselines {
        c.adopt_baseline(name, stats.clone(), cfg);
    }
    for b in &plan.builds {
        c.apply_build(b, cfg);
    }
    c.baselines_mut().campaign = plan.campaign;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::campaign::{recompute, Applied};
    use lull_proto::validate::decode;
    use serde_json::{json, Value};

    const SEED000: &str = include_str!("../../../proto/tests/fixtures/seed000.jsonc");
    const SEED001: &str = include_str!("../../../proto/tests/fixtures/seed001.json");

    /// Drops `//` comments (the seed 000 example has no `//` inside strings).
    fn strip(src: &str) -> String {
        src.lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn value000() -> Value {
        serde_json::from_str(&strip(SEED000)).unwrap()
    }

    fn doc(v: &Value) -> CampaignStats {
        decode(&serde_json::to_vec(v).unwrap(), 1 << 20).unwrap()
    }

    fn imported(v: &Value) -> (Campaign, ImportReport) {
        let cfg = RegionConfig::default();
        let mut c = Campaign::new();
        let plan = plan_import(&doc(v), &c);
        apply_import(&mut c, &plan, &cfg);
        (c, plan.report)
    }

    #[test]
    fn stats_pages_join_to_the_whole_document() {
        let (c, _) = imported(&serde_json::from_str(SEED001).unwrap());
        assert!(c.len() >= 2, "{}", c.len());
        let whole = campaign_stats(&c);
        let mut joined = BTreeMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let p = StatsPage {
                only: &[],
                recent_builds: 100,
                after: cursor.as_deref(),
                limit: 1,
            };
            let page = campaign_stats_page(&c, &p);
            assert!(page.regions.len() <= 1);
            assert_eq!(
                page.total_builds_all_regions,
                whole.total_builds_all_regions
            );
            assert_eq!(page.campaign_start, whole.campaign_start);
            for (k, v) in page.regions {
                assert!(joined.insert(k, v).is_none(), "a region on two pages");
            }
            match page.next_cursor {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        assert_eq!(joined, whole.regions);
        let first = whole.regions.keys().next().unwrap().clone();
        let only = [first.clone()];
        let p = StatsPage {
            only: &only,
            recent_builds: 0,
            after: None,
            limit: 5,
        };
        let page = campaign_stats_page(&c, &p);
        assert_eq!(page.regions.keys().collect::<Vec<_>>(), [&first]);
        assert!(page.regions[&first].recent_builds.is_empty());
        assert!(page.next_cursor.is_none());
    }

    fn export(c: &Campaign) -> Value {
        serde_json::to_value(campaign_stats(c)).unwrap()
    }

    #[test]
    fn seed000_imports_and_exports_unchanged() {
        let (c, report) = imported(&value000());
        assert_eq!(report.regions_adopted, ["us-west2"]);
        assert_eq!(report.builds_adopted, 2);
        assert_eq!(report.unattributed_builds, 2);
        assert_eq!(export(&c), value000());
    }

    #[test]
    fn seed001_imports_and_exports_its_figures() {
        let v: Value = serde_json::from_str(SEED001).unwrap();
        let (c, _) = imported(&v);
        let out = export(&c);
        for (name, region) in v["regions"].as_object().unwrap() {
            for (field, value) in region.as_object().unwrap() {
                assert_eq!(&out["regions"][name][field], value, "{name}.{field}");
            }
            assert_eq!(
                out["regions"][name]["last_fatigue_reason_code"],
                Value::Null
            );
        }
        for field in ["campaign_start", "last_updated", "total_builds_all_regions"] {
            assert_eq!(out[field], v[field], "{field}");
        }
    }

    #[test]
    fn legacy_file_is_migrated_on_import() {
        let mut v: Value = serde_json::from_str(SEED001).unwrap();
        let r = v["regions"]["asia-northeast1"].as_object_mut().unwrap();
        let reason = r.remove("last_fatigue_reason").unwrap();
        let time = r.remove("last_fatigue_time").unwrap();
        r.insert("fatigue_reason".into(), reason);
        r.insert("fatigue_time".into(), time);
        let (c, _) = imported(&v);
        let out = export(&c);
        let asia = &out["regions"]["asia-northeast1"];
        assert_eq!(asia["last_fatigue_reason"], json!("Worker pool timeout"));
        assert_eq!(asia["last_fatigue_time"], json!(1763023288.0));
        assert_eq!(asia["last_fatigue_reason_code"], Value::Null);
        assert!(asia.get("fatigue_reason").is_none());
    }

    #[test]
    fn importing_twice_changes_nothing() {
        let cfg = RegionConfig::default();
        let (mut c, _) = imported(&value000());
        let plan = plan_import(&doc(&value000()), &c);
        assert!(plan.report.regions_adopted.is_empty());
        assert_eq!(plan.report.regions_merged, ["us-west2"]);
        assert_eq!(
            (plan.report.builds_added, plan.report.builds_skipped),
            (0, 2)
        );
        apply_import(&mut c, &plan, &cfg);
        assert_eq!(export(&c), value000());
    }

    #[test]
    fn new_builds_add_to_an_imported_region() {
        let cfg = RegionConfig::default();
        let (mut c, _) = imported(&value000());
        let mut b: BuildRecord =
            serde_json::from_value(value000()["regions"]["us-west2"]["recent_builds"][1].clone())
                .unwrap();
        b.build_id = "new-1".into();
        b.region = "us-west2".into();
        b.timestamp = 1763031000.0;
        b.success = true;
        b.failed_step = None;
        b.error = None;
        b.duration_minutes = Some(10.0);
        assert_eq!(c.apply_build(&b, &cfg), Applied::New);
        let dup = serde_json::from_value::<BuildRecord>(
            value000()["regions"]["us-west2"]["recent_builds"][0].clone(),
        )
        .map(|mut d| {
            d.region = "us-west2".into();
            d
        })
        .unwrap();
        assert_eq!(c.apply_build(&dup, &cfg), Applied::Duplicate);

        let s = campaign_stats(&c);
        let r = &s.regions["us-west2"];
        assert_eq!((r.total_builds, r.successes, r.failures), (46, 43, 3));
        assert_eq!(r.success_rate, 93.5);
        assert_eq!(r.current_streak, 13);
        assert_eq!(r.total_duration_minutes, 572.5);
        assert_eq!(r.avg_duration_minutes, 12.45);
        assert_eq!(r.last_used, Some(1763031000.0));
        assert_eq!(
            r.last_error.as_deref(),
            Some("Docker layer pull timeout (step 45/72)")
        );
        let ids: Vec<_> = r
            .recent_builds
            .iter()
            .map(|b| b.build_id.as_str())
            .collect();
        assert_eq!(ids, ["new-1", "abc123-xyz789", "def456-uvw123"]);
        assert_eq!(s.total_builds_all_regions, 48);
        assert_eq!(s.last_updated, Some(1763031000.0));

        // the same state from the persisted parts
        let again = recompute(c.baselines(), &[b.clone(), dup, b], &[], &cfg);
        assert_eq!(again, c);
    }

    #[test]
    fn a_file_merges_into_a_tracked_region_without_duplicates() {
        let cfg = RegionConfig::default();
        let mut c = Campaign::new();
        let mut known: BuildRecord =
            serde_json::from_value(value000()["regions"]["us-west2"]["recent_builds"][0].clone())
                .unwrap();
        known.region = "us-west2".into();
        c.apply_build(&known, &cfg);
        let plan = plan_import(&doc(&value000()), &c);
        assert_eq!(plan.report.regions_merged, ["us-west2"]);
        assert_eq!(
            (plan.report.builds_added, plan.report.builds_skipped),
            (1, 1)
        );
        assert_eq!(plan.report.unattributed_builds, 0);
        apply_import(&mut c, &plan, &cfg);
        let r = &campaign_stats(&c).regions["us-west2"];
        assert_eq!(r.total_builds, 2);
        assert_eq!(r.failures, 2);
        assert_eq!(r.current_streak, -2);
        assert_eq!(r.fatigue_incidents, 1);
        assert_eq!(
            r.last_error.as_deref(),
            Some("Build stuck in QUEUED for 45 minutes")
        );
        assert_eq!(r.last_fatigue_reason_code.as_deref(), Some("queue-timeout"));
    }

    #[test]
    fn a_build_listed_twice_in_a_file_is_adopted_once() {
        let mut v = value000();
        let first = v["regions"]["us-west2"]["recent_builds"][0].clone();
        v["regions"]["us-west2"]["recent_builds"]
            .as_array_mut()
            .unwrap()
            .push(first);
        let (c, report) = imported(&v);
        assert_eq!((report.builds_adopted, report.builds_skipped), (2, 1));
        assert_eq!(c.region("us-west2").unwrap().recent_builds().count(), 2);
    }

    #[test]
    fn baselines_round_trip_through_json() {
        let (c, _) = imported(&value000());
        let text = serde_json::to_string(c.baselines()).unwrap();
        let back = serde_json::from_str(&text).unwrap();
        let cfg = RegionConfig::default();
        assert_eq!(Campaign::from_baselines(&back, &cfg), c);
    }
}
