//! Lease client SDK (docs/protocol.md §3 leases): [`LeaseClient::acquire`] asks
//! the coordinator for a heavy-work lease and returns a [`LeaseGuard`] that
//! heartbeats in the background, listens on `lull.lease.events.<lease_id>`
//! and exposes a revoke or expiry as a future ([`LeaseGuard::revoked`]) and
//! as a [`CancellationToken`](tokio_util::sync::CancellationToken). The
//! guard is released explicitly with an
//! outcome ([`LeaseGuard::release`]) or, best effort, when it is dropped.
//! [`LeaseClient::acquire_wait`] waits for a grant, either by retrying while
//! honouring `retry_after_sec` (with jitter) or through the coordinator's
//! queue (`wait: true`, then the `GRANTED` event).
//!
//! The decisions (how long to wait, what a heartbeat reply or an event
//! means) are pure functions in [`plan`]; the rest is the NATS shell.
//!
//! Modules: `config`, `errors`, [`plan`] (pure decisions), `retry`
//! (shell helpers), `client` (requests, operator calls), `acquire`
//! (acquiring and waiting) and `guard` (the held lease).

mod acquire;
mod client;
mod config;
mod errors;
mod guard;
pub mod plan;
mod retry;

pub use client::LeaseClient;
pub use config::LeaseClientConfig;
pub use errors::{AcquireError, Denial, LeaseEnd, LeaseError, WaitProgress};
pub use guard::LeaseGuard;

#[cfg(test)]
mod tests {
    use super::plan::*;
    use super::retry::jitter_unit;
    use super::*;
    use lull_proto::error::ErrorCode;
    use lull_proto::msg::lease::{
        DenyReason, HeartbeatResponse, HeavyLeaseRequest, HeavyLeaseResponse, LeaseEvent,
        LeaseEventKind, LeaseLimits, LeaseState,
    };
    use lull_proto::validate::Validate;

    fn cfg() -> LeaseClientConfig {
        LeaseClientConfig::default()
    }

    #[test]
    fn retry_delay_honours_the_hint_with_jitter_and_bounds() {
        let c = cfg();
        assert_eq!(retry_delay(Some(12.0), 100.0, &c, 0.0), 12.0);
        let d = retry_delay(Some(12.0), 100.0, &c, 0.5);
        assert!((d - 13.2).abs() < 1e-9, "{d}");
        // Never earlier than asked, at most 20 % later.
        for j in [0.0, 0.3, 0.999] {
            let d = retry_delay(Some(10.0), 100.0, &c, j);
            assert!((10.0..=12.0).contains(&d), "{d}");
        }
        // Bounds.
        assert_eq!(retry_delay(Some(0.01), 100.0, &c, 0.0), 0.5);
        assert_eq!(retry_delay(Some(1e9), 1e9, &c, 0.0), 300.0);
        assert_eq!(retry_delay(None, 100.0, &c, 0.0), 5.0);
        assert_eq!(retry_delay(Some(f64::NAN), 100.0, &c, 0.0), 5.0);
        // Never past the deadline.
        assert_eq!(retry_delay(Some(30.0), 4.0, &c, 0.9), 4.0);
        assert_eq!(retry_delay(Some(30.0), -1.0, &c, 0.9), 0.0);
        // Bad jitter is ignored or clamped.
        assert_eq!(retry_delay(Some(10.0), 100.0, &c, f64::NAN), 10.0);
        assert_eq!(retry_delay(Some(10.0), 100.0, &c, 7.0), 12.0);
    }

    #[test]
    fn heartbeat_interval_follows_the_grant() {
        let c = cfg();
        let l = |i, t| LeaseLimits {
            heartbeat_interval_sec: i,
            heartbeat_ttl_sec: t,
        };
        assert_eq!(heartbeat_interval(Some(&l(10.0, 30.0)), &c), 10.0);
        // Capped at half the TTL.
        assert_eq!(heartbeat_interval(Some(&l(25.0, 30.0)), &c), 15.0);
        // Floor.
        assert_eq!(heartbeat_interval(Some(&l(0.001, 30.0)), &c), 0.1);
        // Nonsense falls back to the default, still capped by the TTL.
        assert_eq!(heartbeat_interval(Some(&l(-1.0, 8.0)), &c), 4.0);
        assert_eq!(heartbeat_interval(None, &c), 10.0);
        assert_eq!(heartbeat_retry(10.0, &c), 1.0);
        assert_eq!(heartbeat_retry(0.5, &c), 0.5);
    }

    fn hb(ok: bool, state: LeaseState, token: Option<&str>) -> HeartbeatResponse {
        HeartbeatResponse {
            ok,
            state,
            expires_at: Some(100.0),
            reason: (!ok).then(|| "why".to_string()),
            token: token.map(str::to_string),
        }
    }

