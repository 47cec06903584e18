//! The lease book: every live lease, the wait queue, the per-addon buckets
//! and decision summaries, the host views, and the restart grace period, as
//! one pure state machine. The coordinator owns one [`Book`] inside one
//! actor task fed by a channel, so admission is serialised without locks.
//!
//! Every method takes the clock (`now`, Unix seconds) and returns its reply
//! together with a list of [`Effect`]s for the shell to carry out: lease
//! events to publish on `lull.lease.events.<lease_id>` and audit records to
//! write. The book itself does no I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use lull_proto::error::ErrorCode;
use lull_proto::msg::hosts::QuietState;
use lull_proto::msg::lease::{
    AddonDecisions, CancelRequest, DenyReason, HeartbeatResponse, HeavyLeaseRequest,
    HeavyLeaseResponse, HostCapacity, LeaseEvent, LeaseEventKind, LeaseHandle, LeaseInfo,
    LeaseLists, LeaseState, OkResponse, Priority, ProgressReport, ReleaseRequest, RevokeRequest,
    SchedulerStatus,
};
use serde::Serialize;
use subtle::ConstantTimeEq;
use thiserror::Error;

use super::bucket::TokenBucket;
use super::capacity;
use super::config::LeaseConfig;
use super::policy::{
    self, AddonLoad, BookView, Decision, Denial, Grant, Holder, HostView, Loads, Resource,
};
use super::queue::{Pushed, WaitQueue, Waiter};
use super::token::{self, LeaseKey, LeaseTerms};

/// Kind of an audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// A request arrived.
    Requested,
    /// A lease was granted (directly or from the queue).
    Granted,
    /// A request was denied (or gave up waiting in the queue).
    Denied,
    /// A request was parked in the queue.
    Queued,
    /// A queued request was withdrawn (cancel, release) or evicted.
    Cancelled,
    /// The holder released its lease.
    Released,
    /// A lease expired for want of heartbeats.
    Expired,
    /// An operator revoked a lease or a queued request.
    Revoked,
    /// A lease was re-asserted after a coordinator restart.
    Reclaimed,
    /// The holder reported progress.
    Reported,
}

impl AuditKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Requested => "requested",
            AuditKind::Granted => "granted",
            AuditKind::Denied => "denied",
            AuditKind::Queued => "queued",
            AuditKind::Cancelled => "cancelled",
            AuditKind::Released => "released",
            AuditKind::Expired => "expired",
            AuditKind::Revoked => "revoked",
            AuditKind::Reclaimed => "reclaimed",
            AuditKind::Reported => "reported",
        }
    }
}

/// One audit record, for the shell to write (in batches) to Postgres.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    /// Unix seconds.
    pub at: f64,
    /// What happened.
    pub kind: AuditKind,
    /// The lease, when one exists (a plain denial has none).
    pub lease_id: Option<String>,
    /// The addon.
    pub addon_id: String,
    /// The job type.
    pub job_type: String,
    /// The host, when known.
    pub host_id: Option<String>,
    /// Units.
    pub cost_units: u32,
    /// Priority.
    pub priority: Priority,
    /// Denial code (denials, queued requests, given-up waits).
    pub reason_code: Option<DenyReason>,
    /// Human reason, release outcome or revoke reason.
    pub reason: Option<String>,
    /// Extra data (progress reports).
    pub detail: Option<serde_json::Value>,
}

/// Something the shell must do after a book method returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Publish on `lull.lease.events.<lease_id>`.
    Publish(LeaseEvent),
    /// Write an audit record.
    Audit(AuditRecord),
}

/// A reply and the effects of producing it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<R> {
    /// What to answer the caller.
    pub reply: R,
    /// What to publish and write.
    pub effects: Vec<Effect>,
}

/// A lease operation that is an error reply, not a normal answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BookError {
    /// No such lease (and the token does not prove one).
    #[error("unknown lease {0}")]
    NotFound(String),
    /// The token is not this lease's.
    #[error("the token does not match lease {0}")]
    Forbidden(String),
    /// The lease is still waiting in the queue.
    #[error("lease {0} is still queued; wait for its GRANTED event")]
    StillQueued(String),
}

impl BookError {
    /// The error reply code.
    pub fn code(&self) -> ErrorCode {
        match self {
            BookError::NotFound(_) => ErrorCode::NotFound,
            BookError::Forbidden(_) => ErrorCode::Forbidden,
            BookError::StillQueued(_) => ErrorCode::InvalidRequest,
        }
    }
}

#[derive(Debug, Clone)]
struct Lease {
    info: LeaseInfo,
    token: String,
    expected_duration_sec: Option<f64>,
}

impl Lease {
    fn free_at(&self) -> f64 {
        match self.expected_duration_sec {
            Some(d) => self.info.expires_at.max(self.info.granted_at + d),
            None => self.info.expires_at,
        }
    }
}

#[derive(Debug, Clone)]
struct Tomb {
    state: LeaseState,
    reason: Option<String>,
}

#[derive(Debug, Clone)]
struct AddonEntry {
    bucket: TokenBucket,
    decisions: AddonDecisions,
    last_seen: f64,
}

/// The lease book. See the module docs.
#[derive(Debug)]
pub struct Book {
    cfg: LeaseConfig,
    /// Signs new tokens.
    key: LeaseKey,
    /// Earlier keys, still accepted for tokens minted before a rotation.
    previous_keys: Vec<LeaseKey>,
    id_prefix: String,
    next_id: u64,
    grace_until: Option<f64>,
    hosts: BTreeMap<String, HostView>,
    leases: HashMap<String, Lease>,
    by_host: HashMap<String, BTreeSet<String>>,
    used: HashMap<String, u32>,
    addon_active: HashMap<String, u32>,
    queue: WaitQueue,
    recent: VecDeque<LeaseInfo>,
    tombs: HashMap<String, Tomb>,
    tomb_order: VecDeque<String>,
    addons: HashMap<String, AddonEntry>,
}

fn ok(reason: Option<String>) -> OkResponse {
    OkResponse { ok: true, reason }
}

fn not_ok(reason: String) -> OkResponse {
    OkResponse {
        ok: false,
        reason: Some(reason),
    }
}

