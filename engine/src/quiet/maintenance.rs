//! Maintenance windows (pure): a block scheduled ahead, either once (from a
//! start, optionally until an end) or recurring (on some days of the week
//! at a local time, in a named time zone, for a duration). A [`Window`]
//! answers which spans of time it covers; [`merge`] joins spans.
//!
//! Local times are turned into instants with the time zone's rules
//! (`jiff`), so a window keeps its local opening time across daylight
//! saving changes. A local time that does not exist (the spring-forward
//! gap) opens at the same offset after the gap (02:30 becomes 03:30); one
//! that happens twice (the autumn fold) opens at its first occurrence.
//! The duration is elapsed time. The time zone is resolved by the caller
//! (from the system's tzdb or a bundled copy) before it gets here: nothing
//! in this module reads a file.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use lull_proto::error::ValidationError;
use lull_proto::msg::hosts::{Recurrence, Weekday};

/// A span of time `[start, end)`, Unix seconds; `end` may be infinite.
pub type Span = (f64, f64);

/// How far ahead anything looks for the next opening (a week and a day).
pub const LOOKAHEAD_SEC: f64 = 8.0 * 86_400.0;

/// Most days walked in one span query (bounds the work of a huge range).
const MAX_DAYS: i64 = 400;

/// A weekly recurrence with its time zone resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Weekly {
    /// Bit `i` set = opens on day `i` (0 = Monday).
    days: u8,
    hour: i8,
    minute: i8,
    duration_sec: f64,
    tz_name: String,
    tz: TimeZone,
}

impl Weekly {
    /// A recurrence as requested, with `tz` the zone `r.tz` names (looked
    /// up by the caller).
    pub fn new(r: &Recurrence, tz: TimeZone) -> Result<Self, ValidationError> {
        use lull_proto::validate::Validate;
        r.validate()?;
        let (hour, minute) = r.hour_minute().ok_or_else(|| ValidationError::Invalid {
            field: "recurrence.at".into(),
            reason: "must be \"HH:MM\"".into(),
        })?;
        let days = if r.days.is_empty() {
            0x7f
        } else {
            r.days.iter().fold(0u8, |m, d| m | (1 << d.index()))
        };
        Ok(Weekly {
            days,
            hour: hour as i8,
            minute: minute as i8,
            duration_sec: r.duration_sec,
            tz_name: r.tz.clone(),
            tz,
        })
    }

    /// The wire form.
    pub fn recurrence(&self) -> Recurrence {
        let days = if self.days == 0x7f {
            Vec::new()
        } else {
            Weekday::ALL
                .into_iter()
                .filter(|d| self.days & (1 << d.index()) != 0)
                .collect()
        };
        Recurrence {
            days,
            at: format!("{:02}:{:02}", self.hour, self.minute),
            duration_sec: self.duration_sec,
            tz: self.tz_name.clone(),
        }
    }

    /// The openings that overlap `[from, to]` (an opening that ends at
    /// `from` does not), in order.
    pub fn openings(&self, from: f64, to: f64) -> Vec<Span> {
        let (Some(first), Some(last)) = (
            self.local_date(from - self.duration_sec),
            self.local_date(to),
        ) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut day = first.yesterday().unwrap_or(first);
        for _ in 0..MAX_DAYS {
            if day > last {
                break;
            }
            let weekday = day.weekday().to_monday_zero_offset();
            if self.days & (1 << weekday) != 0 {
                let local = day.at(self.hour, self.minute, 0, 0);
                if let Ok(t) = self.tz.to_timestamp(local) {
                    let start = t.as_second() as f64;
                    let end = start + self.duration_sec;
                    if end > from && start <= to {
                        out.push((start, end));
                    }
                }
            }
            match day.tomorrow() {
                Ok(d) => day = d,
                Err(_) => break,
            }
        }
        out
    }

    fn local_date(&self, t: f64) -> Option<Date> {
        if !t.is_finite() {
            return None;
        }
        let ts = Timestamp::from_second(t.floor() as i64).ok()?;
        Some(self.tz.to_datetime(ts).date())
    }
}

/// A scheduled maintenance window.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Its id (assigned by storage).
    pub id: i64,
    /// Why, when the operator said.
    pub reason: Option<String>,
    /// A one-off window starts here; a recurring one applies from here.
    pub from: f64,
    /// A one-off window ends here; a recurring one stops here. `None`:
    /// until removed.
    pub until: Option<f64>,
    /// How it recurs; `None` for a one-off window.
    pub weekly: Option<Weekly>,
    /// Unix seconds it was added.
    pub created_at: f64,
}

impl Window {
    /// The spans it covers that overlap `[from, to]`, in order, clipped to
    /// its own `from` and `until`.
    pub fn spans(&self, from: f64, to: f64) -> Vec<Span> {
        let end = self.until.unwrap_or(f64::INFINITY);
        if end <= from || self.from > to || end <= self.from {
            return Vec::new();
        }
        match &self.weekly {
            None => vec![(self.from, end)],
            Some(w) => {
                let to = to.min(from + MAX_DAYS as f64 * 86_400.0);
                let spans = w
                    .openings(from.max(self.from), to.min(end))
                    .into_iter()
                    .map(|(s, e)| (s.max(self.from), e.min(end)))
                    .filter(|(s, e)| s < e)
                    .collect();
                merge(spans)
            }
        }
    }

    /// The span in force at `now`, if any.
    pub fn at(&self, now: f64) -> Option<Span> {
        self.spans(now, now)
            .into_iter()
            .find(|&(s, e)| s <= now && now < e)
    }

    /// The span in force at `now`, else the next one (within
    /// [`LOOKAHEAD_SEC`]).
    pub fn current_or_next(&self, now: f64) -> Option<Span> {
        self.spans(now, now + LOOKAHEAD_SEC)
            .into_iter()
            .find(|&(_, e)| now < e)
    }

    /// The next time after `now` at which the window opens or closes
    /// (within [`LOOKAHEAD_SEC`]).
    pub fn next_change(&self, now: f64) -> Option<f64> {
        let (s, e) = self.current_or_next(now)?;
        let t = if s > now { s } else { e };
        t.is_finite().then_some(t)
    }

    /// Whether nothing of it is left at `now` (it can be forgotten).
    pub fn over(&self, now: f64) -> bool {
        self.until.is_some_and(|u| u <= now)
    }
}

/// Sorts spans and joins those that overlap or touch.
pub fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for (s, e) in spans {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

#[cfg(test)]
#[path = "maintenance_tests.rs"]
mod tests;
