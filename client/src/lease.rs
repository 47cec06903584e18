//! Lease client SDK (PROTOCOL.md §3 leases): [`LeaseClient::acquire`] asks
//! the coordinator for a heavy-work lease and returns a [`LeaseGuard`] that
//! heartbeats in the background, listens on `lull.lease.events.<lease_id>`
//! and exposes a revoke or expiry as a future ([`LeaseGuard::revoked`]) and
//! as a [`CancellationToken`]. The guard is released explicitly with an
//! outcome ([`LeaseGuard::release`]) or, best effort, when it is dropped.
//! [`LeaseClient::acquire_wait`] waits for a grant, either by retrying while
//! honouring `retry_after_sec` (with jitter) or through the coordinator's
//! queue (`wait: true`, then the `GRANTED` event).
//!
//! The decisions (how long to wait, what a heartbeat reply or an event
//! means) are pure functions in [`plan`]; the rest is the NATS shell.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::request::{request, RequestError};
use lull_proto::error::{ErrorCode, ValidationError};
use lull_proto::msg::lease::{
    CancelRequest, DenyReason, HeartbeatResponse, HeavyLeaseRequest, HeavyLeaseResponse,
    LeaseEvent, LeaseHandle, LeaseLimits, LeaseState, OkResponse, ProgressReport, ReleaseRequest,
    SchedulerStatus,
};
use lull_proto::subjects::{endpoints as ep, Subjects};
use lull_proto::validate::Validate;

/// Tunables of the lease client. Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LeaseClientConfig {
    /// Timeout of one request to the coordinator, seconds. Default 5.
    pub request_timeout_sec: f64,
    /// Heartbeat interval when a grant carries no `limits`, seconds.
    /// Default 10.
    pub default_heartbeat_interval_sec: f64,
    /// Shortest heartbeat interval ever used, seconds. Default 0.1.
    pub min_heartbeat_interval_sec: f64,
    /// After a heartbeat that got no answer, the next one is tried after
    /// this long (or the normal interval when shorter), seconds. Default 1.
    pub heartbeat_retry_sec: f64,
    /// Wait before asking again when a denial names no `retry_after_sec`
    /// (or the coordinator could not be reached), seconds. Default 5.
    pub default_retry_sec: f64,
    /// Shortest wait between two requests, seconds. Default 0.5.
    pub min_retry_sec: f64,
    /// Longest wait between two requests, seconds. Default 300.
    pub max_retry_sec: f64,
    /// Jitter added to a retry wait, as a fraction of it (0.2 = up to 20 %
    /// later, never earlier than the coordinator asked). Default 0.2.
    pub retry_jitter: f64,
    /// While queued, the queue ticket is checked with a heartbeat this often
    /// in case the `GRANTED` event was missed, seconds. Default 5.
    pub queue_probe_sec: f64,
}

impl Default for LeaseClientConfig {
    fn default() -> Self {
        LeaseClientConfig {
            request_timeout_sec: 5.0,
            default_heartbeat_interval_sec: 10.0,
            min_heartbeat_interval_sec: 0.1,
            heartbeat_retry_sec: 1.0,
            default_retry_sec: 5.0,
            min_retry_sec: 0.5,
            max_retry_sec: 300.0,
            retry_jitter: 0.2,
            queue_probe_sec: 5.0,
        }
    }
}

/// A denial as the coordinator gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Denial {
    /// Human-readable reason with the numbers.
    pub reason: String,
    /// Machine-readable code.
    pub reason_code: Option<DenyReason>,
    /// When to ask again, seconds.
    pub retry_after_sec: Option<f64>,
}

impl Denial {
    /// The denial carried by a `lease.request` reply.
    pub fn from_response(r: &HeavyLeaseResponse) -> Denial {
        Denial {
            reason: r
                .reason
                .clone()
                .unwrap_or_else(|| "denied (no reason given)".to_string()),
            reason_code: r.reason_code,
            retry_after_sec: r.retry_after_sec,
        }
    }

    /// The reason code's wire name, or `denied`.
    pub fn code_str(&self) -> &'static str {
        self.reason_code.map(DenyReason::as_str).unwrap_or("denied")
    }
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.reason, self.code_str())?;
        if let Some(r) = self.retry_after_sec {
            write!(f, ", retry after {r:.1}s")?;
        }
        Ok(())
    }
}

/// Getting a lease failed.
#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    /// The request breaks a rule of the contract (checked before sending).
    #[error("invalid lease request: {0}")]
    Invalid(#[from] ValidationError),
    /// The coordinator said no.
    #[error("lease denied: {0}")]
    Denied(Denial),
    /// The request failed (no coordinator, error reply, bad reply).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// No grant before the deadline; `last` is the last denial seen.
    #[error("no lease within the deadline{}", .last.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    TimedOut {
        /// The last denial, if any.
        last: Option<Denial>,
    },
    /// The queued request was removed by the coordinator (an operator
    /// revoked it) before it was granted.
    #[error("queued lease request withdrawn: {reason}")]
    Withdrawn {
        /// Why.
        reason: String,
    },
    /// The caller cancelled the wait.
    #[error("lease wait cancelled")]
    Cancelled,
    /// The reply broke the contract (e.g. approved without a token).
    #[error("lease protocol error: {0}")]
    Protocol(String),
}

