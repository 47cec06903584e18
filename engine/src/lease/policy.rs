//! Admission policy and placement: pure functions that decide whether a
//! lease request may be granted on a host, and on which host when the
//! request lets the coordinator choose. Inputs are plain data (a
//! [`HostView`] filled by the coordinator from the quiet engine, a
//! [`BookView`] of what the lease book holds) and an injected clock.
//!
//! Checks, in order (the first that fails is the answer):
//! 1. addon level: `rate_limited`, `addon_limit`, `global_limit`;
//! 2. host level: `unknown_host`, `blocked`, `stale_host`, `panic`,
//!    `panic_cooldown`, then the request is *judged* (constraint-aware, see
//!    [`judge`]): a judged PANIC is `panic`, a judged state other than QUIET
//!    without HIGH priority is `not_quiet`, and finally
//!    `used + requested > capacity(judged state)` is `capacity_exceeded`.

use std::collections::{BTreeMap, HashMap};

use lull_proto::msg::hosts::QuietState;
use lull_proto::msg::lease::{Constraints, DenyReason, HeavyLeaseRequest, Priority};

use super::capacity::calculate_capacity;
use super::config::{ConstraintConfig, LeaseConfig};

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

/// A request may be granted.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// Where.
    pub host_id: String,
    /// Units charged.
    pub units: u32,
    /// Units in use on the host before this grant.
    pub used_units: u32,
    /// The capacity the request was checked against.
    pub capacity_units: u32,
    /// The state the request was judged in (see [`judge`]).
    pub judged_state: QuietState,
}

/// A request is denied.
#[derive(Debug, Clone, PartialEq)]
pub struct Denial {
    /// Machine-readable reason.
    pub code: DenyReason,
    /// Human-readable reason with the numbers.
    pub reason: String,
    /// When to ask again, seconds (clamped to the configured bounds).
    pub retry_after_sec: f64,
    /// The host the denial is about, when there is one.
    pub host_id: Option<String>,
}

/// The policy's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Grant it.
    Grant(Grant),
    /// Deny it.
    Deny(Denial),
}

impl Decision {
    /// Whether this is a grant.
    pub fn is_grant(&self) -> bool {
        matches!(self, Decision::Grant(_))
    }

    /// The denial code, if denied.
    pub fn code(&self) -> Option<DenyReason> {
        match self {
            Decision::Grant(_) => None,
            Decision::Deny(d) => Some(d.code),
        }
    }
}

/// A resource a constrained job is judged on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// The host as a whole (unconstrained jobs).
    System,
    /// CPU (`cpu_heavy`).
    Cpu,
    /// Disks (`disk_write_heavy`).
    Disk,
    /// Network (`network_heavy`).
    Network,
    /// Memory (every constrained job).
    Memory,
}

impl Resource {
    /// Name used in reasons.
    pub fn label(self) -> &'static str {
        match self {
            Resource::System => "System",
            Resource::Cpu => "CPU",
            Resource::Disk => "Disk",
            Resource::Network => "Network",
            Resource::Memory => "Memory",
        }
    }
}

/// How a request sees a host: the state it is judged in and on which
/// resource. The numbers behind it are only spelled out when a denial needs
/// them ([`Judgement::detail`]), so a grant formats no text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judgement {
    /// The judged state.
    pub state: QuietState,
    /// The resource that decided it (the worst one).
    pub resource: Resource,
}

impl Judgement {
    /// The numbers behind the judgement of `host`, e.g.
    /// `io_pressure=22.0%, disk_free_pct=40.0%`.
    pub fn detail(&self, host: &HostView) -> String {
        let fallback = |what: &str| {
            format!(
                "no {what} signal, judged on the host state (quiet_score={:.1})",
                host.quiet_score
            )
        };
        let join = |parts: [Option<String>; 2], what: &str| {
            let parts: Vec<String> = parts.into_iter().flatten().collect();
            if parts.is_empty() {
                fallback(what)
            } else {
                parts.join(", ")
            }
        };
        match self.resource {
            Resource::System => format!("quiet_score={:.1}", host.quiet_score),
            Resource::Cpu => join(
                [
                    host.cpu_avg_pct.map(|v| format!("cpu_avg_2m={v:.1}%")),
                    host.load_per_core.map(|v| format!("load_per_core={v:.2}")),
                ],
                "CPU",
            ),
            Resource::Disk => join(
                [
                    host.io_pressure.map(|v| format!("io_pressure={v:.1}%")),
                    host.disk_free_pct.map(|v| format!("disk_free_pct={v:.1}%")),
                ],
                "disk",
            ),
            Resource::Network => host
                .net_bps
                .map(|v| format!("net_bps={v:.0}"))
                .unwrap_or_else(|| fallback("network")),
            Resource::Memory => host
                .mem_pct
                .map(|v| format!("mem_pct={v:.1}%"))
                .unwrap_or_else(|| fallback("memory")),
        }
    }
}

fn band(v: f64, quiet_below: f64, normal_below: f64) -> QuietState {
    if v < quiet_below {
        QuietState::Quiet
    } else if v < normal_below {
        QuietState::Normal
    } else {
        // Also NaN.
        QuietState::Busy
    }
}

/// The worst of the states that are known; `None` when none is.
fn worst_of(states: impl IntoIterator<Item = Option<QuietState>>) -> Option<QuietState> {
    states.into_iter().flatten().max()
}

