//! The `lull-coordinator` NATS micro service: registers every `lull.v1.*`
//! endpoint, decodes and validates requests, runs the handler, and answers
//! with JSON or with an error reply (`{"error": {...}}` plus the micro error
//! headers). Requests, errors and latency are measured per endpoint.
//!
//! Most endpoints are served here, a task per request, by a [`Handler`].
//! An actor that wants to answer its own endpoints without a hop (the lease
//! scheduler) takes the raw request stream with [`Service::endpoint`] and
//! answers through a [`Meter`], so its replies look and count the same.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use async_nats::service::ServiceExt;
use bytes::Bytes;
use futures::StreamExt;
use lull_common::metric::Metric;
use lull_proto::error::{ErrorCode, ErrorReply};
use lull_proto::validate::{decode, Validate};
use lull_proto::Subjects;
use metrics::Unit;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Counter `{endpoint,result}`: requests answered.
pub(crate) static REQUESTS: Metric = Metric::counter(
    "lull_requests_total",
    "Requests answered by the micro service, by endpoint and result (ok, error).",
);
/// Counter `{endpoint,code}`: error replies.
pub(crate) static REQUEST_ERRORS: Metric = Metric::counter(
    "lull_request_errors_total",
    "Error replies of the micro service, by endpoint and error code.",
);
/// Buckets (seconds) of `lull_request_duration_seconds`: eight, not the
/// seventeen of the other latency histograms, because the histogram has one
/// series set per endpoint (about 30): 11 series each instead of 20.
pub(crate) const REQUEST_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.01, 0.05, 0.25, 1.0, 5.0];

/// Histogram `{endpoint}`: request-to-reply time.
pub(crate) static REQUEST_DURATION: Metric = Metric::histogram(
    "lull_request_duration_seconds",
    "Time from receiving a request to sending its reply, by endpoint.",
)
.unit(Unit::Seconds)
.buckets(REQUEST_BUCKETS);

/// Counter `{endpoint}`: replies too large to send, answered with an error.
pub(crate) static REPLIES_TOO_LARGE: Metric = Metric::counter(
    "lull_replies_too_large_total",
    "Replies larger than the NATS max_payload, answered with an error that says how to page, by endpoint.",
);

/// Every metric of the micro service.
pub(crate) static METRICS: &[&Metric] = &[
    &REQUESTS,
    &REQUEST_ERRORS,
    &REQUEST_DURATION,
    &REPLIES_TOO_LARGE,
];

pub use async_nats::service::endpoint::Endpoint;
pub use async_nats::service::Request;

/// What a handler returns: a JSON body or an error reply.
pub type HandlerResult = Result<Bytes, ErrorReply>;

/// A boxed endpoint handler taking the raw request payload.
pub type Handler =
    Arc<dyn Fn(Bytes) -> Pin<Box<dyn Future<Output = HandlerResult> + Send>> + Send + Sync>;

/// Decodes and validates a request payload (an empty or blank payload
/// counts as `{}`), turning any failure into an `invalid_request` reply.
pub fn decode_request<Req>(payload: &[u8], max_payload: usize) -> Result<Req, ErrorReply>
where
    Req: DeserializeOwned + Validate,
{
    let body: &[u8] = if payload.iter().all(|b| b.is_ascii_whitespace()) {
        b"{}"
    } else {
        payload
    };
    decode(body, max_payload).map_err(|e| ErrorReply::from(&e))
}

/// Serialises a reply body.
pub fn encode_reply<Resp: Serialize>(resp: &Resp) -> HandlerResult {
    serde_json::to_vec(resp)
        .map(Bytes::from)
        .map_err(|e| ErrorReply::new(ErrorCode::Internal, e.to_string()))
}

/// Wraps a typed async function as a [`Handler`]: the payload is size-checked,
/// decoded and validated, and the result is serialised. Bad input never
/// reaches `f`.
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
            let req: Req = decode_request(&payload, max_payload)?;
            encode_reply(&f(req).await?)
        })
    })
}

/// A request with no fields (`{}`); unknown fields are ignored.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Empty {}

impl Validate for Empty {
    fn validate(&self) -> Result<(), lull_proto::ValidationError> {
        Ok(())
    }
}

/// The subject an error is "answered" on a second time so that the micro
/// service's own stats count it (see [`Meter::respond`]). No one subscribes
/// to it; the server drops what is published there.
pub const ERROR_TALLY_SUBJECT: &str = "_lull.error_tally";

