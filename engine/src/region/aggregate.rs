//! Incremental per-region aggregates of build records and fatigue events
//! (seeds 000 and 001), independent of arrival order and of duplicates.
//!
//! Every record has an [`OrderKey`]: its time (`timestamp`, or `fatigue_time`
//! for fatigues), then its id, then its index in the build's `fatigues[]`.
//! The aggregate is defined as if records were applied in key order:
//! - sums, counts, minimum and maximum are order-free; sums are kept in
//!   integer micro-units so float rounding cannot depend on the order;
//! - `last_*` fields keep the record with the greatest key;
//! - the streak keeps the *breaker* (the newest record whose outcome differs
//!   from the current run) and the keys of the run (records newer than the
//!   breaker). A late record older than the breaker changes nothing; a late
//!   record of the run's outcome joins the run; a late record of the other
//!   outcome becomes the breaker, and the run shrinks to the records newer
//!   than it. Memory is O(length of the current run);
//! - `recent_builds`, fatigue marks and hourly buckets are cut relative to
//!   the newest key they hold, so a late record below the cut is dropped by
//!   both paths alike.
//!
//! So applying records in any order equals
//! [`recompute`](crate::region::campaign::recompute) (the same rules applied
//! in key order), which the tests check on shuffled, duplicated input. A
//! [`Campaign`](crate::region::campaign::Campaign) holds all regions and
//! drops duplicates (same `build_id` or
//! `event_id`); a [`RegionAggregate`] trusts its caller to pass new records.
//! Imported history enters as a baseline: an existing region's summary that
//! new records are added to (see `campaign_json`).

use std::collections::BTreeMap;

use lull_proto::msg::region::{
    concise, BuildFatigue, BuildRecord, FatigueEventReport, FatigueType, RegionStats,
    LAST_ERROR_MAX_CHARS, LAST_FATIGUE_REASON_MAX_CHARS, RECENT_BUILDS_LIMIT,
};
use serde::{Deserialize, Serialize};

use super::config::RegionConfig;
pub use super::order::{FatigueMark, OrderKey};
use super::persist;

const MICRO: f64 = 1e6;
const HOUR: f64 = 3600.0;

/// Builds of one clock hour (for trends and windows).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourBucket {
    /// Builds.
    pub builds: u64,
    /// Successful builds.
    pub successes: u64,
    /// Sum of durations, micro-minutes.
    pub duration_micro: u64,
}

/// Cost of the builds whose cost is known (`cost_usd`, or spot price times duration).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostBasis {
    /// Sum of costs, micro-dollars.
    pub micro_usd: u64,
    /// Builds with a known cost.
    pub builds: u64,
    /// Successful builds among those.
    pub successes: u64,
}

impl CostBasis {
    /// Sum of costs, USD.
    pub fn total_usd(&self) -> f64 {
        from_micro(self.micro_usd)
    }

