//! The workers shell around the pure [`lull_engine::worker`] engine: one actor
//! owns the per-worker aggregates and is the only writer of the worker
//! tables. It takes batches of validated reports from the durable reports
//! consumer, stores each `execution_id` once, scores exactly the reports
//! that were new, saves the updated aggregates in the same transaction, and
//! only then answers the batch (so the consumer acks after the commit).
//!
//! Readers never wait for a commit: after each commit the actor publishes
//! an immutable [`View`] of all aggregates, and the queries
//! ([`WorkersHandle`]) are answered from the latest view (execution details
//! come from Postgres).

mod actor;
pub mod endpoints;
pub(crate) mod metrics;
mod thresholds;

pub use actor::{load, spawn, WorkersShellConfig};

use std::collections::BTreeMap;
use std::sync::Arc;

use deadpool_postgres::Pool;
use lull_proto::msg::worker::{
    DataQualitySummaryReply, ExecutionCursor, ScoredExecution, SystemLearningReply,
    WorkerExecutionReport, WorkerExecutionsReply, WorkerExecutionsRequest, WorkerLearningReply,
    WorkerStatsReply,
};
use tokio::sync::watch;

use crate::store::StoreError;
use lull_engine::worker::{self, learning, WorkerAggregate, WorkerConfig, WorkerPage};

/// Every worker's aggregate as of the last commit.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Aggregates by worker name.
    pub aggregates: BTreeMap<String, Arc<WorkerAggregate>>,
}

impl View {
    /// The aggregates, sorted by worker name.
    pub fn list(&self) -> Vec<WorkerAggregate> {
        self.aggregates.values().map(|a| (**a).clone()).collect()
    }
}

/// Forecast quiet UTC hours per host (from the quiet engine), used for
/// schedule recommendations. Empty until someone provides them.
pub type QuietHours = BTreeMap<String, Vec<u8>>;

/// The forecast quiet hours of each worker's host (the host of its latest
/// run); workers whose host has none are left out.
pub fn quiet_hours_by_worker(view: &View, quiet: &QuietHours) -> BTreeMap<String, Vec<u8>> {
    view.aggregates
        .iter()
        .filter_map(|(name, agg)| {
            let host = agg.latest.as_ref()?.host_id.as_ref()?;
            let hours = quiet.get(host)?;
            Some((name.clone(), hours.clone()))
        })
        .collect()
}

/// Cheap, cloneable access to the workers' state for the queries.
#[derive(Debug, Clone)]
pub struct WorkersHandle {
    view: watch::Receiver<Arc<View>>,
    quiet: Arc<watch::Sender<Arc<QuietHours>>>,
    cfg: Arc<WorkerConfig>,
    pool: Option<Pool>,
}

impl WorkersHandle {
    /// A handle over a fixed view (tests, or before the actor starts).
    pub fn from_view(view: View, cfg: Arc<WorkerConfig>, pool: Option<Pool>) -> WorkersHandle {
        let (_tx, rx) = watch::channel(Arc::new(view));
        let (quiet, _) = watch::channel(Arc::new(QuietHours::new()));
        WorkersHandle {
            view: rx,
            quiet: Arc::new(quiet),
            cfg,
            pool,
        }
    }

    /// The latest committed view.
    pub fn view(&self) -> Arc<View> {
        self.view.borrow().clone()
    }

    /// The engine configuration.
    pub fn config(&self) -> &WorkerConfig {
        &self.cfg
    }

    /// Replaces the forecast quiet hours per host (fed by the quiet engine).
    pub fn set_quiet_hours(&self, hours: QuietHours) {
        self.quiet.send_replace(Arc::new(hours));
    }

    fn quiet_hours(&self) -> Arc<QuietHours> {
        self.quiet.borrow().clone()
    }

    /// Whether a worker has reported at least once.
    pub fn knows(&self, worker_name: &str) -> bool {
        self.view.borrow().aggregates.contains_key(worker_name)
    }

