//! Worker persistence: `worker_executions` (one row per `execution_id`: the
//! report as received, its scores, learning metrics and anomalies, plus
//! indexed columns) and `worker_aggregates` (one JSON document per worker).
//!
//! A batch is written in one transaction by the workers actor:
//! [`insert_new`] inserts the reports that are not stored yet and returns
//! their ids, the actor scores exactly those, then [`set_scores`] and
//! [`save_aggregates`] complete the rows and the aggregates before the
//! commit. A duplicate or a redelivery therefore never counts twice.

use std::collections::{BTreeMap, HashSet};

use deadpool_postgres::Pool;
use lull_proto::msg::worker::{
    Anomaly, ExecutionScores, LearningMetrics, ScoredExecution, WorkerExecutionReport,
};
use tokio_postgres::{Row, Transaction};

use super::{DocTable, StoreError};
use lull_engine::worker::WorkerAggregate;

/// Encodes a value for a JSONB column.
fn to_json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(v).map_err(StoreError::Encode)
}

/// Inserts the reports whose `execution_id` is not stored yet (the rest are
/// left alone) and returns the ids that were inserted. The rows have no
/// scores until [`set_scores`] runs in the same transaction.
pub async fn insert_new(
    tx: &Transaction<'_>,
    reports: &[WorkerExecutionReport],
    received_at: f64,
) -> Result<HashSet<String>, StoreError> {
    if reports.is_empty() {
        return Ok(HashSet::new());
    }
    let ids: Vec<&str> = reports.iter().map(|r| r.execution_id.as_str()).collect();
    let workers: Vec<&str> = reports.iter().map(|r| r.worker_name.as_str()).collect();
    let hosts: Vec<Option<&str>> = reports.iter().map(|r| r.host_id.as_deref()).collect();
    let started: Vec<f64> = reports.iter().map(|r| r.started_at).collect();
    let completed: Vec<f64> = reports.iter().map(|r| r.completed_at).collect();
    let outcomes: Vec<&str> = reports.iter().map(|r| r.outcome.as_str()).collect();
    let durations: Vec<f64> = reports.iter().map(|r| r.duration_ms).collect();
    let bodies: Vec<serde_json::Value> = reports.iter().map(to_json).collect::<Result<_, _>>()?;
    let rows = tx
        .query(
            "INSERT INTO worker_executions
               (execution_id, worker_name, host_id, started_at, completed_at, outcome,
                duration_ms, report, received_at)
             SELECT u.*, $9::float8 FROM UNNEST($1::text[], $2::text[], $3::text[],
                 $4::float8[], $5::float8[], $6::text[], $7::float8[], $8::jsonb[]) AS u
             ON CONFLICT (execution_id) DO NOTHING
             RETURNING execution_id",
            &[
                &ids,
                &workers,
                &hosts,
                &started,
                &completed,
                &outcomes,
                &durations,
                &bodies,
                &received_at,
            ],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Which of `reports` (whose ids are already stored) were stored with other
/// content: conflicting duplicates. Compares the stored JSON document with
/// the report's, as JSONB (key order and number spelling do not matter).
pub async fn conflicting(
    tx: &Transaction<'_>,
    reports: &[&WorkerExecutionReport],
) -> Result<HashSet<String>, StoreError> {
    let items: Vec<(&str, &WorkerExecutionReport)> = reports
        .iter()
        .map(|r| (r.execution_id.as_str(), *r))
        .collect();
    let t = DocTable {
        table: "worker_executions",
        id: "execution_id",
        doc: "report",
    };
    super::differing(tx, t, &items).await
}

/// Fills in the scores, learning metrics and anomalies of inserted rows.
pub async fn set_scores(
    tx: &Transaction<'_>,
    scored: &[ScoredExecution],
) -> Result<u64, StoreError> {
    if scored.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = scored
        .iter()
        .map(|e| e.report.execution_id.as_str())
        .collect();
    let overall: Vec<f64> = scored.iter().map(|e| e.scores.overall_score).collect();
    let levels: Vec<&str> = scored
        .iter()
        .map(|e| e.scores.quality_level.as_str())
        .collect();
    let scores: Vec<serde_json::Value> = scored
        .iter()
        .map(|e| to_json(&e.scores))
        .collect::<Result<_, _>>()?;
    let learning: Vec<serde_json::Value> = scored
        .iter()
        .map(|e| to_json(&e.learning))
        .collect::<Result<_, _>>()?;
    let anomalies: Vec<serde_json::Value> = scored
        .iter()
        .map(|e| to_json(&e.anomalies))
        .collect::<Result<_, _>>()?;
    let n = tx
        .execute(
            "UPDATE worker_executions e SET
               overall_score = u.overall_score, quality_level = u.quality_level,
               scores = u.scores, learning = u.learning, anomalies = u.anomalies
             FROM UNNEST($1::text[], $2::float8[], $3::text[], $4::jsonb[], $5::jsonb[],
                         $6::jsonb[])
               AS u(execution_id, overall_score, quality_level, scores, learning, anomalies)
             WHERE e.execution_id = u.execution_id",
            &[&ids, &overall, &levels, &scores, &learning, &anomalies],
        )
        .await?;
    Ok(n)
}

/// Upserts the aggregate documents of the given workers.
pub async fn save_aggregates(
    tx: &Transaction<'_>,
    aggs: &[&WorkerAggregate],
    now: f64,
) -> Result<u64, StoreError> {
    if aggs.is_empty() {
        return Ok(0);
    }
    let names: Vec<&str> = aggs.iter().map(|a| a.worker_name.as_str()).collect();
    let counts: Vec<i64> = aggs
        .iter()
        .map(|a| i64::try_from(a.total_executions()).unwrap_or(i64::MAX))
        .collect();
    let docs: Vec<serde_json::Value> = aggs.iter().map(to_json).collect::<Result<_, _>>()?;
    let n = tx
        .execute(
            "INSERT INTO worker_aggregates (worker_name, executions, doc, updated_at)
             SELECT u.*, $4::float8 FROM UNNEST($1::text[], $2::int8[], $3::jsonb[]) AS u
             ON CONFLICT (worker_name) DO UPDATE SET
               executions = EXCLUDED.executions, doc = EXCLUDED.doc,
               updated_at = EXCLUDED.updated_at",
            &[&names, &counts, &docs, &now],
        )
        .await?;
    Ok(n)
}

/// A stored aggregate as loaded at start-up.
#[derive(Debug)]
pub struct StoredAggregate {
    /// The worker.
    pub worker_name: String,
    /// The document, or why it does not decode (then it is rebuilt).
    pub aggregate: Result<WorkerAggregate, String>,
}

/// Every stored aggregate.
pub async fn load_aggregates(pool: &Pool) -> Result<Vec<StoredAggregate>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT worker_name, doc FROM worker_aggregates ORDER BY worker_name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let worker_name: String = r.get(0);
            let doc: serde_json::Value = r.get(1);
            let aggregate = serde_json::from_value::<WorkerAggregate>(doc)
                .map_err(|e| e.to_string())
                .and_then(|a| {
                    if a.worker_name == worker_name {
                        Ok(a)
                    } else {
                        Err(format!("document names worker {:?}", a.worker_name))
                    }
                });
            StoredAggregate {
                worker_name,
                aggregate,
            }
        })
        .collect())
}

