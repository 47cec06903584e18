//! `lullctl regions`: the build regions. With no subcommand, a table of the
//! campaign stats with each region's state; `select` ranks candidates,
//! `insights` shows seed 001's insights, `pardon R` lifts an outlaw,
//! `import FILE` loads a `campaign_stats.json` (legacy or current; sent in
//! parts when larger than one NATS message) and `export [FILE]` writes the
//! same structure. `--json` prints the raw replies.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use lull_proto::msg::region::{
    CampaignStats, RegionInsights, RegionSelectReply, RegionSelectRequest, SelectWeights,
};
use lull_proto::subjects::endpoints as ep;
use serde_json::{json, Value};

use crate::output::{ago, call, json, json_raw, table};
use crate::pages;
use crate::Ctx;

/// Arguments of `lullctl regions`.
#[derive(Debug, Args)]
pub struct RegionsArgs {
    #[command(subcommand)]
    command: Option<RegionsCommand>,
}

#[derive(Debug, Subcommand)]
enum RegionsCommand {
    /// Rank regions by price, success and speed; show the excluded ones.
    Select {
        /// Regions to choose from (comma-separated; default: every known region).
        #[arg(long, value_delimiter = ',')]
        candidates: Vec<String>,
        /// Weights, e.g. `price=1,success=2,speed=1` (default: the coordinator's).
        #[arg(long)]
        weights: Option<String>,
    },
    /// Best, problematic and fastest regions, badges, trends, cost per success, fatigues.
    Insights {
        /// Window of the fatigue counts, hours (default: the coordinator's, 168).
        #[arg(long)]
        window_hours: Option<f64>,
    },
    /// Lift a region's outlaw.
    Pardon {
        /// The region.
        region: String,
    },
    /// Load a campaign_stats.json (current or legacy fields); known builds are skipped.
    Import {
        /// The file (`-` for stdin).
        file: PathBuf,
    },
    /// Write the campaign stats document (to stdout without FILE).
    Export {
        /// Where to write it.
        file: Option<PathBuf>,
    },
}

/// Runs the command; returns the exit code.
pub async fn run(ctx: &Ctx, args: RegionsArgs) -> anyhow::Result<i32> {
    match args.command {
        None => overview(ctx).await,
        Some(RegionsCommand::Select {
            candidates,
            weights,
        }) => {
            let weights = weights.as_deref().map(parse_weights).transpose()?;
            let req = RegionSelectRequest {
                candidates,
                weights,
            };
            let r: RegionSelectReply = call(ctx, ep::REGIONS_SELECT, &req).await?;
            if ctx.json {
                json(&r)?;
            } else {
                print_select(&r);
            }
            Ok(0)
        }
        Some(RegionsCommand::Insights { window_hours }) => {
            let r: RegionInsights = call(
                ctx,
                ep::REGIONS_INSIGHTS,
                &json!({ "fatigue_window_hours": window_hours }),
            )
            .await?;
            if ctx.json {
                json(&r)?;
            } else {
                print_insights(&r);
            }
            Ok(0)
        }
        Some(RegionsCommand::Pardon { region }) => {
            let r: Value = call(ctx, ep::REGIONS_PARDON, &json!({ "region": region })).await?;
            if ctx.json {
                json(&r)?;
            } else {
                let was = if r["was_outlawed"].as_bool() == Some(true) {
                    "was outlawed"
                } else {
                    "was not outlawed"
                };
                println!(
                    "pardoned {} ({was}); state now {}{}",
                    r["region"].as_str().unwrap_or("?"),
                    r["state"].as_str().unwrap_or("?"),
                    r["until"]
                        .as_f64()
                        .map(|t| format!(" until {}", until(t)))
                        .unwrap_or_default()
                );
            }
            Ok(0)
        }
        Some(RegionsCommand::Import { file }) => import(ctx, &file).await,
        Some(RegionsCommand::Export { file }) => {
            let doc = export(ctx).await?;
            let text = serde_json::to_string_pretty(&doc)?;
            match file {
                Some(path) => {
                    std::fs::write(&path, format!("{text}\n"))
                        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
                    eprintln!(
                        "wrote {} ({} regions, {} builds)",
                        path.display(),
                        doc.regions.len(),
                        doc.total_builds_all_regions
                    );
                }
                None => println!("{text}"),
            }
            Ok(0)
        }
    }
}

/// `price=1,success=2,speed=0.5`, or three numbers in that order.
fn parse_weights(s: &str) -> anyhow::Result<SelectWeights> {
    let mut w = SelectWeights::default();
    let parts: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.iter().all(|p| !p.contains('=')) && parts.len() == 3 {
        let n: Vec<f64> = parts
            .iter()
            .map(|p| p.parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("--weights {s:?}: {e}"))?;
        return Ok(SelectWeights {
            price: n[0],
            success: n[1],
            speed: n[2],
        });
    }
    for p in parts {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--weights: {p:?} is not name=value"))?;
        let v: f64 = v
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("--weights: {p:?}: {e}"))?;
        match k.trim() {
            "price" => w.price = v,
            "success" => w.success = v,
            "speed" => w.speed = v,
            other => anyhow::bail!("--weights: unknown weight {other:?} (price, success, speed)"),
        }
    }
    Ok(w)
}

