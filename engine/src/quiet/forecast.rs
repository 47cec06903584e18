//! Quiet forecast: an hour-of-week heatmap (168 cells, mean quiet score per
//! cell) built from rollup points, the next predicted quiet window, and the
//! `lull.v1.quiet.forecast` request and reply types.
//!
//! Hours are UTC; cell 0 is Monday 00:00–01:00, cell 167 Sunday 23:00–24:00.
//! A cell with fewer than `min_samples` points counts as unknown, and an
//! unknown cell is never predicted quiet.

use serde::{Deserialize, Serialize};

use lull_proto::error::ValidationError;
use lull_proto::validate::{self as v, Validate};

pub use super::config::ForecastConfig;

/// Cells of the heatmap.
pub const HOURS_PER_WEEK: usize = 168;

const HOUR: f64 = 3600.0;

/// Hour of the week of a Unix time: 0 = Monday 00:00 UTC.
pub fn hour_of_week(t: f64) -> usize {
    // 1970-01-01 was a Thursday: Monday-based, that is hour 72.
    let hours = (t / HOUR).floor() as i64;
    (hours + 72).rem_euclid(HOURS_PER_WEEK as i64) as usize
}

/// Mean quiet score per hour of the week.
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    sum: [f64; HOURS_PER_WEEK],
    count: [u32; HOURS_PER_WEEK],
    min_samples: u32,
}

impl Heatmap {
    /// An empty heatmap whose cells need `min_samples` points to count.
    pub fn new(min_samples: u32) -> Self {
        Heatmap {
            sum: [0.0; HOURS_PER_WEEK],
            count: [0; HOURS_PER_WEEK],
            min_samples: min_samples.max(1),
        }
    }

    /// A heatmap of `(time, average score)` rollup points.
    pub fn from_points(points: impl IntoIterator<Item = (f64, f64)>, min_samples: u32) -> Self {
        let mut h = Heatmap::new(min_samples);
        for (t, s) in points {
            h.add(t, s);
        }
        h
    }

    /// Adds one point (non-finite ones are skipped).
    pub fn add(&mut self, t: f64, score: f64) {
        if !t.is_finite() || !score.is_finite() {
            return;
        }
        let i = hour_of_week(t);
        self.sum[i] += score;
        self.count[i] = self.count[i].saturating_add(1);
    }

    /// Adds `count` points whose mean is `mean` at once (an aggregate of
    /// rollup points, all in the hour of `t`).
    pub fn add_many(&mut self, t: f64, mean: f64, count: u32) {
        if !t.is_finite() || !mean.is_finite() || count == 0 {
            return;
        }
        let i = hour_of_week(t);
        self.sum[i] += mean * f64::from(count);
        self.count[i] = self.count[i].saturating_add(count);
    }

    /// The mean score of a cell, `None` when it has too few points.
    pub fn cell(&self, hour: usize) -> Option<f64> {
        let i = hour % HOURS_PER_WEEK;
        (self.count[i] >= self.min_samples).then(|| self.sum[i] / f64::from(self.count[i]))
    }

    /// Points in a cell.
    pub fn samples(&self, hour: usize) -> u32 {
        self.count[hour % HOURS_PER_WEEK]
    }

    /// All 168 cells (rounded to 0.1), `None` where unknown.
    pub fn cells(&self) -> Vec<Option<f64>> {
        (0..HOURS_PER_WEEK)
            .map(|h| self.cell(h).map(|v| (v * 10.0).round() / 10.0))
            .collect()
    }
}

/// The UTC hours of the day (0 to 23) that are usually quiet: the mean of
/// the known cells at that hour over the week's seven days is at least
/// `threshold`. Hours with no known cell are left out. Worker schedule
/// recommendations lean toward these hours.
pub fn quiet_hours_of_day(heatmap: &Heatmap, threshold: f64) -> Vec<u8> {
    (0u8..24)
        .filter(|&h| {
            let known: Vec<f64> = (0..7)
                .filter_map(|day| heatmap.cell(day * 24 + usize::from(h)))
                .collect();
            !known.is_empty() && known.iter().sum::<f64>() / known.len() as f64 >= threshold
        })
        .collect()
}

/// A predicted quiet window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QuietWindow {
    /// Unix seconds it starts (`now` when the current hour is quiet).
    pub start_time: f64,
    /// Unix seconds it ends (at most a week after the start).
    pub end_time: f64,
    /// Mean forecast score of its hours.
    pub avg_score: f64,
}

impl QuietWindow {
    /// Seconds from `now` to the start (0 when already started); what a
    /// denied lease can use as `retry_after_sec`.
    pub fn retry_after_sec(&self, now: f64) -> f64 {
        (self.start_time - now).max(0.0)
    }
}

