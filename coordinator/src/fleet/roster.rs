//! The bounds on the hosts the fleet keeps in memory: the cap on known
//! hosts (a new host beyond it is refused, counted, and logged at most once
//! a minute), which hosts get per-host series, and which silent hosts are
//! forgotten. Forgotten hosts stay in Postgres and come back with their
//! next snapshot.

use std::collections::HashMap;

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
    /// Hosts holding per-host series.
    with_gauges: usize,
}

impl Roster {
    /// Bounds as configured.
    pub(super) fn new(cfg: HostsConfig) -> Self {
        Roster {
            cfg,
            full_logged_at: None,
            with_gauges: 0,
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

    /// Per-host series for a new host, while the budget lasts.
    pub(super) fn gauges_for(&mut self, host: &str) -> Option<Gauges> {
        if self.with_gauges >= self.cfg.host_metrics_max {
            return None;
        }
        self.with_gauges += 1;
        Some(Gauges::new(host))
    }

    /// A host leaves: its share of the series budget is free again.
    pub(super) fn released(&mut self, e: &HostEntry) {
        if e.gauges.is_some() {
            self.with_gauges = self.with_gauges.saturating_sub(1);
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
