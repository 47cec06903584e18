//! Region insights (`lull.v1.regions.insights`, seed 001 "Key Insights" and
//! "Future Use Cases"): best, problematic and fastest regions, the champion
//! badges, success-rate trends, cost per success and fatigue counts in a window.
//!
//! Rules (docs/regions.md): lists and badges consider regions with at least
//! `insights_min_builds` builds that are not outlawed; a region is
//! problematic when outlawed, resting, or under
//! `problematic_success_rate_below` percent success. Trends compare the last
//! `trend_window_days` with the same span before, from hourly buckets.
//! Lists that would name every region hold at most `insights_list_max`
//! (the most relevant ones; `fatigue.total` still counts every region).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use lull_proto::msg::region::{
    Badge, BadgeKind, CostEntry, FatigueCount, FatigueWindow, ProblemRegion, RegionInsights,
    RegionSummary, RegionTrend, SpeedEntry, Trend, WindowStats,
};

use super::aggregate::{HourBucket, RegionAggregate};
use super::campaign::Campaign;
use super::fatigue::{region_health, Pardon, RegionConfig, RegionHealth};

const HOUR: f64 = 3600.0;
const DAY: f64 = 86_400.0;

/// One region as the insights see it.
struct View<'a> {
    name: &'a str,
    agg: &'a RegionAggregate,
    health: RegionHealth,
}

impl View<'_> {
    fn outlawed(&self) -> bool {
        self.health.outlaw.is_some()
    }

    fn competes(&self, cfg: &RegionConfig) -> bool {
        !self.outlawed() && self.agg.total_builds() >= cfg.insights_min_builds
    }

    fn summary(&self) -> RegionSummary {
        RegionSummary {
            region: self.name.to_string(),
            success_rate: self.agg.success_rate(),
            successes: self.agg.successes(),
            total_builds: self.agg.total_builds(),
            current_streak: self.agg.current_streak(),
            avg_duration_minutes: self.agg.avg_duration_minutes().unwrap_or(0.0),
            fatigue_incidents: self.agg.fatigue_incidents(),
            state: self.health.state,
        }
    }
}

/// All insights at `now`; `fatigue_window_hours` overrides the configured window.
pub fn insights(
    campaign: &Campaign,
    pardons: &BTreeMap<String, Pardon>,
    cfg: &RegionConfig,
    now: f64,
    fatigue_window_hours: Option<f64>,
) -> RegionInsights {
    let views: Vec<View> = campaign
        .regions()
        .map(|(name, agg)| View {
            name,
            agg,
            health: region_health(agg, pardons.get(name), cfg, now),
        })
        .collect();
    let speed = speed_champions(&views, cfg);
    let max = cfg.insights_list_max.max(1);
    let mut problematic = problematic_regions(&views, cfg);
    problematic.truncate(max);
    let mut cost = cost_per_success(&views);
    cost.truncate(max);
    let mut fatigue = fatigue_window(&views, cfg, now, fatigue_window_hours);
    fatigue.regions.truncate(max);
    RegionInsights {
        generated_at: now,
        best: best_regions(&views, cfg),
        problematic,
        badges: badges(&views, speed.first(), cfg),
        speed_champions: speed,
        trends: most_changed(trends(&views, cfg, now), max),
        cost_per_success: cost,
        fatigue,
    }
}

/// At most `max` trends, by region name: when there are more, the called
/// ones (IMPROVING, DECLINING) and then the largest changes are kept.
fn most_changed(mut trends: Vec<RegionTrend>, max: usize) -> Vec<RegionTrend> {
    if trends.len() > max {
        let change = |t: &RegionTrend| t.delta_success_rate.map_or(-1.0, f64::abs);
        trends.sort_by(|a, b| {
            let called = |t: &RegionTrend| t.enough_data && t.trend != Trend::Stable;
            called(b)
                .cmp(&called(a))
                .then(change(b).total_cmp(&change(a)))
                .then(a.region.cmp(&b.region))
        });
        trends.truncate(max);
        trends.sort_by(|a, b| a.region.cmp(&b.region));
    }
    trends
}

