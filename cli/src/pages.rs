//! Paged list endpoints read whole: each is asked page by page (`limit`,
//! `cursor`) until no `next_cursor` comes back, so a large fleet never
//! needs a reply over the NATS max_payload. [`walk`] is the loop; the
//! functions below read one endpoint each. Pages that can be large
//! (`regions.stats`, the fleet-wide worker views) are asked again with
//! half the `limit` while one is refused as too large.

use std::cell::Cell;
use std::collections::HashSet;
use std::future::Future;

use lull_client::request::RequestError;
use lull_engine::quiet::streaks::{ClosedStreak, StreaksPage, StreaksRequest};
use lull_engine::worker::learning::{by_attention, by_quality};
use lull_proto::msg::decisions::{DecisionsReply, DecisionsRequest, MAX_LIMIT};
use lull_proto::msg::hosts::{BlockReply, HostSummary};
use lull_proto::msg::lease::SchedulerStatus;
use lull_proto::msg::page::{HostPage, PageRequest};
use lull_proto::msg::region::CampaignStats;
use lull_proto::msg::worker::{
    DataQualitySummaryReply, SystemLearningReply, WorkerExecutionsReply, WorkerExecutionsRequest,
    MAX_EXECUTIONS_LIMIT,
};
use lull_proto::subjects::endpoints as ep;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::output::call;
use crate::Ctx;

/// Items asked for per page.
const PAGE: u32 = 1000;

/// Most pages read before giving up (a coordinator that keeps answering
/// with a cursor would otherwise loop for ever).
const MAX_PAGES: usize = 100_000;

/// A reply that may continue on another page.
pub trait Paged {
    /// The reply's `next_cursor`, taken out of it.
    fn take_cursor(&mut self) -> Option<String>;
}

macro_rules! paged {
    ($($t:ty),*) => {
        $(impl Paged for $t {
            fn take_cursor(&mut self) -> Option<String> {
                self.next_cursor.take()
            }
        })*
    };
}
paged!(
    HostPage,
    BlockReply,
    StreaksPage,
    DecisionsReply,
    SchedulerStatus
);

/// Asks `fetch(cursor)` for one page after another, from the first,
/// handing each to `take`, until a page has no `next_cursor` or `take`
/// returns false. A coordinator that hands back the same cursor twice is
/// an error, not an endless loop.
pub async fn walk<P, F, Fut>(
    what: &str,
    mut fetch: F,
    mut take: impl FnMut(P) -> bool,
) -> anyhow::Result<()>
where
    P: Paged,
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = anyhow::Result<P>>,
{
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut page = fetch(cursor.clone()).await?;
        let next = page.take_cursor();
        if !take(page) {
            return Ok(());
        }
        match next {
            None => return Ok(()),
            Some(n) if cursor.as_deref() == Some(n.as_str()) => {
                anyhow::bail!("{what}: the coordinator repeated cursor {n:?}")
            }
            Some(n) => cursor = Some(n),
        }
    }
    anyhow::bail!("{what}: more than {MAX_PAGES} pages")
}

/// [`walk`] over an endpoint whose request is `body(cursor)`.
async fn walk_endpoint<B, P>(
    ctx: &Ctx,
    endpoint: &str,
    body: impl Fn(Option<String>) -> B,
    take: impl FnMut(P) -> bool,
) -> anyhow::Result<()>
where
    B: Serialize,
    P: Paged + DeserializeOwned,
{
    let fetch = |c| {
        let b = body(c);
        async move { call(ctx, endpoint, &b).await }
    };
    walk(endpoint, fetch, take).await
}

fn page(cursor: Option<String>) -> PageRequest {
    PageRequest {
        limit: Some(PAGE),
        cursor,
    }
}

/// Every host of `hosts.list`, sorted by id.
pub async fn hosts(ctx: &Ctx) -> anyhow::Result<Vec<HostSummary>> {
    let mut out = Vec::new();
    walk_endpoint(ctx, ep::HOSTS_LIST, page, |p: HostPage| {
        out.extend(p.hosts);
        true
    })
    .await?;
    Ok(out)
}