/// A lease operation (report, release) failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The body breaks a rule of the contract (checked before sending).
    #[error("invalid: {0}")]
    Invalid(#[from] ValidationError),
    /// The request failed.
    #[error(transparent)]
    Request(#[from] RequestError),
}

/// How a lease ended without its holder releasing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEnd {
    /// An operator or the coordinator revoked it: stop the work.
    Revoked {
        /// Why.
        reason: Option<String>,
    },
    /// It expired for want of heartbeats.
    Expired {
        /// Why.
        reason: Option<String>,
    },
    /// Someone else holding the token released it.
    Released {
        /// Why.
        reason: Option<String>,
    },
    /// The coordinator does not know the lease or refuses the token.
    Lost {
        /// Why.
        reason: String,
    },
}

impl LeaseEnd {
    /// The lease state this end corresponds to.
    pub fn state(&self) -> LeaseState {
        match self {
            LeaseEnd::Revoked { .. } | LeaseEnd::Lost { .. } => LeaseState::Revoked,
            LeaseEnd::Expired { .. } => LeaseState::Expired,
            LeaseEnd::Released { .. } => LeaseState::Released,
        }
    }

    /// The reason, if one was given.
    pub fn reason(&self) -> Option<&str> {
        match self {
            LeaseEnd::Revoked { reason }
            | LeaseEnd::Expired { reason }
            | LeaseEnd::Released { reason } => reason.as_deref(),
            LeaseEnd::Lost { reason } => Some(reason),
        }
    }
}

impl std::fmt::Display for LeaseEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self {
            LeaseEnd::Revoked { .. } => "revoked",
            LeaseEnd::Expired { .. } => "expired",
            LeaseEnd::Released { .. } => "released",
            LeaseEnd::Lost { .. } => "lost",
        };
        match self.reason() {
            Some(r) => write!(f, "{what}: {r}"),
            None => f.write_str(what),
        }
    }
}

/// Where a wait for a lease stands, given to the observer of
/// [`LeaseClient::acquire_wait_with`] at each change.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitProgress {
    /// The last denial (or the transport problem, as a reason without code).
    pub denial: Denial,
    /// Whether the request is parked in the coordinator's queue.
    pub queued: bool,
    /// When the next attempt is made (retry mode), if known.
    pub next_attempt: Option<Instant>,
    /// When the wait gives up.
    pub deadline: Instant,
    /// Attempts so far.
    pub attempts: u32,
}

/// Pure decisions of the lease client: no NATS, no clock (times are
/// passed in), no randomness (jitter is passed in as a number in `[0, 1)`).
pub mod plan {
    use super::{Denial, LeaseClientConfig, LeaseEnd};
    use lull_proto::error::ErrorCode;
    use lull_proto::msg::lease::{
        HeartbeatResponse, LeaseEvent, LeaseEventKind, LeaseLimits, LeaseState,
    };

    /// Seconds to wait before asking again after a denial carrying
    /// `retry_after_sec`: the server's hint (or the default), clamped to
    /// `[min_retry_sec, max_retry_sec]`, plus up to `retry_jitter` of it
    /// (`jitter` in `[0, 1)`), and never past the time left.
    pub fn retry_delay(
        retry_after_sec: Option<f64>,
        remaining_sec: f64,
        cfg: &LeaseClientConfig,
        jitter: f64,
    ) -> f64 {
        let base = retry_after_sec
            .filter(|r| r.is_finite())
            .unwrap_or(cfg.default_retry_sec)
            .max(cfg.min_retry_sec)
            .min(cfg.max_retry_sec);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let d = base * (1.0 + cfg.retry_jitter.max(0.0) * jitter);
        d.min(remaining_sec.max(0.0))
    }

    /// The heartbeat interval for a grant: the coordinator's guidance,
    /// bounded below by `min_heartbeat_interval_sec` and above by half the
    /// TTL (so one lost heartbeat never expires the lease); the default
    /// when the grant carries no limits.
    pub fn heartbeat_interval(limits: Option<&LeaseLimits>, cfg: &LeaseClientConfig) -> f64 {
        let Some(l) = limits else {
            return cfg
                .default_heartbeat_interval_sec
                .max(cfg.min_heartbeat_interval_sec);
        };
        let mut i = if l.heartbeat_interval_sec.is_finite() && l.heartbeat_interval_sec > 0.0 {
            l.heartbeat_interval_sec
        } else {
            cfg.default_heartbeat_interval_sec
        };
        if l.heartbeat_ttl_sec.is_finite() && l.heartbeat_ttl_sec > 0.0 {
            i = i.min(l.heartbeat_ttl_sec / 2.0);
        }
        i.max(cfg.min_heartbeat_interval_sec)
    }

    /// Delay before the next heartbeat after one that got no answer.
    pub fn heartbeat_retry(interval: f64, cfg: &LeaseClientConfig) -> f64 {
        interval
            .min(cfg.heartbeat_retry_sec)
            .max(cfg.min_heartbeat_interval_sec)
    }