    /// Dollars per successful build (`None` without a success).
    pub fn per_success_usd(&self) -> Option<f64> {
        (self.successes > 0).then(|| self.total_usd() / self.successes as f64)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LastError {
    key: OrderKey,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LastFatigue {
    key: OrderKey,
    reason: Option<String>,
    code: Option<String>,
}

/// The current run of equal outcomes (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Streak {
    success: bool,
    len: u64,
    #[serde(with = "persist::pairs")]
    run: BTreeMap<OrderKey, u64>,
    breaker: Option<OrderKey>,
}

impl Streak {
    fn imported(streak: i64, total: u64, last_used: Option<f64>) -> Self {
        let len = streak.unsigned_abs();
        let mut run = BTreeMap::new();
        if len > 0 {
            run.insert(OrderKey::imported(last_used, 1), len);
        }
        Streak {
            success: streak > 0,
            len,
            run,
            breaker: (total > len).then(|| OrderKey::imported(last_used, 0)),
        }
    }

    fn add(&mut self, key: OrderKey, success: bool) {
        if self.breaker.as_ref().is_some_and(|b| key < *b) {
            return;
        }
        if self.len == 0 || success == self.success {
            self.success = success;
            self.len += 1;
            self.run.insert(key, 1);
            return;
        }
        let newer = self.run.split_off(&key);
        if newer.is_empty() {
            self.breaker = self.run.keys().next_back().cloned();
            self.run = BTreeMap::from([(key, 1)]);
            self.len = 1;
            self.success = success;
        } else {
            self.breaker = Some(key);
            self.len = newer.values().sum();
            self.run = newer;
        }
    }

    fn value(&self) -> i64 {
        let len = i64::try_from(self.len).unwrap_or(i64::MAX);
        if self.success {
            len
        } else {
            -len
        }
    }
}

/// One region's aggregate: the seed 001 figures plus what fatigue, selection
/// and insights need (fatigue marks, hourly buckets, cost, latest price).
///
/// Serializable (JSON-safe: maps keyed by [`OrderKey`] are written as lists
/// of pairs, `-inf` times as `null`) so the shell can persist it whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionAggregate {
    total_builds: u64,
    successes: u64,
    duration_micro: u64,
    queue_micro: u64,
    fastest: Option<f64>,
    slowest: Option<f64>,
    last_error: Option<LastError>,
    fatigue_incidents: u64,
    last_fatigue: Option<LastFatigue>,
    streak: Streak,
    last_used: Option<f64>,
    first_build: Option<f64>,
    newest: Option<f64>,
    #[serde(with = "persist::pairs")]
    recent: BTreeMap<OrderKey, BuildRecord>,
    #[serde(with = "persist::pairs")]
    marks: BTreeMap<OrderKey, FatigueMark>,
    hours: BTreeMap<i64, HourBucket>,
    cost: CostBasis,
    latest_price: Option<(OrderKey, f64)>,
}

impl RegionAggregate {
    /// An aggregate that starts from an imported region summary. Its
    /// `recent_builds` are already counted in the summary: they are kept
    /// for `recent_builds`, windows, cost and fatigue state, not counted again.
    pub fn from_baseline(region: &str, s: &RegionStats, cfg: &RegionConfig) -> Self {
        let mut a = RegionAggregate {
            total_builds: s.total_builds,
            successes: s.successes.min(s.total_builds),
            duration_micro: to_micro(s.total_duration_minutes),
            queue_micro: to_micro(s.total_queue_wait_minutes),
            fastest: s.fastest_minutes,
            slowest: s.slowest_minutes,
            last_error: s.last_error.as_ref().map(|t| LastError {
                key: OrderKey::imported(s.last_error_time, 0),
                text: concise(t, LAST_ERROR_MAX_CHARS),
            }),
            fatigue_incidents: s.fatigue_incidents,
            last_fatigue: imported_last_fatigue(s),
            streak: Streak::imported(s.current_streak, s.total_builds, s.last_used),
            last_used: s.last_used,
            newest: s.last_used,
            ..Default::default()
        };
        for b in &s.recent_builds {
            let mut b = b.clone();
            b.region = region.to_string();
            a.observe_build(&b, cfg);
        }
        if let Some(mark) = imported_mark(s, &a.marks) {
            a.add_mark(mark, cfg);
        }
        a
    }

    /// Adds a build this aggregate has not seen (the caller drops duplicates).
    pub fn apply_new_build(&mut self, b: &BuildRecord, cfg: &RegionConfig) {
        self.observe_build(b, cfg);
        self.count_build(b);
    }

    /// Adds a bare fatigue event this aggregate has not seen (scenario 2).
    pub fn apply_new_fatigue_event(&mut self, e: &FatigueEventReport, cfg: &RegionConfig) {
        let key = OrderKey::of_event(e);
        let f = e.as_fatigue();
        self.count_fatigue(key.clone(), &f);
        self.add_mark(FatigueMark::new(key, &f), cfg);
    }

    /// What every known build contributes, counted in the totals or not.
    fn observe_build(&mut self, b: &BuildRecord, cfg: &RegionConfig) {
        let key = OrderKey::of_build(b);
        self.touch(b.timestamp);
        self.first_build = Some(self.first_build.map_or(b.timestamp, |f| f.min(b.timestamp)));
        self.add_hour(b, cfg);
        self.add_cost(b);
        if let Some(p) = b.spot_price_per_hour {
            if self.latest_price.as_ref().is_none_or(|(k, _)| key > *k) {
                self.latest_price = Some((key.clone(), p));
            }
        }
        for (i, f) in b.fatigues.iter().enumerate() {
            let mark = FatigueMark::new(OrderKey::of_build_fatigue(b, i, f), f);
            self.add_mark(mark, cfg);
        }
        self.recent.insert(key, b.clone());
        while self.recent.len() > RECENT_BUILDS_LIMIT {
            self.recent.pop_first();
        }
    }

    /// What a build adds to the seed 001 figures.
    fn count_build(&mut self, b: &BuildRecord) {
        let key = OrderKey::of_build(b);
        let minutes = b.duration_minutes_value();
        self.total_builds += 1;
        self.successes += u64::from(b.success);
        self.duration_micro = self.duration_micro.saturating_add(to_micro(minutes));
        let queue = to_micro(b.queue_wait_minutes_value());
        self.queue_micro = self.queue_micro.saturating_add(queue);
        self.fastest = Some(self.fastest.map_or(minutes, |f| f.min(minutes)));
        self.slowest = Some(self.slowest.map_or(minutes, |s| s.max(minutes)));
        if !b.success && self.last_error.as_ref().is_none_or(|e| key > e.key) {
            self.last_error = Some(LastError {
                key: key.clone(),
                text: error_summary(b),
            });
        }
        for (i, f) in b.fatigues.iter().enumerate() {
            self.count_fatigue(OrderKey::of_build_fatigue(b, i, f), f);
        }
        self.streak.add(key, b.success);
        self.last_used = Some(self.last_used.map_or(b.timestamp, |u| u.max(b.timestamp)));
    }

