//! Output helpers: aligned tables for
//! humans, JSON for scripts (times as RFC 3339 in local time), times in
//! local time, humanised durations, and the request helper that turns
//! error replies into readable errors.

use chrono::{DateTime, FixedOffset, Local, Offset, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Ctx;

/// Sends a request to `lull.v1.<endpoint>` and decodes the reply.
pub async fn call<B: Serialize, R: DeserializeOwned>(
    ctx: &Ctx,
    endpoint: &str,
    body: &B,
) -> anyhow::Result<R> {
    call_within(ctx, endpoint, body, ctx.timeout).await
}

/// [`call`] with its own timeout, for a request whose answer takes longer
/// (a drain answers once the leases have ended).
pub async fn call_within<B: Serialize, R: DeserializeOwned>(
    ctx: &Ctx,
    endpoint: &str,
    body: &B,
    timeout: std::time::Duration,
) -> anyhow::Result<R> {
    let subject = ctx.subjects.endpoint(endpoint);
    lull_client::request::request(&ctx.client, subject, body, timeout)
        .await
        .map_err(|e| anyhow::Error::new(e).context(endpoint.to_string()))
}

/// Prints a value as pretty JSON, with its times as RFC 3339 (see
/// [`json_value`]).
pub fn json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(&json_value(v, Zone::Local)?)?
    );
    Ok(())
}

/// Prints a data document (an export meant for re-import) as pretty JSON,
/// unchanged.
pub fn json_raw<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Whether a JSON key names a point in time (Unix seconds on the wire).
pub fn is_time_key(k: &str) -> bool {
    k.ends_with("_at")
        || k.ends_with("_time")
        || matches!(
            k,
            "at" | "t"
                | "last_seen"
                | "until"
                | "since"
                | "deadline"
                | "timestamp"
                | "start"
                | "end"
        )
}

/// `v` as JSON with every time field (see [`is_time_key`]) turned from
/// Unix seconds into an RFC 3339 string in `zone`.
pub fn json_value<T: Serialize>(v: &T, zone: Zone) -> anyhow::Result<serde_json::Value> {
    let mut v = serde_json::to_value(v)?;
    times_to_rfc3339(&mut v, zone);
    Ok(v)
}

fn times_to_rfc3339(v: &mut serde_json::Value, zone: Zone) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                match x {
                    Value::Number(n) if is_time_key(k) => {
                        if let Some(t) = n.as_f64() {
                            *x = Value::String(zone.rfc3339(t));
                        }
                    }
                    _ => times_to_rfc3339(x, zone),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|x| times_to_rfc3339(x, zone)),
        _ => {}
    }
}

/// Rows under headers with aligned columns, as text (one line each).
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let w = widths.get(i).copied().unwrap_or(0);
                let pad = w.saturating_sub(c.chars().count());
                format!("{c}{}", " ".repeat(pad))
            })
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(&headers.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    for r in rows {
        line(r);
    }
    out
}

/// Prints rows under headers with aligned columns.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", render_table(headers, rows));
}

/// The time zone times are shown in: the machine's (`TZ`,
/// `/etc/localtime`), or a fixed offset (tests, golden renderings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Zone {
    /// The local time zone.
    #[default]
    Local,
    /// A fixed offset from UTC.
    Fixed(FixedOffset),
}

impl Zone {
    /// UTC, for tests.
    pub fn utc() -> Zone {
        Zone::Fixed(Utc.fix())
    }

    /// The time `t` (Unix seconds) in this zone.
    pub fn at(self, t: f64) -> DateTime<FixedOffset> {
        let t = if t.is_finite() { t } else { 0.0 };
        let secs = t.floor() as i64;
        let nanos = ((t - t.floor()) * 1e9) as u32;
        let utc = DateTime::<Utc>::from_timestamp(secs, nanos.min(999_999_999))
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        match self {
            Zone::Local => utc.with_timezone(&Local).fixed_offset(),
            Zone::Fixed(off) => utc.with_timezone(&off),
        }
    }

    /// `2026-12-03 16:05:09` in this zone.
    pub fn datetime(self, t: f64) -> String {
        self.at(t).format("%Y-%m-%d %H:%M:%S").to_string()
    }

    /// `Thu 16:05` in this zone (for times within the week).
    pub fn weekday_time(self, t: f64) -> String {
        self.at(t).format("%a %H:%M").to_string()
    }

    /// RFC 3339 with the zone's offset: `2026-12-03T16:05:09+01:00`.
    pub fn rfc3339(self, t: f64) -> String {
        self.at(t).to_rfc3339_opts(SecondsFormat::Secs, false)
    }

