//! The fleet: per-host state (latest snapshot, quiet tracker, streak
//! builder, agent telemetry, first and last seen, forecast hint) and the
//! operator blocks, owned by one actor task. Everything else talks to it
//! through a [`FleetHandle`]. The actor feeds the history writer and the
//! lease book's host views; it never awaits the database.

mod actor;
pub mod drain;
pub mod endpoints;
pub mod forecast;
mod history;
mod host;
mod host_table;
pub(crate) mod metrics;
mod order;
mod queries;
mod roster;
pub mod views;

pub use actor::{spawn, FleetConfig};
pub use views::{ViewFilter, ViewSignals};

use lull_proto::msg::hosts::{BlockReply, HostDetail};
use lull_proto::msg::page::HostPage;
use lull_proto::msg::stats::SystemStatsSnapshot;
use lull_proto::msg::telemetry::{LoopFailure, LoopHealth};
use tokio::sync::{mpsc, oneshot};

use lull_engine::quiet::blocks::{Block, BlockCursor, Blocks, Target};
use lull_engine::quiet::health::HostFacts;
use lull_engine::quiet::maintenance::Window;
use lull_engine::quiet::streaks::ClosedStreak;

/// What the fleet knows right now about one host's quiet history, beyond
/// what is stored: samples not yet handed to the writer and the streak in
/// progress.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveQuiet {
    /// Quiet samples `(t, score)` waiting to be written.
    pub pending: Vec<(f64, f64)>,
    /// The streak in progress, if the host is QUIET now.
    pub open_streak: Option<ClosedStreak>,
}

/// A message to the fleet actor.
#[derive(Debug)]
pub enum Command {
    /// A validated snapshot arrived.
    Snapshot(Box<SystemStatsSnapshot>, f64),
    /// An agent's `loop.health` arrived.
    Health(String, Box<LoopHealth>, f64),
    /// An agent's `loop.failure` arrived.
    Failure(String, Box<LoopFailure>, f64),
    /// A page of `hosts.list`: at most `limit` hosts after the id given.
    List(Option<String>, usize, oneshot::Sender<HostPage>),
    /// `hosts.get`.
    Get(String, oneshot::Sender<Option<HostDetail>>),
    /// Set (or replace) a block (already persisted).
    Block(Target, Block, oneshot::Sender<Applied<BlockReply>>),
    /// Lift a block (already deleted), and with `true` the target's
    /// maintenance windows too.
    Unblock(Target, bool, oneshot::Sender<Applied<BlockReply>>),
    /// Add a maintenance window (already persisted, with its id).
    AddWindow(Target, Window, oneshot::Sender<Applied<BlockReply>>),
    /// Remove a maintenance window (already deleted).
    RemoveWindow(i64, oneshot::Sender<Applied<BlockReply>>),
    /// The blocks in force and the windows.
    Blocks(BlockCursor, usize, oneshot::Sender<BlockReply>),
    /// A copy of every block and window (for forecasts).
    BlocksNow(oneshot::Sender<Blocks>),
    /// Replace every block (already persisted).
    ReplaceBlocks(Blocks, oneshot::Sender<Applied<BlockReply>>),
    /// Per-host facts of the health rollup.
    HealthFacts(oneshot::Sender<Vec<HostFacts>>),
    /// Unwritten quiet samples and the open streak of a host (`None` when
    /// the host is not known).
    LiveQuiet(String, oneshot::Sender<Option<LiveQuiet>>),
    /// Fresh forecast hints: the next predicted quiet window's start per
    /// host (hosts not listed have none).
    Forecasts(Vec<(String, Option<f64>)>),
    /// `hosts.forget`, first step: refused while the host reports;
    /// otherwise the lease book is asked to let it go.
    Forget(String, oneshot::Sender<ForgetStep>),
    /// `hosts.forget`, last step (the book let the host go): drop the host
    /// from memory, unless it reported again meanwhile (`true` when it was
    /// in memory).
    Drop(String, oneshot::Sender<Result<bool, String>>),
}

/// The first step of `hosts.forget`.
#[derive(Debug)]
pub enum ForgetStep {
    /// The host still reports.
    Refused(String),
    /// The lease book was asked; it answers on the receiver (`None` when
    /// there is no book).
    Asked(Option<oneshot::Receiver<Result<(), String>>>),
}

/// A reply, and the signal that the lease book has the views it changed
/// (`None` when there is no book).
pub type Applied<T> = (T, Option<oneshot::Receiver<()>>);