    fn count_fatigue(&mut self, key: OrderKey, f: &BuildFatigue) {
        self.fatigue_incidents += 1;
        self.touch(f.fatigue_time);
        if self.last_fatigue.as_ref().is_none_or(|l| key > l.key) {
            self.last_fatigue = Some(LastFatigue {
                key,
                reason: Some(concise(&f.fatigue_reason, LAST_FATIGUE_REASON_MAX_CHARS)),
                code: f.fatigue_reason_code.clone(),
            });
        }
    }

    fn touch(&mut self, t: f64) {
        self.newest = Some(self.newest.map_or(t, |n| n.max(t)));
    }

    fn add_mark(&mut self, mark: FatigueMark, cfg: &RegionConfig) {
        self.touch(mark.time());
        self.marks.insert(mark.key.clone(), mark);
        if let Some(newest) = self.marks.keys().next_back().map(|k| k.time) {
            let cut = OrderKey::new(newest - cfg.history_secs(), "", 0);
            self.marks = self.marks.split_off(&cut);
        }
    }

    fn add_hour(&mut self, b: &BuildRecord, cfg: &RegionConfig) {
        let bucket = self.hours.entry(hour_of(b.timestamp)).or_default();
        bucket.builds += 1;
        bucket.successes += u64::from(b.success);
        bucket.duration_micro = bucket
            .duration_micro
            .saturating_add(to_micro(b.duration_minutes_value()));
        if let Some(newest) = self.hours.keys().next_back().copied() {
            let keep = (cfg.history_secs() / HOUR).ceil() as i64;
            self.hours = self.hours.split_off(&(newest - keep));
        }
    }

    fn add_cost(&mut self, b: &BuildRecord) {
        if let Some(c) = b.effective_cost_usd() {
            self.cost.micro_usd = self.cost.micro_usd.saturating_add(to_micro(c));
            self.cost.builds += 1;
            self.cost.successes += u64::from(b.success);
        }
    }

    /// The seed 001 region object with `recent_builds` (newest first, region
    /// left out as the map key names it).
    pub fn stats(&self) -> RegionStats {
        RegionStats {
            total_builds: self.total_builds,
            successes: self.successes,
            failures: self.total_builds - self.successes,
            success_rate: self.success_rate(),
            total_duration_minutes: from_micro(self.duration_micro),
            total_queue_wait_minutes: from_micro(self.queue_micro),
            avg_duration_minutes: self.avg_duration_minutes().unwrap_or(0.0),
            avg_queue_wait_minutes: avg2(self.queue_micro, self.total_builds).unwrap_or(0.0),
            fastest_minutes: self.fastest,
            slowest_minutes: self.slowest,
            last_error: self.last_error.as_ref().map(|e| e.text.clone()),
            last_error_time: self.last_error.as_ref().and_then(|e| e.key.real_time()),
            fatigue_incidents: self.fatigue_incidents,
            last_fatigue_reason: self.last_fatigue.as_ref().and_then(|l| l.reason.clone()),
            last_fatigue_reason_code: self.last_fatigue.as_ref().and_then(|l| l.code.clone()),
            last_fatigue_time: self.last_fatigue.as_ref().and_then(|l| l.key.real_time()),
            current_streak: self.streak.value(),
            last_used: self.last_used,
            recent_builds: self
                .recent_builds()
                .map(|b| BuildRecord {
                    region: String::new(),
                    ..b.clone()
                })
                .collect(),
        }
    }

    /// Builds counted.
    pub fn total_builds(&self) -> u64 {
        self.total_builds
    }

    /// Successful builds counted.
    pub fn successes(&self) -> u64 {
        self.successes
    }

    /// Fatigue incidents counted.
    pub fn fatigue_incidents(&self) -> u64 {
        self.fatigue_incidents
    }

    /// Success percentage with one decimal (0 without builds).
    pub fn success_rate(&self) -> f64 {
        pct1(self.successes, self.total_builds)
    }

    /// Average duration, minutes, two decimals (`None` without builds).
    pub fn avg_duration_minutes(&self) -> Option<f64> {
        avg2(self.duration_micro, self.total_builds)
    }

    /// Fastest build, minutes.
    pub fn fastest_minutes(&self) -> Option<f64> {
        self.fastest
    }

    /// Positive: consecutive successes; negative: consecutive failures.
    pub fn current_streak(&self) -> i64 {
        self.streak.value()
    }

