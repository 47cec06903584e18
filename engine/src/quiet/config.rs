//! Configuration of the quiet engine: per-signal thresholds and weights, the
//! score bands of the states, hysteresis, hard PANIC triggers, cool-down,
//! staleness, the CPU averaging window, and the settings of streaks, the
//! forecast, history queries and the health rollup.
//!
//! Every field has a default (`#[serde(default)]`), so a partial `[quiet]`
//! table only overrides what it names. The formula these numbers feed is
//! described in `score.rs` and in `docs/quiet.md`.

use serde::{Deserialize, Serialize};

pub mod error;
pub mod forecast;
pub mod health;
pub mod history;
pub mod streaks;

pub use error::QuietConfigError;
pub use forecast::ForecastConfig;
pub use health::HealthConfig;
pub use history::HistoryConfig;
pub use streaks::StreakConfig;

/// Which way a signal gets worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Higher values are worse (CPU, memory, latency, ...).
    HigherIsWorse,
    /// Lower values are worse (free disk).
    LowerIsWorse,
}

/// One signal's penalty curve, as read from [`QuietConfig`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignalCurve {
    /// Value at which the penalty starts (no penalty at or before it).
    pub quiet: f64,
    /// Value at which the full weight is charged.
    pub busy: f64,
    /// Points subtracted from 100 at or past `busy`.
    pub weight: f64,
    /// Which way is worse.
    pub direction: Direction,
}

impl SignalCurve {
    /// Penalty points for `value`: 0 up to `quiet`, rising linearly to
    /// `weight` at `busy`, `weight` past it.
    pub fn penalty(&self, value: f64) -> f64 {
        let (from_quiet, span) = match self.direction {
            Direction::HigherIsWorse => (value - self.quiet, self.busy - self.quiet),
            Direction::LowerIsWorse => (self.quiet - value, self.quiet - self.busy),
        };
        if from_quiet.is_nan() || from_quiet <= 0.0 {
            return 0.0;
        }
        if span <= 0.0 {
            return self.weight;
        }
        self.weight * (from_quiet / span).min(1.0)
    }

    /// Whether `value` is at or past the `busy` point.
    pub fn is_busy(&self, value: f64) -> bool {
        match self.direction {
            Direction::HigherIsWorse => value >= self.busy,
            Direction::LowerIsWorse => value <= self.busy,
        }
    }
}

