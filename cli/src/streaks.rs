//! `lullctl streaks [HOST]`: quiet streaks (uninterrupted QUIET periods)
//! of one host or of every host, newest first, in local time.

use clap::Args;
use lull_engine::quiet::streaks::{ClosedStreak, StreaksRequest};
use lull_proto::msg::hosts::HostSummary;
use serde::Serialize;

use crate::output::{human_duration, json, render_table, Zone};
use crate::Ctx;

/// Arguments of `lullctl streaks`.
#[derive(Debug, Args)]
pub struct StreaksArgs {
    /// One host; every host when absent.
    pub host: Option<String>,
    /// How far back ("24h", "7d"); the coordinator's default when absent.
    #[arg(long)]
    pub range: Option<String>,
}

/// One streak of one host (the `-o json` rows).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostStreak {
    /// Host id.
    pub host_id: String,
    /// The streak.
    #[serde(flatten)]
    pub streak: ClosedStreak,
    /// Its length, seconds.
    pub duration_sec: f64,
}

/// Runs the command; returns the exit code.
pub async fn run(ctx: &Ctx, a: StreaksArgs) -> anyhow::Result<i32> {
    let hosts = match a.host {
        Some(h) => vec![h],
        None => {
            let list: Vec<HostSummary> = crate::pages::hosts(ctx).await?;
            list.into_iter().map(|h| h.host_id).collect()
        }
    };
    let mut all = Vec::new();
    for host_id in hosts {
        let req = StreaksRequest {
            host_id: host_id.clone(),
            range: a.range.clone(),
            limit: None,
            cursor: None,
        };
        let s = crate::pages::streaks(ctx, &req).await?;
        all.extend(s.into_iter().map(|streak| HostStreak {
            host_id: host_id.clone(),
            duration_sec: streak.duration_sec(),
            streak,
        }));
    }
    sort(&mut all);
    if ctx.json {
        json(&all)?;
    } else {
        print!("{}", render(&all, Zone::Local));
    }
    Ok(0)
}

/// Newest first, then by host.
pub fn sort(v: &mut [HostStreak]) {
    v.sort_by(|a, b| {
        b.streak
            .end_time
            .total_cmp(&a.streak.end_time)
            .then_with(|| a.host_id.cmp(&b.host_id))
    });
}

/// The streaks as a table.
pub fn render(v: &[HostStreak], zone: Zone) -> String {
    if v.is_empty() {
        return "no quiet streaks in this range\n".into();
    }
    let rows: Vec<Vec<String>> = v
        .iter()
        .map(|s| {
            vec![
                s.host_id.clone(),
                zone.datetime(s.streak.start_time),
                zone.datetime(s.streak.end_time),
                human_duration(s.duration_sec),
                format!("{:.1}", s.streak.avg_score),
                format!("{:.1}", s.streak.min_score),
            ]
        })
        .collect();
    render_table(
        &["HOST", "START", "END", "DURATION", "AVG SCORE", "MIN SCORE"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(host: &str, start: f64, end: f64) -> HostStreak {
        let streak = ClosedStreak {
            start_time: start,
            end_time: end,
            avg_score: 88.04,
            min_score: 71.0,
        };
        HostStreak {
            host_id: host.into(),
            duration_sec: streak.duration_sec(),
            streak,
        }
    }

    #[test]
    fn streaks_match_the_golden_rendering() {
        let t = 1_762_732_800.0;
        let mut v = vec![s("web-1", t, t + 185.0), s("db-2", t + 600.0, t + 8100.0)];
        sort(&mut v);
        let want = "\
HOST   START                END                  DURATION   AVG SCORE  MIN SCORE
db-2   2025-11-10 00:10:00  2025-11-10 02:15:00  2 h 5 min  88.0       71.0
web-1  2025-11-10 00:00:00  2025-11-10 00:03:05  3 min 5 s  88.0       71.0
";
        assert_eq!(render(&v, Zone::utc()), want);
        let j = crate::output::json_value(&v[0], Zone::utc()).unwrap();
        assert_eq!(j["start_time"], "2025-11-10T00:10:00+00:00");
        assert_eq!(j["duration_sec"], 7500.0);
        assert_eq!(render(&[], Zone::utc()), "no quiet streaks in this range\n");
    }
}
