//! The fleet actor: the single owner of per-host state. It applies
//! snapshots to each host's quiet tracker and streak builder, keeps the
//! agents' telemetry and the operator blocks, sweeps for stale hosts and
//! ended blocks, keeps the per-host gauges, pushes changed host views to
//! the lease book, samples quiet scores and snapshots for the history on
//! the configured cadence, and hands rows to two writer tasks (host table,
//! history) so the database never slows it.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use lull_common::runtime::now_unix;
use lull_proto::msg::hosts::{
    AgentStatus, BlockReply, HostDetail, HostSummary, QuietAssessment, QuietState,
};
use lull_proto::msg::stats::SystemStatsSnapshot;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Command, FleetHandle, LiveQuiet};
use crate::store::history::write::{
    run_writer, split_chunk, HistoryBatch, QuietChunk, QuietPoint, SnapshotSample, StreakRow,
};
use crate::store::history::HistoryStore;
use crate::store::hosts::HostRow;
use lull_engine::lease::policy::HostView;
use lull_engine::quiet::blocks::Blocks;
use lull_engine::quiet::config::QuietConfig;
use lull_engine::quiet::health::HostFacts;
use lull_engine::quiet::streaks::{ClosedStreak, QuietSample, StreakBuilder};
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
}

/// When a host's lease view is worth pushing: any change of state,
/// staleness, block, cool-down or forecast; a signal moving by at least its
/// delta; or the last push being older than `refresh_sec`. Keeps the lease
/// book current without a view per snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewFilter {
    /// Longest time a pushed view may lag small drifts, seconds.
    pub refresh_sec: f64,
    /// Quiet score points.
    pub score_delta: f64,
    /// Percentage points of CPU, memory, IO pressure and free disk.
    pub pct_delta: f64,
    /// Load per core.
    pub load_delta: f64,
    /// Relative change of network throughput.
    pub net_delta_frac: f64,
}

impl Default for ViewFilter {
    fn default() -> Self {
        ViewFilter {
            refresh_sec: 5.0,
            score_delta: 1.0,
            pct_delta: 2.0,
            load_delta: 0.1,
            net_delta_frac: 0.2,
        }
    }
}

/// The figures of a host's lease view, without its strings (cheap to
/// compute and compare per snapshot).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewSignals {
    /// Quiet state.
    pub state: QuietState,
    /// Quiet score.
    pub score: f64,
    /// Stale.
    pub stale: bool,
    /// Blocked.
    pub blocked: bool,
    /// Cooling down after a PANIC.
    pub cooling: bool,
    /// Forecast hint.
    pub next_quiet_at: Option<f64>,
    /// `cpu_avg_2m`.
    pub cpu: f64,
    /// Memory used percent.
    pub mem: f64,
    /// Load per core.
    pub load: f64,
    /// IO pressure.
    pub io: Option<f64>,
    /// Free percent of the fullest disk.
    pub disk_free: Option<f64>,
    /// Network bytes per second.
    pub net: f64,
}

impl ViewFilter {
    /// Whether `new` differs enough from `old` (pushed at `at`) to push it
    /// at `now`.
    pub fn worth_pushing(&self, old: &ViewSignals, at: f64, new: &ViewSignals, now: f64) -> bool {
        let moved = |a: f64, b: f64, d: f64| (a - b).abs() >= d || a.is_nan() != b.is_nan();
        let moved_opt = |a: Option<f64>, b: Option<f64>, d: f64| match (a, b) {
            (Some(a), Some(b)) => moved(a, b, d),
            (None, None) => false,
            _ => true,
        };
        now - at >= self.refresh_sec
            || old.state != new.state
            || old.stale != new.stale
            || old.blocked != new.blocked
            || old.cooling != new.cooling
            || old.next_quiet_at != new.next_quiet_at
            || moved(old.score, new.score, self.score_delta)
            || moved(old.cpu, new.cpu, self.pct_delta)
            || moved(old.mem, new.mem, self.pct_delta)
            || moved(old.load, new.load, self.load_delta)
            || moved_opt(old.io, new.io, self.pct_delta)
            || moved_opt(old.disk_free, new.disk_free, self.pct_delta)
            || moved(
                old.net,
                new.net,
                self.net_delta_frac * old.net.abs().max(1.0),
            )
    }
}

