//! Configuration of the lease scheduler: heartbeat TTL and grace period,
//! concurrency caps, per-addon token buckets, cost classes, the capacity
//! formula's parameters, the per-resource bands of constraint-aware
//! admission, the queue and the bounds of every in-memory table.
//!
//! Every field has a default (`#[serde(default)]`), so a partial `[lease]`
//! table only overrides what it names. See `docs/leases.md`.

use std::collections::BTreeMap;

use lull_proto::msg::hosts::QuietState;
use lull_proto::msg::lease::{CostClass, HeavyLeaseRequest, LeaseLimits, MAX_COST_UNITS};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A configuration value that makes no sense.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("lease.{field}: {rule}")]
pub struct LeaseConfigError {
    /// The field, dotted path below `lease`.
    pub field: String,
    /// The broken rule, with the value.
    pub rule: String,
}

/// Units charged for a legacy `cost_class` when `cost_units` is absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CostClassUnits {
    /// `LOW`. Default 10.
    pub low: u32,
    /// `NORMAL` (also used when neither cost field is given). Default 30.
    pub normal: u32,
    /// `HIGH`. Default 60.
    pub high: u32,
}

impl Default for CostClassUnits {
    fn default() -> Self {
        CostClassUnits {
            low: 10,
            normal: 30,
            high: 60,
        }
    }
}

/// Parameters of [`calculate_capacity`](super::capacity::calculate_capacity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CapacityConfig {
    /// Units every host has regardless of its cores. Default 40.
    pub base_units: f64,
    /// Units added per CPU core. Default 15.
    pub units_per_core: f64,
    /// Percent of the raw budget kept back for the rest of the system
    /// (the services the host exists for). Default 20.
    pub headroom_pct: f64,
    /// Share of the budget usable in QUIET. Default 1.0.
    pub quiet_factor: f64,
    /// Share of the budget usable in NORMAL. Default 0.5.
    pub normal_factor: f64,
    /// Share of the budget usable in BUSY (only HIGH priority gets there).
    /// Default 0.15. PANIC is always 0.
    pub busy_factor: f64,
    /// How much the quiet score scales the budget inside a state, 0..1:
    /// the budget is multiplied by `1 - score_weight * (1 - score/100)`.
    /// Default 0.2 (a score of 50 costs 10 %).
    pub score_weight: f64,
    /// Upper bound of any host's capacity. Default 1000.
    pub max_units: u32,
}

impl Default for CapacityConfig {
    fn default() -> Self {
        CapacityConfig {
            base_units: 40.0,
            units_per_core: 15.0,
            headroom_pct: 20.0,
            quiet_factor: 1.0,
            normal_factor: 0.5,
            busy_factor: 0.15,
            score_weight: 0.2,
            max_units: 1000,
        }
    }
}

impl CapacityConfig {
    /// The share of the budget usable in `state` (PANIC is 0).
    pub fn state_factor(&self, state: QuietState) -> f64 {
        match state {
            QuietState::Quiet => self.quiet_factor,
            QuietState::Normal => self.normal_factor,
            QuietState::Busy => self.busy_factor,
            QuietState::Panic => 0.0,
        }
    }
}

/// Per-resource bands of constraint-aware admission: how a job flagged
/// `cpu_heavy`, `disk_write_heavy` or `network_heavy` classifies the host
/// from the signals of that resource alone (see `policy.rs`). A value below
/// `*_quiet` is QUIET, below `*_normal` NORMAL, otherwise BUSY.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConstraintConfig {
    /// CPU percent (two-minute average) below which CPU is QUIET. Default 35.
    pub cpu_quiet_pct: f64,
    /// CPU percent below which CPU is NORMAL. Default 65.
    pub cpu_normal_pct: f64,
    /// Load per core below which CPU is QUIET. Default 0.7.
    pub load_quiet_per_core: f64,
    /// Load per core below which CPU is NORMAL. Default 1.0.
    pub load_normal_per_core: f64,
    /// IO pressure (PSI `io some avg10`, percent) below which disks are
    /// QUIET. Default 10.
    pub io_quiet_pct: f64,
    /// IO pressure below which disks are NORMAL. Default 30.
    pub io_normal_pct: f64,
    /// Worst disk free percent at or above which disks are QUIET. Default 15.
    pub disk_free_quiet_pct: f64,
    /// Worst disk free percent at or above which disks are NORMAL; below it
    /// BUSY. Default 8.
    pub disk_free_normal_pct: f64,
    /// Worst disk free percent at or below which a disk-heavy job is
    /// refused outright (`panic`). Default 3.
    pub disk_free_panic_pct: f64,
    /// Network throughput (rx + tx, bytes/s) below which the network is
    /// QUIET. Default 12,500,000 (100 Mbit/s).
    pub net_quiet_bps: f64,
    /// Network throughput below which the network is NORMAL.
    /// Default 50,000,000 (400 Mbit/s).
    pub net_normal_bps: f64,
    /// Memory is shared by every kind of job, so every constrained job is
    /// also judged on it: memory used percent below which memory is QUIET.
    /// Default 70.
    pub mem_quiet_pct: f64,
    /// Memory used percent below which memory is NORMAL. Default 85.
    pub mem_normal_pct: f64,
}

