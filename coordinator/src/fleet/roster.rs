//! The bounds on the hosts the fleet keeps in memory: the cap on known
//! hosts (a new host beyond it is refused, counted, and logged at most once
//! a minute), which hosts get per-host series, and which silent hosts are
//! forgotten. Forgotten hosts stay in Postgres and come back with their
//! next snapshot.
//!
//! Per-host series go to the first `host_metrics_max` distinct hosts and
//! stay theirs: the exporter cannot drop a series, so a forgotten host's
//! series are marked (stale 1, no score, no state) rather than handed to
//! a newcomer, and `/metrics` stays bounded however much the fleet churns.
//! A host that comes back gets its own series again.

use std::collections::{HashMap, HashSet};

use super::host::{Gauges, HostEntry};
use super::metrics as m;
use crate::config::HostsConfig;
use crate::ingest::metrics::STATS_MESSAGES;

/// Seconds between two "host limit reached" log lines.
const FULL_LOG_EVERY_SEC: f64 = 60.0;

/// The cap, the per-host series budget and the eviction age.
pub(super) struct Roster {
    cfg: HostsConfig,
    /// When the cap was last logged.
    full_logged_at: Option<f64>,
    /// Hosts that were given per-host series (never more than
    /// `host_metrics_max`; never shrinks).
    with_gauges: HashSet<String>,
}

impl Roster {
    /// Bounds as configured.
    pub(super) fn new(cfg: HostsConfig) -> Self {
        Roster {
            cfg,
            full_logged_at: None,
            with_gauges: HashSet::new(),
        }
    }

    /// Whether a new host may join `known` hosts at `now`; a refusal is
    /// counted (`host_limit`) and logged at most once a minute.
    pub(super) fn admit(&mut self, known: usize, host: &str, now: f64) -> bool {
        if known < self.cfg.max_hosts {
            return true;
        }
        metrics::counter!(m::HOSTS_REJECTED.name).increment(1);
        metrics::counter!(STATS_MESSAGES.name, "result" => "host_limit").increment(1);
        if self
            .full_logged_at
            .is_none_or(|t| now - t >= FULL_LOG_EVERY_SEC || now < t)
        {
            self.full_logged_at = Some(now);
            tracing::warn!(
                host,
                max_hosts = self.cfg.max_hosts,
                "host limit reached: snapshots of new hosts are refused (see lull_hosts_rejected_total)"
            );
        }
        false
    }

    /// Per-host series for a host that had them before, or a new one
    /// while the budget lasts.
    pub(super) fn gauges_for(&mut self, host: &str) -> Option<Gauges> {
        if !self.with_gauges.contains(host) {
            if self.with_gauges.len() >= self.cfg.host_metrics_max {
                return None;
            }
            self.with_gauges.insert(host.to_string());
        }
        Some(Gauges::new(host))
    }

    /// A host leaves: its series stay (they cannot be removed) but say so:
    /// stale, with no score and no state.
    pub(super) fn released(&mut self, host: &str, e: &HostEntry) {
        if let Some(g) = &e.gauges {
            g.stale.set(1.0);
            g.score.set(f64::NAN);
            super::host::clear_state(host);
        }
    }

    /// The hosts silent for longer than the eviction age at `now` (none
    /// when eviction is off).
    pub(super) fn expired(&self, hosts: &HashMap<String, HostEntry>, now: f64) -> Vec<String> {
        let age = self.cfg.evict_after_sec;
        if !(age.is_finite() && age > 0.0) {
            return Vec::new();
        }
        hosts
            .iter()
            .filter(|(_, e)| now - e.last_seen > age)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_stay_with_the_first_hosts_however_the_fleet_churns() {
        let mut r = Roster::new(HostsConfig {
            host_metrics_max: 2,
            ..Default::default()
        });
        assert!(r.gauges_for("a").is_some());
        assert!(r.gauges_for("b").is_some());
        assert!(r.gauges_for("c").is_none(), "over the budget");
        // "a" is forgotten: its series stay its own, not c's.
        assert!(r.gauges_for("c").is_none());
        assert!(
            r.gauges_for("a").is_some(),
            "a returning host gets them back"
        );
        assert_eq!(r.with_gauges.len(), 2);
    }
}