/// Quiet engine settings. Percentages are 0..100; pressures are PSI `avg10`
/// percentages (share of time stalled). Each signal has a `quiet` point
/// (no penalty up to it), a `busy` point (full penalty from it on) and a
/// `weight` (points taken from the score of 100 at full penalty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QuietConfig {
    /// `cpu_avg_2m` penalty starts above this percent. Default 20.
    pub cpu_quiet_pct: f64,
    /// `cpu_avg_2m` full penalty at this percent. Default 80.
    pub cpu_busy_pct: f64,
    /// `cpu_avg_2m` weight. Default 55.
    pub cpu_weight: f64,

    /// Memory used penalty starts above this percent. Default 70.
    pub mem_quiet_pct: f64,
    /// Memory used full penalty at this percent. Default 90.
    pub mem_busy_pct: f64,
    /// Memory used weight. Default 45.
    pub mem_weight: f64,

    /// Swap used penalty starts above this percent (only without PSI).
    /// Default 20.
    pub swap_quiet_pct: f64,
    /// Swap used full penalty at this percent. Default 60.
    pub swap_busy_pct: f64,
    /// Swap weight. Default 20.
    pub swap_weight: f64,

    /// Load per core penalty starts above this (only without PSI).
    /// Default 0.7.
    pub load_quiet_per_core: f64,
    /// Load per core full penalty at this. Default 1.5.
    pub load_busy_per_core: f64,
    /// Load per core weight. Default 25.
    pub load_weight: f64,

    /// PSI `cpu some avg10` penalty starts above this percent (replaces the
    /// load signal when PSI is reported). Default 10.
    pub cpu_pressure_quiet_pct: f64,
    /// PSI `cpu some avg10` full penalty at this percent. Default 50.
    pub cpu_pressure_busy_pct: f64,
    /// PSI CPU pressure weight. Default 25.
    pub cpu_pressure_weight: f64,

    /// PSI `memory some avg10` penalty starts above this percent (replaces
    /// the swap signal when PSI is reported). Default 5.
    pub mem_pressure_quiet_pct: f64,
    /// PSI `memory some avg10` full penalty at this percent. Default 30.
    pub mem_pressure_busy_pct: f64,
    /// PSI memory pressure weight. Default 35.
    pub mem_pressure_weight: f64,

    /// PSI `io some avg10` penalty starts above this percent. Default 10.
    pub io_pressure_quiet_pct: f64,
    /// PSI `io some avg10` full penalty at this percent. Default 50.
    pub io_pressure_busy_pct: f64,
    /// IO pressure weight. Default 35.
    pub io_pressure_weight: f64,

    /// Worst disk free percent below which the penalty starts. Default 15.
    pub disk_free_quiet_pct: f64,
    /// Worst disk free percent at which the full penalty applies. Default 5.
    pub disk_free_busy_pct: f64,
    /// Disk free weight. Default 35.
    pub disk_free_weight: f64,

    /// API requests per second above which the penalty starts. Default 5.
    pub rps_quiet: f64,
    /// API requests per second of full penalty. Default 100.
    pub rps_busy: f64,
    /// API rps weight. Default 35.
    pub rps_weight: f64,

    /// API error rate (0..1) above which the penalty starts. Default 0.02.
    pub error_rate_quiet: f64,
    /// API error rate of full penalty. Default 0.2.
    pub error_rate_busy: f64,
    /// API error rate weight. Default 20.
    pub error_rate_weight: f64,

    /// API p95 latency (ms) above which the penalty starts. Default 300.
    pub p95_quiet_ms: f64,
    /// API p95 latency (ms) of full penalty. Default 2000.
    pub p95_busy_ms: f64,
    /// API p95 weight. Default 30.
    pub p95_weight: f64,

    /// Lowest score that is QUIET. Default 75.
    pub quiet_min_score: f64,
    /// Lowest score that is NORMAL. Default 50.
    pub normal_min_score: f64,
    /// Lowest score that is BUSY; below it the score alone means PANIC.
    /// Default 10.
    pub busy_min_score: f64,

    /// Score points past a band edge that switch the state at once.
    /// Default 5.
    pub hysteresis_margin: f64,
    /// Consecutive samples past a band edge (but within the margin) that
    /// switch the state. Default 3.
    pub hysteresis_samples: u32,

    /// Hard PANIC: memory used at or above this percent. Default 95.
    pub panic_mem_pct: f64,
    /// Hard PANIC: worst disk free at or below this percent. Default 3.
    pub panic_disk_free_pct: f64,
    /// Hard PANIC: PSI `memory full avg10` at or above this percent.
    /// Default 10.
    pub panic_mem_full_pressure_pct: f64,
    /// Once a hard trigger fired, it stays on until its value is this many
    /// percentage points back on the safe side. Default 2.
    pub panic_release_margin_pct: f64,
    /// Seconds after the last PANIC sample during which leases are refused
    /// with `panic_cooldown`. Default 300.
    pub panic_cooldown_sec: f64,

    /// A host is stale after `stale_factor` × its snapshot interval without
    /// a snapshot. Default 3.
    pub stale_factor: f64,
    /// Interval assumed when a snapshot carries no `interval_sec`. Default 2.
    pub default_interval_sec: f64,
    /// Length of the CPU averaging window (`cpu_avg_2m`). Default 120.
    pub cpu_window_sec: f64,
    /// Most samples kept in the CPU window (bounds memory for fast agents).
    /// Default 256.
    pub cpu_window_max_samples: usize,

    /// Quiet streak detection.
    pub streaks: StreakConfig,
    /// Quiet window forecast.
    pub forecast: ForecastConfig,
    /// `lull.v1.stats.history` limits.
    pub history: HistoryConfig,
    /// `lull.v1.stats.health` rollup.
    pub health: HealthConfig,
}