impl Book {
    /// A book that starts in its grace period (one TTL by default): new
    /// grants are refused with `grace_period` while holders of leases from
    /// before a restart re-assert them with heartbeats. `key` must be the
    /// persisted key of previous runs. Lease ids are
    /// `<id_prefix>-<start time, ms, hex>-<counter>`, so ids of different
    /// starts never collide (which would let an old token act on a new
    /// lease); `id_prefix` keeps only `[A-Za-z0-9_]`, at most 16 of them.
    pub fn new(cfg: LeaseConfig, key: LeaseKey, id_prefix: impl Into<String>, now: f64) -> Self {
        let grace = cfg.grace_period();
        let queue = WaitQueue::new(cfg.queue_max);
        let prefix: String = id_prefix
            .into()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(16)
            .collect();
        let start_ms = if now.is_finite() && now > 0.0 {
            (now * 1000.0) as u64
        } else {
            0
        };
        let id_prefix = format!("{prefix}-{start_ms:x}");
        Book {
            grace_until: (grace > 0.0).then_some(now + grace),
            cfg,
            key,
            previous_keys: Vec::new(),
            id_prefix,
            next_id: 1,
            hosts: BTreeMap::new(),
            leases: HashMap::new(),
            by_host: HashMap::new(),
            used: HashMap::new(),
            addon_active: HashMap::new(),
            queue,
            recent: VecDeque::new(),
            tombs: HashMap::new(),
            tomb_order: VecDeque::new(),
            addons: HashMap::new(),
        }
    }

    /// Accepts tokens signed with these earlier keys too (after a key
    /// rotation). A lease re-asserted with such a token gets a new token
    /// signed with the current key, handed back on its heartbeat.
    pub fn add_previous_keys(&mut self, keys: impl IntoIterator<Item = LeaseKey>) {
        self.previous_keys.extend(keys);
    }

    /// Ends the grace period now. Call it when the key was created on this
    /// start: no token can exist, so there is nothing to wait for.
    pub fn skip_grace(&mut self) {
        self.grace_until = None;
    }

    /// Unix seconds until which new grants are refused, while in grace.
    pub fn grace_until(&self) -> Option<f64> {
        self.grace_until
    }

    /// Whether the book is in its grace period at `now`.
    pub fn in_grace(&self, now: f64) -> bool {
        self.grace_until.is_some_and(|g| now < g)
    }

    /// The configuration.
    pub fn config(&self) -> &LeaseConfig {
        &self.cfg
    }

    /// Remembers lease ids that ended before this start (from the audit
    /// log), so their tokens cannot re-assert them during the grace period
    /// and late heartbeats learn their final state.
    pub fn restore_tombstones(&mut self, ended: impl IntoIterator<Item = (String, LeaseState)>) {
        for (id, state) in ended {
            if !self.leases.contains_key(&id) {
                self.tomb(id, state, None);
            }
        }
    }

    /// An active lease.
    pub fn lease(&self, lease_id: &str) -> Option<&LeaseInfo> {
        self.leases.get(lease_id).map(|l| &l.info)
    }

    /// All active leases (any order).
    pub fn active_leases(&self) -> impl Iterator<Item = &LeaseInfo> {
        self.leases.values().map(|l| &l.info)
    }

    /// Active lease count.
    pub fn active_len(&self) -> usize {
        self.leases.len()
    }

    /// Requests waiting in the queue.
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Whether a lease id is waiting in the queue.
    pub fn is_queued(&self, lease_id: &str) -> bool {
        self.queue.contains(lease_id)
    }

    /// Units held on a host.
    pub fn used_units(&self, host_id: &str) -> u32 {
        self.used.get(host_id).copied().unwrap_or(0)
    }

    /// The host views.
    pub fn hosts(&self) -> &BTreeMap<String, HostView> {
        &self.hosts
    }

    /// The final state of an ended lease still remembered.
    pub fn ended_state(&self, lease_id: &str) -> Option<LeaseState> {
        self.tombs.get(lease_id).map(|t| t.state)
    }

    /// When the owner should call [`Book::tick`] next at the latest: the end
    /// of the grace period, the soonest lease expiry, queue deadline or
    /// queue re-evaluation. `None` when nothing is pending.
    pub fn next_wakeup(&self) -> Option<f64> {
        let leases = self.leases.values().map(|l| l.info.expires_at);
        self.grace_until
            .into_iter()
            .chain(leases)
            .chain(self.queue.next_wakeup())
            .min_by(|a, b| a.total_cmp(b))
    }

    // ----- requests -------------------------------------------------------

    /// `lease.request`: grant, deny, or (with `wait: true`) park the request.
    pub fn request(&mut self, req: HeavyLeaseRequest, now: f64) -> Outcome<HeavyLeaseResponse> {
        let mut fx = Vec::new();
        let units = self.cfg.units_for(&req);
        fx.push(Effect::Audit(self.audit_req(
            AuditKind::Requested,
            &req,
            units,
            None,
            None,
            now,
        )));
        self.touch_addon(&req.addon_id, now);

        if let Some(until) = self.grace_until.filter(|g| now < *g) {
            let left = until - now;
            let d = Denial {
                code: DenyReason::GracePeriod,
                reason: format!(
                    "Coordinator restarted; re-admitting existing leases for {left:.0}s more before new grants"
                ),
                retry_after_sec: self.cfg.clamp_retry(left),
                host_id: req.host_id.clone(),
            };
            let reply = self.deny_or_queue(req, units, d, now, &mut fx);
            return Outcome { reply, effects: fx };
        }

        let rate_wait = self
            .addons
            .get(&req.addon_id)
            .and_then(|a| a.bucket.wait_sec(now));
        let decision = self.decide(&req, rate_wait, now);
        if rate_wait.is_none() {
            if let Some(a) = self.addons.get_mut(&req.addon_id) {
                let _ = a.bucket.try_take(now);
            }
        }
        let reply = match decision {
            Decision::Grant(g) => {
                let id = self.new_id();
                let (info, token) = self.grant(&id, &req, &g, now, &mut fx);
                HeavyLeaseResponse {
                    approved: true,
                    lease_id: Some(info.lease_id.clone()),
                    token: Some(token),
                    host_id: Some(info.host_id.clone()),
                    expires_at: Some(info.expires_at),
                    limits: Some(self.cfg.limits()),
                    reason: Some(format!(
                        "Granted {} units on {} (used={}, capacity={})",
                        g.units,
                        g.host_id,
                        g.used_units + g.units,
                        g.capacity_units
                    )),
                    ..Default::default()
                }
            }
            Decision::Deny(d) => self.deny_or_queue(req, units, d, now, &mut fx),
        };
        Outcome { reply, effects: fx }
    }

