//! Quiet streaks: intervals during which a host stayed QUIET, derived
//! incrementally from its (time, score, state) samples, and the
//! `lull.v1.quiet.streaks` request and reply types.
//!
//! A streak starts at the first QUIET sample and ends at the last QUIET
//! sample before a non-QUIET one, or before a gap longer than `max_gap_sec`
//! (the host was silent, so quiet cannot be claimed). Streaks shorter than
//! `min_streak_sec` are dropped. `avg_score` is the mean of the samples'
//! scores (samples arrive on a regular cadence), `min_score` their minimum.

use serde::{Deserialize, Serialize};

use lull_proto::error::ValidationError;
use lull_proto::msg::hosts::QuietState;
use lull_proto::msg::page::PageRequest;
use lull_proto::validate::{self as v, Validate};

pub use super::config::StreakConfig;
use super::duration::parse_duration;

/// One quiet sample of a host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuietSample {
    /// Unix seconds.
    pub time: f64,
    /// Quiet score.
    pub score: f64,
    /// State (after hysteresis).
    pub state: QuietState,
}

/// A finished quiet interval (one element of the `lull.v1.quiet.streaks`
/// reply).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClosedStreak {
    /// Unix seconds of the first QUIET sample.
    pub start_time: f64,
    /// Unix seconds of the last QUIET sample.
    pub end_time: f64,
    /// Mean score over the streak.
    pub avg_score: f64,
    /// Lowest score in the streak.
    pub min_score: f64,
}

impl ClosedStreak {
    /// Length in seconds.
    pub fn duration_sec(&self) -> f64 {
        self.end_time - self.start_time
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Open {
    start: f64,
    last: f64,
    sum: f64,
    count: u64,
    min: f64,
}

impl Open {
    fn close(&self) -> ClosedStreak {
        ClosedStreak {
            start_time: self.start,
            end_time: self.last,
            avg_score: self.sum / self.count as f64,
            min_score: self.min,
        }
    }
}

/// Builds streaks one sample at a time; keeps only the open streak.
#[derive(Debug, Clone)]
pub struct StreakBuilder {
    min_streak_sec: f64,
    max_gap_sec: f64,
    open: Option<Open>,
    last_time: Option<f64>,
}

impl StreakBuilder {
    /// A builder with the given settings.
    pub fn new(cfg: &StreakConfig) -> Self {
        StreakBuilder {
            min_streak_sec: cfg.min_streak_sec,
            max_gap_sec: cfg.max_gap_sec,
            open: None,
            last_time: None,
        }
    }

    /// Adds a sample; returns the streak it closed, if that streak is long
    /// enough. Samples older than the previous one are ignored, as are
    /// non-finite times or scores.
    pub fn push(&mut self, s: QuietSample) -> Option<ClosedStreak> {
        if !s.time.is_finite() || !s.score.is_finite() {
            return None;
        }
        if matches!(self.last_time, Some(t) if s.time < t) {
            return None;
        }
        let gap = self.last_time.map(|t| s.time - t);
        self.last_time = Some(s.time);
        let mut closed = None;
        if self.open.is_some()
            && (s.state != QuietState::Quiet || gap.is_some_and(|g| g > self.max_gap_sec))
        {
            closed = self.take_if_long();
        }
        if s.state == QuietState::Quiet {
            match &mut self.open {
                Some(o) => {
                    o.last = s.time;
                    o.sum += s.score;
                    o.count += 1;
                    o.min = o.min.min(s.score);
                }
                None => {
                    self.open = Some(Open {
                        start: s.time,
                        last: s.time,
                        sum: s.score,
                        count: 1,
                        min: s.score,
                    })
                }
            }
        }
        closed
    }

    /// The streak in progress (not yet closed), whatever its length.
    pub fn current(&self) -> Option<ClosedStreak> {
        self.open.as_ref().map(Open::close)
    }

    /// Ends the streak in progress (say, at the end of a queried range);
    /// returns it if long enough.
    pub fn finish(&mut self) -> Option<ClosedStreak> {
        self.take_if_long()
    }

    fn take_if_long(&mut self) -> Option<ClosedStreak> {
        let o = self.open.take()?;
        (o.last - o.start >= self.min_streak_sec).then(|| o.close())
    }
}

/// All streaks of a time-ordered sample sequence, the one still open at the
/// end included (if long enough).
pub fn streaks_of(
    samples: impl IntoIterator<Item = QuietSample>,
    cfg: &StreakConfig,
) -> Vec<ClosedStreak> {
    let mut b = StreakBuilder::new(cfg);
    let mut out: Vec<ClosedStreak> = samples.into_iter().filter_map(|s| b.push(s)).collect();
    out.extend(b.finish());
    out
}

/// `lull.v1.quiet.streaks` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreaksRequest {
    /// Host id.
    pub host_id: String,
    /// How far back ("24h", "7d"); the configured default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// Most streaks in the reply (1..=100000); with `limit` or `cursor`
    /// the reply is a [`StreaksPage`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl StreaksRequest {
    /// The paging fields.
    pub fn page(&self) -> PageRequest {
        PageRequest {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
    }

    /// The start time the cursor names: the page holds streaks that start
    /// after it.
    pub fn after(&self) -> Result<Option<f64>, ValidationError> {
        self.cursor.as_deref().map(decode_cursor).transpose()
    }
}

/// The cursor after a streak: its start time, as text.
pub fn encode_cursor(s: &ClosedStreak) -> String {
    s.start_time.to_string()
}

fn decode_cursor(c: &str) -> Result<f64, ValidationError> {
    c.parse::<f64>()
        .ok()
        .filter(|t| t.is_finite())
        .ok_or_else(|| ValidationError::Invalid {
            field: "cursor".into(),
            reason: "is not one this coordinator made (pass next_cursor back unchanged)".into(),
        })
}

impl Validate for StreaksRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        v::subject_token("host_id", &self.host_id)?;
        if let Some(r) = &self.range {
            parse_duration(r).map_err(|e| e.into_validation("range"))?;
        }
        self.page().validate()?;
        self.after().map(drop)
    }
}

