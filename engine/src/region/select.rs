//! Region selection (`lull.v1.regions.select`, seed 001 "Intelligent MECHA
//! Selection"): rank the eligible candidates by a weighted score of price,
//! success and speed, and list the others with why and until when.
//!
//! Components, each in `0..=1`:
//! - price: cheapest eligible latest `spot_price_per_hour` / this region's;
//! - success: `(successes + prior/2) / (builds + prior)` (a Laplace-smoothed
//!   success rate, `prior` = `success_prior_builds`);
//! - speed: fastest eligible `avg_duration_minutes` / this region's.
//!
//! An unknown price or speed scores `unknown_component_score`. The score is
//! the weighted mean, rounded to 4 decimals; ties go to the region name.

use std::collections::{BTreeMap, BTreeSet};

use lull_proto::msg::region::{
    ComponentScores, ExcludedRegion, ExclusionCode, RankedRegion, RegionSelectReply,
    RegionSelectRequest, RegionState, SelectWeights,
};

use super::aggregate::RegionAggregate;
use super::campaign::Campaign;
use super::fatigue::{region_health, Pardon, RegionConfig, RegionHealth};

/// Ranks `req.candidates` (every known region when empty) at `now`.
pub fn select(
    req: &RegionSelectRequest,
    campaign: &Campaign,
    pardons: &BTreeMap<String, Pardon>,
    cfg: &RegionConfig,
    now: f64,
) -> RegionSelectReply {
    let weights = req.weights.unwrap_or(cfg.default_weights);
    let mut eligible: Vec<(&str, Option<&RegionAggregate>)> = Vec::new();
    let mut excluded = Vec::new();
    for name in candidate_names(req, campaign) {
        let agg = campaign.region(name);
        match agg.map(|a| region_health(a, pardons.get(name), cfg, now)) {
            None if !cfg.allow_unknown_regions => excluded.push(unknown(name)),
            Some(h) if h.state != RegionState::Healthy => excluded.push(exclusion(name, &h, now)),
            _ => eligible.push((name, agg)),
        }
    }
    excluded.sort_by(|a, b| a.region.cmp(&b.region));
    RegionSelectReply {
        ranked: rank(&eligible, &weights, cfg),
        excluded,
        weights,
        evaluated_at: now,
    }
}

/// The candidates, de-duplicated in request order, or every known region.
fn candidate_names<'a>(req: &'a RegionSelectRequest, campaign: &'a Campaign) -> Vec<&'a str> {
    if req.candidates.is_empty() {
        return campaign.regions().map(|(n, _)| n.as_str()).collect();
    }
    let mut seen = BTreeSet::new();
    req.candidates
        .iter()
        .map(String::as_str)
        .filter(|c| seen.insert(*c))
        .collect()
}

fn rank(
    eligible: &[(&str, Option<&RegionAggregate>)],
    w: &SelectWeights,
    cfg: &RegionConfig,
) -> Vec<RankedRegion> {
    let price = |a: Option<&RegionAggregate>| a.and_then(RegionAggregate::latest_spot_price);
    let speed = |a: Option<&RegionAggregate>| a.and_then(RegionAggregate::avg_duration_minutes);
    let cheapest = min_positive(eligible.iter().filter_map(|(_, a)| price(*a)));
    let fastest = min_positive(eligible.iter().filter_map(|(_, a)| speed(*a)));
    let mut ranked: Vec<RankedRegion> = eligible
        .iter()
        .map(|(name, agg)| {
            let scores = ComponentScores {
                price: ratio_score(cheapest, price(*agg), cfg),
                success: success_score(*agg, cfg),
                speed: ratio_score(fastest, speed(*agg), cfg),
            };
            RankedRegion {
                rank: 0,
                region: name.to_string(),
                score: weighted(&scores, w),
                scores,
                spot_price_per_hour: price(*agg),
                success_rate: agg.map_or(0.0, RegionAggregate::success_rate),
                avg_duration_minutes: speed(*agg),
                total_builds: agg.map_or(0, RegionAggregate::total_builds),
            }
        })
        .collect();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.region.cmp(&b.region)));
    for (i, r) in ranked.iter_mut().enumerate() {
        r.rank = u32::try_from(i + 1).unwrap_or(u32::MAX);
    }
    ranked
}