/// Judges one resource of `host` from its own signals. A resource with no
/// signal at all falls back to the host's overall state (never better than
/// what is known).
pub fn resource_state(resource: Resource, host: &HostView, c: &ConstraintConfig) -> Judgement {
    let state = match resource {
        Resource::System => Some(host.state),
        Resource::Cpu => worst_of([
            host.cpu_avg_pct
                .map(|v| band(v, c.cpu_quiet_pct, c.cpu_normal_pct)),
            host.load_per_core
                .map(|v| band(v, c.load_quiet_per_core, c.load_normal_per_core)),
        ]),
        Resource::Disk => worst_of([
            host.io_pressure
                .map(|v| band(v, c.io_quiet_pct, c.io_normal_pct)),
            host.disk_free_pct.map(|free| {
                if free.is_nan() || free <= c.disk_free_panic_pct {
                    QuietState::Panic
                } else if free >= c.disk_free_quiet_pct {
                    QuietState::Quiet
                } else if free >= c.disk_free_normal_pct {
                    QuietState::Normal
                } else {
                    QuietState::Busy
                }
            }),
        ]),
        Resource::Network => host
            .net_bps
            .map(|v| band(v, c.net_quiet_bps, c.net_normal_bps)),
        Resource::Memory => host
            .mem_pct
            .map(|v| band(v, c.mem_quiet_pct, c.mem_normal_pct)),
    };
    Judgement {
        state: state.unwrap_or(host.state),
        resource,
    }
}

/// Constraint-aware judgement of a host for a request.
///
/// * No constraint flag: the host's overall quiet state.
/// * With flags: the worst of the flagged resources (CPU: `cpu_avg_2m` and
///   load per core; disk: IO pressure and free disk, PANIC at or below
///   `disk_free_panic_pct`; network: throughput), and memory when the host
///   reports it (memory is shared by every job). The overall state does not
///   enter, so a disk-heavy job may be judged QUIET on a host that is BUSY
///   because of its CPU.
///
/// Ties keep the first of CPU, disk, network, memory.
pub fn judge(constraints: &Constraints, host: &HostView, cfg: &ConstraintConfig) -> Judgement {
    let mut flagged = Vec::with_capacity(4);
    if constraints.cpu_heavy {
        flagged.push(Resource::Cpu);
    }
    if constraints.disk_write_heavy {
        flagged.push(Resource::Disk);
    }
    if constraints.network_heavy {
        flagged.push(Resource::Network);
    }
    if flagged.is_empty() {
        return resource_state(Resource::System, host, cfg);
    }
    if host.mem_pct.is_some() {
        flagged.push(Resource::Memory);
    }
    let mut best: Option<Judgement> = None;
    for r in flagged {
        let j = resource_state(r, host, cfg);
        match &best {
            Some(b) if b.state >= j.state => {}
            _ => best = Some(j),
        }
    }
    best.unwrap_or_else(|| resource_state(Resource::System, host, cfg))
}

fn deny(
    code: DenyReason,
    reason: String,
    retry: f64,
    host: Option<&str>,
    cfg: &LeaseConfig,
) -> Decision {
    Decision::Deny(Denial {
        code,
        reason,
        retry_after_sec: cfg.clamp_retry(retry),
        host_id: host.map(str::to_string),
    })
}

fn until(t: Option<f64>, now: f64) -> Option<f64> {
    t.map(|t| t - now).filter(|d| *d > 0.0)
}

/// Seconds until enough of the `holders` (together `used_units`) are likely
/// gone for `units` more to fit under `capacity`; `None` when even an empty
/// host would not fit them.
pub fn capacity_retry(
    mut holders: Vec<Holder>,
    used_units: u32,
    units: u32,
    capacity: u32,
    now: f64,
) -> Option<f64> {
    if units > capacity {
        return None;
    }
    let need = u64::from(used_units) + u64::from(units);
    if need <= u64::from(capacity) {
        return Some(0.0);
    }
    let mut to_free = need - u64::from(capacity);
    holders.sort_by(|a, b| a.free_at.total_cmp(&b.free_at));
    for h in holders {
        to_free = to_free.saturating_sub(u64::from(h.units));
        if to_free == 0 {
            return Some((h.free_at - now).max(0.0));
        }
    }
    None
}

/// The addon-level checks (rate limit, caps), independent of the host.
pub fn check_addon(
    req: &HeavyLeaseRequest,
    addon: &AddonLoad,
    cfg: &LeaseConfig,
    now: f64,
) -> Option<Denial> {
    let decision = if let Some(wait) = addon.rate_wait_sec {
        let (rate, burst) = cfg.addon_rate(&req.addon_id);
        deny(
            DenyReason::RateLimited,
            format!(
                "Rate limited: addon {} may ask {rate} times/s (burst {burst}); next token in {wait:.1}s",
                req.addon_id
            ),
            wait,
            None,
            cfg,
        )
    } else if addon.addon_active >= cfg.addon_max(&req.addon_id) {
        deny(
            DenyReason::AddonLimit,
            format!(
                "Addon limit reached: addon={}, active={}, max={}",
                req.addon_id,
                addon.addon_active,
                cfg.addon_max(&req.addon_id)
            ),
            until(addon.addon_next_free_at, now).unwrap_or(cfg.retry.default_sec),
            None,
            cfg,
        )
    } else if addon.global_active >= cfg.max_global {
        deny(
            DenyReason::GlobalLimit,
            format!(
                "Global limit reached: active={}, max={}",
                addon.global_active, cfg.max_global
            ),
            until(addon.global_next_free_at, now).unwrap_or(cfg.retry.default_sec),
            None,
            cfg,
        )
    } else {
        return None;
    };
    match decision {
        Decision::Deny(d) => Some(d),
        Decision::Grant(_) => None,
    }
}

