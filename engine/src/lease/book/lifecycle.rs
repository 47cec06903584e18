//! The life of a lease after admission: heartbeats, release and cancel,
//! progress reports, operator revocation, expiry on [`Book::tick`], and
//! the bookkeeping of ending a lease (counters, tombstones, recent list).

use lull_proto::msg::lease::{
    CancelRequest, HeartbeatResponse, LeaseEvent, LeaseEventKind, LeaseHandle, LeaseState,
    OkResponse, ProgressReport, ReleaseRequest, RevokeRequest,
};

use super::{not_ok, ok, Book, Lease, Tomb};
use crate::lease::audit::{AuditKind, AuditRecord};
use crate::lease::outcome::{BookError, Effect, Outcome, QueueChange};
use crate::lease::queue::Waiter;

impl Book {
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
        let mut fx = Vec::new();
        if self.queue.contains(id) {
            self.check_token(id, &h.token)?;
            if !self.leave_if_granted(id, &h.token, &mut fx) {
                return Err(BookError::StillQueued(id.to_string()));
            }
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
                fx.push(Effect::Queue(QueueChange::Left(id.to_string())));
                self.tomb(id.to_string(), LeaseState::Released, outcome.clone());
                fx.push(Effect::Audit(AuditRecord::of_request(
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
        fx.push(Effect::Audit(AuditRecord::of_terms(
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
            }
            if self.queue.contains(id) && !self.leave_if_granted(id, &r.token, &mut fx) {
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
        fx.push(Effect::Audit(AuditRecord::of_lease(
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
            fx.push(Effect::Queue(QueueChange::Left(id.to_string())));
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
                epoch: self.epoch,
            }));
            let mut rec =
                AuditRecord::of_request(AuditKind::Revoked, &w.req, w.units, Some(id), None, now);
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
                epoch: self.epoch,
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

    pub(super) fn insert(&mut self, lease: Lease) {
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

    pub(super) fn end_lease(
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
            epoch: self.epoch,
        }));
        fx.push(Effect::Audit(AuditRecord::of_lease(
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
    pub(super) fn give_up(&mut self, w: Waiter, why: &str, now: f64, fx: &mut Vec<Effect>) {
        fx.push(Effect::Queue(QueueChange::Left(w.lease_id.clone())));
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
            epoch: self.epoch,
        }));
        let retry = self.cfg.clamp_retry(w.retry_at - now);
        self.count_denial(&w.req.addon_id, why, retry, now);
        let mut rec = AuditRecord::of_request(
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

    pub(super) fn tomb(&mut self, id: String, state: LeaseState, reason: Option<String>) {
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
