//! The fleet's endpoints: `hosts.list` and `hosts.get`; the quiet-state
//! reads `stats.history`, `stats.health`, `quiet.streaks`,
//! `quiet.forecast`, and the operator blocks `hosts.block`,
//! `hosts.unblock` and `hosts.blocks`, and `hosts.forget`. Reads go to the history store and
//! the fleet actor; a block is written to Postgres first and applied by the
//! fleet actor after, so an answered block survives a restart.

use std::sync::Arc;

use lull_common::runtime::now_unix;
use lull_proto::error::ErrorCode;
use lull_proto::msg::hosts::{
    BlockReply, BlockRequest, ForgetReply, ForgetRequest, HostGetRequest, UnblockRequest,
};
use lull_proto::subjects::endpoints as ep;
use lull_proto::ErrorReply;

use super::FleetHandle;
use crate::config::ListsConfig;
use crate::service::{err, gone, typed, Empty, Handler};
use crate::store::history::{read, HistoryStore};
use crate::store::StoreError;
use lull_engine::quiet::blocks::{Block, BlockCursor, Target};

use super::drain::Drainer;
use lull_engine::quiet::forecast::{ForecastReply, ForecastRequest};
use lull_engine::quiet::health::{rollup, HealthReply, SystemFacts};
use lull_engine::quiet::history::{parse_duration, plan, HistoryReply, HistoryRequest};
use lull_engine::quiet::maintenance::{Weekly, Window, LOOKAHEAD_SEC};
use lull_engine::quiet::streaks::{encode_cursor, StreaksPage, StreaksReply, StreaksRequest};
use lull_proto::msg::page::{HostListReply, PageRequest};

fn db(e: StoreError) -> ErrorReply {
    tracing::warn!(error = %e, "history query failed");
    err(ErrorCode::Unavailable, format!("history store: {e}"))
}

/// `stats.history`.
async fn history(
    store: &HistoryStore,
    fleet: &FleetHandle,
    req: HistoryRequest,
) -> Result<HistoryReply, ErrorReply> {
    let now = now_unix();
    let p = plan(&req, &store.quiet.history, now).map_err(|e| ErrorReply::from(&e))?;
    let pending = match fleet.live_quiet(req.host_id.clone()).await.map_err(gone)? {
        Some(l) => l.pending,
        None => Vec::new(),
    };
    let points = read::points(store, &req.host_id, &p, &pending)
        .await
        .map_err(db)?;
    Ok(HistoryReply::new(&req.host_id, &p, points))
}

/// `quiet.streaks`: stored streaks that end within the range, plus the one
/// in progress when it is already long enough to count.
/// `quiet.streaks`: stored streaks by start time, then the open one. A
/// request without `limit` and `cursor` gets up to `max_streaks` as a bare
/// array; one with either gets a page and `next_cursor` (the last start
/// time) while stored streaks remain.
async fn streaks(
    store: &HistoryStore,
    fleet: &FleetHandle,
    lists: ListsConfig,
    req: StreaksRequest,
) -> Result<StreaksReply, ErrorReply> {
    let cfg = &store.quiet.streaks;
    let range = req.range.as_deref().unwrap_or(&cfg.default_range);
    let range = parse_duration(range).map_err(|e| ErrorReply::from(&e.into_validation("range")))?;
    let from = now_unix() - range;
    let after = req.after().map_err(|e| ErrorReply::from(&e))?;
    let page = req.page();
    let limit = if page.is_paged() {
        page.size(lists.default_limit, lists.max_limit)
    } else {
        usize::try_from(store.cfg.max_streaks).unwrap_or(usize::MAX)
    };
    // One more than the page, to know whether another page follows.
    let ask = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
    let mut out = read::streaks(store, &req.host_id, from, after, ask)
        .await
        .map_err(db)?;
    let more = out.len() > limit;
    out.truncate(limit);
    if !more {
        let live = fleet.live_quiet(req.host_id.clone()).await.map_err(gone)?;
        if let Some(open) = live.and_then(|l| l.open_streak) {
            let stored = out.iter().any(|s| s.start_time == open.start_time);
            let fresh = after.is_none_or(|a| open.start_time > a);
            if !stored
                && fresh
                && open.duration_sec() >= cfg.min_streak_sec
                && open.end_time >= from
            {
                out.push(open);
            }
        }
    }
    if !page.is_paged() {
        return Ok(StreaksReply::Plain(out));
    }
    let next_cursor = if more {
        out.last().map(encode_cursor)
    } else {
        None
    };
    Ok(StreaksReply::Page(StreaksPage {
        streaks: out,
        next_cursor,
    }))
}