    fn decide(&self, req: &HeavyLeaseRequest, rate_wait: Option<f64>, now: f64) -> Decision {
        let addon = self.addon_load(&req.addon_id, rate_wait);
        let view = BookView {
            addon: &addon,
            loads: self,
        };
        policy::decide(req, &self.hosts, &view, &self.cfg, now)
    }

    fn deny_or_queue(
        &mut self,
        req: HeavyLeaseRequest,
        units: u32,
        d: Denial,
        now: f64,
        fx: &mut Vec<Effect>,
    ) -> HeavyLeaseResponse {
        if !req.wait || d.code == DenyReason::RateLimited {
            return self.deny(&req, units, d, now, fx);
        }
        let lease_id = self.new_id();
        let terms = LeaseTerms {
            lease_id: lease_id.clone(),
            host_id: req.host_id.clone(),
            addon_id: req.addon_id.clone(),
            job_type: req.job_type.clone(),
            cost_units: units,
            priority: req.priority,
            granted: false,
            issued_at: now,
            ttl_sec: self.cfg.ttl(),
            expected_duration_sec: req.expected_duration_sec,
        };
        let ticket = token::mint(&terms, &self.key);
        let wait = req
            .wait_timeout_sec
            .unwrap_or(self.cfg.default_wait_sec)
            .max(0.0);
        let queued_audit = self.audit_req(
            AuditKind::Queued,
            &req,
            units,
            Some(&lease_id),
            Some(&d),
            now,
        );
        let req_host = req.host_id.clone();
        let waiter = Waiter {
            lease_id: lease_id.clone(),
            req,
            units,
            enqueued_at: now,
            deadline: now + wait,
            retry_at: now + d.retry_after_sec,
            last_code: d.code,
            last_reason: d.reason.clone(),
        };
        match self.queue.push(waiter) {
            Pushed::Full(w) => {
                let mut d = d;
                d.reason = format!(
                    "{}; the wait queue is full ({})",
                    d.reason,
                    self.queue.max()
                );
                self.deny(&w.req, units, d, now, fx)
            }
            pushed => {
                if let Pushed::Evicted(old) = pushed {
                    self.give_up(
                        *old,
                        "evicted from the wait queue by a higher-priority request",
                        now,
                        fx,
                    );
                }
                fx.push(Effect::Audit(queued_audit));
                HeavyLeaseResponse {
                    approved: false,
                    lease_id: Some(lease_id),
                    token: Some(ticket),
                    host_id: req_host,
                    expires_at: None,
                    limits: Some(self.cfg.limits()),
                    reason: Some(d.reason),
                    reason_code: Some(d.code),
                    retry_after_sec: Some(d.retry_after_sec),
                    queued: true,
                }
            }
        }
    }

    fn deny(
        &mut self,
        req: &HeavyLeaseRequest,
        units: u32,
        d: Denial,
        now: f64,
        fx: &mut Vec<Effect>,
    ) -> HeavyLeaseResponse {
        self.count_denial(&req.addon_id, &d.reason, d.retry_after_sec, now);
        fx.push(Effect::Audit(self.audit_req(
            AuditKind::Denied,
            req,
            units,
            None,
            Some(&d),
            now,
        )));
        HeavyLeaseResponse {
            approved: false,
            lease_id: None,
            token: None,
            host_id: req.host_id.clone(),
            expires_at: None,
            limits: None,
            reason: Some(d.reason),
            reason_code: Some(d.code),
            retry_after_sec: Some(d.retry_after_sec),
            queued: false,
        }
    }

    fn grant(
        &mut self,
        lease_id: &str,
        req: &HeavyLeaseRequest,
        g: &Grant,
        now: f64,
        fx: &mut Vec<Effect>,
    ) -> (LeaseInfo, String) {
        let ttl = self.cfg.ttl();
        let terms = LeaseTerms {
            lease_id: lease_id.to_string(),
            host_id: Some(g.host_id.clone()),
            addon_id: req.addon_id.clone(),
            job_type: req.job_type.clone(),
            cost_units: g.units,
            priority: req.priority,
            granted: true,
            issued_at: now,
            ttl_sec: ttl,
            expected_duration_sec: req.expected_duration_sec,
        };
        let token = token::mint(&terms, &self.key);
        let info = LeaseInfo {
            lease_id: lease_id.to_string(),
            addon_id: req.addon_id.clone(),
            job_type: req.job_type.clone(),
            host_id: g.host_id.clone(),
            cost_units: g.units,
            priority: req.priority,
            state: LeaseState::Active,
            granted_at: now,
            last_heartbeat_at: now,
            expires_at: now + ttl,
            ended_at: None,
            progress_pct: None,
            outcome: None,
        };
        self.insert(Lease {
            info: info.clone(),
            token: token.clone(),
            expected_duration_sec: req.expected_duration_sec,
        });
        let entry = self.touch_addon(&req.addon_id, now);
        entry.decisions.granted += 1;
        entry.decisions.cooldown_until = None;
        fx.push(Effect::Publish(LeaseEvent {
            lease_id: lease_id.to_string(),
            event: LeaseEventKind::Granted,
            at: now,
            host_id: Some(g.host_id.clone()),
            addon_id: Some(req.addon_id.clone()),
            reason: None,
            expires_at: Some(info.expires_at),
            limits: Some(self.cfg.limits()),
        }));
        fx.push(Effect::Audit(self.audit_lease(
            AuditKind::Granted,
            &info,
            None,
            None,
            now,
        )));
        (info, token)
    }

    // ----- holder operations ---------------------------------------------

