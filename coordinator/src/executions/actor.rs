//! The workers actor: commits each batch of reports in one transaction
//! (insert the new ids, score exactly those on copies of the aggregates,
//! complete the rows, save the aggregates, commit), then swaps the copies
//! in, publishes the new view and the per-worker metrics, and answers the
//! batch. It also re-evaluates every worker's schedule (late and missed
//! runs) on a timer for `lull_worker_schedule_state`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use lull_common::runtime::now_unix;
use lull_proto::msg::worker::{ExecutionOutcome, ScheduleState, WorkerExecutionReport};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::thresholds::BreachGauges;
use super::{score_new, QuietHours, View, WorkersHandle};
use crate::handoff::{first_of_each, Batch, Committed};
use crate::label_cap::LabelCap;
use crate::store::{self, StoreError};
use lull_engine::cap::{over_cap, CapLatch};
use lull_engine::worker::{missed, WorkerAggregate, WorkerConfig};

/// Tunables of the workers shell.
#[derive(Debug, Clone)]
pub struct WorkersShellConfig {
    /// The engine's settings (`[workers]`).
    pub engine: Arc<WorkerConfig>,
    /// How often every worker's schedule state is re-evaluated.
    pub schedule_eval: Duration,
    /// Workers with metric series of their own (see [`LabelCap`]).
    pub max_metric_workers: usize,
    /// Most workers kept in memory (`ingest.max_workers`): reports that
    /// would add one past it are not stored.
    pub max_workers: usize,
}

/// Loads the stored aggregates. An aggregate whose document does not
/// decode, whose run count disagrees with the stored executions, or that is
/// missing although executions exist, is rebuilt from the executions.
pub async fn load(pool: &Pool, cfg: &WorkerConfig) -> Result<Vec<WorkerAggregate>, StoreError> {
    let stored = store::workers::load_aggregates(pool).await?;
    let counts = store::workers::execution_counts(pool).await?;
    let mut out: BTreeMap<String, WorkerAggregate> = BTreeMap::new();
    for s in stored {
        let expected = counts.get(&s.worker_name).copied().unwrap_or(0);
        match s.aggregate {
            Ok(a) if a.total_executions() == expected => {
                out.insert(s.worker_name, a);
            }
            Ok(a) => tracing::warn!(
                worker = %s.worker_name,
                aggregate = a.total_executions(),
                stored = expected,
                "worker aggregate disagrees with the stored executions; rebuilding"
            ),
            Err(e) => tracing::warn!(
                worker = %s.worker_name, error = %e,
                "worker aggregate does not decode; rebuilding"
            ),
        }
    }
    for name in counts.keys() {
        if out.contains_key(name) {
            continue;
        }
        let executions = store::workers::all_executions(pool, name).await?;
        let agg = WorkerAggregate::rebuild(name, &executions, cfg);
        tracing::info!(worker = %name, runs = agg.total_executions(), "rebuilt worker aggregate");
        out.insert(name.clone(), agg);
    }
    Ok(out.into_values().collect())
}

/// Starts the actor over the `loaded` aggregates, reading batches from
/// `batches` and writing to `pool`. Returns the query handle and the task,
/// which ends once `shutdown` is cancelled and the queued batches are done.
pub fn spawn(
    cfg: WorkersShellConfig,
    pool: Pool,
    loaded: Vec<WorkerAggregate>,
    batches: mpsc::Receiver<Batch<WorkerExecutionReport>>,
    shutdown: CancellationToken,
) -> (WorkersHandle, JoinHandle<()>) {
    let aggregates: BTreeMap<String, Arc<WorkerAggregate>> = loaded
        .into_iter()
        .map(|a| (a.worker_name.clone(), Arc::new(a)))
        .collect();
    let mut labels = LabelCap::new("worker", cfg.max_metric_workers);
    let mut breach_gauges = BreachGauges::default();
    for agg in aggregates.values() {
        if labels.admit(&agg.worker_name) {
            restore_counters(agg);
            set_worker_gauges(agg);
            breach_gauges.restore(agg);
        }
    }
    metrics::gauge!(super::metrics::WORKERS.name).set(aggregates.len() as f64);
    let view = View { aggregates };
    let (view_tx, view_rx) = watch::channel(Arc::new(view.clone()));
    let (quiet, _) = watch::channel(Arc::new(QuietHours::new()));
    let handle = WorkersHandle {
        view: view_rx,
        quiet: Arc::new(quiet),
        cfg: cfg.engine.clone(),
        pool: Some(pool.clone()),
    };
    let actor = Actor {
        cfg,
        pool,
        view,
        publish: view_tx,
        schedule: HashMap::new(),
        labels,
        breach_gauges,
        full: CapLatch::default(),
    };
    let task = tokio::spawn(actor.run(batches, shutdown));
    (handle, task)
}

