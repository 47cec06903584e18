//! Restart safety: checking a holder's token (current or earlier key),
//! re-admitting, during the grace period, a lease known only from its
//! token's terms, or refusing it with its final state; and parking the
//! persisted waiters of the wait queue again ([`Book::restore_queue`])
//! without bringing back one that already left.

use lull_proto::msg::hosts::QuietState;
use lull_proto::msg::lease::{
    HeartbeatResponse, LeaseEvent, LeaseEventKind, LeaseInfo, LeaseState,
};
use subtle::ConstantTimeEq;

use super::{Book, Lease};
use crate::lease::audit::{AuditKind, AuditRecord};
use crate::lease::capacity;
use crate::lease::outcome::{BookError, Effect, QueueChange};
use crate::lease::queue::Waiter;
use crate::lease::token::{self, LeaseTerms};

impl Book {
    /// Parks the waiters persisted by an earlier start or leader again, in
    /// their original order (priority, then arrival), so that a request
    /// queued before a restart or a failover keeps its place and its ticket
    /// without asking again. Call it after the grace period's re-admissions
    /// from the replica (if any) and before serving.
    ///
    /// A waiter is not parked again when its id is an active lease (it was
    /// granted: a granted lease is never admitted a second time), is
    /// remembered as ended, or does not fit the queue's bound; each of
    /// those gets a [`QueueChange::Left`] so the record forgets it too, and
    /// one past the bound gives up like an evicted waiter. Waiters are
    /// re-evaluated at the first dispatch (their retry time is `now`);
    /// their deadlines stay as they were.
    pub fn restore_queue(&mut self, waiters: Vec<Waiter>, now: f64) -> Vec<Effect> {
        let mut fx = Vec::new();
        let mut keep = Vec::with_capacity(waiters.len());
        for mut w in waiters {
            if self.leases.contains_key(&w.lease_id) || self.tombs.contains_key(&w.lease_id) {
                fx.push(Effect::Queue(QueueChange::Left(w.lease_id)));
                continue;
            }
            w.retry_at = now;
            keep.push(w);
        }
        let mut seen = std::collections::HashSet::new();
        for w in self.queue.restore(keep) {
            if self.queue.contains(&w.lease_id) || !seen.insert(w.lease_id.clone()) {
                // A duplicate of a waiter parked: nothing to record.
                continue;
            }
            self.give_up(
                w,
                "the wait queue is full (restored past its bound)",
                now,
                &mut fx,
            );
        }
        fx
    }

    /// A granted token for an id still in the queue: the lease was granted
    /// (by a former leader whose record of the waiter's leave was lost), so
    /// the waiter leaves the queue for good and the token is handled as a
    /// re-assertion. `false` (and nothing changes) for a ticket.
    pub(super) fn leave_if_granted(&mut self, id: &str, token: &str, fx: &mut Vec<Effect>) -> bool {
        let granted = self
            .verify(token)
            .is_ok_and(|(t, _)| t.granted && t.lease_id == id);
        if granted && self.queue.remove(id).is_some() {
            fx.push(Effect::Queue(QueueChange::Left(id.to_string())));
            return true;
        }
        false
    }

    /// Checks that `token` is this coordinator's token for lease `id` and,
    /// for an active lease, that its terms name the same addon and host. The
    /// common case, the very token the lease was granted with, is a
    /// constant-time comparison; any other token is verified in full.
    pub(super) fn check_token(&self, id: &str, token: &str) -> Result<(), BookError> {
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
    pub(super) fn unknown_lease_terms(
        &self,
        id: &str,
        token: &str,
    ) -> Result<(LeaseTerms, bool), BookError> {
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
    pub(super) fn reclaim(
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
                    "request {id} is no longer queued (granted, cancelled or given up before the coordinator restarted, and not re-asserted); request again"
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
        fx.push(Effect::Audit(AuditRecord::of_lease(
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
            epoch: self.epoch,
        }));
        fx.push(Effect::Audit(AuditRecord::of_terms(
            kind,
            terms,
            Some(reason.to_string()),
            now,
        )));
    }
}