/// Every block and window of `hosts.blocks`, in one reply.
pub async fn blocks(ctx: &Ctx) -> anyhow::Result<BlockReply> {
    let mut all: Option<BlockReply> = None;
    walk_endpoint(ctx, ep::HOSTS_BLOCKS, page, |p: BlockReply| {
        match &mut all {
            Some(a) => {
                a.blocks.extend(p.blocks);
                a.windows.extend(p.windows);
            }
            None => all = Some(p),
        }
        true
    })
    .await?;
    all.ok_or_else(|| anyhow::anyhow!("hosts.blocks: no reply"))
}

/// Every streak of `req` (its `limit` and `cursor` are set here).
pub async fn streaks(ctx: &Ctx, req: &StreaksRequest) -> anyhow::Result<Vec<ClosedStreak>> {
    let mut out = Vec::new();
    let body = |cursor| StreaksRequest {
        limit: Some(PAGE),
        cursor,
        ..req.clone()
    };
    walk_endpoint(ctx, ep::QUIET_STREAKS, body, |p: StreaksPage| {
        out.extend(p.streaks);
        true
    })
    .await?;
    Ok(out)
}

/// The newest `want` decisions matching `req` (default: its `limit`, or
/// 100), read a page of at most 1000 at a time; `truncated` and
/// `next_cursor` come from the last page read.
pub async fn decisions(
    ctx: &Ctx,
    req: &DecisionsRequest,
    want: usize,
) -> anyhow::Result<DecisionsReply> {
    let mut all: Option<DecisionsReply> = None;
    let per_page = want.clamp(1, MAX_LIMIT as usize) as u32;
    let body = |cursor| DecisionsRequest {
        limit: Some(per_page),
        cursor,
        ..req.clone()
    };
    walk_endpoint(ctx, ep::LEASE_DECISIONS, body, |mut p: DecisionsReply| {
        let a = all.get_or_insert_with(|| DecisionsReply {
            since: p.since,
            counts: std::mem::take(&mut p.counts),
            ..Default::default()
        });
        a.decisions.extend(p.decisions);
        a.truncated = p.truncated;
        let room = a.decisions.len() < want;
        if !room {
            a.truncated |= a.decisions.len() > want;
            a.decisions.truncate(want);
        }
        room
    })
    .await?;
    all.ok_or_else(|| anyhow::anyhow!("lease.decisions: no reply"))
}

/// The whole `scheduler.status`: every page's hosts and active leases, the
/// rest from the first page.
pub async fn status(ctx: &Ctx) -> anyhow::Result<SchedulerStatus> {
    let mut all: Option<SchedulerStatus> = None;
    let mut leases: HashSet<String> = HashSet::new();
    walk_endpoint(ctx, ep::SCHEDULER_STATUS, page, |p: SchedulerStatus| {
        match &mut all {
            None => {
                leases.extend(p.leases.active.iter().map(|l| l.lease_id.clone()));
                all = Some(p);
            }
            Some(st) => {
                st.hosts.extend(p.hosts);
                // A lease granted between pages could show twice; keep it once.
                for l in p.leases.active {
                    if leases.insert(l.lease_id.clone()) {
                        st.leases.active.push(l);
                    }
                }
            }
        }
        true
    })
    .await?;
    all.ok_or_else(|| anyhow::anyhow!("scheduler.status: no reply"))
}

paged!(
    CampaignStats,
    WorkerExecutionsReply,
    DataQualitySummaryReply,
    SystemLearningReply
);

/// Whether a coordinator refused a reply as larger than one NATS message
/// (the service's generic refusal, or `regions.stats`' own).
pub fn too_large(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let text = match c.downcast_ref::<RequestError>() {
            Some(RequestError::Service { message, .. }) => message.clone(),
            _ => c.to_string(),
        };
        text.contains("message limit") || text.contains("reply too large")
    })
}

/// Keeps the first page in `all`, or adds a later one to it with `join`.
fn gather<P>(all: &mut Option<P>, p: P, join: impl FnOnce(&mut P, P)) {
    match all {
        Some(a) => join(a, p),
        None => *all = Some(p),
    }
}

/// [`walk_endpoint`] over an endpoint whose pages may be too large for a
/// message: the request is `body(cursor, limit)`, with `limit` from
/// [`PAGE`], halved (and the page asked again) while a page is refused as
/// too large.
async fn walk_shrinking<B, P>(
    ctx: &Ctx,
    endpoint: &str,
    body: impl Fn(Option<String>, u32) -> B,
    take: impl FnMut(P) -> bool,
) -> anyhow::Result<()>
where
    B: Serialize,
    P: Paged + DeserializeOwned,
{
    let limit = Cell::new(PAGE);
    let fetch = |cursor: Option<String>| {
        let (limit, body) = (&limit, &body);
        async move {
            loop {
                match call(ctx, endpoint, &body(cursor.clone(), limit.get())).await {
                    Err(e) if limit.get() > 1 && too_large(&e) => limit.set(limit.get() / 2),
                    r => return r,
                }
            }
        }
    };
    walk(endpoint, fetch, take).await
}

