//! Lease endpoints: `lease.request`, `lease.heartbeat`, `lease.release`,
//! `lease.report`, `lease.revoke`, `lease.cancel` and `scheduler.status`,
//! answered by the scheduler. A denial is a normal reply; an unknown lease
//! is `not_found` and a wrong token `forbidden`.

use lull_common::msg::lease::{
    CancelRequest, HeavyLeaseRequest, LeaseHandle, ProgressReport, ReleaseRequest, RevokeRequest,
};
use lull_common::subjects::endpoints as ep;
use lull_common::ErrorReply;

use super::{gone, Deps};
use crate::scheduler::{CallError, SchedulerHandle};
use crate::service::{err, typed, Empty, Handler};

fn call_error(e: CallError) -> ErrorReply {
    match e {
        CallError::Gone(g) => gone(g),
        CallError::Book(b) => err(b.code(), b.to_string()),
    }
}

/// The lease endpoints with their handlers.
pub fn endpoints(deps: &Deps) -> Vec<(&'static str, Handler)> {
    let max = deps.max_payload;
    let s = deps.scheduler.clone();
    macro_rules! op {
        ($req:ty, $method:ident) => {{
            let s: SchedulerHandle = s.clone();
            typed(max, move |r: $req| {
                let s = s.clone();
                async move { s.$method(r).await.map_err(call_error) }
            })
        }};
    }
    let request = {
        let s = s.clone();
        typed(max, move |r: HeavyLeaseRequest| {
            let s = s.clone();
            async move { s.request(r).await.map_err(gone) }
        })
    };
    let status = {
        let s = s.clone();
        typed(max, move |_: Empty| {
            let s = s.clone();
            async move { s.status().await.map_err(gone) }
        })
    };
    vec![
        (ep::LEASE_REQUEST, request),
        (ep::LEASE_HEARTBEAT, op!(LeaseHandle, heartbeat)),
        (ep::LEASE_RELEASE, op!(ReleaseRequest, release)),
        (ep::LEASE_REPORT, op!(ProgressReport, report)),
        (ep::LEASE_REVOKE, op!(RevokeRequest, revoke)),
        (ep::LEASE_CANCEL, op!(CancelRequest, cancel)),
        (ep::SCHEDULER_STATUS, status),
    ]
}
