//! The scheduling options of `lullctl block`, parsed into a request:
//! `--at WHEN`, `--for DURATION`, `--every day|week` and `--tz ZONE`.
//!
//! `WHEN` is written the way systemd calendar events and cron are read:
//! a local time `HH:MM`, optionally after days of the week (`sat 02:00`,
//! `sat,sun 02:00`, `mon..fri 22:00`; names may be spelt out), or a local
//! date and time `YYYY-MM-DD HH:MM`. Without `--every` it is a one-off
//! window at the next such moment; with `--every week` (days required) or
//! `--every day` (no days) it recurs. One-off starts may also be a duration
//! from now (`2h`), Unix seconds or a UTC time ending in `Z`. Local times
//! are in `--tz` (an IANA name; UTC by default), DST included.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use lull_proto::msg::hosts::{Recurrence, Weekday};

/// How often a window recurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Every {
    /// Every day at `--at HH:MM`.
    Day,
    /// On the days of `--at` ("sat 02:00", "mon..fri 22:00").
    Week,
}

/// What the scheduling options ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct When {
    /// Start (one-off), Unix seconds; `None` for a recurrence.
    pub from: Option<f64>,
    /// End (one-off: start + `--for`, or `--until`).
    pub until: Option<f64>,
    /// The recurrence.
    pub recurrence: Option<Recurrence>,
}

/// The options of `lullctl block` that schedule a window.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// `--at`.
    pub at: &'a str,
    /// `--at` read as a point in time (a duration from now, Unix seconds or
    /// a UTC time), when it is one.
    pub at_time: Option<f64>,
    /// `--for`.
    pub for_: Option<&'a str>,
    /// `--every`.
    pub every: Option<Every>,
    /// `--tz`.
    pub tz: &'a str,
    /// `--until`, parsed.
    pub until: Option<f64>,
}

/// Turns the scheduling options into a request's `from`, `until` and
/// `recurrence` at `now`.
pub fn parse(o: Options<'_>, now: f64) -> Result<When, String> {
    let Options {
        at,
        at_time,
        for_,
        every,
        tz: tz_name,
        until,
    } = o;
    let tz = TimeZone::get(tz_name).map_err(|e| format!("--tz {tz_name:?}: {e}"))?;
    let duration = for_.map(duration_sec).transpose()?;
    let Some(every) = every else {
        let from = match at_time {
            Some(t) => t,
            None => start_once(at, &tz, now)?,
        };
        if duration.is_some() && until.is_some() {
            return Err("give --for or --until, not both".into());
        }
        return Ok(When {
            from: Some(from),
            until: until.or(duration.map(|d| from + d)),
            recurrence: None,
        });
    };
    let duration = duration.ok_or("a recurring window needs --for (\"4h\")")?;
    let (days, time) = days_and_time(at)?;
    let days = match (every, days.is_empty()) {
        (Every::Week, true) => return Err("--every week needs days in --at (\"sat 02:00\")".into()),
        (Every::Day, false) => {
            return Err("--every day takes a bare time in --at (\"02:00\")".into())
        }
        _ => days,
    };
    Ok(When {
        from: None,
        until,
        recurrence: Some(Recurrence {
            days,
            at: format!("{:02}:{:02}", time.hour(), time.minute()),
            duration_sec: duration,
            tz: tz_name.to_string(),
        }),
    })
}

/// `"4h"`, `"90m"`, `"1d"`, `"30s"`, `"1w"` → seconds.
pub fn duration_sec(s: &str) -> Result<f64, String> {
    parse_duration(s).ok_or_else(|| format!("{s:?} is not a duration like \"4h\" or \"90m\""))
}

fn parse_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let n: u64 = s[..s.len() - unit.len_utf8()].parse().ok()?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return None,
    };
    (n > 0).then(|| (n * mult) as f64)
}

