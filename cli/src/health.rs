//! `lullctl health`: the fleet's health rollup, like `etcdctl endpoint
//! health`: one line with the overall level (ok, warn or error) and why,
//! then the hosts that are not ok (all with `-o wide`). Exits 1 on error.

use clap::Args;
use lull_engine::quiet::health::{HealthLevel, HealthReply};
use lull_proto::subjects::endpoints as ep;

use crate::output::{ago_from, call, human_duration, json, render_table};
use crate::Ctx;

/// Arguments of `lullctl health`.
#[derive(Debug, Args)]
pub struct HealthArgs {}

/// Runs the command; returns 1 when the level is `error`, else 0.
pub async fn run(ctx: &Ctx, _a: HealthArgs) -> anyhow::Result<i32> {
    let h: HealthReply = call(ctx, ep::STATS_HEALTH, &serde_json::json!({})).await?;
    if ctx.json {
        json(&h)?;
    } else {
        print!("{}", render(&h, ctx.wide()));
    }
    Ok(exit_code(h.status))
}

/// 1 for `error`, 0 otherwise.
pub fn exit_code(level: HealthLevel) -> i32 {
    i32::from(level == HealthLevel::Error)
}

fn level(l: HealthLevel) -> &'static str {
    match l {
        HealthLevel::Ok => "ok",
        HealthLevel::Warn => "warn",
        HealthLevel::Error => "error",
    }
}

/// The rollup as text; `all` lists the hosts that are ok too.
pub fn render(h: &HealthReply, all: bool) -> String {
    let c = &h.counts;
    let mut out = format!(
        "fleet is {}: {} hosts ({} ok, {} warn, {} error; {} stale, {} in PANIC)",
        level(h.status),
        c.ok + c.warn + c.error,
        c.ok,
        c.warn,
        c.error,
        c.stale,
        c.panic
    );
    if let Some(lag) = h.db_write_lag_sec {
        out.push_str(&format!("; database write lag {}", human_duration(lag)));
    }
    out.push('\n');
    for r in &h.reasons {
        out.push_str(&format!("  - {r}\n"));
    }
    let rows: Vec<Vec<String>> = h
        .hosts
        .iter()
        .filter(|x| all || x.status != HealthLevel::Ok)
        .map(|x| {
            vec![
                x.host_id.clone(),
                level(x.status).into(),
                x.state.map_or("-".into(), |s| s.to_string()),
                x.quiet_score.map_or("-".into(), |s| format!("{s:.1}")),
                x.last_seen
                    .map_or("never".into(), |t| ago_from(t, h.generated_at)),
                x.reasons.join("; "),
            ]
        })
        .collect();
    if !rows.is_empty() {
        out.push('\n');
        out.push_str(&render_table(
            &["HOST", "HEALTH", "STATE", "SCORE", "LAST SEEN", "REASONS"],
            &rows,
        ));
    }
    if h.hosts_truncated {
        out.push_str("(more hosts not listed)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_engine::quiet::health::{HealthCounts, HostHealth};
    use lull_proto::msg::hosts::QuietState;

    const NOW: f64 = 1_762_732_800.0;

    fn host(id: &str, status: HealthLevel, reasons: &[&str]) -> HostHealth {
        HostHealth {
            host_id: id.into(),
            status,
            state: Some(QuietState::Quiet),
            quiet_score: Some(91.25),
            stale: false,
            last_seen: Some(NOW - 4.0),
            reasons: reasons.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn reply() -> HealthReply {
        let mut stale = host(
            "db-2",
            HealthLevel::Error,
            &["stale: no snapshot for 185 s"],
        );
        stale.state = Some(QuietState::Busy);
        stale.last_seen = Some(NOW - 185.0);
        HealthReply {
            status: HealthLevel::Error,
            reasons: vec!["1 host in error".into()],
            generated_at: NOW,
            counts: HealthCounts {
                ok: 1,
                warn: 0,
                error: 1,
                stale: 1,
                panic: 0,
            },
            hosts: vec![stale, host("web-1", HealthLevel::Ok, &[])],
            hosts_truncated: false,
            db_write_lag_sec: Some(0.4),
        }
    }

    #[test]
    fn health_matches_the_golden_rendering() {
        let want = "\
fleet is error: 2 hosts (1 ok, 0 warn, 1 error; 1 stale, 0 in PANIC); database write lag 400 ms
  - 1 host in error

HOST  HEALTH  STATE  SCORE  LAST SEEN      REASONS
db-2  error   BUSY   91.2   3 min 5 s ago  stale: no snapshot for 185 s
";
        assert_eq!(render(&reply(), false), want);
        let wide = render(&reply(), true);
        assert!(
            wide.ends_with("web-1  ok      QUIET  91.2   4 s ago\n"),
            "{wide:?}"
        );
        assert_eq!(exit_code(HealthLevel::Error), 1);
        assert_eq!(exit_code(HealthLevel::Warn), 0);
    }
}
