//! `lullctl block` and `lullctl unblock`: keep heavy work off one host or
//! the whole fleet, now or in a scheduled maintenance window (once or
//! recurring, see `schedule`), and lift it again. Without a host or
//! `--all`, `block` lists the blocks in force and the windows.

use anyhow::bail;
use clap::Args;
use lull_proto::msg::hosts::{
    BlockInfo, BlockReply, BlockRequest, BlockScope, UnblockRequest, WindowInfo,
};
use lull_proto::subjects::endpoints as ep;

use crate::output::{call, call_within, json, table};
use crate::schedule::{self, Every};
use crate::Ctx;

/// Arguments of `lullctl block`.
#[derive(Debug, Args)]
pub struct BlockArgs {
    /// The host to block (omit with --all; omit both to list blocks).
    host: Option<String>,
    /// Block the whole fleet.
    #[arg(long, conflicts_with = "host")]
    all: bool,
    /// Why (shown in `lullctl hosts`, lease denials and metrics logs).
    #[arg(long)]
    reason: Option<String>,
    /// When the block lifts by itself: a duration from now ("2h", "30m"),
    /// Unix seconds, or a UTC time "2025-11-14T03:00:00Z". With --every:
    /// when the recurrence stops.
    #[arg(long)]
    until: Option<String>,
    /// Start later, as a maintenance window: "sat 02:00", "mon..fri 22:00",
    /// "02:00", "2025-11-15 02:00" (local time in --tz), or "2h", Unix
    /// seconds, "...Z".
    #[arg(long)]
    at: Option<String>,
    /// How long the window lasts ("4h", "90m").
    #[arg(long = "for", value_name = "DURATION", requires = "at")]
    for_: Option<String>,
    /// Repeat the window every day or every week (on the days of --at).
    #[arg(long, value_enum, requires = "at")]
    every: Option<Every>,
    /// IANA time zone of the local times in --at ("Europe/Berlin").
    #[arg(long, default_value = "UTC", requires = "at")]
    tz: String,
    /// Also end the leases running there: revoked (their holders are told
    /// at once) with the reason, after --drain-timeout.
    #[arg(long, conflicts_with = "at")]
    drain: bool,
    /// With --drain: how long the running leases may finish by themselves
    /// first ("30s", "5m"; at most 1h). Default: revoke at once.
    #[arg(long, value_name = "DURATION", requires = "drain")]
    drain_timeout: Option<String>,
}

/// Arguments of `lullctl unblock`.
#[derive(Debug, Args)]
pub struct UnblockArgs {
    /// The host to unblock (omit with --all).
    host: Option<String>,
    /// Lift the fleet-wide block.
    #[arg(long, conflicts_with = "host")]
    all: bool,
    /// Also remove every maintenance window of the host (or, with --all,
    /// of the fleet).
    #[arg(long)]
    windows: bool,
    /// Remove one maintenance window, by id (see `lullctl block`).
    #[arg(long, value_name = "ID", conflicts_with_all = ["host", "all", "windows"])]
    window: Option<i64>,
}