/// `body` (a JSON object) with `limit` and `cursor` added.
fn with_page(body: &Value, cursor: Option<String>, limit: u32) -> Value {
    let mut b = body.clone();
    if let Some(o) = b.as_object_mut() {
        o.insert("limit".into(), limit.into());
        if let Some(c) = cursor {
            o.insert("cursor".into(), c.into());
        }
    }
    b
}

fn page_of(cursor: Option<String>, limit: u32) -> PageRequest {
    PageRequest {
        limit: Some(limit),
        cursor,
    }
}

/// The whole `regions.stats` document for the request `body` (its
/// `regions` and `recent_builds_limit`): every page's regions.
pub async fn regions_stats(ctx: &Ctx, body: &Value) -> anyhow::Result<CampaignStats> {
    let mut all = None;
    let ask = |c, l| with_page(body, c, l);
    walk_shrinking(ctx, ep::REGIONS_STATS, ask, |p: CampaignStats| {
        gather(&mut all, p, |a, p| a.regions.extend(p.regions));
        true
    })
    .await?;
    all.ok_or_else(|| anyhow::anyhow!("regions.stats: no reply"))
}

/// The newest `n` runs of a worker, newest first, asked in pages of at
/// most [`MAX_EXECUTIONS_LIMIT`] (an `n` of 0 is the coordinator's to
/// refuse).
pub async fn executions(
    ctx: &Ctx,
    worker_name: &str,
    n: u32,
) -> anyhow::Result<WorkerExecutionsReply> {
    let want = n as usize;
    let mut all: Option<WorkerExecutionsReply> = None;
    let body = |cursor| WorkerExecutionsRequest {
        worker_name: worker_name.to_string(),
        limit: Some(n.min(MAX_EXECUTIONS_LIMIT)),
        cursor,
    };
    walk_endpoint(
        ctx,
        ep::WORKERS_EXECUTIONS,
        body,
        |p: WorkerExecutionsReply| {
            gather(&mut all, p, |a, p| a.executions.extend(p.executions));
            let a = all.as_mut().map_or(0, |a| {
                a.executions.truncate(want);
                a.executions.len()
            });
            a < want
        },
    )
    .await?;
    all.ok_or_else(|| anyhow::anyhow!("workers.executions: no reply"))
}

/// The whole `data_quality.summary`: every page's workers, worst first
/// (the totals are fleet-wide on every page).
pub async fn data_quality(ctx: &Ctx) -> anyhow::Result<DataQualitySummaryReply> {
    let mut all = None;
    walk_shrinking(ctx, ep::DATA_QUALITY_SUMMARY, page_of, |p| {
        gather(&mut all, p, |a: &mut DataQualitySummaryReply, p| {
            a.workers.extend(p.workers)
        });
        true
    })
    .await?;
    let mut q = all.ok_or_else(|| anyhow::anyhow!("data_quality.summary: no reply"))?;
    q.workers.sort_by(by_quality);
    Ok(q)
}

/// The whole `learning.system`: every page's schedules (by name), workers
/// needing attention (worst first) and suggestions.
pub async fn system(ctx: &Ctx) -> anyhow::Result<SystemLearningReply> {
    let mut all = None;
    walk_shrinking(ctx, ep::LEARNING_SYSTEM, page_of, |p| {
        gather(&mut all, p, |a: &mut SystemLearningReply, p| {
            a.schedules.extend(p.schedules);
            a.workers_needing_attention
                .extend(p.workers_needing_attention);
            a.optimization_opportunities
                .extend(p.optimization_opportunities);
        });
        true
    })
    .await?;
    let mut s = all.ok_or_else(|| anyhow::anyhow!("learning.system: no reply"))?;
    s.schedules
        .sort_by(|a, b| a.worker_name.cmp(&b.worker_name));
    s.workers_needing_attention.sort_by(by_attention);
    Ok(s)
}
