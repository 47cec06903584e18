//! `lullctl history HOST`: a host's recent figures from the history store,
//! one sparkline per signal (the bucket means, scaled between the series'
//! lowest and highest), with the lowest, highest and latest value.

use clap::Args;
use lull_engine::quiet::history::{HistoryPoint, HistoryReply, HistoryRequest};
use lull_proto::subjects::endpoints as ep;

use crate::output::{call, json, render_table, Zone};
use crate::Ctx;

/// Arguments of `lullctl history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The host.
    pub host: String,
    /// Signal group: quiet, host, process, api or addon:<id>.
    #[arg(long, default_value = "quiet")]
    pub group: String,
    /// How far back ("1h", "24h", "7d"); the coordinator's default when absent.
    #[arg(long)]
    pub range: Option<String>,
    /// Bucket width ("10s", "1m"); chosen from the range when absent.
    #[arg(long)]
    pub step: Option<String>,
    /// Widest sparkline, characters.
    #[arg(long, default_value_t = 60)]
    pub width: usize,
}

/// Runs the command; returns the exit code.
pub async fn run(ctx: &Ctx, a: HistoryArgs) -> anyhow::Result<i32> {
    let req = HistoryRequest {
        host_id: a.host,
        group: a.group,
        range: a.range,
        step: a.step,
    };
    let r: HistoryReply = call(ctx, ep::STATS_HISTORY, &req).await?;
    if ctx.json {
        json(&r)?;
    } else {
        print!("{}", render(&r, a.width.clamp(8, 400), Zone::Local));
    }
    Ok(0)
}

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A sparkline of `values` (gaps as spaces), at most `width` characters:
/// longer series are averaged into `width` groups.
pub fn sparkline(values: &[Option<f64>], width: usize) -> String {
    let cols = squeeze(values, width.max(1));
    let known: Vec<f64> = cols.iter().flatten().copied().collect();
    let lo = known.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = known.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    cols.iter()
        .map(|v| match v {
            None => ' ',
            Some(_) if hi - lo < 1e-9 => BARS[3],
            Some(x) => {
                let i = ((x - lo) / (hi - lo) * 7.0).round() as usize;
                BARS[i.min(7)]
            }
        })
        .collect()
}

/// `values` averaged into at most `width` columns.
fn squeeze(values: &[Option<f64>], width: usize) -> Vec<Option<f64>> {
    if values.len() <= width {
        return values.to_vec();
    }
    (0..width)
        .map(|c| {
            let a = c * values.len() / width;
            let b = ((c + 1) * values.len() / width).max(a + 1);
            let known: Vec<f64> = values[a..b].iter().flatten().copied().collect();
            (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64)
        })
        .collect()
}

/// The series of one signal: each point's mean, `None` where missing.
fn series(points: &[HistoryPoint], key: &str) -> Vec<Option<f64>> {
    points
        .iter()
        .map(|p| p.values.get(key).map(|a| a.avg))
        .collect()
}

fn num(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{v:.3e}")
    } else if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The reply as text: a heading, then one line per signal with its
/// lowest, highest and latest value and the sparkline.
pub fn render(r: &HistoryReply, width: usize, zone: Zone) -> String {
    let mut out = format!(
        "{} {}: {} to {}, {} points of {}\n",
        r.host_id,
        r.group,
        zone.datetime(r.start),
        zone.datetime(r.end),
        r.points.len(),
        r.step
    );
    let mut keys: Vec<&String> = r.points.iter().flat_map(|p| p.values.keys()).collect();
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        out.push_str("no data in this range\n");
        return out;
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            let s = series(&r.points, k);
            let known: Vec<f64> = s.iter().flatten().copied().collect();
            let lo = known.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = known.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let last = s.iter().rev().flatten().next().copied();
            vec![
                k.to_string(),
                num(lo),
                num(hi),
                last.map(num).unwrap_or_else(|| "-".into()),
                sparkline(&s, width),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&render_table(
        &["SIGNAL", "MIN", "MAX", "LAST", "HISTORY"],
        &rows,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_engine::quiet::history::Agg;
    use std::collections::BTreeMap;

    fn point(t: f64, vals: &[(&str, f64)]) -> HistoryPoint {
        HistoryPoint {
            t,
            count: 1,
            values: vals
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        Agg {
                            avg: *v,
                            min: *v,
                            max: *v,
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn reply() -> HistoryReply {
        let t0 = 1_762_732_800.0;
        let points = (0..16)
            .map(|i| {
                let i = f64::from(i);
                let score = 100.0 - (i - 8.0).abs() * 10.0;
                let mut vals = vec![("quiet_score", score), ("cpu_pct", 100.0 - score)];
                if !(4.0..=11.0).contains(&i) {
                    vals.push(("io_pressure", 2.5));
                }
                point(t0 + i * 60.0, &vals)
            })
            .collect();
        HistoryReply {
            host_id: "web-1".into(),
            group: "quiet".into(),
            range: "16m".into(),
            step: "1m".into(),
            start: t0,
            end: t0 + 960.0,
            points,
        }
    }

    #[test]
    fn sparklines_match_the_golden_rendering() {
        let got = render(&reply(), 60, Zone::utc());
        let want = include_str!("../tests/golden/history.txt");
        assert_eq!(got, want, "got:\n{got}");
    }

    #[test]
    fn long_series_are_squeezed_and_gaps_kept() {
        let v: Vec<Option<f64>> = (0..100).map(|i| Some(f64::from(i))).collect();
        let s = sparkline(&v, 10);
        assert_eq!(s.chars().count(), 10);
        assert!(s.starts_with('▁') && s.ends_with('█'), "{s}");
        assert_eq!(sparkline(&[Some(1.0), None, Some(3.0)], 10), "▁ █");
        assert_eq!(sparkline(&[Some(5.0), Some(5.0)], 10), "▄▄");
        let mut empty = reply();
        empty.points.clear();
        assert!(render(&empty, 60, Zone::utc()).ends_with("no data in this range\n"));
    }
}
