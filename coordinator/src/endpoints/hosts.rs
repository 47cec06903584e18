//! Host endpoints: `hosts.list` and `hosts.get`, answered by the fleet actor.

use lull_proto::error::ErrorCode;
use lull_proto::msg::hosts::HostGetRequest;
use lull_proto::subjects::endpoints as ep;

use super::{gone, Deps};
use crate::service::{err, typed, Empty, Handler};

/// The host endpoints with their handlers.
pub fn endpoints(deps: &Deps) -> Vec<(&'static str, Handler)> {
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
