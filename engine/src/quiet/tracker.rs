//! Per-host quiet state: turns the stream of a host's snapshots into
//! [`QuietAssessment`]s, with the rolling CPU window, hysteresis (so the
//! state does not flap), latched hard PANIC triggers, the PANIC cool-down
//! and staleness. Pure: the caller passes the clock (`now`, Unix seconds).
//!
//! Hysteresis: the state leaves its score band at once only when the score
//! is past the band's edge by `hysteresis_margin`; otherwise it must stay
//! outside the band, on the same side, for `hysteresis_samples` consecutive
//! snapshots. Hard PANIC triggers switch at once. The cool-down lasts
//! `panic_cooldown_sec` after the last PANIC sample.

use std::sync::Arc;

use lull_proto::msg::hosts::{QuietAssessment, QuietInputs, QuietState};
use lull_proto::msg::stats::SystemStatsSnapshot;

use super::config::QuietConfig;
use super::score::{assess_inputs_latched, band, num};
use super::window::TimeWindow;

/// Samples seen outside the current band, towards one side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    /// `true` when the pending move is towards a worse state.
    pub worse: bool,
    /// Consecutive samples so far.
    pub count: u32,
}

/// The hysteresis step: the state after one more score.
///
/// `raw` is the band of `score` (or PANIC from a trigger, which callers
/// apply before this). Returns the new state and updates `pending`.
pub fn next_state(
    current: QuietState,
    score: f64,
    raw: QuietState,
    pending: &mut Pending,
    cfg: &QuietConfig,
) -> QuietState {
    if raw == current {
        *pending = Pending::default();
        return current;
    }
    let worse = raw > current;
    let (low, high) = band(current, cfg);
    let beyond = if worse { low - score } else { score - high };
    if beyond >= cfg.hysteresis_margin {
        *pending = Pending::default();
        return raw;
    }
    if pending.count > 0 && pending.worse == worse {
        pending.count += 1;
    } else {
        *pending = Pending { worse, count: 1 };
    }
    if pending.count >= cfg.hysteresis_samples {
        *pending = Pending::default();
        return raw;
    }
    current
}

/// The quiet state of one host.
#[derive(Debug, Clone)]
pub struct HostTracker {
    cfg: Arc<QuietConfig>,
    cpu: TimeWindow,
    state: Option<QuietState>,
    score: f64,
    pending: Pending,
    panic_latched: bool,
    last_panic_at: Option<f64>,
    last_seen: Option<f64>,
    interval_sec: f64,
    samples: u64,
}

impl HostTracker {
    /// A tracker that has seen nothing yet. Pass an `Arc` shared by all
    /// hosts to avoid a config copy per host (a plain `QuietConfig` works
    /// too).
    pub fn new(cfg: impl Into<Arc<QuietConfig>>) -> Self {
        let cfg: Arc<QuietConfig> = cfg.into();
        HostTracker {
            cpu: TimeWindow::new(cfg.cpu_window_sec, cfg.cpu_window_max_samples),
            interval_sec: cfg.default_interval_sec,
            cfg,
            state: None,
            score: 0.0,
            pending: Pending::default(),
            panic_latched: false,
            last_panic_at: None,
            last_seen: None,
            samples: 0,
        }
    }

