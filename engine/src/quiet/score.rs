//! The quiet score: a pure function from [`QuietInputs`] to a score
//! (0..100), the state the score alone implies, and human-readable reasons.
//!
//! Formula: every signal has a penalty curve (see [`SignalCurve`]): no
//! penalty up to its `quiet` point, rising linearly to its `weight` at its
//! `busy` point, flat after that. `score = clamp(100 − Σ penalties, 0, 100)`,
//! rounded to 0.1. PSI is preferred where the host reports it: CPU pressure
//! replaces load per core and memory pressure replaces swap use; IO pressure
//! exists only with PSI. API signals count only when the host reports API
//! stats. Hard PANIC triggers (memory used, worst disk free, full memory
//! stall) override everything: the state is PANIC and the score 0.
//! State bands: QUIET ≥ `quiet_min_score`, NORMAL ≥ `normal_min_score`,
//! BUSY ≥ `busy_min_score`, PANIC below.

use std::fmt::Write as _;

use lull_proto::msg::hosts::{QuietInputs, QuietState};

use super::config::{Direction, QuietConfig, Signal};

/// What the score function concluded from one set of inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessed {
    /// 0 (overloaded) to 100 (idle), rounded to 0.1.
    pub quiet_score: f64,
    /// The state the score implies, before hysteresis (PANIC when a hard
    /// trigger fired).
    pub raw_state: QuietState,
    /// Reasons, hard triggers first, then signals by penalty (largest
    /// first). Empty for an idle host.
    pub reasons: Vec<String>,
    /// Whether a hard PANIC trigger fired.
    pub panic_triggered: bool,
}

/// Scores `inputs` with the configured curves and triggers.
pub fn assess_inputs(inputs: &QuietInputs, cfg: &QuietConfig) -> Assessed {
    assess_inputs_latched(inputs, cfg, false)
}

/// Like [`assess_inputs`], but when `latched` (a hard trigger fired on the
/// previous sample) the triggers are relaxed by `panic_release_margin_pct`,
/// so a value hovering at a trigger does not flip PANIC on and off.
pub fn assess_inputs_latched(inputs: &QuietInputs, cfg: &QuietConfig, latched: bool) -> Assessed {
    let mut reasons = Vec::new();
    let relax = if latched {
        cfg.panic_release_margin_pct
    } else {
        0.0
    };
    let triggered = panic_triggers(inputs, cfg, relax, &mut reasons);

    // Penalties on the stack, then reasons in descending penalty order.
    let mut penalties = [0.0f64; Signal::ALL.len()];
    let mut values = [0.0f64; Signal::ALL.len()];
    let mut total = 0.0;
    for (i, s) in Signal::ALL.iter().enumerate() {
        if let Some(v) = signal_value(inputs, *s) {
            let p = cfg.curve(*s).penalty(v);
            penalties[i] = p;
            values[i] = v;
            total += p;
        }
    }
    let mut order: [usize; Signal::ALL.len()] = std::array::from_fn(|i| i);
    order.sort_by(|a, b| penalties[*b].total_cmp(&penalties[*a]));
    for i in order {
        if penalties[i] > 0.0 {
            reasons.push(signal_reason(Signal::ALL[i], values[i], penalties[i], cfg));
        }
    }

    let quiet_score = if triggered {
        0.0
    } else {
        round1((100.0 - total).clamp(0.0, 100.0))
    };
    let raw_state = if triggered {
        QuietState::Panic
    } else {
        state_for_score(quiet_score, cfg)
    };
    Assessed {
        quiet_score,
        raw_state,
        reasons,
        panic_triggered: triggered,
    }
}

/// The state band a score falls in.
pub fn state_for_score(score: f64, cfg: &QuietConfig) -> QuietState {
    if score >= cfg.quiet_min_score {
        QuietState::Quiet
    } else if score >= cfg.normal_min_score {
        QuietState::Normal
    } else if score >= cfg.busy_min_score {
        QuietState::Busy
    } else {
        QuietState::Panic
    }
}

/// The score band `[low, high)` of a state (`high` is +∞ for QUIET, `low`
/// −∞ for PANIC).
pub fn band(state: QuietState, cfg: &QuietConfig) -> (f64, f64) {
    match state {
        QuietState::Quiet => (cfg.quiet_min_score, f64::INFINITY),
        QuietState::Normal => (cfg.normal_min_score, cfg.quiet_min_score),
        QuietState::Busy => (cfg.busy_min_score, cfg.normal_min_score),
        QuietState::Panic => (f64::NEG_INFINITY, cfg.busy_min_score),
    }
}