    /// `lease.heartbeat`: extends an active lease; re-admits a lease this
    /// book has no memory of during the grace period (the token carries its
    /// terms); answers `ok: false` with the final state of an ended lease.
    pub fn heartbeat(
        &mut self,
        h: &LeaseHandle,
        now: f64,
    ) -> Result<Outcome<HeartbeatResponse>, BookError> {
        let id = h.lease_id.as_str();
        if self.leases.contains_key(id) {
            self.check_token(id, &h.token)?;
            let ttl = self.cfg.ttl();
            let Some(lease) = self.leases.get_mut(id) else {
                return Err(BookError::NotFound(id.to_string()));
            };
            lease.info.last_heartbeat_at = now;
            lease.info.expires_at = lease.info.expires_at.max(now + ttl);
            let replacement = (lease.token != h.token).then(|| lease.token.clone());
            return Ok(Outcome {
                reply: HeartbeatResponse {
                    ok: true,
                    state: LeaseState::Active,
                    expires_at: Some(lease.info.expires_at),
                    reason: None,
                    token: replacement,
                },
                effects: Vec::new(),
            });
        }
        if self.queue.contains(id) {
            self.check_token(id, &h.token)?;
            return Err(BookError::StillQueued(id.to_string()));
        }
        if let Some(t) = self.tombs.get(id) {
            let t = t.clone();
            self.check_token(id, &h.token)?;
            return Ok(Outcome {
                reply: ended_reply(id, &t),
                effects: Vec::new(),
            });
        }
        let terms = self.unknown_lease_terms(id, &h.token)?;
        let mut fx = Vec::new();
        let reply = match self.reclaim(terms, &h.token, now, &mut fx) {
            Ok((info, fresh)) => HeartbeatResponse {
                ok: true,
                state: LeaseState::Active,
                expires_at: Some(info.expires_at),
                reason: Some("lease re-admitted after a coordinator restart".into()),
                token: fresh,
            },
            Err(r) => r,
        };
        Ok(Outcome { reply, effects: fx })
    }

    /// `lease.release`: ends an active lease (`RELEASED`) and lets waiters
    /// in; withdraws a queued request.
    pub fn release(
        &mut self,
        r: &ReleaseRequest,
        now: f64,
    ) -> Result<Outcome<OkResponse>, BookError> {
        self.release_inner(&r.lease_id, &r.token, r.outcome.clone(), now)
    }

    /// `lease.cancel`: withdraws a queued request. If it was granted in the
    /// meantime the lease is released, so the caller holds nothing either way.
    pub fn cancel(
        &mut self,
        r: &CancelRequest,
        now: f64,
    ) -> Result<Outcome<OkResponse>, BookError> {
        self.release_inner(&r.lease_id, &r.token, Some("cancelled".into()), now)
    }

    fn release_inner(
        &mut self,
        id: &str,
        token: &str,
        outcome: Option<String>,
        now: f64,
    ) -> Result<Outcome<OkResponse>, BookError> {
        let mut fx = Vec::new();
        if self.leases.contains_key(id) {
            self.check_token(id, token)?;
            self.end_lease(id, LeaseState::Released, outcome, now, &mut fx);
            self.dispatch(now, true, &mut fx);
            return Ok(Outcome {
                reply: ok(None),
                effects: fx,
            });
        }
        if self.queue.contains(id) {
            self.check_token(id, token)?;
            if let Some(w) = self.queue.remove(id) {
                self.tomb(id.to_string(), LeaseState::Released, outcome.clone());
                fx.push(Effect::Audit(self.audit_req(
                    AuditKind::Cancelled,
                    &w.req,
                    w.units,
                    Some(id),
                    None,
                    now,
                )));
            }
            return Ok(Outcome {
                reply: ok(Some("request withdrawn from the wait queue".into())),
                effects: fx,
            });
        }
        if let Some(t) = self.tombs.get(id) {
            let state = t.state;
            self.check_token(id, token)?;
            return Ok(Outcome {
                reply: not_ok(format!("lease {id} is already {}", state.as_str())),
                effects: fx,
            });
        }
        let (terms, _) = self.unknown_lease_terms(id, token)?;
        // A holder that finished while the coordinator was down: remember
        // the lease as released so its token cannot re-assert it.
        self.tomb(id.to_string(), LeaseState::Released, outcome.clone());
        fx.push(Effect::Audit(audit_terms(
            AuditKind::Released,
            &terms,
            outcome,
            now,
        )));
        Ok(Outcome {
            reply: ok(Some(format!(
                "lease {id} was not active here (coordinator restarted); nothing to release"
            ))),
            effects: fx,
        })
    }

    /// `lease.report`: records progress of an active lease (and, during the
    /// grace period, re-admits an unknown one like a heartbeat would).
    pub fn report(
        &mut self,
        r: &ProgressReport,
        now: f64,
    ) -> Result<Outcome<OkResponse>, BookError> {
        let id = r.lease_id.as_str();
        let mut fx = Vec::new();
        if !self.leases.contains_key(id) {
            if self.queue.contains(id) {
                self.check_token(id, &r.token)?;
                return Ok(Outcome {
                    reply: not_ok(format!("lease {id} is still queued")),
                    effects: fx,
                });
            }
            if let Some(t) = self.tombs.get(id) {
                let state = t.state;
                self.check_token(id, &r.token)?;
                return Ok(Outcome {
                    reply: not_ok(format!("lease {id} is {}", state.as_str())),
                    effects: fx,
                });
            }
            let terms = self.unknown_lease_terms(id, &r.token)?;
            if let Err(reply) = self.reclaim(terms, &r.token, now, &mut fx) {
                return Ok(Outcome {
                    reply: OkResponse {
                        ok: false,
                        reason: reply.reason,
                    },
                    effects: fx,
                });
            }
        }
        self.check_token(id, &r.token)?;
        let Some(lease) = self.leases.get_mut(id) else {
            return Err(BookError::NotFound(id.to_string()));
        };
        if let Some(p) = r.progress_pct {
            lease.info.progress_pct = Some(p);
        }
        let info = lease.info.clone();
        let detail = serde_json::json!({
            "progress_pct": r.progress_pct,
            "message": r.message,
            "metrics": r.metrics,
        });
        fx.push(Effect::Audit(self.audit_lease(
            AuditKind::Reported,
            &info,
            r.message.clone(),
            Some(detail),
            now,
        )));
        Ok(Outcome {
            reply: ok(None),
            effects: fx,
        })
    }

