//! The scheduler: the one task that owns the lease [`Book`](lull_engine::lease::Book),
//! so admission is serialised without locks. It reads the lease endpoints'
//! request streams itself and answers them in place, applies host views
//! pushed by the fleet, and expires leases on its own timer. What the book
//! asks the shell to do goes to two helper tasks that never hold it up:
//! [`events`] publishes lease events on NATS, [`audit`] writes audit rows
//! to Postgres in batches.

mod actor;
pub mod audit;
pub mod endpoints;
pub mod events;
pub(crate) mod metrics;

pub use actor::{spawn, SchedulerConfig, SchedulerIo};
pub use audit::AuditConfig;
