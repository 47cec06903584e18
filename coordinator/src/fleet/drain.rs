//! Draining: after `hosts.block` with `drain`, the leases running on the
//! blocked host (or, for a fleet-wide block, everywhere) get the drain
//! timeout to end by themselves; the rest are revoked with the block's
//! reason. The scheduler owns leases, so the drain goes through its own
//! endpoints (`scheduler.status`, `lease.revoke`) like any operator would:
//! the revocations are replicated, audited and pushed to the holders
//! (`REVOKED`) the usual way. Only the leader serves `hosts.block`, and
//! the leader's scheduler answers these requests.

use std::collections::BTreeSet;
use std::time::Duration;

use lull_proto::error::{ErrorCode, ErrorReply};
use lull_proto::msg::hosts::DrainReport;
use lull_proto::msg::lease::{OkResponse, RevokeRequest, SchedulerStatus};
use lull_proto::subjects::endpoints as ep;
use lull_proto::Subjects;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::service::err;

/// How often a drain looks whether the leases ended by themselves.
const POLL: Duration = Duration::from_millis(250);
/// Time allowed for each request to the scheduler.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a drain sends its requests.
#[derive(Clone)]
pub struct Drainer {
    /// The coordinator's own NATS connection.
    pub client: async_nats::Client,
    /// Subjects under the configured prefix.
    pub subjects: Subjects,
}

impl Drainer {
    /// Drains `host` (every host with `None`): waits up to `timeout` for
    /// its active leases to end, then revokes those still running with
    /// `reason`.
    pub async fn drain(
        &self,
        host: Option<&str>,
        reason: &str,
        timeout: Duration,
    ) -> Result<DrainReport, ErrorReply> {
        let running = self.running_on(host).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut left = running.clone();
        while !left.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(POLL.min(deadline - tokio::time::Instant::now())).await;
            let now = self.running_on(host).await?;
            left.retain(|id| now.contains(id));
        }
        let mut report = DrainReport {
            finished: running.difference(&left).cloned().collect(),
            revoked: Vec::new(),
        };
        for id in left {
            let req = RevokeRequest {
                lease_id: id.clone(),
                reason: Some(reason.to_string()),
            };
            let r: OkResponse = self.call(ep::LEASE_REVOKE, &req).await?;
            if r.ok {
                report.revoked.push(id);
            } else {
                // It ended between the last look and the revoke.
                report.finished.push(id);
            }
        }
        Ok(report)
    }

    /// Ids of the active leases on `host` (all with `None`).
    async fn running_on(&self, host: Option<&str>) -> Result<BTreeSet<String>, ErrorReply> {
        let st: SchedulerStatus = self
            .call(ep::SCHEDULER_STATUS, &serde_json::json!({}))
            .await?;
        Ok(st
            .leases
            .active
            .into_iter()
            .filter(|l| host.is_none_or(|h| l.host_id == h))
            .map(|l| l.lease_id)
            .collect())
    }

    async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        endpoint: &str,
        body: &B,
    ) -> Result<R, ErrorReply> {
        lull_client::request::request(
            &self.client,
            self.subjects.endpoint(endpoint),
            body,
            REQUEST_TIMEOUT,
        )
        .await
        .map_err(|e| {
            err(
                ErrorCode::Unavailable,
                format!("drain: the block is in force, but the scheduler could not be asked ({e}); retry the drain"),
            )
        })
    }
}