    /// `lease.revoke` (operators, no token): ends an active lease
    /// (`REVOKED`, pushed to the holder) or removes a queued request. During
    /// the grace period an unknown lease id is remembered as revoked, so its
    /// holder's re-assert is refused.
    pub fn revoke(
        &mut self,
        r: &RevokeRequest,
        now: f64,
    ) -> Result<Outcome<OkResponse>, BookError> {
        let id = r.lease_id.as_str();
        let reason = r
            .reason
            .clone()
            .unwrap_or_else(|| "revoked by an operator".to_string());
        let mut fx = Vec::new();
        if self.leases.contains_key(id) {
            self.end_lease(id, LeaseState::Revoked, Some(reason), now, &mut fx);
            self.dispatch(now, true, &mut fx);
            return Ok(Outcome {
                reply: ok(None),
                effects: fx,
            });
        }
        if let Some(w) = self.queue.remove(id) {
            self.tomb(id.to_string(), LeaseState::Revoked, Some(reason.clone()));
            fx.push(Effect::Publish(LeaseEvent {
                lease_id: id.to_string(),
                event: LeaseEventKind::Revoked,
                at: now,
                host_id: w.req.host_id.clone(),
                addon_id: Some(w.req.addon_id.clone()),
                reason: Some(reason.clone()),
                expires_at: None,
                limits: None,
            }));
            let mut rec = self.audit_req(AuditKind::Revoked, &w.req, w.units, Some(id), None, now);
            rec.reason = Some(reason);
            fx.push(Effect::Audit(rec));
            return Ok(Outcome {
                reply: ok(Some("queued request removed".into())),
                effects: fx,
            });
        }
        if let Some(t) = self.tombs.get(id) {
            return Ok(Outcome {
                reply: not_ok(format!("lease {id} is already {}", t.state.as_str())),
                effects: fx,
            });
        }
        if self.in_grace(now) {
            self.tomb(id.to_string(), LeaseState::Revoked, Some(reason.clone()));
            fx.push(Effect::Publish(LeaseEvent {
                lease_id: id.to_string(),
                event: LeaseEventKind::Revoked,
                at: now,
                host_id: None,
                addon_id: None,
                reason: Some(reason),
                expires_at: None,
                limits: None,
            }));
            return Ok(Outcome {
                reply: ok(Some(format!(
                    "lease {id} has not been re-asserted since the restart; it will be refused"
                ))),
                effects: fx,
            });
        }
        Err(BookError::NotFound(id.to_string()))
    }

    // ----- time and hosts -------------------------------------------------

    /// Advances the clock: ends the grace period when due, expires leases
    /// whose last heartbeat is a TTL old, gives up queued requests past
    /// their deadline, and re-evaluates the queue (all of it when room was
    /// freed, otherwise the waiters whose retry time has come).
    pub fn tick(&mut self, now: f64) -> Vec<Effect> {
        let mut fx = Vec::new();
        let mut freed = false;
        if self.grace_until.is_some_and(|g| now >= g) {
            self.grace_until = None;
            freed = true;
        }
        let mut due: Vec<(f64, String)> = self
            .leases
            .values()
            .filter(|l| l.info.expires_at <= now)
            .map(|l| (l.info.expires_at, l.info.lease_id.clone()))
            .collect();
        due.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        for (_, id) in due {
            let reason = format!("no heartbeat for {:.0}s", self.cfg.ttl());
            self.end_lease(&id, LeaseState::Expired, Some(reason), now, &mut fx);
            freed = true;
        }
        for w in self.queue.take_expired(now) {
            let why = format!("wait deadline passed; last: {}", w.last_reason);
            self.give_up(w, &why, now, &mut fx);
        }
        self.dispatch(now, freed, &mut fx);
        fx
    }

    /// Takes new host views (upsert by `host_id`). A host that has just
    /// entered PANIC has its active leases revoked (`revoke_on_panic`).
    /// When any host got better (quieter, more capacity, unblocked, fresh
    /// again, out of cool-down, a resource calmer, or new), the whole queue
    /// is re-evaluated.
    pub fn on_hosts_changed(&mut self, views: Vec<HostView>, now: f64) -> Vec<Effect> {
        let mut improved = false;
        let mut panicked = Vec::new();
        for v in views {
            let was_panic = self
                .hosts
                .get(&v.host_id)
                .is_some_and(|old| old.state == QuietState::Panic);
            improved |= match self.hosts.get(&v.host_id) {
                None => true,
                Some(old) => self.got_better(old, &v, now),
            };
            if v.state == QuietState::Panic && !was_panic {
                panicked.push(v.host_id.clone());
            }
            self.hosts.insert(v.host_id.clone(), v);
        }
        let mut fx = Vec::new();
        if self.cfg.revoke_on_panic {
            for host in panicked {
                self.revoke_host(&host, now, &mut fx);
            }
        }
        if improved {
            self.dispatch(now, true, &mut fx);
        }
        fx
    }

    /// Revokes every active lease on a host that has just entered PANIC.
    fn revoke_host(&mut self, host_id: &str, now: f64, fx: &mut Vec<Effect>) {
        let Some(ids) = self.by_host.get(host_id).cloned() else {
            return;
        };
        let score = self.hosts.get(host_id).map_or(0.0, |h| h.quiet_score);
        let why =
            format!("host {host_id} entered PANIC (quiet_score={score:.1}); heavy work must stop");
        for id in ids {
            self.end_lease(&id, LeaseState::Revoked, Some(why.clone()), now, fx);
        }
    }

    /// Forgets a host (decommissioned). Its active leases stay until they
    /// end; requests for it are denied `unknown_host`.
    pub fn remove_host(&mut self, host_id: &str) {
        self.hosts.remove(host_id);
    }