/// Cached handles of a host's gauges (no label lookup per snapshot).
struct Gauges {
    score: metrics::Gauge,
    stale: metrics::Gauge,
    blocked: metrics::Gauge,
}

impl Gauges {
    fn new(host: &str) -> Self {
        Gauges {
            score: metrics::gauge!("lull_host_quiet_score", "host" => host.to_string()),
            stale: metrics::gauge!("lull_host_stale", "host" => host.to_string()),
            blocked: metrics::gauge!("lull_host_blocked", "host" => host.to_string()),
        }
    }
}

struct HostEntry {
    /// Boxed: moved in and out per snapshot without copying.
    snapshot: Box<SystemStatsSnapshot>,
    quiet: QuietAssessment,
    tracker: HostTracker,
    agent: AgentStatus,
    first_seen: f64,
    last_seen: f64,
    dirty: bool,
    stale: bool,
    blocked: bool,
    streaks: StreakBuilder,
    /// Quiet samples not yet handed to the history writer.
    qbuf: Vec<QuietPoint>,
    /// Cadence slot of the last stored quiet sample / group snapshot.
    quiet_slot: i64,
    group_slot: i64,
    /// Start of the next predicted quiet window.
    next_quiet_at: Option<f64>,
    /// What was last pushed to the lease book, and when.
    pushed: Option<(f64, ViewSignals)>,
    gauges: Gauges,
}

impl HostEntry {
    fn signals(&self, now: f64) -> ViewSignals {
        let i = &self.quiet.inputs;
        ViewSignals {
            state: self.quiet.state,
            score: self.quiet.quiet_score,
            stale: self.stale,
            blocked: self.blocked,
            cooling: self.tracker.in_cooldown(now).is_some(),
            next_quiet_at: self.next_quiet_at,
            cpu: i.cpu_avg_2m,
            mem: i.mem_pct,
            load: i.load_per_core,
            io: i.io_pressure,
            disk_free: i.disk_free_pct,
            net: self.snapshot.host.net_bps(),
        }
    }
}

/// Rows waiting for the history writer (besides each host's `qbuf`).
#[derive(Default)]
struct Pending {
    snaps: Vec<SnapshotSample>,
    streaks: Vec<StreakRow>,
    /// All pending rows, `qbuf`s included.
    rows: usize,
}

impl Pending {
    /// Room for one more row under `max`; counts a drop otherwise.
    fn room(&mut self, max: usize, kind: &'static str) -> bool {
        if self.rows >= max {
            metrics::counter!("lull_history_dropped_total", "kind" => kind).increment(1);
            return false;
        }
        self.rows += 1;
        true
    }

    fn streak(&mut self, max: usize, host: &str, streak: ClosedStreak) {
        if self.room(max, "streak") {
            self.streaks.push(StreakRow {
                host_id: host.to_string(),
                streak,
            });
        }
    }
}

/// Most commands handled per wake-up of the actor.
const COMMAND_BATCH: usize = 256;

struct Fleet {
    cfg: FleetConfig,
    hosts: HashMap<String, HostEntry>,
    first_seen: HashMap<String, f64>,
    /// Hosts whose lease view changed since the last push.
    changed: HashSet<String>,
    /// Where host views go (the lease book), if anywhere.
    views: Option<mpsc::Sender<Vec<HostView>>>,
    blocks: Blocks,
    pending: Pending,
}