/// How long an operator change waits for the lease book to take its views.
const APPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits (bounded) until the lease book has the views of a change.
async fn in_force<T>((reply, applied): Applied<T>) -> T {
    if let Some(a) = applied {
        if tokio::time::timeout(APPLY_WAIT, a).await.is_err() {
            tracing::warn!("the lease book did not confirm a block change in time");
        }
    }
    reply
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

    /// Hands over a `loop.health` without waiting. Returns false when the
    /// actor's queue is full and the message was dropped; otherwise the
    /// actor counts it (`accepted`, or `unknown_host` when no snapshot of
    /// the host was seen).
    pub fn agent_health(&self, host: String, health: LoopHealth, at: f64) -> bool {
        self.tx
            .try_send(Command::Health(host, Box::new(health), at))
            .is_ok()
    }

    /// Hands over a `loop.failure` without waiting; as [`Self::agent_health`].
    pub fn agent_failure(&self, host: String, failure: LoopFailure, at: f64) -> bool {
        self.tx
            .try_send(Command::Failure(host, Box::new(failure), at))
            .is_ok()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, FleetGone> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| FleetGone)?;
        rx.await.map_err(|_| FleetGone)
    }

    /// At most `limit` known hosts sorted by id, after `after`, and the id
    /// to continue after when there are more.
    pub async fn list(&self, after: Option<String>, limit: usize) -> Result<HostPage, FleetGone> {
        self.ask(|tx| Command::List(after, limit, tx)).await
    }

    /// One host's detail, if known.
    pub async fn get(&self, host_id: String) -> Result<Option<HostDetail>, FleetGone> {
        self.ask(|tx| Command::Get(host_id, tx)).await
    }

    /// Applies a block that is already persisted; replies with every block
    /// once the lease book decides with it.
    pub async fn block(&self, target: Target, block: Block) -> Result<BlockReply, FleetGone> {
        Ok(in_force(self.ask(|tx| Command::Block(target, block, tx)).await?).await)
    }

    /// Lifts a block that is already deleted from storage (and, with
    /// `windows`, the target's maintenance windows); replies once the lease
    /// book decides without it.
    pub async fn unblock(&self, target: Target, windows: bool) -> Result<BlockReply, FleetGone> {
        Ok(in_force(self.ask(|tx| Command::Unblock(target, windows, tx)).await?).await)
    }

    /// Adds a maintenance window that is already persisted; replies once
    /// the lease book decides with it (when it is open now).
    pub async fn add_window(&self, target: Target, w: Window) -> Result<BlockReply, FleetGone> {
        Ok(in_force(self.ask(|tx| Command::AddWindow(target, w, tx)).await?).await)
    }

    /// Removes a maintenance window that is already deleted from storage;
    /// replies once the lease book decides without it.
    pub async fn remove_window(&self, id: i64) -> Result<BlockReply, FleetGone> {
        Ok(in_force(self.ask(|tx| Command::RemoveWindow(id, tx)).await?).await)
    }

    /// Replaces every block with `blocks` (as stored), as a new leader does
    /// before it decides.
    pub async fn replace_blocks(&self, blocks: Blocks) -> Result<BlockReply, FleetGone> {
        Ok(in_force(self.ask(|tx| Command::ReplaceBlocks(blocks, tx)).await?).await)
    }

    /// A page of the blocks in force and the maintenance windows: at most
    /// `limit` items after `cursor` (a host's blocks are never split).
    pub async fn blocks(&self, cursor: BlockCursor, limit: usize) -> Result<BlockReply, FleetGone> {
        self.ask(|tx| Command::Blocks(cursor, limit, tx)).await
    }

    /// A copy of every block and maintenance window.
    pub async fn blocks_now(&self) -> Result<Blocks, FleetGone> {
        self.ask(Command::BlocksNow).await
    }

    /// Per-host facts for the health rollup.
    pub async fn health_facts(&self) -> Result<Vec<HostFacts>, FleetGone> {
        self.ask(Command::HealthFacts).await
    }

    /// Unwritten quiet samples and the open streak of a host.
    pub async fn live_quiet(&self, host_id: String) -> Result<Option<LiveQuiet>, FleetGone> {
        self.ask(|tx| Command::LiveQuiet(host_id, tx)).await
    }

    /// Forgets a host that no longer reports and holds no lease: the
    /// fleet checks that it is silent, the lease book that it holds no
    /// active lease, then the fleet drops it. `Ok(false)` when the host is
    /// not in memory (never seen, or evicted); `Err` with the reason when
    /// refused.
    pub async fn forget(&self, host_id: String) -> Result<Result<bool, String>, FleetGone> {
        let asked = match self.ask(|tx| Command::Forget(host_id.clone(), tx)).await? {
            ForgetStep::Refused(why) => return Ok(Err(why)),
            ForgetStep::Asked(asked) => asked,
        };
        if let Some(rx) = asked {
            match tokio::time::timeout(APPLY_WAIT, rx).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(why))) => return Ok(Err(why)),
                Ok(Err(_)) => return Err(FleetGone),
                Err(_) => return Ok(Err("the lease book did not answer in time".into())),
            }
        }
        self.ask(|tx| Command::Drop(host_id, tx)).await
    }

    /// Hands over fresh forecast hints.
    pub async fn set_forecasts(&self, hints: Vec<(String, Option<f64>)>) -> Result<(), FleetGone> {
        self.tx
            .send(Command::Forecasts(hints))
            .await
            .map_err(|_| FleetGone)
    }
}