    /// `spot_price_per_hour` of the newest build that had one.
    pub fn latest_spot_price(&self) -> Option<f64> {
        self.latest_price.as_ref().map(|(_, p)| *p)
    }

    /// Cost of the builds whose cost is known.
    pub fn cost(&self) -> CostBasis {
        self.cost
    }

    /// Fatigue marks of the last `history_days`, oldest first.
    pub fn fatigue_marks(&self) -> impl Iterator<Item = &FatigueMark> {
        self.marks.values()
    }

    /// Newest fatigue: reason, code and time.
    pub fn last_fatigue(&self) -> (Option<String>, Option<String>, Option<f64>) {
        self.last_fatigue.as_ref().map_or((None, None, None), |l| {
            (l.reason.clone(), l.code.clone(), l.key.real_time())
        })
    }

    /// The newest builds, newest first (at most 100).
    pub fn recent_builds(&self) -> impl Iterator<Item = &BuildRecord> {
        self.recent.values().rev()
    }

    /// Hourly buckets of the last `history_days`, keyed by `floor(t / 3600)`.
    pub fn hour_buckets(&self) -> &BTreeMap<i64, HourBucket> {
        &self.hours
    }

    /// Sum of the hourly buckets whose hour starts in `from..to`.
    pub fn window(&self, from: f64, to: f64) -> HourBucket {
        let mut sum = HourBucket::default();
        for (h, b) in self.hours.range(hour_of(from)..) {
            let start = *h as f64 * HOUR;
            if start < from || start >= to {
                continue;
            }
            sum.builds += b.builds;
            sum.successes += b.successes;
            sum.duration_micro = sum.duration_micro.saturating_add(b.duration_micro);
        }
        sum
    }

    /// Timestamp of the oldest known build.
    pub fn first_build(&self) -> Option<f64> {
        self.first_build
    }

