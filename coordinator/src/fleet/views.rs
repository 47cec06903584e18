//! When a host's lease view is worth pushing to the lease book: the
//! figures a view is compared by ([`ViewSignals`]) and the thresholds that
//! decide ([`ViewFilter`]).

use lull_proto::msg::hosts::QuietState;

/// When a host's lease view is worth pushing: any change of state,
/// staleness, block, cool-down or forecast; a signal moving by at least its
/// delta; or the last push being older than `refresh_sec`. Keeps the lease
/// book current without a view per snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewFilter {
    /// Longest time a pushed view may lag small drifts, seconds.
    pub refresh_sec: f64,
    /// Quiet score points.
    pub score_delta: f64,
    /// Percentage points of CPU, memory, IO pressure and free disk.
    pub pct_delta: f64,
    /// Load per core.
    pub load_delta: f64,
    /// Relative change of network throughput.
    pub net_delta_frac: f64,
}

impl Default for ViewFilter {
    fn default() -> Self {
        ViewFilter {
            refresh_sec: 5.0,
            score_delta: 1.0,
            pct_delta: 2.0,
            load_delta: 0.1,
            net_delta_frac: 0.2,
        }
    }
}

/// The figures of a host's lease view, without its strings (cheap to
/// compute and compare per snapshot).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewSignals {
    /// Quiet state.
    pub state: QuietState,
    /// Quiet score.
    pub score: f64,
    /// Stale.
    pub stale: bool,
    /// Blocked.
    pub blocked: bool,
    /// When the block ends.
    pub blocked_until: Option<f64>,
    /// Cooling down after a PANIC.
    pub cooling: bool,
    /// Forecast hint.
    pub next_quiet_at: Option<f64>,
    /// `cpu_avg_2m`.
    pub cpu: f64,
    /// Memory used percent.
    pub mem: f64,
    /// Load per core.
    pub load: f64,
    /// IO pressure.
    pub io: Option<f64>,
    /// Free percent of the fullest disk.
    pub disk_free: Option<f64>,
    /// Network bytes per second.
    pub net: f64,
}

impl ViewFilter {
    /// Whether `new` differs enough from `old` (pushed at `at`) to push it
    /// at `now`.
    pub fn worth_pushing(&self, old: &ViewSignals, at: f64, new: &ViewSignals, now: f64) -> bool {
        let moved = |a: f64, b: f64, d: f64| (a - b).abs() >= d || a.is_nan() != b.is_nan();
        let moved_opt = |a: Option<f64>, b: Option<f64>, d: f64| match (a, b) {
            (Some(a), Some(b)) => moved(a, b, d),
            (None, None) => false,
            _ => true,
        };
        now - at >= self.refresh_sec
            || old.state != new.state
            || old.stale != new.stale
            || old.blocked != new.blocked
            || old.blocked_until != new.blocked_until
            || old.cooling != new.cooling
            || old.next_quiet_at != new.next_quiet_at
            || moved(old.score, new.score, self.score_delta)
            || moved(old.cpu, new.cpu, self.pct_delta)
            || moved(old.mem, new.mem, self.pct_delta)
            || moved(old.load, new.load, self.load_delta)
            || moved_opt(old.io, new.io, self.pct_delta)
            || moved_opt(old.disk_free, new.disk_free, self.pct_delta)
            || moved(
                old.net,
                new.net,
                self.net_delta_frac * old.net.abs().max(1.0),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signals() -> ViewSignals {
        ViewSignals {
            state: QuietState::Quiet,
            score: 90.0,
            stale: false,
            blocked: false,
            blocked_until: None,
            cooling: false,
            next_quiet_at: None,
            cpu: 10.0,
            mem: 40.0,
            load: 0.2,
            io: Some(1.0),
            disk_free: Some(50.0),
            net: 1000.0,
        }
    }

    #[test]
    fn only_meaningful_view_changes_are_pushed_at_once() {
        let f = ViewFilter::default();
        let old = signals();
        let same = |g: &dyn Fn(&mut ViewSignals)| {
            let mut n = old;
            g(&mut n);
            f.worth_pushing(&old, 100.0, &n, 101.0)
        };
        assert!(!same(&|_| {}));
        assert!(!same(&|n| n.score = 90.9));
        assert!(!same(&|n| n.cpu = 11.5));
        assert!(!same(&|n| n.net = 1100.0));
        assert!(same(&|n| n.score = 89.0));
        assert!(same(&|n| n.state = QuietState::Normal));
        assert!(same(&|n| n.stale = true));
        assert!(same(&|n| n.blocked = true));
        assert!(same(&|n| n.blocked_until = Some(5.0)));
        assert!(same(&|n| n.cooling = true));
        assert!(same(&|n| n.next_quiet_at = Some(5.0)));
        assert!(same(&|n| n.cpu = 12.0));
        assert!(same(&|n| n.mem = 38.0));
        assert!(same(&|n| n.load = 0.35));
        assert!(same(&|n| n.io = None));
        assert!(same(&|n| n.disk_free = Some(47.9)));
        assert!(same(&|n| n.net = 1300.0));
        assert!(same(&|n| n.cpu = f64::NAN));
        // Small drifts go with the refresh.
        assert!(f.worth_pushing(&old, 100.0, &old, 105.0));
    }
}
