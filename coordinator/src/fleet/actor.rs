//! The fleet actor: the single owner of per-host state. It applies
//! snapshots to each host's quiet tracker and streak builder, keeps the
//! agents' telemetry and the operator blocks, sweeps for stale hosts and
//! ended blocks, keeps the per-host gauges, pushes changed host views to
//! the lease book, samples quiet scores and snapshots for the history on
//! the configured cadence, and hands rows to two writer tasks (host table,
//! history) so the database never slows it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use deadpool_postgres::Pool;
use lull_common::runtime::now_unix;
use lull_proto::msg::hosts::{AgentStatus, QuietState};
use lull_proto::msg::page::HostPage;
use lull_proto::msg::stats::SystemStatsSnapshot;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::history::{self, Pending};
use super::host::{publish_state, HostEntry};
use super::host_table::{dirty_rows, mark_dirty, row_of, write_hosts};
use super::metrics as m;

mod blocking;
mod forget;
use super::order::{self, Order};
use super::roster::Roster;
use super::views::ViewFilter;
use super::{queries, Command, FleetHandle};
use crate::handoff::Views;
use crate::ingest::metrics::{AGENT_MESSAGES, STATS_MESSAGES};
use crate::store::history::write::HistoryBatch;
use crate::store::history::writer::run_writer;
use crate::store::history::HistoryStore;
use crate::store::hosts::HostRow;
use lull_engine::lease::policy::HostView;
use lull_engine::quiet::blocks::Blocks;
use lull_engine::quiet::config::QuietConfig;
use lull_engine::quiet::streaks::StreakBuilder;
use lull_engine::quiet::tracker::HostTracker;

/// Tunables of the fleet actor.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Capacity of the command channel.
    pub queue: usize,
    /// Host-table flush period.
    pub hosts_flush: Duration,
    /// Staleness sweep period.
    pub sweep: Duration,
    /// Quiet engine configuration.
    pub quiet: std::sync::Arc<QuietConfig>,
    /// How often changed host views are pushed to the lease book.
    pub views_flush: Duration,
    /// Which view changes are pushed at once (the rest wait for the refresh).
    pub views_filter: ViewFilter,
    /// Where history goes (cadences and limits in its config); `None`
    /// keeps no history.
    pub history: Option<HistoryStore>,
    /// Operator blocks in force at start (loaded from the database).
    pub blocks: Blocks,
    /// Bounds on the hosts kept (cap, eviction, per-host series).
    pub hosts: crate::config::HostsConfig,
    /// Page sizes (the block list an operator change answers with).
    pub lists: crate::config::ListsConfig,
}

/// Most commands handled per wake-up of the actor.
const COMMAND_BATCH: usize = 256;

struct Fleet {
    cfg: FleetConfig,
    hosts: HashMap<String, HostEntry>,
    /// The cap, eviction and per-host series budget.
    roster: Roster,
    /// Hosts whose lease view changed since the last push.
    changed: HashSet<String>,
    /// Hosts forgotten since the last push (their views go).
    removed: Vec<String>,
    /// Host-table rows of forgotten hosts, for the next write.
    gone_rows: Vec<HostRow>,
    /// Where host views go (the lease book), if anywhere.
    views: Option<mpsc::Sender<Views>>,
    blocks: Blocks,
    /// When the blocks next change by themselves (a window opens or
    /// closes, a block ends): the actor wakes then.
    block_wake: Option<f64>,
    pending: Pending,
}

/// Starts the actor (and, with a pool, its host-table writer; with
/// `cfg.history`, the history writer). Changed host views are pushed to
/// `views` (the lease book) in batches. Returns the handle and the task,
/// which ends after a final flush once `shutdown` is cancelled.
pub fn spawn(
    cfg: FleetConfig,
    pool: Option<Pool>,
    views: Option<mpsc::Sender<Views>>,
    shutdown: CancellationToken,
) -> (FleetHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(cfg.queue.max(16));
    let fleet = Fleet {
        blocks: cfg.blocks.clone(),
        roster: Roster::new(cfg.hosts.clone()),
        cfg,
        hosts: HashMap::new(),
        changed: HashSet::new(),
        removed: Vec::new(),
        gone_rows: Vec::new(),
        views,
        block_wake: None,
        pending: Pending::default(),
    };
    let task = tokio::spawn(fleet.run(rx, pool, shutdown));
    (FleetHandle { tx }, task)
}