fn until(t: f64) -> String {
    crate::output::until(t)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

async fn overview(ctx: &Ctx) -> anyhow::Result<i32> {
    if ctx.json {
        json_raw(&export(ctx).await?)?;
        return Ok(0);
    }
    let doc = pages::regions_stats(ctx, &json!({ "recent_builds_limit": 0 })).await?;
    let sel: RegionSelectReply = call(ctx, ep::REGIONS_SELECT, &json!({})).await?;
    let mut states: BTreeMap<&str, String> = BTreeMap::new();
    for r in &sel.ranked {
        states.insert(&r.region, "HEALTHY".into());
    }
    for x in &sel.excluded {
        let s = match x.until {
            Some(t) => format!("{:?} ({})", x.code, until(t)).to_uppercase(),
            None => format!("{:?}", x.code).to_uppercase(),
        };
        states.insert(&x.region, s);
    }
    println!(
        "campaign since {}, updated {}, {} builds",
        doc.campaign_start.map(ago).unwrap_or_else(|| "-".into()),
        doc.last_updated.map(ago).unwrap_or_else(|| "-".into()),
        doc.total_builds_all_regions
    );
    let rows: Vec<Vec<String>> = doc
        .regions
        .iter()
        .map(|(name, r)| {
            vec![
                name.clone(),
                states.get(name.as_str()).cloned().unwrap_or_default(),
                r.total_builds.to_string(),
                format!("{:.1}%", r.success_rate),
                r.current_streak.to_string(),
                format!("{:.1}", r.avg_duration_minutes),
                format!("{:.1}", r.avg_queue_wait_minutes),
                opt(r.fastest_minutes, 1),
                opt(r.slowest_minutes, 1),
                r.fatigue_incidents.to_string(),
                r.last_fatigue_reason.clone().unwrap_or_default(),
                r.last_used.map(ago).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &[
            "REGION",
            "STATE",
            "BUILDS",
            "SUCCESS",
            "STREAK",
            "AVG MIN",
            "QUEUE MIN",
            "FASTEST",
            "SLOWEST",
            "FATIGUES",
            "LAST FATIGUE",
            "LAST USED",
        ],
        &rows,
    );
    Ok(0)
}

fn print_select(r: &RegionSelectReply) {
    println!(
        "weights: price {} success {} speed {}",
        r.weights.price, r.weights.success, r.weights.speed
    );
    let rows: Vec<Vec<String>> = r
        .ranked
        .iter()
        .map(|x| {
            vec![
                x.rank.to_string(),
                x.region.clone(),
                format!("{:.4}", x.score),
                format!("{:.3}", x.scores.price),
                format!("{:.3}", x.scores.success),
                format!("{:.3}", x.scores.speed),
                opt(x.spot_price_per_hour, 2),
                format!("{:.1}%", x.success_rate),
                opt(x.avg_duration_minutes, 1),
                x.total_builds.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "RANK", "REGION", "SCORE", "PRICE", "SUCCESS", "SPEED", "$/H", "OK%", "AVG MIN",
            "BUILDS",
        ],
        &rows,
    );
    if !r.excluded.is_empty() {
        println!("\nexcluded:");
        let rows: Vec<Vec<String>> = r
            .excluded
            .iter()
            .map(|x| {
                vec![
                    x.region.clone(),
                    format!("{:?}", x.code).to_uppercase(),
                    x.until.map(until).unwrap_or_else(|| "-".into()),
                    x.reason.clone(),
                ]
            })
            .collect();
        table(&["REGION", "WHY", "UNTIL", "REASON"], &rows);
    }
}

fn print_insights(r: &RegionInsights) {
    println!("Best regions:");
    for b in &r.best {
        println!(
            "  {}: {:.1}% success ({}/{}), {}-streak, {:.1}min avg",
            b.region,
            b.success_rate,
            b.successes,
            b.total_builds,
            b.current_streak,
            b.avg_duration_minutes
        );
    }
    println!("Problematic regions:");
    for p in &r.problematic {
        let s = &p.summary;
        println!(
            "  {}: {:.1}% success ({}/{}), {}-streak, {} fatigue events{} ({})",
            s.region,
            s.success_rate,
            s.successes,
            s.total_builds,
            s.current_streak,
            s.fatigue_incidents,
            if p.outlawed { ", OUTLAWED" } else { "" },
            p.reasons.join("; ")
        );
    }
    println!("Speed champions:");
    for s in &r.speed_champions {
        println!("  {}: {:.1}min avg", s.region, s.avg_duration_minutes);
    }
    println!("Badges:");
    for b in &r.badges {
        println!("  {}: {} ({})", b.title, b.region, b.detail);
    }
    println!("Trends:");
    for t in &r.trends {
        println!(
            "  {}: {:?}{}",
            t.region,
            t.trend,
            t.delta_success_rate
                .map(|d| format!(" ({d:+.1} points)"))
                .unwrap_or_default()
        );
    }
    println!("Cost per success:");
    for c in &r.cost_per_success {
        println!(
            "  {}: {} ({:.2} $ over {} builds)",
            c.region,
            c.cost_per_success_usd
                .map(|v| format!("{v:.2} $"))
                .unwrap_or_else(|| "no success".into()),
            c.total_cost_usd,
            c.costed_builds
        );
    }
    let f = &r.fatigue;
    println!(
        "Fatigue incidents in the last {}h: {}",
        f.window_hours, f.total
    );
    for c in &f.regions {
        println!(
            "  {}: {} incidents ({} ever){}",
            c.region,
            c.incidents,
            c.total_incidents,
            c.last_fatigue_reason
                .as_ref()
                .map(|x| format!(" ({x})"))
                .unwrap_or_default()
        );
    }
}

/// Reads a campaign file; JSON with `//` comments (as the seeds show it) is
/// accepted too.
fn read_doc(file: &PathBuf) -> anyhow::Result<Value> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?
    };
    match serde_json::from_str(&text) {
        Ok(v) => Ok(v),
        Err(e) => serde_json::from_str(&strip_line_comments(&text))
            .map_err(|_| anyhow::anyhow!("{} is not JSON: {e}", file.display())),
    }
}

/// Removes `//` comments outside strings.
fn strip_line_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_str, mut escaped) = (false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
        } else if c == '/' && chars.peek() == Some(&'/') {
            for c in chars.by_ref() {
                if c == '\n' {
                    out.push('\n');
                    break;
                }
            }
        } else {
            if c == '"' {
                in_str = true;
            }
            out.push(c);
        }
    }
    out
}