/// The host-level checks of a request costing `units` on `host` (`None`:
/// the host is unknown; `host_id` names it for the reason).
pub fn admit_host(
    req: &HeavyLeaseRequest,
    units: u32,
    host_id: &str,
    host: Option<&HostView>,
    loads: &dyn Loads,
    cfg: &LeaseConfig,
    now: f64,
) -> Decision {
    let Some(h) = host else {
        return deny(
            DenyReason::UnknownHost,
            format!("Unknown host {host_id}: no agent has reported it"),
            cfg.retry.default_sec,
            Some(host_id),
            cfg,
        );
    };
    let id = Some(h.host_id.as_str());
    if h.blocked {
        let why = h
            .blocked_reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        return deny(
            DenyReason::Blocked,
            format!("Host {} is blocked by an operator{why}", h.host_id),
            cfg.retry.blocked_sec,
            id,
            cfg,
        );
    }
    if h.is_stale(now, cfg) {
        return deny(
            DenyReason::StaleHost,
            format!(
                "Host {} is stale: last snapshot {:.0}s ago",
                h.host_id,
                (now - h.last_seen).max(0.0)
            ),
            cfg.retry.default_sec,
            id,
            cfg,
        );
    }
    let forecast = until(h.next_quiet_at, now);
    if h.state == QuietState::Panic {
        return deny(
            DenyReason::Panic,
            format!(
                "System is PANIC; no heavy work (host={}, quiet_score={:.1})",
                h.host_id, h.quiet_score
            ),
            forecast.unwrap_or(0.0).max(cfg.retry.panic_sec),
            id,
            cfg,
        );
    }
    if let Some(left) = until(h.cooldown_until, now) {
        return deny(
            DenyReason::PanicCooldown,
            format!(
                "Recent PANIC detected; cooling down (host={}, {left:.0}s left)",
                h.host_id
            ),
            left,
            id,
            cfg,
        );
    }
    let j = judge(&req.constraints, h, &cfg.constraints);
    if j.state == QuietState::Panic {
        return deny(
            DenyReason::Panic,
            format!(
                "{} is PANIC; no heavy work (host={}, {})",
                j.resource.label(),
                h.host_id,
                j.detail(h)
            ),
            forecast.unwrap_or(0.0).max(cfg.retry.panic_sec),
            id,
            cfg,
        );
    }
    if j.state != QuietState::Quiet && req.priority != Priority::High {
        return deny(
            DenyReason::NotQuiet,
            format!(
                "{} is {}; waiting for QUIET (host={}, {})",
                j.resource.label(),
                j.state,
                h.host_id,
                j.detail(h)
            ),
            forecast.unwrap_or(cfg.retry.default_sec),
            id,
            cfg,
        );
    }
    let capacity = calculate_capacity(h.cpu_count, j.state, h.quiet_score, &cfg.capacity);
    let used_units = loads.used_units(&h.host_id);
    if u64::from(used_units) + u64::from(units) > u64::from(capacity) {
        let holders = loads.holders(&h.host_id);
        let retry = match capacity_retry(holders, used_units, units, capacity, now) {
            Some(r) => r,
            // Only a better state can make room: the forecast, if any.
            None => forecast.unwrap_or(cfg.retry.default_sec),
        };
        return deny(
            DenyReason::CapacityExceeded,
            format!("Capacity exceeded: used={used_units}, requested={units}, capacity={capacity}"),
            retry,
            id,
            cfg,
        );
    }
    Decision::Grant(Grant {
        host_id: h.host_id.clone(),
        units,
        used_units,
        capacity_units: capacity,
        judged_state: j.state,
    })
}

/// Admission of a request on one host (the request's `host_id`, looked up
/// by the caller; `None` when unknown).
pub fn admit(
    req: &HeavyLeaseRequest,
    host: Option<&HostView>,
    book: &BookView<'_>,
    cfg: &LeaseConfig,
    now: f64,
) -> Decision {
    let units = cfg.units_for(req);
    if let Some(d) = check_addon(req, book.addon, cfg, now) {
        return Decision::Deny(d);
    }
    let host_id = host
        .map(|h| h.host_id.as_str())
        .or(req.host_id.as_deref())
        .unwrap_or("?");
    admit_host(req, units, host_id, host, book.loads, cfg, now)
}