/// Starts the actor (and, with a pool, its host-table writer; with
/// `cfg.history`, the history writer). `known` are hosts loaded from the
/// database, so `first_seen` survives restarts. Changed host views are
/// pushed to `views` (the lease book) in batches. Returns the handle and
/// the task, which ends after a final flush once `shutdown` is cancelled.
pub fn spawn(
    cfg: FleetConfig,
    pool: Option<Pool>,
    known: Vec<HostRow>,
    views: Option<mpsc::Sender<Vec<HostView>>>,
    shutdown: CancellationToken,
) -> (FleetHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(cfg.queue.max(16));
    let fleet = Fleet {
        first_seen: known
            .into_iter()
            .map(|r| (r.host_id, r.first_seen))
            .collect(),
        blocks: cfg.blocks.clone(),
        cfg,
        hosts: HashMap::new(),
        changed: HashSet::new(),
        views,
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
        self.refresh_blocked(now_unix());
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
                _ = sweep.tick() => self.sweep(now_unix()),
                _ = push_views.tick() => self.push_views(now_unix()),
                _ = history.tick() => self.flush_history(htx.as_ref(), now_unix()),
                _ = flush.tick() => {
                    let rows = self.dirty_rows();
                    if !rows.is_empty() {
                        if let Err(mpsc::error::TrySendError::Full(rows)) = wtx.try_send(rows) {
                            self.mark_dirty(&rows);
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
        let rows = self.dirty_rows();
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
                if let Some(e) = self.hosts.get_mut(&host) {
                    let t = &h.transport;
                    metrics::gauge!("lull_fleet_agent_reported_queue_length", "host" => host.clone())
                        .set(t.queue_length as f64);
                    metrics::counter!("lull_fleet_agent_reported_dropped_total", "host" => host.clone())
                        .absolute(t.dropped_messages);
                    metrics::gauge!("lull_fleet_agent_last_health_timestamp_seconds", "host" => host.clone())
                        .set(at);
                    e.agent.health = Some(*h);
                    e.agent.health_at = Some(at);
                }
            }
            Command::Failure(host, f, at) => {
                if let Some(e) = self.hosts.get_mut(&host) {
                    metrics::counter!("lull_fleet_agent_loop_failures_total", "host" => host.clone())
                        .increment(1);
                    e.agent.failure = Some(*f);
                    e.agent.failure_at = Some(at);
                }
            }
            Command::List(reply) => {
                let _ = reply.send(self.list(now_unix()));
            }
            Command::Get(host, reply) => {
                let _ = reply.send(self.get(&host, now_unix()));
            }
            Command::Block(target, block, reply) => {
                let now = now_unix();
                let changed = self.blocks.set(target.clone(), block);
                tracing::info!(
                    target = target.as_deref().unwrap_or("*"),
                    changed,
                    "block set"
                );
                self.refresh_blocked(now);
                let _ = reply.send(BlockReply {
                    ok: true,
                    changed,
                    blocks: self.blocks.list(now),
                });
            }
            Command::Unblock(target, reply) => {
                let now = now_unix();
                let changed = self.blocks.clear(&target);
                tracing::info!(
                    target = target.as_deref().unwrap_or("*"),
                    changed,
                    "block lifted"
                );
                self.refresh_blocked(now);
                let _ = reply.send(BlockReply {
                    ok: true,
                    changed,
                    blocks: self.blocks.list(now),
                });
            }
            Command::Blocks(reply) => {
                let _ = reply.send(self.blocks.list(now_unix()));
            }
            Command::HealthFacts(reply) => {
                let _ = reply.send(self.health_facts());
            }
            Command::LiveQuiet(host, reply) => {
                let live = self.hosts.get(&host).map(|e| LiveQuiet {
                    pending: e.qbuf.iter().map(|p| (p.t, f64::from(p.score))).collect(),
                    open_streak: e.streaks.current(),
                });
                let _ = reply.send(live);
            }
            Command::Forecasts(hints) => self.apply_forecasts(hints),
        }
    }

    fn apply_snapshot(&mut self, snap: Box<SystemStatsSnapshot>, at: f64) {
        let Some(entry) = self.hosts.get_mut(&snap.host_id) else {
            self.add_host(snap, at);
            return;
        };
        if snap.seq < entry.snapshot.seq && snap.collected_at < entry.snapshot.collected_at {
            // An old snapshot delivered late: keep the newer one.
            metrics::counter!("lull_stats_out_of_order_total").increment(1);
            return;
        }
        if snap.seq > entry.snapshot.seq + 1 {
            metrics::counter!("lull_stats_seq_gaps_total")
                .increment(snap.seq - entry.snapshot.seq - 1);
        }
        let before = entry.quiet.state;
        entry.quiet = entry.tracker.observe(&snap, at);
        entry.snapshot = snap;
        sample_history(entry, &mut self.pending, self.cfg.history.as_ref(), at);
        entry.last_seen = at;
        entry.dirty = true;
        if entry.stale {
            entry.stale = false;
            entry.gauges.stale.set(0.0);
        }
        publish_state(
            &entry.snapshot.host_id,
            Some(before),
            &entry.quiet,
            &entry.gauges,
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
        let host_id = snap.host_id.clone();
        let first_seen = *self.first_seen.entry(host_id.clone()).or_insert(at);
        let mut tracker = HostTracker::new(self.cfg.quiet.clone());
        let quiet = tracker.observe(&snap, at);
        let gauges = Gauges::new(&host_id);
        gauges.stale.set(0.0);
        let blocked = self.blocks.of(&host_id, at).is_some();
        gauges.blocked.set(if blocked { 1.0 } else { 0.0 });
        publish_state(&host_id, None, &quiet, &gauges);
        tracing::info!(host = %host_id, state = %quiet.state, "new host");
        self.changed.insert(host_id.clone());
        let mut entry = HostEntry {
            snapshot: snap,
            quiet,
            tracker,
            agent: AgentStatus::default(),
            first_seen,
            last_seen: at,
            dirty: true,
            stale: false,
            blocked,
            streaks: StreakBuilder::new(&self.cfg.quiet.streaks),
            qbuf: Vec::new(),
            quiet_slot: i64::MIN,
            group_slot: i64::MIN,
            next_quiet_at: None,
            pushed: None,
            gauges,
        };
        sample_history(&mut entry, &mut self.pending, self.cfg.history.as_ref(), at);
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
                e.stale = is_stale;
                self.changed.insert(id.clone());
                e.gauges.stale.set(if is_stale { 1.0 } else { 0.0 });
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
            metrics::gauge!("lull_hosts", "state" => s.as_str())
                .set(counts.get(&s).copied().unwrap_or(0) as f64);
        }
        metrics::gauge!("lull_hosts_stale").set(stale as f64);
        if self.blocks.next_end().is_some_and(|t| t <= now) {
            self.blocks.expire(now);
        }
        self.refresh_blocked(now);
        if let Some(h) = &self.cfg.history {
            metrics::gauge!("lull_history_pending_rows").set(self.pending.rows as f64);
            metrics::gauge!("lull_db_write_lag_seconds").set(h.shared.db.lag(now).unwrap_or(0.0));
        }
    }

    /// Brings every host's `blocked` flag and gauge up to date with the
    /// blocks at `now`; hosts whose flag changed get their view pushed.
    fn refresh_blocked(&mut self, now: f64) {
        let mut blocked = 0u64;
        for (id, e) in &mut self.hosts {
            let b = self.blocks.of(id, now).is_some();
            if b != e.blocked {
                e.blocked = b;
                e.gauges.blocked.set(if b { 1.0 } else { 0.0 });
                self.changed.insert(id.clone());
            }
            if b {
                blocked += 1;
            }
        }
        metrics::gauge!("lull_hosts_blocked").set(blocked as f64);
        let fleet = if self.blocks.fleet(now).is_some() {
            1.0
        } else {
            0.0
        };
        metrics::gauge!("lull_blocks", "scope" => "fleet").set(fleet);
        metrics::gauge!("lull_blocks", "scope" => "host").set(self.blocks.host_count() as f64);
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
        let mut quiet = Vec::new();
        for (id, e) in &mut self.hosts {
            if !e.qbuf.is_empty() {
                let samples = std::mem::take(&mut e.qbuf);
                quiet.extend(split_chunk(
                    QuietChunk {
                        host_id: id.clone(),
                        samples,
                    },
                    max_span,
                ));
            }
        }
        self.pending.rows = 0;
        HistoryBatch {
            created_at: now,
            quiet,
            snapshots: std::mem::take(&mut self.pending.snaps),
            streaks: std::mem::take(&mut self.pending.streaks),
        }
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
            metrics::counter!("lull_history_writer_busy_total").increment(1);
            return;
        };
        let batch = self.take_batch(now);
        store.shared.db.queued(now);
        permit.send(batch);
    }

    /// Sends the views of changed hosts to the lease book. When its queue
    /// is full the hosts stay marked and go with the next push.
    fn push_views(&mut self, now: f64) {
        let Some(tx) = &self.views else {
            self.changed.clear();
            return;
        };
        if self.changed.is_empty() {
            return;
        }
        let views: Vec<HostView> = self
            .changed
            .iter()
            .filter_map(|id| {
                self.hosts
                    .get(id)
                    .map(|e| view_of(id, e, &self.blocks, now))
            })
            .collect();
        if tx.try_send(views).is_ok() {
            for id in self.changed.drain() {
                if let Some(e) = self.hosts.get_mut(&id) {
                    e.pushed = Some((now, e.signals(now)));
                }
            }
        }
    }

    fn list(&self, now: f64) -> Vec<HostSummary> {
        let mut out: Vec<HostSummary> = self
            .hosts
            .iter()
            .map(|(id, e)| HostSummary {
                host_id: id.clone(),
                state: e.quiet.state,
                quiet_score: e.quiet.quiet_score,
                last_seen: e.last_seen,
                stale: e.stale,
                blocked: self.blocks.of(id, now).is_some(),
            })
            .collect();
        out.sort_by(|a, b| a.host_id.cmp(&b.host_id));
        out
    }

    fn get(&self, host: &str, now: f64) -> Option<HostDetail> {
        self.hosts.get(host).map(|e| HostDetail {
            snapshot: (*e.snapshot).clone(),
            quiet: e.quiet.clone(),
            agent: e.agent.clone(),
            last_seen: e.last_seen,
            stale: e.stale,
            block: self.blocks.info_of(host, now),
        })
    }

    fn health_facts(&self) -> Vec<HostFacts> {
        self.hosts
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

    fn dirty_rows(&mut self) -> Vec<HostRow> {
        self.hosts
            .iter_mut()
            .filter(|(_, e)| e.dirty)
            .map(|(id, e)| {
                e.dirty = false;
                HostRow {
                    host_id: id.clone(),
                    first_seen: e.first_seen,
                    last_seen: e.last_seen,
                }
            })
            .collect()
    }

    fn mark_dirty(&mut self, rows: &[HostRow]) {
        for r in rows {
            if let Some(e) = self.hosts.get_mut(&r.host_id) {
                e.dirty = true;
            }
        }
    }
}

/// Feeds the host's latest assessed snapshot (received at `at`) to its
/// streak builder, and keeps a quiet sample and a copy of the snapshot for
/// the history when their cadence slot is new.
fn sample_history(
    e: &mut HostEntry,
    pending: &mut Pending,
    history: Option<&HistoryStore>,
    at: f64,
) {
    let closed = e.streaks.push(QuietSample {
        time: at,
        score: e.quiet.quiet_score,
        state: e.quiet.state,
    });
    let Some(store) = history else {
        return;
    };
    let cfg = &store.cfg;
    let max = cfg.max_pending_rows;
    if let Some(s) = closed {
        pending.streak(max, &e.snapshot.host_id, s);
    }
    let slot = (at / cfg.quiet_every_sec).floor() as i64;
    if slot != e.quiet_slot && pending.room(max, "quiet") {
        e.quiet_slot = slot;
        e.qbuf.push(QuietPoint {
            t: at,
            score: e.quiet.quiet_score as f32,
            state: e.quiet.state,
        });
    }
    let slot = (at / cfg.groups_every_sec).floor() as i64;
    if slot != e.group_slot && pending.room(max, "snapshot") {
        e.group_slot = slot;
        pending.snaps.push(SnapshotSample {
            t: at,
            snapshot: (*e.snapshot).clone(),
        });
    }
}

/// What the lease book needs to know of a host.
fn view_of(id: &str, e: &HostEntry, blocks: &Blocks, now: f64) -> HostView {
    let i = &e.quiet.inputs;
    let mut v = HostView::new(
        id,
        e.quiet.state,
        e.quiet.quiet_score,
        e.snapshot.host.cpu_count,
        e.last_seen,
    );
    v.stale = e.stale;
    if let Some((_, b)) = blocks.of(id, now) {
        v.blocked = true;
        v.blocked_reason = b.reason.clone();
    }
    v.cooldown_until = e.tracker.in_cooldown(now).map(|left| now + left);
    v.next_quiet_at = e.next_quiet_at;
    v.cpu_avg_pct = Some(i.cpu_avg_2m);
    v.load_per_core = Some(i.load_per_core);
    v.mem_pct = Some(i.mem_pct);
    v.io_pressure = i.io_pressure;
    v.disk_free_pct = i.disk_free_pct;
    v.net_bps = Some(e.snapshot.host.net_bps());
    v
}

/// Updates the per-host gauges; the state gauge only on a change.
fn publish_state(host: &str, before: Option<QuietState>, now: &QuietAssessment, g: &Gauges) {
    g.score.set(now.quiet_score);
    if before != Some(now.state) {
        for s in QuietState::ALL {
            metrics::gauge!("lull_host_state", "host" => host.to_string(), "state" => s.as_str())
                .set(if s == now.state { 1.0 } else { 0.0 });
        }
        if let Some(b) = before {
            tracing::info!(host, from = %b, to = %now.state, score = now.quiet_score, "quiet state changed");
        }
    }
}

async fn write_hosts(pool: Pool, mut rx: mpsc::Receiver<Vec<HostRow>>) {
    while let Some(rows) = rx.recv().await {
        let started = Instant::now();
        match crate::store::hosts::upsert(&pool, &rows).await {
            Ok(_) => {
                metrics::histogram!("lull_db_batch_duration_seconds", "table" => "hosts")
                    .record(started.elapsed().as_secs_f64());
                metrics::histogram!("lull_db_batch_rows", "table" => "hosts")
                    .record(rows.len() as f64);
                metrics::gauge!("lull_db_last_write_timestamp_seconds", "table" => "hosts")
                    .set(now_unix());
            }
            Err(e) => {
                metrics::counter!("lull_db_write_errors_total", "table" => "hosts").increment(1);
                tracing::warn!(error = %e, rows = rows.len(), "writing hosts failed");
            }
        }
    }
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
        }
    }

    /// A store whose database is never reached (flushes are an hour apart).
    fn offline_store(cfg: HistoryStoreConfig) -> HistoryStore {
        let pool = crate::store::pool("postgres://nobody@127.0.0.1:1/none", 1).unwrap();
        HistoryStore::new(pool, cfg, std::sync::Arc::new(QuietConfig::default()))
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

    fn signals() -> ViewSignals {
        ViewSignals {
            state: QuietState::Quiet,
            score: 90.0,
            stale: false,
            blocked: false,
            cooling: false,
            next_quiet_at: None,
            cpu: 10.0,
            mem: 40.0,
            load: 0.2,
            io: Some(1.0),
            disk_free: Some(50.0),
            net: 1000.0,
        }
    }

    #[test]
    fn only_meaningful_view_changes_are_pushed_at_once() {
        let f = ViewFilter::default();
        let old = signals();
        let same = |g: &dyn Fn(&mut ViewSignals)| {
            let mut n = old;
            g(&mut n);
            f.worth_pushing(&old, 100.0, &n, 101.0)
        };
        assert!(!same(&|_| {}));
        assert!(!same(&|n| n.score = 90.9));
        assert!(!same(&|n| n.cpu = 11.5));
        assert!(!same(&|n| n.net = 1100.0));
        assert!(same(&|n| n.score = 89.0));
        assert!(same(&|n| n.state = QuietState::Normal));
        assert!(same(&|n| n.stale = true));
        assert!(same(&|n| n.blocked = true));
        assert!(same(&|n| n.cooling = true));
        assert!(same(&|n| n.next_quiet_at = Some(5.0)));
        assert!(same(&|n| n.cpu = 12.0));
        assert!(same(&|n| n.mem = 38.0));
        assert!(same(&|n| n.load = 0.35));
        assert!(same(&|n| n.io = None));
        assert!(same(&|n| n.disk_free = Some(47.9)));
        assert!(same(&|n| n.net = 1300.0));
        assert!(same(&|n| n.cpu = f64::NAN));
        // Small drifts go with the refresh.
        assert!(f.worth_pushing(&old, 100.0, &old, 105.0));
    }

    #[tokio::test]
    async fn blocks_and_forecasts_reach_the_lease_views_and_the_list() {
        let (vtx, mut vrx) = mpsc::channel(64);
        let stop = CancellationToken::new();
        let (fleet, task) = spawn(config(None), None, vec![], Some(vtx), stop.clone());
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
        let list = fleet.list().await.unwrap();
        let flags: Vec<(&str, bool)> = list
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
        let r = fleet.unblock(None).await.unwrap();
        assert!(r.changed);
        assert_eq!(r.blocks.len(), 1);
        assert!(!next_view(&mut vrx, "b").await.blocked);
        assert!(!fleet.unblock(None).await.unwrap().changed);

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
        let (fleet, task) = spawn(config(Some(store)), None, vec![], None, stop.clone());
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
