//! Lease endpoints: `lease.request`, `lease.heartbeat`, `lease.release`,
//! `lease.report`, `lease.revoke`, `lease.cancel` and `scheduler.status`.
//!
//! They are answered inside the scheduler actor, which owns the
//! [`Book`]: the actor reads their request streams itself (no task and no
//! channel hop per request) and calls [`handle`], which decodes and
//! validates the payload, applies it to the book and encodes the reply. A
//! denial is a normal reply; an unknown lease is `not_found`, a wrong token
//! `forbidden`, and bad input `invalid_request` with the book untouched.

use lull_proto::msg::lease::{
    CancelRequest, HeavyLeaseRequest, HeavyLeaseResponse, LeaseHandle, ProgressReport,
    ReleaseRequest, RevokeRequest, SchedulerStatus,
};
use lull_proto::subjects::endpoints as ep;
use lull_proto::{ErrorCode, ErrorReply};
use serde::Serialize;

use crate::service::{decode_request, encode_reply, err, HandlerResult};
use lull_engine::lease::{Book, BookError, Effect, Outcome, StatusCursor};
use lull_proto::msg::page::PageRequest;

/// One lease endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseOp {
    /// `lease.request`.
    Request,
    /// `lease.heartbeat`.
    Heartbeat,
    /// `lease.release`.
    Release,
    /// `lease.report`.
    Report,
    /// `lease.revoke`.
    Revoke,
    /// `lease.cancel`.
    Cancel,
    /// `scheduler.status`.
    Status,
}

impl LeaseOp {
    /// Every lease endpoint.
    pub const ALL: [LeaseOp; 7] = [
        LeaseOp::Request,
        LeaseOp::Heartbeat,
        LeaseOp::Release,
        LeaseOp::Report,
        LeaseOp::Revoke,
        LeaseOp::Cancel,
        LeaseOp::Status,
    ];

    /// The endpoint name, relative to `lull.v1`.
    pub fn name(self) -> &'static str {
        match self {
            LeaseOp::Request => ep::LEASE_REQUEST,
            LeaseOp::Heartbeat => ep::LEASE_HEARTBEAT,
            LeaseOp::Release => ep::LEASE_RELEASE,
            LeaseOp::Report => ep::LEASE_REPORT,
            LeaseOp::Revoke => ep::LEASE_REVOKE,
            LeaseOp::Cancel => ep::LEASE_CANCEL,
            LeaseOp::Status => ep::SCHEDULER_STATUS,
        }
    }
}

/// The result of one lease request.
#[derive(Debug)]
pub struct Handled {
    /// The reply body or error reply.
    pub reply: HandlerResult,
    /// What the shell must publish and write.
    pub effects: Vec<Effect>,
    /// The decision, for `lease.request` that got as far as the book.
    pub decision: Option<DecisionLabels>,
}

/// How a `lease.request` ended, for the decision counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecisionLabels {
    /// `granted`, `queued` or `denied`.
    pub result: &'static str,
    /// The denial code, or `none`.
    pub reason: &'static str,
}

impl DecisionLabels {
    fn of(r: &HeavyLeaseResponse) -> Self {
        let reason = r.reason_code.map_or("none", |c| c.as_str());
        if r.approved {
            DecisionLabels {
                result: "granted",
                reason: "none",
            }
        } else if r.queued {
            DecisionLabels {
                result: "queued",
                reason,
            }
        } else {
            DecisionLabels {
                result: "denied",
                reason,
            }
        }
    }
}

fn book_error(e: BookError) -> ErrorReply {
    err(e.code(), e.to_string())
}

fn done<R: Serialize>(out: Result<Outcome<R>, BookError>) -> Handled {
    match out {
        Ok(o) => Handled {
            reply: encode_reply(&o.reply),
            effects: o.effects,
            decision: None,
        },
        Err(e) => Handled {
            reply: Err(book_error(e)),
            effects: Vec::new(),
            decision: None,
        },
    }
}

