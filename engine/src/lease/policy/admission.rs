//! Admission of a new request as a whole, as one pure decision: the
//! restart grace period comes first, then the rules ([`super::decide`])
//! with the addon's rate-limit bucket; whether the request takes a bucket
//! token; and whether a denial parks the request in the wait queue or is
//! the answer. The book reads its state into the inputs, calls
//! [`admit_request`] and applies the [`Ruling`].

use std::collections::BTreeMap;

use lull_proto::msg::lease::{DenyReason, HeavyLeaseRequest};

use super::rules::decide;
use super::verdict::{Decision, Denial, Grant};
use super::view::{BookView, HostView};
use crate::lease::config::LeaseConfig;

/// What to do with a new request.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Grant it now.
    Grant(Grant),
    /// Park it in the wait queue (it asked to wait); the denial is why it
    /// waits and when to look again.
    Queue(Denial),
    /// Deny it.
    Deny(Denial),
}

/// The policy's ruling on a new request: the admission, and whether the
/// request takes a token from its addon's bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Ruling {
    /// Grant, queue or deny.
    pub admission: Admission,
    /// Take one token from the addon's bucket. Every request outside the
    /// grace period that the rate limit did not refuse takes one, whatever
    /// the answer.
    pub take_token: bool,
}

/// Decides a new request: denied (or queued) with `grace_period` while
/// `now` is before `grace_until`; otherwise judged by [`decide`], whose
/// addon view carries the bucket's wait (`rate_wait_sec`).
pub fn admit_request(
    req: &HeavyLeaseRequest,
    grace_until: Option<f64>,
    hosts: &BTreeMap<String, HostView>,
    book: &BookView<'_>,
    cfg: &LeaseConfig,
    now: f64,
) -> Ruling {
    if let Some(until) = grace_until.filter(|g| now < *g) {
        return Ruling {
            admission: queue_or_deny(req, grace_denial(req, until, cfg, now)),
            take_token: false,
        };
    }
    let admission = match decide(req, hosts, book, cfg, now) {
        Decision::Grant(g) => Admission::Grant(g),
        Decision::Deny(d) => queue_or_deny(req, d),
    };
    Ruling {
        admission,
        take_token: book.addon.rate_wait_sec.is_none(),
    }
}

/// A denied request that asked to wait is queued, unless the rate limit
/// refused it (waiting would defeat the limit).
pub fn queue_or_deny(req: &HeavyLeaseRequest, d: Denial) -> Admission {
    if !req.wait || d.code == DenyReason::RateLimited {
        Admission::Deny(d)
    } else {
        Admission::Queue(d)
    }
}

/// The `grace_period` denial while the grace period lasts until `until`.
pub fn grace_denial(req: &HeavyLeaseRequest, until: f64, cfg: &LeaseConfig, now: f64) -> Denial {
    let left = until - now;
    Denial {
        code: DenyReason::GracePeriod,
        reason: format!(
            "Coordinator restarted; re-admitting existing leases for {left:.0}s more before new grants"
        ),
        retry_after_sec: cfg.clamp_retry(left),
        host_id: req.host_id.clone(),
    }
}

/// The denial of a request that should have been queued but the queue
/// (holding at most `max`) is full.
pub fn queue_full(mut d: Denial, max: usize) -> Denial {
    d.reason = format!("{}; the wait queue is full ({max})", d.reason);
    d
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use lull_proto::msg::hosts::QuietState;
    use lull_proto::msg::lease::{Constraints, Priority};

    use super::*;
    use crate::lease::policy::view::{AddonLoad, HostLoad};

    const NOW: f64 = 1_000_000.0;

    fn req(wait: bool) -> HeavyLeaseRequest {
        HeavyLeaseRequest {
            addon_id: "indexer".into(),
            job_type: "reindex".into(),
            host_id: Some("h1".into()),
            cost_units: Some(30),
            cost_class: None,
            expected_duration_sec: None,
            priority: Priority::Normal,
            constraints: Constraints::default(),
            wait,
            wait_timeout_sec: None,
        }
    }

    fn rule(
        r: &HeavyLeaseRequest,
        state: QuietState,
        grace: Option<f64>,
        rate: Option<f64>,
    ) -> Ruling {
        let mut hosts = BTreeMap::new();
        hosts.insert("h1".to_string(), HostView::new("h1", state, 90.0, 4, NOW));
        let loads: HashMap<String, HostLoad> = HashMap::new();
        let addon = AddonLoad {
            rate_wait_sec: rate,
            ..AddonLoad::default()
        };
        let view = BookView {
            addon: &addon,
            loads: &loads,
        };
        admit_request(r, grace, &hosts, &view, &LeaseConfig::default(), NOW)
    }

    fn code(a: &Admission) -> Option<DenyReason> {
        match a {
            Admission::Grant(_) => None,
            Admission::Queue(d) | Admission::Deny(d) => Some(d.code),
        }
    }

    #[test]
    fn grants_and_takes_a_token() {
        let r = rule(&req(false), QuietState::Quiet, None, None);
        assert!(matches!(r.admission, Admission::Grant(ref g) if g.units == 30));
        assert!(r.take_token);
    }

    #[test]
    fn grace_period_denies_or_queues_without_a_token() {
        let r = rule(&req(false), QuietState::Quiet, Some(NOW + 12.0), None);
        let Admission::Deny(d) = &r.admission else {
            panic!("expected a denial, got {:?}", r.admission);
        };
        assert_eq!(d.code, DenyReason::GracePeriod);
        assert_eq!(
            d.reason,
            "Coordinator restarted; re-admitting existing leases for 12s more before new grants"
        );
        assert_eq!(d.host_id.as_deref(), Some("h1"));
        assert!(!r.take_token);
        let r = rule(&req(true), QuietState::Quiet, Some(NOW + 12.0), None);
        assert!(
            matches!(r.admission, Admission::Queue(ref d) if d.code == DenyReason::GracePeriod)
        );
        assert!(!r.take_token);
        // A grace period that has ended is no longer a reason.
        let r = rule(&req(false), QuietState::Quiet, Some(NOW), None);
        assert!(matches!(r.admission, Admission::Grant(_)));
    }

    #[test]
    fn rate_limited_is_denied_even_when_waiting_and_takes_no_token() {
        let r = rule(&req(true), QuietState::Quiet, None, Some(0.4));
        assert!(matches!(r.admission, Admission::Deny(ref d) if d.code == DenyReason::RateLimited));
        assert!(!r.take_token);
    }

    #[test]
    fn other_denials_queue_when_asked_and_still_take_a_token() {
        let r = rule(&req(true), QuietState::Busy, None, None);
        assert!(matches!(r.admission, Admission::Queue(_)));
        assert_eq!(code(&r.admission), Some(DenyReason::NotQuiet));
        assert!(r.take_token);
        let r = rule(&req(false), QuietState::Busy, None, None);
        assert!(matches!(r.admission, Admission::Deny(_)));
        assert!(r.take_token);
    }

    #[test]
    fn queue_full_names_the_bound() {
        let d = Denial {
            code: DenyReason::NotQuiet,
            reason: "System is BUSY".into(),
            retry_after_sec: 5.0,
            host_id: None,
        };
        assert_eq!(
            queue_full(d, 3).reason,
            "System is BUSY; the wait queue is full (3)"
        );
    }
}