    /// Takes one snapshot received at `now` and returns the host's new
    /// assessment. The first snapshot sets the state directly; later ones
    /// go through hysteresis. Cheap: a few float operations, plus one
    /// string per signal that costs the host points.
    pub fn observe(&mut self, snap: &SystemStatsSnapshot, now: f64) -> QuietAssessment {
        let cfg = Arc::clone(&self.cfg);
        let t = match self.last_seen {
            Some(last) if last > now => last,
            _ => now,
        };
        self.cpu.push(t, snap.host.cpu_pct);
        let inputs = inputs_from(snap, self.cpu.mean().unwrap_or(snap.host.cpu_pct));

        let assessed = assess_inputs_latched(&inputs, &cfg, self.panic_latched);
        let mut reasons = assessed.reasons;
        let state = if assessed.panic_triggered {
            self.pending = Pending::default();
            QuietState::Panic
        } else {
            match self.state {
                None => assessed.raw_state,
                Some(cur) => next_state(
                    cur,
                    assessed.quiet_score,
                    assessed.raw_state,
                    &mut self.pending,
                    &cfg,
                ),
            }
        };
        if state != assessed.raw_state {
            reasons.push(format!(
                "hysteresis: holding {state}, score {} is {} ({}/{} samples, margin {})",
                num(assessed.quiet_score),
                assessed.raw_state,
                self.pending.count,
                cfg.hysteresis_samples,
                num(cfg.hysteresis_margin)
            ));
        }
        self.panic_latched = assessed.panic_triggered;
        self.state = Some(state);
        self.score = assessed.quiet_score;
        if state == QuietState::Panic {
            self.last_panic_at = Some(t);
        } else if let Some(left) = self.in_cooldown(t) {
            reasons.push(format!("panic cool-down: {}s left", num(left.ceil())));
        }
        self.last_seen = Some(t);
        self.interval_sec = snap
            .interval_sec
            .filter(|i| i.is_finite() && *i > 0.0)
            .unwrap_or(cfg.default_interval_sec);
        self.samples += 1;

        QuietAssessment {
            quiet_score: assessed.quiet_score,
            state,
            reasons,
            inputs,
        }
    }

    /// The current state, `None` before the first snapshot.
    pub fn state(&self) -> Option<QuietState> {
        self.state
    }

    /// The latest quiet score, `None` before the first snapshot.
    pub fn score(&self) -> Option<f64> {
        self.state.map(|_| self.score)
    }

    /// Unix seconds of the latest snapshot, `None` before the first.
    pub fn last_seen(&self) -> Option<f64> {
        self.last_seen
    }

    /// The host's snapshot interval (from its latest snapshot, else the
    /// configured default).
    pub fn interval_sec(&self) -> f64 {
        self.interval_sec
    }

    /// Snapshots observed so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// When the host turns stale if nothing arrives:
    /// `last_seen + stale_factor × interval`. `None` before the first
    /// snapshot (such a host is stale already).
    pub fn stale_at(&self) -> Option<f64> {
        self.last_seen
            .map(|t| t + self.cfg.stale_factor * self.interval_sec)
    }

    /// Whether no snapshot came for `stale_factor` × the host's interval.
    pub fn is_stale(&self, now: f64) -> bool {
        self.stale_at().is_none_or(|at| now > at)
    }

    /// Seconds of PANIC cool-down left at `now`, or `None` when the host has
    /// not been in PANIC for `panic_cooldown_sec`. While the host is in
    /// PANIC this returns the full cool-down (leases deny with `panic`
    /// first, then `panic_cooldown`).
    pub fn in_cooldown(&self, now: f64) -> Option<f64> {
        let at = self.last_panic_at?;
        let left = at + self.cfg.panic_cooldown_sec - now;
        (left > 0.0).then_some(left)
    }

    /// Unix seconds of the latest PANIC sample.
    pub fn last_panic_at(&self) -> Option<f64> {
        self.last_panic_at
    }
}

