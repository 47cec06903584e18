//! Acquiring a lease: one request ([`LeaseClient::acquire`]), or waiting
//! for a grant by retrying with the server's hint or in the coordinator's
//! queue ([`LeaseClient::acquire_wait_with`]).

use std::time::{Duration, Instant};

use futures::StreamExt;

use tokio_util::sync::CancellationToken;

use super::client::LeaseClient;
use super::errors::{AcquireError, Denial, WaitProgress};
use super::guard::LeaseGuard;
use super::plan;
use super::retry::{error_code, jitter_unit, secs, transient};
use crate::request::RequestError;
use lull_proto::msg::lease::{
    CancelRequest, HeartbeatResponse, HeavyLeaseRequest, HeavyLeaseResponse, LeaseEvent,
    LeaseHandle, OkResponse, SchedulerStatus,
};
use lull_proto::msg::page::PageRequest;
use lull_proto::subjects::endpoints as ep;
use lull_proto::validate::Validate;

/// Leases asked for per `scheduler.status` page when looking one up.
const HOST_OF_PAGE: u32 = 5000;

/// Most `scheduler.status` pages read when looking a lease up.
const HOST_OF_MAX_PAGES: usize = 1000;

enum QueueResult {
    Granted(Box<LeaseGuard>),
    Again(String),
}

impl LeaseClient {
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
    /// jitter) between attempts. Running out of time ends in
    /// [`AcquireError::TimedOut`] with the last denial, or, when the last
    /// attempt reached no coordinator, in that [`AcquireError::Request`].
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
            let resp = match self.call_request(&r).await {
                Ok(resp) => resp,
                Err(e) if transient(&e) => {
                    let d = plan::transport_denial(&e.to_string());
                    tracing::debug!(error = %e, "lease request failed; will retry");
                    if remaining <= 0.0 {
                        // The last attempt reached no coordinator: that is
                        // "could not ask", not "asked and was told no".
                        return Err(e.into());
                    }
                    let delay = plan::retry_delay(None, remaining, &self.cfg, jitter_unit());
                    observe(&WaitProgress {
                        denial: d,
                        queued: false,
                        next_attempt: Some(Instant::now() + secs(delay)),
                        deadline: until,
                        attempts,
                    });
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
                        if Instant::now() >= until {
                            let last = Denial {
                                reason: why,
                                ..denial
                            };
                            return Err(AcquireError::TimedOut { last: Some(last) });
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

    /// The host of an active lease, from `scheduler.status` read page by
    /// page (used only when a queued grant was learned from a probe rather
    /// than the event).
    async fn host_of(&self, lease_id: &str) -> Option<String> {
        let mut cursor: Option<String> = None;
        // Bounded: a coordinator repeating its cursor cannot loop us.
        for _ in 0..HOST_OF_MAX_PAGES {
            let page = PageRequest {
                limit: Some(HOST_OF_PAGE),
                cursor: cursor.take(),
            };
            let st: SchedulerStatus = self.call(ep::SCHEDULER_STATUS, &page).await.ok()?;
            if let Some(l) = st
                .leases
                .active
                .into_iter()
                .find(|l| l.lease_id == lease_id)
            {
                return Some(l.host_id);
            }
            cursor = Some(st.next_cursor?);
        }
        None
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
}