impl Default for ConstraintConfig {
    fn default() -> Self {
        ConstraintConfig {
            cpu_quiet_pct: 35.0,
            cpu_normal_pct: 65.0,
            load_quiet_per_core: 0.7,
            load_normal_per_core: 1.0,
            io_quiet_pct: 10.0,
            io_normal_pct: 30.0,
            disk_free_quiet_pct: 15.0,
            disk_free_normal_pct: 8.0,
            disk_free_panic_pct: 3.0,
            net_quiet_bps: 12_500_000.0,
            net_normal_bps: 50_000_000.0,
            mem_quiet_pct: 70.0,
            mem_normal_pct: 85.0,
        }
    }
}

/// How `retry_after_sec` is bounded and what it falls back to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryConfig {
    /// Smallest `retry_after_sec` ever returned. Default 1.
    pub min_sec: f64,
    /// Largest `retry_after_sec` ever returned. Default 3600.
    pub max_sec: f64,
    /// When nothing better is known (not QUIET without a forecast, a cost
    /// larger than the host's whole capacity, unknown or stale host).
    /// Default 30.
    pub default_sec: f64,
    /// While the host is in PANIC (its cool-down has not even started).
    /// Default 60.
    pub panic_sec: f64,
    /// While the host is blocked by an operator. Default 60.
    pub blocked_sec: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            min_sec: 1.0,
            max_sec: 3600.0,
            default_sec: 30.0,
            panic_sec: 60.0,
            blocked_sec: 60.0,
        }
    }
}

/// Per-addon overrides of the caps and the token bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AddonLimits {
    /// Concurrent leases of this addon (overrides `max_per_addon`).
    pub max_concurrent: Option<u32>,
    /// Token refill, requests per second (overrides `rate_per_sec`).
    pub rate_per_sec: Option<f64>,
    /// Bucket size (overrides `burst`).
    pub burst: Option<f64>,
}

/// Lease scheduler settings (the `[lease]` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LeaseConfig {
    /// A lease with no heartbeat for this long expires, seconds. Default 30.
    pub heartbeat_ttl_sec: f64,
    /// How often holders are told to heartbeat, seconds. Default: a third of
    /// the TTL (10 s), so two heartbeats may be lost before expiry.
    pub heartbeat_interval_sec: Option<f64>,
    /// After a start, new grants are refused (`grace_period`) for this long
    /// while holders re-assert their leases, seconds. Default: the TTL.
    pub grace_period_sec: Option<f64>,
    /// Fleet-wide cap on active leases (a backstop). Default 1000.
    pub max_global: u32,
    /// Cap on one addon's active leases (a backstop). Default 8.
    pub max_per_addon: u32,
    /// Per-addon token bucket refill, lease requests per second. Default 2.
    pub rate_per_sec: f64,
    /// Per-addon token bucket size (burst of requests). Default 10.
    pub burst: f64,
    /// Units of the legacy cost classes.
    pub cost_class_units: CostClassUnits,
    /// Capacity formula parameters.
    pub capacity: CapacityConfig,
    /// Per-resource bands of constraint-aware admission.
    pub constraints: ConstraintConfig,
    /// `retry_after_sec` bounds and fallbacks.
    pub retry: RetryConfig,
    /// Revoke the active leases of a host when it enters PANIC, so heavy
    /// work stops at once instead of running until it ends. Default true.
    pub revoke_on_panic: bool,
    /// A host whose last snapshot is older than this is treated as stale
    /// even when its view says otherwise, seconds; 0 disables the check.
    /// Default 30.
    pub stale_after_sec: f64,
    /// Most requests waiting in the queue. Default 1024.
    pub queue_max: usize,
    /// How long a queued request waits when it names no `wait_timeout_sec`,
    /// seconds. Default 300.
    pub default_wait_sec: f64,
    /// Ended leases kept for `scheduler.status`. Default 200.
    pub recent_max: usize,
    /// Ended lease ids remembered so that late heartbeats learn the final
    /// state and ended leases cannot be re-asserted. Default 10,000.
    pub tombstones_max: usize,
    /// Most addons with a bucket and a decision summary; past it the least
    /// recently seen addon is forgotten. Default 10,000.
    pub addons_max: usize,
    /// Per-addon overrides, keyed by addon id.
    pub addons: BTreeMap<String, AddonLimits>,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            heartbeat_ttl_sec: 30.0,
            heartbeat_interval_sec: None,
            grace_period_sec: None,
            max_global: 1000,
            max_per_addon: 8,
            rate_per_sec: 2.0,
            burst: 10.0,
            cost_class_units: CostClassUnits::default(),
            capacity: CapacityConfig::default(),
            constraints: ConstraintConfig::default(),
            retry: RetryConfig::default(),
            revoke_on_panic: true,
            stale_after_sec: 30.0,
            queue_max: 1024,
            default_wait_sec: 300.0,
            recent_max: 200,
            tombstones_max: 10_000,
            addons_max: 10_000,
            addons: BTreeMap::new(),
        }
    }
}

