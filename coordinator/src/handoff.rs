//! Hand-offs between owners: a batch of decoded reports that the owning
//! actor answers once it has committed them (or failed to), so that the
//! JetStream consumer acks only what is stored; and host views from the
//! fleet to the lease book, answered once the book has them, so that an
//! operator's block is in force before its reply.

use lull_engine::lease::HostView;
use tokio::sync::oneshot;

/// Host views from the fleet to the scheduler.
#[derive(Debug)]
pub struct Views {
    /// The views of the hosts that changed.
    pub views: Vec<HostView>,
    /// Answered once the lease book (or a standby's view store) has them,
    /// and every update sent before them.
    pub applied: Option<oneshot::Sender<()>>,
}

/// A batch handed to an owning actor; it answers on `done` after its commit.
#[derive(Debug)]
pub struct Batch<T> {
    /// The records, in stream order.
    pub items: Vec<T>,
    /// `Ok` once committed, `Err` with the reason otherwise.
    pub done: oneshot::Sender<Result<(), String>>,
}