/// Runs `lullctl block`; returns the exit code.
pub async fn block(ctx: &Ctx, a: BlockArgs) -> anyhow::Result<i32> {
    if a.host.is_none() && !a.all {
        if a.reason.is_some() || a.until.is_some() || a.at.is_some() {
            bail!("name a HOST or --all to block");
        }
        let r = crate::pages::blocks(ctx).await?;
        return print(ctx, &r, None);
    }
    let now = lull_common::runtime::now_unix();
    let until = match &a.until {
        Some(u) => Some(parse_until(u, now).map_err(|e| anyhow::anyhow!("--until: {e}"))?),
        None => None,
    };
    let drain_timeout_sec = match &a.drain_timeout {
        Some(d) => {
            Some(schedule::duration_sec(d).map_err(|e| anyhow::anyhow!("--drain-timeout: {e}"))?)
        }
        None => None,
    };
    let mut req = BlockRequest {
        host_id: a.host,
        all: a.all,
        reason: a.reason,
        until,
        drain: a.drain,
        drain_timeout_sec,
        ..Default::default()
    };
    if let Some(at) = &a.at {
        let opts = schedule::Options {
            at,
            at_time: parse_until(at, now).ok(),
            for_: a.for_.as_deref(),
            every: a.every,
            tz: &a.tz,
            until,
        };
        let w = schedule::parse(opts, now).map_err(|e| anyhow::anyhow!(e))?;
        req.from = w.from;
        req.until = w.until;
        req.recurrence = w.recurrence;
    }
    // A drain answers once the leases have ended: wait that long too.
    let wait = ctx.timeout + std::time::Duration::from_secs_f64(drain_timeout_sec.unwrap_or(0.0));
    let r: BlockReply = call_within(ctx, ep::HOSTS_BLOCK, &req, wait).await?;
    if let (Some(d), false) = (&r.drain, ctx.json) {
        for id in &d.finished {
            println!("lease {id} finished");
        }
        for id in &d.revoked {
            println!("lease {id} revoked");
        }
    }
    let what = target_name(req.host_id.as_deref());
    let headline = if req.is_window() {
        format!("scheduled a maintenance window for {what}")
    } else {
        format!("blocked {what}")
    };
    print(ctx, &r, Some(headline))
}

/// Runs `lullctl unblock`; returns the exit code.
pub async fn unblock(ctx: &Ctx, a: UnblockArgs) -> anyhow::Result<i32> {
    if a.host.is_none() && !a.all && a.window.is_none() {
        bail!("name a HOST, --all or --window ID to unblock");
    }
    let req = UnblockRequest {
        host_id: a.host,
        all: a.all,
        window_id: a.window,
        windows: a.windows,
    };
    let r: BlockReply = call(ctx, ep::HOSTS_UNBLOCK, &req).await?;
    let what = match req.window_id {
        Some(id) => format!("window {id}"),
        None => target_name(req.host_id.as_deref()),
    };
    let msg = if req.window_id.is_some() {
        if r.changed {
            format!("removed {what}")
        } else {
            format!("there is no {what}")
        }
    } else if r.changed {
        format!("unblocked {what}")
    } else {
        format!("{what} was not blocked")
    };
    print(ctx, &r, Some(msg))
}

fn target_name(host: Option<&str>) -> String {
    match host {
        Some(h) => format!("host {h}"),
        None => "the fleet".to_string(),
    }
}

fn print(ctx: &Ctx, r: &BlockReply, headline: Option<String>) -> anyhow::Result<i32> {
    if ctx.json {
        json(r)?;
        return Ok(0);
    }
    if let Some(h) = headline {
        println!("{h}");
    }
    if r.blocks.is_empty() {
        println!("no blocks in force");
    } else {
        let rows: Vec<Vec<String>> = r.blocks.iter().map(row).collect();
        table(&["SCOPE", "HOST", "UNTIL", "WINDOW", "REASON"], &rows);
    }
    if !r.windows.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = r.windows.iter().map(window_row).collect();
        table(
            &["WINDOW", "SCOPE", "HOST", "SCHEDULE", "NEXT", "REASON"],
            &rows,
        );
    }
    Ok(0)
}

fn scope(s: BlockScope) -> String {
    match s {
        BlockScope::Fleet => "FLEET".into(),
        BlockScope::Host => "HOST".into(),
    }
}

fn row(b: &BlockInfo) -> Vec<String> {
    vec![
        scope(b.scope),
        b.host_id.clone().unwrap_or_else(|| "*".into()),
        b.until.map_or_else(|| "-".into(), format_utc),
        b.window_id.map_or_else(|| "-".into(), |i| i.to_string()),
        b.reason.clone().unwrap_or_default(),
    ]
}