    /// What a heartbeat reply means.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Beat {
        /// Still held; maybe with a new expiry and a replacement token.
        Alive {
            /// New expiry.
            expires_at: Option<f64>,
            /// Token to use from now on.
            new_token: Option<String>,
        },
        /// The lease is over.
        Ended(LeaseEnd),
        /// No verdict (transport problem, coordinator unavailable): try again.
        Retry(String),
    }

    /// Interprets a heartbeat reply.
    pub fn on_heartbeat(r: &HeartbeatResponse) -> Beat {
        if r.ok {
            return Beat::Alive {
                expires_at: r.expires_at,
                new_token: r.token.clone().filter(|t| !t.is_empty()),
            };
        }
        let reason = r.reason.clone();
        Beat::Ended(match r.state {
            LeaseState::Expired => LeaseEnd::Expired { reason },
            LeaseState::Released => LeaseEnd::Released { reason },
            LeaseState::Revoked => LeaseEnd::Revoked { reason },
            LeaseState::Active => LeaseEnd::Lost {
                reason: reason.unwrap_or_else(|| "heartbeat refused".to_string()),
            },
        })
    }

    /// Interprets a heartbeat error reply of `code` (`None` for a transport
    /// or decoding failure): an unknown lease or a refused token is the
    /// end; anything else is retried.
    pub fn on_heartbeat_error(code: Option<ErrorCode>, message: &str) -> Beat {
        match code {
            Some(ErrorCode::NotFound) | Some(ErrorCode::Forbidden) => Beat::Ended(LeaseEnd::Lost {
                reason: message.to_string(),
            }),
            _ => Beat::Retry(message.to_string()),
        }
    }

    /// What an event on the lease's subject means to a holder: the end of
    /// the lease, or nothing (`GRANTED`, another lease's event).
    pub fn on_event(lease_id: &str, e: &LeaseEvent) -> Option<LeaseEnd> {
        if e.lease_id != lease_id {
            return None;
        }
        let reason = e.reason.clone();
        match e.event {
            LeaseEventKind::Granted => None,
            LeaseEventKind::Revoked => Some(LeaseEnd::Revoked { reason }),
            LeaseEventKind::Expired => Some(LeaseEnd::Expired { reason }),
            LeaseEventKind::Released => Some(LeaseEnd::Released { reason }),
        }
    }

    /// What to do while queued.
    #[derive(Debug, Clone, PartialEq)]
    pub enum QueueStep {
        /// Granted: build the guard.
        Granted,
        /// Still waiting.
        Waiting,
        /// Removed by an operator: give up.
        Withdrawn(String),
        /// Given up by the coordinator (its deadline, evicted): ask again if
        /// time is left.
        GivenUp(String),
    }

    /// Interprets an event on a queued request's subject.
    pub fn queue_event(lease_id: &str, e: &LeaseEvent) -> QueueStep {
        if e.lease_id != lease_id {
            return QueueStep::Waiting;
        }
        let why = |d: &str| e.reason.clone().unwrap_or_else(|| d.to_string());
        match e.event {
            LeaseEventKind::Granted => QueueStep::Granted,
            LeaseEventKind::Revoked => QueueStep::Withdrawn(why("revoked")),
            LeaseEventKind::Expired => QueueStep::GivenUp(why("the wait expired")),
            LeaseEventKind::Released => QueueStep::Withdrawn(why("released")),
        }
    }

    /// Interprets a heartbeat probe of a queue ticket: an error reply of
    /// `invalid_request` means still queued.
    pub fn queue_probe(r: Result<&HeartbeatResponse, (Option<ErrorCode>, &str)>) -> QueueStep {
        match r {
            Ok(h) if h.ok => QueueStep::Granted,
            Ok(h) => {
                let why = h
                    .reason
                    .clone()
                    .unwrap_or_else(|| h.state.as_str().to_string());
                // Revoked by an operator: give up. Expired (deadline,
                // eviction) or unknown after a coordinator restart: ask again.
                match h.state {
                    LeaseState::Revoked => QueueStep::Withdrawn(why),
                    _ => QueueStep::GivenUp(why),
                }
            }
            Err((Some(ErrorCode::NotFound), m)) | Err((Some(ErrorCode::Forbidden), m)) => {
                QueueStep::Withdrawn(m.to_string())
            }
            Err(_) => QueueStep::Waiting,
        }
    }

    /// A denial-shaped description of a transport problem, for the wait
    /// observer.
    pub fn transport_denial(message: &str) -> Denial {
        Denial {
            reason: format!("coordinator unreachable: {message}"),
            reason_code: None,
            retry_after_sec: None,
        }
    }
}

/// A number in `[0, 1)` for retry jitter, from the process's random hash
/// keys and a counter (no dependency on a random number crate).
fn jitter_unit() -> f64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(if s.is_finite() { s.max(0.0) } else { 0.0 })
}

fn error_code(e: &RequestError) -> Option<ErrorCode> {
    match e {
        RequestError::Service { code, .. } => Some(*code),
        _ => None,
    }
}

/// Whether a request error is worth retrying (no reply, coordinator busy)
/// rather than final (a bad request).
fn transient(e: &RequestError) -> bool {
    match e {
        RequestError::Transport { .. } => true,
        RequestError::Service { code, .. } => {
            matches!(code, ErrorCode::Unavailable | ErrorCode::Internal)
        }
        RequestError::Encode(_) | RequestError::Decode { .. } => false,
    }
}

/// Asks the coordinator for leases. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LeaseClient {
    client: async_nats::Client,
    subjects: Subjects,
    cfg: Arc<LeaseClientConfig>,
}

impl LeaseClient {
    /// A client over `client`, with subjects under `subjects`' prefix and
    /// the default [`LeaseClientConfig`].
    pub fn new(client: async_nats::Client, subjects: Subjects) -> Self {
        Self::with_config(client, subjects, LeaseClientConfig::default())
    }

    /// A client with explicit tunables.
    pub fn with_config(
        client: async_nats::Client,
        subjects: Subjects,
        cfg: LeaseClientConfig,
    ) -> Self {
        LeaseClient {
            client,
            subjects,
            cfg: Arc::new(cfg),
        }
    }

    /// The tunables.
    pub fn config(&self) -> &LeaseClientConfig {
        &self.cfg
    }

    /// The subjects.
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    fn timeout(&self) -> Duration {
        secs(self.cfg.request_timeout_sec)
    }