    fn got_better(&self, old: &HostView, new: &HostView, now: f64) -> bool {
        let cfg = &self.cfg;
        if new.state < old.state
            || new.capacity(cfg) > old.capacity(cfg)
            || (old.blocked && !new.blocked)
            || (old.is_stale(now, cfg) && !new.is_stale(now, cfg))
        {
            return true;
        }
        let cooling = |v: &HostView| v.cooldown_until.is_some_and(|c| c > now);
        if cooling(old) && !cooling(new) {
            return true;
        }
        [
            Resource::Cpu,
            Resource::Disk,
            Resource::Network,
            Resource::Memory,
        ]
        .into_iter()
        .any(|r| {
            policy::resource_state(r, new, &cfg.constraints).state
                < policy::resource_state(r, old, &cfg.constraints).state
        })
    }

    /// Re-evaluates waiters in queue order and grants each one that fits.
    /// `all`: every waiter; otherwise only those whose retry time has come.
    /// Nothing is granted during the grace period.
    fn dispatch(&mut self, now: f64, all: bool, fx: &mut Vec<Effect>) {
        if self.queue.is_empty() || self.in_grace(now) {
            return;
        }
        for id in self.queue.ids() {
            let Some(w) = self.queue.get(&id) else {
                continue;
            };
            if !all && w.retry_at > now {
                continue;
            }
            let req = w.req.clone();
            let addon = self.addon_load(&req.addon_id, None);
            let view = BookView {
                addon: &addon,
                loads: self,
            };
            match policy::decide(&req, &self.hosts, &view, &self.cfg, now) {
                Decision::Grant(g) => {
                    self.queue.remove(&id);
                    self.grant(&id, &req, &g, now, fx);
                }
                Decision::Deny(d) => {
                    if let Some(w) = self.queue.get_mut(&id) {
                        w.retry_at = now + d.retry_after_sec;
                        w.last_code = d.code;
                        w.last_reason = d.reason;
                    }
                }
            }
        }
    }

    // ----- status ---------------------------------------------------------

    /// `scheduler.status`: active and recent leases, hosts with capacity
    /// and use, the per-addon decision summary, the queue length and the
    /// end of the grace period.
    pub fn status(&self, now: f64) -> SchedulerStatus {
        let mut active: Vec<LeaseInfo> = self.leases.values().map(|l| l.info.clone()).collect();
        active.sort_by(|a, b| {
            a.granted_at
                .total_cmp(&b.granted_at)
                .then_with(|| a.lease_id.cmp(&b.lease_id))
        });
        let hosts = self
            .hosts
            .values()
            .map(|h| HostCapacity {
                host_id: h.host_id.clone(),
                state: h.state,
                quiet_score: h.quiet_score,
                capacity_units: h.capacity(&self.cfg),
                used_units: self.used_units(&h.host_id),
            })
            .collect();
        SchedulerStatus {
            leases: LeaseLists {
                active,
                recent: self.recent.iter().cloned().collect(),
            },
            hosts,
            addons: self.addon_decisions(),
            queue_length: self.queue.len() as u64,
            grace_until: self.grace_until.filter(|g| now < *g),
        }
    }

    /// The per-addon decision summary, sorted by addon id.
    pub fn addon_decisions(&self) -> Vec<AddonDecisions> {
        let mut v: Vec<AddonDecisions> =
            self.addons.values().map(|a| a.decisions.clone()).collect();
        v.sort_by(|a, b| a.addon_id.cmp(&b.addon_id));
        v
    }

    /// One addon's decision summary.
    pub fn addon_summary(&self, addon_id: &str) -> Option<&AddonDecisions> {
        self.addons.get(addon_id).map(|a| &a.decisions)
    }

    // ----- internals ------------------------------------------------------

    fn new_id(&mut self) -> String {
        loop {
            let id = format!("{}-{}", self.id_prefix, self.next_id);
            self.next_id += 1;
            if !self.leases.contains_key(&id)
                && !self.queue.contains(&id)
                && !self.tombs.contains_key(&id)
            {
                return id;
            }
        }
    }

    /// Checks that `token` is this coordinator's token for lease `id` and,
    /// for an active lease, that its terms name the same addon and host. The
    /// common case, the very token the lease was granted with, is a
    /// constant-time comparison; any other token is verified in full.
    fn check_token(&self, id: &str, token: &str) -> Result<(), BookError> {
        let forbidden = || BookError::Forbidden(id.to_string());
        let active = self.leases.get(id);
        if let Some(l) = active {
            if bool::from(l.token.as_bytes().ct_eq(token.as_bytes())) {
                return Ok(());
            }
        }
        let (t, _) = self.verify(token).map_err(|_| forbidden())?;
        if t.lease_id != id {
            return Err(forbidden());
        }
        if let Some(l) = active {
            let host_ok = t.host_id.as_deref().is_none_or(|h| h == l.info.host_id);
            if t.addon_id != l.info.addon_id || !host_ok {
                return Err(forbidden());
            }
        }
        Ok(())
    }

    /// Terms of a lease id this book knows nothing about: a token that does
    /// not verify means the lease is simply unknown; a valid token for
    /// another lease is forbidden.
    fn unknown_lease_terms(&self, id: &str, token: &str) -> Result<(LeaseTerms, bool), BookError> {
        match self.verify(token) {
            Err(_) => Err(BookError::NotFound(id.to_string())),
            Ok((t, _)) if t.lease_id != id => Err(BookError::Forbidden(id.to_string())),
            Ok(found) => Ok(found),
        }
    }

    /// Verifies a token with the current key, then with earlier ones;
    /// `true` with the terms when the current key signed it.
    fn verify(&self, token: &str) -> Result<(LeaseTerms, bool), token::TokenError> {
        match token::verify(token, &self.key) {
            Ok(t) => Ok((t, true)),
            Err(e) => self
                .previous_keys
                .iter()
                .find_map(|k| token::verify(token, k).ok())
                .map(|t| (t, false))
                .ok_or(e),
        }
    }

