//! `lullctl hosts`: the fleet with quiet states, one host in detail, or
//! `hosts forget HOST` (delete a decommissioned host).

use clap::{Args, Subcommand};
use lull_proto::msg::hosts::{
    AgentStatus, BlockInfo, BlockScope, ForgetReply, ForgetRequest, HostDetail, HostGetRequest,
    HostSummary, RejectedSenders,
};
use lull_proto::subjects::endpoints as ep;

use crate::output::{ago, call, json, local, table};
use crate::watch::{self, WatchArg};
use crate::Ctx;

/// Arguments of `lullctl hosts`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HostsArgs {
    #[command(subcommand)]
    cmd: Option<HostsCmd>,
    /// Show one host in detail.
    host: Option<String>,
    #[command(flatten)]
    watch: WatchArg,
}

/// `lullctl hosts` subcommands.
#[derive(Debug, Subcommand)]
enum HostsCmd {
    /// Delete a decommissioned host from the coordinator's memory and
    /// database. Refused while the host still reports or holds leases.
    Forget {
        /// The host.
        host: String,
    },
}

/// Runs the command; returns the exit code.
pub async fn run(ctx: &Ctx, args: HostsArgs) -> anyhow::Result<i32> {
    if let Some(HostsCmd::Forget { host }) = args.cmd {
        return forget(ctx, host).await;
    }
    let host = args.host.as_deref();
    watch::repeat(args.watch, !ctx.json, || async move {
        match host {
            Some(h) => detail(ctx, h.to_string()).await,
            None => list(ctx).await,
        }
    })
    .await
}

/// `lullctl hosts forget HOST`: exit 0 when forgotten, 1 when refused.
async fn forget(ctx: &Ctx, host_id: String) -> anyhow::Result<i32> {
    let r: ForgetReply = call(ctx, ep::HOSTS_FORGET, &ForgetRequest { host_id }).await?;
    if ctx.json {
        json(&r)?;
    } else if r.forgotten {
        println!("forgot {}", r.host_id);
    } else {
        println!(
            "not forgotten: {}",
            r.reason.as_deref().unwrap_or("refused by the coordinator")
        );
    }
    Ok(if r.forgotten { 0 } else { 1 })
}

async fn detail(ctx: &Ctx, host_id: String) -> anyhow::Result<i32> {
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
        if let Some(b) = &d.block {
            println!("  {}", block_text(b));
        }
        for r in &d.quiet.reasons {
            println!("  - {r}");
        }
        for l in agent_lines(&d.agent, ago) {
            println!("{l}");
        }
    }
    Ok(0)
}

async fn list(ctx: &Ctx) -> anyhow::Result<i32> {
    let hosts: Vec<HostSummary> = crate::pages::hosts(ctx).await?;
    if ctx.json {
        json(&hosts)?;
    } else {
        let wide = ctx.wide();
        let rows: Vec<Vec<String>> = hosts
            .iter()
            .map(|h| {
                let mut row = vec![
                    h.host_id.clone(),
                    h.state.to_string(),
                    format!("{:.1}", h.quiet_score),
                    ago(h.last_seen),
                ];
                if wide {
                    row.push(local(h.last_seen));
                }
                row.push(if h.stale { "stale" } else { "" }.into());
                row.push(match (&h.block, h.blocked) {
                    (Some(b), _) => block_text(b),
                    (None, true) => "blocked".into(),
                    (None, false) => String::new(),
                });
                row
            })
            .collect();
        if wide {
            table(
                &["HOST", "STATE", "SCORE", "LAST SEEN", "AT", "", ""],
                &rows,
            );
        } else {
            table(&["HOST", "STATE", "SCORE", "LAST SEEN", "", ""], &rows);
        }
        rejected_senders(ctx).await;
    }
    Ok(0)
}

/// The senders whose snapshots the coordinator rejects (so they are not in
/// the list above), with the reason; nothing when there are none or the
/// coordinator is older than `hosts.rejected`.
async fn rejected_senders(ctx: &Ctx) {
    let Ok(r) = call::<_, RejectedSenders>(ctx, ep::HOSTS_REJECTED, &serde_json::json!({})).await
    else {
        return;
    };
    if r.senders.is_empty() {
        return;
    }
    println!();
    println!(
        "REJECTED SENDERS (snapshots dropped in the last {})",
        crate::output::human_duration(r.window_sec)
    );
    let rows: Vec<Vec<String>> = r
        .senders
        .iter()
        .map(|s| {
            vec![
                s.host_id.clone(),
                s.result.clone(),
                s.count.to_string(),
                ago(s.last_at),
                s.reason.clone(),
            ]
        })
        .collect();
    table(&["HOST", "RESULT", "COUNT", "LAST", "REASON"], &rows);
}