    /// `workers.stats` of one worker at `now`; `None` for an unknown worker.
    pub fn stats(&self, worker_name: &str, now: f64) -> Option<WorkerStatsReply> {
        let view = self.view();
        let agg = view.aggregates.get(worker_name)?;
        Some(learning::worker_stats(agg, now, &self.cfg))
    }

    /// `workers.learning` of one worker; `None` for an unknown worker.
    pub fn learning(&self, worker_name: &str) -> Option<WorkerLearningReply> {
        let view = self.view();
        let agg = view.aggregates.get(worker_name)?;
        let quiet = self.quiet_hours();
        let hours = agg
            .latest
            .as_ref()
            .and_then(|l| l.host_id.as_ref())
            .and_then(|h| quiet.get(h))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        Some(learning::worker_learning(agg, hours, &self.cfg))
    }

    /// `learning.system` at `now`, its per-worker lists holding `page`.
    pub fn system(&self, now: f64, page: &WorkerPage) -> SystemLearningReply {
        let view = self.view();
        let quiet = quiet_hours_by_worker(&view, &self.quiet_hours());
        learning::system_learning_page(&view.list(), page, &quiet, now, &self.cfg)
    }

    /// `data_quality.summary` at `now`, its `workers` holding `page`.
    pub fn quality(&self, now: f64, page: &WorkerPage) -> DataQualitySummaryReply {
        learning::data_quality_page(&self.view().list(), page, now, &self.cfg)
    }

    /// `workers.executions`: the newest `limit` runs of a worker with their
    /// scores (older than the request's cursor), from Postgres, and the
    /// cursor of the next page when older runs remain; `None` for an
    /// unknown worker.
    pub async fn executions(
        &self,
        req: &WorkerExecutionsRequest,
    ) -> Result<Option<WorkerExecutionsReply>, ExecutionsError> {
        let Some(pool) = &self.pool else {
            return Err(StoreError::NoDatabase.into());
        };
        let after = req
            .cursor
            .as_deref()
            .map(ExecutionCursor::parse)
            .transpose()?;
        let limit = req.effective_limit();
        let key = after
            .as_ref()
            .map(|c| (c.started_at, c.execution_id.as_str()));
        let name = &req.worker_name;
        let mut executions =
            crate::store::workers::recent_executions(pool, name, limit.saturating_add(1), key)
                .await?;
        if executions.is_empty() && !self.knows(name) {
            return Ok(None);
        }
        let more = executions.len() > limit as usize;
        executions.truncate(limit as usize);
        let next_cursor = executions
            .last()
            .filter(|_| more)
            .map(|e| ExecutionCursor::encode(e.report.started_at, &e.report.execution_id));
        Ok(Some(WorkerExecutionsReply {
            worker_name: name.clone(),
            executions,
            next_cursor,
        }))
    }
}

