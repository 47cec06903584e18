//! The `lull-coordinator` NATS micro service: registers every `lull.v1.*`
//! endpoint, decodes and validates requests, runs the handler, and answers
//! with JSON or with an error reply (`{"error": {...}}` plus the micro error
//! headers). Requests, errors and latency are measured per endpoint.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use async_nats::service::ServiceExt;
use bytes::Bytes;
use futures::StreamExt;
use lull_common::error::{ErrorCode, ErrorReply};
use lull_common::validate::{decode, Validate};
use lull_common::Subjects;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// What a handler returns: a JSON body or an error reply.
pub type HandlerResult = Result<Bytes, ErrorReply>;

/// A boxed endpoint handler taking the raw request payload.
pub type Handler =
    Arc<dyn Fn(Bytes) -> Pin<Box<dyn Future<Output = HandlerResult> + Send>> + Send + Sync>;

/// Wraps a typed async function as a [`Handler`]: the payload is size-checked,
/// decoded and validated (an empty payload counts as `{}`), and the result is
/// serialised. Bad input never reaches `f`.
pub fn typed<Req, Resp, F, Fut>(max_payload: usize, f: F) -> Handler
where
    Req: DeserializeOwned + Validate + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, ErrorReply>> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |payload: Bytes| {
        let f = f.clone();
        Box::pin(async move {
            let body: &[u8] = if payload.iter().all(|b| b.is_ascii_whitespace()) {
                b"{}"
            } else {
                &payload
            };
            let req: Req = decode(body, max_payload).map_err(|e| ErrorReply::from(&e))?;
            let resp = f(req).await?;
            serde_json::to_vec(&resp)
                .map(Bytes::from)
                .map_err(|e| ErrorReply::new(ErrorCode::Internal, e.to_string()))
        })
    })
}

/// A request with no fields (`{}`); unknown fields are ignored.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Empty {}

impl Validate for Empty {
    fn validate(&self) -> Result<(), lull_common::ValidationError> {
        Ok(())
    }
}

/// The running service. Dropping it does not stop it; call [`Running::stop`].
pub struct Running {
    service: async_nats::service::Service,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops taking requests, lets in-flight ones finish, and unregisters.
    pub async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        if let Err(e) = self.service.stop().await {
            tracing::warn!(error = %e, "stopping micro service");
        }
    }
}

/// Starts the micro service with `endpoints` (names relative to `lull.v1`).
pub async fn start(
    client: &async_nats::Client,
    subjects: &Subjects,
    endpoints: Vec<(&'static str, Handler)>,
    concurrency: usize,
    shutdown: CancellationToken,
) -> Result<Running, async_nats::Error> {
    let service = client
        .service_builder()
        .description("Lull coordinator: quiet state, heavy-work leases, regions and workers")
        .start(
            lull_common::subjects::SERVICE_NAME,
            env!("CARGO_PKG_VERSION"),
        )
        .await?;
    let group = service.group(subjects.service_group());
    let mut tasks = Vec::new();
    for (name, handler) in endpoints {
        let mut endpoint = group.endpoint(name).await?;
        let limit = Arc::new(Semaphore::new(concurrency.max(1)));
        let shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let request = tokio::select! {
                    r = endpoint.next() => match r { Some(r) => r, None => break },
                    _ = shutdown.cancelled() => break,
                };
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    break;
                };
                let handler = handler.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let result = handler(request.message.payload.clone()).await;
                    respond(&request, name, result, started).await;
                    drop(permit);
                });
            }
            // Drain: wait until every in-flight request has answered.
            let _ = limit.acquire_many(concurrency.max(1) as u32).await;
        }));
    }
    Ok(Running { service, tasks })
}

async fn respond(
    request: &async_nats::service::Request,
    endpoint: &'static str,
    result: HandlerResult,
    started: Instant,
) {
    let (payload, headers, result_label) = match result {
        Ok(body) => (body, async_nats::HeaderMap::new(), "ok"),
        Err(err) => {
            let mut h = async_nats::HeaderMap::new();
            h.insert(
                async_nats::service::NATS_SERVICE_ERROR,
                err.error.message.as_str(),
            );
            h.insert(
                async_nats::service::NATS_SERVICE_ERROR_CODE,
                err.error.code.status().to_string().as_str(),
            );
            metrics::counter!("lull_request_errors_total", "endpoint" => endpoint, "code" => err.error.code.as_str())
                .increment(1);
            let body = serde_json::to_vec(&err)
                .map(Bytes::from)
                .unwrap_or_default();
            (body, h, "error")
        }
    };
    let sent = request.respond_with_headers(Ok(payload), headers).await;
    if let Err(e) = sent {
        tracing::debug!(endpoint, error = %e, "reply not sent");
    }
    metrics::counter!("lull_requests_total", "endpoint" => endpoint, "result" => result_label)
        .increment(1);
    metrics::histogram!("lull_request_duration_seconds", "endpoint" => endpoint)
        .record(started.elapsed().as_secs_f64());
}

/// Shorthand for an error reply.
pub fn err(code: ErrorCode, message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(code, message)
}
