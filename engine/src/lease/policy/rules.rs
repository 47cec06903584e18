//! The admission rules, in their order: the addon checks
//! ([`check_addon`]: rate limit, addon and global caps), the host checks
//! ([`admit_host`]: unknown, blocked, stale, PANIC, cool-down, judged
//! state, capacity), and how they combine for a named host ([`admit`]) or
//! a host the coordinator picks ([`place`]), chosen by [`decide`].

use std::collections::BTreeMap;

use lull_proto::msg::hosts::QuietState;
use lull_proto::msg::lease::{DenyReason, HeavyLeaseRequest, Priority};

use super::judgement::judge;
use super::room::capacity_retry;
use super::verdict::{deny, until, Decision, Denial, Grant};
use super::view::{AddonLoad, BookView, HostView, Loads};
use crate::lease::capacity::calculate_capacity;
use crate::lease::config::LeaseConfig;

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
    if h.is_blocked(now) {
        let why = h
            .blocked_reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        // Retry when the block (a maintenance window) ends, if it does.
        return deny(
            DenyReason::Blocked,
            format!("Host {} is blocked by an operator{why}", h.host_id),
            until(h.blocked_until, now).unwrap_or(cfg.retry.blocked_sec),
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
