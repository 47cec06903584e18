//! Worker endpoints (seed 003): `workers.executions` (from Postgres),
//! `workers.stats`, `workers.learning`, `learning.system` and
//! `data_quality.summary` (from the latest committed aggregates).

use lull_common::runtime::now_unix;
use lull_proto::error::ErrorCode;
use lull_proto::msg::worker::{WorkerExecutionsRequest, WorkerRequest};
use lull_proto::subjects::endpoints as ep;
use lull_proto::ErrorReply;

use super::WorkersHandle;
use crate::service::{err, typed, Empty, Handler};

fn unknown(worker_name: &str) -> ErrorReply {
    err(
        ErrorCode::NotFound,
        format!("worker {worker_name:?} has not reported any execution"),
    )
}

/// The worker endpoints with their handlers.
pub fn endpoints(workers: WorkersHandle, max: usize) -> Vec<(&'static str, Handler)> {
    let w = workers.clone();
    let executions = typed(max, move |req: WorkerExecutionsRequest| {
        let w = w.clone();
        async move {
            match w.executions(&req.worker_name, req.effective_limit()).await {
                Ok(Some(reply)) => Ok(reply),
                Ok(None) => Err(unknown(&req.worker_name)),
                Err(e) => {
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
    let system = typed(max, move |_: Empty| {
        let w = w.clone();
        async move { Ok::<_, ErrorReply>(w.system(now_unix())) }
    });
    let w = workers;
    let quality = typed(max, move |_: Empty| {
        let w = w.clone();
        async move { Ok::<_, ErrorReply>(w.quality(now_unix())) }
    });
    vec![
        (ep::WORKERS_EXECUTIONS, executions),
        (ep::WORKERS_STATS, stats),
        (ep::WORKERS_LEARNING, learning),
        (ep::LEARNING_SYSTEM, system),
        (ep::DATA_QUALITY_SUMMARY, quality),
    ]
}