/// Placement: the quietest eligible host with room. Among the hosts that
/// would grant, the highest quiet score wins, then the most free units
/// (capacity minus used, before the grant), then the smallest host id. When
/// none would, the denial with the smallest `retry_after_sec` is returned
/// (ties: smallest host id), its reason prefixed with how many hosts were
/// checked.
pub fn place<'h>(
    req: &HeavyLeaseRequest,
    hosts: impl IntoIterator<Item = &'h HostView>,
    book: &BookView<'_>,
    cfg: &LeaseConfig,
    now: f64,
) -> Decision {
    let units = cfg.units_for(req);
    if let Some(d) = check_addon(req, book.addon, cfg, now) {
        return Decision::Deny(d);
    }
    let mut best: Option<(f64, u32, Grant)> = None;
    let mut soonest: Option<Denial> = None;
    let mut checked = 0usize;
    for h in hosts {
        checked += 1;
        match admit_host(req, units, &h.host_id, Some(h), book.loads, cfg, now) {
            Decision::Grant(g) => {
                let free = g.capacity_units.saturating_sub(g.used_units);
                let better = match &best {
                    None => true,
                    Some((score, bfree, bg)) => h
                        .quiet_score
                        .total_cmp(score)
                        .then(free.cmp(bfree))
                        .then(bg.host_id.cmp(&g.host_id))
                        .is_gt(),
                };
                if better {
                    best = Some((h.quiet_score, free, g));
                }
            }
            Decision::Deny(d) => {
                let better = match &soonest {
                    None => true,
                    Some(s) => d
                        .retry_after_sec
                        .total_cmp(&s.retry_after_sec)
                        .then(d.host_id.cmp(&s.host_id))
                        .is_lt(),
                };
                if better {
                    soonest = Some(d);
                }
            }
        }
    }
    if let Some((_, _, g)) = best {
        return Decision::Grant(g);
    }
    match soonest {
        Some(mut d) => {
            let host = d.host_id.clone().unwrap_or_default();
            d.reason = format!(
                "No host can take {units} units now ({checked} checked); soonest on {host}: {}",
                d.reason
            );
            Decision::Deny(d)
        }
        None => deny(
            DenyReason::UnknownHost,
            "No hosts are known yet: no agent has reported".to_string(),
            cfg.retry.default_sec,
            None,
            cfg,
        ),
    }
}