/// Splits `text` into pieces of at most `max` bytes on character boundaries.
fn split(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(max.max(4));
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
    out
}

async fn import(ctx: &Ctx, file: &PathBuf) -> anyhow::Result<i32> {
    let doc = read_doc(file)?;
    let text = serde_json::to_string(&doc)?;
    let max = ctx.client.server_info().max_payload;
    let slow = Ctx {
        client: ctx.client.clone(),
        subjects: ctx.subjects.clone(),
        output: ctx.output,
        json: ctx.json,
        timeout: ctx.timeout.max(Duration::from_secs(60)),
    };
    let report: Value = if text.len() + 1024 <= max {
        call(&slow, ep::REGIONS_IMPORT, &doc).await?
    } else {
        // JSON-escaping can double a piece; keep each message under the limit.
        let pieces = split(&text, (max.saturating_sub(1024) / 2).max(1024));
        let upload_id = format!(
            "import-{}-{}",
            std::process::id(),
            (lull_common::runtime::now_unix() * 1000.0) as u64
        );
        let n = pieces.len();
        let mut last = Value::Null;
        for (i, data) in pieces.into_iter().enumerate() {
            last = call(
                &slow,
                ep::REGIONS_IMPORT,
                &json!({"upload_id": upload_id, "part": i, "parts": n, "data": data}),
            )
            .await?;
        }
        last
    };
    if ctx.json {
        json(&report)?;
    } else {
        let list = |k: &str| {
            report[k]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
        };
        println!("regions adopted: {}", list("regions_adopted"));
        println!("regions merged:  {}", list("regions_merged"));
        for k in [
            "builds_adopted",
            "builds_added",
            "builds_skipped",
            "unattributed_builds",
        ] {
            println!("{k}: {}", report[k].as_u64().unwrap_or(0));
        }
    }
    Ok(0)
}

/// The whole document, page by page (pages of fewer regions when one
/// does not fit in a message).
async fn export(ctx: &Ctx) -> anyhow::Result<CampaignStats> {
    pages::regions_stats(ctx, &json!({})).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_parse() {
        let w = parse_weights("price=1,success=2").unwrap();
        assert_eq!((w.price, w.success, w.speed), (1.0, 2.0, 0.0));
        let w = parse_weights("1,2,3").unwrap();
        assert_eq!((w.price, w.success, w.speed), (1.0, 2.0, 3.0));
        assert!(parse_weights("cost=1").is_err());
    }

    #[test]
    fn comments_outside_strings_are_dropped() {
        let t = "{\n  // note\n  \"a\": \"x // y\" // tail\n}";
        let v: Value = serde_json::from_str(&strip_line_comments(t)).unwrap();
        assert_eq!(v["a"], "x // y");
    }

    #[test]
    fn split_keeps_characters_whole() {
        let t = "aé".repeat(1000);
        let parts = split(&t, 1024);
        assert!(parts.iter().all(|p| p.len() <= 1024));
        assert_eq!(parts.concat(), t);
    }
}