fn best_regions(views: &[View], cfg: &RegionConfig) -> Vec<RegionSummary> {
    let mut best: Vec<&View> = views
        .iter()
        .filter(|v| v.competes(cfg) && problems(v, cfg).is_empty())
        .collect();
    best.sort_by(|a, b| {
        by_reliability(a, b)
            .then(by_speed(a, b))
            .then(a.name.cmp(b.name))
    });
    best.iter()
        .take(cfg.insights_top_n)
        .map(|v| v.summary())
        .collect()
}

/// Higher success rate first, then more successes, then the longer streak.
fn by_reliability(a: &View, b: &View) -> Ordering {
    b.agg
        .success_rate()
        .total_cmp(&a.agg.success_rate())
        .then(b.agg.successes().cmp(&a.agg.successes()))
        .then(b.agg.current_streak().cmp(&a.agg.current_streak()))
}

/// Lower average duration first (regions without builds last).
fn by_speed(a: &View, b: &View) -> Ordering {
    let d = |v: &View| v.agg.avg_duration_minutes().unwrap_or(f64::INFINITY);
    d(a).total_cmp(&d(b))
}

/// Why a region is problematic (empty: it is not).
fn problems(v: &View, cfg: &RegionConfig) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(o) = &v.health.outlaw {
        out.push(format!("OUTLAWED: {}", o.reason));
    }
    if let (Some(t), state) = (v.health.fatigue.until, v.health.fatigue.state) {
        out.push(format!("{} until {t:.0}", state.as_str()));
    }
    let rate = v.agg.success_rate();
    if v.agg.total_builds() > 0 && rate < cfg.problematic_success_rate_below {
        out.push(format!(
            "{rate}% success ({}/{}) under {}%",
            v.agg.successes(),
            v.agg.total_builds(),
            cfg.problematic_success_rate_below
        ));
    }
    out
}

fn problematic_regions(views: &[View], cfg: &RegionConfig) -> Vec<ProblemRegion> {
    let mut list: Vec<(&View, Vec<String>)> = views
        .iter()
        .map(|v| (v, problems(v, cfg)))
        .filter(|(_, p)| !p.is_empty())
        .collect();
    list.sort_by(|(a, _), (b, _)| {
        b.health
            .state
            .cmp(&a.health.state)
            .then(a.agg.success_rate().total_cmp(&b.agg.success_rate()))
            .then(a.name.cmp(b.name))
    });
    list.into_iter()
        .map(|(v, reasons)| ProblemRegion {
            summary: v.summary(),
            outlawed: v.outlawed(),
            reasons,
        })
        .collect()
}

fn speed_champions(views: &[View], cfg: &RegionConfig) -> Vec<SpeedEntry> {
    let mut fast: Vec<&View> = views.iter().filter(|v| v.competes(cfg)).collect();
    fast.sort_by(|a, b| by_speed(a, b).then(a.name.cmp(b.name)));
    fast.iter()
        .take(cfg.insights_top_n)
        .map(|v| SpeedEntry {
            region: v.name.to_string(),
            avg_duration_minutes: v.agg.avg_duration_minutes().unwrap_or(0.0),
            fastest_minutes: v.agg.fastest_minutes(),
            total_builds: v.agg.total_builds(),
        })
        .collect()
}