impl Default for QuietConfig {
    fn default() -> Self {
        QuietConfig {
            cpu_quiet_pct: 20.0,
            cpu_busy_pct: 80.0,
            cpu_weight: 55.0,
            mem_quiet_pct: 70.0,
            mem_busy_pct: 90.0,
            mem_weight: 45.0,
            swap_quiet_pct: 20.0,
            swap_busy_pct: 60.0,
            swap_weight: 20.0,
            load_quiet_per_core: 0.7,
            load_busy_per_core: 1.5,
            load_weight: 25.0,
            cpu_pressure_quiet_pct: 10.0,
            cpu_pressure_busy_pct: 50.0,
            cpu_pressure_weight: 25.0,
            mem_pressure_quiet_pct: 5.0,
            mem_pressure_busy_pct: 30.0,
            mem_pressure_weight: 35.0,
            io_pressure_quiet_pct: 10.0,
            io_pressure_busy_pct: 50.0,
            io_pressure_weight: 35.0,
            disk_free_quiet_pct: 15.0,
            disk_free_busy_pct: 5.0,
            disk_free_weight: 35.0,
            rps_quiet: 5.0,
            rps_busy: 100.0,
            rps_weight: 35.0,
            error_rate_quiet: 0.02,
            error_rate_busy: 0.2,
            error_rate_weight: 20.0,
            p95_quiet_ms: 300.0,
            p95_busy_ms: 2000.0,
            p95_weight: 30.0,
            quiet_min_score: 75.0,
            normal_min_score: 50.0,
            busy_min_score: 10.0,
            hysteresis_margin: 5.0,
            hysteresis_samples: 3,
            panic_mem_pct: 95.0,
            panic_disk_free_pct: 3.0,
            panic_mem_full_pressure_pct: 10.0,
            panic_release_margin_pct: 2.0,
            panic_cooldown_sec: 300.0,
            stale_factor: 3.0,
            default_interval_sec: 2.0,
            cpu_window_sec: 120.0,
            cpu_window_max_samples: 256,
            streaks: StreakConfig::default(),
            forecast: ForecastConfig::default(),
            history: HistoryConfig::default(),
            health: HealthConfig::default(),
        }
    }
}

/// The scored signals, in the order reasons are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// `cpu_avg_2m`.
    Cpu,
    /// `mem_pct`.
    Mem,
    /// `swap_pct` (without PSI).
    Swap,
    /// `load_per_core` (without PSI).
    Load,
    /// `cpu_pressure` (PSI).
    CpuPressure,
    /// `mem_pressure` (PSI).
    MemPressure,
    /// `io_pressure` (PSI).
    IoPressure,
    /// `disk_free_pct`.
    DiskFree,
    /// `rps`.
    Rps,
    /// `error_rate`.
    ErrorRate,
    /// `p95_ms`.
    P95,
}

impl Signal {
    /// Every signal.
    pub const ALL: [Signal; 11] = [
        Signal::Cpu,
        Signal::Mem,
        Signal::Swap,
        Signal::Load,
        Signal::CpuPressure,
        Signal::MemPressure,
        Signal::IoPressure,
        Signal::DiskFree,
        Signal::Rps,
        Signal::ErrorRate,
        Signal::P95,
    ];

    /// The input's name as it appears in `inputs` and in reasons.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Cpu => "cpu_avg_2m",
            Signal::Mem => "mem_pct",
            Signal::Swap => "swap_pct",
            Signal::Load => "load_per_core",
            Signal::CpuPressure => "cpu_pressure",
            Signal::MemPressure => "mem_pressure",
            Signal::IoPressure => "io_pressure",
            Signal::DiskFree => "disk_free_pct",
            Signal::Rps => "rps",
            Signal::ErrorRate => "error_rate",
            Signal::P95 => "p95_ms",
        }
    }
}