/// The next window (from `now`, within a week) of consecutive hours whose
/// forecast score is at least `threshold`. `None` when no hour qualifies.
pub fn next_quiet_window(heatmap: &Heatmap, now: f64, threshold: f64) -> Option<QuietWindow> {
    next_quiet_window_outside(heatmap, now, threshold, &[])
}

/// Like [`next_quiet_window`], but time covered by `blocked` (operator
/// blocks and maintenance windows: sorted, merged spans) is never quiet: a
/// window is cut around them, and one that is covered whole is skipped.
pub fn next_quiet_window_outside(
    heatmap: &Heatmap,
    now: f64,
    threshold: f64,
    blocked: &[(f64, f64)],
) -> Option<QuietWindow> {
    if !now.is_finite() {
        return None;
    }
    let h0 = hour_of_week(now);
    let hour0 = (now / HOUR).floor() * HOUR;
    let quiet = |k: usize| heatmap.cell(h0 + k).is_some_and(|s| s >= threshold);
    let mut first = 0;
    while first < HOURS_PER_WEEK {
        if !quiet(first) {
            first += 1;
            continue;
        }
        let mut k = first;
        while k < first + HOURS_PER_WEEK && quiet(k) {
            k += 1;
        }
        let start = if first == 0 {
            now
        } else {
            hour0 + first as f64 * HOUR
        };
        if let Some((s, e)) = first_free(start, hour0 + k as f64 * HOUR, blocked) {
            let (a, b) = (
                ((s - hour0) / HOUR).floor() as usize,
                ((e - hour0) / HOUR).ceil() as usize,
            );
            let sum: f64 = (a..b).filter_map(|i| heatmap.cell(h0 + i)).sum();
            return Some(QuietWindow {
                start_time: s,
                end_time: e,
                avg_score: (sum / (b - a).max(1) as f64 * 10.0).round() / 10.0,
            });
        }
        first = k;
    }
    None
}

/// The first part of `[start, end)` that no span of `blocked` covers.
fn first_free(start: f64, end: f64, blocked: &[(f64, f64)]) -> Option<(f64, f64)> {
    let mut s = start;
    for &(bs, be) in blocked {
        if be <= s {
            continue;
        }
        if bs >= end {
            break;
        }
        if bs > s {
            return Some((s, bs));
        }
        s = be;
        if s >= end {
            return None;
        }
    }
    (s < end).then_some((s, end))
}

/// Which of the 168 hour-of-week cells the spans `blocked` touch between
/// `now` and a week later.
pub fn blocked_cells(now: f64, blocked: &[(f64, f64)]) -> Vec<bool> {
    let mut cells = vec![false; HOURS_PER_WEEK];
    let hour0 = (now / HOUR).floor() * HOUR;
    for k in 0..HOURS_PER_WEEK {
        let (s, e) = (hour0 + k as f64 * HOUR, hour0 + (k + 1) as f64 * HOUR);
        if blocked.iter().any(|&(bs, be)| bs < e && be > s.max(now)) {
            cells[hour_of_week(s)] = true;
        }
    }
    cells
}

/// `lull.v1.quiet.forecast` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastRequest {
    /// Host id.
    pub host_id: String,
    /// Quiet threshold; the configured one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

impl Validate for ForecastRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        v::subject_token("host_id", &self.host_id)?;
        v::range_opt("threshold", self.threshold, 0.0, 100.0)
    }
}

/// `lull.v1.quiet.forecast` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastReply {
    /// Host id.
    pub host_id: String,
    /// Unix seconds the forecast was made.
    pub generated_at: f64,
    /// Threshold used.
    pub threshold: f64,
    /// 168 mean scores, index 0 = Monday 00:00 UTC; `null` where unknown.
    pub heatmap: Vec<Option<f64>>,
    /// Points behind each cell.
    pub samples: Vec<u32>,
    /// The next predicted quiet window, if any (never in a block or a
    /// maintenance window).
    pub next_window: Option<QuietWindow>,
    /// 168 flags, indexed like `heatmap`: an operator block or maintenance
    /// window covers part of that hour within the coming week, so it is
    /// not quiet whatever its score.
    #[serde(default)]
    pub blocked: Vec<bool>,
}