    /// Re-admits a lease from its token's terms during the grace period.
    fn reclaim(
        &mut self,
        (terms, current_key): (LeaseTerms, bool),
        token: &str,
        now: f64,
        fx: &mut Vec<Effect>,
    ) -> Result<(LeaseInfo, Option<String>), HeartbeatResponse> {
        let id = terms.lease_id.clone();
        let refuse = |reason: String| HeartbeatResponse {
            ok: false,
            state: LeaseState::Expired,
            expires_at: None,
            reason: Some(reason),
            token: None,
        };
        if !self.in_grace(now) {
            return Err(refuse(format!(
                "unknown lease {id}: it ended, or the coordinator restarted more than a grace period ago"
            )));
        }
        let host_id = match (&terms.host_id, terms.granted) {
            (Some(h), true) => h.clone(),
            _ => {
                self.tomb(id.clone(), LeaseState::Expired, None);
                return Err(refuse(format!(
                    "lease {id} was still queued when the coordinator restarted; request again"
                )));
            }
        };
        if self.cfg.revoke_on_panic
            && self
                .hosts
                .get(&host_id)
                .is_some_and(|v| v.state == QuietState::Panic)
        {
            // Its lease would have been revoked had we been running.
            let reason = format!("host {host_id} is in PANIC; heavy work must stop");
            self.refuse_reclaim(&terms, LeaseState::Revoked, &reason, now, fx);
            return Err(HeartbeatResponse {
                ok: false,
                state: LeaseState::Revoked,
                expires_at: None,
                reason: Some(reason),
                token: None,
            });
        }
        if let Some(view) = self.hosts.get(&host_id) {
            let ceiling = capacity::ceiling(view.cpu_count, &self.cfg.capacity);
            let used = self.used_units(&host_id);
            if u64::from(used) + u64::from(terms.cost_units) > u64::from(ceiling) {
                let reason = format!(
                    "cannot re-admit lease {id}: host {host_id} used={used}, requested={}, ceiling={ceiling}",
                    terms.cost_units
                );
                self.refuse_reclaim(&terms, LeaseState::Expired, &reason, now, fx);
                return Err(refuse(reason));
            }
        }
        // A token of an earlier key is swapped for one of the current key.
        let fresh = (!current_key).then(|| token::mint(&terms, &self.key));
        let info = LeaseInfo {
            lease_id: id,
            addon_id: terms.addon_id,
            job_type: terms.job_type,
            host_id,
            cost_units: terms.cost_units,
            priority: terms.priority,
            state: LeaseState::Active,
            granted_at: terms.issued_at,
            last_heartbeat_at: now,
            expires_at: now + self.cfg.ttl(),
            ended_at: None,
            progress_pct: None,
            outcome: None,
        };
        self.insert(Lease {
            info: info.clone(),
            token: fresh.clone().unwrap_or_else(|| token.to_string()),
            expected_duration_sec: terms.expected_duration_sec,
        });
        fx.push(Effect::Audit(self.audit_lease(
            AuditKind::Reclaimed,
            &info,
            None,
            None,
            now,
        )));
        Ok((info, fresh))
    }

    /// A lease that may not be re-admitted ends in `state` (`EXPIRED` or
    /// `REVOKED`): remembered, published and audited.
    fn refuse_reclaim(
        &mut self,
        terms: &LeaseTerms,
        state: LeaseState,
        reason: &str,
        now: f64,
        fx: &mut Vec<Effect>,
    ) {
        let (event, kind) = match state {
            LeaseState::Revoked => (LeaseEventKind::Revoked, AuditKind::Revoked),
            _ => (LeaseEventKind::Expired, AuditKind::Expired),
        };
        self.tomb(terms.lease_id.clone(), state, Some(reason.to_string()));
        fx.push(Effect::Publish(LeaseEvent {
            lease_id: terms.lease_id.clone(),
            event,
            at: now,
            host_id: terms.host_id.clone(),
            addon_id: Some(terms.addon_id.clone()),
            reason: Some(reason.to_string()),
            expires_at: None,
            limits: None,
        }));
        fx.push(Effect::Audit(audit_terms(
            kind,
            terms,
            Some(reason.to_string()),
            now,
        )));
    }

    fn insert(&mut self, lease: Lease) {
        let id = lease.info.lease_id.clone();
        let host = lease.info.host_id.clone();
        *self.used.entry(host.clone()).or_insert(0) += lease.info.cost_units;
        self.by_host.entry(host).or_default().insert(id.clone());
        *self
            .addon_active
            .entry(lease.info.addon_id.clone())
            .or_insert(0) += 1;
        self.leases.insert(id, lease);
    }

