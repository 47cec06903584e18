//! Tests of the admission policy.

use std::collections::{BTreeMap, HashMap};

use lull_proto::msg::hosts::QuietState;
use lull_proto::msg::lease::{Constraints, DenyReason, HeavyLeaseRequest, Priority};

use super::*;
use crate::lease::config::CapacityConfig;
use crate::lease::config::LeaseConfig;
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
    // A maintenance window: retry when it ends (within the bounds).
    h.blocked_until = Some(NOW + 600.0);
    assert_eq!(denial(simple(&req(10), &h)).retry_after_sec, 600.0);
    h.blocked_until = Some(NOW + 86_400.0);
    assert_eq!(denial(simple(&req(10), &h)).retry_after_sec, 3600.0);
    // Once it has ended the host is free, before a fresh view arrives.
    h.blocked_until = Some(NOW);
    assert!(simple(&req(10), &h).is_grant());
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