fn rejected(e: ErrorReply) -> Handled {
    Handled {
        reply: Err(e),
        effects: Vec::new(),
        decision: None,
    }
}

/// Decodes `payload` for `op`, applies it to `book` at `now`, and returns
/// the reply with the effects. A payload that does not decode or validate
/// changes nothing.
pub fn handle(
    book: &mut Book,
    op: LeaseOp,
    payload: &[u8],
    max_payload: usize,
    now: f64,
) -> Handled {
    handle_as(book, op, None, payload, max_payload, now)
}

/// [`handle`] for a request that arrived on a subject naming its addon
/// (`lull.v1.lease.request.<addon_id>`, where the NATS permissions decide
/// who may publish): a `lease.request` whose `addon_id` differs from
/// `subject_addon` is refused `forbidden` and counted, the book untouched.
/// `None` is the bare subject, which carries no identity.
pub fn handle_as(
    book: &mut Book,
    op: LeaseOp,
    subject_addon: Option<&str>,
    payload: &[u8],
    max_payload: usize,
    now: f64,
) -> Handled {
    macro_rules! apply {
        ($req:ty, $method:ident) => {
            match decode_request::<$req>(payload, max_payload) {
                Ok(r) => done(book.$method(&r, now)),
                Err(e) => rejected(e),
            }
        };
    }
    match op {
        LeaseOp::Request => match decode_request::<HeavyLeaseRequest>(payload, max_payload) {
            Ok(r) if subject_addon.is_some_and(|a| a != r.addon_id) => {
                metrics::counter!(super::metrics::IDENTITY_REJECTIONS.name).increment(1);
                rejected(err(
                    ErrorCode::Forbidden,
                    format!(
                        "addon_id {:?} does not match the subject's addon {:?}: an addon may only request leases under its own id",
                        r.addon_id,
                        subject_addon.unwrap_or_default()
                    ),
                ))
            }
            Ok(r) => {
                let out = book.request(r, now);
                Handled {
                    decision: Some(DecisionLabels::of(&out.reply)),
                    reply: encode_reply(&out.reply),
                    effects: out.effects,
                }
            }
            Err(e) => rejected(e),
        },
        LeaseOp::Heartbeat => apply!(LeaseHandle, heartbeat),
        LeaseOp::Release => apply!(ReleaseRequest, release),
        LeaseOp::Report => apply!(ProgressReport, report),
        LeaseOp::Revoke => apply!(RevokeRequest, revoke),
        LeaseOp::Cancel => apply!(CancelRequest, cancel),
        LeaseOp::Status => match status(
            book,
            payload,
            &StatusLimits::new(max_payload, Default::default()),
            now,
        ) {
            Ok(st) => Handled {
                reply: encode_reply(&st),
                effects: Vec::new(),
                decision: None,
            },
            Err(e) => rejected(e),
        },
    }
}

/// What `scheduler.status` needs besides the book.
#[derive(Debug, Clone, Copy)]
pub struct StatusLimits {
    /// Largest accepted request.
    pub max_payload: usize,
    /// Page sizes.
    pub lists: crate::config::ListsConfig,
}

impl StatusLimits {
    /// Limits of requests up to `max_payload` bytes, pages as `lists` says.
    pub fn new(max_payload: usize, lists: crate::config::ListsConfig) -> Self {
        StatusLimits { max_payload, lists }
    }
}

