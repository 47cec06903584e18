//! The scheduler: the one task that owns the lease [`Book`](crate::lease::Book)
//! (so admission is serialised without locks), fed by a channel. It applies
//! host views pushed by the fleet, expires leases on its own timer, and
//! carries out the book's effects: lease events on NATS and audit records
//! batched to Postgres.

mod actor;
mod effects;

pub use actor::{spawn, SchedulerConfig};
pub use effects::EffectsConfig;

use lull_common::msg::lease::{
    CancelRequest, HeartbeatResponse, HeavyLeaseRequest, HeavyLeaseResponse, LeaseHandle,
    OkResponse, ProgressReport, ReleaseRequest, RevokeRequest, SchedulerStatus,
};
use tokio::sync::{mpsc, oneshot};

use crate::lease::BookError;

/// The scheduler task is gone (shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the scheduler has stopped")]
pub struct SchedulerGone;

/// A failed lease operation: gone, or refused by the book.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The scheduler stopped.
    #[error(transparent)]
    Gone(#[from] SchedulerGone),
    /// The book refused (unknown lease, wrong token, ...).
    #[error(transparent)]
    Book(#[from] BookError),
}

type Reply<T> = oneshot::Sender<Result<T, BookError>>;

/// A message to the scheduler.
#[derive(Debug)]
pub enum Command {
    /// `lease.request`.
    Request(Box<HeavyLeaseRequest>, oneshot::Sender<HeavyLeaseResponse>),
    /// `lease.heartbeat`.
    Heartbeat(LeaseHandle, Reply<HeartbeatResponse>),
    /// `lease.release`.
    Release(ReleaseRequest, Reply<OkResponse>),
    /// `lease.report`.
    Report(Box<ProgressReport>, Reply<OkResponse>),
    /// `lease.revoke`.
    Revoke(RevokeRequest, Reply<OkResponse>),
    /// `lease.cancel`.
    Cancel(CancelRequest, Reply<OkResponse>),
    /// `scheduler.status`.
    Status(oneshot::Sender<SchedulerStatus>),
}

/// Cheap, cloneable handle to the scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerHandle {
    tx: mpsc::Sender<Command>,
}

impl SchedulerHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SchedulerGone> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| SchedulerGone)?;
        rx.await.map_err(|_| SchedulerGone)
    }

    /// Asks for a lease.
    pub async fn request(&self, r: HeavyLeaseRequest) -> Result<HeavyLeaseResponse, SchedulerGone> {
        self.ask(|tx| Command::Request(Box::new(r), tx)).await
    }

    /// Heartbeats a lease.
    pub async fn heartbeat(&self, h: LeaseHandle) -> Result<HeartbeatResponse, CallError> {
        Ok(self.ask(|tx| Command::Heartbeat(h, tx)).await??)
    }

    /// Releases a lease.
    pub async fn release(&self, r: ReleaseRequest) -> Result<OkResponse, CallError> {
        Ok(self.ask(|tx| Command::Release(r, tx)).await??)
    }

    /// Reports progress.
    pub async fn report(&self, r: ProgressReport) -> Result<OkResponse, CallError> {
        Ok(self.ask(|tx| Command::Report(Box::new(r), tx)).await??)
    }

    /// Revokes a lease.
    pub async fn revoke(&self, r: RevokeRequest) -> Result<OkResponse, CallError> {
        Ok(self.ask(|tx| Command::Revoke(r, tx)).await??)
    }

    /// Cancels a queued request.
    pub async fn cancel(&self, r: CancelRequest) -> Result<OkResponse, CallError> {
        Ok(self.ask(|tx| Command::Cancel(r, tx)).await??)
    }

    /// The scheduler's status.
    pub async fn status(&self) -> Result<SchedulerStatus, SchedulerGone> {
        self.ask(Command::Status).await
    }
}