/// `quiet.forecast`.
async fn forecast(
    store: &HistoryStore,
    fleet: &FleetHandle,
    req: ForecastRequest,
) -> Result<ForecastReply, ErrorReply> {
    let now = now_unix();
    let f = &store.quiet.forecast;
    let since = now - f64::from(f.lookback_days) * 86_400.0;
    let heatmap = read::heatmap(store, &req.host_id, since)
        .await
        .map_err(db)?;
    let empty = (0..lull_engine::quiet::forecast::HOURS_PER_WEEK).all(|h| heatmap.samples(h) == 0);
    if empty
        && fleet
            .get(req.host_id.clone())
            .await
            .map_err(gone)?
            .is_none()
    {
        return Err(err(
            ErrorCode::NotFound,
            format!("host {:?} is not known", req.host_id),
        ));
    }
    let threshold = req.threshold.unwrap_or(f.threshold);
    let blocks = fleet.blocks_now().await.map_err(gone)?;
    let blocked = blocks.spans_of(&req.host_id, now, now + LOOKAHEAD_SEC);
    Ok(ForecastReply::build(
        &req.host_id,
        &heatmap,
        now,
        threshold,
        &blocked,
    ))
}

/// `stats.health`.
async fn health(store: &HistoryStore, fleet: &FleetHandle) -> Result<HealthReply, ErrorReply> {
    let facts = fleet.health_facts().await.map_err(gone)?;
    let now = now_unix();
    let lag = store.shared.db.lag(now);
    let sys = SystemFacts {
        db_write_lag_sec: lag,
        db_error: store.shared.db.last_error(),
    };
    Ok(rollup(&facts, &sys, &store.quiet.health, now))
}

fn target(host_id: Option<String>) -> Target {
    host_id
}

/// `hosts.block`: persisted, then applied. With `from` or `recurrence` it
/// adds a maintenance window instead.
async fn block(
    store: &HistoryStore,
    fleet: &FleetHandle,
    lock: &tokio::sync::Mutex<()>,
    drainer: &Drainer,
    max_windows: usize,
    req: BlockRequest,
) -> Result<BlockReply, ErrorReply> {
    let now = now_unix();
    if let Some(u) = req.until {
        if u <= now {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!("until must be in the future, got {u} (now {now:.0})"),
            ));
        }
    }
    if req.is_window() {
        return add_window(store, fleet, lock, req, now, max_windows).await;
    }
    let t = target(req.host_id);
    let b = Block {
        reason: req.reason.filter(|r| !r.trim().is_empty()),
        until: req.until,
        blocked_at: now,
    };
    let why = b.reason.clone();
    let mut reply = {
        // One change at a time, so the database and the actor agree on order.
        let _g = lock.lock().await;
        crate::store::blocks::upsert(&store.pool, &t, &b)
            .await
            .map_err(db)?;
        let reply = fleet.block(t.clone(), b).await.map_err(gone)?;
        tracing::info!(target = t.as_deref().unwrap_or("*"), "operator block set");
        reply
    };
    if req.drain {
        // The block is in force: no new grants while the running leases end.
        let what = t
            .as_deref()
            .map_or("the fleet".to_string(), |h| format!("host {h}"));
        let reason = match why {
            Some(w) => format!("{what} drained: {w}"),
            None => format!("{what} drained by an operator"),
        };
        let timeout = std::time::Duration::from_secs_f64(req.drain_timeout_sec.unwrap_or(0.0));
        let report = drainer.drain(t.as_deref(), &reason, timeout).await?;
        tracing::info!(
            target = t.as_deref().unwrap_or("*"),
            finished = report.finished.len(),
            revoked = report.revoked.len(),
            "drained"
        );
        reply.drain = Some(report);
    }
    Ok(reply)
}

/// `hosts.block` with `from` or `recurrence`: the time zone is looked up,
/// the window stored (which gives its id), then applied.
async fn add_window(
    store: &HistoryStore,
    fleet: &FleetHandle,
    lock: &tokio::sync::Mutex<()>,
    req: BlockRequest,
    now: f64,
    max_windows: usize,
) -> Result<BlockReply, ErrorReply> {
    let invalid = |m: String| err(ErrorCode::InvalidRequest, m);
    let weekly = match &req.recurrence {
        None => None,
        Some(r) => {
            let tz = crate::store::blocks::time_zone(&r.tz)
                .map_err(|e| invalid(format!("recurrence.tz {:?}: {e}", r.tz)))?;
            Some(Weekly::new(r, tz).map_err(|e| ErrorReply::from(&e))?)
        }
    };
    let mut w = Window {
        id: 0,
        reason: req.reason.filter(|r| !r.trim().is_empty()),
        from: req.from.unwrap_or(now),
        until: req.until,
        weekly,
        created_at: now,
    };
    if w.current_or_next(now).is_none() && w.weekly.is_some() {
        return Err(invalid(
            "the window never opens between from and until".to_string(),
        ));
    }
    let t = target(req.host_id);
    let _g = lock.lock().await;
    let live = crate::store::blocks::live_window_count(&store.pool, now)
        .await
        .map_err(db)?;
    if usize::try_from(live).unwrap_or(usize::MAX) >= max_windows {
        tracing::warn!(
            live,
            max_windows,
            "maintenance window refused: the limit is reached"
        );
        return Err(invalid(format!(
            "{live} maintenance windows are already scheduled, the limit (hosts.max_windows) is \
             {max_windows}: remove some first (lullctl unblock --window ID)"
        )));
    }
    w.id = crate::store::blocks::insert_window(&store.pool, &t, &w)
        .await
        .map_err(db)?;
    let id = w.id;
    let reply = fleet.add_window(t.clone(), w).await.map_err(gone)?;
    tracing::info!(
        target = t.as_deref().unwrap_or("*"),
        window = id,
        "maintenance window added"
    );
    Ok(reply)
}

