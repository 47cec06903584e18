//! Hand-off of durable records to their owner: a batch of decoded reports
//! that the owning actor answers once it has committed them (or failed to),
//! so that the JetStream consumer acks only what is stored.

use tokio::sync::oneshot;

/// A batch handed to an owning actor; it answers on `done` after its commit.
#[derive(Debug)]
pub struct Batch<T> {
    /// The records, in stream order.
    pub items: Vec<T>,
    /// `Ok` once committed, `Err` with the reason otherwise.
    pub done: oneshot::Sender<Result<(), String>>,
}