/// One page of `scheduler.status` (`limit` hosts and active leases after
/// `cursor`, see [`Book::status_page`]) without the encoding, which can be
/// large, so the caller may do it off the book's task.
pub fn status(
    book: &Book,
    payload: &[u8],
    limits: &StatusLimits,
    now: f64,
) -> Result<SchedulerStatus, ErrorReply> {
    let (max_payload, lists) = (limits.max_payload, &limits.lists);
    let page = decode_request::<PageRequest>(payload, max_payload)?;
    let cursor = match &page.cursor {
        Some(c) => StatusCursor::decode(c)
            .map_err(|e| err(lull_proto::error::ErrorCode::InvalidRequest, e.to_string()))?,
        None => StatusCursor::default(),
    };
    let limit = page.size(lists.default_limit, lists.max_limit);
    Ok(book.status_page(now, limit, &cursor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_engine::lease::{HostView, LeaseConfig, LeaseKey};
    use lull_proto::error::ErrorCode;
    use lull_proto::msg::hosts::QuietState;
    use lull_proto::msg::lease::{HeavyLeaseResponse, LeaseEventKind};

    const NOW: f64 = 1_000_000.0;
    const MAX: usize = 4096;

    fn book() -> Book {
        let key = LeaseKey::from_bytes(vec![7u8; 32]).unwrap();
        let mut b = Book::new(LeaseConfig::default(), key, "t", NOW);
        b.skip_grace();
        b.on_hosts_changed(
            vec![HostView::new("h1", QuietState::Quiet, 90.0, 8, NOW)],
            NOW,
        );
        b
    }

    fn code(h: &Handled) -> ErrorCode {
        match &h.reply {
            Err(e) => e.error.code,
            Ok(body) => panic!("expected an error, got {}", String::from_utf8_lossy(body)),
        }
    }

    fn status(b: &mut Book) -> SchedulerStatus {
        let h = handle(b, LeaseOp::Status, b"", MAX, NOW);
        serde_json::from_slice(&h.reply.unwrap()).unwrap()
    }

    const GOOD: &[u8] =
        br#"{"addon_id":"indexer","job_type":"reindex","host_id":"h1","cost_units":5}"#;

    #[test]
    fn names_are_the_protocol_endpoints() {
        let names: Vec<_> = LeaseOp::ALL.iter().map(|op| op.name()).collect();
        assert_eq!(
            names,
            [
                "lease.request",
                "lease.heartbeat",
                "lease.release",
                "lease.report",
                "lease.revoke",
                "lease.cancel",
                "scheduler.status"
            ]
        );
        for (i, op) in LeaseOp::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i, "the actor indexes its meters by op");
        }
    }

    #[test]
    fn a_grant_is_decided_encoded_and_published() {
        let mut b = book();
        let h = handle(&mut b, LeaseOp::Request, GOOD, MAX, NOW);
        assert_eq!(
            h.decision,
            Some(DecisionLabels {
                result: "granted",
                reason: "none"
            })
        );
        let r: HeavyLeaseResponse = serde_json::from_slice(h.reply.as_ref().unwrap()).unwrap();
        assert!(r.approved);
        assert!(h.effects.iter().any(|fx| matches!(
            fx,
            Effect::Publish(ev) if ev.event == LeaseEventKind::Granted
        )));
        assert_eq!(b.active_len(), 1);
        // The holder releases it with its token.
        let release = serde_json::json!({
            "lease_id": r.lease_id, "token": r.token, "outcome": "done"
        });
        let h = handle(
            &mut b,
            LeaseOp::Release,
            release.to_string().as_bytes(),
            MAX,
            NOW + 1.0,
        );
        assert!(h.reply.is_ok());
        assert_eq!(h.decision, None);
        assert_eq!(b.active_len(), 0);
    }

    #[test]
    fn a_denial_is_a_normal_reply_with_its_code() {
        let mut b = book();
        let busy = br#"{"addon_id":"a","job_type":"j","host_id":"nope","cost_units":1}"#;
        let h = handle(&mut b, LeaseOp::Request, busy, MAX, NOW);
        assert_eq!(
            h.decision,
            Some(DecisionLabels {
                result: "denied",
                reason: "unknown_host"
            })
        );
        let r: HeavyLeaseResponse = serde_json::from_slice(&h.reply.unwrap()).unwrap();
        assert!(!r.approved);
    }

    #[test]
    fn bad_input_is_rejected_and_changes_nothing() {
        let mut b = book();
        let before = serde_json::to_value(status(&mut b)).unwrap();
        let oversized = format!(
            r#"{{"addon_id":"a","job_type":"j","host_id":"h1","cost_units":1,"pad":"{}"}}"#,
            "x".repeat(MAX)
        );
        let cases: Vec<(LeaseOp, Vec<u8>)> = vec![
            (LeaseOp::Request, b"not json".to_vec()),
            (
                LeaseOp::Request,
                br#"{"addon_id":5,"job_type":"j"}"#.to_vec(),
            ),
            (
                LeaseOp::Request,
                br#"{"addon_id":"a","job_type":"j","host_id":"h1","cost_units":-3}"#.to_vec(),
            ),
            (
                LeaseOp::Request,
                br#"{"addon_id":"a","job_type":"j","host_id":"h1","cost_units":1e12}"#.to_vec(),
            ),
            (LeaseOp::Request, oversized.into_bytes()),
            (LeaseOp::Heartbeat, br#"{"lease_id":"x"}"#.to_vec()),
            (LeaseOp::Release, b"[]".to_vec()),
            (
                LeaseOp::Report,
                br#"{"lease_id":"x","token":"t","progress_pct":"half"}"#.to_vec(),
            ),
            (LeaseOp::Revoke, b"{".to_vec()),
            (LeaseOp::Cancel, br#"{"lease_id":7,"token":"t"}"#.to_vec()),
            (LeaseOp::Status, b"nope".to_vec()),
        ];
        for (op, payload) in cases {
            let h = handle(&mut b, op, &payload, MAX, NOW);
            assert_eq!(
                code(&h),
                ErrorCode::InvalidRequest,
                "{op:?} {}",
                String::from_utf8_lossy(&payload)
            );
            assert!(h.effects.is_empty(), "{op:?}");
            assert_eq!(h.decision, None, "{op:?}");
        }
        assert_eq!(serde_json::to_value(status(&mut b)).unwrap(), before);
    }

    #[test]
    fn an_addon_cannot_ask_under_another_addons_id() {
        let mut b = book();
        let before = serde_json::to_value(status(&mut b)).unwrap();
        // GOOD asks as "indexer"; on backup's subject it is refused.
        let h = handle_as(&mut b, LeaseOp::Request, Some("backup"), GOOD, MAX, NOW);
        assert_eq!(code(&h), ErrorCode::Forbidden);
        let msg = h.reply.as_ref().unwrap_err().error.message.clone();
        assert!(
            msg.contains("\"indexer\"") && msg.contains("\"backup\""),
            "{msg}"
        );
        assert!(h.effects.is_empty());
        assert_eq!(h.decision, None);
        assert_eq!(serde_json::to_value(status(&mut b)).unwrap(), before);
        // On its own subject, and on the bare one, it is decided.
        let h = handle_as(&mut b, LeaseOp::Request, Some("indexer"), GOOD, MAX, NOW);
        assert_eq!(h.decision.map(|d| d.result), Some("granted"));
        let h = handle(&mut b, LeaseOp::Request, GOOD, MAX, NOW);
        assert!(h.decision.is_some());
    }

    #[test]
    fn unknown_leases_and_wrong_tokens_are_errors() {
        let mut b = book();
        let unknown = br#"{"lease_id":"t-1-99","token":"v1.AAAA.BBBB"}"#;
        let h = handle(&mut b, LeaseOp::Heartbeat, unknown, MAX, NOW);
        assert_eq!(code(&h), ErrorCode::NotFound);
        let granted = handle(&mut b, LeaseOp::Request, GOOD, MAX, NOW);
        let r: HeavyLeaseResponse = serde_json::from_slice(&granted.reply.unwrap()).unwrap();
        let forged = serde_json::json!({"lease_id": r.lease_id, "token": "v1.AAAA.BBBB"});
        for op in [LeaseOp::Heartbeat, LeaseOp::Release, LeaseOp::Cancel] {
            let h = handle(&mut b, op, forged.to_string().as_bytes(), MAX, NOW);
            assert_eq!(code(&h), ErrorCode::Forbidden, "{op:?}");
        }
        assert_eq!(b.active_len(), 1);
    }
}
