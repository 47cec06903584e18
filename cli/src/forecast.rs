//! `lullctl forecast HOST`: the host's quiet forecast as a 7×24 heatmap
//! (day of week by hour, in local time, shaded by the mean quiet score of
//! that hour over the lookback; `×` where an operator block or maintenance
//! window covers the hour), and the next predicted quiet window.

use clap::Args;
use lull_engine::quiet::forecast::{ForecastReply, ForecastRequest, HOURS_PER_WEEK};
use lull_proto::subjects::endpoints as ep;

use crate::output::{call, human_duration, json, until_from, Zone};
use crate::Ctx;

/// Arguments of `lullctl forecast`.
#[derive(Debug, Args)]
pub struct ForecastArgs {
    /// The host.
    pub host: String,
    /// Quiet threshold (0..100); the coordinator's when absent.
    #[arg(long)]
    pub threshold: Option<f64>,
}

/// Runs the command; returns the exit code.
pub async fn run(ctx: &Ctx, a: ForecastArgs) -> anyhow::Result<i32> {
    let req = ForecastRequest {
        host_id: a.host,
        threshold: a.threshold,
    };
    let f: ForecastReply = call(ctx, ep::QUIET_FORECAST, &req).await?;
    if ctx.json {
        json(&f)?;
    } else {
        print!("{}", render(&f, Zone::Local));
    }
    Ok(0)
}

/// The mark of an hour an operator block or maintenance window covers.
pub const BLOCKED: char = '×';

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// The shade of one cell: `█` at or above the threshold (quiet), then
/// `▓`, `▒`, `░` for the thirds below it, `·` without data.
pub fn shade(score: Option<f64>, threshold: f64) -> char {
    match score {
        None => '·',
        Some(s) if s >= threshold => '█',
        Some(s) if s >= threshold * 2.0 / 3.0 => '▓',
        Some(s) if s >= threshold / 3.0 => '▒',
        Some(_) => '░',
    }
}

/// The heatmap and the next window as text. Rows are the days of the week
/// in `zone` (the forecast's cells are UTC hours; they are shifted by the
/// zone's whole-hour offset at `generated_at`), two characters per hour.
pub fn render(f: &ForecastReply, zone: Zone) -> String {
    let offset_h = i64::from(zone.offset_sec(f.generated_at)).div_euclid(3600);
    let utc = |day: usize, hour: usize| -> usize {
        let local = (day * 24 + hour) as i64;
        (local - offset_h).rem_euclid(HOURS_PER_WEEK as i64) as usize
    };
    let cell = |i: usize| f.heatmap.get(i).copied().flatten();
    let blocked = |i: usize| f.blocked.get(i).copied().unwrap_or(false);
    let t = f.threshold;
    let mut out = format!(
        "{}: mean quiet score by hour of the week (local time, UTC{}), threshold {}\n",
        f.host_id,
        offset_label(offset_h),
        fmt_num(t)
    );
    out.push_str("     ");
    for h in (0..24).step_by(3) {
        out.push_str(&format!("{h:02}    "));
    }
    out = out.trim_end().to_string();
    out.push('\n');
    for (d, name) in DAYS.iter().enumerate() {
        out.push_str(name);
        out.push_str("  ");
        for h in 0..24 {
            let i = utc(d, h);
            let c = if blocked(i) {
                BLOCKED
            } else {
                shade(cell(i), t)
            };
            out.push(c);
            out.push(c);
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "     █ quiet (≥{})  ▓ ≥{}  ▒ ≥{}  ░ below  · no data{}\n",
        fmt_num(t),
        fmt_num(t * 2.0 / 3.0),
        fmt_num(t / 3.0),
        if f.blocked.iter().any(|b| *b) {
            "  × blocked (operator block or maintenance window)"
        } else {
            ""
        }
    ));
    out.push_str(&next_window_line(f, zone));
    out.push('\n');
    out
}

