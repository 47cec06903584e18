//! Paged list endpoints read whole: `hosts.list` and `scheduler.status`
//! are asked page by page (`limit`, `cursor`) until no `next_cursor`
//! comes back, so a large fleet never needs a reply over the NATS
//! max_payload.

use std::collections::HashSet;

use lull_proto::msg::hosts::HostSummary;
use lull_proto::msg::lease::SchedulerStatus;
use lull_proto::msg::page::{HostPage, PageRequest};
use lull_proto::subjects::endpoints as ep;

use crate::output::call;
use crate::Ctx;

/// Items asked for per page.
const PAGE: u32 = 1000;

/// Most pages read before giving up (a coordinator that keeps answering
/// with a cursor would otherwise loop for ever).
const MAX_PAGES: usize = 100_000;

fn page(cursor: Option<String>) -> PageRequest {
    PageRequest {
        limit: Some(PAGE),
        cursor,
    }
}

/// Every host of `hosts.list`, sorted by id.
pub async fn hosts(ctx: &Ctx) -> anyhow::Result<Vec<HostSummary>> {
    let mut out = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let p: HostPage = call(ctx, ep::HOSTS_LIST, &page(cursor)).await?;
        out.extend(p.hosts);
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
    anyhow::bail!("hosts.list: more than {MAX_PAGES} pages")
}

/// The whole `scheduler.status`: every page's hosts and active leases, the
/// rest from the first page.
pub async fn status(ctx: &Ctx) -> anyhow::Result<SchedulerStatus> {
    let mut st: SchedulerStatus = call(ctx, ep::SCHEDULER_STATUS, &page(None)).await?;
    let mut cursor = st.next_cursor.take();
    let mut leases: HashSet<String> = st
        .leases
        .active
        .iter()
        .map(|l| l.lease_id.clone())
        .collect();
    for _ in 0..MAX_PAGES {
        let Some(c) = cursor else {
            return Ok(st);
        };
        let p: SchedulerStatus = call(ctx, ep::SCHEDULER_STATUS, &page(Some(c))).await?;
        st.hosts.extend(p.hosts);
        // A lease granted between pages could show twice; keep it once.
        for l in p.leases.active {
            if leases.insert(l.lease_id.clone()) {
                st.leases.active.push(l);
            }
        }
        cursor = p.next_cursor;
    }
    anyhow::bail!("scheduler.status: more than {MAX_PAGES} pages")
}