/// `hosts.unblock`: deleted, then lifted. By `window_id` it removes one
/// maintenance window; with `windows` also every window of the target.
async fn unblock(
    store: &HistoryStore,
    fleet: &FleetHandle,
    lock: &tokio::sync::Mutex<()>,
    req: UnblockRequest,
) -> Result<BlockReply, ErrorReply> {
    let _g = lock.lock().await;
    if let Some(id) = req.window_id {
        crate::store::blocks::delete_window(&store.pool, id)
            .await
            .map_err(db)?;
        let reply = fleet.remove_window(id).await.map_err(gone)?;
        tracing::info!(window = id, "maintenance window removed");
        return Ok(reply);
    }
    let t = target(req.host_id);
    crate::store::blocks::delete(&store.pool, &t)
        .await
        .map_err(db)?;
    if req.windows {
        crate::store::blocks::delete_windows_of(&store.pool, &t)
            .await
            .map_err(db)?;
    }
    let reply = fleet.unblock(t.clone(), req.windows).await.map_err(gone)?;
    tracing::info!(
        target = t.as_deref().unwrap_or("*"),
        windows = req.windows,
        "operator block lifted"
    );
    Ok(reply)
}

/// `hosts.forget`: the fleet and the lease book let the host go (refused
/// while it reports or holds leases), then its rows are deleted. A host
/// the fleet no longer knows is still deleted from the database (a retry
/// after a failed delete).
async fn forget(
    store: &HistoryStore,
    fleet: &FleetHandle,
    lock: &tokio::sync::Mutex<()>,
    req: ForgetRequest,
) -> Result<ForgetReply, ErrorReply> {
    let _g = lock.lock().await;
    let in_memory = match fleet.forget(req.host_id.clone()).await.map_err(gone)? {
        Ok(known) => known,
        Err(why) => {
            return Ok(ForgetReply {
                host_id: req.host_id,
                forgotten: false,
                reason: Some(why),
            })
        }
    };
    let stored = crate::store::hosts::forget(&store.pool, &req.host_id)
        .await
        .map_err(db)?;
    if !in_memory && !stored {
        return Err(err(
            ErrorCode::NotFound,
            format!("host {:?} is not known", req.host_id),
        ));
    }
    tracing::info!(host = %req.host_id, "operator forgot a host");
    Ok(ForgetReply {
        host_id: req.host_id,
        forgotten: true,
        reason: None,
    })
}

/// The fleet's endpoints with their handlers: hosts, quiet history and
/// blocks.
pub fn endpoints(
    fleet: &FleetHandle,
    store: &HistoryStore,
    lists: ListsConfig,
    max: usize,
) -> Vec<(&'static str, Handler)> {
    let mut v = host_endpoints(fleet, lists, max);
    v.extend(quiet_endpoints(fleet, store, lists, max));
    v
}

/// `hosts.list`: a page of hosts. A request without `limit` and `cursor`
/// gets the original bare array (the first `default_limit` hosts); one
/// with either gets `{hosts, next_cursor}`. The cursor is the last host id
/// of the previous page.
async fn list(
    fleet: &FleetHandle,
    lists: ListsConfig,
    req: PageRequest,
) -> Result<HostListReply, ErrorReply> {
    if let Some(c) = &req.cursor {
        lull_proto::validate::subject_token("cursor", c).map_err(|e| ErrorReply::from(&e))?;
    }
    let limit = req.size(lists.default_limit, lists.max_limit);
    let page = fleet.list(req.cursor.clone(), limit).await.map_err(gone)?;
    Ok(if req.is_paged() {
        HostListReply::Page(page)
    } else {
        HostListReply::Plain(page.hosts)
    })
}