/// A block in force as one cell: `blocked until <local time> (reason)`,
/// naming the fleet-wide block or the maintenance window it comes from.
fn block_text(b: &BlockInfo) -> String {
    let mut s = match b.scope {
        BlockScope::Fleet => "blocked (fleet)".to_string(),
        BlockScope::Host => "blocked".to_string(),
    };
    if let Some(w) = b.window_id {
        s.push_str(&format!(" by window {w}"));
    }
    match b.until {
        Some(u) => s.push_str(&format!(" until {}", local(u))),
        None => s.push_str(" until unblocked"),
    }
    if let Some(r) = b.reason.as_deref().filter(|r| !r.is_empty()) {
        s.push_str(&format!(" ({r})"));
    }
    s
}

/// The agent's loop health and its last failure (seed 004), as lines of
/// `lullctl hosts HOST`; `ago` renders a Unix time as an age.
fn agent_lines(a: &AgentStatus, ago: impl Fn(f64) -> String) -> Vec<String> {
    let failing = match (a.failure_at, a.health_at) {
        (Some(f), Some(h)) => f > h,
        (Some(_), None) => true,
        _ => false,
    };
    let mut out = Vec::new();
    match (&a.health, a.health_at) {
        (Some(h), Some(at)) => {
            let state = if failing { "FAILING" } else { "ok" };
            out.push(format!(
                "  agent loop: {state}  (last health: tick {}, {})",
                h.tick,
                ago(at)
            ));
            for (name, c) in &h.collectors {
                let mut l = format!("    {name}: {}", if c.ok { "ok" } else { "FAILED" });
                if c.panics > 0 {
                    l.push_str(&format!(", {} panics in {} runs", c.panics, c.runs));
                }
                if let (false, Some(e)) = (c.ok, &c.last_error) {
                    l.push_str(&format!(": {e}"));
                }
                out.push(l);
            }
        }
        _ => out.push(format!(
            "  agent loop: {}  (no loop.health yet)",
            if failing { "FAILING" } else { "unknown" }
        )),
    }
    if let (Some(f), Some(at)) = (&a.failure, a.failure_at) {
        out.push(format!(
            "  last loop failure: {}, tick {}, {} in a row: {}",
            ago(at),
            f.tick,
            f.failure_count,
            f.error
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_proto::msg::telemetry::{CollectorHealth, LoopFailure, LoopHealth};

    fn health(tick: u64) -> LoopHealth {
        LoopHealth {
            tick,
            status: "ok".into(),
            duration_ms: 1.0,
            transport: Default::default(),
            collectors: [
                (
                    "host".to_string(),
                    CollectorHealth {
                        ok: true,
                        runs: 9,
                        ..Default::default()
                    },
                ),
                (
                    "pressure".to_string(),
                    CollectorHealth {
                        ok: false,
                        last_error: Some("Panic: boom".into()),
                        runs: 9,
                        failures: 9,
                        panics: 9,
                        ..Default::default()
                    },
                ),
            ]
            .into(),
        }
    }

    fn failure() -> LoopFailure {
        let json = r#"{"tick": 12, "duration_ms": 1.0, "failure_count": 3,
            "error": "HostUnavailable: host collector has no fresh result"}"#;
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn agent_lines_show_loop_health_panics_and_the_last_failure() {
        let at = |t: f64| format!("at {t}");
        let ok = AgentStatus {
            health: Some(health(10)),
            health_at: Some(100.0),
            ..Default::default()
        };
        assert_eq!(
            agent_lines(&ok, at),
            vec![
                "  agent loop: ok  (last health: tick 10, at 100)",
                "    host: ok",
                "    pressure: FAILED, 9 panics in 9 runs: Panic: boom",
            ]
        );
        let failing = AgentStatus {
            failure: Some(failure()),
            failure_at: Some(130.0),
            ..ok.clone()
        };
        let l = agent_lines(&failing, at);
        assert!(l[0].starts_with("  agent loop: FAILING"), "{l:?}");
        assert_eq!(
            l.last().unwrap(),
            "  last loop failure: at 130, tick 12, 3 in a row: HostUnavailable: host collector has no fresh result"
        );
        let unknown = agent_lines(&AgentStatus::default(), at);
        assert_eq!(unknown, vec!["  agent loop: unknown  (no loop.health yet)"]);
    }
}
