//! Worker endpoints (seed 003): `workers.executions` (from Postgres, paged
//! newest first by an opaque cursor), `workers.stats`, `workers.learning`,
//! `learning.system` and `data_quality.summary` (from the latest committed
//! aggregates; their per-worker lists paged by worker name).

use lull_common::runtime::now_unix;
use lull_engine::worker::WorkerPage;
use lull_proto::error::ErrorCode;
use lull_proto::msg::page::PageRequest;
use lull_proto::msg::worker::{WorkerExecutionsRequest, WorkerRequest};
use lull_proto::subjects::endpoints as ep;
use lull_proto::ErrorReply;

use super::{ExecutionsError, WorkersHandle};
use crate::config::ListsConfig;
use crate::service::{err, typed, Handler};

/// The workers of one page of `learning.system` or `data_quality.summary`
/// (by name after the cursor, a worker name), sized by `lists`.
fn worker_page(req: &PageRequest, lists: ListsConfig) -> Result<WorkerPage<'_>, ErrorReply> {
    if let Some(c) = &req.cursor {
        lull_proto::validate::subject_token("cursor", c).map_err(|e| ErrorReply::from(&e))?;
    }
    Ok(WorkerPage {
        after: req.cursor.as_deref(),
        limit: req.size(lists.default_limit, lists.max_limit),
    })
}

fn unknown(worker_name: &str) -> ErrorReply {
    err(
        ErrorCode::NotFound,
        format!("worker {worker_name:?} has not reported any execution"),
    )
}

/// The worker endpoints with their handlers.
pub fn endpoints(
    workers: WorkersHandle,
    lists: ListsConfig,
    max: usize,
) -> Vec<(&'static str, Handler)> {
    let w = workers.clone();
    let executions = typed(max, move |req: WorkerExecutionsRequest| {
        let w = w.clone();
        async move {
            match w.executions(&req).await {
                Ok(Some(reply)) => Ok(reply),
                Ok(None) => Err(unknown(&req.worker_name)),
                Err(ExecutionsError::Cursor(e)) => Err(ErrorReply::from(&e)),
                Err(ExecutionsError::Store(e)) => {
                    tracing::warn!(error = %e, "reading worker executions failed");
                    Err(err(
                        ErrorCode::Unavailable,
                        format!("reading executions failed: {e}"),
                    ))
                }
            }
        }
    });
    let w = workers.clone();
    let stats = typed(max, move |req: WorkerRequest| {
        let w = w.clone();
        async move {
            w.stats(&req.worker_name, now_unix())
                .ok_or_else(|| unknown(&req.worker_name))
        }
    });
    let w = workers.clone();
    let learning = typed(max, move |req: WorkerRequest| {
        let w = w.clone();
        async move {
            w.learning(&req.worker_name)
                .ok_or_else(|| unknown(&req.worker_name))
        }
    });
    let w = workers.clone();
    let system = typed(max, move |req: PageRequest| {
        let w = w.clone();
        async move { Ok::<_, ErrorReply>(w.system(now_unix(), &worker_page(&req, lists)?)) }
    });
    let w = workers;
    let quality = typed(max, move |req: PageRequest| {
        let w = w.clone();
        async move { Ok::<_, ErrorReply>(w.quality(now_unix(), &worker_page(&req, lists)?)) }
    });
    vec![
        (ep::WORKERS_EXECUTIONS, executions),
        (ep::WORKERS_STATS, stats),
        (ep::WORKERS_LEARNING, learning),
        (ep::LEARNING_SYSTEM, system),
        (ep::DATA_QUALITY_SUMMARY, quality),
    ]
}