/// The value of a signal, or `None` when it is absent or replaced (load per
/// core and swap give way to PSI CPU and memory pressure).
pub fn signal_value(inputs: &QuietInputs, signal: Signal) -> Option<f64> {
    let v = match signal {
        Signal::Cpu => Some(inputs.cpu_avg_2m),
        Signal::Mem => Some(inputs.mem_pct),
        Signal::Swap => match inputs.mem_pressure {
            Some(_) => None,
            None => Some(inputs.swap_pct),
        },
        Signal::Load => match inputs.cpu_pressure {
            Some(_) => None,
            None => Some(inputs.load_per_core),
        },
        Signal::CpuPressure => inputs.cpu_pressure,
        Signal::MemPressure => inputs.mem_pressure,
        Signal::IoPressure => inputs.io_pressure,
        Signal::DiskFree => inputs.disk_free_pct,
        Signal::Rps => inputs.rps,
        Signal::ErrorRate => inputs.error_rate,
        Signal::P95 => inputs.p95_ms,
    };
    v.filter(|v| v.is_finite())
}

/// Checks the hard triggers (thresholds moved by `relax` towards the safe
/// side), pushes one reason per trigger that fired, and says whether any did.
fn panic_triggers(
    inputs: &QuietInputs,
    cfg: &QuietConfig,
    relax: f64,
    reasons: &mut Vec<String>,
) -> bool {
    let mut fired = false;
    let mut check = |name: &str, value: Option<f64>, limit: f64, higher_is_worse: bool| {
        let Some(v) = value.filter(|v| v.is_finite()) else {
            return;
        };
        let (hit, effective, op) = if higher_is_worse {
            (v >= limit - relax, limit - relax, ">=")
        } else {
            (v <= limit + relax, limit + relax, "<=")
        };
        if hit {
            fired = true;
            let mut r = format!("PANIC: {name} {}% {op} {}%", num(v), num(effective));
            if relax > 0.0 {
                let _ = write!(
                    r,
                    " (trigger {}%, held until past it by {})",
                    num(limit),
                    num(relax)
                );
            }
            reasons.push(r);
        }
    };
    check("mem_pct", Some(inputs.mem_pct), cfg.panic_mem_pct, true);
    check(
        "disk_free_pct",
        inputs.disk_free_pct,
        cfg.panic_disk_free_pct,
        false,
    );
    check(
        "mem_full_pressure",
        inputs.mem_full_pressure,
        cfg.panic_mem_full_pressure_pct,
        true,
    );
    fired
}

fn signal_reason(signal: Signal, value: f64, penalty: f64, cfg: &QuietConfig) -> String {
    let curve = cfg.curve(signal);
    let threshold = if curve.is_busy(value) {
        curve.busy
    } else {
        curve.quiet
    };
    let op = match (curve.direction, value == threshold) {
        (Direction::HigherIsWorse, false) => ">",
        (Direction::HigherIsWorse, true) => ">=",
        (Direction::LowerIsWorse, false) => "<",
        (Direction::LowerIsWorse, true) => "<=",
    };
    let unit = match signal {
        Signal::Cpu
        | Signal::Mem
        | Signal::Swap
        | Signal::CpuPressure
        | Signal::MemPressure
        | Signal::IoPressure
        | Signal::DiskFree => "%",
        Signal::P95 => "ms",
        Signal::Load | Signal::Rps | Signal::ErrorRate => "",
    };
    format!(
        "{} {}{unit} {op} {}{unit} (-{})",
        signal.name(),
        num(value),
        num(threshold),
        num(penalty)
    )
}

