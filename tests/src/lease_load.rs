//! A steady lease load for failover tests and the failover bench: each
//! client requests a lease on `h1`, heartbeats it for a while (retrying
//! through a moment without a leader), releases it, and records what it
//! saw for the [`checker`](crate::checker).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lull_proto::msg::lease::{HeartbeatResponse, HeavyLeaseResponse, OkResponse};
use lull_proto::subjects::endpoints as ep;
use lull_proto::Subjects;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::checker::Obs;

/// What the load's clients saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Grants received and ends caused, for the checker.
    pub obs: Vec<Obs>,
    /// Leases refused on a heartbeat while their holder still held them.
    pub lost: Vec<String>,
    /// Unix seconds of every answered request.
    pub answers: Vec<f64>,
}

async fn call<B: Serialize, R: DeserializeOwned>(
    client: &async_nats::Client,
    endpoint: &str,
    body: &B,
    timeout: Duration,
) -> Option<R> {
    lull_client::request::request(
        client,
        Subjects::default().endpoint(endpoint),
        body,
        timeout,
    )
    .await
    .ok()
}

/// Asks for `units` on `h1` as `addon`; `None` when nothing answered in
/// time (no leader for a moment).
pub async fn request(
    client: &async_nats::Client,
    addon: &str,
    units: u32,
) -> Option<HeavyLeaseResponse> {
    let body = json!({"addon_id": addon, "job_type": "j", "host_id": "h1", "cost_units": units});
    call(client, ep::LEASE_REQUEST, &body, Duration::from_millis(800)).await
}

/// Releases a lease, retrying for about two seconds.
pub async fn release(client: &async_nats::Client, id: &str, token: &str) {
    for _ in 0..20 {
        let body = json!({"lease_id": id, "token": token});
        let r: Option<OkResponse> =
            call(client, ep::LEASE_RELEASE, &body, Duration::from_millis(800)).await;
        if r.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One client of the load, until `stop`.
pub async fn client(
    client: async_nats::Client,
    name: String,
    stop: CancellationToken,
    seen: Arc<Mutex<Seen>>,
) {
    let now = lull_common::runtime::now_unix;
    let record = |f: &dyn Fn(&mut Seen)| {
        if let Ok(mut s) = seen.lock() {
            f(&mut s);
        }
    };
    let mut n = 0u64;
    while !stop.is_cancelled() {
        n += 1;
        let units = 5 + (n % 3) as u32 * 5;
        let Some(r) = request(&client, &name, units).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let t = now();
        record(&|s| s.answers.push(t));
        let (Some(id), Some(mut token), true) = (r.lease_id.clone(), r.token.clone(), r.approved)
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let granted = Obs::Granted {
            at: now(),
            lease_id: id.clone(),
            host_id: r.host_id.clone().unwrap_or_else(|| "h1".into()),
            units: Some(units),
            from_event: false,
        };
        record(&|s| s.obs.push(granted.clone()));
        let hold_until = tokio::time::Instant::now() + Duration::from_millis(400 + (n % 5) * 300);
        while tokio::time::Instant::now() < hold_until {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let body = json!({"lease_id": id, "token": token});
            // Transient silence (no leader for a moment) is retried.
            let hb: Option<HeartbeatResponse> = call(
                &client,
                ep::LEASE_HEARTBEAT,
                &body,
                Duration::from_millis(800),
            )
            .await;
            if let Some(hb) = hb {
                if !hb.ok {
                    let lost = format!("{id}: {hb:?}");
                    record(&|s| s.lost.push(lost.clone()));
                    break;
                }
                if let Some(t) = hb.token {
                    token = t;
                }
            }
        }
        // The holder stops before it releases.
        let ended = Obs::Ended {
            at: now(),
            lease_id: id.clone(),
        };
        record(&|s| s.obs.push(ended.clone()));
        release(&client, &id, &token).await;
    }
}

/// Turns a lease event into a checker observation.
pub fn observe(ev: lull_proto::msg::lease::LeaseEvent) -> Obs {
    use lull_proto::msg::lease::LeaseEventKind;
    match ev.event {
        LeaseEventKind::Granted => Obs::Granted {
            at: ev.at,
            lease_id: ev.lease_id,
            host_id: ev.host_id.unwrap_or_default(),
            units: None,
            from_event: true,
        },
        _ => Obs::Ended {
            at: ev.at,
            lease_id: ev.lease_id,
        },
    }
}