impl QuietConfig {
    /// The penalty curve of one signal.
    pub fn curve(&self, signal: Signal) -> SignalCurve {
        use Direction::*;
        let (quiet, busy, weight, direction) = match signal {
            Signal::Cpu => (
                self.cpu_quiet_pct,
                self.cpu_busy_pct,
                self.cpu_weight,
                HigherIsWorse,
            ),
            Signal::Mem => (
                self.mem_quiet_pct,
                self.mem_busy_pct,
                self.mem_weight,
                HigherIsWorse,
            ),
            Signal::Swap => (
                self.swap_quiet_pct,
                self.swap_busy_pct,
                self.swap_weight,
                HigherIsWorse,
            ),
            Signal::Load => (
                self.load_quiet_per_core,
                self.load_busy_per_core,
                self.load_weight,
                HigherIsWorse,
            ),
            Signal::CpuPressure => (
                self.cpu_pressure_quiet_pct,
                self.cpu_pressure_busy_pct,
                self.cpu_pressure_weight,
                HigherIsWorse,
            ),
            Signal::MemPressure => (
                self.mem_pressure_quiet_pct,
                self.mem_pressure_busy_pct,
                self.mem_pressure_weight,
                HigherIsWorse,
            ),
            Signal::IoPressure => (
                self.io_pressure_quiet_pct,
                self.io_pressure_busy_pct,
                self.io_pressure_weight,
                HigherIsWorse,
            ),
            Signal::DiskFree => (
                self.disk_free_quiet_pct,
                self.disk_free_busy_pct,
                self.disk_free_weight,
                LowerIsWorse,
            ),
            Signal::Rps => (
                self.rps_quiet,
                self.rps_busy,
                self.rps_weight,
                HigherIsWorse,
            ),
            Signal::ErrorRate => (
                self.error_rate_quiet,
                self.error_rate_busy,
                self.error_rate_weight,
                HigherIsWorse,
            ),
            Signal::P95 => (
                self.p95_quiet_ms,
                self.p95_busy_ms,
                self.p95_weight,
                HigherIsWorse,
            ),
        };
        SignalCurve {
            quiet,
            busy,
            weight,
            direction,
        }
    }