/// Why `workers.executions` could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ExecutionsError {
    /// The cursor is not one this endpoint made.
    #[error(transparent)]
    Cursor(#[from] lull_proto::ValidationError),
    /// Reading Postgres failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The outcome of scoring a batch of new reports against the aggregates.
#[derive(Debug, Default)]
pub struct Scored {
    /// Updated copies of the aggregates of the workers in the batch.
    pub aggregates: BTreeMap<String, WorkerAggregate>,
    /// The scored executions, by worker and start time.
    pub executions: Vec<ScoredExecution>,
    /// Reports that could not be applied (already in the aggregate although
    /// the store had no row for them), with why.
    pub skipped: Vec<(String, String)>,
}

/// Scores new reports (the store has just inserted them) against copies of
/// the current aggregates; the originals are untouched, so a failed commit
/// changes nothing. Each worker's reports are applied in start order.
pub fn score_new(
    current: &BTreeMap<String, Arc<WorkerAggregate>>,
    mut reports: Vec<WorkerExecutionReport>,
    cfg: &WorkerConfig,
) -> Scored {
    reports.sort_by(|a, b| {
        a.worker_name
            .cmp(&b.worker_name)
            .then(a.started_at.total_cmp(&b.started_at))
            .then_with(|| a.execution_id.cmp(&b.execution_id))
    });
    let mut out = Scored::default();
    for r in reports {
        let name = r.worker_name.clone();
        let id = r.execution_id.clone();
        let agg = out.aggregates.entry(name.clone()).or_insert_with(|| {
            current
                .get(&name)
                .map(|a| (**a).clone())
                .unwrap_or_else(|| WorkerAggregate::new(&name))
        });
        match worker::ingest(agg, r, cfg) {
            Ok(Some(e)) => out.executions.push(e),
            Ok(None) => out
                .skipped
                .push((id, "already in the worker's recent runs".into())),
            Err(e) => out.skipped.push((id, e.to_string())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_proto::msg::worker::example_report;

    fn cfg() -> WorkerConfig {
        WorkerConfig::default()
    }

    #[test]
    fn score_new_works_on_copies_in_start_order() {
        let t0 = 1_763_020_800.0;
        let cfg = cfg();
        let mut base = WorkerAggregate::new("hourly");
        for i in 0..5 {
            let r = example_report(
                &format!("h{i}"),
                "hourly",
                t0 + f64::from(i) * 3600.0,
                1000.0,
            );
            worker::ingest(&mut base, r, &cfg).unwrap();
        }
        let current: BTreeMap<String, Arc<WorkerAggregate>> =
            [("hourly".to_string(), Arc::new(base.clone()))].into();
        // Out of order, two workers, one already applied.
        let reports = vec![
            example_report("h6", "hourly", t0 + 6.0 * 3600.0, 1000.0),
            example_report("g1", "sse_guardian", t0 + 10.0, 40.0),
            example_report("h5", "hourly", t0 + 5.0 * 3600.0, 1000.0),
            example_report("h4", "hourly", t0 + 4.0 * 3600.0, 1000.0),
        ];
        let s = score_new(&current, reports, &cfg);
        // The original is untouched.
        assert_eq!(*current["hourly"], base);
        assert_eq!(s.aggregates["hourly"].total_executions(), 7);
        assert_eq!(s.aggregates["sse_guardian"].total_executions(), 1);
        let ids: Vec<&str> = s
            .executions
            .iter()
            .map(|e| e.report.execution_id.as_str())
            .collect();
        assert_eq!(ids, ["h5", "h6", "g1"]);
        assert_eq!(s.skipped.len(), 1);
        assert_eq!(s.skipped[0].0, "h4");
        // h6 was scored after h5: it sees a one-hour gap.
        let h6 = &s.executions[1];
        assert_eq!(h6.learning.time_since_last_run_seconds, Some(3600.0));
    }

    #[test]
    fn queries_answer_from_the_view() {
        let cfg = Arc::new(cfg());
        let t0 = 1_763_020_800.0;
        let mut agg = WorkerAggregate::new("sse_guardian");
        for i in 0..10 {
            let r = example_report(
                &format!("g{i}"),
                "sse_guardian",
                t0 + f64::from(i) * 10.0,
                40.0,
            );
            worker::ingest(&mut agg, r, &cfg).unwrap();
        }
        let view = View {
            aggregates: [("sse_guardian".to_string(), Arc::new(agg))].into(),
        };
        let h = WorkersHandle::from_view(view, cfg, None);
        assert!(h.knows("sse_guardian"));
        assert!(h.stats("nope", t0).is_none());
        let s = h.stats("sse_guardian", t0 + 100.0).unwrap();
        assert_eq!(s.total_executions, 10);
        assert!(h.learning("sse_guardian").is_some());
        let sys = h.system(t0 + 100.0, &WorkerPage::all());
        assert_eq!(sys.workers, 1);
        assert_eq!(sys.total_executions_24h, 10);
        let q = h.quality(t0 + 100.0, &WorkerPage::all());
        assert_eq!(q.workers.len(), 1);

        h.set_quiet_hours([("web-1".to_string(), vec![3, 4])].into());
        let by_worker = quiet_hours_by_worker(&h.view(), &h.quiet_hours());
        assert_eq!(by_worker["sse_guardian"], vec![3, 4]);
    }
}
