//! The fleet actor: the single owner of per-host state. It applies
//! snapshots to each host's quiet tracker, keeps the agents' telemetry,
//! sweeps for stale hosts, keeps the per-host gauges, and batches the host
//! table to Postgres through a writer task so the database never slows it.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use lull_common::msg::hosts::{AgentStatus, HostDetail, HostSummary, QuietAssessment, QuietState};
use lull_common::msg::stats::SystemStatsSnapshot;
use lull_common::runtime::now_unix;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Command, FleetHandle};
use crate::lease::policy::HostView;
use crate::quiet::config::QuietConfig;
use crate::quiet::tracker::HostTracker;
use crate::store::hosts::HostRow;

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
}

struct HostEntry {
    snapshot: SystemStatsSnapshot,
    quiet: QuietAssessment,
    tracker: HostTracker,
    agent: AgentStatus,
    first_seen: f64,
    last_seen: f64,
    dirty: bool,
    stale: bool,
}

struct Fleet {
    cfg: FleetConfig,
    hosts: HashMap<String, HostEntry>,
    first_seen: HashMap<String, f64>,
    /// Hosts whose lease view changed since the last push.
    changed: HashSet<String>,
    /// Where host views go (the lease book), if anywhere.
    views: Option<mpsc::Sender<Vec<HostView>>>,
}

/// Starts the actor (and, with a pool, its host-table writer). `known` are
/// hosts loaded from the database, so `first_seen` survives restarts.
/// Changed host views are pushed to `views` (the lease book) in batches.
/// Returns the handle and the task, which ends after a final flush once
/// `shutdown` is cancelled.
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
        cfg,
        hosts: HashMap::new(),
        changed: HashSet::new(),
        views,
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
        let mut sweep = tokio::time::interval(self.cfg.sweep);
        let mut flush = tokio::time::interval(self.cfg.hosts_flush);
        let mut push_views = tokio::time::interval(self.cfg.views_flush);
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
                _ = sweep.tick() => self.sweep(now_unix()),
                _ = push_views.tick() => self.push_views(now_unix()),
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
        if let Some(w) = writer {
            let _ = w.await;
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Snapshot(snap, at) => self.apply_snapshot(*snap, at),
            Command::Health(host, h, at) => {
                if let Some(e) = self.hosts.get_mut(&host) {
                    e.agent.health = Some(*h);
                    e.agent.health_at = Some(at);
                }
            }
            Command::Failure(host, f, at) => {
                if let Some(e) = self.hosts.get_mut(&host) {
                    metrics::counter!("lull_agent_loop_failures_total", "host" => host.clone())
                        .increment(1);
                    e.agent.failure = Some(*f);
                    e.agent.failure_at = Some(at);
                }
            }
            Command::List(reply) => {
                let _ = reply.send(self.list());
            }
            Command::Get(host, reply) => {
                let _ = reply.send(self.get(&host));
            }
        }
    }

    fn apply_snapshot(&mut self, snap: SystemStatsSnapshot, at: f64) {
        let host_id = snap.host_id.clone();
        let Some(entry) = self.hosts.get_mut(&host_id) else {
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
        entry.last_seen = at;
        entry.dirty = true;
        if entry.stale {
            entry.stale = false;
            metrics::gauge!("lull_host_stale", "host" => host_id.clone()).set(0.0);
        }
        publish_state(&host_id, Some(before), &entry.quiet);
        self.changed.insert(host_id);
    }

    fn add_host(&mut self, snap: SystemStatsSnapshot, at: f64) {
        let host_id = snap.host_id.clone();
        let first_seen = *self.first_seen.entry(host_id.clone()).or_insert(at);
        let mut tracker = HostTracker::new(self.cfg.quiet.clone());
        let quiet = tracker.observe(&snap, at);
        publish_state(&host_id, None, &quiet);
        tracing::info!(host = %host_id, state = %quiet.state, "new host");
        self.changed.insert(host_id.clone());
        self.hosts.insert(
            host_id,
            HostEntry {
                snapshot: snap,
                quiet,
                tracker,
                agent: AgentStatus::default(),
                first_seen,
                last_seen: at,
                dirty: true,
                stale: false,
            },
        );
    }

    fn sweep(&mut self, now: f64) {
        let mut counts: HashMap<QuietState, u64> = HashMap::new();
        let mut stale = 0u64;
        for (id, e) in &mut self.hosts {
            let is_stale = e.tracker.is_stale(now);
            if is_stale != e.stale {
                e.stale = is_stale;
                self.changed.insert(id.clone());
                metrics::gauge!("lull_host_stale", "host" => id.clone()).set(if is_stale {
                    1.0
                } else {
                    0.0
                });
                if is_stale {
                    tracing::warn!(host = %id, last_seen = e.last_seen, "host went stale");
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
            .filter_map(|id| self.hosts.get(id).map(|e| view_of(id, e, now)))
            .collect();
        if tx.try_send(views).is_ok() {
            self.changed.clear();
        }
    }

    fn list(&self) -> Vec<HostSummary> {
        let mut out: Vec<HostSummary> = self
            .hosts
            .iter()
            .map(|(id, e)| HostSummary {
                host_id: id.clone(),
                state: e.quiet.state,
                quiet_score: e.quiet.quiet_score,
                last_seen: e.last_seen,
                stale: e.stale,
                blocked: false,
            })
            .collect();
        out.sort_by(|a, b| a.host_id.cmp(&b.host_id));
        out
    }

    fn get(&self, host: &str) -> Option<HostDetail> {
        self.hosts.get(host).map(|e| HostDetail {
            snapshot: e.snapshot.clone(),
            quiet: e.quiet.clone(),
            agent: e.agent.clone(),
            last_seen: e.last_seen,
            stale: e.stale,
        })
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

/// What the lease book needs to know of a host.
fn view_of(id: &str, e: &HostEntry, now: f64) -> HostView {
    let i = &e.quiet.inputs;
    let mut v = HostView::new(
        id,
        e.quiet.state,
        e.quiet.quiet_score,
        e.snapshot.host.cpu_count,
        e.last_seen,
    );
    v.stale = e.stale;
    v.cooldown_until = e.tracker.in_cooldown(now).map(|left| now + left);
    v.cpu_avg_pct = Some(i.cpu_avg_2m);
    v.load_per_core = Some(i.load_per_core);
    v.mem_pct = Some(i.mem_pct);
    v.io_pressure = i.io_pressure;
    v.disk_free_pct = i.disk_free_pct;
    v.net_bps = Some(e.snapshot.host.net_bps());
    v
}

/// Updates the per-host gauges; the state gauge only on a change.
fn publish_state(host: &str, before: Option<QuietState>, now: &QuietAssessment) {
    metrics::gauge!("lull_host_quiet_score", "host" => host.to_string()).set(now.quiet_score);
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