    async fn call<B: Serialize, R: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        body: &B,
    ) -> Result<R, RequestError> {
        request(
            &self.client,
            self.subjects.endpoint(endpoint),
            body,
            self.timeout(),
        )
        .await
    }

    /// Sends one `lease.request` as is and returns the raw reply (a denial
    /// is a normal reply). Most callers want [`acquire`](Self::acquire).
    pub async fn request_raw(
        &self,
        req: &HeavyLeaseRequest,
    ) -> Result<HeavyLeaseResponse, AcquireError> {
        req.validate()?;
        Ok(self.call(ep::LEASE_REQUEST, req).await?)
    }

    /// Asks once (never queued: `wait` is sent as false). A grant becomes a
    /// heartbeating [`LeaseGuard`]; a denial is [`AcquireError::Denied`].
    pub async fn acquire(&self, req: HeavyLeaseRequest) -> Result<LeaseGuard, AcquireError> {
        let mut req = req;
        req.wait = false;
        req.wait_timeout_sec = None;
        let resp = self.request_raw(&req).await?;
        if resp.approved {
            return self.guard_from_grant(&resp, None, false).await;
        }
        Err(AcquireError::Denied(Denial::from_response(&resp)))
    }

    /// Waits up to `deadline` for a grant. With `req.wait` the request is
    /// parked in the coordinator's queue and the grant arrives as a
    /// `GRANTED` event (on the deadline the queued request is cancelled);
    /// otherwise the request is repeated, waiting `retry_after_sec` (plus
    /// jitter) between attempts.
    pub async fn acquire_wait(
        &self,
        req: HeavyLeaseRequest,
        deadline: Duration,
    ) -> Result<LeaseGuard, AcquireError> {
        let never = CancellationToken::new();
        self.acquire_wait_with(req, deadline, &never, |_| {}).await
    }

    /// [`acquire_wait`](Self::acquire_wait) with a way to give up early
    /// (`cancel`; a queued request is then withdrawn) and an observer
    /// called with the wait's progress after each denial.
    pub async fn acquire_wait_with<F>(
        &self,
        req: HeavyLeaseRequest,
        deadline: Duration,
        cancel: &CancellationToken,
        mut observe: F,
    ) -> Result<LeaseGuard, AcquireError>
    where
        F: FnMut(&WaitProgress) + Send,
    {
        req.validate()?;
        let until = Instant::now() + deadline;
        let use_queue = req.wait;
        let mut last: Option<Denial> = None;
        let mut attempts: u32 = 0;
        loop {
            if cancel.is_cancelled() {
                return Err(AcquireError::Cancelled);
            }
            let remaining = until
                .saturating_duration_since(Instant::now())
                .as_secs_f64();
            let mut r = req.clone();
            if use_queue {
                r.wait = true;
                r.wait_timeout_sec = Some(remaining.min(86_400.0));
            }
            attempts += 1;
            let resp = match self
                .call::<_, HeavyLeaseResponse>(ep::LEASE_REQUEST, &r)
                .await
            {
                Ok(resp) => resp,
                Err(e) if transient(&e) => {
                    let d = plan::transport_denial(&e.to_string());
                    tracing::debug!(error = %e, "lease request failed; will retry");
                    if remaining <= 0.0 {
                        return Err(AcquireError::TimedOut {
                            last: last.or(Some(d)),
                        });
                    }
                    let delay = plan::retry_delay(None, remaining, &self.cfg, jitter_unit());
                    observe(&WaitProgress {
                        denial: d.clone(),
                        queued: false,
                        next_attempt: Some(Instant::now() + secs(delay)),
                        deadline: until,
                        attempts,
                    });
                    last = Some(d);
                    self.pause(delay, cancel).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if resp.approved {
                return self.guard_from_grant(&resp, None, false).await;
            }
            let denial = Denial::from_response(&resp);
            if resp.queued {
                observe(&WaitProgress {
                    denial: denial.clone(),
                    queued: true,
                    next_attempt: None,
                    deadline: until,
                    attempts,
                });
                match self.wait_in_queue(&resp, until, cancel).await? {
                    QueueResult::Granted(g) => return Ok(*g),
                    QueueResult::Again(why) => {
                        last = Some(Denial {
                            reason: why,
                            ..denial
                        });
                        if Instant::now() >= until {
                            return Err(AcquireError::TimedOut { last });
                        }
                        continue;
                    }
                }
            }
            if remaining <= 0.0 {
                return Err(AcquireError::TimedOut { last: Some(denial) });
            }
            let delay =
                plan::retry_delay(denial.retry_after_sec, remaining, &self.cfg, jitter_unit());
            observe(&WaitProgress {
                denial: denial.clone(),
                queued: false,
                next_attempt: Some(Instant::now() + secs(delay)),
                deadline: until,
                attempts,
            });
            last = Some(denial);
            self.pause(delay, cancel).await?;
        }
    }

    async fn pause(&self, delay: f64, cancel: &CancellationToken) -> Result<(), AcquireError> {
        tokio::select! {
            _ = cancel.cancelled() => Err(AcquireError::Cancelled),
            _ = tokio::time::sleep(secs(delay)) => Ok(()),
        }
    }

    /// Waits for a queued request's grant: the `GRANTED` event, or a
    /// heartbeat probe of the ticket (in case the event was missed). On the
    /// deadline or a cancel the queued request is withdrawn.
    async fn wait_in_queue(
        &self,
        queued: &HeavyLeaseResponse,
        until: Instant,
        cancel: &CancellationToken,
    ) -> Result<QueueResult, AcquireError> {
        let (Some(lease_id), Some(ticket)) = (queued.lease_id.clone(), queued.token.clone()) else {
            return Err(AcquireError::Protocol(
                "queued reply without lease_id or token".into(),
            ));
        };
        let mut events = self
            .client
            .subscribe(self.subjects.lease_events(&lease_id))
            .await
            .map_err(|e| {
                AcquireError::Request(RequestError::Transport {
                    subject: self.subjects.lease_events(&lease_id),
                    message: e.to_string(),
                })
            })?;
        let handle = LeaseHandle {
            lease_id: lease_id.clone(),
            token: ticket.clone(),
        };
        // Probe at once: the grant may have happened before we subscribed.
        let mut probe_at = tokio::time::Instant::now();
        loop {
            let step = tokio::select! {
                _ = cancel.cancelled() => {
                    self.cancel_queued(&lease_id, &ticket).await;
                    return Err(AcquireError::Cancelled);
                }
                _ = tokio::time::sleep_until(until.into()) => {
                    self.cancel_queued(&lease_id, &ticket).await;
                    return Err(AcquireError::TimedOut { last: Some(Denial::from_response(queued)) });
                }
                msg = events.next() => match msg {
                    None => {
                        // Subscription closed: rely on probes.
                        probe_at = tokio::time::Instant::now();
                        continue;
                    }
                    Some(m) => match serde_json::from_slice::<LeaseEvent>(&m.payload) {
                        Ok(ev) => {
                            let step = plan::queue_event(&lease_id, &ev);
                            if step == plan::QueueStep::Granted {
                                let grant = HeavyLeaseResponse {
                                    approved: true,
                                    lease_id: Some(lease_id.clone()),
                                    token: Some(ticket.clone()),
                                    host_id: ev.host_id.clone().or_else(|| queued.host_id.clone()),
                                    expires_at: ev.expires_at,
                                    limits: ev.limits.or(queued.limits),
                                    ..Default::default()
                                };
                                let g = self.guard_from_grant(&grant, Some(events), true).await?;
                                return Ok(QueueResult::Granted(Box::new(g)));
                            }
                            step
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "undecodable lease event ignored");
                            plan::QueueStep::Waiting
                        }
                    },
                },
                _ = tokio::time::sleep_until(probe_at) => {
                    probe_at = tokio::time::Instant::now() + secs(self.cfg.queue_probe_sec);
                    let r = self.call::<_, HeartbeatResponse>(ep::LEASE_HEARTBEAT, &handle).await;
                    let step = match &r {
                        Ok(h) => plan::queue_probe(Ok(h)),
                        Err(e) => plan::queue_probe(Err((error_code(e), &e.to_string()))),
                    };
                    if step == plan::QueueStep::Granted {
                        let h = r.ok();
                        let token = h.as_ref().and_then(|h| h.token.clone()).unwrap_or_else(|| ticket.clone());
                        let host = match queued.host_id.clone() {
                            Some(h) => Some(h),
                            None => self.host_of(&lease_id).await,
                        };
                        let grant = HeavyLeaseResponse {
                            approved: true,
                            lease_id: Some(lease_id.clone()),
                            token: Some(token),
                            host_id: host,
                            expires_at: h.and_then(|h| h.expires_at),
                            limits: queued.limits,
                            ..Default::default()
                        };
                        let g = self.guard_from_grant(&grant, Some(events), false).await?;
                        return Ok(QueueResult::Granted(Box::new(g)));
                    }
                    step
                }
            };
            match step {
                plan::QueueStep::Granted | plan::QueueStep::Waiting => {}
                plan::QueueStep::Withdrawn(reason) => {
                    return Err(AcquireError::Withdrawn { reason });
                }
                plan::QueueStep::GivenUp(why) => return Ok(QueueResult::Again(why)),
            }
        }
    }

    /// The host of an active lease, from `scheduler.status` (used only when
    /// a queued grant was learned from a probe rather than the event).
    async fn host_of(&self, lease_id: &str) -> Option<String> {
        let st: SchedulerStatus = self
            .call(ep::SCHEDULER_STATUS, &serde_json::json!({}))
            .await
            .ok()?;
        st.leases
            .active
            .into_iter()
            .find(|l| l.lease_id == lease_id)
            .map(|l| l.host_id)
    }

    async fn cancel_queued(&self, lease_id: &str, token: &str) {
        let body = CancelRequest {
            lease_id: lease_id.to_string(),
            token: token.to_string(),
        };
        if let Err(e) = self.call::<_, OkResponse>(ep::LEASE_CANCEL, &body).await {
            tracing::warn!(lease_id, error = %e, "could not cancel the queued lease request");
        }
    }

    /// Builds a guard from a grant and starts its background task.
    async fn guard_from_grant(
        &self,
        resp: &HeavyLeaseResponse,
        events: Option<async_nats::Subscriber>,
        beat_now: bool,
    ) -> Result<LeaseGuard, AcquireError> {
        let (Some(lease_id), Some(token)) = (resp.lease_id.clone(), resp.token.clone()) else {
            return Err(AcquireError::Protocol(
                "approved reply without lease_id or token".into(),
            ));
        };
        let events = match events {
            Some(s) => Some(s),
            None => match self
                .client
                .subscribe(self.subjects.lease_events(&lease_id))
                .await
            {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(lease_id, error = %e, "cannot subscribe to lease events; relying on heartbeats");
                    None
                }
            },
        };
        let (end_tx, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            lease_id,
            host_id: resp.host_id.clone().unwrap_or_default(),
            limits: resp.limits,
            token: Mutex::new(token),
            expires_at: Mutex::new(resp.expires_at),
            end: end_tx,
            lost: CancellationToken::new(),
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(keepalive(
            self.clone(),
            shared.clone(),
            events,
            stop.clone(),
            beat_now,
        ));
        Ok(LeaseGuard {
            client: self.clone(),
            shared,
            stop,
            task: Some(task),
            done: false,
        })
    }

    /// `lease.revoke` (operators): ends someone's lease.
    pub async fn revoke(
        &self,
        lease_id: &str,
        reason: Option<String>,
    ) -> Result<OkResponse, LeaseError> {
        let body = lull_proto::msg::lease::RevokeRequest {
            lease_id: lease_id.to_string(),
            reason,
        };
        body.validate()?;
        Ok(self.call(ep::LEASE_REVOKE, &body).await?)
    }

    /// `scheduler.status`.
    pub async fn status(&self) -> Result<SchedulerStatus, LeaseError> {
        Ok(self
            .call(ep::SCHEDULER_STATUS, &serde_json::json!({}))
            .await?)
    }
}

