//! `lullctl leases` and `lullctl revoke`: the scheduler's leases (or, with
//! `--denied`, recent denials) and the operator's revoke; the lease rows
//! `lullctl status` shows too.

use clap::Args;
use lull_proto::msg::lease::{LeaseInfo, LeaseLists, OkResponse, RevokeRequest, SchedulerStatus};
use lull_proto::subjects::endpoints as ep;
use lull_proto::validate::Validate;

use crate::decisions::{self, DeniedQuery};
use crate::output::{ago, call, json, table, until};
use crate::watch::{self, WatchArg};
use crate::Ctx;

/// Arguments of `lullctl leases`.
#[derive(Debug, Args)]
pub struct LeasesArgs {
    /// Also list recently ended leases.
    #[arg(long, conflicts_with = "denied")]
    pub recent: bool,
    /// List recent denials (from the audit trail) instead, with reasons.
    #[arg(long)]
    pub denied: bool,
    /// With --denied: only this addon's requests.
    #[arg(long, requires = "denied")]
    pub addon: Option<String>,
    /// With --denied: only requests for this host.
    #[arg(long, requires = "denied")]
    pub host: Option<String>,
    /// With --denied: how far back ("30m", "1h", "7d").
    #[arg(long, default_value = "1h", requires = "denied")]
    pub since: String,
    /// With --denied: most rows (newest first; default 100; more than 1000
    /// are read page by page).
    #[arg(long, requires = "denied")]
    pub limit: Option<u32>,
    #[command(flatten)]
    pub watch: WatchArg,
}

/// Arguments of `lullctl revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The lease to revoke.
    pub lease_id: String,
    /// Why (shown to the holder).
    #[arg(long)]
    pub reason: Option<String>,
}

fn opt_pct(p: Option<f64>) -> String {
    p.map(|p| format!("{p:.0}%")).unwrap_or_else(|| "-".into())
}

/// Rows of the active-lease table.
pub fn active_rows(leases: &[LeaseInfo]) -> Vec<Vec<String>> {
    leases
        .iter()
        .map(|l| {
            vec![
                l.lease_id.clone(),
                l.addon_id.clone(),
                l.job_type.clone(),
                l.host_id.clone(),
                l.cost_units.to_string(),
                format!("{:?}", l.priority).to_uppercase(),
                ago(l.granted_at),
                until(l.expires_at),
                opt_pct(l.progress_pct),
            ]
        })
        .collect()
}

/// Headers of the active-lease table.
pub const ACTIVE_HEADERS: [&str; 9] = [
    "LEASE", "ADDON", "JOB", "HOST", "UNITS", "PRIORITY", "GRANTED", "EXPIRES", "PROGRESS",
];

/// Rows of the recent-lease table.
pub fn recent_rows(leases: &[LeaseInfo]) -> Vec<Vec<String>> {
    leases
        .iter()
        .map(|l| {
            vec![
                l.lease_id.clone(),
                l.addon_id.clone(),
                l.job_type.clone(),
                l.host_id.clone(),
                l.state.as_str().to_string(),
                l.ended_at.map(ago).unwrap_or_else(|| "-".into()),
                l.outcome.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect()
}

const RECENT_HEADERS: [&str; 7] = ["LEASE", "ADDON", "JOB", "HOST", "STATE", "ENDED", "OUTCOME"];

/// The scheduler's status (`lull.v1.scheduler.status`, leader only).
pub async fn fetch(ctx: &Ctx) -> anyhow::Result<SchedulerStatus> {
    crate::pages::status(ctx).await
}

/// `lullctl leases`: active leases (and recent ones with `--recent`), or
/// recent denials with `--denied`; `--watch` repeats it.
pub async fn leases(ctx: &Ctx, args: LeasesArgs) -> anyhow::Result<i32> {
    let denied = args.denied.then(|| DeniedQuery {
        addon: args.addon.clone(),
        host: args.host.clone(),
        since: args.since.clone(),
        limit: args.limit,
    });
    let (recent, a) = (args.recent, &denied);
    watch::repeat(args.watch, !ctx.json, || async move {
        match a {
            Some(q) => decisions::denied(ctx, q).await,
            None => once(ctx, recent).await,
        }
    })
    .await
}

/// The JSON of `lullctl leases`: always `{"active": [...], "recent": [...]}`
/// (`recent` is empty without `--recent`).
pub fn json_shape(mut lists: LeaseLists, recent: bool) -> LeaseLists {
    if !recent {
        lists.recent.clear();
    }
    lists
}

async fn once(ctx: &Ctx, recent: bool) -> anyhow::Result<i32> {
    let st = fetch(ctx).await?;
    if ctx.json {
        json(&json_shape(st.leases, recent))?;
        return Ok(0);
    }
    table(&ACTIVE_HEADERS, &active_rows(&st.leases.active));
    if recent {
        println!("\nRECENT");
        table(&RECENT_HEADERS, &recent_rows(&st.leases.recent));
    }
    Ok(0)
}

/// `lullctl revoke LEASE_ID [--reason R]`: exit 0 when revoked, 1 when the
/// coordinator said no (already ended).
pub async fn revoke(ctx: &Ctx, args: RevokeArgs) -> anyhow::Result<i32> {
    let body = RevokeRequest {
        lease_id: args.lease_id.clone(),
        reason: args.reason,
    };
    body.validate()
        .map_err(|e| anyhow::anyhow!("invalid revoke: {e}"))?;
    let r: OkResponse = call(ctx, ep::LEASE_REVOKE, &body).await?;
    if ctx.json {
        json(&r)?;
    } else if r.ok {
        match &r.reason {
            Some(why) => println!("revoked {} ({why})", args.lease_id),
            None => println!("revoked {}", args.lease_id),
        }
    } else {
        println!(
            "not revoked: {}",
            r.reason.as_deref().unwrap_or("refused by the coordinator")
        );
    }
    Ok(if r.ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_proto::msg::lease::{LeaseState, Priority};

    fn info() -> LeaseInfo {
        LeaseInfo {
            lease_id: "L1".into(),
            addon_id: "indexer".into(),
            job_type: "reindex".into(),
            host_id: "web1".into(),
            cost_units: 30,
            priority: Priority::High,
            state: LeaseState::Released,
            granted_at: 1.0,
            last_heartbeat_at: 2.0,
            expires_at: 3.0,
            ended_at: Some(4.0),
            progress_pct: Some(42.4),
            outcome: Some("exit_0".into()),
        }
    }

    #[test]
    fn rows_have_one_cell_per_header() {
        let a = active_rows(&[info()]);
        assert_eq!(a[0].len(), ACTIVE_HEADERS.len());
        assert_eq!(a[0][5], "HIGH");
        assert_eq!(a[0][8], "42%");
        let r = recent_rows(&[info()]);
        assert_eq!(r[0].len(), RECENT_HEADERS.len());
        assert_eq!(r[0][4], "RELEASED");
        assert_eq!(r[0][6], "exit_0");
    }
}