/// Scored executions per worker, counted in `worker_executions` (the
/// authority the aggregates are checked against at start-up).
pub async fn execution_counts(pool: &Pool) -> Result<BTreeMap<String, u64>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT worker_name, count(*) FROM worker_executions
             WHERE scores IS NOT NULL GROUP BY worker_name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let n: i64 = r.get(1);
            (r.get::<_, String>(0), n.max(0) as u64)
        })
        .collect())
}

fn decode_row(r: &Row) -> Result<ScoredExecution, StoreError> {
    let bad = |what: &str, e: serde_json::Error| {
        let id: String = r.get(0);
        StoreError::decode(format!("execution {id}: {what}"), e)
    };
    let report: WorkerExecutionReport =
        serde_json::from_value(r.get(1)).map_err(|e| bad("report", e))?;
    let scores: ExecutionScores = serde_json::from_value(r.get(2)).map_err(|e| bad("scores", e))?;
    let learning: LearningMetrics =
        serde_json::from_value(r.get(3)).map_err(|e| bad("learning", e))?;
    let anomalies: Vec<Anomaly> = match r.get::<_, Option<serde_json::Value>>(4) {
        Some(v) => serde_json::from_value(v).map_err(|e| bad("anomalies", e))?,
        None => Vec::new(),
    };
    Ok(ScoredExecution {
        report,
        scores,
        learning,
        anomalies,
    })
}

const SELECT_SCORED: &str = "SELECT execution_id, report, scores, learning, anomalies
     FROM worker_executions WHERE worker_name = $1 AND scores IS NOT NULL";

/// The newest `limit` scored executions of a worker, newest first, that
/// come after `after` (a run's start and id) in that order: a keyset
/// page, read by the `(worker_name, started_at, execution_id)` order.
pub async fn recent_executions(
    pool: &Pool,
    worker_name: &str,
    limit: u32,
    after: Option<(f64, &str)>,
) -> Result<Vec<ScoredExecution>, StoreError> {
    let client = pool.get().await?;
    let rows = match after {
        None => {
            client
                .query(
                    &format!(
                        "{SELECT_SCORED} ORDER BY started_at DESC, execution_id DESC LIMIT $2"
                    ),
                    &[&worker_name, &i64::from(limit)],
                )
                .await?
        }
        Some((started_at, id)) => {
            client
                .query(
                    &format!(
                        "{SELECT_SCORED} AND (started_at, execution_id) < ($3::float8, $4::text)
                         ORDER BY started_at DESC, execution_id DESC LIMIT $2"
                    ),
                    &[&worker_name, &i64::from(limit), &started_at, &id],
                )
                .await?
        }
    };
    rows.iter().map(decode_row).collect()
}

/// Every scored execution of a worker (to rebuild its aggregate).
pub async fn all_executions(
    pool: &Pool,
    worker_name: &str,
) -> Result<Vec<ScoredExecution>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!("{SELECT_SCORED} ORDER BY started_at, execution_id"),
            &[&worker_name],
        )
        .await?;
    rows.iter().map(decode_row).collect()
}