impl Fleet {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        pool: Option<Pool>,
        shutdown: CancellationToken,
    ) {
        let (wtx, wrx) = mpsc::channel::<Vec<HostRow>>(4);
        let writer = pool.map(|p| tokio::spawn(write_hosts(p, wrx)));
        let (htx, history_writer) = match &self.cfg.history {
            Some(store) => {
                let (tx, rx) = mpsc::channel(store.cfg.writer_queue.max(1));
                (Some(tx), Some(tokio::spawn(run_writer(store.clone(), rx))))
            }
            None => (None, None),
        };
        let history_every = self
            .cfg
            .history
            .as_ref()
            .map_or(3600.0, |h| h.cfg.flush_sec.max(0.05));
        let mut sweep = tokio::time::interval(self.cfg.sweep);
        let mut flush = tokio::time::interval(self.cfg.hosts_flush);
        let mut push_views = tokio::time::interval(self.cfg.views_flush);
        let mut history = tokio::time::interval(Duration::from_secs_f64(history_every));
        self.blocks_tick(now_unix());
        // Commands are taken in batches: one pass through select! (and its
        // timers) per batch, not per snapshot.
        let mut batch = Vec::with_capacity(COMMAND_BATCH);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut batch, COMMAND_BATCH) => {
                    if n == 0 {
                        break;
                    }
                    for cmd in batch.drain(..) {
                        self.handle(cmd);
                    }
                }
                _ = blocking::wake(self.block_wake), if self.block_wake.is_some() => {
                    self.blocks_tick(now_unix());
                }
                _ = sweep.tick() => self.sweep(now_unix()),
                _ = push_views.tick() => self.push_views(now_unix()),
                _ = history.tick() => self.flush_history(htx.as_ref(), now_unix()),
                _ = flush.tick() => {
                    let rows = self.host_rows();
                    if !rows.is_empty() {
                        if let Err(mpsc::error::TrySendError::Full(rows)) = wtx.try_send(rows) {
                            self.gone_rows = mark_dirty(&mut self.hosts, rows);
                        }
                    }
                }
                _ = shutdown.cancelled() => break,
            }
        }
        // Drain what is already queued, then flush everything once more.
        rx.close();
        while let Ok(cmd) = rx.try_recv() {
            self.handle(cmd);
        }
        let rows = self.host_rows();
        if !rows.is_empty() {
            let _ = wtx.send(rows).await;
        }
        drop(wtx);
        if let Some(tx) = htx {
            // Streaks in progress end here: the coordinator stops watching.
            self.finish_streaks();
            let batch = self.take_batch(now_unix());
            if !batch.is_empty() {
                if let Some(store) = &self.cfg.history {
                    store.shared.db.queued(batch.created_at);
                }
                let _ = tx.send(batch).await;
            }
        }
        if let Some(w) = writer {
            let _ = w.await;
        }
        if let Some(w) = history_writer {
            let _ = w.await;
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Snapshot(snap, at) => self.apply_snapshot(snap, at),
            Command::Health(host, h, at) => {
                let e = self.hosts.get_mut(&host);
                agent_result("health", e.is_some());
                if let Some(e) = e {
                    e.agent_health(&host, *h, at);
                }
            }
            Command::Failure(host, f, at) => {
                let e = self.hosts.get_mut(&host);
                agent_result("failure", e.is_some());
                if let Some(e) = e {
                    e.agent_failure(&host, *f, at);
                }
            }
            Command::List(after, limit, reply) => {
                let (hosts, next_cursor) = queries::list(
                    &self.hosts,
                    &self.blocks,
                    after.as_deref(),
                    limit,
                    now_unix(),
                );
                let _ = reply.send(HostPage { hosts, next_cursor });
            }
            Command::Get(host, reply) => {
                let _ = reply.send(queries::get(&self.hosts, &self.blocks, &host, now_unix()));
            }
            cmd @ (Command::Block(..)
            | Command::Unblock(..)
            | Command::AddWindow(..)
            | Command::RemoveWindow(..)
            | Command::Blocks(..)
            | Command::BlocksNow(_)
            | Command::ReplaceBlocks(..)) => self.block_command(cmd),
            Command::HealthFacts(reply) => {
                let _ = reply.send(queries::health_facts(&self.hosts));
            }
            Command::LiveQuiet(host, reply) => {
                let _ = reply.send(queries::live_quiet(&self.hosts, &host));
            }
            Command::Forecasts(hints) => self.apply_forecasts(hints),
            Command::Forget(host, reply) => {
                let _ = reply.send(self.forget(host, now_unix()));
            }
            Command::Drop(host, reply) => {
                let _ = reply.send(self.drop_host(&host, now_unix()));
            }
        }
    }

    fn apply_snapshot(&mut self, snap: Box<SystemStatsSnapshot>, at: f64) {
        let Some(entry) = self.hosts.get_mut(&snap.host_id) else {
            self.add_host(snap, at);
            return;
        };
        match order::place(&entry.snapshot, &snap) {
            Order::Late => {
                // An old snapshot delivered late: keep the newer one.
                metrics::counter!(m::STATS_OUT_OF_ORDER.name).increment(1);
                metrics::counter!(STATS_MESSAGES.name, "result" => "out_of_order").increment(1);
                return;
            }
            Order::Next { gap } if gap > 0 => {
                metrics::counter!(m::STATS_SEQ_GAPS.name).increment(gap);
            }
            Order::Next { .. } => {}
            Order::Restart => {
                tracing::info!(
                    host = %snap.host_id,
                    from = entry.snapshot.seq,
                    to = snap.seq,
                    "snapshot sequence restarted"
                );
            }
        }
        metrics::counter!(STATS_MESSAGES.name, "result" => "accepted").increment(1);
        let before = entry.quiet.state;
        entry.quiet = entry.tracker.observe(&snap, at);
        entry.snapshot = snap;
        history::sample(entry, &mut self.pending, self.cfg.history.as_ref(), at);
        entry.last_seen = at;
        entry.dirty = true;
        if entry.stale {
            entry.set_stale(false);
        }
        publish_state(
            &entry.snapshot.host_id,
            Some(before),
            &entry.quiet,
            entry.gauges.as_ref(),
        );
        let worth = match &entry.pushed {
            None => true,
            Some((pushed_at, old)) => {
                self.cfg
                    .views_filter
                    .worth_pushing(old, *pushed_at, &entry.signals(at), at)
            }
        };
        if worth && !self.changed.contains(&entry.snapshot.host_id) {
            self.changed.insert(entry.snapshot.host_id.clone());
        }
    }

    fn add_host(&mut self, snap: Box<SystemStatsSnapshot>, at: f64) {
        if !self.roster.admit(self.hosts.len(), &snap.host_id, at) {
            return;
        }
        metrics::counter!(STATS_MESSAGES.name, "result" => "accepted").increment(1);
        let host_id = snap.host_id.clone();
        let mut tracker = HostTracker::new(self.cfg.quiet.clone());
        let quiet = tracker.observe(&snap, at);
        let gauges = self.roster.gauges_for(&host_id);
        let blocked = self.blocks.is_blocked(&host_id, at);
        let blocked_until = blocked.then(|| self.blocks.free_at(&host_id, at)).flatten();
        if let Some(g) = &gauges {
            g.stale.set(0.0);
            g.blocked.set(if blocked { 1.0 } else { 0.0 });
        }
        publish_state(&host_id, None, &quiet, gauges.as_ref());
        tracing::info!(host = %host_id, state = %quiet.state, "new host");
        self.changed.insert(host_id.clone());
        let mut entry = HostEntry {
            snapshot: snap,
            quiet,
            tracker,
            agent: AgentStatus::default(),
            // The host table keeps the earliest first_seen.
            first_seen: at,
            last_seen: at,
            dirty: true,
            stale: false,
            blocked,
            blocked_until,
            streaks: StreakBuilder::new(&self.cfg.quiet.streaks),
            qbuf: Vec::new(),
            quiet_slot: i64::MIN,
            group_slot: i64::MIN,
            next_quiet_at: None,
            pushed: None,
            gauges,
        };
        history::sample(&mut entry, &mut self.pending, self.cfg.history.as_ref(), at);
        self.hosts.insert(host_id, entry);
    }

    fn max_pending(&self) -> usize {
        self.cfg
            .history
            .as_ref()
            .map_or(0, |h| h.cfg.max_pending_rows)
    }

    fn sweep(&mut self, now: f64) {
        let mut counts: HashMap<QuietState, u64> = HashMap::new();
        let mut stale = 0u64;
        let max = self.max_pending();
        let history = self.cfg.history.is_some();
        let refresh = self.cfg.views_filter.refresh_sec;
        for (id, e) in &mut self.hosts {
            if e.pushed.is_some_and(|(at, _)| now - at >= refresh) && !self.changed.contains(id) {
                self.changed.insert(id.clone());
            }
            let is_stale = e.tracker.is_stale(now);
            if is_stale != e.stale {
                e.set_stale(is_stale);
                self.changed.insert(id.clone());
                if is_stale {
                    tracing::warn!(host = %id, last_seen = e.last_seen, "host went stale");
                    // A silent host is not quiet: its streak ends here.
                    if let Some(s) = e.streaks.finish() {
                        if history {
                            self.pending.streak(max, id, s);
                        }
                    }
                }
            }
            if e.stale {
                stale += 1;
            }
            *counts.entry(e.quiet.state).or_default() += 1;
        }
        for s in QuietState::ALL {
            metrics::gauge!(m::HOSTS.name, "state" => s.as_str())
                .set(counts.get(&s).copied().unwrap_or(0) as f64);
        }
        metrics::gauge!(m::HOSTS_STALE.name).set(stale as f64);
        self.evict(now);
        metrics::gauge!(m::HOSTS_KNOWN.name).set(self.hosts.len() as f64);
        self.blocks.expire(now);
        self.refresh_blocked(now);
        if let Some(h) = &self.cfg.history {
            metrics::gauge!(m::HISTORY_PENDING_ROWS.name).set(self.pending.rows as f64);
            metrics::gauge!(m::DB_WRITE_LAG.name).set(h.shared.db.lag(now).unwrap_or(0.0));
        }
    }

    fn apply_forecasts(&mut self, hints: Vec<(String, Option<f64>)>) {
        let hints: HashMap<String, Option<f64>> = hints.into_iter().collect();
        for (id, e) in &mut self.hosts {
            let next = hints.get(id).copied().flatten();
            if next != e.next_quiet_at {
                e.next_quiet_at = next;
                self.changed.insert(id.clone());
            }
        }
    }

    /// Forgets the hosts silent for longer than the eviction age: their
    /// streak ends, their unwritten samples and host row are kept for the
    /// next writes, and their views leave the lease book.
    fn evict(&mut self, now: f64) {
        let gone = self.roster.expired(&self.hosts, now);
        if gone.is_empty() {
            return;
        }
        let max = self.max_pending();
        let history = self.cfg.history.is_some();
        for id in &gone {
            let Some(mut e) = self.hosts.remove(id) else {
                continue;
            };
            self.roster.released(id, &e);
            match e.streaks.finish() {
                Some(s) if history => self.pending.streak(max, id, s),
                _ => {}
            }
            self.pending.orphan(id, std::mem::take(&mut e.qbuf));
            if e.dirty {
                self.gone_rows.push(row_of(id, &e));
            }
            self.changed.remove(id);
            tracing::info!(host = %id, last_seen = e.last_seen, "host forgotten (silent too long)");
        }
        metrics::counter!(m::HOSTS_EVICTED.name).increment(gone.len() as u64);
        self.removed.extend(gone);
    }

    /// The host-table rows to write: hosts seen since the last write and
    /// forgotten hosts not written yet.
    fn host_rows(&mut self) -> Vec<HostRow> {
        let mut rows = dirty_rows(&mut self.hosts);
        rows.append(&mut self.gone_rows);
        rows
    }

    /// Ends every streak in progress (at shutdown).
    fn finish_streaks(&mut self) {
        let max = self.max_pending();
        for (id, e) in &mut self.hosts {
            if let Some(s) = e.streaks.finish() {
                self.pending.streak(max, id, s);
            }
        }
    }

    /// Everything pending, as one batch; the buffers are left empty.
    fn take_batch(&mut self, now: f64) -> HistoryBatch {
        let max_span = self
            .cfg
            .history
            .as_ref()
            .map_or(f64::INFINITY, |h| h.cfg.quiet_chunk_max_sec);
        self.pending.take_batch(&mut self.hosts, max_span, now)
    }

    /// Hands what is pending to the history writer, unless its queue is
    /// full (then everything stays pending for the next flush).
    fn flush_history(&mut self, tx: Option<&mpsc::Sender<HistoryBatch>>, now: f64) {
        let (Some(tx), Some(store)) = (tx, self.cfg.history.clone()) else {
            return;
        };
        if self.pending.rows == 0 {
            return;
        }
        // Only this actor sends, so a reserved slot stays ours.
        let Ok(permit) = tx.try_reserve() else {
            metrics::counter!(m::HISTORY_WRITER_BUSY.name).increment(1);
            return;
        };
        let batch = self.take_batch(now);
        store.shared.db.queued(now);
        permit.send(batch);
    }

    /// Sends the views of changed hosts to the lease book now (an operator
    /// change): the receiver is answered once the book has them. Waits for
    /// room in the queue on a task of its own, never in the actor.
    fn push_views_now(&mut self, now: f64) -> Option<oneshot::Receiver<()>> {
        let tx = self.views.clone()?;
        let views: Vec<HostView> = self
            .changed
            .drain()
            .filter_map(|id| {
                let e = self.hosts.get_mut(&id)?;
                e.pushed = Some((now, e.signals(now)));
                Some(e.view(&id, &self.blocks, now))
            })
            .collect();
        let (ack, applied) = oneshot::channel();
        let update = Views {
            views,
            removed: std::mem::take(&mut self.removed),
            applied: Some(ack),
            forget: None,
        };
        match tx.try_send(update) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(update)) => {
                tokio::spawn(async move {
                    let _ = tx.send(update).await;
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return None,
        }
        Some(applied)
    }

    /// Sends the views of changed hosts to the lease book. When its queue
    /// is full the hosts stay marked and go with the next push.
    fn push_views(&mut self, now: f64) {
        let Some(tx) = &self.views else {
            self.changed.clear();
            self.removed.clear();
            return;
        };
        if self.changed.is_empty() && self.removed.is_empty() {
            return;
        }
        let views: Vec<HostView> = self
            .changed
            .iter()
            .filter_map(|id| self.hosts.get(id).map(|e| e.view(id, &self.blocks, now)))
            .collect();
        if tx
            .try_send(Views {
                views,
                removed: self.removed.clone(),
                applied: None,
                forget: None,
            })
            .is_ok()
        {
            self.removed.clear();
            for id in self.changed.drain() {
                if let Some(e) = self.hosts.get_mut(&id) {
                    e.pushed = Some((now, e.signals(now)));
                }
            }
        }
    }
}