struct Actor {
    cfg: WorkersShellConfig,
    pool: Pool,
    view: View,
    publish: watch::Sender<Arc<View>>,
    /// Last exported schedule state per worker (to log transitions).
    schedule: HashMap<String, ScheduleState>,
    /// The workers with metric series of their own.
    labels: LabelCap,
    /// Threshold-breach gauges of each worker's latest run.
    breach_gauges: BreachGauges,
    /// Whether `max_workers` has refused a worker (warned once).
    full: CapLatch,
}

/// What a committed batch changed.
struct Stored {
    stored: usize,
    duplicates: usize,
    /// Positions in the batch of conflicting duplicates.
    conflicts: Vec<usize>,
    /// Positions in the batch of reports refused by `max_workers`.
    over_limit: Vec<usize>,
}

impl Actor {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Batch<WorkerExecutionReport>>,
        shutdown: CancellationToken,
    ) {
        let mut eval = tokio::time::interval(self.cfg.schedule_eval);
        eval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                b = rx.recv() => match b {
                    Some(b) => self.handle(b).await,
                    None => break,
                },
                _ = eval.tick() => self.evaluate_schedules(now_unix()),
                _ = shutdown.cancelled() => break,
            }
        }
        // Commit what is already queued; the consumer is waiting on it.
        rx.close();
        while let Some(b) = rx.recv().await {
            self.handle(b).await;
        }
    }

    async fn handle(&mut self, batch: Batch<WorkerExecutionReport>) {
        let n = batch.items.len();
        let started = Instant::now();
        let result = self.commit(batch.items).await;
        let answer = match result {
            Ok(c) => {
                metrics::histogram!(crate::store::metrics::DB_BATCH_DURATION.name, "table" => "worker_executions")
                    .record(started.elapsed().as_secs_f64());
                metrics::histogram!(crate::store::metrics::DB_BATCH_ROWS.name, "table" => "worker_executions")
                    .record(n as f64);
                metrics::gauge!(crate::store::metrics::DB_LAST_WRITE.name, "table" => "worker_executions")
                    .set(now_unix());
                if c.duplicates > 0 {
                    metrics::counter!(super::metrics::DUPLICATE_REPORTS.name)
                        .increment(c.duplicates as u64);
                }
                tracing::debug!(
                    reports = n,
                    stored = c.stored,
                    duplicates = c.duplicates,
                    "worker reports committed"
                );
                Ok(Committed {
                    conflicts: c.conflicts,
                    over_limit: c.over_limit,
                })
            }
            Err(e) => {
                metrics::counter!(crate::store::metrics::DB_WRITE_ERRORS.name, "table" => "worker_executions")
                    .increment(1);
                tracing::warn!(error = %e, reports = n, "storing worker reports failed");
                Err(e.to_string())
            }
        };
        let _ = batch.done.send(answer);
    }

    /// One transaction: insert the new ids, score them on copies, complete
    /// the rows, save the aggregates, commit; then swap the copies in.
    async fn commit(&mut self, batch: Vec<WorkerExecutionReport>) -> Result<Stored, StoreError> {
        let over_limit = self.over_limit(&batch);
        let (positions, items): (Vec<usize>, Vec<WorkerExecutionReport>) = batch
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !over_limit.contains(i))
            .unzip();
        let total = items.len();
        let (kept, mut conflicts) = first_of_each(&items, |r| r.execution_id.as_str());
        let now = now_unix();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        crate::store::fence::check(&tx).await?;
        let firsts: Vec<WorkerExecutionReport> = kept.iter().map(|&i| items[i].clone()).collect();
        let new_ids = store::workers::insert_new(&tx, &firsts, now).await?;
        let old: Vec<&WorkerExecutionReport> = firsts
            .iter()
            .filter(|r| !new_ids.contains(&r.execution_id))
            .collect();
        let stored_conflicts = store::workers::conflicting(&tx, &old).await?;
        conflicts.extend(
            kept.iter()
                .copied()
                .filter(|&i| stored_conflicts.contains(&items[i].execution_id)),
        );
        conflicts.sort_unstable();
        let reports = firsts;
        let duplicates = total - new_ids.len();
        let fresh: Vec<WorkerExecutionReport> = reports
            .into_iter()
            .filter(|r| new_ids.contains(&r.execution_id))
            .collect();
        let scored = score_new(&self.view.aggregates, fresh, &self.cfg.engine);
        for (id, why) in &scored.skipped {
            tracing::warn!(execution_id = %id, reason = %why, "worker report stored but not scored");
        }
        store::workers::set_scores(&tx, &scored.executions).await?;
        let aggs: Vec<&WorkerAggregate> = scored.aggregates.values().collect();
        store::workers::save_aggregates(&tx, &aggs, now).await?;
        tx.commit().await?;

        // Committed: only now do the copies become the state.
        let stored = scored.executions.len();
        for e in &scored.executions {
            let r = &e.report;
            let worker = self.labels.label(&r.worker_name);
            metrics::counter!(super::metrics::EXECUTIONS.name,
                "worker" => worker.clone(), "outcome" => r.outcome.as_str())
            .increment(1);
            metrics::histogram!(super::metrics::DURATION.name, "worker" => worker.clone())
                .record(r.duration_ms / 1000.0);
            for a in &e.anomalies {
                metrics::counter!(super::metrics::ANOMALIES.name,
                    "worker" => worker.clone(), "kind" => a.kind.as_str())
                .increment(1);
                tracing::info!(worker = %r.worker_name, execution_id = %a.execution_id,
                    kind = a.kind.as_str(), message = %a.message, "worker anomaly");
            }
            BreachGauges::count(e, &worker);
        }
        let touched: Vec<String> = scored.aggregates.keys().cloned().collect();
        let rules = &self.cfg.engine.anomaly.custom_thresholds;
        for (name, agg) in &scored.aggregates {
            let latest = agg.latest.as_ref().map(|l| l.execution_id.as_str());
            let newest = scored.executions.iter().find(|e| {
                e.report.worker_name == *name && Some(e.report.execution_id.as_str()) == latest
            });
            if let Some(e) = newest.filter(|_| self.labels.admit(name)) {
                self.breach_gauges.latest(e, rules);
            }
        }
        for (name, agg) in scored.aggregates {
            if self.labels.admit(&name) {
                set_worker_gauges(&agg);
            }
            self.view.aggregates.insert(name, Arc::new(agg));
        }
        metrics::gauge!(super::metrics::WORKERS.name).set(self.view.aggregates.len() as f64);
        self.publish.send_replace(Arc::new(self.view.clone()));
        let now = now_unix();
        for name in touched {
            if let Some(agg) = self.view.aggregates.get(&name).cloned() {
                self.export_schedule(&agg, now);
            }
        }
        Ok(Stored {
            stored,
            duplicates,
            conflicts: conflicts.into_iter().map(|i| positions[i]).collect(),
            over_limit,
        })
    }

    /// Positions of the reports that would add a worker past
    /// `max_workers`: counted, warned about once, and not stored.
    fn over_limit(&mut self, items: &[WorkerExecutionReport]) -> Vec<usize> {
        let names = items.iter().map(|r| r.worker_name.as_str());
        let known = &self.view.aggregates;
        let max = self.cfg.max_workers;
        let over = over_cap(names, |n| known.contains_key(n), known.len(), max);
        if !over.is_empty() {
            metrics::counter!(super::metrics::WORKERS_REJECTED.name).increment(over.len() as u64);
        }
        if self.full.crossed(!over.is_empty()) {
            tracing::warn!(
                max_workers = max,
                "worker limit reached: reports of new workers are dropped and counted \
                 (lull_workers_rejected_total); raise ingest.max_workers to keep more"
            );
        }
        over
    }

    fn evaluate_schedules(&mut self, now: f64) {
        let aggs: Vec<Arc<WorkerAggregate>> = self.view.aggregates.values().cloned().collect();
        for agg in aggs {
            self.export_schedule(&agg, now);
        }
    }

    fn export_schedule(&mut self, agg: &WorkerAggregate, now: f64) {
        let s = missed::schedule_status(agg, now, &self.cfg.engine);
        let name = &agg.worker_name;
        let before = self.schedule.insert(name.clone(), s.state);
        let exported = self.labels.admit(name);
        if before != Some(s.state) {
            for state in [
                ScheduleState::Ok,
                ScheduleState::Late,
                ScheduleState::Missed,
                ScheduleState::Unknown,
            ] {
                if !exported {
                    break;
                }
                metrics::gauge!(super::metrics::SCHEDULE_STATE.name,
                    "worker" => name.clone(), "state" => state.as_str())
                .set(if state == s.state { 1.0 } else { 0.0 });
            }
            if let Some(b) = before {
                let level = matches!(s.state, ScheduleState::Late | ScheduleState::Missed);
                if level {
                    tracing::warn!(worker = %name, from = b.as_str(), to = s.state.as_str(),
                        overdue_sec = s.overdue_sec, "worker schedule state changed");
                } else {
                    tracing::info!(worker = %name, from = b.as_str(), to = s.state.as_str(),
                        "worker schedule state changed");
                }
            }
        }
        if exported {
            metrics::gauge!(super::metrics::MISSED_RUNS.name, "worker" => name.clone())
                .set(s.missed_runs as f64);
        }
    }
}

/// Sets the run counters to the stored totals (they survive restarts).
fn restore_counters(agg: &WorkerAggregate) {
    for o in ExecutionOutcome::ALL {
        metrics::counter!(super::metrics::EXECUTIONS.name,
            "worker" => agg.worker_name.clone(), "outcome" => o.as_str())
        .absolute(agg.outcomes.get(o));
    }
}

/// The latest score and the last success of a worker.
fn set_worker_gauges(agg: &WorkerAggregate) {
    if let Some(l) = &agg.latest {
        metrics::gauge!(super::metrics::LAST_OVERALL_SCORE.name, "worker" => agg.worker_name.clone())
            .set(l.overall_score);
    }
    if let Some(t) = agg.last_success_at {
        metrics::gauge!(super::metrics::LAST_SUCCESS.name,
            "worker" => agg.worker_name.clone())
        .set(t);
    }
}