impl ForecastReply {
    /// Builds the reply for `heatmap` at `now`, with the host's blocked
    /// spans (sorted, merged).
    pub fn build(
        host_id: &str,
        heatmap: &Heatmap,
        now: f64,
        threshold: f64,
        blocked: &[(f64, f64)],
    ) -> Self {
        ForecastReply {
            host_id: host_id.to_string(),
            generated_at: now,
            threshold,
            heatmap: heatmap.cells(),
            samples: (0..HOURS_PER_WEEK).map(|h| heatmap.samples(h)).collect(),
            next_window: next_quiet_window_outside(heatmap, now, threshold, blocked),
            blocked: blocked_cells(now, blocked),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn quiet_hours_of_day_average_the_week() {
        // Monday 2025-11-10 00:00:00 UTC.
        let monday = 1_762_732_800.0;
        let mut m = Heatmap::new(1);
        for day in 0..7 {
            let t = monday + f64::from(day) * 86_400.0;
            m.add(t + 3.0 * 3600.0, 95.0); // 03:00 quiet every day
            m.add(t + 14.0 * 3600.0, 30.0); // 14:00 busy every day
        }
        // 05:00 quiet on weekdays only: mean (5 * 90 + 2 * 40) / 7 = 75.7.
        for day in 0..7 {
            let score = if day < 5 { 90.0 } else { 40.0 };
            m.add(monday + f64::from(day) * 86_400.0 + 5.0 * 3600.0, score);
        }
        assert_eq!(quiet_hours_of_day(&m, 75.0), vec![3, 5]);
        assert_eq!(quiet_hours_of_day(&m, 80.0), vec![3]);
        assert!(quiet_hours_of_day(&Heatmap::new(1), 75.0).is_empty());
    }

    use super::*;

    /// Monday 2025-11-10 00:00:00 UTC.
    const MONDAY: f64 = 1_762_732_800.0;

    /// Three weeks of hourly points: quiet (90) at night 01:00–05:00,
    /// busy (30) otherwise.
    fn nightly() -> Heatmap {
        let pts = (0..21 * 24).map(|h| {
            let t = MONDAY - 21.0 * 86_400.0 + h as f64 * HOUR + 1800.0;
            let hour_of_day = h % 24;
            (
                t,
                if (1..5).contains(&hour_of_day) {
                    90.0
                } else {
                    30.0
                },
            )
        });
        Heatmap::from_points(pts, 3)
    }

    #[test]
    fn hours_of_week() {
        assert_eq!(hour_of_week(MONDAY), 0);
        assert_eq!(hour_of_week(MONDAY + 3599.0), 0);
        assert_eq!(hour_of_week(MONDAY + HOUR), 1);
        assert_eq!(hour_of_week(MONDAY - 1.0), 167);
        assert_eq!(hour_of_week(0.0), 72, "epoch was a Thursday");
        assert_eq!(hour_of_week(MONDAY + 7.0 * 86_400.0 + 5.0 * HOUR), 5);
    }

    #[test]
    fn heatmap_averages_cells_and_hides_thin_ones() {
        let mut h = Heatmap::new(2);
        h.add(MONDAY + 10.0, 80.0);
        assert_eq!(h.cell(0), None, "one point is not enough");
        h.add(MONDAY + 7.0 * 86_400.0 + 20.0, 60.0);
        h.add(MONDAY + 30.0, f64::NAN);
        assert_eq!(h.cell(0), Some(70.0));
        assert_eq!(h.samples(0), 2);
        let cells = h.cells();
        assert_eq!(cells.len(), 168);
        assert_eq!(cells[0], Some(70.0));
        assert_eq!(cells[1], None);
    }

    #[test]
    fn next_window_later_today() {
        let h = nightly();
        // Monday 20:30 → next window Tuesday 01:00–05:00.
        let now = MONDAY + 20.5 * HOUR;
        let w = next_quiet_window(&h, now, 75.0).unwrap();
        assert_eq!(w.start_time, MONDAY + 25.0 * HOUR);
        assert_eq!(w.end_time, MONDAY + 29.0 * HOUR);
        assert_eq!(w.avg_score, 90.0);
        assert_eq!(w.retry_after_sec(now), 4.5 * HOUR);
    }

    #[test]
    fn inside_a_window_it_starts_now() {
        let h = nightly();
        let now = MONDAY + 2.25 * HOUR;
        let w = next_quiet_window(&h, now, 75.0).unwrap();
        assert_eq!(w.start_time, now);
        assert_eq!(w.end_time, MONDAY + 5.0 * HOUR);
        assert_eq!(w.retry_after_sec(now), 0.0);
    }

    #[test]
    fn week_wraps_around() {
        let h = nightly();
        // Sunday 23:10 → Monday 01:00 of the next week.
        let now = MONDAY + 7.0 * 86_400.0 - 50.0 * 60.0;
        let w = next_quiet_window(&h, now, 75.0).unwrap();
        assert_eq!(w.start_time, MONDAY + 7.0 * 86_400.0 + HOUR);
    }

    #[test]
    fn no_window_without_quiet_or_data() {
        assert_eq!(next_quiet_window(&Heatmap::new(1), MONDAY, 75.0), None);
        assert_eq!(next_quiet_window(&nightly(), MONDAY, 95.0), None);
    }

    #[test]
    fn always_quiet_is_capped_at_a_week() {
        let pts = (0..168).map(|h| (MONDAY + h as f64 * HOUR, 100.0));
        let h = Heatmap::from_points(pts, 1);
        let now = MONDAY + 10.0 * HOUR + 5.0;
        let w = next_quiet_window(&h, now, 75.0).unwrap();
        assert_eq!(w.start_time, now);
        assert_eq!(w.end_time, MONDAY + 178.0 * HOUR);
    }

    #[test]
    fn reply_and_request() {
        let h = nightly();
        let r = ForecastReply::build("web-1", &h, MONDAY, 75.0, &[]);
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["heatmap"].as_array().unwrap().len(), 168);
        assert_eq!(j["heatmap"][1], 90.0);
        assert_eq!(j["heatmap"][0], 30.0);
        assert_eq!(j["samples"][0], 3);
        assert_eq!(j["next_window"]["start_time"], MONDAY + HOUR);
        let q: ForecastRequest = serde_json::from_str(r#"{"host_id":"web-1"}"#).unwrap();
        assert!(q.validate().is_ok());
        let q: ForecastRequest =
            serde_json::from_str(r#"{"host_id":"web-1","threshold":150}"#).unwrap();
        assert!(q.validate().is_err());
    }

    #[test]
    fn add_many_equals_adding_one_by_one() {
        let mut a = Heatmap::new(3);
        let mut b = Heatmap::new(3);
        for s in [60.0, 80.0, 100.0] {
            a.add(MONDAY + 10.0, s);
        }
        b.add_many(MONDAY + 10.0, 80.0, 3);
        b.add_many(MONDAY, f64::NAN, 3);
        b.add_many(MONDAY, 50.0, 0);
        assert_eq!(a, b);
        assert_eq!(b.cell(0), Some(80.0));
    }

    #[test]
    fn blocked_time_is_never_a_quiet_window() {
        let h = nightly();
        // Monday 20:30; nights are quiet 01:00-05:00.
        let now = MONDAY + 20.5 * HOUR;
        // A window over Tuesday 00:30-02:30 cuts the night's start.
        let cut = [(MONDAY + 24.5 * HOUR, MONDAY + 26.5 * HOUR)];
        let w = next_quiet_window_outside(&h, now, 75.0, &cut).unwrap();
        assert_eq!(
            (w.start_time, w.end_time),
            (MONDAY + 26.5 * HOUR, MONDAY + 29.0 * HOUR)
        );
        assert_eq!(w.avg_score, 90.0);
        // One in the middle leaves the first part.
        let mid = [(MONDAY + 26.0 * HOUR, MONDAY + 27.0 * HOUR)];
        let w = next_quiet_window_outside(&h, now, 75.0, &mid).unwrap();
        assert_eq!(
            (w.start_time, w.end_time),
            (MONDAY + 25.0 * HOUR, MONDAY + 26.0 * HOUR)
        );
        // Covering Tuesday's night whole skips to Wednesday's.
        let whole = [(MONDAY + 24.0 * HOUR, MONDAY + 30.0 * HOUR)];
        let w = next_quiet_window_outside(&h, now, 75.0, &whole).unwrap();
        assert_eq!(w.start_time, MONDAY + 49.0 * HOUR);
        // Blocked for good: nothing.
        let all = [(f64::NEG_INFINITY, f64::INFINITY)];
        assert_eq!(next_quiet_window_outside(&h, now, 75.0, &all), None);
        // Inside a quiet night, a block now moves the start to its end.
        let inside = MONDAY + 2.25 * HOUR;
        let w = next_quiet_window_outside(&h, inside, 75.0, &[(0.0, MONDAY + 3.0 * HOUR)]).unwrap();
        assert_eq!(
            (w.start_time, w.end_time),
            (MONDAY + 3.0 * HOUR, MONDAY + 5.0 * HOUR)
        );
        // The reply marks the blocked hours (Tuesday 00:00-02:00 = 24, 25, 26).
        let r = ForecastReply::build("a", &h, now, 75.0, &cut);
        let marked: Vec<usize> = (0..HOURS_PER_WEEK).filter(|&i| r.blocked[i]).collect();
        assert_eq!(marked, vec![24, 25, 26]);
        assert_eq!(
            r.next_window,
            Some(next_quiet_window_outside(&h, now, 75.0, &cut).unwrap())
        );
    }
}