/// Builds the score inputs from a snapshot and the windowed CPU average.
pub fn inputs_from(snap: &SystemStatsSnapshot, cpu_avg: f64) -> QuietInputs {
    let h = &snap.host;
    let cores = f64::from(h.cpu_count.max(1));
    let psi = h.pressure.as_ref();
    QuietInputs {
        cpu_avg_2m: round2(cpu_avg),
        mem_pct: h.mem_used_pct,
        swap_pct: h.swap_used_pct,
        load_per_core: round2(h.load_avg[0] / cores),
        disk_free_pct: h.worst_disk_free_pct().map(round2),
        io_pressure: psi.map(|p| p.io_some_avg10),
        rps: snap.api.map(|a| a.rps),
        error_rate: snap.api.map(|a| a.error_rate),
        p95_ms: snap.api.map(|a| a.p95_ms),
        cpu_pressure: psi.map(|p| p.cpu_some_avg10),
        mem_pressure: psi.map(|p| p.mem_some_avg10),
        mem_full_pressure: psi.map(|p| p.mem_full_avg10),
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_proto::msg::stats::{example_snapshot, ApiStats, Pressure};

    fn cfg() -> Arc<QuietConfig> {
        Arc::new(QuietConfig::default())
    }

    fn snap(cpu: f64) -> SystemStatsSnapshot {
        let mut s = example_snapshot("h1", 1, 1000.0);
        s.host.cpu_pct = cpu;
        s
    }

    /// A tracker with a 1-sample CPU window, so the score follows the
    /// snapshot directly (score = 100 − 55 × (cpu − 20) / 60).
    fn direct() -> HostTracker {
        HostTracker::new(QuietConfig {
            cpu_window_max_samples: 1,
            ..Default::default()
        })
    }

    /// CPU percent that gives `score` under the default curve.
    fn cpu_for(score: f64) -> f64 {
        20.0 + (100.0 - score) * 60.0 / 55.0
    }

    #[test]
    fn first_snapshot_sets_state_and_inputs() {
        let mut t = HostTracker::new(cfg());
        assert!(t.state().is_none() && t.is_stale(0.0));
        let mut s = snap(5.0);
        s.host.load_avg = [2.0, 0.0, 0.0];
        s.api = Some(ApiStats {
            rps: 3.0,
            error_rate: 0.0,
            p95_ms: 20.0,
        });
        let a = t.observe(&s, 1000.0);
        assert_eq!(a.state, QuietState::Quiet);
        assert_eq!(a.quiet_score, 100.0);
        assert_eq!(a.inputs.load_per_core, 0.5);
        assert_eq!(a.inputs.disk_free_pct, Some(60.0));
        assert_eq!(a.inputs.rps, Some(3.0));
        assert_eq!(a.inputs.io_pressure, None);
        assert_eq!(t.state(), Some(QuietState::Quiet));
        assert_eq!(t.last_seen(), Some(1000.0));
        assert_eq!(t.samples(), 1);
    }

    #[test]
    fn pressure_is_taken_from_psi() {
        let mut t = HostTracker::new(cfg());
        let mut s = snap(5.0);
        s.host.pressure = Some(Pressure {
            cpu_some_avg10: 1.0,
            mem_some_avg10: 2.0,
            mem_full_avg10: 0.5,
            io_some_avg10: 60.0,
            io_full_avg10: 10.0,
        });
        let a = t.observe(&s, 0.0);
        assert_eq!(a.inputs.io_pressure, Some(60.0));
        assert_eq!(a.inputs.cpu_pressure, Some(1.0));
        assert_eq!(a.inputs.mem_full_pressure, Some(0.5));
        assert_eq!(a.quiet_score, 65.0);
        assert_eq!(a.state, QuietState::Normal);
        assert!(
            a.reasons[0].starts_with("io_pressure 60% > 50%"),
            "{:?}",
            a.reasons
        );
    }

    #[test]
    fn cpu_is_averaged_over_the_window() {
        let mut t = HostTracker::new(cfg());
        for i in 0..60 {
            t.observe(&snap(10.0), i as f64 * 2.0);
        }
        // One spike does not move a two-minute average much.
        let a = t.observe(&snap(100.0), 120.0);
        assert!(
            (a.inputs.cpu_avg_2m - 11.48).abs() < 0.01,
            "{}",
            a.inputs.cpu_avg_2m
        );
        assert_eq!(a.state, QuietState::Quiet);
        // Sustained load does.
        let mut last = a;
        for i in 61..130 {
            last = t.observe(&snap(100.0), i as f64 * 2.0);
        }
        assert_eq!(last.inputs.cpu_avg_2m, 100.0);
        assert_eq!(last.state, QuietState::Busy);
        assert!(last.reasons[0].starts_with("cpu_avg_2m 100% > 80%"));
    }

    /// The score oscillates around the QUIET/NORMAL edge (75) within the
    /// margin: the state must not flap.
    #[test]
    fn oscillating_input_does_not_flap() {
        let mut t = direct();
        let mut now = 0.0;
        let first = t.observe(&snap(cpu_for(80.0)), now).state;
        assert_eq!(first, QuietState::Quiet);
        let mut changes = 0;
        let mut prev = first;
        for i in 0..200 {
            now += 2.0;
            let score = if i % 2 == 0 { 73.0 } else { 77.0 };
            let a = t.observe(&snap(cpu_for(score)), now);
            if a.state != prev {
                changes += 1;
                prev = a.state;
            }
        }
        assert_eq!(changes, 0, "state flapped");
        assert_eq!(prev, QuietState::Quiet);

        // Same around the NORMAL/BUSY edge, starting from NORMAL, with an
        // uneven pattern (two below, one above).
        let mut t = direct();
        assert_eq!(
            t.observe(&snap(cpu_for(60.0)), 0.0).state,
            QuietState::Normal
        );
        for i in 0..300 {
            let score = if i % 3 == 2 { 52.0 } else { 47.0 };
            let a = t.observe(&snap(cpu_for(score)), i as f64);
            assert_eq!(a.state, QuietState::Normal, "flapped at sample {i}");
        }
    }

    #[test]
    fn margin_crossing_switches_at_once() {
        let mut t = direct();
        t.observe(&snap(cpu_for(90.0)), 0.0);
        let a = t.observe(&snap(cpu_for(70.0)), 2.0);
        assert_eq!(a.state, QuietState::Normal, "75 − 70 = margin");
        let a = t.observe(&snap(cpu_for(30.0)), 4.0);
        assert_eq!(a.state, QuietState::Busy, "jumps straight to the raw band");
        let a = t.observe(&snap(cpu_for(96.0)), 6.0);
        assert_eq!(a.state, QuietState::Quiet, "improves at once too");
    }

    #[test]
    fn staying_past_the_edge_for_n_samples_switches() {
        let mut t = direct();
        t.observe(&snap(cpu_for(90.0)), 0.0);
        let a = t.observe(&snap(cpu_for(73.0)), 2.0);
        assert_eq!(a.state, QuietState::Quiet);
        assert!(
            a.reasons
                .iter()
                .any(|r| r.starts_with("hysteresis: holding QUIET")),
            "{:?}",
            a.reasons
        );
        assert_eq!(
            t.observe(&snap(cpu_for(73.0)), 4.0).state,
            QuietState::Quiet
        );
        let a = t.observe(&snap(cpu_for(73.0)), 6.0);
        assert_eq!(a.state, QuietState::Normal, "third sample switches");
        assert!(!a.reasons.iter().any(|r| r.starts_with("hysteresis")));
        // And back: 77 is above 75 but within the margin.
        assert_eq!(
            t.observe(&snap(cpu_for(77.0)), 8.0).state,
            QuietState::Normal
        );
        assert_eq!(
            t.observe(&snap(cpu_for(77.0)), 10.0).state,
            QuietState::Normal
        );
        assert_eq!(
            t.observe(&snap(cpu_for(77.0)), 12.0).state,
            QuietState::Quiet
        );
    }

    #[test]
    fn pending_resets_when_direction_changes() {
        let cfg = QuietConfig::default();
        let mut p = Pending::default();
        let s = next_state(QuietState::Normal, 48.0, QuietState::Busy, &mut p, &cfg);
        assert_eq!((s, p.count, p.worse), (QuietState::Normal, 1, true));
        let s = next_state(QuietState::Normal, 48.0, QuietState::Busy, &mut p, &cfg);
        assert_eq!((s, p.count), (QuietState::Normal, 2));
        let s = next_state(QuietState::Normal, 77.0, QuietState::Quiet, &mut p, &cfg);
        assert_eq!((s, p.count, p.worse), (QuietState::Normal, 1, false));
        let s = next_state(QuietState::Normal, 60.0, QuietState::Normal, &mut p, &cfg);
        assert_eq!((s, p), (QuietState::Normal, Pending::default()));
    }

    #[test]
    fn hard_triggers_are_immediate_and_latched() {
        let mut t = direct();
        t.observe(&snap(5.0), 0.0);
        let mut s = snap(5.0);
        s.host.mem_used_pct = 96.0;
        let a = t.observe(&s, 2.0);
        assert_eq!(a.state, QuietState::Panic);
        assert_eq!(a.quiet_score, 0.0);
        assert!(a.reasons[0].starts_with("PANIC: mem_pct 96%"));
        // Hovering just under the trigger keeps PANIC (release margin 2).
        s.host.mem_used_pct = 94.0;
        assert_eq!(t.observe(&s, 4.0).state, QuietState::Panic);
        s.host.mem_used_pct = 92.0;
        let a = t.observe(&s, 6.0);
        assert_ne!(a.state, QuietState::Panic);
    }

    #[test]
    fn disk_and_memory_stall_triggers() {
        let mut t = direct();
        t.observe(&snap(5.0), 0.0);
        let mut s = snap(5.0);
        s.host.disks[0].used_pct = 98.0;
        let a = t.observe(&s, 2.0);
        assert_eq!(a.state, QuietState::Panic);
        assert!(
            a.reasons[0].starts_with("PANIC: disk_free_pct 2%"),
            "{:?}",
            a.reasons
        );

        let mut t = direct();
        t.observe(&snap(5.0), 0.0);
        let mut s = snap(5.0);
        s.host.pressure = Some(Pressure {
            cpu_some_avg10: 0.0,
            mem_some_avg10: 40.0,
            mem_full_avg10: 25.0,
            io_some_avg10: 0.0,
            io_full_avg10: 0.0,
        });
        let a = t.observe(&s, 2.0);
        assert_eq!(a.state, QuietState::Panic);
        assert!(a.reasons[0].starts_with("PANIC: mem_full_pressure 25%"));
    }

    #[test]
    fn cooldown_after_panic() {
        let mut t = direct();
        assert_eq!(t.in_cooldown(0.0), None);
        let mut s = snap(5.0);
        s.host.mem_used_pct = 99.0;
        t.observe(&s, 100.0);
        t.observe(&s, 102.0);
        assert_eq!(t.last_panic_at(), Some(102.0));
        assert_eq!(t.in_cooldown(102.0), Some(300.0), "full while in PANIC");
        let a = t.observe(&snap(5.0), 104.0);
        assert_eq!(a.state, QuietState::Quiet, "state recovers at once");
        assert!(
            a.reasons.iter().any(|r| r == "panic cool-down: 298s left"),
            "{:?}",
            a.reasons
        );
        assert_eq!(t.in_cooldown(104.0), Some(298.0));
        assert_eq!(t.in_cooldown(401.5), Some(0.5));
        assert_eq!(t.in_cooldown(402.0), None);
        assert_eq!(t.in_cooldown(1000.0), None);
        let a = t.observe(&snap(5.0), 500.0);
        assert!(a.reasons.is_empty(), "{:?}", a.reasons);
    }

    #[test]
    fn score_panic_also_starts_the_cooldown() {
        let mut t = direct();
        let mut s = snap(100.0);
        s.host.mem_used_pct = 92.0;
        s.host.load_avg = [16.0, 0.0, 0.0];
        let a = t.observe(&s, 10.0);
        assert_eq!(a.state, QuietState::Panic);
        assert!(t.in_cooldown(11.0).is_some());
    }

    #[test]
    fn staleness_uses_the_snapshot_interval() {
        let mut t = HostTracker::new(cfg());
        let mut s = snap(5.0);
        s.interval_sec = Some(5.0);
        t.observe(&s, 100.0);
        assert_eq!(t.interval_sec(), 5.0);
        assert_eq!(t.stale_at(), Some(115.0));
        assert!(!t.is_stale(110.0));
        assert!(!t.is_stale(115.0));
        assert!(t.is_stale(115.1));
        // Without interval_sec: the 2 s default, stale after 6 s.
        s.interval_sec = None;
        t.observe(&s, 200.0);
        assert!(!t.is_stale(206.0));
        assert!(t.is_stale(206.5));
        // A fresh snapshot clears staleness.
        t.observe(&s, 300.0);
        assert!(!t.is_stale(301.0));
    }

    #[test]
    fn clock_going_backwards_is_tolerated() {
        let mut t = HostTracker::new(cfg());
        t.observe(&snap(5.0), 100.0);
        t.observe(&snap(5.0), 90.0);
        assert_eq!(t.last_seen(), Some(100.0));
    }
}
