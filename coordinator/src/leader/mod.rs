//! Leadership: which coordinator decides. Every coordinator runs an
//! [`election`] task; exactly one at a time holds the leader lock and an
//! epoch (the fencing term). The rest of the process watches a [`Role`]
//! and checks the leader's local deadline before every decision, so a
//! leader that was paused or cut off from Postgres stops deciding before a
//! standby can take over. See docs/ha.md for the safety argument.

pub mod election;
pub mod endpoint;
pub(crate) mod metrics;
pub mod scope;

use std::time::Instant;

use tokio::sync::watch;

pub use election::{spawn, ElectionConfig};

/// What this instance is right now.
#[derive(Debug, Clone, PartialEq)]
pub enum Role {
    /// Not leading (the leader, if any, is another instance).
    Standby,
    /// Leading in `epoch` until `deadline` (this process's monotonic
    /// clock) unless a renewal moves it later.
    Leader {
        /// The fencing term of this leadership.
        epoch: u64,
        /// After this instant nothing may be decided as leader.
        deadline: Instant,
    },
}

impl Role {
    /// The epoch, when leading and still inside the deadline at `now`.
    pub fn leading_at(&self, now: Instant) -> Option<u64> {
        match self {
            Role::Leader {
                epoch, deadline, ..
            } if now < *deadline => Some(*epoch),
            _ => None,
        }
    }
}

/// A cheap handle on this instance's role, for the tasks that must only
/// act as leader.
#[derive(Debug, Clone)]
pub struct Leadership {
    rx: watch::Receiver<Role>,
    instance: String,
}

impl Leadership {
    /// A handle over a role channel.
    pub fn new(rx: watch::Receiver<Role>, instance: impl Into<String>) -> Self {
        Leadership {
            rx,
            instance: instance.into(),
        }
    }

    /// This instance's id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The epoch if this instance leads now (deadline checked).
    pub fn epoch_now(&self) -> Option<u64> {
        self.rx.borrow().leading_at(Instant::now())
    }

    /// The underlying channel, for `changed()` in a select loop.
    pub fn watch(&self) -> watch::Receiver<Role> {
        self.rx.clone()
    }
}