/// `next quiet window: Thu 02:00 to Thu 06:00 (in 3 h, for 4 h), mean score 82.5`.
pub fn next_window_line(f: &ForecastReply, zone: Zone) -> String {
    match &f.next_window {
        None => "next quiet window: none predicted within a week".into(),
        Some(w) => format!(
            "next quiet window: {} to {} ({}, for {}), mean score {:.1}",
            zone.weekday_time(w.start_time),
            zone.weekday_time(w.end_time),
            if w.start_time <= f.generated_at {
                "now".to_string()
            } else {
                until_from(w.start_time, f.generated_at)
            },
            human_duration(w.end_time - w.start_time),
            w.avg_score
        ),
    }
}

fn offset_label(h: i64) -> String {
    if h == 0 {
        String::new()
    } else {
        format!("{h:+}")
    }
}

fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 0.05 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;
    use lull_engine::quiet::forecast::QuietWindow;

    /// Monday 2025-11-10 00:00 UTC.
    const MONDAY: f64 = 1_762_732_800.0;

    /// Quiet nights (00:00 to 06:00 UTC every day), busy office hours,
    /// no data on Sunday afternoon.
    fn reply() -> ForecastReply {
        let heatmap: Vec<Option<f64>> = (0..HOURS_PER_WEEK)
            .map(|i| {
                let (day, hour) = (i / 24, i % 24);
                match hour {
                    _ if day == 6 && (12..18).contains(&hour) => None,
                    0..=5 => Some(85.0),
                    6..=8 | 18..=23 => Some(50.0),
                    _ => Some(20.0),
                }
            })
            .collect();
        ForecastReply {
            host_id: "web-1".into(),
            generated_at: MONDAY + 3.0 * 86_400.0 + 22.5 * 3600.0,
            threshold: 70.0,
            samples: vec![12; HOURS_PER_WEEK],
            heatmap,
            blocked: vec![false; HOURS_PER_WEEK],
            next_window: Some(QuietWindow {
                start_time: MONDAY + 4.0 * 86_400.0,
                end_time: MONDAY + 4.0 * 86_400.0 + 6.0 * 3600.0,
                avg_score: 85.0,
            }),
        }
    }

    #[test]
    fn heatmap_matches_the_golden_rendering() {
        let got = render(&reply(), Zone::utc());
        let want = include_str!("../tests/golden/forecast_utc.txt");
        assert_eq!(got, want, "got:\n{got}");
    }

    #[test]
    fn heatmap_is_shifted_to_local_time() {
        let plus2 = Zone::Fixed(FixedOffset::east_opt(2 * 3600).unwrap());
        let got = render(&reply(), plus2);
        let want = include_str!("../tests/golden/forecast_utc+2.txt");
        assert_eq!(got, want, "got:\n{got}");
    }

    #[test]
    fn blocked_hours_are_marked() {
        let mut f = reply();
        // Tuesday 02:00 and 03:00 UTC.
        f.blocked[24 + 2] = true;
        f.blocked[24 + 3] = true;
        let got = render(&f, Zone::utc());
        let tue = got.lines().find(|l| l.starts_with("Tue")).unwrap();
        assert_eq!(tue.chars().skip(5 + 4).take(4).collect::<String>(), "××××");
        assert!(got.contains("× blocked"), "{got}");
        assert!(!render(&reply(), Zone::utc()).contains('×'));
    }

    #[test]
    fn shades_follow_the_threshold() {
        assert_eq!(shade(None, 70.0), '·');
        assert_eq!(shade(Some(70.0), 70.0), '█');
        assert_eq!(shade(Some(50.0), 70.0), '▓');
        assert_eq!(shade(Some(30.0), 70.0), '▒');
        assert_eq!(shade(Some(5.0), 70.0), '░');
        let mut f = reply();
        f.next_window = None;
        assert_eq!(
            next_window_line(&f, Zone::utc()),
            "next quiet window: none predicted within a week"
        );
    }
}
