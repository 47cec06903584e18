//! The table of `lull.v1.*` read endpoints that every coordinator answers
//! (leader and standbys alike): the fleet's hosts and quiet state, and the
//! lease decisions from the audit trail. Each
//! owner binds its endpoint names to thin handlers in its own `endpoints`
//! module; this module only gathers them. The leader's endpoints are served
//! by `leading` (operator blocks, regions, workers) and by the scheduler
//! actor itself (leases).

use crate::fleet::FleetHandle;
use crate::service::Handler;

/// Handles the endpoints need.
#[derive(Clone)]
pub struct Deps {
    /// The fleet actor.
    pub fleet: FleetHandle,
    /// Largest accepted request.
    pub max_payload: usize,
    /// Page sizes of the list endpoints.
    pub lists: crate::config::ListsConfig,
    /// History storage (history, streaks, forecast, health, blocks).
    pub history: crate::store::history::HistoryStore,
    /// This instance's role (`coordinator.leader`).
    pub leadership: crate::leader::Leadership,
    /// The database (`coordinator.leader` reads the election row).
    pub pool: deadpool_postgres::Pool,
    /// The senders whose snapshots stats ingest rejects.
    pub rejected: crate::ingest::rejected::RejectedView,
}

/// Every endpoint every instance serves.
pub fn all(deps: &Deps) -> Vec<(&'static str, Handler)> {
    let mut v = Vec::new();
    v.extend(crate::fleet::endpoints::endpoints(
        &deps.fleet,
        &deps.history,
        deps.lists,
        deps.max_payload,
    ));
    v.extend(crate::scheduler::decisions::endpoints(
        &deps.pool,
        deps.max_payload,
    ));
    v.extend(crate::ingest::rejected::endpoints(
        deps.rejected.clone(),
        deps.max_payload,
    ));
    v.extend(crate::leader::endpoint::endpoints(
        &deps.leadership,
        &deps.pool,
        deps.max_payload,
    ));
    v
}