fn min_positive(values: impl Iterator<Item = f64>) -> Option<f64> {
    values.filter(|v| *v > 0.0).reduce(f64::min)
}

/// `best / value` (1 for the best); a free or instant region scores 1.
fn ratio_score(best: Option<f64>, value: Option<f64>, cfg: &RegionConfig) -> f64 {
    match (best, value) {
        (_, Some(v)) if v <= 0.0 => 1.0,
        (Some(b), Some(v)) => round4(b / v),
        _ => cfg.unknown_component_score,
    }
}

fn success_score(agg: Option<&RegionAggregate>, cfg: &RegionConfig) -> f64 {
    let (s, n) = agg.map_or((0, 0), |a| (a.successes(), a.total_builds()));
    let prior = cfg.success_prior_builds;
    let denom = n as f64 + prior;
    if denom <= 0.0 {
        return cfg.unknown_component_score;
    }
    round4((s as f64 + prior / 2.0) / denom)
}

fn weighted(s: &ComponentScores, w: &SelectWeights) -> f64 {
    let total = w.total();
    if total <= 0.0 {
        return 0.0;
    }
    round4((s.price * w.price + s.success * w.success + s.speed * w.speed) / total)
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

fn unknown(name: &str) -> ExcludedRegion {
    ExcludedRegion {
        region: name.to_string(),
        code: ExclusionCode::Unknown,
        reason: "no builds or fatigue events recorded for this region".into(),
        until: None,
    }
}

fn exclusion(name: &str, h: &RegionHealth, now: f64) -> ExcludedRegion {
    let (code, reason) = match (&h.outlaw, h.state) {
        (Some(v), _) => (
            ExclusionCode::Outlawed,
            format!("outlawed: {}; excluded until pardoned", v.reason),
        ),
        (None, state) => {
            let code = if state == RegionState::Exhausted {
                ExclusionCode::Exhausted
            } else {
                ExclusionCode::Fatigued
            };
            (code, resting_reason(state, h, now))
        }
    };
    ExcludedRegion {
        region: name.to_string(),
        code,
        reason,
        until: h.until,
    }
}

fn resting_reason(state: RegionState, h: &RegionHealth, now: f64) -> String {
    let left = h.until.map_or(0.0, |u| u - now);
    let mut s = format!(
        "{} until {} ({} left)",
        state.as_str().to_lowercase(),
        h.until
            .map_or_else(|| "?".to_string(), |u| format!("{u:.0}")),
        human_duration(left)
    );
    if let Some(code) = &h.fatigue.reason_code {
        s.push_str(&format!(", {code}"));
    }
    if let Some(reason) = &h.fatigue.reason {
        s.push_str(&format!(": {reason}"));
    }
    s
}

/// `3h 12m`, `45m`, `2d 4h`.
pub fn human_duration(secs: f64) -> String {
    let mins = (secs.max(0.0) / 60.0).ceil() as u64;
    let (d, h, m) = (mins / 1440, (mins % 1440) / 60, mins % 60);
    match (d, h) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_proto::msg::region::{BuildFatigue, BuildRecord, FatigueType};

    const T0: f64 = 1_763_026_000.0;

    fn build(region: &str, id: &str, t: f64, ok: bool, minutes: f64, price: f64) -> BuildRecord {
        BuildRecord {
            timestamp: t,
            build_id: id.into(),
            region: region.into(),
            build_type: None,
            machine_type: None,
            success: ok,
            status: None,
            duration_seconds: None,
            duration_minutes: Some(minutes),
            queue_wait_seconds: None,
            queue_wait_minutes: None,
            working_seconds: None,
            total_steps: None,
            failed_step: None,
            spot_price_per_hour: Some(price),
            cost_usd: None,
            error: None,
            timeout_reason: None,
            fatigues: vec![],
        }
    }

    fn fatigue(t: f64) -> BuildFatigue {
        BuildFatigue {
            fatigue_reason: "Queue timeout - 45min QUEUED".into(),
            fatigue_reason_code: Some("queue-timeout".into()),
            fatigue_time: t,
            fatigue_duration_hours: Some(4.0),
            fatigue_type: FatigueType::Fatigued,
        }
    }

    fn req(c: &[&str], w: Option<SelectWeights>) -> RegionSelectRequest {
        RegionSelectRequest {
            candidates: c.iter().map(|s| s.to_string()).collect(),
            weights: w,
        }
    }

    /// cheap: $4/h, 20 min, 2/3 ok; fast: $8/h, 10 min, 3/3 ok.
    fn campaign(cfg: &RegionConfig) -> Campaign {
        let mut c = Campaign::new();
        for (i, ok) in [true, true, false].into_iter().enumerate() {
            let t = T0 + i as f64 * 60.0;
            c.apply_build(&build("cheap", &format!("c{i}"), t, ok, 20.0, 4.0), cfg);
            c.apply_build(&build("fast", &format!("f{i}"), t, true, 10.0, 8.0), cfg);
        }
        c
    }

    #[test]
    fn weights_decide_the_ranking() {
        let cfg = RegionConfig::default();
        let c = campaign(&cfg);
        let none = BTreeMap::new();
        let price_only = SelectWeights {
            price: 1.0,
            ..Default::default()
        };
        let r = select(
            &req(&["cheap", "fast"], Some(price_only)),
            &c,
            &none,
            &cfg,
            T0 + 3600.0,
        );
        assert_eq!(r.ranked[0].region, "cheap");
        assert_eq!(r.ranked[0].scores.price, 1.0);
        assert_eq!(r.ranked[1].scores.price, 0.5);
        assert_eq!(r.ranked[1].rank, 2);
        let speed = SelectWeights {
            speed: 1.0,
            success: 1.0,
            ..Default::default()
        };
        let r = select(
            &req(&["cheap", "fast"], Some(speed)),
            &c,
            &none,
            &cfg,
            T0 + 3600.0,
        );
        assert_eq!(r.ranked[0].region, "fast");
        assert_eq!(r.ranked[0].scores.speed, 1.0);
        assert_eq!(r.ranked[1].scores.speed, 0.5);
        // (2 + 1) / (3 + 2) and (3 + 1) / (3 + 2)
        assert_eq!(r.ranked[1].scores.success, 0.6);
        assert_eq!(r.ranked[0].scores.success, 0.8);
        assert_eq!(r.ranked[0].score, 0.9);
        assert_eq!(r.weights, speed);
    }

    #[test]
    fn ties_go_to_the_name_and_defaults_apply() {
        let cfg = RegionConfig::default();
        let mut c = Campaign::new();
        c.apply_build(&build("b-region", "1", T0, true, 10.0, 5.0), &cfg);
        c.apply_build(&build("a-region", "2", T0, true, 10.0, 5.0), &cfg);
        let r = select(&req(&[], None), &c, &BTreeMap::new(), &cfg, T0);
        let names: Vec<_> = r.ranked.iter().map(|r| r.region.as_str()).collect();
        assert_eq!(names, ["a-region", "b-region"]);
        assert_eq!(r.weights, cfg.default_weights);
        assert_eq!(r.ranked[0].score, r.ranked[1].score);
    }

    #[test]
    fn fatigued_exhausted_outlawed_and_unknown_are_excluded() {
        let cfg = RegionConfig::default();
        let mut c = campaign(&cfg);
        let mut b = build("tired", "t1", T0, false, 45.0, 3.0);
        b.fatigues = vec![fatigue(T0)];
        c.apply_build(&b, &cfg);
        // five failures, four fatigues: outlawed
        for i in 0..5 {
            let mut b = build(
                "bad",
                &format!("x{i}"),
                T0 - 86_400.0 * 10.0 + i as f64,
                false,
                5.0,
                1.0,
            );
            if i < 4 {
                b.fatigues = vec![fatigue(b.timestamp)];
            }
            c.apply_build(&b, &cfg);
        }
        let now = T0 + 3600.0;
        let r = select(
            &req(&["fast", "tired", "bad", "nowhere", "fast"], None),
            &c,
            &BTreeMap::new(),
            &cfg,
            now,
        );
        assert_eq!(r.ranked.len(), 1);
        assert_eq!(r.ranked[0].region, "fast");
        let ex: Vec<_> = r
            .excluded
            .iter()
            .map(|e| (e.region.as_str(), e.code))
            .collect();
        assert_eq!(
            ex,
            [
                ("bad", ExclusionCode::Outlawed),
                ("nowhere", ExclusionCode::Unknown),
                ("tired", ExclusionCode::Fatigued)
            ]
        );
        let tired = &r.excluded[2];
        assert_eq!(tired.until, Some(T0 + 4.0 * 3600.0));
        assert_eq!(
            tired.reason,
            format!(
                "fatigued until {:.0} (3h 0m left), queue-timeout: Queue timeout - 45min QUEUED",
                T0 + 14_400.0
            )
        );
        assert_eq!(r.excluded[0].until, None);
        assert!(
            r.excluded[0].reason.contains("until pardoned"),
            "{}",
            r.excluded[0].reason
        );

        // a pardon re-admits the outlaw; the rest period expires by itself
        let p = BTreeMap::from([(
            "bad".to_string(),
            super::super::fatigue::pardon(c.region("bad").unwrap(), now),
        )]);
        let later = T0 + 5.0 * 3600.0;
        let r = select(&req(&["bad", "tired"], None), &c, &p, &cfg, later);
        assert_eq!(r.ranked.len(), 2);
        assert!(r.excluded.is_empty());
    }

    #[test]
    fn unknown_regions_can_be_allowed() {
        let cfg = RegionConfig {
            allow_unknown_regions: true,
            ..Default::default()
        };
        let c = campaign(&cfg);
        let r = select(&req(&["fast", "new"], None), &c, &BTreeMap::new(), &cfg, T0);
        let new = r.ranked.iter().find(|r| r.region == "new").unwrap();
        assert_eq!(
            new.scores,
            ComponentScores {
                price: 0.5,
                success: 0.5,
                speed: 0.5
            }
        );
        assert_eq!(new.total_builds, 0);
    }

    #[test]
    fn exhausted_regions_say_so() {
        let cfg = RegionConfig::default();
        let mut c = Campaign::new();
        let mut b = build("r", "1", T0, false, 5.0, 1.0);
        b.fatigues = vec![fatigue(T0), fatigue(T0 + 60.0)];
        c.apply_build(&b, &cfg);
        let r = select(
            &req(&["r"], None),
            &c,
            &BTreeMap::new(),
            &cfg,
            T0 + 10.0 * 3600.0,
        );
        assert_eq!(r.excluded[0].code, ExclusionCode::Exhausted);
        assert_eq!(r.excluded[0].until, Some(T0 + 60.0 + 24.0 * 3600.0));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(45.0 * 60.0), "45m");
        assert_eq!(human_duration(3.0 * 3600.0 + 12.0 * 60.0), "3h 12m");
        assert_eq!(human_duration(2.0 * 86_400.0 + 4.0 * 3600.0), "2d 4h");
        assert_eq!(human_duration(-5.0), "0m");
    }
}