/// Admission or placement, as the request asks: `host_id` given → [`admit`]
/// on that host; omitted → [`place`] over every host.
pub fn decide(
    req: &HeavyLeaseRequest,
    hosts: &BTreeMap<String, HostView>,
    book: &BookView<'_>,
    cfg: &LeaseConfig,
    now: f64,
) -> Decision {
    match &req.host_id {
        Some(id) => admit(req, hosts.get(id), book, cfg, now),
        None => place(req, hosts.values(), book, cfg, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::config::CapacityConfig;
    use lull_proto::msg::lease::CostClass;

    const NOW: f64 = 1_000_000.0;

    fn cfg() -> LeaseConfig {
        LeaseConfig::default()
    }

    fn host(id: &str, state: QuietState, score: f64) -> HostView {
        HostView::new(id, state, score, 4, NOW)
    }

    fn req(units: i64) -> HeavyLeaseRequest {
        HeavyLeaseRequest {
            addon_id: "indexer".into(),
            job_type: "reindex".into(),
            host_id: Some("h1".into()),
            cost_units: Some(units),
            cost_class: None,
            expected_duration_sec: None,
            priority: Priority::Normal,
            constraints: Constraints::default(),
            wait: false,
            wait_timeout_sec: None,
        }
    }

    fn high(mut r: HeavyLeaseRequest) -> HeavyLeaseRequest {
        r.priority = Priority::High;
        r
    }

    fn admit_on(
        r: &HeavyLeaseRequest,
        h: Option<&HostView>,
        load: HostLoad,
        addon: AddonLoad,
        c: &LeaseConfig,
    ) -> Decision {
        let mut loads = HashMap::new();
        loads.insert("h1".to_string(), load);
        let view = BookView {
            addon: &addon,
            loads: &loads,
        };
        admit(r, h, &view, c, NOW)
    }

    fn simple(r: &HeavyLeaseRequest, h: &HostView) -> Decision {
        admit_on(
            r,
            Some(h),
            HostLoad::default(),
            AddonLoad::default(),
            &cfg(),
        )
    }

    fn denial(d: Decision) -> Denial {
        match d {
            Decision::Deny(d) => d,
            Decision::Grant(g) => panic!("expected a denial, got {g:?}"),
        }
    }

    fn grant(d: Decision) -> Grant {
        match d {
            Decision::Grant(g) => g,
            Decision::Deny(d) => panic!("expected a grant, got {d:?}"),
        }
    }

    #[test]
    fn quiet_host_with_room_grants() {
        let g = grant(simple(&req(30), &host("h1", QuietState::Quiet, 100.0)));
        assert_eq!(g.host_id, "h1");
        assert_eq!(g.units, 30);
        assert_eq!(g.capacity_units, 80);
        assert_eq!(g.used_units, 0);
        assert_eq!(g.judged_state, QuietState::Quiet);
    }

    #[test]
    fn cost_class_maps_to_units() {
        let mut r = req(1);
        r.cost_units = None;
        r.cost_class = Some(CostClass::High);
        let g = grant(simple(&r, &host("h1", QuietState::Quiet, 100.0)));
        assert_eq!(g.units, 60);
    }

    #[test]
    fn unknown_host() {
        let d = denial(admit_on(
            &req(10),
            None,
            HostLoad::default(),
            AddonLoad::default(),
            &cfg(),
        ));
        assert_eq!(d.code, DenyReason::UnknownHost);
        assert_eq!(d.reason, "Unknown host h1: no agent has reported it");
        assert_eq!(d.retry_after_sec, 30.0);
    }

    #[test]
    fn blocked_host() {
        let mut h = host("h1", QuietState::Quiet, 100.0);
        h.blocked = true;
        h.blocked_reason = Some("maintenance".into());
        let d = denial(simple(&req(10), &h));
        assert_eq!(d.code, DenyReason::Blocked);
        assert_eq!(d.reason, "Host h1 is blocked by an operator: maintenance");
        assert_eq!(d.retry_after_sec, 60.0);
        // Even HIGH priority.
        assert_eq!(simple(&high(req(10)), &h).code(), Some(DenyReason::Blocked));
    }

    #[test]
    fn stale_host_by_flag_or_age() {
        let mut h = host("h1", QuietState::Quiet, 100.0);
        h.stale = true;
        assert_eq!(simple(&req(10), &h).code(), Some(DenyReason::StaleHost));
        let mut h = host("h1", QuietState::Quiet, 100.0);
        h.last_seen = NOW - 45.0;
        let d = denial(simple(&req(10), &h));
        assert_eq!(d.code, DenyReason::StaleHost);
        assert_eq!(d.reason, "Host h1 is stale: last snapshot 45s ago");
        // The age check can be switched off.
        let c = LeaseConfig {
            stale_after_sec: 0.0,
            ..cfg()
        };
        assert!(admit_on(
            &req(10),
            Some(&h),
            HostLoad::default(),
            AddonLoad::default(),
            &c
        )
        .is_grant());
    }

    #[test]
    fn panic_is_a_hard_deny() {
        let mut h = host("h1", QuietState::Panic, 4.0);
        let d = denial(simple(&high(req(1)), &h));
        assert_eq!(d.code, DenyReason::Panic);
        assert_eq!(
            d.reason,
            "System is PANIC; no heavy work (host=h1, quiet_score=4.0)"
        );
        assert_eq!(d.retry_after_sec, 60.0);
        // A forecast further out than the default is used.
        h.next_quiet_at = Some(NOW + 900.0);
        assert_eq!(denial(simple(&req(1), &h)).retry_after_sec, 900.0);
    }

    #[test]
    fn panic_cooldown_is_a_hard_deny() {
        let mut h = host("h1", QuietState::Quiet, 90.0);
        h.cooldown_until = Some(NOW + 42.0);
        let d = denial(simple(&high(req(1)), &h));
        assert_eq!(d.code, DenyReason::PanicCooldown);
        assert_eq!(
            d.reason,
            "Recent PANIC detected; cooling down (host=h1, 42s left)"
        );
        assert_eq!(d.retry_after_sec, 42.0);
        // A finished cool-down is ignored.
        h.cooldown_until = Some(NOW - 1.0);
        assert!(simple(&req(1), &h).is_grant());
    }

    #[test]
    fn not_quiet_without_high_priority() {
        let mut h = host("h1", QuietState::Busy, 30.0);
        let d = denial(simple(&req(5), &h));
        assert_eq!(d.code, DenyReason::NotQuiet);
        assert_eq!(
            d.reason,
            "System is BUSY; waiting for QUIET (host=h1, quiet_score=30.0)"
        );
        assert_eq!(d.retry_after_sec, 30.0);
        // The forecast hint sets retry_after.
        h.next_quiet_at = Some(NOW + 120.0);
        assert_eq!(denial(simple(&req(5), &h)).retry_after_sec, 120.0);
        // LOW priority too.
        let mut low = req(5);
        low.priority = Priority::Low;
        assert_eq!(simple(&low, &h).code(), Some(DenyReason::NotQuiet));
        let n = host("h1", QuietState::Normal, 60.0);
        assert_eq!(simple(&req(5), &n).code(), Some(DenyReason::NotQuiet));
    }

    #[test]
    fn high_priority_runs_when_not_quiet_within_the_smaller_capacity() {
        let busy = host("h1", QuietState::Busy, 25.0);
        // BUSY at score 25 on 4 cores: 10 units.
        let g = grant(simple(&high(req(10)), &busy));
        assert_eq!(g.capacity_units, 10);
        assert_eq!(g.judged_state, QuietState::Busy);
        let d = denial(simple(&high(req(30)), &busy));
        assert_eq!(d.code, DenyReason::CapacityExceeded);
        assert_eq!(
            d.reason,
            "Capacity exceeded: used=0, requested=30, capacity=10"
        );
        let normal = host("h1", QuietState::Normal, 50.0);
        assert_eq!(grant(simple(&high(req(30)), &normal)).capacity_units, 36);
    }

    fn seventy() -> LeaseConfig {
        LeaseConfig {
            capacity: CapacityConfig {
                base_units: 70.0,
                units_per_core: 0.0,
                headroom_pct: 0.0,
                score_weight: 0.0,
                ..CapacityConfig::default()
            },
            ..cfg()
        }
    }

    #[test]
    fn capacity_exceeded_with_the_numbers_and_soonest_release() {
        let c = seventy();
        let h = host("h1", QuietState::Quiet, 100.0);
        let load = HostLoad {
            used_units: 60,
            holders: vec![
                Holder {
                    units: 30,
                    free_at: NOW + 20.0,
                },
                Holder {
                    units: 30,
                    free_at: NOW + 12.0,
                },
            ],
        };
        let d = denial(admit_on(
            &req(30),
            Some(&h),
            load.clone(),
            AddonLoad::default(),
            &c,
        ));
        assert_eq!(d.code, DenyReason::CapacityExceeded);
        assert_eq!(
            d.reason,
            "Capacity exceeded: used=60, requested=30, capacity=70"
        );
        // Freeing the 30 units that go first (in 12 s) is enough.
        assert_eq!(d.retry_after_sec, 12.0);
        // 10 units fit exactly: used + requested == capacity is allowed.
        assert!(admit_on(&req(10), Some(&h), load.clone(), AddonLoad::default(), &c).is_grant());
        // 11 do not.
        assert!(!admit_on(&req(11), Some(&h), load.clone(), AddonLoad::default(), &c).is_grant());
        // Needing both releases waits for the later one.
        assert_eq!(
            capacity_retry(load.holders.clone(), load.used_units, 70, 70, NOW),
            Some(20.0)
        );
        // More than the whole capacity: only a better state could help.
        assert_eq!(
            capacity_retry(load.holders.clone(), load.used_units, 71, 70, NOW),
            None
        );
    }

    #[test]
    fn larger_than_capacity_uses_the_forecast_or_default() {
        let c = seventy();
        let mut h = host("h1", QuietState::Quiet, 100.0);
        let d = denial(admit_on(
            &req(90),
            Some(&h),
            HostLoad::default(),
            AddonLoad::default(),
            &c,
        ));
        assert_eq!(d.code, DenyReason::CapacityExceeded);
        assert_eq!(d.retry_after_sec, 30.0);
        h.next_quiet_at = Some(NOW + 200.0);
        let d = denial(admit_on(
            &req(90),
            Some(&h),
            HostLoad::default(),
            AddonLoad::default(),
            &c,
        ));
        assert_eq!(d.retry_after_sec, 200.0);
    }

    #[test]
    fn rate_limited() {
        let addon = AddonLoad {
            rate_wait_sec: Some(0.4),
            ..Default::default()
        };
        let d = denial(admit_on(
            &req(1),
            Some(&host("h1", QuietState::Quiet, 100.0)),
            HostLoad::default(),
            addon,
            &cfg(),
        ));
        assert_eq!(d.code, DenyReason::RateLimited);
        assert_eq!(
            d.reason,
            "Rate limited: addon indexer may ask 2 times/s (burst 10); next token in 0.4s"
        );
        // Clamped to the minimum of 1 s.
        assert_eq!(d.retry_after_sec, 1.0);
    }

    #[test]
    fn addon_and_global_caps() {
        let h = host("h1", QuietState::Quiet, 100.0);
        let addon = AddonLoad {
            addon_active: 8,
            addon_next_free_at: Some(NOW + 7.0),
            ..Default::default()
        };
        let d = denial(admit_on(
            &req(1),
            Some(&h),
            HostLoad::default(),
            addon,
            &cfg(),
        ));
        assert_eq!(d.code, DenyReason::AddonLimit);
        assert_eq!(
            d.reason,
            "Addon limit reached: addon=indexer, active=8, max=8"
        );
        assert_eq!(d.retry_after_sec, 7.0);
        let addon = AddonLoad {
            global_active: 1000,
            addon_active: 1,
            ..Default::default()
        };
        let d = denial(admit_on(
            &req(1),
            Some(&h),
            HostLoad::default(),
            addon,
            &cfg(),
        ));
        assert_eq!(d.code, DenyReason::GlobalLimit);
        assert_eq!(d.reason, "Global limit reached: active=1000, max=1000");
        assert_eq!(d.retry_after_sec, 30.0);
        // Below both caps: granted.
        let addon = AddonLoad {
            global_active: 999,
            addon_active: 7,
            ..Default::default()
        };
        assert!(admit_on(&req(1), Some(&h), HostLoad::default(), addon, &cfg()).is_grant());
    }

    /// A host that is BUSY because of its CPU, with idle disks and network.
    fn cpu_busy() -> HostView {
        let mut h = host("h1", QuietState::Busy, 35.0);
        h.cpu_avg_pct = Some(92.0);
        h.load_per_core = Some(1.6);
        h.mem_pct = Some(40.0);
        h.io_pressure = Some(1.5);
        h.disk_free_pct = Some(60.0);
        h.net_bps = Some(1_000_000.0);
        h
    }

    fn with(c: Constraints) -> HeavyLeaseRequest {
        let mut r = req(30);
        r.constraints = c;
        r
    }

    const DISK: Constraints = Constraints {
        cpu_heavy: false,
        disk_write_heavy: true,
        network_heavy: false,
    };
    const CPU: Constraints = Constraints {
        cpu_heavy: true,
        disk_write_heavy: false,
        network_heavy: false,
    };
    const NET: Constraints = Constraints {
        cpu_heavy: false,
        disk_write_heavy: false,
        network_heavy: true,
    };

    #[test]
    fn disk_heavy_job_runs_on_a_cpu_busy_host_with_idle_disks() {
        let h = cpu_busy();
        // Unconstrained: the host's state decides.
        let d = denial(simple(&req(30), &h));
        assert_eq!(d.code, DenyReason::NotQuiet);
        // Disk-heavy: judged on IO pressure, free disk (and memory).
        let g = grant(simple(&with(DISK), &h));
        assert_eq!(g.judged_state, QuietState::Quiet);
        // QUIET capacity at score 35: 80 * (1 - 0.2 * 0.65) = 69.
        assert_eq!(g.capacity_units, 69);
        // CPU-heavy: judged on CPU.
        let d = denial(simple(&with(CPU), &h));
        assert_eq!(d.code, DenyReason::NotQuiet);
        assert_eq!(
            d.reason,
            "CPU is BUSY; waiting for QUIET (host=h1, cpu_avg_2m=92.0%, load_per_core=1.60)"
        );
        // Network-heavy on an idle network.
        assert!(simple(&with(NET), &h).is_grant());
        // Several flags: the worst resource decides.
        let both = Constraints {
            cpu_heavy: true,
            disk_write_heavy: true,
            network_heavy: false,
        };
        assert_eq!(judge(&both, &h, &cfg().constraints).resource, Resource::Cpu);
    }

    #[test]
    fn busy_disks_or_network_deny_constrained_jobs_on_a_quiet_host() {
        let mut h = host("h1", QuietState::Quiet, 90.0);
        h.io_pressure = Some(45.0);
        h.disk_free_pct = Some(50.0);
        h.net_bps = Some(80_000_000.0);
        let d = denial(simple(&with(DISK), &h));
        assert_eq!(
            d.reason,
            "Disk is BUSY; waiting for QUIET (host=h1, io_pressure=45.0%, disk_free_pct=50.0%)"
        );
        let d = denial(simple(&with(NET), &h));
        assert_eq!(
            d.reason,
            "Network is BUSY; waiting for QUIET (host=h1, net_bps=80000000)"
        );
        // Unconstrained jobs only look at the overall state.
        assert!(simple(&req(30), &h).is_grant());
    }

    #[test]
    fn nearly_full_disk_refuses_disk_heavy_jobs_outright() {
        let mut h = host("h1", QuietState::Quiet, 80.0);
        h.disk_free_pct = Some(2.5);
        let d = denial(simple(&high(with(DISK)), &h));
        assert_eq!(d.code, DenyReason::Panic);
        assert_eq!(
            d.reason,
            "Disk is PANIC; no heavy work (host=h1, disk_free_pct=2.5%)"
        );
        // A network job does not care.
        assert!(simple(&with(NET), &h).is_grant());
    }

    #[test]
    fn memory_is_judged_for_every_constrained_job() {
        let mut h = cpu_busy();
        h.mem_pct = Some(88.0);
        let d = denial(simple(&with(DISK), &h));
        assert_eq!(
            d.reason,
            "Memory is BUSY; waiting for QUIET (host=h1, mem_pct=88.0%)"
        );
    }

    #[test]
    fn missing_signals_fall_back_to_the_host_state() {
        let h = host("h1", QuietState::Busy, 40.0);
        let j = judge(&DISK, &h, &cfg().constraints);
        assert_eq!(j.state, QuietState::Busy);
        assert_eq!(
            j.detail(&h),
            "no disk signal, judged on the host state (quiet_score=40.0)"
        );
        assert_eq!(simple(&with(DISK), &h).code(), Some(DenyReason::NotQuiet));
        // One signal is enough to judge.
        let mut h = host("h1", QuietState::Busy, 40.0);
        h.disk_free_pct = Some(50.0);
        assert!(simple(&with(DISK), &h).is_grant());
    }

    #[test]
    fn bands() {
        let c = cfg().constraints;
        let mut h = host("h1", QuietState::Quiet, 100.0);
        for (cpu, want) in [
            (10.0, QuietState::Quiet),
            (50.0, QuietState::Normal),
            (70.0, QuietState::Busy),
            (f64::NAN, QuietState::Busy),
        ] {
            h.cpu_avg_pct = Some(cpu);
            assert_eq!(resource_state(Resource::Cpu, &h, &c).state, want, "{cpu}");
        }
        h.io_pressure = None;
        for (free, want) in [
            (50.0, QuietState::Quiet),
            (10.0, QuietState::Normal),
            (5.0, QuietState::Busy),
            (3.0, QuietState::Panic),
        ] {
            h.disk_free_pct = Some(free);
            assert_eq!(resource_state(Resource::Disk, &h, &c).state, want, "{free}");
        }
        for (bps, want) in [
            (1e6, QuietState::Quiet),
            (2e7, QuietState::Normal),
            (6e7, QuietState::Busy),
        ] {
            h.net_bps = Some(bps);
            assert_eq!(
                resource_state(Resource::Network, &h, &c).state,
                want,
                "{bps}"
            );
        }
    }

    fn place_on(
        r: &HeavyLeaseRequest,
        hosts: &[HostView],
        loads: HashMap<String, HostLoad>,
        c: &LeaseConfig,
    ) -> Decision {
        let addon = AddonLoad::default();
        let view = BookView {
            addon: &addon,
            loads: &loads,
        };
        place(r, hosts.iter(), &view, c, NOW)
    }

    fn unplaced(units: i64) -> HeavyLeaseRequest {
        let mut r = req(units);
        r.host_id = None;
        r
    }

    #[test]
    fn placement_picks_the_quietest_eligible_host() {
        let hosts = vec![
            host("a", QuietState::Quiet, 80.0),
            host("b", QuietState::Quiet, 95.0),
            host("c", QuietState::Busy, 99.0), // not eligible for NORMAL priority
        ];
        let g = grant(place_on(&unplaced(10), &hosts, HashMap::new(), &cfg()));
        assert_eq!(g.host_id, "b");
        // b has no room for 70 more: a it is.
        let mut loads = HashMap::new();
        loads.insert(
            "b".to_string(),
            HostLoad {
                used_units: 50,
                holders: vec![],
            },
        );
        let g = grant(place_on(&unplaced(30), &hosts, loads, &cfg()));
        assert_eq!(g.host_id, "a");
    }

    #[test]
    fn placement_tie_breaks_on_free_units_then_host_id() {
        let hosts = vec![
            host("z", QuietState::Quiet, 90.0),
            host("y", QuietState::Quiet, 90.0),
            host("x", QuietState::Quiet, 90.0),
        ];
        let mut loads = HashMap::new();
        loads.insert(
            "x".to_string(),
            HostLoad {
                used_units: 20,
                holders: vec![],
            },
        );
        // y and z have the same score and room; y has the smaller id.
        let g = grant(place_on(&unplaced(10), &hosts, loads.clone(), &cfg()));
        assert_eq!(g.host_id, "y");
        // Order of the input does not matter.
        let mut rev = hosts.clone();
        rev.reverse();
        let g = grant(place_on(&unplaced(10), &rev, loads.clone(), &cfg()));
        assert_eq!(g.host_id, "y");
        // More free units beat the smaller id.
        loads.insert(
            "y".to_string(),
            HostLoad {
                used_units: 5,
                holders: vec![],
            },
        );
        let g = grant(place_on(&unplaced(10), &hosts, loads, &cfg()));
        assert_eq!(g.host_id, "z");
    }

    #[test]
    fn placement_denial_is_the_soonest_one() {
        let mut a = host("a", QuietState::Quiet, 90.0);
        a.cooldown_until = Some(NOW + 50.0);
        let b = host("b", QuietState::Busy, 30.0); // not_quiet, retry 30
        let d = denial(place_on(&unplaced(10), &[a, b], HashMap::new(), &cfg()));
        assert_eq!(d.code, DenyReason::NotQuiet);
        assert_eq!(d.host_id.as_deref(), Some("b"));
        assert_eq!(d.retry_after_sec, 30.0);
        assert_eq!(
            d.reason,
            "No host can take 10 units now (2 checked); soonest on b: System is BUSY; waiting for QUIET (host=b, quiet_score=30.0)"
        );
        // No hosts at all.
        let d = denial(place_on(&unplaced(10), &[], HashMap::new(), &cfg()));
        assert_eq!(d.code, DenyReason::UnknownHost);
    }

    #[test]
    fn addon_checks_come_before_placement() {
        let addon = AddonLoad {
            addon_active: 8,
            ..Default::default()
        };
        let loads = HashMap::new();
        let view = BookView {
            addon: &addon,
            loads: &loads,
        };
        let hosts = [host("a", QuietState::Quiet, 90.0)];
        let d = place(&unplaced(1), hosts.iter(), &view, &cfg(), NOW);
        assert_eq!(d.code(), Some(DenyReason::AddonLimit));
    }

    #[test]
    fn decide_targets_or_places() {
        let mut hosts = BTreeMap::new();
        hosts.insert("a".to_string(), host("a", QuietState::Quiet, 70.0));
        hosts.insert("b".to_string(), host("b", QuietState::Quiet, 95.0));
        let addon = AddonLoad::default();
        let loads = HashMap::new();
        let view = BookView {
            addon: &addon,
            loads: &loads,
        };
        let mut r = req(10);
        r.host_id = Some("a".into());
        assert_eq!(grant(decide(&r, &hosts, &view, &cfg(), NOW)).host_id, "a");
        r.host_id = None;
        assert_eq!(grant(decide(&r, &hosts, &view, &cfg(), NOW)).host_id, "b");
        r.host_id = Some("nope".into());
        let d = denial(decide(&r, &hosts, &view, &cfg(), NOW));
        assert_eq!(d.code, DenyReason::UnknownHost);
        assert_eq!(d.reason, "Unknown host nope: no agent has reported it");
    }

    #[test]
    fn check_order_prefers_the_most_fundamental_reason() {
        // Blocked beats stale beats PANIC beats cool-down beats not-quiet
        // beats capacity.
        let mut h = host("h1", QuietState::Panic, 5.0);
        h.blocked = true;
        h.stale = true;
        h.cooldown_until = Some(NOW + 10.0);
        assert_eq!(simple(&req(100), &h).code(), Some(DenyReason::Blocked));
        h.blocked = false;
        assert_eq!(simple(&req(100), &h).code(), Some(DenyReason::StaleHost));
        h.stale = false;
        assert_eq!(simple(&req(100), &h).code(), Some(DenyReason::Panic));
        h.state = QuietState::Normal;
        assert_eq!(
            simple(&req(100), &h).code(),
            Some(DenyReason::PanicCooldown)
        );
        h.cooldown_until = None;
        assert_eq!(simple(&req(100), &h).code(), Some(DenyReason::NotQuiet));
        h.state = QuietState::Quiet;
        assert_eq!(
            simple(&req(100), &h).code(),
            Some(DenyReason::CapacityExceeded)
        );
    }
}
