//! What admission sees: a [`HostView`] of each host (filled by the
//! coordinator from the quiet engine), the per-host [`Loads`] and the
//! addon's and fleet's counts ([`AddonLoad`]), bundled as a [`BookView`].

use std::collections::HashMap;

use lull_proto::msg::hosts::QuietState;

use crate::lease::capacity::calculate_capacity;
use crate::lease::config::LeaseConfig;

/// What the lease scheduler needs to know about one host, filled by the
/// coordinator from the quiet engine (and the operator's block list).
#[derive(Debug, Clone, PartialEq)]
pub struct HostView {
    /// Host id.
    pub host_id: String,
    /// Quiet state (after hysteresis and cool-down).
    pub state: QuietState,
    /// Quiet score, 0..100.
    pub quiet_score: f64,
    /// CPU cores (0 when unknown; counts as 1).
    pub cpu_count: u32,
    /// Unix seconds of the last snapshot.
    pub last_seen: f64,
    /// The quiet engine considers the host stale.
    pub stale: bool,
    /// An operator blocked heavy work on this host (or on the fleet).
    pub blocked: bool,
    /// Why it is blocked, when the operator said.
    pub blocked_reason: Option<String>,
    /// Unix seconds when the block ends (a maintenance window's end, or a
    /// block's `until`); `None`: until an operator lifts it. The host is
    /// not blocked from then on, whenever the next view arrives.
    pub blocked_until: Option<f64>,
    /// Unix seconds until which the host is cooling down after a PANIC.
    pub cooldown_until: Option<f64>,
    /// Forecast hint: Unix seconds of the next predicted quiet window.
    pub next_quiet_at: Option<f64>,
    /// CPU percent averaged over two minutes (`cpu_avg_2m`).
    pub cpu_avg_pct: Option<f64>,
    /// 1-minute load average per core.
    pub load_per_core: Option<f64>,
    /// Memory used percent.
    pub mem_pct: Option<f64>,
    /// IO pressure, PSI `io some avg10` percent.
    pub io_pressure: Option<f64>,
    /// Free percent of the fullest disk.
    pub disk_free_pct: Option<f64>,
    /// Network throughput, rx + tx bytes per second over all interfaces.
    pub net_bps: Option<f64>,
}

impl HostView {
    /// Whether an operator block holds at `now`.
    pub fn is_blocked(&self, now: f64) -> bool {
        self.blocked && self.blocked_until.is_none_or(|u| now < u)
    }

    /// A view with the essentials; every optional signal is absent.
    pub fn new(
        host_id: impl Into<String>,
        state: QuietState,
        quiet_score: f64,
        cpu_count: u32,
        last_seen: f64,
    ) -> Self {
        HostView {
            host_id: host_id.into(),
            state,
            quiet_score,
            cpu_count,
            last_seen,
            stale: false,
            blocked: false,
            blocked_reason: None,
            blocked_until: None,
            cooldown_until: None,
            next_quiet_at: None,
            cpu_avg_pct: None,
            load_per_core: None,
            mem_pct: None,
            io_pressure: None,
            disk_free_pct: None,
            net_bps: None,
        }
    }

    /// Whether the host counts as stale at `now`: flagged by the quiet
    /// engine, or silent for longer than `stale_after_sec` (when non-zero).
    pub fn is_stale(&self, now: f64, cfg: &LeaseConfig) -> bool {
        self.stale || (cfg.stale_after_sec > 0.0 && now - self.last_seen > cfg.stale_after_sec)
    }

    /// Capacity of the host for an unconstrained request (what
    /// `scheduler.status` shows).
    pub fn capacity(&self, cfg: &LeaseConfig) -> u32 {
        calculate_capacity(self.cpu_count, self.state, self.quiet_score, &cfg.capacity)
    }
}

/// One active lease as far as the policy cares: its units and the time it
/// is likely to free them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Holder {
    /// Units held.
    pub units: u32,
    /// Unix seconds when the units are likely free again: the lease's
    /// expiry, or its expected end when that is later.
    pub free_at: f64,
}

/// What one host carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostLoad {
    /// Units held by active leases.
    pub used_units: u32,
    /// The active leases.
    pub holders: Vec<Holder>,
}

/// What the book holds on each host, as admission sees it. The used units
/// are asked on every decision, so they must be cheap; the holders only
/// when a host is full, to tell when room frees up.
pub trait Loads {
    /// Units held by active leases on `host_id`.
    fn used_units(&self, host_id: &str) -> u32;
    /// The active leases on `host_id`.
    fn holders(&self, host_id: &str) -> Vec<Holder>;
}

/// Plain per-host loads (a host missing here carries nothing).
impl Loads for HashMap<String, HostLoad> {
    fn used_units(&self, host_id: &str) -> u32 {
        self.get(host_id).map_or(0, |l| l.used_units)
    }

    fn holders(&self, host_id: &str) -> Vec<Holder> {
        self.get(host_id)
            .map(|l| l.holders.clone())
            .unwrap_or_default()
    }
}

/// What the book holds for the requesting addon and the fleet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AddonLoad {
    /// Active leases fleet-wide.
    pub global_active: u32,
    /// Soonest `free_at` among all active leases.
    pub global_next_free_at: Option<f64>,
    /// The addon's active leases.
    pub addon_active: u32,
    /// Soonest `free_at` among the addon's active leases.
    pub addon_next_free_at: Option<f64>,
    /// `Some(seconds)` when the addon's token bucket is empty; `None` when
    /// a token is available or the rate limit does not apply (a queued
    /// request being re-evaluated).
    pub rate_wait_sec: Option<f64>,
}

/// The lease book as seen by the policy.
#[derive(Clone, Copy)]
pub struct BookView<'a> {
    /// The requesting addon's and the fleet's counts.
    pub addon: &'a AddonLoad,
    /// Per-host loads.
    pub loads: &'a dyn Loads,
}