    /// The offset from UTC at `t`, in seconds.
    pub fn offset_sec(self, t: f64) -> i32 {
        self.at(t).offset().local_minus_utc()
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a Unix time.
pub fn utc(t: f64) -> String {
    Zone::utc().datetime(t)
}

/// `YYYY-MM-DD HH:MM:SS` of a Unix time, in local time.
pub fn local(t: f64) -> String {
    Zone::Local.datetime(t)
}

/// A duration in seconds for people: `450 ms`, `62 s` (up to two
/// minutes), `3 min 5 s`,
/// `2 h 5 min`, `3 d 4 h`.
pub fn human_duration(sec: f64) -> String {
    if !sec.is_finite() {
        return "-".into();
    }
    let sec = sec.max(0.0);
    if sec < 1.0 {
        return format!("{:.0} ms", sec * 1000.0);
    }
    let s = sec.round() as u64;
    let two = |a: u64, ua: &str, b: u64, ub: &str| {
        if b == 0 {
            format!("{a} {ua}")
        } else {
            format!("{a} {ua} {b} {ub}")
        }
    };
    match s {
        0..=119 => format!("{s} s"),
        120..=3599 => two(s / 60, "min", s % 60, "s"),
        3600..=86_399 => two(s / 3600, "h", s % 3600 / 60, "min"),
        _ => two(s / 86_400, "d", s % 86_400 / 3600, "h"),
    }
}

/// How long ago `t` was, from `now`: `62 s ago`, `now` for the future.
pub fn ago_from(t: f64, now: f64) -> String {
    let d = now - t;
    if d < 0.5 {
        "now".into()
    } else {
        format!("{} ago", human_duration(d))
    }
}

/// How long ago `t` was: `62 s ago`.
pub fn ago(t: f64) -> String {
    ago_from(t, lull_common::runtime::now_unix())
}

/// Time until `t` from `now`: `in 12 s`, or how long ago when past.
pub fn until_from(t: f64, now: f64) -> String {
    let d = t - now;
    if d >= 0.0 {
        format!("in {}", human_duration(d))
    } else {
        ago_from(t, now)
    }
}

/// Time until `t`: `in 12 s`.
pub fn until(t: f64) -> String {
    until_from(t, lull_common::runtime::now_unix())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_a_zone() {
        let z = Zone::utc();
        assert_eq!(z.datetime(0.0), "1970-01-01 00:00:00");
        assert_eq!(z.datetime(1_763_026_000.0), "2025-11-13 09:26:40");
        assert_eq!(z.rfc3339(951_782_400.0), "2000-02-29T00:00:00+00:00");
        let plus1 = Zone::Fixed(FixedOffset::east_opt(3600).unwrap());
        assert_eq!(plus1.rfc3339(1_763_026_000.0), "2025-11-13T10:26:40+01:00");
        assert_eq!(plus1.weekday_time(1_763_026_000.0), "Thu 10:26");
    }

    #[test]
    fn durations_are_humanised() {
        assert_eq!(human_duration(0.45), "450 ms");
        assert_eq!(human_duration(62.0), "62 s");
        assert_eq!(human_duration(185.0), "3 min 5 s");
        assert_eq!(human_duration(180.0), "3 min");
        assert_eq!(human_duration(7500.0), "2 h 5 min");
        assert_eq!(human_duration(3.0 * 86_400.0 + 4.0 * 3600.0), "3 d 4 h");
        assert_eq!(ago_from(100.0, 162.0), "62 s ago");
        assert_eq!(until_from(112.0, 100.0), "in 12 s");
        assert_eq!(until_from(100.0, 162.0), "62 s ago");
    }

    #[test]
    fn json_times_become_rfc3339() {
        let v = serde_json::json!({
            "last_seen": 0.0, "quiet_score": 90.5, "expires_at": 86_400.0,
            "rows": [{"start_time": 60.0, "cost_units": 3}], "until": null
        });
        let out = json_value(&v, Zone::utc()).unwrap();
        assert_eq!(out["last_seen"], "1970-01-01T00:00:00+00:00");
        assert_eq!(out["expires_at"], "1970-01-02T00:00:00+00:00");
        assert_eq!(out["rows"][0]["start_time"], "1970-01-01T00:01:00+00:00");
        assert_eq!(out["rows"][0]["cost_units"], 3);
        assert_eq!(out["quiet_score"], 90.5);
        assert!(out["until"].is_null());
    }

    #[test]
    fn tables_align_on_characters() {
        let t = render_table(&["A", "B"], &[vec!["░░".into(), "x".into()]]);
        assert_eq!(t, "A   B\n░░  x\n");
    }
}