/// Answers requests of one endpoint and measures them: the metric handles
/// are made once, so a reply costs atomic increments, not registry lookups.
#[derive(Clone)]
pub struct Meter {
    client: async_nats::Client,
    endpoint: &'static str,
    /// Largest reply body sent (from the server's `max_payload`); a larger
    /// one becomes an error reply.
    reply_max: usize,
    ok: metrics::Counter,
    error: metrics::Counter,
    duration: metrics::Histogram,
}

impl Meter {
    /// The meter of `endpoint` (a name relative to `lull.v1`); error
    /// replies are published with `client`, and no reply is larger than
    /// its server's `max_payload` allows (see [`reply_max`]).
    pub fn new(endpoint: &'static str, client: async_nats::Client) -> Self {
        Meter {
            reply_max: reply_max(client.server_info().max_payload),
            client,
            endpoint,
            ok: metrics::counter!(REQUESTS.name, "endpoint" => endpoint, "result" => "ok"),
            error: metrics::counter!(REQUESTS.name, "endpoint" => endpoint, "result" => "error"),
            duration: metrics::histogram!(REQUEST_DURATION.name, "endpoint" => endpoint),
        }
    }

    /// Sends the reply (or the error reply with the micro error headers)
    /// and records it; `started` is when the request was taken.
    ///
    /// An error reply carries the JSON body the protocol promises. async-nats
    /// counts an endpoint's errors (`$SRV.STATS` `num_errors`, `last_error`)
    /// only in `respond(Err(..))`, which sends an empty body; so the body is
    /// published here, and `respond(Err(..))` is then aimed at
    /// [`ERROR_TALLY_SUBJECT`], where it only updates the stats.
    pub async fn respond(&self, mut request: Request, result: HandlerResult, started: Instant) {
        let result = result.and_then(|body| fits(self.endpoint, body, self.reply_max));
        let sent = match result {
            Ok(body) => {
                self.ok.increment(1);
                request.respond(Ok(body)).await
            }
            Err(err) => {
                self.error.increment(1);
                metrics::counter!(REQUEST_ERRORS.name, "endpoint" => self.endpoint, "code" => err.error.code.as_str())
                    .increment(1);
                let mut h = async_nats::HeaderMap::new();
                h.insert(
                    async_nats::service::NATS_SERVICE_ERROR,
                    err.error.message.as_str(),
                );
                h.insert(
                    async_nats::service::NATS_SERVICE_ERROR_CODE,
                    err.error.code.status().to_string().as_str(),
                );
                let body = serde_json::to_vec(&err)
                    .map(Bytes::from)
                    .unwrap_or_default();
                match request.message.reply.replace(ERROR_TALLY_SUBJECT.into()) {
                    Some(reply) => {
                        let sent = self.client.publish_with_headers(reply, h, body).await;
                        let tally = async_nats::service::error::Error {
                            status: err.error.message.clone(),
                            code: err.error.code.status(),
                        };
                        let _ = request.respond(Err(tally)).await;
                        sent
                    }
                    // A request without a reply subject: only counted.
                    None => Ok(()),
                }
            }
        };
        if let Err(e) = sent {
            tracing::debug!(endpoint = self.endpoint, error = %e, "reply not sent");
        }
        self.duration.record(started.elapsed().as_secs_f64());
    }
}

/// Room kept in a NATS message for the reply's headers, bytes.
const HEADER_ROOM: usize = 1024;

/// The largest reply body for a server whose `max_payload` is
/// `server_max` (room is kept for the headers).
pub fn reply_max(server_max: usize) -> usize {
    server_max.saturating_sub(HEADER_ROOM).max(HEADER_ROOM)
}

/// `body`, or the error reply that says it is too big to send and how to
/// ask for less (counted under `lull_replies_too_large_total`).
fn fits(endpoint: &'static str, body: Bytes, max: usize) -> HandlerResult {
    if body.len() <= max {
        return Ok(body);
    }
    metrics::counter!(REPLIES_TOO_LARGE.name, "endpoint" => endpoint).increment(1);
    tracing::warn!(
        endpoint,
        bytes = body.len(),
        max,
        "reply too large for NATS"
    );
    Err(ErrorReply::new(
        ErrorCode::InvalidRequest,
        format!(
            "reply too large: {} bytes, the NATS max_payload allows {max}; \
             ask for less: pass a smaller limit, and page with cursor = next_cursor",
            body.len()
        ),
    ))
}