/// The start of a one-off window: the next moment `at` names.
fn start_once(at: &str, tz: &TimeZone, now: f64) -> Result<f64, String> {
    if let Some(dt) = local_date_time(at) {
        let ts = tz
            .to_timestamp(dt)
            .map_err(|e| format!("--at {at:?}: {e}"))?;
        return Ok(ts.as_second() as f64);
    }
    let (days, time) = days_and_time(at)?;
    let now_ts = Timestamp::from_second(now.floor() as i64).map_err(|e| e.to_string())?;
    let mut day = tz.to_datetime(now_ts).date();
    for _ in 0..8 {
        let fits = days.is_empty()
            || days
                .iter()
                .any(|d| d.index() == day.weekday().to_monday_zero_offset() as usize);
        if fits {
            let t = tz
                .to_timestamp(day.to_datetime(time))
                .map_err(|e| format!("--at {at:?}: {e}"))?;
            if t.as_second() as f64 > now {
                return Ok(t.as_second() as f64);
            }
        }
        day = day.tomorrow().map_err(|e| e.to_string())?;
    }
    Err(format!("--at {at:?}: no such time in the coming week"))
}

/// `YYYY-MM-DD HH:MM[:SS]` (or with `T`), a local date and time.
fn local_date_time(s: &str) -> Option<DateTime> {
    let (d, t) = s.trim().split_once([' ', 'T'])?;
    let date: Date = d.parse().ok()?;
    Some(date.to_datetime(time_of(t.trim())?))
}

fn time_of(s: &str) -> Option<Time> {
    let mut parts = s.split(':');
    let h: i8 = parts.next()?.parse().ok()?;
    let m: i8 = parts.next()?.parse().ok()?;
    let sec: i8 = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    if parts.next().is_some() {
        return None;
    }
    Time::new(h, m, sec, 0).ok()
}

/// `"[DAYS ]HH:MM"`: days as `sat`, `sat,sun`, `mon..fri` (any mix).
fn days_and_time(s: &str) -> Result<(Vec<Weekday>, Time), String> {
    let bad = || {
        format!(
            "--at {s:?}: expected \"HH:MM\" or days and a time (\"sat 02:00\", \"mon..fri 22:00\")"
        )
    };
    let mut words = s.split_whitespace().collect::<Vec<_>>();
    let time = words.pop().and_then(time_of).ok_or_else(bad)?;
    let mut days = Vec::new();
    for item in words.join(",").split(',').filter(|w| !w.is_empty()) {
        match item.split_once("..") {
            Some((a, b)) => {
                let (a, b) = (weekday(a).ok_or_else(bad)?, weekday(b).ok_or_else(bad)?);
                let mut i = a.index();
                loop {
                    days.push(Weekday::ALL[i]);
                    if i == b.index() {
                        break;
                    }
                    i = (i + 1) % 7;
                }
            }
            None => days.push(weekday(item).ok_or_else(bad)?),
        }
    }
    days.sort();
    days.dedup();
    Ok((days, time))
}

fn weekday(s: &str) -> Option<Weekday> {
    let s = s.trim().to_ascii_lowercase();
    Weekday::ALL.into_iter().find(|d| {
        let short = d.as_str();
        s == short || (s.len() >= 3 && full_name(*d).starts_with(&s))
    })
}

fn full_name(d: Weekday) -> &'static str {
    [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ][d.index()]
}