    fn end_lease(
        &mut self,
        id: &str,
        state: LeaseState,
        why: Option<String>,
        now: f64,
        fx: &mut Vec<Effect>,
    ) {
        let Some(lease) = self.leases.remove(id) else {
            return;
        };
        let mut info = lease.info;
        let host = info.host_id.clone();
        if let Some(u) = self.used.get_mut(&host) {
            *u = u.saturating_sub(info.cost_units);
            if *u == 0 {
                self.used.remove(&host);
            }
        }
        if let Some(set) = self.by_host.get_mut(&host) {
            set.remove(id);
            if set.is_empty() {
                self.by_host.remove(&host);
            }
        }
        if let Some(n) = self.addon_active.get_mut(&info.addon_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.addon_active.remove(&info.addon_id);
            }
        }
        info.state = state;
        info.ended_at = Some(now);
        info.outcome = why.clone();
        let (event, kind) = match state {
            LeaseState::Released => (LeaseEventKind::Released, AuditKind::Released),
            LeaseState::Revoked => (LeaseEventKind::Revoked, AuditKind::Revoked),
            LeaseState::Expired | LeaseState::Active => {
                (LeaseEventKind::Expired, AuditKind::Expired)
            }
        };
        fx.push(Effect::Publish(LeaseEvent {
            lease_id: id.to_string(),
            event,
            at: now,
            host_id: Some(host),
            addon_id: Some(info.addon_id.clone()),
            reason: why.clone(),
            expires_at: None,
            limits: None,
        }));
        fx.push(Effect::Audit(self.audit_lease(
            kind,
            &info,
            why.clone(),
            None,
            now,
        )));
        self.tomb(id.to_string(), state, why);
        self.recent.push_front(info);
        self.recent.truncate(self.cfg.recent_max);
    }

    /// A queued request leaves the queue without a grant (deadline passed,
    /// evicted): `EXPIRED` event to the waiter, counted as a denial.
    fn give_up(&mut self, w: Waiter, why: &str, now: f64, fx: &mut Vec<Effect>) {
        self.tomb(
            w.lease_id.clone(),
            LeaseState::Expired,
            Some(why.to_string()),
        );
        fx.push(Effect::Publish(LeaseEvent {
            lease_id: w.lease_id.clone(),
            event: LeaseEventKind::Expired,
            at: now,
            host_id: w.req.host_id.clone(),
            addon_id: Some(w.req.addon_id.clone()),
            reason: Some(why.to_string()),
            expires_at: None,
            limits: None,
        }));
        let retry = self.cfg.clamp_retry(w.retry_at - now);
        self.count_denial(&w.req.addon_id, why, retry, now);
        let mut rec = self.audit_req(
            AuditKind::Denied,
            &w.req,
            w.units,
            Some(&w.lease_id),
            None,
            now,
        );
        rec.reason_code = Some(w.last_code);
        rec.reason = Some(why.to_string());
        fx.push(Effect::Audit(rec));
    }

    fn tomb(&mut self, id: String, state: LeaseState, reason: Option<String>) {
        if self
            .tombs
            .insert(id.clone(), Tomb { state, reason })
            .is_none()
        {
            self.tomb_order.push_back(id);
        }
        while self.tomb_order.len() > self.cfg.tombstones_max {
            if let Some(old) = self.tomb_order.pop_front() {
                self.tombs.remove(&old);
            }
        }
    }

    fn touch_addon(&mut self, addon_id: &str, now: f64) -> &mut AddonEntry {
        if !self.addons.contains_key(addon_id) {
            if self.addons.len() >= self.cfg.addons_max {
                // Forget the least recently seen addon.
                if let Some(old) = self
                    .addons
                    .iter()
                    .min_by(|a, b| a.1.last_seen.total_cmp(&b.1.last_seen))
                    .map(|(k, _)| k.clone())
                {
                    self.addons.remove(&old);
                }
            }
            let (rate, burst) = self.cfg.addon_rate(addon_id);
            self.addons.insert(
                addon_id.to_string(),
                AddonEntry {
                    bucket: TokenBucket::new(rate, burst, now),
                    decisions: AddonDecisions {
                        addon_id: addon_id.to_string(),
                        granted: 0,
                        denied: 0,
                        last_reason: None,
                        cooldown_until: None,
                    },
                    last_seen: now,
                },
            );
        }
        let e = self
            .addons
            .get_mut(addon_id)
            .expect("the addon entry was inserted above");
        e.last_seen = e.last_seen.max(now);
        e
    }

    fn count_denial(&mut self, addon_id: &str, reason: &str, retry: f64, now: f64) {
        let e = self.touch_addon(addon_id, now);
        e.decisions.denied += 1;
        e.decisions.last_reason = Some(reason.to_string());
        e.decisions.cooldown_until = Some(now + retry);
    }

    fn addon_load(&self, addon_id: &str, rate_wait_sec: Option<f64>) -> AddonLoad {
        let addon_active = self.addon_active.get(addon_id).copied().unwrap_or(0);
        let global_active = self.leases.len() as u32;
        let soonest = |only: Option<&str>| {
            self.leases
                .values()
                .filter(|l| only.is_none_or(|a| l.info.addon_id == a))
                .map(Lease::free_at)
                .min_by(|a, b| a.total_cmp(b))
        };
        // The soonest expiries only matter once a cap is reached.
        AddonLoad {
            global_active,
            global_next_free_at: (global_active >= self.cfg.max_global)
                .then(|| soonest(None))
                .flatten(),
            addon_active,
            addon_next_free_at: (addon_active >= self.cfg.addon_max(addon_id))
                .then(|| soonest(Some(addon_id)))
                .flatten(),
            rate_wait_sec,
        }
    }

    fn audit_req(
        &self,
        kind: AuditKind,
        req: &HeavyLeaseRequest,
        units: u32,
        lease_id: Option<&str>,
        d: Option<&Denial>,
        now: f64,
    ) -> AuditRecord {
        AuditRecord {
            at: now,
            kind,
            lease_id: lease_id.map(str::to_string),
            addon_id: req.addon_id.clone(),
            job_type: req.job_type.clone(),
            host_id: req.host_id.clone(),
            cost_units: units,
            priority: req.priority,
            reason_code: d.map(|d| d.code),
            reason: d.map(|d| d.reason.clone()),
            detail: None,
        }
    }

    fn audit_lease(
        &self,
        kind: AuditKind,
        info: &LeaseInfo,
        reason: Option<String>,
        detail: Option<serde_json::Value>,
        now: f64,
    ) -> AuditRecord {
        AuditRecord {
            at: now,
            kind,
            lease_id: Some(info.lease_id.clone()),
            addon_id: info.addon_id.clone(),
            job_type: info.job_type.clone(),
            host_id: Some(info.host_id.clone()),
            cost_units: info.cost_units,
            priority: info.priority,
            reason_code: None,
            reason,
            detail,
        }
    }
}

/// Admission reads the book's per-host counters directly: the used units
/// are one map lookup, and the holders are gathered only for a full host.
impl Loads for Book {
    fn used_units(&self, host_id: &str) -> u32 {
        Book::used_units(self, host_id)
    }

    fn holders(&self, host_id: &str) -> Vec<Holder> {
        self.by_host
            .get(host_id)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| self.leases.get(id))
                    .map(|l| Holder {
                        units: l.info.cost_units,
                        free_at: l.free_at(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// An audit record of a lease known only from its token's terms.
fn audit_terms(
    kind: AuditKind,
    terms: &LeaseTerms,
    reason: Option<String>,
    now: f64,
) -> AuditRecord {
    AuditRecord {
        at: now,
        kind,
        lease_id: Some(terms.lease_id.clone()),
        addon_id: terms.addon_id.clone(),
        job_type: terms.job_type.clone(),
        host_id: terms.host_id.clone(),
        cost_units: terms.cost_units,
        priority: terms.priority,
        reason_code: None,
        reason,
        detail: None,
    }
}

fn ended_reply(id: &str, t: &Tomb) -> HeartbeatResponse {
    let why = t
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    HeartbeatResponse {
        ok: false,
        state: t.state,
        expires_at: None,
        reason: Some(format!("lease {id} is {}{why}", t.state.as_str())),
        token: None,
    }
}

#[cfg(test)]
#[path = "book_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "book_proptest.rs"]
mod proptests;