impl LeaseConfig {
    /// The heartbeat TTL, seconds.
    pub fn ttl(&self) -> f64 {
        self.heartbeat_ttl_sec
    }

    /// The heartbeat interval: the configured one, or a third of the TTL.
    pub fn heartbeat_interval(&self) -> f64 {
        self.heartbeat_interval_sec
            .unwrap_or(self.heartbeat_ttl_sec / 3.0)
    }

    /// The grace period after a start: the configured one, or the TTL.
    pub fn grace_period(&self) -> f64 {
        self.grace_period_sec.unwrap_or(self.heartbeat_ttl_sec)
    }

    /// Heartbeat guidance sent with a grant.
    pub fn limits(&self) -> LeaseLimits {
        LeaseLimits {
            heartbeat_ttl_sec: self.ttl(),
            heartbeat_interval_sec: self.heartbeat_interval(),
        }
    }

    /// Units a request costs: `cost_units` (clamped to 1..100) when given,
    /// else its `cost_class`, else the `NORMAL` class.
    pub fn units_for(&self, req: &HeavyLeaseRequest) -> u32 {
        if let Some(u) = req.cost_units {
            return u.clamp(1, MAX_COST_UNITS) as u32;
        }
        match req.cost_class.unwrap_or(CostClass::Normal) {
            CostClass::Low => self.cost_class_units.low,
            CostClass::Normal => self.cost_class_units.normal,
            CostClass::High => self.cost_class_units.high,
        }
    }

    /// Concurrency cap of one addon.
    pub fn addon_max(&self, addon_id: &str) -> u32 {
        self.addons
            .get(addon_id)
            .and_then(|a| a.max_concurrent)
            .unwrap_or(self.max_per_addon)
    }

    /// Token bucket `(rate_per_sec, burst)` of one addon.
    pub fn addon_rate(&self, addon_id: &str) -> (f64, f64) {
        let o = self.addons.get(addon_id);
        (
            o.and_then(|a| a.rate_per_sec).unwrap_or(self.rate_per_sec),
            o.and_then(|a| a.burst).unwrap_or(self.burst),
        )
    }

    /// Clamps a computed retry delay into `[retry.min_sec, retry.max_sec]`.
    pub fn clamp_retry(&self, sec: f64) -> f64 {
        let sec = if sec.is_nan() {
            self.retry.default_sec
        } else {
            sec
        };
        sec.max(self.retry.min_sec).min(self.retry.max_sec)
    }

