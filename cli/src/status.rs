//! `lullctl status`: the coordinator instances (the leader with its epoch
//! and uptime, and the standbys), then the scheduler's view: leases, hosts
//! with capacity, per-addon decisions.

use clap::Args;
use lull_proto::msg::lease::SchedulerStatus;

use crate::coordinators::{self, Gathered};
use crate::leases::{active_rows, fetch, ACTIVE_HEADERS};
use crate::output::{human_duration, json, table, until};
use crate::watch::{self, WatchArg};
use crate::Ctx;

/// Arguments of `lullctl status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    watch: WatchArg,
}

/// `lullctl status`, once or with `--watch`.
pub async fn status(ctx: &Ctx, args: StatusArgs) -> anyhow::Result<i32> {
    watch::repeat(args.watch, !ctx.json, || once(ctx)).await
}

/// One `lullctl status`. The instances are asked while the scheduler
/// status is fetched; without a leader the scheduler status fails (no
/// responders), and the instances are still printed before the error.
async fn once(ctx: &Ctx) -> anyhow::Result<i32> {
    let (st, coords) = tokio::join!(fetch(ctx), coordinators::gather(ctx, coordinators::WINDOW));
    let coords = coords.unwrap_or_else(|e| Gathered {
        errors: vec![format!("{e:#}")],
        ..Gathered::default()
    });
    if ctx.json {
        json(&with_coordinators(&st?, &coords)?)?;
        return Ok(0);
    }
    print_coordinators(&coords);
    println!();
    print_scheduler(&st?);
    Ok(0)
}

/// The scheduler status as JSON with a `coordinators` array (one
/// `coordinator.leader` reply per instance, the leader first).
pub fn with_coordinators(
    st: &SchedulerStatus,
    coords: &Gathered,
) -> anyhow::Result<serde_json::Value> {
    let mut v = serde_json::to_value(st)?;
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "coordinators".into(),
            serde_json::to_value(&coords.replies)?,
        );
    }
    Ok(v)
}

/// The COORDINATORS section: one line for the leader, one per standby,
/// then what looks wrong.
fn print_coordinators(coords: &Gathered) {
    println!("COORDINATORS");
    table(&coordinators::HEADERS, &coordinators::rows(&coords.replies));
    for n in coordinators::notes(coords) {
        println!("note: {n}");
    }
}

/// Leases, hosts with capacity and per-addon decisions.
fn print_scheduler(st: &SchedulerStatus) {
    let now = lull_common::runtime::now_unix();
    let mut head = format!(
        "leases: {} active, {} queued",
        st.leases.active.len(),
        st.queue_length
    );
    if let Some(g) = st.grace_until.filter(|g| *g > now) {
        head.push_str(&format!(
            "; restart grace period: new grants refused for {}",
            human_duration(g - now)
        ));
    }
    println!("{head}\n");
    println!("HOSTS");
    let hosts: Vec<Vec<String>> = st
        .hosts
        .iter()
        .map(|h| {
            vec![
                h.host_id.clone(),
                h.state.to_string(),
                format!("{:.1}", h.quiet_score),
                format!("{}/{}", h.used_units, h.capacity_units),
            ]
        })
        .collect();
    table(&["HOST", "STATE", "SCORE", "USED/CAPACITY"], &hosts);
    println!("\nACTIVE LEASES");
    table(&ACTIVE_HEADERS, &active_rows(&st.leases.active));
    println!("\nADDONS");
    let addons: Vec<Vec<String>> = st
        .addons
        .iter()
        .map(|a| {
            vec![
                a.addon_id.clone(),
                a.granted.to_string(),
                a.denied.to_string(),
                a.last_reason.clone().unwrap_or_else(|| "-".into()),
                a.cooldown_until
                    .filter(|c| *c > now)
                    .map(until)
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &["ADDON", "GRANTED", "DENIED", "LAST REASON", "COOL-DOWN"],
        &addons,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_proto::msg::leader::{CoordinatorRole, LeaderReply};

    #[test]
    fn json_keeps_the_status_and_adds_the_instances() {
        let st: SchedulerStatus = serde_json::from_value(serde_json::json!({
            "leases": {"active": [], "recent": []}, "hosts": [], "addons": [],
            "queue_length": 2
        }))
        .expect("status");
        let coords = Gathered {
            replies: vec![LeaderReply {
                instance: "c1".into(),
                role: CoordinatorRole::Leader,
                leader: "c1".into(),
                epoch: 3,
                elected_at: None,
                uptime_sec: 1.0,
            }],
            ..Gathered::default()
        };
        let v = with_coordinators(&st, &coords).unwrap();
        assert_eq!(v["queue_length"], 2);
        assert_eq!(v["coordinators"][0]["role"], "leader");
        assert_eq!(v["coordinators"][0]["epoch"], 3);
        let back: SchedulerStatus = serde_json::from_value(v).unwrap();
        assert_eq!(back.queue_length, 2);
    }
}