enum QueueResult {
    Granted(Box<LeaseGuard>),
    Again(String),
}

/// State shared between a guard and its background task.
#[derive(Debug)]
struct Shared {
    lease_id: String,
    host_id: String,
    limits: Option<LeaseLimits>,
    token: Mutex<String>,
    expires_at: Mutex<Option<f64>>,
    end: watch::Sender<Option<LeaseEnd>>,
    lost: CancellationToken,
}

impl Shared {
    fn token(&self) -> String {
        self.token.lock().map(|t| t.clone()).unwrap_or_default()
    }

    fn handle(&self) -> LeaseHandle {
        LeaseHandle {
            lease_id: self.lease_id.clone(),
            token: self.token(),
        }
    }

    fn finish(&self, end: LeaseEnd) {
        let mut first = false;
        self.end.send_if_modified(|v| {
            if v.is_none() {
                *v = Some(end.clone());
                first = true;
            }
            first
        });
        if first {
            tracing::info!(lease_id = %self.lease_id, end = %end, "lease ended");
        }
        self.lost.cancel();
    }
}

/// Heartbeats every interval and watches the events subject until the
/// lease ends or the guard stops it.
async fn keepalive(
    lc: LeaseClient,
    shared: Arc<Shared>,
    mut events: Option<async_nats::Subscriber>,
    stop: CancellationToken,
    beat_now: bool,
) {
    let interval = plan::heartbeat_interval(shared.limits.as_ref(), &lc.cfg);
    let mut next = tokio::time::Instant::now()
        + if beat_now {
            Duration::ZERO
        } else {
            secs(interval)
        };
    loop {
        let next_event = async {
            match events.as_mut() {
                Some(s) => s.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            msg = next_event => match msg {
                None => {
                    tracing::debug!(lease_id = %shared.lease_id, "lease events subscription closed");
                    events = None;
                }
                Some(m) => {
                    if let Ok(ev) = serde_json::from_slice::<LeaseEvent>(&m.payload) {
                        if let Some(end) = plan::on_event(&shared.lease_id, &ev) {
                            shared.finish(end);
                            return;
                        }
                    }
                }
            },
            _ = tokio::time::sleep_until(next) => {
                let handle = shared.handle();
                let r = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = lc.call::<_, HeartbeatResponse>(ep::LEASE_HEARTBEAT, &handle) => r,
                };
                let beat = match &r {
                    Ok(h) => plan::on_heartbeat(h),
                    Err(e) => plan::on_heartbeat_error(error_code(e), &e.to_string()),
                };
                match beat {
                    plan::Beat::Alive { expires_at, new_token } => {
                        if let Some(t) = new_token {
                            if let Ok(mut cur) = shared.token.lock() {
                                *cur = t;
                            }
                        }
                        if expires_at.is_some() {
                            if let Ok(mut e) = shared.expires_at.lock() {
                                *e = expires_at;
                            }
                        }
                        next = tokio::time::Instant::now() + secs(interval);
                    }
                    plan::Beat::Ended(end) => {
                        shared.finish(end);
                        return;
                    }
                    plan::Beat::Retry(why) => {
                        tracing::warn!(lease_id = %shared.lease_id, error = %why, "heartbeat failed; retrying");
                        next = tokio::time::Instant::now() + secs(plan::heartbeat_retry(interval, &lc.cfg));
                    }
                }
            }
        }
    }
}