    #[test]
    fn heartbeat_replies_are_interpreted() {
        assert_eq!(
            on_heartbeat(&hb(true, LeaseState::Active, None)),
            Beat::Alive {
                expires_at: Some(100.0),
                new_token: None
            }
        );
        assert_eq!(
            on_heartbeat(&hb(true, LeaseState::Active, Some("t2"))),
            Beat::Alive {
                expires_at: Some(100.0),
                new_token: Some("t2".into())
            }
        );
        assert_eq!(
            on_heartbeat(&hb(false, LeaseState::Revoked, None)),
            Beat::Ended(LeaseEnd::Revoked {
                reason: Some("why".into())
            })
        );
        assert_eq!(
            on_heartbeat(&hb(false, LeaseState::Expired, None)),
            Beat::Ended(LeaseEnd::Expired {
                reason: Some("why".into())
            })
        );
        assert!(matches!(
            on_heartbeat(&hb(false, LeaseState::Active, None)),
            Beat::Ended(LeaseEnd::Lost { .. })
        ));
        assert!(matches!(
            on_heartbeat_error(Some(ErrorCode::NotFound), "unknown lease L1"),
            Beat::Ended(LeaseEnd::Lost { .. })
        ));
        assert!(matches!(
            on_heartbeat_error(Some(ErrorCode::Forbidden), "bad token"),
            Beat::Ended(LeaseEnd::Lost { .. })
        ));
        assert!(matches!(
            on_heartbeat_error(Some(ErrorCode::Unavailable), "x"),
            Beat::Retry(_)
        ));
        assert!(matches!(
            on_heartbeat_error(None, "no responders"),
            Beat::Retry(_)
        ));
    }

    fn ev(id: &str, kind: LeaseEventKind) -> LeaseEvent {
        LeaseEvent {
            lease_id: id.into(),
            event: kind,
            at: 1.0,
            host_id: Some("h".into()),
            addon_id: None,
            reason: Some("operator".into()),
            expires_at: None,
            limits: None,
            epoch: None,
        }
    }

    #[test]
    fn events_end_a_held_lease() {
        assert_eq!(on_event("L1", &ev("L1", LeaseEventKind::Granted)), None);
        assert_eq!(on_event("L1", &ev("L2", LeaseEventKind::Revoked)), None);
        assert_eq!(
            on_event("L1", &ev("L1", LeaseEventKind::Revoked)),
            Some(LeaseEnd::Revoked {
                reason: Some("operator".into())
            })
        );
        assert_eq!(
            on_event("L1", &ev("L1", LeaseEventKind::Expired))
                .unwrap()
                .state(),
            LeaseState::Expired
        );
        assert_eq!(
            on_event("L1", &ev("L1", LeaseEventKind::Released))
                .unwrap()
                .state(),
            LeaseState::Released
        );
    }

    #[test]
    fn queue_steps() {
        assert_eq!(
            queue_event("L1", &ev("L1", LeaseEventKind::Granted)),
            QueueStep::Granted
        );
        assert_eq!(
            queue_event("L1", &ev("L9", LeaseEventKind::Granted)),
            QueueStep::Waiting
        );
        assert!(matches!(
            queue_event("L1", &ev("L1", LeaseEventKind::Revoked)),
            QueueStep::Withdrawn(_)
        ));
        assert!(matches!(
            queue_event("L1", &ev("L1", LeaseEventKind::Expired)),
            QueueStep::GivenUp(_)
        ));
        let granted = hb(true, LeaseState::Active, Some("t2"));
        assert_eq!(queue_probe(Ok(&granted)), QueueStep::Granted);
        let gone = hb(false, LeaseState::Expired, None);
        assert!(matches!(queue_probe(Ok(&gone)), QueueStep::GivenUp(_)));
        let revoked = hb(false, LeaseState::Revoked, None);
        assert!(matches!(queue_probe(Ok(&revoked)), QueueStep::Withdrawn(_)));
        assert_eq!(
            queue_probe(Err((Some(ErrorCode::InvalidRequest), "still queued"))),
            QueueStep::Waiting
        );
        assert_eq!(queue_probe(Err((None, "timeout"))), QueueStep::Waiting);
        assert!(matches!(
            queue_probe(Err((Some(ErrorCode::NotFound), "unknown"))),
            QueueStep::Withdrawn(_)
        ));
    }

    #[test]
    fn denial_display_has_code_and_retry() {
        let r = HeavyLeaseResponse {
            approved: false,
            reason: Some("Capacity exceeded: used=60, requested=30, capacity=70".into()),
            reason_code: Some(DenyReason::CapacityExceeded),
            retry_after_sec: Some(12.0),
            ..Default::default()
        };
        let d = Denial::from_response(&r);
        assert_eq!(
            d.to_string(),
            "Capacity exceeded: used=60, requested=30, capacity=70 (capacity_exceeded), retry after 12.0s"
        );
        let e = AcquireError::TimedOut { last: Some(d) };
        assert!(e.to_string().contains("capacity_exceeded"));
        assert_eq!(
            Denial::from_response(&HeavyLeaseResponse::default()).code_str(),
            "denied"
        );
    }

    #[test]
    fn jitter_is_in_unit_interval_and_varies() {
        let xs: Vec<f64> = (0..64).map(|_| jitter_unit()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let first = xs[0];
        assert!(xs.iter().any(|x| (*x - first).abs() > 1e-9));
    }

    #[test]
    fn config_defaults_and_partial_override() {
        let c: LeaseClientConfig = serde_json::from_str(r#"{"retry_jitter": 0.5}"#).unwrap();
        assert_eq!(c.retry_jitter, 0.5);
        assert_eq!(c.request_timeout_sec, 5.0);
    }

    #[test]
    fn invalid_requests_are_refused_before_sending() {
        // No server is needed: validation happens first. A client that
        // cannot connect is not constructible without a server, so check
        // the rule the SDK relies on.
        let r = HeavyLeaseRequest {
            addon_id: "bad addon".into(),
            job_type: "j".into(),
            host_id: None,
            cost_units: Some(10),
            cost_class: None,
            expected_duration_sec: None,
            priority: Default::default(),
            constraints: Default::default(),
            wait: false,
            wait_timeout_sec: None,
        };
        assert!(r.validate().is_err());
    }
}