/// Rounds to one decimal.
pub(crate) fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Formats a number compactly: no decimals from 100, one below, three
/// below 1; trailing zeros dropped (`87`, `79.6`, `0.12`).
pub(crate) fn num(v: f64) -> String {
    let a = v.abs();
    let s = if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle() -> QuietInputs {
        QuietInputs {
            cpu_avg_2m: 5.0,
            mem_pct: 30.0,
            swap_pct: 0.0,
            load_per_core: 0.1,
            disk_free_pct: Some(60.0),
            ..Default::default()
        }
    }

    fn score(i: &QuietInputs) -> f64 {
        assess_inputs(i, &QuietConfig::default()).quiet_score
    }

    #[test]
    fn idle_host_is_quiet_without_reasons() {
        let a = assess_inputs(&idle(), &QuietConfig::default());
        assert_eq!(a.quiet_score, 100.0);
        assert_eq!(a.raw_state, QuietState::Quiet);
        assert!(a.reasons.is_empty());
        assert!(!a.panic_triggered);
    }

    #[test]
    fn cpu_thresholds_and_reason() {
        let mut i = idle();
        i.cpu_avg_2m = 20.0;
        assert_eq!(score(&i), 100.0, "no penalty at the quiet point");
        i.cpu_avg_2m = 20.5;
        assert!(score(&i) < 100.0, "penalty just past the quiet point");
        i.cpu_avg_2m = 80.0;
        assert_eq!(score(&i), 45.0, "full weight 55 at the busy point");
        i.cpu_avg_2m = 87.0;
        let a = assess_inputs(&i, &QuietConfig::default());
        assert_eq!(a.quiet_score, 45.0, "flat past the busy point");
        assert_eq!(a.raw_state, QuietState::Busy);
        assert_eq!(a.reasons, vec!["cpu_avg_2m 87% > 80% (-55)".to_string()]);
        i.cpu_avg_2m = 45.0;
        let a = assess_inputs(&i, &QuietConfig::default());
        assert_eq!(a.reasons[0], "cpu_avg_2m 45% > 20% (-22.9)");
    }

    /// Each signal: nothing at its quiet point, its full weight at its busy
    /// point, and a reason naming it.
    #[test]
    fn every_signal_threshold() {
        let cfg = QuietConfig::default();
        type Set = fn(&mut QuietInputs, f64);
        let cases: [(Signal, Set); 11] = [
            (Signal::Cpu, |i, v| i.cpu_avg_2m = v),
            (Signal::Mem, |i, v| i.mem_pct = v),
            (Signal::Swap, |i, v| i.swap_pct = v),
            (Signal::Load, |i, v| i.load_per_core = v),
            (Signal::CpuPressure, |i, v| i.cpu_pressure = Some(v)),
            (Signal::MemPressure, |i, v| i.mem_pressure = Some(v)),
            (Signal::IoPressure, |i, v| i.io_pressure = Some(v)),
            (Signal::DiskFree, |i, v| i.disk_free_pct = Some(v)),
            (Signal::Rps, |i, v| i.rps = Some(v)),
            (Signal::ErrorRate, |i, v| i.error_rate = Some(v)),
            (Signal::P95, |i, v| i.p95_ms = Some(v)),
        ];
        for (signal, set) in cases {
            let curve = cfg.curve(signal);
            let mut i = idle();
            set(&mut i, curve.quiet);
            let a = assess_inputs(&i, &cfg);
            assert_eq!(a.quiet_score, 100.0, "{signal:?} at quiet point");
            assert!(a.reasons.is_empty(), "{signal:?}: {:?}", a.reasons);

            let mut i = idle();
            set(&mut i, curve.busy);
            let a = assess_inputs(&i, &cfg);
            assert!(!a.panic_triggered, "{signal:?} busy point is not a trigger");
            assert_eq!(
                a.quiet_score,
                round1(100.0 - curve.weight),
                "{signal:?} at busy point"
            );
            assert_eq!(a.reasons.len(), 1, "{signal:?}: {:?}", a.reasons);
            assert!(
                a.reasons[0].starts_with(signal.name()),
                "{signal:?}: {}",
                a.reasons[0]
            );
        }
    }

    #[test]
    fn psi_replaces_load_and_swap() {
        let mut i = idle();
        i.load_per_core = 3.0;
        i.swap_pct = 90.0;
        assert_eq!(score(&i), 100.0 - 25.0 - 20.0);
        i.cpu_pressure = Some(0.0);
        i.mem_pressure = Some(0.0);
        i.io_pressure = Some(0.0);
        assert_eq!(score(&i), 100.0, "PSI says no contention");
        i.io_pressure = Some(50.0);
        assert_eq!(score(&i), 65.0);
    }

    #[test]
    fn state_bands() {
        let cfg = QuietConfig::default();
        assert_eq!(state_for_score(100.0, &cfg), QuietState::Quiet);
        assert_eq!(state_for_score(75.0, &cfg), QuietState::Quiet);
        assert_eq!(state_for_score(74.9, &cfg), QuietState::Normal);
        assert_eq!(state_for_score(50.0, &cfg), QuietState::Normal);
        assert_eq!(state_for_score(49.9, &cfg), QuietState::Busy);
        assert_eq!(state_for_score(10.0, &cfg), QuietState::Busy);
        assert_eq!(state_for_score(9.9, &cfg), QuietState::Panic);
        assert_eq!(state_for_score(0.0, &cfg), QuietState::Panic);
        assert_eq!(band(QuietState::Normal, &cfg), (50.0, 75.0));
    }

    #[test]
    fn penalties_add_up_and_clamp() {
        let mut i = idle();
        i.cpu_avg_2m = 100.0;
        i.mem_pct = 92.0;
        i.load_per_core = 4.0;
        let a = assess_inputs(&i, &QuietConfig::default());
        assert_eq!(a.quiet_score, 0.0);
        assert_eq!(a.raw_state, QuietState::Panic, "score alone can mean PANIC");
        assert!(!a.panic_triggered);
        // Largest penalty first.
        assert!(a.reasons[0].starts_with("cpu_avg_2m"), "{:?}", a.reasons);
        assert!(a.reasons[1].starts_with("mem_pct"), "{:?}", a.reasons);
    }

    #[test]
    fn mem_trigger() {
        let mut i = idle();
        i.mem_pct = 94.9;
        assert!(!assess_inputs(&i, &QuietConfig::default()).panic_triggered);
        i.mem_pct = 95.0;
        let a = assess_inputs(&i, &QuietConfig::default());
        assert!(a.panic_triggered);
        assert_eq!(a.raw_state, QuietState::Panic);
        assert_eq!(a.quiet_score, 0.0);
        assert_eq!(a.reasons[0], "PANIC: mem_pct 95% >= 95%");
    }

    #[test]
    fn disk_trigger() {
        let mut i = idle();
        i.disk_free_pct = Some(3.1);
        assert!(!assess_inputs(&i, &QuietConfig::default()).panic_triggered);
        i.disk_free_pct = Some(3.0);
        let a = assess_inputs(&i, &QuietConfig::default());
        assert!(a.panic_triggered);
        assert_eq!(a.reasons[0], "PANIC: disk_free_pct 3% <= 3%");
        i.disk_free_pct = None;
        assert!(!assess_inputs(&i, &QuietConfig::default()).panic_triggered);
    }

    #[test]
    fn mem_full_pressure_trigger() {
        let mut i = idle();
        i.mem_full_pressure = Some(9.9);
        assert!(!assess_inputs(&i, &QuietConfig::default()).panic_triggered);
        i.mem_full_pressure = Some(12.5);
        let a = assess_inputs(&i, &QuietConfig::default());
        assert!(a.panic_triggered);
        assert_eq!(a.reasons[0], "PANIC: mem_full_pressure 12.5% >= 10%");
    }

    #[test]
    fn latched_trigger_needs_the_release_margin() {
        let cfg = QuietConfig::default();
        let mut i = idle();
        i.mem_pct = 94.0;
        assert!(!assess_inputs_latched(&i, &cfg, false).panic_triggered);
        let a = assess_inputs_latched(&i, &cfg, true);
        assert!(a.panic_triggered, "94 is within 2 points of 95");
        assert!(a.reasons[0].contains("held"), "{}", a.reasons[0]);
        i.mem_pct = 92.9;
        assert!(!assess_inputs_latched(&i, &cfg, true).panic_triggered);
    }

    #[test]
    fn triggers_ignore_non_finite_values() {
        let mut i = idle();
        i.disk_free_pct = Some(f64::NAN);
        i.mem_full_pressure = Some(f64::INFINITY);
        let a = assess_inputs(&i, &QuietConfig::default());
        assert!(!a.panic_triggered);
        assert_eq!(a.quiet_score, 100.0);
    }

    #[test]
    fn numbers_are_compact() {
        assert_eq!(num(87.0), "87");
        assert_eq!(num(79.64), "79.6");
        assert_eq!(num(0.12), "0.12");
        assert_eq!(num(1500.4), "1500");
        assert_eq!(num(0.0), "0");
    }
}