/// The registered micro service, before and while it serves.
pub struct Service {
    client: async_nats::Client,
    service: async_nats::service::Service,
    group: async_nats::service::Group,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Service {
    /// Registers the `lull-coordinator` micro service (answering `$SRV.*`);
    /// endpoints are added with [`Service::endpoint`] and [`Service::serve`].
    pub async fn start(
        client: &async_nats::Client,
        subjects: &Subjects,
    ) -> Result<Service, async_nats::Error> {
        let service = client
            .service_builder()
            .description("Lull coordinator: quiet state, heavy-work leases, regions and workers")
            .start(
                lull_proto::subjects::SERVICE_NAME,
                env!("CARGO_PKG_VERSION"),
            )
            .await?;
        let group = service.group(subjects.service_group());
        Ok(Service {
            client: client.clone(),
            service,
            group,
            tasks: Vec::new(),
        })
    }

    /// Registers `name` (relative to `lull.v1`) and returns its raw request
    /// stream, for an actor that answers through a [`Meter`]. The stream
    /// ends after [`Service::stop`] once its buffered requests are taken.
    pub async fn endpoint(&self, name: &'static str) -> Result<Endpoint, async_nats::Error> {
        self.group.endpoint(name).await
    }

    /// A group for endpoints that only this instance answers as a whole: a
    /// queue group of its own, so that every instance subscribed receives
    /// each request (a paused former leader cannot take requests away from
    /// the leader; only the leader answers).
    pub fn exclusive_group(
        &self,
        subjects: &Subjects,
        instance: &str,
    ) -> async_nats::service::Group {
        let q: String = instance
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.service
            .group_with_queue_group(subjects.service_group(), format!("lull-{q}"))
    }

    /// Serves `endpoints`, each request in a task of its own, at most
    /// `concurrency` at a time per endpoint. On `shutdown` they stop taking
    /// requests and finish the ones in flight.
    pub async fn serve(
        &mut self,
        endpoints: Vec<(&'static str, Handler)>,
        concurrency: usize,
        shutdown: CancellationToken,
    ) -> Result<(), async_nats::Error> {
        let concurrency = concurrency.max(1);
        for (name, handler) in endpoints {
            let endpoint = self.group.endpoint(name).await?;
            self.tasks.push(tokio::spawn(serve_endpoint(
                endpoint,
                Meter::new(name, self.client.clone()),
                handler,
                concurrency,
                shutdown.clone(),
            )));
        }
        Ok(())
    }

    /// A group of the service with the shared queue group (the endpoints
    /// every instance answers).
    pub fn shared_group(&self, subjects: &Subjects) -> async_nats::service::Group {
        self.service.group(subjects.service_group())
    }

    /// Stops taking requests: waits for the served endpoints to answer what
    /// they took, then unregisters the service (which ends the raw streams).
    pub async fn stop(self) {
        for t in self.tasks {
            let _ = t.await;
        }
        if let Err(e) = self.service.stop().await {
            tracing::warn!(error = %e, "stopping micro service");
        }
    }
}

/// Serves `endpoints` on `group` until `shutdown`, each request in a task
/// of its own, at most `concurrency` at a time per endpoint; the returned
/// tasks end once the requests taken are answered.
pub async fn serve_on(
    client: &async_nats::Client,
    group: &async_nats::service::Group,
    endpoints: Vec<(&'static str, Handler)>,
    concurrency: usize,
    shutdown: CancellationToken,
) -> Result<Vec<tokio::task::JoinHandle<()>>, async_nats::Error> {
    let mut tasks = Vec::new();
    for (name, handler) in endpoints {
        let endpoint = group.endpoint(name).await?;
        tasks.push(tokio::spawn(serve_endpoint(
            endpoint,
            Meter::new(name, client.clone()),
            handler,
            concurrency.max(1),
            shutdown.clone(),
        )));
    }
    Ok(tasks)
}

async fn serve_endpoint(
    mut endpoint: Endpoint,
    meter: Meter,
    handler: Handler,
    concurrency: usize,
    shutdown: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(concurrency));
    loop {
        let request = tokio::select! {
            r = endpoint.next() => match r { Some(r) => r, None => break },
            _ = shutdown.cancelled() => break,
        };
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        let handler = handler.clone();
        let meter = meter.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = handler(request.message.payload.clone()).await;
            meter.respond(request, result, started).await;
            drop(permit);
        });
    }
    // Drain: wait until every request taken has been answered.
    let _ = limit.acquire_many(concurrency as u32).await;
}

/// Shorthand for an error reply.
pub fn err(code: ErrorCode, message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(code, message)
}

/// The reply when an actor has stopped (the coordinator is shutting down).
pub(crate) fn gone<E>(_: E) -> ErrorReply {
    err(ErrorCode::Unavailable, "the coordinator is shutting down")
}
