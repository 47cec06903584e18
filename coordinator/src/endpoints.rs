//! The table of `lull.v1.*` endpoints: each name bound to a thin handler
//! that asks the owning actor and shapes the reply.

use lull_common::error::ErrorCode;
use lull_common::msg::hosts::HostGetRequest;
use lull_common::subjects::endpoints as ep;

use crate::fleet::{FleetGone, FleetHandle};
use crate::service::{err, typed, Empty, Handler};

/// Handles the endpoints need.
#[derive(Clone)]
pub struct Deps {
    /// The fleet actor.
    pub fleet: FleetHandle,
    /// Largest accepted request.
    pub max_payload: usize,
}

fn gone(_: FleetGone) -> lull_common::ErrorReply {
    err(ErrorCode::Unavailable, "the coordinator is shutting down")
}

/// Every endpoint with its handler.
pub fn all(deps: &Deps) -> Vec<(&'static str, Handler)> {
    let max = deps.max_payload;
    let fleet = deps.fleet.clone();
    let list = typed(max, move |_: Empty| {
        let fleet = fleet.clone();
        async move { fleet.list().await.map_err(gone) }
    });
    let fleet = deps.fleet.clone();
    let get = typed(max, move |req: HostGetRequest| {
        let fleet = fleet.clone();
        async move {
            match fleet.get(req.host_id.clone()).await.map_err(gone)? {
                Some(d) => Ok(d),
                None => Err(err(
                    ErrorCode::NotFound,
                    format!("host {:?} is not known", req.host_id),
                )),
            }
        }
    });
    vec![(ep::HOSTS_LIST, list), (ep::HOSTS_GET, get)]
}