/// `hosts.blocks`: a page of the blocks in force, then of the maintenance
/// windows (`limit` items, a host's blocks kept together).
async fn blocks(
    fleet: &FleetHandle,
    lists: ListsConfig,
    req: PageRequest,
) -> Result<BlockReply, ErrorReply> {
    let cursor = match &req.cursor {
        Some(c) => {
            BlockCursor::decode(c).map_err(|e| err(ErrorCode::InvalidRequest, e.to_string()))?
        }
        None => BlockCursor::Start,
    };
    let limit = req.size(lists.default_limit, lists.max_limit);
    fleet.blocks(cursor, limit).await.map_err(gone)
}

/// `hosts.list`, `hosts.get` and `hosts.blocks`, answered by the fleet
/// actor.
fn host_endpoints(
    fleet: &FleetHandle,
    lists: ListsConfig,
    max: usize,
) -> Vec<(&'static str, Handler)> {
    let f = fleet.clone();
    let list = typed(max, move |req: PageRequest| {
        let fleet = f.clone();
        async move { list(&fleet, lists, req).await }
    });
    let f = fleet.clone();
    let get = typed(max, move |req: HostGetRequest| {
        let fleet = f.clone();
        async move {
            match fleet.get(req.host_id.clone()).await.map_err(gone)? {
                Some(d) => Ok(d),
                None => Err(err(
                    ErrorCode::NotFound,
                    format!("host {:?} is not known", req.host_id),
                )),
            }
        }
    });
    let f = fleet.clone();
    let blocks = typed(max, move |req: PageRequest| {
        let fleet = f.clone();
        async move { blocks(&fleet, lists, req).await }
    });
    vec![
        (ep::HOSTS_LIST, list),
        (ep::HOSTS_GET, get),
        (ep::HOSTS_BLOCKS, blocks),
    ]
}

/// The operator's changes, `hosts.block`, `hosts.unblock` and
/// `hosts.forget`: answered by
/// the leader only, whose fleet feeds the lease book (a standby's fleet
/// takes the stored blocks when it becomes leader).
pub fn operator_endpoints(
    fleet: &FleetHandle,
    store: &HistoryStore,
    drainer: Drainer,
    hosts: &crate::config::HostsConfig,
    max: usize,
) -> Vec<(&'static str, Handler)> {
    let max_windows = hosts.max_windows;
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    let lock_b = lock.clone();
    let block_h = {
        let store = store.clone();
        let fleet = fleet.clone();
        typed(max, move |r: BlockRequest| {
            let (s, f, l, d) = (
                store.clone(),
                fleet.clone(),
                lock_b.clone(),
                drainer.clone(),
            );
            async move { block(&s, &f, &l, &d, max_windows, r).await }
        })
    };
    let lock_u = lock.clone();
    let unblock_h = {
        let store = store.clone();
        let fleet = fleet.clone();
        typed(max, move |r: UnblockRequest| {
            let (s, f, l) = (store.clone(), fleet.clone(), lock_u.clone());
            async move { unblock(&s, &f, &l, r).await }
        })
    };
    let forget_h = {
        let store = store.clone();
        let fleet = fleet.clone();
        typed(max, move |r: ForgetRequest| {
            let (s, f, l) = (store.clone(), fleet.clone(), lock.clone());
            async move { forget(&s, &f, &l, r).await }
        })
    };
    vec![
        (ep::HOSTS_BLOCK, block_h),
        (ep::HOSTS_UNBLOCK, unblock_h),
        (ep::HOSTS_FORGET, forget_h),
    ]
}

/// The quiet-state endpoints.
fn quiet_endpoints(
    fleet: &FleetHandle,
    store: &HistoryStore,
    lists: ListsConfig,
    max: usize,
) -> Vec<(&'static str, Handler)> {
    let store = store.clone();
    let fleet = fleet.clone();
    macro_rules! handler {
        ($req:ty, |$s:ident, $f:ident, $r:ident| $body:expr) => {{
            let store = store.clone();
            let fleet = fleet.clone();
            typed(max, move |$r: $req| {
                let $s = store.clone();
                let $f = fleet.clone();
                async move { $body }
            })
        }};
    }
    vec![
        (
            ep::STATS_HISTORY,
            handler!(HistoryRequest, |s, f, r| history(&s, &f, r).await),
        ),
        (
            ep::STATS_HEALTH,
            handler!(Empty, |s, f, _r| health(&s, &f).await),
        ),
        (
            ep::QUIET_STREAKS,
            handler!(StreaksRequest, |s, f, r| streaks(&s, &f, lists, r).await),
        ),
        (
            ep::QUIET_FORECAST,
            handler!(ForecastRequest, |s, f, r| forecast(&s, &f, r).await),
        ),
    ]
}
