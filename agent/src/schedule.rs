//! When and how long one collector runs ([`Schedule`]), and the
//! seconds-to-[`Duration`] conversion every config section uses. A leaf:
//! it depends on nothing else in the crate.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When and how long one collector runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Whether the collector runs at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Seconds between runs.
    pub interval_sec: f64,
    /// Each run starts up to this many seconds after its slot (random), so
    /// that a fleet does not collect in lock step.
    #[serde(default)]
    pub jitter_sec: f64,
    /// A run that takes longer is abandoned and counted as `timeout`.
    pub timeout_sec: f64,
}

fn yes() -> bool {
    true
}

impl Schedule {
    /// An enabled schedule.
    pub const fn new(interval_sec: f64, jitter_sec: f64, timeout_sec: f64) -> Self {
        Schedule {
            enabled: true,
            interval_sec,
            jitter_sec,
            timeout_sec,
        }
    }

    /// The interval as a duration.
    pub fn interval(&self) -> Duration {
        secs(self.interval_sec)
    }

    /// The timeout as a duration.
    pub fn timeout(&self) -> Duration {
        secs(self.timeout_sec)
    }

    /// Whether the numbers make sense (checked only when enabled).
    pub fn is_valid(&self) -> bool {
        !self.enabled
            || (self.interval_sec.is_finite()
                && self.interval_sec >= 0.01
                && self.timeout_sec.is_finite()
                && self.timeout_sec > 0.0
                && self.jitter_sec.is_finite()
                && self.jitter_sec >= 0.0)
    }
}

/// Seconds (clamped to `>= 0`, NaN as 0) as a [`Duration`].
pub fn secs(s: f64) -> Duration {
    if s.is_finite() && s > 0.0 {
        Duration::from_secs_f64(s.min(1.0e9))
    } else {
        Duration::ZERO
    }
}