    /// Checks that the numbers are finite, ordered and in range.
    pub fn validate(&self) -> Result<(), QuietConfigError> {
        fn finite(field: &'static str, v: f64) -> Result<(), QuietConfigError> {
            if v.is_finite() {
                Ok(())
            } else {
                Err(QuietConfigError::NotFinite { field })
            }
        }
        fn check(
            field: &'static str,
            v: f64,
            ok: bool,
            rule: &'static str,
        ) -> Result<(), QuietConfigError> {
            finite(field, v)?;
            if ok {
                Ok(())
            } else {
                Err(QuietConfigError::OutOfRange {
                    field,
                    rule,
                    value: v,
                })
            }
        }
        for s in Signal::ALL {
            let c = self.curve(s);
            finite(s.name(), c.quiet)?;
            finite(s.name(), c.busy)?;
            check(s.name(), c.weight, c.weight >= 0.0, "weight must be >= 0")?;
            let ordered = match c.direction {
                Direction::HigherIsWorse => c.busy > c.quiet,
                Direction::LowerIsWorse => c.busy < c.quiet,
            };
            check(
                s.name(),
                c.busy,
                ordered,
                "busy point must be past the quiet point",
            )?;
        }
        check(
            "quiet_min_score",
            self.quiet_min_score,
            self.quiet_min_score <= 100.0 && self.quiet_min_score > self.normal_min_score,
            "must be <= 100 and above normal_min_score",
        )?;
        check(
            "normal_min_score",
            self.normal_min_score,
            self.normal_min_score > self.busy_min_score,
            "must be above busy_min_score",
        )?;
        check(
            "busy_min_score",
            self.busy_min_score,
            self.busy_min_score >= 0.0,
            "must be >= 0",
        )?;
        check(
            "hysteresis_margin",
            self.hysteresis_margin,
            self.hysteresis_margin >= 0.0,
            "must be >= 0",
        )?;
        check(
            "panic_release_margin_pct",
            self.panic_release_margin_pct,
            self.panic_release_margin_pct >= 0.0,
            "must be >= 0",
        )?;
        finite("panic_mem_pct", self.panic_mem_pct)?;
        finite("panic_disk_free_pct", self.panic_disk_free_pct)?;
        finite(
            "panic_mem_full_pressure_pct",
            self.panic_mem_full_pressure_pct,
        )?;
        check(
            "panic_cooldown_sec",
            self.panic_cooldown_sec,
            self.panic_cooldown_sec >= 0.0,
            "must be >= 0",
        )?;
        check(
            "stale_factor",
            self.stale_factor,
            self.stale_factor >= 1.0,
            "must be >= 1",
        )?;
        check(
            "default_interval_sec",
            self.default_interval_sec,
            self.default_interval_sec > 0.0,
            "must be > 0",
        )?;
        check(
            "cpu_window_sec",
            self.cpu_window_sec,
            self.cpu_window_sec > 0.0,
            "must be > 0",
        )?;
        check(
            "cpu_window_max_samples",
            self.cpu_window_max_samples as f64,
            self.cpu_window_max_samples >= 1,
            "must be >= 1",
        )?;
        self.streaks.validate()?;
        self.forecast.validate()?;
        self.history.validate()?;
        self.health.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        QuietConfig::default().validate().unwrap();
    }

    #[test]
    fn partial_config_keeps_other_defaults() {
        let cfg: QuietConfig =
            serde_json::from_str(r#"{"cpu_busy_pct": 90, "streaks": {"min_streak_sec": 5}}"#)
                .unwrap();
        assert_eq!(cfg.cpu_busy_pct, 90.0);
        assert_eq!(cfg.cpu_quiet_pct, 20.0);
        assert_eq!(cfg.streaks.min_streak_sec, 5.0);
        assert_eq!(cfg.streaks.max_gap_sec, StreakConfig::default().max_gap_sec);
        assert_eq!(cfg.hysteresis_samples, 3);
    }

    #[test]
    fn bad_configs_are_rejected() {
        let c = QuietConfig {
            cpu_busy_pct: 10.0,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("cpu_avg_2m"));
        let c = QuietConfig {
            disk_free_busy_pct: 20.0,
            ..Default::default()
        };
        assert!(c.validate().is_err());
        let c = QuietConfig {
            normal_min_score: 80.0,
            ..Default::default()
        };
        assert!(c.validate().is_err());
        let c = QuietConfig {
            mem_weight: f64::NAN,
            ..Default::default()
        };
        assert_eq!(
            c.validate().unwrap_err(),
            QuietConfigError::NotFinite { field: "mem_pct" }
        );
        let c = QuietConfig {
            stale_factor: 0.5,
            ..Default::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn penalty_curve_is_piecewise_linear() {
        let c = QuietConfig::default().curve(Signal::Cpu);
        assert_eq!(c.penalty(10.0), 0.0);
        assert_eq!(c.penalty(20.0), 0.0);
        assert!((c.penalty(50.0) - 27.5).abs() < 1e-9);
        assert_eq!(c.penalty(80.0), 55.0);
        assert_eq!(c.penalty(100.0), 55.0);
        assert_eq!(c.penalty(f64::NAN), 0.0);
        let d = QuietConfig::default().curve(Signal::DiskFree);
        assert_eq!(d.penalty(50.0), 0.0);
        assert!((d.penalty(10.0) - 17.5).abs() < 1e-9);
        assert_eq!(d.penalty(1.0), 35.0);
        assert!(d.is_busy(5.0) && !d.is_busy(6.0));
    }
}