fn badges(views: &[View], fastest: Option<&SpeedEntry>, cfg: &RegionConfig) -> Vec<Badge> {
    let mut out = Vec::new();
    if let Some(s) = fastest {
        let detail = format!("{}min avg", s.avg_duration_minutes);
        out.push(badge(
            BadgeKind::SpeedKing,
            &s.region,
            s.avg_duration_minutes,
            detail,
        ));
    }
    let reliable = views
        .iter()
        .filter(|v| v.competes(cfg))
        .min_by(|a, b| by_reliability(a, b).then(a.name.cmp(b.name)));
    if let Some(v) = reliable {
        let rate = v.agg.success_rate();
        let detail = format!(
            "{rate}% success ({}/{})",
            v.agg.successes(),
            v.agg.total_builds()
        );
        out.push(badge(BadgeKind::ReliabilityChampion, v.name, rate, detail));
    }
    let cheapest = views
        .iter()
        .filter(|v| v.competes(cfg))
        .filter_map(|v| v.agg.cost().per_success_usd().map(|c| (v, c)))
        .min_by(|(a, x), (b, y)| x.total_cmp(y).then(a.name.cmp(b.name)));
    if let Some((v, c)) = cheapest {
        let c = round4(c);
        out.push(badge(
            BadgeKind::CostLeader,
            v.name,
            c,
            format!("${c} per success"),
        ));
    }
    out
}

fn badge(kind: BadgeKind, region: &str, value: f64, detail: String) -> Badge {
    Badge {
        badge: kind,
        title: kind.title().to_string(),
        region: region.to_string(),
        value,
        detail,
    }
}

fn trends(views: &[View], cfg: &RegionConfig, now: f64) -> Vec<RegionTrend> {
    let span = cfg.trend_window_days * DAY;
    views
        .iter()
        .map(|v| {
            let recent = window_stats(v.agg.window(now - span, now + HOUR));
            let previous = window_stats(v.agg.window(now - 2.0 * span, now - span));
            trend_of(v.name, recent, previous, cfg)
        })
        .collect()
}

fn trend_of(
    name: &str,
    recent: WindowStats,
    previous: WindowStats,
    cfg: &RegionConfig,
) -> RegionTrend {
    let enough = recent.builds >= cfg.trend_min_builds.max(1)
        && previous.builds >= cfg.trend_min_builds.max(1);
    let delta = match (recent.success_rate, previous.success_rate) {
        (Some(r), Some(p)) => Some(((r - p) * 10.0).round() / 10.0),
        _ => None,
    };
    let trend = match delta {
        Some(d) if enough && d > cfg.trend_stable_band_pct => Trend::Improving,
        Some(d) if enough && d < -cfg.trend_stable_band_pct => Trend::Declining,
        _ => Trend::Stable,
    };
    RegionTrend {
        region: name.to_string(),
        trend,
        recent,
        previous,
        delta_success_rate: delta,
        enough_data: enough,
    }
}

fn window_stats(b: HourBucket) -> WindowStats {
    let n = b.builds as f64;
    WindowStats {
        builds: b.builds,
        successes: b.successes,
        success_rate: (b.builds > 0).then(|| (b.successes as f64 * 1000.0 / n).round() / 10.0),
        avg_duration_minutes: (b.builds > 0)
            .then(|| (b.duration_micro as f64 / 1e6 / n * 100.0).round() / 100.0),
    }
}

fn cost_per_success(views: &[View]) -> Vec<CostEntry> {
    let mut out: Vec<CostEntry> = views
        .iter()
        .filter(|v| v.agg.cost().builds > 0)
        .map(|v| {
            let c = v.agg.cost();
            CostEntry {
                region: v.name.to_string(),
                total_cost_usd: round4(c.total_usd()),
                costed_builds: c.builds,
                costed_successes: c.successes,
                cost_per_success_usd: c.per_success_usd().map(round4),
            }
        })
        .collect();
    let key = |e: &CostEntry| e.cost_per_success_usd.unwrap_or(f64::INFINITY);
    out.sort_by(|a, b| key(a).total_cmp(&key(b)).then(a.region.cmp(&b.region)));
    out
}