/// A held lease. Heartbeats in the background until released, dropped,
/// revoked or expired. Dropping it releases the lease (best effort, in a
/// spawned task, with outcome `dropped`).
#[derive(Debug)]
pub struct LeaseGuard {
    client: LeaseClient,
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    done: bool,
}

impl LeaseGuard {
    /// The public lease id.
    pub fn lease_id(&self) -> &str {
        &self.shared.lease_id
    }

    /// The host the lease is on (empty if the coordinator did not say).
    pub fn host_id(&self) -> &str {
        &self.shared.host_id
    }

    /// The current secret token (it may be replaced once after a queued
    /// grant).
    pub fn token(&self) -> String {
        self.shared.token()
    }

    /// Heartbeat guidance of the grant.
    pub fn limits(&self) -> Option<LeaseLimits> {
        self.shared.limits
    }

    /// The expiry the coordinator last announced, Unix seconds.
    pub fn expires_at(&self) -> Option<f64> {
        self.shared.expires_at.lock().ok().and_then(|e| *e)
    }

    /// How the lease ended, if it has (without the holder releasing it).
    pub fn ended(&self) -> Option<LeaseEnd> {
        self.shared.end.borrow().clone()
    }

    /// Resolves when the lease is revoked, expires or is lost: the holder
    /// must stop its work then. Never resolves while the lease is held.
    pub async fn revoked(&self) -> LeaseEnd {
        let mut rx = self.shared.end.subscribe();
        let r = match rx.wait_for(|v| v.is_some()).await {
            Ok(v) => v.clone(),
            Err(_) => None,
        };
        match r {
            Some(e) => e,
            None => std::future::pending().await,
        }
    }

