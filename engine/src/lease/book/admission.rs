//! Admission applied: a new request is ruled on by the policy
//! ([`crate::lease::policy::admit_request`]) and the ruling is applied here
//! (bucket token, grant, queue or denial), and the wait queue is
//! re-evaluated ([`Book::dispatch`]) when room may have freed.

use lull_proto::msg::lease::{
    HeavyLeaseRequest, HeavyLeaseResponse, LeaseEvent, LeaseEventKind, LeaseInfo, LeaseState,
};

use super::{Book, Lease};
use crate::lease::audit::{AuditKind, AuditRecord};
use crate::lease::outcome::{Effect, Outcome, QueueChange};
use crate::lease::policy::{self, Admission, BookView, Decision, Denial, Grant};
use crate::lease::queue::{Pushed, Waiter};
use crate::lease::token::{self, LeaseTerms};

impl Book {
    /// `lease.request`: grant, deny, or (with `wait: true`) park the request.
    pub fn request(&mut self, req: HeavyLeaseRequest, now: f64) -> Outcome<HeavyLeaseResponse> {
        let mut fx = Vec::new();
        let units = self.cfg.units_for(&req);
        fx.push(Effect::Audit(AuditRecord::of_request(
            AuditKind::Requested,
            &req,
            units,
            None,
            None,
            now,
        )));
        // The bucket is read (not yet taken) for the policy; the policy says
        // whether this request takes a token.
        let rate_wait = self.touch_addon(&req.addon_id, now).bucket.wait_sec(now);
        let addon = self.addon_load(&req.addon_id, rate_wait);
        let view = BookView {
            addon: &addon,
            loads: self,
        };
        let ruling =
            policy::admit_request(&req, self.grace_until, &self.hosts, &view, &self.cfg, now);
        if ruling.take_token {
            if let Some(a) = self.addons.get_mut(&req.addon_id) {
                let _ = a.bucket.try_take(now);
            }
        }
        let reply = match ruling.admission {
            Admission::Grant(g) => {
                let id = self.new_id();
                let (info, token) = self.grant(&id, &req, &g, now, &mut fx);
                HeavyLeaseResponse {
                    approved: true,
                    lease_id: Some(info.lease_id.clone()),
                    token: Some(token),
                    host_id: Some(info.host_id.clone()),
                    expires_at: Some(info.expires_at),
                    limits: Some(self.cfg.limits()),
                    reason: Some(g.reason()),
                    ..Default::default()
                }
            }
            Admission::Queue(d) => self.enqueue(req, units, d, now, &mut fx),
            Admission::Deny(d) => self.deny(&req, units, d, now, &mut fx),
        };
        Outcome { reply, effects: fx }
    }

    /// Parks a request the policy ruled to queue: a queue ticket (a token
    /// of an ungranted lease) and a `QUEUED` audit record; a full queue
    /// turns it into a denial, and a lower-priority waiter evicted to make
    /// room gives up.
    fn enqueue(
        &mut self,
        req: HeavyLeaseRequest,
        units: u32,
        d: Denial,
        now: f64,
        fx: &mut Vec<Effect>,
    ) -> HeavyLeaseResponse {
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
            epoch: self.epoch,
        };
        let ticket = token::mint(&terms, &self.key);
        let wait = req
            .wait_timeout_sec
            .unwrap_or(self.cfg.default_wait_sec)
            .max(0.0);
        let queued_audit = AuditRecord::of_request(
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
            pos: 0,
        };
        match self.queue.push(waiter) {
            Pushed::Full(w) => {
                let d = policy::queue_full(d, self.queue.max());
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
                if let Some(w) = self.queue.get(&lease_id) {
                    fx.push(Effect::Queue(QueueChange::Parked(Box::new(w.clone()))));
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
        fx.push(Effect::Audit(AuditRecord::of_request(
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
            epoch: self.epoch,
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
            epoch: self.epoch,
        }));
        fx.push(Effect::Audit(AuditRecord::of_lease(
            AuditKind::Granted,
            &info,
            None,
            None,
            now,
        )));
        (info, token)
    }

    /// Re-evaluates waiters in queue order and grants each one that fits.
    /// `all`: every waiter; otherwise only those whose retry time has come.
    /// Nothing is granted during the grace period.
    pub(super) fn dispatch(&mut self, now: f64, all: bool, fx: &mut Vec<Effect>) {
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
                    fx.push(Effect::Queue(QueueChange::Left(id.clone())));
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
}
