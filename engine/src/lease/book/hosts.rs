//! Host views in the book: new views from the fleet, revocation on PANIC,
//! forgetting a host, and whether a host got better (which re-evaluates
//! the queue).

use lull_proto::msg::hosts::QuietState;
use lull_proto::msg::lease::LeaseState;

use super::Book;
use crate::lease::outcome::Effect;
use crate::lease::policy::{self, HostView, Resource};

impl Book {
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

    /// Active leases on a host.
    pub fn leases_on(&self, host_id: &str) -> usize {
        self.by_host.get(host_id).map_or(0, |ids| ids.len())
    }

    /// Forgets a host that holds no active lease (the operator's
    /// `hosts.forget`); refuses, changing nothing, while it holds any.
    pub fn forget_host(&mut self, host_id: &str) -> Result<(), String> {
        match self.leases_on(host_id) {
            0 => {
                self.remove_host(host_id);
                Ok(())
            }
            1 => Err(format!("host {host_id} holds 1 active lease")),
            n => Err(format!("host {host_id} holds {n} active leases")),
        }
    }

    fn got_better(&self, old: &HostView, new: &HostView, now: f64) -> bool {
        let cfg = &self.cfg;
        if new.state < old.state
            || new.capacity(cfg) > old.capacity(cfg)
            || (old.blocked && !new.is_blocked(now))
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
}
