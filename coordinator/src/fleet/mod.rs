//! The fleet: per-host state (latest snapshot, quiet tracker, agent
//! telemetry, first and last seen) owned by one actor task. Everything else
//! talks to it through a [`FleetHandle`].

mod actor;

pub use actor::{spawn, FleetConfig};

use lull_common::msg::hosts::{HostDetail, HostSummary};
use lull_common::msg::stats::SystemStatsSnapshot;
use lull_common::msg::telemetry::{LoopFailure, LoopHealth};
use tokio::sync::{mpsc, oneshot};

/// A message to the fleet actor.
#[derive(Debug)]
pub enum Command {
    /// A validated snapshot arrived.
    Snapshot(Box<SystemStatsSnapshot>, f64),
    /// An agent's `loop.health` arrived.
    Health(String, Box<LoopHealth>, f64),
    /// An agent's `loop.failure` arrived.
    Failure(String, Box<LoopFailure>, f64),
    /// `hosts.list`.
    List(oneshot::Sender<Vec<HostSummary>>),
    /// `hosts.get`.
    Get(String, oneshot::Sender<Option<HostDetail>>),
}

/// The fleet actor is gone (shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the fleet actor has stopped")]
pub struct FleetGone;

/// Cheap, cloneable handle to the fleet actor.
#[derive(Debug, Clone)]
pub struct FleetHandle {
    tx: mpsc::Sender<Command>,
}

impl FleetHandle {
    /// Hands over a snapshot without waiting. Returns false when the actor's
    /// queue is full and the snapshot was dropped (stats are soft state).
    pub fn snapshot(&self, snap: SystemStatsSnapshot, received_at: f64) -> bool {
        self.tx
            .try_send(Command::Snapshot(Box::new(snap), received_at))
            .is_ok()
    }

    /// Hands over a `loop.health` without waiting.
    pub fn agent_health(&self, host: String, health: LoopHealth, at: f64) {
        let _ = self
            .tx
            .try_send(Command::Health(host, Box::new(health), at));
    }

    /// Hands over a `loop.failure` without waiting.
    pub fn agent_failure(&self, host: String, failure: LoopFailure, at: f64) {
        let _ = self
            .tx
            .try_send(Command::Failure(host, Box::new(failure), at));
    }

    /// Every known host, sorted by id.
    pub async fn list(&self) -> Result<Vec<HostSummary>, FleetGone> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::List(tx))
            .await
            .map_err(|_| FleetGone)?;
        rx.await.map_err(|_| FleetGone)
    }

    /// One host's detail, if known.
    pub async fn get(&self, host_id: String) -> Result<Option<HostDetail>, FleetGone> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Get(host_id, tx))
            .await
            .map_err(|_| FleetGone)?;
        rx.await.map_err(|_| FleetGone)
    }
}
