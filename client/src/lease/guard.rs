//! [`LeaseGuard`]: a held lease, kept alive by a background task that
//! heartbeats and watches `lull.lease.events.<lease_id>`, released
//! explicitly or, best effort, on drop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::client::LeaseClient;
use super::errors::{AcquireError, LeaseEnd, LeaseError};
use super::plan;
use super::retry::{error_code, secs};
use lull_proto::msg::lease::{
    HeartbeatResponse, HeavyLeaseResponse, LeaseEvent, LeaseHandle, LeaseLimits, OkResponse,
    ProgressReport, ReleaseRequest,
};
use lull_proto::subjects::endpoints as ep;
use lull_proto::validate::Validate;

impl LeaseClient {
    /// Builds a guard from a grant and starts its background task.
    pub(super) async fn guard_from_grant(
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
