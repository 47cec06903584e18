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
    if !now.is_finite() {
        return None;
    }
    let h0 = hour_of_week(now);
    let hour0 = (now / HOUR).floor() * HOUR;
    let quiet = |k: usize| heatmap.cell(h0 + k).filter(|s| *s >= threshold);
    let first = (0..HOURS_PER_WEEK).find(|k| quiet(*k).is_some())?;
    let mut sum = 0.0;
    let mut k = first;
    while k < first + HOURS_PER_WEEK {
        match quiet(k) {
            Some(s) => sum += s,
            None => break,
        }
        k += 1;
    }
    let start_time = if first == 0 {
        now
    } else {
        hour0 + first as f64 * HOUR
    };
    Some(QuietWindow {
        start_time,
        end_time: hour0 + k as f64 * HOUR,
        avg_score: (sum / (k - first) as f64 * 10.0).round() / 10.0,
    })
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
    /// The next predicted quiet window, if any.
    pub next_window: Option<QuietWindow>,
}

impl ForecastReply {
    /// Builds the reply for `heatmap` at `now`.
    pub fn build(host_id: &str, heatmap: &Heatmap, now: f64, threshold: f64) -> Self {
        ForecastReply {
            host_id: host_id.to_string(),
            generated_at: now,
            threshold,
            heatmap: heatmap.cells(),
            samples: (0..HOURS_PER_WEEK).map(|h| heatmap.samples(h)).collect(),
            next_window: next_quiet_window(heatmap, now, threshold),
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
        let r = ForecastReply::build("web-1", &h, MONDAY, 75.0);
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
}
