//! The scheduler: the one task that owns the lease [`Book`](lull_engine::lease::Book)
//! while this coordinator leads, so admission is serialised without locks.
//! It reads the lease endpoints' request streams itself and answers them in
//! place, applies host views pushed by the fleet, and expires leases on its
//! own timer. On a standby it keeps a [`replica`] of the leader's live
//! leases instead, so that a takeover starts from the exact live set. What the book
//! asks the shell to do goes to two helper tasks that never hold it up:
//! [`events`] publishes lease events on NATS, [`audit`] writes audit rows
//! to Postgres in batches; [`decisions`] reads that trail back. Changes of the wait queue are different: they
//! may not be lost, so [`queue`] writes them to Postgres and the answers
//! that report them wait for the commit.

mod actor;
pub mod audit;
pub mod decisions;
pub mod endpoints;
pub mod events;
mod follow;
mod gauges;
pub(crate) mod metrics;
pub mod queue;
pub mod replica;

pub use actor::{spawn, BookOpener, SchedulerConfig, SchedulerIo};
pub use audit::AuditConfig;
pub use follow::KeyLoader;
pub use queue::QueueConfig;