/// A recurrence as an operator reads it: `sat,sun 02:00 for 4h (Europe/Berlin)`.
pub fn describe(r: &Recurrence) -> String {
    let days = if r.days.is_empty() {
        "daily".to_string()
    } else {
        r.days
            .iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    let d = r.duration_sec;
    let dur = if d % 86_400.0 == 0.0 {
        format!("{}d", d / 86_400.0)
    } else if d % 3600.0 == 0.0 {
        format!("{}h", d / 3600.0)
    } else if d % 60.0 == 0.0 {
        format!("{}m", d / 60.0)
    } else {
        format!("{d}s")
    };
    format!("{days} {} for {dur} ({})", r.at, r.tz)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        at: &str,
        for_: Option<&str>,
        every: Option<Every>,
        tz: &str,
        until: Option<f64>,
        now: f64,
    ) -> Result<When, String> {
        // What `--at 2h` is read as by the caller.
        let at_time = at
            .strip_suffix('h')
            .and_then(|n| n.parse::<f64>().ok())
            .map(|h| now + h * 3600.0);
        super::parse(
            Options {
                at,
                at_time,
                for_,
                every,
                tz,
                until,
            },
            now,
        )
    }

    /// Saturday 2026-03-28 12:00:00 UTC (13:00 in Berlin, CET).
    const SAT_NOON: f64 = 1_774_699_200.0;

    #[test]
    fn weekly_windows_from_operator_syntax() {
        let w = parse(
            "sat 02:00",
            Some("4h"),
            Some(Every::Week),
            "Europe/Berlin",
            None,
            SAT_NOON,
        )
        .unwrap();
        let r = w.recurrence.unwrap();
        assert_eq!(
            (r.days, r.at.as_str(), r.duration_sec),
            (vec![Weekday::Sat], "02:00", 14_400.0)
        );
        assert_eq!(r.tz, "Europe/Berlin");
        assert_eq!(w.from, None);
        let (days, _) = days_and_time("mon..fri 22:00").unwrap();
        assert_eq!(days.len(), 5);
        let (days, _) = days_and_time("Saturday,sun 2:30").unwrap();
        assert_eq!(days, vec![Weekday::Sat, Weekday::Sun]);
        let (days, _) = days_and_time("fri..mon 01:00").unwrap();
        assert_eq!(
            days,
            vec![Weekday::Mon, Weekday::Fri, Weekday::Sat, Weekday::Sun]
        );
        let daily = parse("03:15", Some("30m"), Some(Every::Day), "UTC", None, 0.0).unwrap();
        assert_eq!(daily.recurrence.unwrap().days, vec![]);
        for (at, f, e) in [
            ("sat 02:00", None, Some(Every::Week)),
            ("02:00", Some("1h"), Some(Every::Week)),
            ("sat 02:00", Some("1h"), Some(Every::Day)),
            ("caturday 02:00", Some("1h"), Some(Every::Week)),
            ("sat 25:00", Some("1h"), Some(Every::Week)),
            ("sat 02:00", Some("4x"), Some(Every::Week)),
        ] {
            assert!(parse(at, f, e, "UTC", None, 0.0).is_err(), "{at}");
        }
        assert!(parse(
            "02:00",
            Some("1h"),
            Some(Every::Day),
            "Mars/Olympus",
            None,
            0.0
        )
        .is_err());
    }

    #[test]
    fn one_off_windows_start_at_the_next_such_time_in_the_zone() {
        // Next Sunday 02:00 in Berlin (29 March, still CET) = 01:00 UTC.
        let w = parse(
            "sun 02:00",
            Some("2h"),
            None,
            "Europe/Berlin",
            None,
            SAT_NOON,
        )
        .unwrap();
        let sun_utc_1 = SAT_NOON + 13.0 * 3600.0;
        assert_eq!(w.from, Some(sun_utc_1));
        assert_eq!(w.until, Some(sun_utc_1 + 7200.0));
        assert!(w.recurrence.is_none());
        // A bare time already past today means tomorrow.
        let w = parse("11:00", None, None, "UTC", None, SAT_NOON).unwrap();
        assert_eq!(w.from, Some(SAT_NOON + 23.0 * 3600.0));
        // A local date and time; a duration; a UTC time.
        let w = parse(
            "2026-03-29 04:00",
            None,
            None,
            "Europe/Berlin",
            Some(5e9),
            0.0,
        )
        .unwrap();
        assert_eq!(
            (w.from, w.until),
            (Some(SAT_NOON + 14.0 * 3600.0), Some(5e9))
        );
        let w = parse("2h", Some("30m"), None, "UTC", None, 1000.0).unwrap();
        assert_eq!((w.from, w.until), (Some(8200.0), Some(10_000.0)));
        assert!(parse("2h", Some("30m"), None, "UTC", Some(9e9), 0.0).is_err());
    }

    #[test]
    fn recurrences_read_back() {
        let r = Recurrence {
            days: vec![Weekday::Sat, Weekday::Sun],
            at: "02:00".into(),
            duration_sec: 14_400.0,
            tz: "Europe/Berlin".into(),
        };
        assert_eq!(describe(&r), "sat,sun 02:00 for 4h (Europe/Berlin)");
        let r = Recurrence {
            days: vec![],
            duration_sec: 90.0,
            ..r
        };
        assert_eq!(describe(&r), "daily 02:00 for 90s (Europe/Berlin)");
    }
}