fn fatigue_window(
    views: &[View],
    cfg: &RegionConfig,
    now: f64,
    hours: Option<f64>,
) -> FatigueWindow {
    let max_hours = cfg.history_secs() / HOUR;
    let window_hours = hours
        .unwrap_or(cfg.fatigue_window_hours)
        .clamp(0.0, max_hours);
    let since = now - window_hours * HOUR;
    let mut regions: Vec<FatigueCount> = views
        .iter()
        .map(|v| {
            let incidents = v.agg.fatigue_marks().filter(|m| m.time() > since).count() as u64;
            let (reason, code, time) = v.agg.last_fatigue();
            FatigueCount {
                region: v.name.to_string(),
                incidents,
                total_incidents: v.agg.fatigue_incidents(),
                last_fatigue_reason: reason,
                last_fatigue_reason_code: code,
                last_fatigue_time: time,
                state: v.health.state,
                until: v.health.until,
            }
        })
        .filter(|c| c.incidents > 0 || c.total_incidents > 0)
        .collect();
    regions.sort_by(|a, b| {
        b.incidents
            .cmp(&a.incidents)
            .then(b.total_incidents.cmp(&a.total_incidents))
            .then(a.region.cmp(&b.region))
    });
    FatigueWindow {
        window_hours,
        since,
        total: regions.iter().map(|c| c.incidents).sum(),
        regions,
    }
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_proto::msg::region::{BuildFatigue, BuildRecord, FatigueEventReport, FatigueType};

    const NOW: f64 = 1_763_026_000.0;

    fn build(region: &str, id: &str, t: f64, ok: bool, minutes: f64, cost: f64) -> BuildRecord {
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
            spot_price_per_hour: None,
            cost_usd: Some(cost),
            error: None,
            timeout_reason: None,
            fatigues: vec![],
        }
    }

    fn fatigue(t: f64) -> BuildFatigue {
        BuildFatigue {
            fatigue_reason: "Worker pool timeout".into(),
            fatigue_reason_code: Some("queue-timeout".into()),
            fatigue_time: t,
            fatigue_duration_hours: None,
            fatigue_type: FatigueType::Fatigued,
        }
    }

    /// Adds `outcomes` to `region`, one build per hour ending `hours_ago` hours before NOW.
    fn add(
        c: &mut Campaign,
        region: &str,
        hours_ago: f64,
        outcomes: &[bool],
        minutes: f64,
        cost: f64,
    ) {
        let cfg = RegionConfig::default();
        for (i, ok) in outcomes.iter().enumerate() {
            let t = NOW - (hours_ago + i as f64) * HOUR;
            let id = format!("{region}-{hours_ago}-{i}");
            c.apply_build(&build(region, &id, t, *ok, minutes, cost), &cfg);
        }
    }

    fn fleet() -> Campaign {
        let cfg = RegionConfig::default();
        let mut c = Campaign::new();
        let nine_of_ten = [true, true, true, true, false, true, true, true, true, true];
        add(&mut c, "us-west2", 30.0, &nine_of_ten, 12.5, 2.0);
        add(&mut c, "europe-north1", 30.0, &[true; 5], 9.5, 3.0);
        let seven_of_ten = [
            true, false, true, false, true, true, false, true, true, true,
        ];
        add(&mut c, "us-central1", 30.0, &seven_of_ten, 11.0, 1.0);
        for i in 0..5 {
            let t = NOW - 20.0 * 86_400.0 - i as f64 * HOUR;
            let mut b = build("asia-northeast1", &format!("a{i}"), t, false, 45.0, 6.0);
            if i < 4 {
                b.fatigues = vec![fatigue(t)];
            }
            c.apply_build(&b, &cfg);
        }
        let beacon = FatigueEventReport {
            event_id: "beacon-1".into(),
            region: "us-central1".into(),
            fatigue_reason: "Pool creation timeout".into(),
            fatigue_reason_code: Some("beacon-timeout".into()),
            fatigue_time: NOW - HOUR,
            fatigue_duration_hours: None,
            fatigue_type: FatigueType::Fatigued,
            error_message: None,
        };
        c.apply_fatigue_event(&beacon, &cfg);
        c
    }

    fn run(c: &Campaign, window: Option<f64>) -> RegionInsights {
        insights(c, &BTreeMap::new(), &RegionConfig::default(), NOW, window)
    }

    fn names<T>(list: &[T], f: impl Fn(&T) -> &str) -> Vec<String> {
        list.iter().map(|x| f(x).to_string()).collect()
    }

    #[test]
    fn best_and_problematic_regions() {
        let i = run(&fleet(), None);
        assert_eq!(names(&i.best, |s| &s.region), ["europe-north1", "us-west2"]);
        assert_eq!(i.best[1].success_rate, 90.0);
        assert_eq!(i.best[1].current_streak, 4);
        let p = names(&i.problematic, |p| &p.summary.region);
        assert_eq!(p, ["asia-northeast1", "us-central1"]);
        let asia = &i.problematic[0];
        assert!(asia.outlawed);
        assert_eq!(
            asia.summary.state,
            lull_proto::msg::region::RegionState::Outlawed
        );
        assert!(
            asia.reasons[0].starts_with("OUTLAWED: 4 fatigue incidents"),
            "{:?}",
            asia.reasons
        );
        let central = &i.problematic[1];
        assert!(!central.outlawed);
        assert_eq!(central.reasons.len(), 2, "{:?}", central.reasons);
        assert!(central.reasons[0].starts_with("FATIGUED until"));
        assert_eq!(central.reasons[1], "70% success (7/10) under 80%");
    }

    #[test]
    fn a_pardon_clears_the_outlaw_from_the_lists() {
        let c = fleet();
        let cfg = RegionConfig::default();
        let p = super::super::fatigue::pardon(c.region("asia-northeast1").unwrap(), NOW);
        let pardons = BTreeMap::from([("asia-northeast1".to_string(), p)]);
        let i = insights(&c, &pardons, &cfg, NOW, None);
        let asia = i
            .problematic
            .iter()
            .find(|p| p.summary.region == "asia-northeast1")
            .unwrap();
        assert!(!asia.outlawed);
        assert_eq!(asia.reasons, ["0% success (0/5) under 80%"]);
    }

    #[test]
    fn speed_champions_and_badges() {
        let i = run(&fleet(), None);
        let speed = names(&i.speed_champions, |s| &s.region);
        assert_eq!(
            speed,
            ["europe-north1", "us-central1", "us-west2"],
            "outlaws are left out"
        );
        let b: Vec<_> = i
            .badges
            .iter()
            .map(|b| (b.badge, b.region.as_str(), b.value))
            .collect();
        assert_eq!(
            b,
            [
                (BadgeKind::SpeedKing, "europe-north1", 9.5),
                (BadgeKind::ReliabilityChampion, "europe-north1", 100.0),
                (BadgeKind::CostLeader, "us-central1", round4(10.0 / 7.0)),
            ]
        );
        assert_eq!(i.badges[0].title, "Speed King");
        assert_eq!(i.badges[0].detail, "9.5min avg");
        assert_eq!(i.badges[1].detail, "100% success (5/5)");
    }

    #[test]
    fn cost_per_success_cheapest_first() {
        let i = run(&fleet(), None);
        let c: Vec<_> = i
            .cost_per_success
            .iter()
            .map(|e| (e.region.as_str(), e.cost_per_success_usd))
            .collect();
        assert_eq!(
            c,
            [
                ("us-central1", Some(round4(10.0 / 7.0))),
                ("us-west2", Some(round4(20.0 / 9.0))),
                ("europe-north1", Some(3.0)),
                ("asia-northeast1", None),
            ]
        );
        assert_eq!(i.cost_per_success[3].total_cost_usd, 30.0);
    }

    #[test]
    fn trends_compare_the_last_week_with_the_one_before() {
        let mut c = Campaign::new();
        let week = 7.0 * 24.0;
        add(
            &mut c,
            "better",
            week + 5.0,
            &[false, false, true, false],
            10.0,
            1.0,
        );
        add(&mut c, "better", 5.0, &[true, true, true, true], 10.0, 1.0);
        add(&mut c, "worse", week + 5.0, &[true, true, true], 10.0, 1.0);
        add(&mut c, "worse", 5.0, &[true, false, false], 10.0, 1.0);
        add(&mut c, "steady", week + 5.0, &[true, true, true], 10.0, 1.0);
        add(&mut c, "steady", 5.0, &[true, true, true], 10.0, 1.0);
        add(&mut c, "thin", week + 5.0, &[false], 10.0, 1.0);
        add(&mut c, "thin", 5.0, &[true, true, true], 10.0, 1.0);
        let i = run(&c, None);
        let t: Vec<_> = i
            .trends
            .iter()
            .map(|t| (t.region.as_str(), t.trend, t.enough_data))
            .collect();
        assert_eq!(
            t,
            [
                ("better", Trend::Improving, true),
                ("steady", Trend::Stable, true),
                ("thin", Trend::Stable, false),
                ("worse", Trend::Declining, true),
            ]
        );
        let better = &i.trends[0];
        assert_eq!((better.recent.builds, better.recent.successes), (4, 4));
        assert_eq!(better.previous.success_rate, Some(25.0));
        assert_eq!(better.delta_success_rate, Some(75.0));
        assert_eq!(better.recent.avg_duration_minutes, Some(10.0));
    }

    #[test]
    fn fatigue_counts_in_a_window() {
        let c = fleet();
        let i = run(&c, None);
        assert_eq!(i.fatigue.window_hours, 168.0);
        assert_eq!(i.fatigue.since, NOW - 168.0 * HOUR);
        let f: Vec<_> = i
            .fatigue
            .regions
            .iter()
            .map(|f| (f.region.as_str(), f.incidents, f.total_incidents))
            .collect();
        assert_eq!(f, [("us-central1", 1, 1), ("asia-northeast1", 0, 4)]);
        assert_eq!(i.fatigue.total, 1);
        assert_eq!(
            i.fatigue.regions[0].last_fatigue_reason_code.as_deref(),
            Some("beacon-timeout")
        );
        assert_eq!(i.fatigue.regions[0].until, Some(NOW + 3.0 * HOUR));

        let month = run(&c, Some(21.0 * 24.0));
        assert_eq!(month.fatigue.total, 5);
        let short = run(&c, Some(0.5));
        assert_eq!(short.fatigue.total, 0);
        let clamped = run(&c, Some(10_000.0));
        assert_eq!(clamped.fatigue.window_hours, 30.0 * 24.0);
    }

    #[test]
    fn lists_of_every_region_are_bounded() {
        let c = fleet();
        let whole = run(&c, None);
        let cfg = RegionConfig {
            insights_list_max: 1,
            ..RegionConfig::default()
        };
        let i = insights(&c, &BTreeMap::new(), &cfg, NOW, None);
        assert_eq!(i.problematic, whole.problematic[..1]);
        assert_eq!(i.cost_per_success, whole.cost_per_success[..1]);
        assert_eq!(i.fatigue.regions, whole.fatigue.regions[..1]);
        assert_eq!(i.fatigue.total, whole.fatigue.total);
        assert_eq!(i.trends.len(), 1);
        assert!(whole.trends.len() > 1);
        let called = whole
            .trends
            .iter()
            .filter(|t| t.enough_data && t.trend != Trend::Stable)
            .count();
        if called > 0 {
            assert_ne!(i.trends[0].trend, Trend::Stable, "{:?}", i.trends);
        }
    }

    #[test]
    fn an_empty_campaign_has_empty_insights() {
        let i = run(&Campaign::new(), None);
        assert!(i.best.is_empty() && i.badges.is_empty() && i.trends.is_empty());
        assert_eq!(i.fatigue.total, 0);
        assert_eq!(i.generated_at, NOW);
    }
}