fn window_row(w: &WindowInfo) -> Vec<String> {
    let sched = match &w.recurrence {
        Some(r) => schedule::describe(r),
        None => format!(
            "once {} to {}",
            format_utc(w.from),
            w.until.map_or_else(|| "(until removed)".into(), format_utc)
        ),
    };
    let end = |e: Option<f64>| e.map_or_else(|| "(no end)".into(), format_utc);
    let next = match w.next_start {
        Some(_) if w.open => format!("open until {}", end(w.next_end)),
        Some(s) => format!("{} to {}", format_utc(s), end(w.next_end)),
        None => "-".into(),
    };
    vec![
        w.id.to_string(),
        scope(w.scope),
        w.host_id.clone().unwrap_or_else(|| "*".into()),
        sched,
        next,
        w.reason.clone().unwrap_or_default(),
    ]
}

/// Parses `--until`: a duration from `now` (`90s`, `30m`, `2h`, `1d`,
/// `1w`), Unix seconds, or `YYYY-MM-DDTHH:MM[:SS]Z` (UTC).
pub fn parse_until(s: &str, now: f64) -> Result<f64, String> {
    let s = s.trim();
    if let Ok(v) = s.parse::<f64>() {
        return if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            Err(format!("{s:?} is not a time"))
        };
    }
    if let Some(unit) = s.chars().last().filter(|c| "smhdw".contains(*c)) {
        let n = &s[..s.len() - 1];
        if let Ok(n) = n.parse::<u64>() {
            let mult = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => 604_800,
            };
            return Ok(now + (n * mult) as f64);
        }
    }
    parse_utc(s).ok_or_else(|| {
        format!("{s:?} is neither a duration (\"2h\"), Unix seconds nor a UTC time (\"2025-11-14T03:00:00Z\")")
    })
}

/// `YYYY-MM-DDTHH:MM[:SS]Z` → Unix seconds.
fn parse_utc(s: &str) -> Option<f64> {
    let s = s.strip_suffix('Z').or_else(|| s.strip_suffix('z'))?;
    let (date, time) = s.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, mo, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, mi) = (t.next()??, t.next()??);
    let sec = t.next().map_or(Some(0), |v| v)?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    if h < 0 || mi < 0 || sec < 0 {
        return None;
    }
    Some((days_from_civil(y, mo, day) * 86_400 + h * 3600 + mi * 60 + sec) as f64)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SSZ`.
fn format_utc(t: f64) -> String {
    format!("{}Z", crate::output::utc(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_accepts_durations_unix_seconds_and_utc_times() {
        assert_eq!(parse_until("2h", 1000.0), Ok(1000.0 + 7200.0));
        assert_eq!(parse_until("90s", 0.0), Ok(90.0));
        assert_eq!(parse_until("1w", 0.0), Ok(604_800.0));
        assert_eq!(parse_until("1763026000", 0.0), Ok(1_763_026_000.0));
        assert_eq!(parse_until("1970-01-02T00:00:00Z", 0.0), Ok(86_400.0));
        assert_eq!(
            parse_until("2025-11-10T00:00Z", 0.0),
            Ok(1_762_732_800.0),
            "Monday 2025-11-10"
        );
        assert_eq!(
            parse_until("2024-02-29T12:30:15Z", 0.0),
            Ok(1_709_209_815.0)
        );
        for bad in [
            "soon",
            "-5",
            "2h30",
            "2025-13-01T00:00Z",
            "2025-11-10T00:00",
            "NaN",
        ] {
            assert!(parse_until(bad, 0.0).is_err(), "{bad}");
        }
    }

    #[test]
    fn utc_formatting_inverts_parsing() {
        for t in [
            0.0,
            86_400.0,
            1_709_209_815.0,
            1_762_732_800.0,
            951_782_400.0,
        ] {
            let s = format_utc(t);
            let back = parse_utc(&s.replace(' ', "T")).unwrap();
            assert_eq!(back, t, "{s}");
        }
        assert_eq!(format_utc(1_762_732_800.0), "2025-11-10 00:00:00Z");
    }
}
