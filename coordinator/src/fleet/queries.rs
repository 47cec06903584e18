//! The fleet's answers to questions about its hosts (`hosts.list`,
//! `hosts.get`, the health rollup's facts, a host's unwritten quiet
//! history), read from the actor's state without changing it.

use std::collections::HashMap;

use lull_proto::msg::hosts::{HostDetail, HostSummary};

use super::host::HostEntry;
use super::LiveQuiet;
use lull_engine::quiet::blocks::Blocks;
use lull_engine::quiet::health::HostFacts;

/// One page of hosts sorted by id: at most `limit` after `after`, and the
/// id to continue after when there are more. Costs one pass over the
/// hosts and a sort of the page only.
pub(super) fn list(
    hosts: &HashMap<String, HostEntry>,
    blocks: &Blocks,
    after: Option<&str>,
    limit: usize,
    now: f64,
) -> (Vec<HostSummary>, Option<String>) {
    let page = lull_engine::page::after(hosts.keys(), |id| id.as_str(), after.as_ref(), limit);
    let more = page.more;
    let ids = page.items;
    let out: Vec<HostSummary> = ids
        .into_iter()
        .filter_map(|id| {
            let e = hosts.get(id)?;
            Some(HostSummary {
                host_id: id.clone(),
                state: e.quiet.state,
                quiet_score: e.quiet.quiet_score,
                last_seen: e.last_seen,
                stale: e.stale,
                blocked: blocks.is_blocked(id, now),
                block: blocks.of(id, now),
            })
        })
        .collect();
    let next = if more {
        out.last().map(|h| h.host_id.clone())
    } else {
        None
    };
    (out, next)
}

/// One host's detail, if known.
pub(super) fn get(
    hosts: &HashMap<String, HostEntry>,
    blocks: &Blocks,
    host: &str,
    now: f64,
) -> Option<HostDetail> {
    hosts.get(host).map(|e| HostDetail {
        snapshot: (*e.snapshot).clone(),
        quiet: e.quiet.clone(),
        agent: e.agent.clone(),
        last_seen: e.last_seen,
        stale: e.stale,
        block: blocks.of(host, now),
    })
}

/// Per-host facts of the health rollup.
pub(super) fn health_facts(hosts: &HashMap<String, HostEntry>) -> Vec<HostFacts> {
    hosts
        .iter()
        .map(|(id, e)| HostFacts {
            host_id: id.clone(),
            state: Some(e.quiet.state),
            quiet_score: Some(e.quiet.quiet_score),
            stale: e.stale,
            last_seen: Some(e.last_seen),
            last_failure_at: e.agent.failure_at,
            last_failure: e.agent.failure.as_ref().map(|f| f.error.clone()),
        })
        .collect()
}

/// Unwritten quiet samples and the open streak of a host, if known.
pub(super) fn live_quiet(hosts: &HashMap<String, HostEntry>, host: &str) -> Option<LiveQuiet> {
    hosts.get(host).map(|e| LiveQuiet {
        pending: e.qbuf.iter().map(|p| (p.t, f64::from(p.score))).collect(),
        open_streak: e.streaks.current(),
    })
}