    /// A token cancelled when the lease is revoked, expires or is lost
    /// (a child token: cancelling it does not affect the lease).
    pub fn cancellation_token(&self) -> CancellationToken {
        self.shared.lost.child_token()
    }

    /// Reports progress (`lease.report`).
    pub async fn report(
        &self,
        progress_pct: Option<f64>,
        message: Option<String>,
        metrics: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> Result<OkResponse, LeaseError> {
        let h = self.shared.handle();
        let body = ProgressReport {
            lease_id: h.lease_id,
            token: h.token,
            progress_pct,
            message,
            metrics,
        };
        body.validate()?;
        Ok(self.client.call(ep::LEASE_REPORT, &body).await?)
    }

    /// Releases the lease with an outcome (`success`, `exit_3`, ...) and
    /// stops the heartbeats. A lease that already ended answers `ok: false`.
    pub async fn release(mut self, outcome: &str) -> Result<OkResponse, LeaseError> {
        self.done = true;
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        let body = release_body(&self.shared, outcome);
        body.validate()?;
        Ok(self.client.call(ep::LEASE_RELEASE, &body).await?)
    }
}

fn release_body(shared: &Shared, outcome: &str) -> ReleaseRequest {
    let h = shared.handle();
    ReleaseRequest {
        lease_id: h.lease_id,
        token: h.token,
        outcome: Some(outcome.to_string()),
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.stop.cancel();
        if self.done || self.shared.end.borrow().is_some() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(lease_id = %self.shared.lease_id, "lease guard dropped outside a runtime; the lease will expire");
            return;
        };
        let client = self.client.clone();
        let body = release_body(&self.shared, "dropped");
        rt.spawn(async move {
            if let Err(e) = client
                .call::<_, OkResponse>(ep::LEASE_RELEASE, &body)
                .await
            {
                tracing::warn!(lease_id = %body.lease_id, error = %e, "release on drop failed; the lease will expire");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::plan::*;
    use super::*;
    use lull_proto::msg::lease::LeaseEventKind;

    fn cfg() -> LeaseClientConfig {
        LeaseClientConfig::default()
    }

    #[test]
    fn retry_delay_honours_the_hint_with_jitter_and_bounds() {
        let c = cfg();
        assert_eq!(retry_delay(Some(12.0), 100.0, &c, 0.0), 12.0);
        let d = retry_delay(Some(12.0), 100.0, &c, 0.5);
        assert!((d - 13.2).abs() < 1e-9, "{d}");
        // Never earlier than asked, at most 20 % later.
        for j in [0.0, 0.3, 0.999] {
            let d = retry_delay(Some(10.0), 100.0, &c, j);
            assert!((10.0..=12.0).contains(&d), "{d}");
        }
        // Bounds.
        assert_eq!(retry_delay(Some(0.01), 100.0, &c, 0.0), 0.5);
        assert_eq!(retry_delay(Some(1e9), 1e9, &c, 0.0), 300.0);
        assert_eq!(retry_delay(None, 100.0, &c, 0.0), 5.0);
        assert_eq!(retry_delay(Some(f64::NAN), 100.0, &c, 0.0), 5.0);
        // Never past the deadline.
        assert_eq!(retry_delay(Some(30.0), 4.0, &c, 0.9), 4.0);
        assert_eq!(retry_delay(Some(30.0), -1.0, &c, 0.9), 0.0);
        // Bad jitter is ignored or clamped.
        assert_eq!(retry_delay(Some(10.0), 100.0, &c, f64::NAN), 10.0);
        assert_eq!(retry_delay(Some(10.0), 100.0, &c, 7.0), 12.0);
    }

    #[test]
    fn heartbeat_interval_follows_the_grant() {
        let c = cfg();
        let l = |i, t| LeaseLimits {
            heartbeat_interval_sec: i,
            heartbeat_ttl_sec: t,
        };
        assert_eq!(heartbeat_interval(Some(&l(10.0, 30.0)), &c), 10.0);
        // Capped at half the TTL.
        assert_eq!(heartbeat_interval(Some(&l(25.0, 30.0)), &c), 15.0);
        // Floor.
        assert_eq!(heartbeat_interval(Some(&l(0.001, 30.0)), &c), 0.1);
        // Nonsense falls back to the default, still capped by the TTL.
        assert_eq!(heartbeat_interval(Some(&l(-1.0, 8.0)), &c), 4.0);
        assert_eq!(heartbeat_interval(None, &c), 10.0);
        assert_eq!(heartbeat_retry(10.0, &c), 1.0);
        assert_eq!(heartbeat_retry(0.5, &c), 0.5);
    }

    fn hb(ok: bool, state: LeaseState, token: Option<&str>) -> HeartbeatResponse {
        HeartbeatResponse {
            ok,
            state,
            expires_at: Some(100.0),
            reason: (!ok).then(|| "why".to_string()),
            token: token.map(str::to_string),
        }
    }

    #[test]
    fn heartbeat_replies_are_interpreted() {
        assert_eq!(
            on_heartbeat(&hb(true, LeaseState::Active, None)),
            Beat::Alive {
                expires_at: Some(100.0),
                new_token: None
            }
        );
        assert_eq!(
            on_heartbeat(&hb(true, LeaseState::Active, Some("t2"))),
            Beat::Alive {
                expires_at: Some(100.0),
                new_token: Some("t2".into())
            }
        );
        assert_eq!(
            on_heartbeat(&hb(false, LeaseState::Revoked, None)),
            Beat::Ended(LeaseEnd::Revoked {
                reason: Some("why".into())
            })
        );
        assert_eq!(
            on_heartbeat(&hb(false, LeaseState::Expired, None)),
            Beat::Ended(LeaseEnd::Expired {
                reason: Some("why".into())
            })
        );
        assert!(matches!(
            on_heartbeat(&hb(false, LeaseState::Active, None)),
            Beat::Ended(LeaseEnd::Lost { .. })
        ));
        assert!(matches!(
            on_heartbeat_error(Some(ErrorCode::NotFound), "unknown lease L1"),
            Beat::Ended(LeaseEnd::Lost { .. })
        ));
        assert!(matches!(
            on_heartbeat_error(Some(ErrorCode::Forbidden), "bad token"),
            Beat::Ended(LeaseEnd::Lost { .. })
        ));
        assert!(matches!(
            on_heartbeat_error(Some(ErrorCode::Unavailable), "x"),
            Beat::Retry(_)
        ));
        assert!(matches!(
            on_heartbeat_error(None, "no responders"),
            Beat::Retry(_)
        ));
    }

    fn ev(id: &str, kind: LeaseEventKind) -> LeaseEvent {
        LeaseEvent {
            lease_id: id.into(),
            event: kind,
            at: 1.0,
            host_id: Some("h".into()),
            addon_id: None,
            reason: Some("operator".into()),
            expires_at: None,
            limits: None,
        }
    }

    #[test]
    fn events_end_a_held_lease() {
        assert_eq!(on_event("L1", &ev("L1", LeaseEventKind::Granted)), None);
        assert_eq!(on_event("L1", &ev("L2", LeaseEventKind::Revoked)), None);
        assert_eq!(
            on_event("L1", &ev("L1", LeaseEventKind::Revoked)),
            Some(LeaseEnd::Revoked {
                reason: Some("operator".into())
            })
        );
        assert_eq!(
            on_event("L1", &ev("L1", LeaseEventKind::Expired))
                .unwrap()
                .state(),
            LeaseState::Expired
        );
        assert_eq!(
            on_event("L1", &ev("L1", LeaseEventKind::Released))
                .unwrap()
                .state(),
            LeaseState::Released
        );
    }

    #[test]
    fn queue_steps() {
        assert_eq!(
            queue_event("L1", &ev("L1", LeaseEventKind::Granted)),
            QueueStep::Granted
        );
        assert_eq!(
            queue_event("L1", &ev("L9", LeaseEventKind::Granted)),
            QueueStep::Waiting
        );
        assert!(matches!(
            queue_event("L1", &ev("L1", LeaseEventKind::Revoked)),
            QueueStep::Withdrawn(_)
        ));
        assert!(matches!(
            queue_event("L1", &ev("L1", LeaseEventKind::Expired)),
            QueueStep::GivenUp(_)
        ));
        let granted = hb(true, LeaseState::Active, Some("t2"));
        assert_eq!(queue_probe(Ok(&granted)), QueueStep::Granted);
        let gone = hb(false, LeaseState::Expired, None);
        assert!(matches!(queue_probe(Ok(&gone)), QueueStep::GivenUp(_)));
        let revoked = hb(false, LeaseState::Revoked, None);
        assert!(matches!(queue_probe(Ok(&revoked)), QueueStep::Withdrawn(_)));
        assert_eq!(
            queue_probe(Err((Some(ErrorCode::InvalidRequest), "still queued"))),
            QueueStep::Waiting
        );
        assert_eq!(queue_probe(Err((None, "timeout"))), QueueStep::Waiting);
        assert!(matches!(
            queue_probe(Err((Some(ErrorCode::NotFound), "unknown"))),
            QueueStep::Withdrawn(_)
        ));
    }

    #[test]
    fn denial_display_has_code_and_retry() {
        let r = HeavyLeaseResponse {
            approved: false,
            reason: Some("Capacity exceeded: used=60, requested=30, capacity=70".into()),
            reason_code: Some(DenyReason::CapacityExceeded),
            retry_after_sec: Some(12.0),
            ..Default::default()
        };
        let d = Denial::from_response(&r);
        assert_eq!(
            d.to_string(),
            "Capacity exceeded: used=60, requested=30, capacity=70 (capacity_exceeded), retry after 12.0s"
        );
        let e = AcquireError::TimedOut { last: Some(d) };
        assert!(e.to_string().contains("capacity_exceeded"));
        assert_eq!(
            Denial::from_response(&HeavyLeaseResponse::default()).code_str(),
            "denied"
        );
    }

    #[test]
    fn jitter_is_in_unit_interval_and_varies() {
        let xs: Vec<f64> = (0..64).map(|_| jitter_unit()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let first = xs[0];
        assert!(xs.iter().any(|x| (*x - first).abs() > 1e-9));
    }

    #[test]
    fn config_defaults_and_partial_override() {
        let c: LeaseClientConfig = serde_json::from_str(r#"{"retry_jitter": 0.5}"#).unwrap();
        assert_eq!(c.retry_jitter, 0.5);
        assert_eq!(c.request_timeout_sec, 5.0);
    }

    #[test]
    fn invalid_requests_are_refused_before_sending() {
        // No server is needed: validation happens first. A client that
        // cannot connect is not constructible without a server, so check
        // the rule the SDK relies on.
        let r = HeavyLeaseRequest {
            addon_id: "bad addon".into(),
            job_type: "j".into(),
            host_id: None,
            cost_units: Some(10),
            cost_class: None,
            expected_duration_sec: None,
            priority: Default::default(),
            constraints: Default::default(),
            wait: false,
            wait_timeout_sec: None,
        };
        assert!(r.validate().is_err());
    }
}
