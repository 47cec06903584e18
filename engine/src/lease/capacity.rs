//! Host capacity in budget units: how much heavy work a host may carry at
//! once given its cores, its quiet state and its quiet score, keeping
//! headroom for the rest of the system. Pure.

use lull_proto::msg::hosts::QuietState;

use super::config::CapacityConfig;

/// Capacity units of a host:
///
/// ```text
/// raw      = base_units + units_per_core * max(cpu_count, 1)
/// usable   = raw * (1 - headroom_pct / 100)          // kept for the system
/// state    = quiet_factor | normal_factor | busy_factor | 0 (PANIC)
/// by_score = 1 - score_weight * (1 - clamp(score, 0, 100) / 100)
/// capacity = min(floor(usable * state * by_score), max_units)
/// ```
///
/// With the defaults (40 + 15/core, 20 % headroom, factors 1 / 0.5 / 0.15,
/// score weight 0.2) a 4-core host has 80 units when QUIET with a perfect
/// score, 36 when NORMAL at score 50, 10 when BUSY at score 25, and 0 in
/// PANIC. An unknown core count (0) counts as one core; a NaN score as 0.
pub fn calculate_capacity(
    cpu_count: u32,
    state: QuietState,
    score: f64,
    cfg: &CapacityConfig,
) -> u32 {
    let cores = f64::from(cpu_count.max(1));
    let raw = cfg.base_units + cfg.units_per_core * cores;
    let usable = raw * (1.0 - cfg.headroom_pct / 100.0);
    let score = if score.is_nan() {
        0.0
    } else {
        score.clamp(0.0, 100.0)
    };
    let by_score = 1.0 - cfg.score_weight * (1.0 - score / 100.0);
    let units = usable * cfg.state_factor(state) * by_score;
    if units.is_nan() || units <= 0.0 {
        return 0;
    }
    // The epsilon keeps 79.99999999 (float noise of 100 * 0.8) at 80.
    let units = (units + 1e-9).floor();
    if units >= f64::from(cfg.max_units) {
        cfg.max_units
    } else {
        units as u32
    }
}

/// The most a host could ever carry: its capacity when QUIET with a perfect
/// score. Used to bound leases re-asserted after a restart.
pub fn ceiling(cpu_count: u32, cfg: &CapacityConfig) -> u32 {
    calculate_capacity(cpu_count, QuietState::Quiet, 100.0, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> CapacityConfig {
        CapacityConfig::default()
    }

    #[test]
    fn documented_examples() {
        let c = cfg();
        assert_eq!(calculate_capacity(4, QuietState::Quiet, 100.0, &c), 80);
        assert_eq!(calculate_capacity(4, QuietState::Normal, 50.0, &c), 36);
        assert_eq!(calculate_capacity(4, QuietState::Busy, 25.0, &c), 10);
        assert_eq!(calculate_capacity(4, QuietState::Panic, 100.0, &c), 0);
    }

    #[test]
    fn grows_with_cores_and_keeps_headroom() {
        let c = cfg();
        let one = calculate_capacity(1, QuietState::Quiet, 100.0, &c);
        let eight = calculate_capacity(8, QuietState::Quiet, 100.0, &c);
        assert_eq!(one, 44); // (40 + 15) * 0.8
        assert_eq!(eight, 128); // (40 + 120) * 0.8
                                // Never the whole raw budget.
        assert!(f64::from(eight) < 40.0 + 15.0 * 8.0);
        // Unknown core count counts as one.
        assert_eq!(calculate_capacity(0, QuietState::Quiet, 100.0, &c), one);
    }

    #[test]
    fn worse_state_never_has_more_room() {
        let c = cfg();
        for cores in [1, 2, 4, 16, 64] {
            for score in [0.0, 30.0, 60.0, 100.0] {
                let caps: Vec<u32> = QuietState::ALL
                    .iter()
                    .map(|s| calculate_capacity(cores, *s, score, &c))
                    .collect();
                assert!(
                    caps.windows(2).all(|w| w[0] >= w[1]),
                    "{cores} {score} {caps:?}"
                );
                assert_eq!(caps[3], 0);
            }
        }
    }

    #[test]
    fn score_scales_within_a_state() {
        let c = cfg();
        let hi = calculate_capacity(4, QuietState::Quiet, 100.0, &c);
        let lo = calculate_capacity(4, QuietState::Quiet, 75.0, &c);
        assert_eq!(lo, 76); // 80 * (1 - 0.2 * 0.25)
        assert!(lo < hi);
        // Out-of-range and NaN scores are clamped.
        assert_eq!(calculate_capacity(4, QuietState::Quiet, 150.0, &c), hi);
        assert_eq!(
            calculate_capacity(4, QuietState::Quiet, f64::NAN, &c),
            calculate_capacity(4, QuietState::Quiet, 0.0, &c)
        );
        let flat = CapacityConfig {
            score_weight: 0.0,
            ..cfg()
        };
        assert_eq!(calculate_capacity(4, QuietState::Quiet, 0.0, &flat), 80);
    }

    #[test]
    fn max_units_caps_big_hosts() {
        let c = cfg();
        assert_eq!(calculate_capacity(4096, QuietState::Quiet, 100.0, &c), 1000);
        assert_eq!(ceiling(4096, &c), 1000);
        assert_eq!(ceiling(4, &c), 80);
    }

    #[test]
    fn zero_budget_config() {
        let c = CapacityConfig {
            headroom_pct: 100.0,
            ..cfg()
        };
        assert_eq!(calculate_capacity(8, QuietState::Quiet, 100.0, &c), 0);
    }
}