    /// Newest time of any known fact (build, fatigue, imported `last_used`).
    pub fn newest_time(&self) -> Option<f64> {
        self.newest
    }
}

fn imported_last_fatigue(s: &RegionStats) -> Option<LastFatigue> {
    let any = s.last_fatigue_reason.is_some()
        || s.last_fatigue_reason_code.is_some()
        || s.last_fatigue_time.is_some();
    any.then(|| LastFatigue {
        key: OrderKey::imported(s.last_fatigue_time, 0),
        reason: s
            .last_fatigue_reason
            .as_deref()
            .map(|r| concise(r, LAST_FATIGUE_REASON_MAX_CHARS)),
        code: s.last_fatigue_reason_code.clone(),
    })
}

/// The imported region's last fatigue as a mark, unless one of its builds
/// already holds a fatigue at that time.
fn imported_mark(s: &RegionStats, marks: &BTreeMap<OrderKey, FatigueMark>) -> Option<FatigueMark> {
    let time = s.last_fatigue_time?;
    if marks.keys().any(|k| k.time == time) {
        return None;
    }
    Some(FatigueMark {
        key: OrderKey::imported(Some(time), 0),
        fatigue_type: FatigueType::Fatigued,
        duration_hours: None,
        reason: s.last_fatigue_reason.clone().unwrap_or_default(),
        reason_code: s.last_fatigue_reason_code.clone(),
    })
}

/// The concise `last_error` of a failed build: its error's first line (or
/// what timed out, or its status), plus ` (step F/T)` when a step failed,
/// at most 80 characters.
pub fn error_summary(b: &BuildRecord) -> String {
    let base = b
        .error
        .as_deref()
        .map(|e| concise(e, usize::MAX))
        .filter(|e| !e.is_empty())
        .or_else(|| {
            b.timeout_reason
                .as_ref()
                .map(|r| format!("Timed out in {r}"))
        })
        .or_else(|| b.status.as_ref().map(|s| format!("Build ended {s}")))
        .unwrap_or_else(|| "Build failed".to_string());
    let suffix = match (b.failed_step, b.total_steps) {
        (Some(f), Some(t)) => format!(" (step {f}/{t})"),
        (Some(f), None) => format!(" (step {f})"),
        _ => String::new(),
    };
    let room = LAST_ERROR_MAX_CHARS.saturating_sub(suffix.chars().count());
    format!("{}{suffix}", concise(&base, room))
}

fn hour_of(t: f64) -> i64 {
    (t / HOUR).floor() as i64
}

fn to_micro(v: f64) -> u64 {
    // inputs are validated finite and non-negative; `as` saturates otherwise
    (v * MICRO).round() as u64
}

fn from_micro(v: u64) -> f64 {
    v as f64 / MICRO
}

fn pct1(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (part as f64 * 1000.0 / whole as f64).round() / 10.0
}

fn avg2(micro: u64, n: u64) -> Option<f64> {
    (n > 0).then(|| (from_micro(micro) / n as f64 * 100.0).round() / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::campaign::{recompute, Applied, Baselines, Campaign, CampaignBaseline};
    use proptest::prelude::*;

    const T0: f64 = 1_763_026_000.0;

    use lull_proto::msg::region::{
        example_build as build, example_build_fatigue as fatigue, example_fatigue_event as event,
    };

    fn stats_after(builds: &[BuildRecord], events: &[FatigueEventReport]) -> RegionStats {
        let cfg = RegionConfig::default();
        let mut c = Campaign::new();
        for b in builds {
            c.apply_build(b, &cfg);
        }
        for e in events {
            c.apply_fatigue_event(e, &cfg);
        }
        c.region("r")
            .map(RegionAggregate::stats)
            .unwrap_or_default()
    }

    #[test]
    fn scenario_1_a_builds_fatigue_counts_for_the_region() {
        let mut b = build("r", "abc123-xyz789", T0, false);
        b.status = Some("TIMEOUT".into());
        b.error = Some("Build stuck in QUEUED for 45 minutes".into());
        b.timeout_reason = Some("QUEUED".into());
        b.fatigues = vec![fatigue(T0, "Queue timeout - 45min QUEUED", "queue-timeout")];
        let s = stats_after(&[b], &[]);
        assert_eq!((s.total_builds, s.failures, s.current_streak), (1, 1, -1));
        assert_eq!(s.fatigue_incidents, 1);
        assert_eq!(
            s.last_fatigue_reason.as_deref(),
            Some("Queue timeout - 45min QUEUED")
        );
        assert_eq!(s.last_fatigue_reason_code.as_deref(), Some("queue-timeout"));
        assert_eq!(s.last_fatigue_time, Some(T0));
        assert_eq!(
            s.last_error.as_deref(),
            Some("Build stuck in QUEUED for 45 minutes")
        );
        assert_eq!(s.recent_builds[0].fatigues.len(), 1);
    }

    #[test]
    fn several_fatigues_in_one_build_each_count() {
        let mut b = build("r", "b", T0, false);
        b.fatigues = vec![
            fatigue(T0 + 5.0, "second", "queue-timeout"),
            fatigue(T0, "first", "beacon-timeout"),
        ];
        let s = stats_after(&[b], &[]);
        assert_eq!(s.fatigue_incidents, 2);
        assert_eq!(s.last_fatigue_reason.as_deref(), Some("second"));
    }

    #[test]
    fn scenario_2_a_bare_fatigue_event_touches_only_fatigue_fields() {
        let s = stats_after(&[], &[event("r", "e1", T0)]);
        assert_eq!(s.total_builds, 0);
        assert_eq!(s.fatigue_incidents, 1);
        assert_eq!(
            s.last_fatigue_reason.as_deref(),
            Some("Pool creation timeout")
        );
        assert_eq!(
            s.last_fatigue_reason_code.as_deref(),
            Some("beacon-timeout")
        );
        assert_eq!(s.last_fatigue_time, Some(T0));
        assert_eq!(
            (s.last_used, s.last_error.clone(), s.current_streak),
            (None, None, 0)
        );
        assert_eq!(
            (s.fastest_minutes, s.success_rate, s.avg_duration_minutes),
            (None, 0.0, 0.0)
        );
        assert!(s.recent_builds.is_empty());
    }

    #[test]
    fn scenario_3_a_normal_failure_changes_no_fatigue_field() {
        let before = stats_after(&[], &[event("r", "e1", T0)]);
        let after = stats_after(
            &[build("r", "b", T0 + 60.0, false)],
            &[event("r", "e1", T0)],
        );
        assert_eq!(after.fatigue_incidents, before.fatigue_incidents);
        assert_eq!(after.last_fatigue_reason, before.last_fatigue_reason);
        assert_eq!(
            after.last_fatigue_reason_code,
            before.last_fatigue_reason_code
        );
        assert_eq!(after.last_fatigue_time, before.last_fatigue_time);
        assert_eq!(after.failures, 1);
    }

    #[test]
    fn counts_rates_and_timings() {
        let mut bs = vec![
            build("r", "a", T0, true),
            build("r", "b", T0 + 1.0, true),
            build("r", "c", T0 + 2.0, false),
        ];
        for (b, m) in bs.iter_mut().zip([8.2, 12.5, 18.7]) {
            b.duration_minutes = Some(m);
        }
        bs[2].duration_minutes = None;
        bs[2].duration_seconds = Some(18.7 * 60.0);
        let s = stats_after(&bs, &[]);
        assert_eq!((s.total_builds, s.successes, s.failures), (3, 2, 1));
        assert_eq!(s.success_rate, 66.7);
        assert_eq!(s.total_duration_minutes, 39.4);
        assert_eq!(s.avg_duration_minutes, 13.13);
        assert_eq!(s.total_queue_wait_minutes, 3.0);
        assert_eq!(s.avg_queue_wait_minutes, 1.0);
        assert_eq!(
            (s.fastest_minutes, s.slowest_minutes),
            (Some(8.2), Some(18.7))
        );
        assert_eq!(s.current_streak, -1);
        assert_eq!(s.last_used, Some(T0 + 2.0));
    }

    #[test]
    fn last_error_is_concise_and_names_the_step() {
        let mut b = build("r", "b", T0, false);
        b.error = Some(format!("{}\nstack trace line", "x".repeat(200)));
        b.failed_step = Some(45);
        let s = stats_after(&[b.clone()], &[]);
        let e = s.last_error.unwrap();
        assert_eq!(e.chars().count(), LAST_ERROR_MAX_CHARS);
        assert!(e.ends_with("x (step 45/72)"), "{e}");
        assert_eq!(s.last_error_time, Some(T0));

        b.error = None;
        b.failed_step = None;
        b.timeout_reason = Some("QUEUED".into());
        assert_eq!(error_summary(&b), "Timed out in QUEUED");
        b.timeout_reason = None;
        assert_eq!(error_summary(&b), "Build ended FAILURE");
        b.status = None;
        assert_eq!(error_summary(&b), "Build failed");
    }

    #[test]
    fn last_fatigue_reason_is_cut_to_60_chars() {
        let mut b = build("r", "b", T0, false);
        b.fatigues = vec![fatigue(T0, &"y".repeat(100), "c")];
        let s = stats_after(&[b], &[]);
        assert_eq!(s.last_fatigue_reason.unwrap().chars().count(), 60);
    }

    #[test]
    fn order_dependent_fields_follow_the_timestamp() {
        let newer = build("r", "n", T0 + 100.0, false);
        let mut older = build("r", "o", T0, false);
        older.fatigues = vec![fatigue(T0, "old", "old")];
        let mut newer_f = newer.clone();
        newer_f.fatigues = vec![fatigue(T0 + 100.0, "new", "new")];
        let s = stats_after(&[newer_f, older], &[event("r", "e-old", T0 - 50.0)]);
        assert_eq!(s.last_error.as_deref(), Some("error of n"));
        assert_eq!(s.last_error_time, Some(T0 + 100.0));
        assert_eq!(s.last_used, Some(T0 + 100.0));
        assert_eq!(s.last_fatigue_reason.as_deref(), Some("new"));
        assert_eq!(s.fatigue_incidents, 3);
        assert_eq!(s.current_streak, -2);
        let ids: Vec<_> = s
            .recent_builds
            .iter()
            .map(|b| b.build_id.as_str())
            .collect();
        assert_eq!(ids, ["n", "o"]);
    }

    /// The streak of outcomes sorted by key, computed the obvious way.
    fn naive_streak(mut outcomes: Vec<(f64, String, bool)>) -> i64 {
        outcomes.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let Some(last) = outcomes.last().map(|o| o.2) else {
            return 0;
        };
        let n = outcomes.iter().rev().take_while(|o| o.2 == last).count() as i64;
        if last {
            n
        } else {
            -n
        }
    }

    #[test]
    fn late_arrivals_fix_the_streak() {
        // arrival order, (time offset, success)
        let cases: &[&[(f64, bool)]] = &[
            &[(1.0, true), (2.0, true), (3.0, true), (1.5, false)], // splits the run: +2
            &[(1.0, true), (2.0, true), (3.0, false), (0.5, false)], // before the breaker: -1
            &[(1.0, false), (5.0, true), (6.0, true), (3.0, true)], // joins the run: +3
            &[
                (5.0, true),
                (4.0, true),
                (3.0, false),
                (6.0, false),
                (5.5, false),
            ], // -2
            &[(2.0, false), (1.0, true)],                           // older, other: -1
            &[(2.0, true), (2.0, false)],                           // same time: id decides
        ];
        for (n, case) in cases.iter().enumerate() {
            let builds: Vec<BuildRecord> = case
                .iter()
                .enumerate()
                .map(|(i, (dt, ok))| build("r", &format!("b{i}"), T0 + dt, *ok))
                .collect();
            let expect = naive_streak(
                builds
                    .iter()
                    .map(|b| (b.timestamp, b.build_id.clone(), b.success))
                    .collect(),
            );
            assert_eq!(stats_after(&builds, &[]).current_streak, expect, "case {n}");
        }
    }

    #[test]
    fn duplicates_are_ignored() {
        let cfg = RegionConfig::default();
        let mut c = Campaign::new();
        let b = build("r", "b1", T0, true);
        assert_eq!(c.apply_build(&b, &cfg), Applied::New);
        let mut changed = b.clone();
        changed.success = false;
        assert_eq!(c.apply_build(&changed, &cfg), Applied::Duplicate);
        let e = event("r", "e1", T0);
        assert_eq!(c.apply_fatigue_event(&e, &cfg), Applied::New);
        assert_eq!(c.apply_fatigue_event(&e, &cfg), Applied::Duplicate);
        let s = c.region("r").unwrap().stats();
        assert_eq!(
            (s.total_builds, s.successes, s.fatigue_incidents),
            (1, 1, 1)
        );
        assert!(c.knows_build("b1") && c.knows_event("e1") && !c.knows_build("e1"));
    }

    #[test]
    fn recent_builds_keep_the_newest_100_newest_first() {
        let builds: Vec<_> = (0..150)
            .rev()
            .map(|i| build("r", &format!("b{i:03}"), T0 + f64::from(i), true))
            .collect();
        let s = stats_after(&builds, &[]);
        assert_eq!(s.recent_builds.len(), RECENT_BUILDS_LIMIT);
        assert_eq!(s.recent_builds[0].build_id, "b149");
        assert_eq!(s.recent_builds[99].build_id, "b050");
        assert!(s.recent_builds.iter().all(|b| b.region.is_empty()));
        assert_eq!(s.total_builds, 150);
    }

    #[test]
    fn windows_cost_and_price() {
        let cfg = RegionConfig::default();
        let mut c = Campaign::new();
        let mut a = build("r", "a", T0, true);
        a.cost_usd = Some(3.0);
        let mut b = build("r", "b", T0 + 7200.0, false);
        b.spot_price_per_hour = Some(9.0); // cost 9 * 10/60 = 1.5
        c.apply_build(&b, &cfg);
        c.apply_build(&a, &cfg);
        let r = c.region("r").unwrap();
        assert_eq!(r.latest_spot_price(), Some(9.0));
        assert_eq!(r.cost().total_usd(), 4.5);
        assert_eq!(r.cost().per_success_usd(), Some(4.5));
        let w = r.window(T0 - 3600.0, T0 + 3600.0);
        assert_eq!((w.builds, w.successes), (1, 1));
        assert_eq!(r.window(T0 - 3600.0, T0 + 3.0 * 3600.0).builds, 2);
    }

    #[test]
    fn history_is_cut_relative_to_the_newest_fact() {
        let cfg = RegionConfig::default();
        let mut c = Campaign::new();
        let day = 86_400.0;
        c.apply_fatigue_event(&event("r", "new", T0 + 40.0 * day), &cfg);
        c.apply_fatigue_event(&event("r", "old", T0), &cfg);
        let r = c.region("r").unwrap();
        assert_eq!(r.fatigue_marks().count(), 1);
        assert_eq!(r.fatigue_incidents(), 2, "the count keeps everything");
    }

    fn baseline() -> Baselines {
        let stats = RegionStats {
            total_builds: 10,
            successes: 7,
            failures: 3,
            total_duration_minutes: 100.0,
            total_queue_wait_minutes: 10.0,
            fastest_minutes: Some(5.0),
            slowest_minutes: Some(20.0),
            last_error: Some("old error".into()),
            last_error_time: Some(T0 + 20.0 * 3600.0),
            fatigue_incidents: 2,
            last_fatigue_reason: Some("Queue timeout".into()),
            last_fatigue_time: Some(T0 + 10.0 * 3600.0),
            current_streak: 3,
            last_used: Some(T0 + 30.0 * 3600.0),
            recent_builds: vec![BuildRecord {
                region: String::new(),
                ..build("r0", "imported-1", T0 + 30.0 * 3600.0, true)
            }],
            ..Default::default()
        };
        Baselines {
            campaign: CampaignBaseline {
                campaign_start: Some(T0 - 1000.0),
                last_updated: Some(T0 + 31.0 * 3600.0),
                unattributed_builds: 1,
            },
            regions: BTreeMap::from([("r0".to_string(), stats)]),
        }
    }

    /// Tiny deterministic generator for shuffles and duplicates.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    type BuildSpec = (u8, u32, bool, u8, u16);

    #[derive(Clone, Copy)]
    enum Arrival<'a> {
        Build(&'a BuildRecord),
        Event(&'a FatigueEventReport),
    }

    fn make_builds(specs: &[BuildSpec]) -> Vec<BuildRecord> {
        specs
            .iter()
            .enumerate()
            .map(|(i, (region, slot, ok, nf, minutes))| {
                let t = T0 + f64::from(*slot) * 1800.0;
                let mut b = build(&format!("r{region}"), &format!("b{i}"), t, *ok);
                b.duration_minutes = Some(f64::from(*minutes) / 7.0);
                b.failed_step = (!ok).then_some(u32::from(*minutes % 72));
                b.fatigues = (0..*nf)
                    .map(|k| {
                        let mut f =
                            fatigue(t + f64::from(k), &format!("f{i}.{k}"), "queue-timeout");
                        if k == 1 {
                            f.fatigue_type = FatigueType::Exhausted;
                            f.fatigue_duration_hours = None;
                        }
                        f
                    })
                    .collect();
                b
            })
            .collect()
    }

    fn shuffled_with_duplicates<T: Clone>(items: &[T], rng: &mut Lcg) -> Vec<T> {
        let mut out: Vec<T> = items.to_vec();
        for item in items {
            if rng.next() & 3 == 0 {
                out.push(item.clone());
            }
        }
        for i in (1..out.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            out.swap(i, j);
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn shuffled_duplicated_input_equals_recompute(
            specs in proptest::collection::vec(
                (0u8..3, 0u32..3000, any::<bool>(), 0u8..3, 1u16..600), 0..260),
            event_specs in proptest::collection::vec((0u8..3, 0u32..3000), 0..20),
            seed in any::<u64>(),
            with_baseline in any::<bool>(),
        ) {
            let cfg = RegionConfig::default();
            let builds = make_builds(&specs);
            let events: Vec<FatigueEventReport> = event_specs
                .iter()
                .enumerate()
                .map(|(i, (r, slot))| event(&format!("r{r}"), &format!("e{i}"), T0 + f64::from(*slot) * 1800.0))
                .collect();
            let base = if with_baseline { baseline() } else { Baselines::default() };

            let mut rng = Lcg(seed);
            let all: Vec<Arrival> = builds
                .iter()
                .map(Arrival::Build)
                .chain(events.iter().map(Arrival::Event))
                .collect();
            let arrivals = shuffled_with_duplicates(&all, &mut rng);
            let mut live = Campaign::from_baselines(&base, &cfg);
            let (mut arrived_builds, mut arrived_events) = (Vec::new(), Vec::new());
            for a in &arrivals {
                match a {
                    Arrival::Build(b) => {
                        live.apply_build(b, &cfg);
                        arrived_builds.push((*b).clone());
                    }
                    Arrival::Event(e) => {
                        live.apply_fatigue_event(e, &cfg);
                        arrived_events.push((*e).clone());
                    }
                }
            }
            let reference = recompute(&base, &arrived_builds, &arrived_events, &cfg);
            prop_assert_eq!(&live, &reference);

            // a persisted aggregate (JSON) reads back unchanged
            for (_, agg) in live.regions() {
                let text = serde_json::to_string(agg).unwrap();
                let back: RegionAggregate = serde_json::from_str(&text).unwrap();
                prop_assert_eq!(&back, agg);
            }

            // and the seed figures agree with the obvious definitions
            for r in 0..3u8 {
                let name = format!("r{r}");
                let mine: Vec<&BuildRecord> = builds.iter().filter(|b| b.region == name).collect();
                let evs = events.iter().filter(|e| e.region == name).count() as u64;
                let Some(agg) = live.region(&name) else {
                    prop_assert!(mine.is_empty() && evs == 0);
                    continue;
                };
                if with_baseline && r == 0 {
                    continue;
                }
                let s = agg.stats();
                prop_assert_eq!(s.total_builds, mine.len() as u64);
                prop_assert_eq!(s.successes, mine.iter().filter(|b| b.success).count() as u64);
                let fatigues: u64 = mine.iter().map(|b| b.fatigues.len() as u64).sum();
                prop_assert_eq!(s.fatigue_incidents, fatigues + evs);
                prop_assert_eq!(
                    s.current_streak,
                    naive_streak(mine.iter().map(|b| (b.timestamp, b.build_id.clone(), b.success)).collect())
                );
                let last_fail = mine.iter().filter(|b| !b.success)
                    .max_by(|a, b| a.timestamp.total_cmp(&b.timestamp).then(a.build_id.cmp(&b.build_id)));
                prop_assert_eq!(s.last_error_time, last_fail.map(|b| b.timestamp));
                prop_assert_eq!(s.last_used, mine.iter().map(|b| b.timestamp).reduce(f64::max));
                let newest_fatigue = mine.iter().flat_map(|b| b.fatigues.iter().map(|f| f.fatigue_time))
                    .chain(events.iter().filter(|e| e.region == name).map(|e| e.fatigue_time))
                    .reduce(f64::max);
                prop_assert_eq!(s.last_fatigue_time, newest_fatigue);
                prop_assert!(s.recent_builds.len() <= RECENT_BUILDS_LIMIT);
                prop_assert!(s.recent_builds.windows(2).all(|w| w[0].timestamp >= w[1].timestamp));
            }
        }
    }
}
