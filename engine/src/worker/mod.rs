//! Worker execution reports (seed 003): scoring, learning, anomalies and
//! missed runs, as pure functions over plain data (no NATS, Postgres or
//! tokio here; the clock is injected as `now`).
//!
//! Ingest of one report, for the store to call inside its transaction:
//!
//! ```text
//! let mut agg = load(worker_name).unwrap_or_else(|| WorkerAggregate::new(worker_name));
//! if let Some(execution) = worker::ingest(&mut agg, report, &cfg)? {
//!     insert(execution);   // ScoredExecution: report + scores + learning + anomalies
//!     save(agg);           // WorkerAggregate is serde, one JSON document per worker
//! }
//! ```
//!
//! The queries are then `learning::worker_stats`, `learning::worker_learning`,
//! `learning::system_learning`, `learning::data_quality_summary` and
//! `missed::schedule_status` over the stored aggregates; the fleet-wide
//! ones list one [`WorkerPage`] of workers at a time.

pub mod aggregate;
pub mod anomaly;
pub mod calendar;
pub mod config;
pub mod fleet_page;
pub mod learning;
pub mod missed;
pub mod recommend;
pub mod score;
pub mod slots;
pub mod threshold;
pub mod trend;

use lull_proto::msg::worker::{ScoredExecution, WorkerExecutionReport};

pub use aggregate::{RunSample, WorkerAggregate};
pub use config::{WorkerConfig, WorkerConfigError};
pub use fleet_page::WorkerPage;

/// A report cannot be applied to this aggregate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The report belongs to another worker.
    #[error("report of worker {report} applied to the aggregate of {aggregate}")]
    WrongWorker {
        /// The report's worker.
        report: String,
        /// The aggregate's worker.
        aggregate: String,
    },
}

/// Scores a validated report against the worker's history, computes its
/// learning metrics and anomalies, and adds it to the aggregate.
///
/// Returns `Ok(None)` when a run with the same `execution_id` is already in
/// the aggregate's recent window (a redelivery); the store's upsert by id
/// stays the authority on duplicates.
pub fn ingest(
    agg: &mut WorkerAggregate,
    report: WorkerExecutionReport,
    cfg: &WorkerConfig,
) -> Result<Option<ScoredExecution>, IngestError> {
    if report.worker_name != agg.worker_name {
        return Err(IngestError::WrongWorker {
            report: report.worker_name,
            aggregate: agg.worker_name.clone(),
        });
    }
    if agg.contains(&report.execution_id) {
        return Ok(None);
    }
    let prior = agg.prior(report.started_at);
    let learning = learning::learning_metrics(&report, agg, cfg);
    let scores = score::score_execution(&report, prior, cfg);
    let anomalies = anomaly::detect(&report, &scores, prior, cfg);
    let execution = ScoredExecution {
        report,
        scores,
        learning,
        anomalies,
    };
    agg.apply(&execution, cfg);
    Ok(Some(execution))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_proto::msg::worker::{example_report, ExecutionOutcome, QualityLevel};

    #[test]
    fn ingest_scores_learns_and_refuses_other_workers() {
        let cfg = WorkerConfig::default();
        let mut agg = WorkerAggregate::new("sse_guardian");
        let t0 = 1_763_020_800.0;
        let mut last = None;
        for i in 0..12 {
            let mut r = example_report(
                &format!("g{i}"),
                "sse_guardian",
                t0 + f64::from(i) * 10.0,
                40.0,
            );
            r.custom_metrics
                .insert("orphaned_streams".into(), serde_json::json!(i % 2));
            last = ingest(&mut agg, r, &cfg).unwrap();
        }
        let e = last.unwrap();
        assert_eq!(e.scores.quality_level, QualityLevel::Excellent);
        assert_eq!(e.learning.time_since_last_run_seconds, Some(10.0));
        assert_eq!(e.learning.execution_number_today, 12);
        assert!(e.anomalies.is_empty());
        assert_eq!(agg.outcomes.get(ExecutionOutcome::Success), 12);

        let other = example_report("x", "coach_cleanup_worker", t0, 1.0);
        assert!(matches!(
            ingest(&mut agg, other, &cfg),
            Err(IngestError::WrongWorker { .. })
        ));
        assert_eq!(agg.total_executions(), 12);
    }
}