/// Counts an agent telemetry message the actor took: kept, or dropped
/// because no snapshot of its host was seen.
fn agent_result(kind: &'static str, known: bool) {
    let result = if known { "accepted" } else { "unknown_host" };
    metrics::counter!(AGENT_MESSAGES.name, "kind" => kind, "result" => result).increment(1);
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::history::HistoryStoreConfig;
    use lull_engine::quiet::blocks::Block;
    use lull_proto::msg::stats::example_snapshot;

    fn config(history: Option<HistoryStore>) -> FleetConfig {
        FleetConfig {
            queue: 64,
            hosts_flush: Duration::from_secs(3600),
            sweep: Duration::from_millis(20),
            quiet: std::sync::Arc::new(QuietConfig::default()),
            views_flush: Duration::from_millis(20),
            views_filter: ViewFilter::default(),
            history,
            blocks: Blocks::default(),
            hosts: crate::config::HostsConfig::default(),
            lists: crate::config::ListsConfig::default(),
        }
    }

    /// A store whose database is never reached (flushes are an hour apart).
    fn offline_store(cfg: HistoryStoreConfig) -> HistoryStore {
        let pool = crate::store::pool("postgres://nobody@127.0.0.1:1/none", 1).unwrap();
        HistoryStore::new(pool, cfg, std::sync::Arc::new(QuietConfig::default()))
    }

    /// Plays the lease book: confirms every update at once and hands its
    /// views to the test.
    fn book(mut rx: mpsc::Receiver<Views>) -> mpsc::Receiver<Vec<HostView>> {
        let (tx, out) = mpsc::channel(64);
        tokio::spawn(async move {
            while let Some(u) = rx.recv().await {
                if let Some(a) = u.applied {
                    let _ = a.send(());
                }
                if tx.send(u.views).await.is_err() {
                    return;
                }
            }
        });
        out
    }

    async fn next_view(rx: &mut mpsc::Receiver<Vec<HostView>>, host: &str) -> HostView {
        loop {
            let batch = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("a view in time")
                .expect("views open");
            if let Some(v) = batch.into_iter().find(|v| v.host_id == host) {
                return v;
            }
        }
    }

    #[tokio::test]
    async fn blocks_and_forecasts_reach_the_lease_views_and_the_list() {
        let (vtx, vrx) = mpsc::channel(64);
        let mut vrx = book(vrx);
        let stop = CancellationToken::new();
        let (fleet, task) = spawn(config(None), None, Some(vtx), stop.clone());
        let now = now_unix();
        assert!(fleet.snapshot(example_snapshot("a", 1, now), now));
        assert!(fleet.snapshot(example_snapshot("b", 1, now), now));
        let v = next_view(&mut vrx, "a").await;
        assert!(!v.blocked);
        assert_eq!(v.next_quiet_at, None);

        let r = fleet
            .block(
                Some("a".into()),
                Block {
                    reason: Some("kernel update".into()),
                    until: None,
                    blocked_at: now,
                },
            )
            .await
            .unwrap();
        assert!(r.ok && r.changed);
        let v = next_view(&mut vrx, "a").await;
        assert!(v.blocked);
        assert_eq!(v.blocked_reason.as_deref(), Some("kernel update"));
        let list = fleet.list(None, 10).await.unwrap();
        assert_eq!(list.next_cursor, None);
        let flags: Vec<(&str, bool)> = list
            .hosts
            .iter()
            .map(|h| (h.host_id.as_str(), h.blocked))
            .collect();
        assert_eq!(flags, vec![("a", true), ("b", false)]);
        let d = fleet.get("a".into()).await.unwrap().unwrap();
        assert_eq!(d.block.unwrap().reason.as_deref(), Some("kernel update"));

        // A fleet block covers b too; lifting it leaves a's own block.
        fleet
            .block(
                None,
                Block {
                    reason: None,
                    until: None,
                    blocked_at: now,
                },
            )
            .await
            .unwrap();
        assert!(next_view(&mut vrx, "b").await.blocked);
        let r = fleet.unblock(None, false).await.unwrap();
        assert!(r.changed);
        assert_eq!(r.blocks.len(), 1);
        assert!(!next_view(&mut vrx, "b").await.blocked);
        assert!(!fleet.unblock(None, false).await.unwrap().changed);

        // Forecast hints land in the views; hosts not named lose theirs.
        fleet
            .set_forecasts(vec![("b".into(), Some(now + 900.0))])
            .await
            .unwrap();
        assert_eq!(
            next_view(&mut vrx, "b").await.next_quiet_at,
            Some(now + 900.0)
        );
        fleet.set_forecasts(vec![]).await.unwrap();
        assert_eq!(next_view(&mut vrx, "b").await.next_quiet_at, None);

        // A maintenance window lifts by itself (the sweep notices).
        fleet
            .block(
                Some("b".into()),
                Block {
                    reason: None,
                    until: Some(now_unix() + 0.2),
                    blocked_at: now,
                },
            )
            .await
            .unwrap();
        assert!(next_view(&mut vrx, "b").await.blocked);
        assert!(!next_view(&mut vrx, "b").await.blocked);

        // A maintenance window ahead: the view turns blocked when it opens
        // (with its end) and free when it closes, without a command.
        let from = now_unix() + 0.3;
        let r = fleet
            .add_window(
                Some("b".into()),
                lull_engine::quiet::maintenance::Window {
                    id: 7,
                    reason: Some("patch night".into()),
                    from,
                    until: Some(from + 0.3),
                    weekly: None,
                    created_at: now,
                },
            )
            .await
            .unwrap();
        assert!(r.changed && r.blocks.iter().all(|b| b.window_id.is_none()));
        assert_eq!(r.windows[0].next_start, Some(from));
        let v = next_view(&mut vrx, "b").await;
        assert!(v.blocked && now_unix() >= from);
        assert_eq!(v.blocked_until, Some(from + 0.3));
        assert_eq!(v.blocked_reason.as_deref(), Some("patch night"));
        let listed = fleet.blocks(Default::default(), 100).await.unwrap().blocks;
        let ids: Vec<Option<i64>> = listed.iter().map(|b| b.window_id).collect();
        assert_eq!(ids, vec![None, Some(7)], "a's own block, then b's window");
        assert!(!next_view(&mut vrx, "b").await.blocked);
        assert!(fleet.remove_window(7).await.unwrap().windows.is_empty());
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn hosts_are_capped_paged_and_forgotten() {
        let (vtx, mut vrx) = mpsc::channel(64);
        let mut cfg = config(None);
        cfg.hosts = crate::config::HostsConfig {
            max_hosts: 3,
            evict_after_sec: 0.5,
            host_metrics_max: 1,
            ..Default::default()
        };
        let stop = CancellationToken::new();
        let (fleet, task) = spawn(cfg, None, Some(vtx), stop.clone());
        let now = now_unix();
        for h in ["c", "a", "d", "b"] {
            assert!(fleet.snapshot(example_snapshot(h, 1, now), now));
        }
        // "b" came fourth: refused at the cap.
        let p1 = fleet.list(None, 2).await.unwrap();
        let ids: Vec<&str> = p1.hosts.iter().map(|h| h.host_id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(p1.next_cursor.as_deref(), Some("c"));
        let p2 = fleet.list(p1.next_cursor, 2).await.unwrap();
        let ids: Vec<&str> = p2.hosts.iter().map(|h| h.host_id.as_str()).collect();
        assert_eq!(ids, ["d"]);
        assert_eq!(p2.next_cursor, None);

        // "a" keeps reporting; the others fall silent and are forgotten,
        // and their views leave the lease book.
        let mut removed = Vec::new();
        let mut seq = 2;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while removed.len() < 2 && std::time::Instant::now() < deadline {
            let t = now_unix();
            assert!(fleet.snapshot(example_snapshot("a", seq, t), t));
            seq += 1;
            if let Ok(Some(u)) = tokio::time::timeout(Duration::from_millis(100), vrx.recv()).await
            {
                removed.extend(u.removed);
            }
        }
        removed.sort();
        assert_eq!(removed, ["c", "d"]);
        let all = fleet.list(None, 10).await.unwrap();
        let ids: Vec<&str> = all.hosts.iter().map(|h| h.host_id.as_str()).collect();
        assert_eq!(ids, ["a"]);
        // Room again: "b" is taken now.
        let t = now_unix();
        assert!(fleet.snapshot(example_snapshot("b", 1, t), t));
        assert_eq!(fleet.list(None, 10).await.unwrap().hosts.len(), 2);
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn history_is_sampled_on_its_cadence_and_streaks_are_tracked() {
        let store = offline_store(HistoryStoreConfig {
            quiet_every_sec: 10.0,
            groups_every_sec: 30.0,
            flush_sec: 3600.0,
            ..Default::default()
        });
        let stop = CancellationToken::new();
        let (fleet, task) = spawn(config(Some(store)), None, None, stop.clone());
        // Snapshots every 2 s for 70 s, in the future so nothing goes stale.
        let t0 = (now_unix() / 10.0).ceil() * 10.0 + 100.0;
        for k in 0..36u64 {
            let t = t0 + 2.0 * k as f64;
            assert!(fleet.snapshot(example_snapshot("h", k + 1, t), t));
        }
        let live = fleet.live_quiet("h".into()).await.unwrap().unwrap();
        let times: Vec<f64> = live.pending.iter().map(|(t, _)| t - t0).collect();
        assert_eq!(times, vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]);
        assert!(live.pending.iter().all(|(_, s)| *s == 100.0));
        let open = live.open_streak.unwrap();
        assert_eq!((open.start_time, open.end_time), (t0, t0 + 70.0));
        assert_eq!(open.min_score, 100.0);
        assert!(fleet.live_quiet("nobody".into()).await.unwrap().is_none());

        // A PANIC sample ends the streak (the closed one waits for the writer).
        let mut panic = example_snapshot("h", 40, t0 + 72.0);
        panic.host.mem_used_pct = 99.0;
        assert!(fleet.snapshot(panic, t0 + 72.0));
        let live = fleet.live_quiet("h".into()).await.unwrap().unwrap();
        assert!(live.open_streak.is_none());
        let facts = fleet.health_facts().await.unwrap();
        assert_eq!(facts[0].state, Some(QuietState::Panic));
        stop.cancel();
        task.await.unwrap();
    }
}
