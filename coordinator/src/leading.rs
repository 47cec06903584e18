//! The leader's duties besides the lease book, started at each leadership
//! and stopped when it ends: the stored operator blocks go to the fleet
//! (so the book's views carry them), history writes are switched on, the
//! history maintenance runs, the region and worker aggregates are loaded
//! fresh from Postgres and their actors started, the durable reports
//! consumer runs (the leader is the single writer of reports), and the
//! leader-only endpoints are served: operator blocks, regions and workers.
//! A standby answers none of these; a request reaches the leader through
//! this instance's own queue group.

use std::sync::Arc;

use anyhow::Context;
use lull_common::runtime::now_unix;
use lull_proto::Subjects;
use tokio_util::sync::CancellationToken;

use crate::config::{secs, CoordinatorConfig};
use crate::executions::WorkersHandle;
use crate::fleet::FleetHandle;
use crate::store::history::HistoryStore;
use crate::{builds, executions, fleet, ingest, service, store};

/// What the duties run with.
#[derive(Clone)]
pub struct Duties {
    /// The database.
    pub pool: deadpool_postgres::Pool,
    /// The configuration.
    pub cfg: Arc<CoordinatorConfig>,
    /// NATS.
    pub client: async_nats::Client,
    /// Subject names.
    pub subjects: Subjects,
    /// The fleet actor.
    pub fleet: FleetHandle,
    /// History storage.
    pub history: HistoryStore,
    /// Where the leader-only endpoints are registered (this instance's own
    /// queue group).
    pub group: Arc<async_nats::service::Group>,
    /// The current leadership's workers handle, for the forecast task.
    pub workers_slot: tokio::sync::watch::Sender<Option<WorkersHandle>>,
    /// The process is shutting down: the last leader keeps writing its
    /// final history (open streaks) until the fleet has flushed.
    pub shutdown: CancellationToken,
}

impl Duties {
    /// Runs the duties of one leadership until `lost`.
    pub async fn lead(&self, epoch: u64, lost: CancellationToken) -> anyhow::Result<()> {
        let blocks = store::blocks::load_all(&self.pool, now_unix())
            .await
            .context("loading the operator blocks and maintenance windows")?;
        self.fleet
            .replace_blocks(blocks)
            .await
            .context("handing the stored blocks to the fleet")?;
        self.history.shared.lead(epoch);
        store::fence::lead(epoch);
        let r = self.serve(lost).await;
        store::fence::stand_by();
        if !self.shutdown.is_cancelled() {
            self.history.shared.set_writing(false);
        }
        tracing::info!(epoch, "leader duties stopped");
        r
    }

    async fn serve(&self, lost: CancellationToken) -> anyhow::Result<()> {
        // Everything below stops with the leadership, or when the consumer
        // ends by itself (then the duties start again while still leading).
        let lost = lost.child_token();
        let cfg = &self.cfg;
        let max = cfg.common.max_payload_bytes;
        let actors = CancellationToken::new();
        let maintain = tokio::spawn(store::history::maintain::run(
            self.history.clone(),
            lost.clone(),
        ));
        let (sinks, regions_rx, workers_rx) =
            ingest::reports::Sinks::channel(cfg.ingest.reports_queue);
        let (regions, regions_task) =
            start_regions(&self.pool, cfg, &self.client, regions_rx, actors.clone()).await?;
        let (workers, workers_task) =
            start_workers(&self.pool, cfg, workers_rx, actors.clone()).await?;
        self.workers_slot.send_replace(Some(workers.clone()));
        let drainer = fleet::drain::Drainer {
            client: self.client.clone(),
            subjects: self.subjects.clone(),
        };
        let mut eps = fleet::endpoints::operator_endpoints(
            &self.fleet,
            &self.history,
            drainer,
            &cfg.hosts,
            max,
        );
        eps.extend(builds::endpoints::endpoints(&regions, max));
        eps.extend(executions::endpoints::endpoints(
            workers.clone(),
            cfg.lists,
            max,
        ));
        let served = service::serve_on(
            &self.client,
            &self.group,
            eps,
            cfg.ingest.endpoint_concurrency,
            lost.clone(),
        )
        .await
        .map_err(anyhow::Error::from_boxed)
        .context("registering the leader's endpoints")?;
        let consumed = ingest::reports::run(
            self.client.clone(),
            self.subjects.clone(),
            sinks,
            ingest::reports::ConsumerConfig {
                durable: cfg.ingest.reports_durable.clone(),
                batch: cfg.ingest.reports_batch.max(1),
                fetch_wait: secs(cfg.ingest.reports_fetch_wait_sec),
                ack_wait: secs(cfg.ingest.reports_ack_wait_sec),
                retry_delay: secs(cfg.ingest.reports_retry_delay_sec),
                times: cfg.ingest.report_times(),
                conflict_logs_per_min: cfg.ingest.reports_conflict_logs_per_min,
            },
            max,
            lost.clone(),
        )
        .await;
        let ended_early = !lost.is_cancelled();
        lost.cancel();
        for t in served {
            let _ = t.await;
        }
        self.workers_slot.send_replace(None);
        actors.cancel();
        let _ = regions_task.await;
        let _ = workers_task.await;
        let _ = maintain.await;
        consumed
            .map_err(anyhow::Error::from_boxed)
            .context("the reports consumer")?;
        if ended_early {
            anyhow::bail!("the reports consumer stopped while leading");
        }
        Ok(())
    }
}

/// Loads the region aggregates (replaying what they do not count yet) and
/// starts the regions actor on the reports consumer's regions sink.
async fn start_regions(
    pool: &deadpool_postgres::Pool,
    cfg: &CoordinatorConfig,
    client: &async_nats::Client,
    batches: tokio::sync::mpsc::Receiver<crate::handoff::Batch<builds::RegionReport>>,
    shutdown: CancellationToken,
) -> anyhow::Result<(builds::RegionsHandle, tokio::task::JoinHandle<()>)> {
    let loaded = builds::load(pool, &cfg.regions)
        .await
        .context("loading the region aggregates")?;
    Ok(builds::spawn(
        cfg.regions.clone(),
        cfg.region_service.clone(),
        pool.clone(),
        loaded,
        batches,
        builds::ReplyBounds {
            max_bytes: client.server_info().max_payload,
            lists: cfg.lists,
        },
        shutdown,
    ))
}

/// Loads the worker aggregates and starts the workers actor.
async fn start_workers(
    pool: &deadpool_postgres::Pool,
    cfg: &CoordinatorConfig,
    batches: tokio::sync::mpsc::Receiver<
        crate::handoff::Batch<lull_proto::msg::worker::WorkerExecutionReport>,
    >,
    shutdown: CancellationToken,
) -> anyhow::Result<(executions::WorkersHandle, tokio::task::JoinHandle<()>)> {
    let engine = std::sync::Arc::new(cfg.workers.clone());
    let loaded = executions::load(pool, &engine)
        .await
        .context("loading the worker aggregates")?;
    tracing::info!(workers = loaded.len(), "worker aggregates loaded");
    Ok(executions::spawn(
        executions::WorkersShellConfig {
            engine,
            schedule_eval: secs(cfg.ingest.workers_schedule_eval_sec),
            max_metric_workers: cfg.ingest.workers_max_metric_labels,
            max_workers: cfg.ingest.max_workers,
        },
        pool.clone(),
        loaded,
        batches,
        shutdown,
    ))
}