/// A page of `lull.v1.quiet.streaks`, the answer to a request that names
/// `limit` or `cursor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreaksPage {
    /// Streaks by start time.
    pub streaks: Vec<ClosedStreak>,
    /// Pass it as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The reply of `lull.v1.quiet.streaks`: a bare array to a request without
/// `limit` and `cursor` (the original shape), a [`StreaksPage`] otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StreaksReply {
    /// `[ClosedStreak…]`.
    Plain(Vec<ClosedStreak>),
    /// `{streaks, next_cursor}`.
    Page(StreaksPage),
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: QuietState = QuietState::Quiet;
    const N: QuietState = QuietState::Normal;

    fn s(time: f64, score: f64, state: QuietState) -> QuietSample {
        QuietSample { time, score, state }
    }

    fn cfg(min: f64) -> StreakConfig {
        StreakConfig {
            min_streak_sec: min,
            max_gap_sec: 30.0,
            ..Default::default()
        }
    }

    #[test]
    fn streak_closes_on_non_quiet_sample() {
        let mut b = StreakBuilder::new(&cfg(10.0));
        assert_eq!(b.push(s(0.0, 60.0, N)), None);
        assert_eq!(b.push(s(10.0, 90.0, Q)), None);
        assert_eq!(b.push(s(20.0, 80.0, Q)), None);
        assert_eq!(b.push(s(30.0, 100.0, Q)), None);
        let cur = b.current().unwrap();
        assert_eq!((cur.start_time, cur.end_time), (10.0, 30.0));
        let closed = b.push(s(40.0, 60.0, N)).unwrap();
        assert_eq!(
            closed,
            ClosedStreak {
                start_time: 10.0,
                end_time: 30.0,
                avg_score: 90.0,
                min_score: 80.0
            }
        );
        assert_eq!(closed.duration_sec(), 20.0);
        assert_eq!(b.current(), None);
        assert_eq!(b.push(s(50.0, 60.0, N)), None);
    }

    #[test]
    fn short_streaks_are_dropped() {
        let mut b = StreakBuilder::new(&cfg(60.0));
        b.push(s(0.0, 90.0, Q));
        b.push(s(30.0, 90.0, Q));
        assert_eq!(b.push(s(40.0, 10.0, N)), None, "30 s < 60 s");
        b.push(s(100.0, 90.0, Q));
        b.push(s(130.0, 90.0, Q));
        b.push(s(160.0, 90.0, Q));
        assert!(b.push(s(170.0, 40.0, N)).is_some(), "60 s is enough");
    }

    #[test]
    fn a_gap_ends_the_streak() {
        let mut b = StreakBuilder::new(&cfg(0.0));
        b.push(s(0.0, 90.0, Q));
        b.push(s(20.0, 95.0, Q));
        let closed = b.push(s(100.0, 85.0, Q)).expect("gap of 80 s > 30 s");
        assert_eq!((closed.start_time, closed.end_time), (0.0, 20.0));
        // A new streak starts at the sample after the gap.
        assert_eq!(b.current().unwrap().start_time, 100.0);
        assert_eq!(b.finish().unwrap().start_time, 100.0);
        assert_eq!(b.current(), None);
    }

    #[test]
    fn out_of_order_and_bad_samples_are_ignored() {
        let mut b = StreakBuilder::new(&cfg(0.0));
        b.push(s(10.0, 90.0, Q));
        assert_eq!(b.push(s(5.0, 10.0, N)), None);
        assert_eq!(b.push(s(12.0, f64::NAN, N)), None);
        assert_eq!(b.current().unwrap().min_score, 90.0);
    }

    #[test]
    fn batch_helper_includes_the_open_streak() {
        let samples = [
            s(0.0, 80.0, Q),
            s(10.0, 80.0, Q),
            s(20.0, 40.0, N),
            s(30.0, 100.0, Q),
            s(40.0, 90.0, Q),
        ];
        let out = streaks_of(samples, &cfg(5.0));
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].start_time, 30.0);
        assert_eq!(out[1].avg_score, 95.0);
        assert_eq!(out[1].min_score, 90.0);
    }

    #[test]
    fn request_validation() {
        let r: StreaksRequest = serde_json::from_str(r#"{"host_id":"web-1"}"#).unwrap();
        assert!(r.validate().is_ok() && r.range.is_none());
        let r: StreaksRequest =
            serde_json::from_str(r#"{"host_id":"web-1","range":"7d"}"#).unwrap();
        assert!(r.validate().is_ok());
        let r: StreaksRequest =
            serde_json::from_str(r#"{"host_id":"web-1","range":"forever"}"#).unwrap();
        assert!(r.validate().unwrap_err().to_string().contains("range"));
        assert!(serde_json::from_str::<StreaksRequest>("{}").is_err());
    }

    #[test]
    fn cursors_are_start_times_that_read_back() {
        let st = ClosedStreak {
            start_time: 1_796_312_000.123_456_7,
            end_time: 1_796_312_600.0,
            avg_score: 90.0,
            min_score: 80.0,
        };
        let r = StreaksRequest {
            host_id: "web-1".into(),
            range: None,
            limit: Some(5),
            cursor: Some(encode_cursor(&st)),
        };
        assert!(r.validate().is_ok());
        assert_eq!(r.after().unwrap(), Some(st.start_time));
        for bad in ["x", "NaN", "inf", ""] {
            let r = StreaksRequest {
                cursor: Some(bad.into()),
                ..r.clone()
            };
            assert!(
                r.validate().unwrap_err().to_string().contains("cursor"),
                "{bad}"
            );
        }
        let r = StreaksRequest {
            limit: Some(0),
            ..r
        };
        assert!(r.validate().is_err());
    }
}
