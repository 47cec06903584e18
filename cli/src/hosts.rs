//! `lullctl hosts`: the fleet with quiet states, or one host in detail.

use clap::Args;
use lull_proto::msg::hosts::{HostDetail, HostGetRequest, HostSummary};
use lull_proto::subjects::endpoints as ep;

use crate::output::{ago, call, json, table};
use crate::Ctx;

/// Arguments of `lullctl hosts`.
#[derive(Debug, Args)]
pub struct HostsArgs {
    /// Show one host in detail.
    host: Option<String>,
}

/// Runs the command; returns the exit code.
pub async fn run(ctx: &Ctx, args: HostsArgs) -> anyhow::Result<i32> {
    if let Some(host_id) = args.host {
        let d: HostDetail = call(ctx, ep::HOSTS_GET, &HostGetRequest { host_id }).await?;
        if ctx.json {
            json(&d)?;
        } else {
            println!(
                "{}  {}  score {:.1}  last seen {}{}",
                d.snapshot.host_id,
                d.quiet.state,
                d.quiet.quiet_score,
                ago(d.last_seen),
                if d.stale { "  STALE" } else { "" }
            );
            for r in &d.quiet.reasons {
                println!("  - {r}");
            }
        }
        return Ok(0);
    }
    let hosts: Vec<HostSummary> = call(ctx, ep::HOSTS_LIST, &serde_json::json!({})).await?;
    if ctx.json {
        json(&hosts)?;
    } else {
        let rows: Vec<Vec<String>> = hosts
            .iter()
            .map(|h| {
                vec![
                    h.host_id.clone(),
                    h.state.to_string(),
                    format!("{:.1}", h.quiet_score),
                    ago(h.last_seen),
                    if h.stale {
                        "stale".into()
                    } else {
                        String::new()
                    },
                    if h.blocked {
                        "blocked".into()
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        table(&["HOST", "STATE", "SCORE", "LAST SEEN", "", ""], &rows);
    }
    Ok(0)
}
