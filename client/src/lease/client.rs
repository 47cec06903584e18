//! [`LeaseClient`]: the connection to the coordinator's lease endpoints
//! (one request with its timeout and error reply), and the operator calls
//! (`revoke`, `status`).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::config::LeaseClientConfig;
use super::errors::{AcquireError, LeaseError};
use super::retry::secs;
use crate::request::{request, RequestError};
use lull_proto::msg::lease::{HeavyLeaseRequest, HeavyLeaseResponse, OkResponse, SchedulerStatus};
use lull_proto::subjects::{endpoints as ep, Subjects};
use lull_proto::validate::Validate;

/// Asks the coordinator for leases. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LeaseClient {
    pub(super) client: async_nats::Client,
    pub(super) subjects: Subjects,
    pub(super) cfg: Arc<LeaseClientConfig>,
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

    pub(super) fn timeout(&self) -> Duration {
        secs(self.cfg.request_timeout_sec)
    }

    pub(super) async fn call<B: Serialize, R: serde::de::DeserializeOwned>(
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
