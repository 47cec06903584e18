//! The regions actor: owns the committed [`Campaign`] and the pardons,
//! answers queries from memory, and runs one database job at a time
//! (batches, imports, pardons, snapshots) in a task of its own, swapping the
//! job's copies in only after its commit. Also keeps the region metrics.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use deadpool_postgres::Pool;
use lull_common::runtime::now_unix;
use lull_proto::msg::region::{
    BuildRecord, CampaignStats, FatigueEventReport, RegionState, RECENT_BUILDS_LIMIT,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::gauges::{self, RegionGauges};
use super::recovery::LoadedState;
use super::writer::{self, ReportsDone, ReportsJob};
use super::{
    Command, RegionPardonReply, RegionReport, RegionStatsRequest, RegionsError, RegionsHandle,
    RegionsTunables,
};
use crate::config::ListsConfig;
use crate::handoff::{Batch, Committed};
use crate::store::metrics as store_metrics;
use crate::store::regions as db;
use crate::store::StoreError;
use lull_engine::cap::{over_cap, CapLatch};
use lull_engine::region::fatigue::{pardon, Pardon};
use lull_engine::region::{
    campaign_stats_page, insights, region_health, select, Campaign, ImportReport, RegionAggregate,
    RegionConfig, StatsPage,
};

/// A mutation waiting for the database.
enum Mutation {
    Batch(Batch<RegionReport>),
    Pardon(
        String,
        oneshot::Sender<Result<RegionPardonReply, RegionsError>>,
    ),
    Import(
        Box<CampaignStats>,
        oneshot::Sender<Result<ImportReport, RegionsError>>,
    ),
}

/// The result of a job, back to the actor.
enum Done {
    Reports(Result<ReportsDone, StoreError>, Option<BatchReply>),
    Pardon(
        String,
        Pardon,
        bool,
        Result<(), StoreError>,
        oneshot::Sender<Result<RegionPardonReply, RegionsError>>,
    ),
    Import(
        Box<Result<(Campaign, ImportReport), StoreError>>,
        oneshot::Sender<Result<ImportReport, RegionsError>>,
    ),
}

/// Where a batch's answer goes, with the kind of each of its kept records
/// in order (`true` for a build) and their positions in the batch, to map
/// the job's positions back to the batch, and the positions refused by
/// `max_regions`.
struct BatchReply {
    done: oneshot::Sender<Result<Committed, String>>,
    is_build: Vec<bool>,
    kept: Vec<usize>,
    over_limit: Vec<usize>,
}

impl BatchReply {
    /// Positions in the batch of the job's conflicting builds and events.
    fn conflicts(&self, builds: &[usize], events: &[usize]) -> Vec<usize> {
        let (mut b, mut e) = (0usize, 0usize);
        let mut out = Vec::new();
        for (i, &is_build) in self.is_build.iter().enumerate() {
            let (n, list) = if is_build {
                (&mut b, builds)
            } else {
                (&mut e, events)
            };
            if list.contains(n) {
                out.push(self.kept[i]);
            }
            *n += 1;
        }
        out
    }
}

struct Regions {
    cfg: Arc<RegionConfig>,
    tun: RegionsTunables,
    pool: Pool,
    max_reply: usize,
    campaign: Campaign,
    pardons: BTreeMap<String, Pardon>,
    /// Regions changed since their aggregate was last persisted.
    dirty: BTreeSet<String>,
    last_snapshot: Instant,
    /// A job is running.
    busy: bool,
    pending: VecDeque<Mutation>,
    /// The first page (of this many regions) of the whole stats document
    /// of the current campaign, once asked for.
    stats_cache: Option<(usize, Bytes)>,
    gauges: RegionGauges,
    done_tx: mpsc::Sender<Done>,
    /// Page sizes of `regions.stats`.
    lists: ListsConfig,
    /// Whether `max_regions` has refused a region (warned once).
    full: CapLatch,
}

/// How large the actor's replies may be.
#[derive(Debug, Clone, Copy)]
pub struct ReplyBounds {
    /// The NATS message limit, bytes.
    pub max_bytes: usize,
    /// Page sizes of `regions.stats`.
    pub lists: ListsConfig,
}

/// Starts the actor on a loaded state. `batches` is the regions receiver of
/// the reports consumer's sinks; `bounds` limits the replies.
/// Returns the handle and the task, which ends after the running job and a
/// final snapshot once `shutdown` is cancelled.
pub fn spawn(
    cfg: RegionConfig,
    tun: RegionsTunables,
    pool: Pool,
    loaded: LoadedState,
    batches: mpsc::Receiver<Batch<RegionReport>>,
    bounds: ReplyBounds,
    shutdown: CancellationToken,
) -> (RegionsHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(tun.queue.max(16));
    let (done_tx, done_rx) = mpsc::channel(4);
    let mut actor = Regions {
        cfg: Arc::new(cfg),
        tun: tun.clone(),
        pool,
        max_reply: bounds.max_bytes,
        campaign: loaded.campaign,
        pardons: loaded.pardons,
        dirty: loaded.replayed,
        last_snapshot: Instant::now(),
        busy: false,
        pending: VecDeque::new(),
        stats_cache: None,
        gauges: RegionGauges::new(tun.max_metric_regions),
        done_tx,
        lists: bounds.lists,
        full: CapLatch::default(),
    };
    actor.all_gauges();
    let task = tokio::spawn(actor.run(rx, batches, done_rx, shutdown));
    (RegionsHandle { tx, tunables: tun }, task)
}

impl Regions {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        mut batches: mpsc::Receiver<Batch<RegionReport>>,
        mut done_rx: mpsc::Receiver<Done>,
        shutdown: CancellationToken,
    ) {
        let mut health =
            tokio::time::interval(Duration::from_secs_f64(self.tun.health_sec.max(0.1)));
        let snapshot_every = Duration::from_secs_f64(self.tun.snapshot_interval_sec.max(0.0));
        let mut snap = tokio::time::interval(snapshot_every.max(Duration::from_millis(100)));
        if !self.dirty.is_empty() {
            // Persist what the replay rebuilt before anything else.
            self.start_snapshot();
        }
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(done) = done_rx.recv() => self.finish(done),
                Some(cmd) = rx.recv() => self.command(cmd),
                Some(batch) = batches.recv(), if !self.busy && self.pending.is_empty() => {
                    self.pending.push_back(Mutation::Batch(batch));
                }
                _ = health.tick() => self.all_gauges(),
                _ = snap.tick() => {
                    if !self.busy && !self.dirty.is_empty() && self.last_snapshot.elapsed() >= snapshot_every {
                        self.start_snapshot();
                    }
                }
            }
            self.pump();
        }
        // Let the running job finish, then persist what is still unpersisted.
        while self.busy {
            match done_rx.recv().await {
                Some(done) => self.finish(done),
                None => break,
            }
        }
        for m in self.pending.drain(..) {
            if let Mutation::Batch(b) = m {
                let _ = b.done.send(Err("the coordinator is shutting down".into()));
            }
        }
        if !self.dirty.is_empty() {
            self.start_snapshot();
            if let Some(done) = done_rx.recv().await {
                self.finish(done);
            }
        }
        tracing::info!("regions actor stopped");
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Stats(req, reply) => {
                let _ = reply.send(self.stats(&req));
            }
            Command::Select(req, reply) => {
                let r = select(&req, &self.campaign, &self.pardons, &self.cfg, now_unix());
                let _ = reply.send(Box::new(r));
            }
            Command::Insights(req, reply) => {
                let r = insights(
                    &self.campaign,
                    &self.pardons,
                    &self.cfg,
                    now_unix(),
                    req.fatigue_window_hours,
                );
                let _ = reply.send(Box::new(r));
            }
            Command::Pardon(region, reply) => {
                self.pending.push_back(Mutation::Pardon(region, reply))
            }
            Command::Import(doc, reply) => self.pending.push_back(Mutation::Import(doc, reply)),
        }
    }

    /// Starts the next waiting mutation when no job runs.
    fn pump(&mut self) {
        while !self.busy {
            let Some(m) = self.pending.pop_front() else {
                return;
            };
            match m {
                Mutation::Batch(b) => self.start_batch(b),
                Mutation::Pardon(region, reply) => self.start_pardon(region, reply),
                Mutation::Import(doc, reply) => self.start_import(doc, reply),
            }
        }
    }

    fn snapshot_due(&self) -> bool {
        self.last_snapshot.elapsed().as_secs_f64() >= self.tun.snapshot_interval_sec
    }

    fn start_batch(&mut self, batch: Batch<RegionReport>) {
        let mut builds: Vec<BuildRecord> = Vec::new();
        let mut events: Vec<FatigueEventReport> = Vec::new();
        let over_limit = self.over_limit(&batch.items);
        let (mut is_build, mut kept) = (Vec::new(), Vec::new());
        for (i, item) in batch.items.into_iter().enumerate() {
            if over_limit.contains(&i) {
                continue;
            }
            is_build.push(matches!(item, RegionReport::Build(_)));
            kept.push(i);
            match item {
                RegionReport::Build(b) => builds.push(*b),
                RegionReport::Fatigue(e) => events.push(*e),
            }
        }
        let names: BTreeSet<String> = builds
            .iter()
            .map(|b| b.region.clone())
            .chain(events.iter().map(|e| e.region.clone()))
            .collect();
        let regions = names
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    self.campaign.region(n).cloned().unwrap_or_default(),
                )
            })
            .collect();
        let job = self.reports_job(builds, events, regions, self.snapshot_due());
        let reply = BatchReply {
            done: batch.done,
            is_build,
            kept,
            over_limit,
        };
        self.run_reports(job, Some(reply));
    }

    /// Positions of the reports that would add a region past
    /// `max_regions`: counted, warned about once, and left out of the job.
    fn over_limit(&mut self, items: &[RegionReport]) -> Vec<usize> {
        let names = items.iter().map(|i| match i {
            RegionReport::Build(b) => b.region.as_str(),
            RegionReport::Fatigue(e) => e.region.as_str(),
        });
        let c = &self.campaign;
        let max = self.tun.max_regions;
        let over = over_cap(names, |n| c.region(n).is_some(), c.len(), max);
        if !over.is_empty() {
            metrics::counter!(super::metrics::REGIONS_REJECTED.name).increment(over.len() as u64);
        }
        if self.full.crossed(!over.is_empty()) {
            tracing::warn!(
                max_regions = max,
                "region limit reached: reports of new regions are dropped and counted \
                 (lull_regions_rejected_total); raise region_service.max_regions to keep more"
            );
        }
        over
    }

    fn start_snapshot(&mut self) {
        let job = self.reports_job(Vec::new(), Vec::new(), BTreeMap::new(), true);
        self.run_reports(job, None);
    }

    fn reports_job(
        &self,
        builds: Vec<BuildRecord>,
        events: Vec<FatigueEventReport>,
        regions: BTreeMap<String, RegionAggregate>,
        snapshot: bool,
    ) -> ReportsJob {
        let others = if snapshot {
            self.dirty
                .iter()
                .filter(|n| !regions.contains_key(*n))
                .filter_map(|n| self.campaign.region(n).map(|a| (n.clone(), a.clone())))
                .collect()
        } else {
            BTreeMap::new()
        };
        ReportsJob {
            builds,
            events,
            regions,
            snapshot,
            others,
            baseline: self.campaign.baselines().campaign,
            pardons: self.pardons.clone(),
        }
    }

    fn run_reports(&mut self, job: ReportsJob, done: Option<BatchReply>) {
        self.busy = true;
        let (pool, cfg, tx) = (self.pool.clone(), self.cfg.clone(), self.done_tx.clone());
        tokio::spawn(async move {
            let r = writer::reports(&pool, &cfg, job).await;
            let _ = tx.send(Done::Reports(r, done)).await;
        });
    }

    fn start_pardon(
        &mut self,
        region: String,
        reply: oneshot::Sender<Result<RegionPardonReply, RegionsError>>,
    ) {
        let Some(agg) = self.campaign.region(&region) else {
            let _ = reply.send(Err(RegionsError::NotFound(region)));
            return;
        };
        let now = now_unix();
        let was = region_health(agg, self.pardons.get(&region), &self.cfg, now)
            .outlaw
            .is_some();
        let p = pardon(agg, now);
        self.busy = true;
        let (pool, tx) = (self.pool.clone(), self.done_tx.clone());
        tokio::spawn(async move {
            let r = db::save_pardon(&pool, &region, &p).await;
            let _ = tx.send(Done::Pardon(region, p, was, r, reply)).await;
        });
    }

    fn start_import(
        &mut self,
        doc: Box<CampaignStats>,
        reply: oneshot::Sender<Result<ImportReport, RegionsError>>,
    ) {
        let c = &self.campaign;
        let new = doc.regions.keys().filter(|n| c.region(n).is_none());
        let would = c.len() + new.count();
        if would > self.tun.max_regions && would > c.len() {
            let max = self.tun.max_regions;
            let _ = reply.send(Err(RegionsError::TooManyRegions { would, max }));
            return;
        }
        self.busy = true;
        let (pool, cfg, tx) = (self.pool.clone(), self.cfg.clone(), self.done_tx.clone());
        let campaign = self.campaign.clone();
        let pardons = self.pardons.clone();
        tokio::spawn(async move {
            let r = writer::import(&pool, &cfg, campaign, &doc, &pardons).await;
            let _ = tx.send(Done::Import(Box::new(r), reply)).await;
        });
    }

    fn finish(&mut self, done: Done) {
        self.busy = false;
        match done {
            Done::Reports(Ok(d), reply) => {
                let now = now_unix();
                for b in &d.new_builds {
                    self.gauges.record_build(b);
                }
                gauges::count_reports("build", d.new_builds.len() as u64, d.duplicate_builds);
                gauges::count_reports("fatigue", d.new_events, d.duplicate_events);
                let changed: Vec<String> = d.changed.keys().cloned().collect();
                for (name, agg) in d.changed {
                    self.campaign.set_region(&name, agg);
                    self.dirty.insert(name);
                }
                if d.snapshot {
                    self.dirty.clear();
                    self.last_snapshot = Instant::now();
                }
                if !changed.is_empty() {
                    self.stats_cache = None;
                }
                for name in &changed {
                    self.region_gauges(name, now);
                }
                if let Some(reply) = reply {
                    let conflicts = reply.conflicts(&d.conflict_builds, &d.conflict_events);
                    let over_limit = reply.over_limit;
                    let _ = reply.done.send(Ok(Committed {
                        conflicts,
                        over_limit,
                    }));
                }
            }
            Done::Reports(Err(e), reply) => {
                tracing::warn!(error = %e, "storing region reports failed");
                metrics::counter!(store_metrics::DB_WRITE_ERRORS.name, "table" => "region_reports")
                    .increment(1);
                if let Some(reply) = reply {
                    let _ = reply.done.send(Err(e.to_string()));
                }
            }
            Done::Pardon(region, p, was, Ok(()), reply) => {
                tracing::info!(%region, was_outlawed = was, "region pardoned");
                self.pardons.insert(region.clone(), p.clone());
                let now = now_unix();
                self.region_gauges(&region, now);
                let (state, until) = match self.campaign.region(&region) {
                    Some(a) => {
                        let h = region_health(a, Some(&p), &self.cfg, now);
                        (h.state, h.until)
                    }
                    None => (RegionState::Healthy, None),
                };
                let _ = reply.send(Ok(RegionPardonReply {
                    region,
                    pardoned_at: p.pardoned_at,
                    was_outlawed: was,
                    state,
                    until,
                }));
            }
            Done::Pardon(_, _, _, Err(e), reply) => {
                let _ = reply.send(Err(RegionsError::Store(e.to_string())));
            }
            Done::Import(r, reply) => match *r {
                Ok((campaign, report)) => {
                    tracing::info!(?report, "campaign imported");
                    self.campaign = campaign;
                    self.dirty.clear();
                    self.last_snapshot = Instant::now();
                    self.stats_cache = None;
                    self.all_gauges();
                    let _ = reply.send(Ok(report));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "importing a campaign failed");
                    let _ = reply.send(Err(RegionsError::Store(e.to_string())));
                }
            },
        }
    }

    /// A page of the seed 000 document (`lists` sizes it). The first page
    /// of a request for everything is cached until the campaign changes.
    fn stats(&mut self, req: &RegionStatsRequest) -> Result<Bytes, RegionsError> {
        let page = req.page();
        let limit = page.size(self.lists.default_limit, self.lists.max_limit);
        let recent_builds = req.recent_builds_limit.unwrap_or(RECENT_BUILDS_LIMIT);
        let first_of_all =
            req.regions.is_empty() && recent_builds >= RECENT_BUILDS_LIMIT && req.cursor.is_none();
        let cached = first_of_all && self.stats_cache.as_ref().is_some_and(|(l, _)| *l == limit);
        let bytes = match &self.stats_cache {
            Some((_, b)) if cached => b.clone(),
            _ => {
                let p = StatsPage {
                    only: &req.regions,
                    recent_builds,
                    after: req.cursor.as_deref(),
                    limit,
                };
                let b = encode(&campaign_stats_page(&self.campaign, &p))?;
                if first_of_all {
                    self.stats_cache = Some((limit, b.clone()));
                }
                b
            }
        };
        if bytes.len() > self.max_reply {
            return Err(RegionsError::TooLarge {
                size: bytes.len(),
                max: self.max_reply,
            });
        }
        Ok(bytes)
    }

    /// Every region's gauges (fatigue states change with time alone).
    fn all_gauges(&mut self) {
        let now = now_unix();
        let names: Vec<String> = self.campaign.regions().map(|(n, _)| n.clone()).collect();
        for name in names {
            self.region_gauges(&name, now);
        }
    }

    fn region_gauges(&mut self, name: &str, now: f64) {
        if let Some(agg) = self.campaign.region(name) {
            self.gauges
                .region(name, agg, self.pardons.get(name), &self.cfg, now);
        }
    }
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Bytes, RegionsError> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| RegionsError::Store(format!("encoding the reply: {e}")))
}
