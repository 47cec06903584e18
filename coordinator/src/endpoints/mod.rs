//! The table of `lull.v1.*` endpoints, one file per domain: each binds an
//! endpoint name to a thin handler that asks the owning actor and shapes
//! the reply. The lease endpoints are the exception: the scheduler actor
//! reads them itself (see [`lease`]).

mod hosts;
pub mod lease;
mod quiet;
mod regions;
mod workers;

use lull_proto::error::ErrorCode;

use crate::fleet::FleetHandle;
use crate::service::{err, Handler};

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
    pub workers: crate::workers::WorkersHandle,
    /// The regions actor.
    pub regions: crate::regions::RegionsHandle,
}

/// The reply when an actor has stopped (the coordinator is shutting down).
pub(crate) fn gone<E>(_: E) -> lull_proto::ErrorReply {
    err(ErrorCode::Unavailable, "the coordinator is shutting down")
}

/// Every endpoint served by a handler (all but the lease endpoints).
pub fn all(deps: &Deps) -> Vec<(&'static str, Handler)> {
    let mut v = Vec::new();
    v.extend(hosts::endpoints(deps));
    v.extend(quiet::endpoints(deps));
    v.extend(regions::endpoints(deps));
    v.extend(workers::endpoints(deps));
    v
}