    /// Checks every number; call once at start-up.
    pub fn validate(&self) -> Result<(), LeaseConfigError> {
        fn err(field: &str, rule: String) -> Result<(), LeaseConfigError> {
            Err(LeaseConfigError {
                field: field.to_string(),
                rule,
            })
        }
        let positive = [
            ("heartbeat_ttl_sec", Some(self.heartbeat_ttl_sec)),
            ("heartbeat_interval_sec", self.heartbeat_interval_sec),
            ("burst", Some(self.burst)),
            ("default_wait_sec", Some(self.default_wait_sec)),
            ("retry.min_sec", Some(self.retry.min_sec)),
            ("retry.max_sec", Some(self.retry.max_sec)),
            ("retry.default_sec", Some(self.retry.default_sec)),
            ("retry.panic_sec", Some(self.retry.panic_sec)),
            ("retry.blocked_sec", Some(self.retry.blocked_sec)),
        ];
        for (field, v) in positive {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    return err(field, format!("must be a finite number > 0, got {v}"));
                }
            }
        }
        let non_negative = [
            ("grace_period_sec", self.grace_period_sec.unwrap_or(0.0)),
            ("rate_per_sec", self.rate_per_sec),
            ("stale_after_sec", self.stale_after_sec),
            ("capacity.base_units", self.capacity.base_units),
            ("capacity.units_per_core", self.capacity.units_per_core),
            ("constraints.net_quiet_bps", self.constraints.net_quiet_bps),
            (
                "constraints.net_normal_bps",
                self.constraints.net_normal_bps,
            ),
        ];
        for (field, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return err(field, format!("must be a finite number >= 0, got {v}"));
            }
        }
        let fractions = [
            ("capacity.quiet_factor", self.capacity.quiet_factor),
            ("capacity.normal_factor", self.capacity.normal_factor),
            ("capacity.busy_factor", self.capacity.busy_factor),
            ("capacity.score_weight", self.capacity.score_weight),
        ];
        for (field, v) in fractions {
            if !(0.0..=1.0).contains(&v) {
                return err(field, format!("must be within 0..1, got {v}"));
            }
        }
        let pcts = [
            ("capacity.headroom_pct", self.capacity.headroom_pct),
            ("constraints.cpu_quiet_pct", self.constraints.cpu_quiet_pct),
            (
                "constraints.cpu_normal_pct",
                self.constraints.cpu_normal_pct,
            ),
            ("constraints.io_quiet_pct", self.constraints.io_quiet_pct),
            ("constraints.io_normal_pct", self.constraints.io_normal_pct),
            (
                "constraints.disk_free_quiet_pct",
                self.constraints.disk_free_quiet_pct,
            ),
            (
                "constraints.disk_free_normal_pct",
                self.constraints.disk_free_normal_pct,
            ),
            (
                "constraints.disk_free_panic_pct",
                self.constraints.disk_free_panic_pct,
            ),
            ("constraints.mem_quiet_pct", self.constraints.mem_quiet_pct),
            (
                "constraints.mem_normal_pct",
                self.constraints.mem_normal_pct,
            ),
        ];
        for (field, v) in pcts {
            if !(0.0..=100.0).contains(&v) {
                return err(field, format!("must be within 0..100, got {v}"));
            }
        }
        let c = &self.constraints;
        let ordered = [
            (
                "constraints.cpu_normal_pct",
                c.cpu_quiet_pct,
                c.cpu_normal_pct,
            ),
            (
                "constraints.load_normal_per_core",
                c.load_quiet_per_core,
                c.load_normal_per_core,
            ),
            ("constraints.io_normal_pct", c.io_quiet_pct, c.io_normal_pct),
            (
                "constraints.net_normal_bps",
                c.net_quiet_bps,
                c.net_normal_bps,
            ),
            (
                "constraints.mem_normal_pct",
                c.mem_quiet_pct,
                c.mem_normal_pct,
            ),
            (
                "constraints.disk_free_quiet_pct",
                c.disk_free_normal_pct,
                c.disk_free_quiet_pct,
            ),
            (
                "constraints.disk_free_normal_pct",
                c.disk_free_panic_pct,
                c.disk_free_normal_pct,
            ),
        ];
        for (field, lo, hi) in ordered {
            if lo.is_nan() || hi.is_nan() || lo > hi {
                return err(field, format!("must not be below {lo}, got {hi}"));
            }
        }
        if self.retry.min_sec > self.retry.max_sec {
            return err(
                "retry.max_sec",
                format!("must be >= retry.min_sec ({})", self.retry.min_sec),
            );
        }
        for (field, v) in [
            ("cost_class_units.low", self.cost_class_units.low),
            ("cost_class_units.normal", self.cost_class_units.normal),
            ("cost_class_units.high", self.cost_class_units.high),
        ] {
            if !(1..=MAX_COST_UNITS as u32).contains(&v) {
                return err(field, format!("must be 1..{MAX_COST_UNITS}, got {v}"));
            }
        }
        for (field, v) in [
            ("queue_max", self.queue_max),
            ("recent_max", self.recent_max),
            ("tombstones_max", self.tombstones_max),
            ("addons_max", self.addons_max),
        ] {
            if v == 0 {
                return err(field, "must be at least 1".to_string());
            }
        }
        for (id, a) in &self.addons {
            if let Some(r) = a.rate_per_sec {
                if !(r.is_finite() && r >= 0.0) {
                    return err(
                        &format!("addons.{id}.rate_per_sec"),
                        format!("must be a finite number >= 0, got {r}"),
                    );
                }
            }
            if let Some(b) = a.burst {
                if !(b.is_finite() && b > 0.0) {
                    return err(
                        &format!("addons.{id}.burst"),
                        format!("must be a finite number > 0, got {b}"),
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(units: Option<i64>, class: Option<CostClass>) -> HeavyLeaseRequest {
        HeavyLeaseRequest {
            addon_id: "a".into(),
            job_type: "j".into(),
            host_id: None,
            cost_units: units,
            cost_class: class,
            expected_duration_sec: None,
            priority: Default::default(),
            constraints: Default::default(),
            wait: false,
            wait_timeout_sec: None,
        }
    }

    #[test]
    fn defaults_are_documented_values() {
        let c = LeaseConfig::default();
        assert_eq!(c.ttl(), 30.0);
        assert_eq!(c.heartbeat_interval(), 10.0);
        assert_eq!(c.grace_period(), 30.0);
        assert_eq!(
            c.limits(),
            LeaseLimits {
                heartbeat_ttl_sec: 30.0,
                heartbeat_interval_sec: 10.0
            }
        );
        assert!(c.validate().is_ok());
    }

    #[test]
    fn derived_values_follow_the_ttl() {
        let c: LeaseConfig = serde_json::from_str(r#"{"heartbeat_ttl_sec": 12}"#).unwrap();
        assert_eq!(c.heartbeat_interval(), 4.0);
        assert_eq!(c.grace_period(), 12.0);
        let c: LeaseConfig =
            serde_json::from_str(r#"{"heartbeat_ttl_sec": 12, "grace_period_sec": 0}"#).unwrap();
        assert_eq!(c.grace_period(), 0.0);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn cost_classes_map_to_units() {
        let c = LeaseConfig::default();
        assert_eq!(c.units_for(&req(Some(42), Some(CostClass::High))), 42);
        assert_eq!(c.units_for(&req(None, Some(CostClass::Low))), 10);
        assert_eq!(c.units_for(&req(None, Some(CostClass::Normal))), 30);
        assert_eq!(c.units_for(&req(None, Some(CostClass::High))), 60);
        assert_eq!(c.units_for(&req(None, None)), 30);
        assert_eq!(c.units_for(&req(Some(0), None)), 1);
        assert_eq!(c.units_for(&req(Some(1000), None)), 100);
    }

    #[test]
    fn addon_overrides() {
        let c: LeaseConfig = serde_json::from_str(
            r#"{"addons": {"indexer": {"max_concurrent": 2, "rate_per_sec": 0.5}}}"#,
        )
        .unwrap();
        assert_eq!(c.addon_max("indexer"), 2);
        assert_eq!(c.addon_max("other"), 8);
        assert_eq!(c.addon_rate("indexer"), (0.5, 10.0));
        assert_eq!(c.addon_rate("other"), (2.0, 10.0));
    }

    #[test]
    fn bad_values_are_rejected() {
        let bad = [
            r#"{"heartbeat_ttl_sec": 0}"#,
            r#"{"heartbeat_ttl_sec": -3}"#,
            r#"{"capacity": {"headroom_pct": 120}}"#,
            r#"{"capacity": {"busy_factor": 2}}"#,
            r#"{"constraints": {"cpu_quiet_pct": 80, "cpu_normal_pct": 50}}"#,
            r#"{"constraints": {"disk_free_panic_pct": 10}}"#,
            r#"{"cost_class_units": {"high": 500}}"#,
            r#"{"queue_max": 0}"#,
            r#"{"retry": {"min_sec": 10, "max_sec": 5}}"#,
            r#"{"addons": {"x": {"burst": 0}}}"#,
        ];
        for b in bad {
            let c: LeaseConfig = serde_json::from_str(b).unwrap();
            assert!(c.validate().is_err(), "{b} should be rejected");
        }
        let e = serde_json::from_str::<LeaseConfig>(r#"{"queue_max": 0}"#)
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(e.to_string(), "lease.queue_max: must be at least 1");
    }

    #[test]
    fn retry_is_clamped() {
        let c = LeaseConfig::default();
        assert_eq!(c.clamp_retry(0.01), 1.0);
        assert_eq!(c.clamp_retry(1e9), 3600.0);
        assert_eq!(c.clamp_retry(f64::INFINITY), 3600.0);
        assert_eq!(c.clamp_retry(f64::NAN), 30.0);
        assert_eq!(c.clamp_retry(12.5), 12.5);
    }
}
