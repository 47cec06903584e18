//! The table of `lull.v1.*` endpoints served by handlers: each owner of
//! state (fleet, builds, executions) binds its endpoint names to thin
//! handlers in its own `endpoints` module; this module only gathers them.
//! The lease endpoints are the exception: the scheduler actor reads them
//! itself (see `scheduler::endpoints`).

use crate::fleet::FleetHandle;
use crate::service::Handler;

/// Handles the endpoints need.
#[derive(Clone)]
pub struct Deps {
    /// The fleet actor.
    pub fleet: FleetHandle,
    /// Largest accepted request.
    pub max_payload: usize,
    /// History storage (history, streaks, forecast, health, blocks).
    pub history: crate::store::history::HistoryStore,
    /// The workers' state (worker queries).
    pub workers: crate::executions::WorkersHandle,
    /// The regions actor.
    pub regions: crate::builds::RegionsHandle,
}

/// Every endpoint served by a handler (all but the lease endpoints).
pub fn all(deps: &Deps) -> Vec<(&'static str, Handler)> {
    let mut v = Vec::new();
    v.extend(crate::fleet::endpoints::endpoints(
        &deps.fleet,
        &deps.history,
        deps.max_payload,
    ));
    v.extend(crate::builds::endpoints::endpoints(
        &deps.regions,
        deps.max_payload,
    ));
    v.extend(crate::executions::endpoints::endpoints(
        deps.workers.clone(),
        deps.max_payload,
    ));
    v
}
