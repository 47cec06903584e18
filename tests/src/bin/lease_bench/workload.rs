//! The lease requests the bench sends: a deterministic mix over many addons
//! and hosts, so that the coordinator makes real decisions — grants on
//! quiet hosts, placements, and `not_quiet` denials on a busy host. Pure.

use lull_proto::msg::lease::{Constraints, HeavyLeaseRequest, Priority};

/// The shape of the request mix.
#[derive(Debug, Clone, PartialEq)]
pub struct MixConfig {
    /// Quiet hosts named explicitly (`host_id`).
    pub quiet_hosts: Vec<String>,
    /// A busy host: requests for it are denied `not_quiet`.
    pub busy_host: String,
    /// Distinct addon ids.
    pub addons: usize,
    /// Percent of requests naming one of the quiet hosts. Default 70.
    pub targeted_pct: u32,
    /// Percent of requests without `host_id` (placement). Default 10.
    /// The rest name the busy host.
    pub placement_pct: u32,
    /// Highest `cost_units` (drawn uniformly from 1..=this). Default 4.
    pub max_cost: u32,
}

/// A small xorshift generator: deterministic per client, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (a zero seed is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The next request of the mix.
pub fn next_request(cfg: &MixConfig, rng: &mut Rng) -> HeavyLeaseRequest {
    let roll = rng.below(100) as u32;
    let host_id = if roll < cfg.targeted_pct && !cfg.quiet_hosts.is_empty() {
        let i = rng.below(cfg.quiet_hosts.len() as u64) as usize;
        Some(cfg.quiet_hosts[i].clone())
    } else if roll < cfg.targeted_pct + cfg.placement_pct {
        None
    } else {
        Some(cfg.busy_host.clone())
    };
    HeavyLeaseRequest {
        addon_id: format!("bench-addon-{:04}", rng.below(cfg.addons as u64)),
        job_type: "bench".into(),
        host_id,
        cost_units: Some(1 + rng.below(u64::from(cfg.max_cost.max(1))) as i64),
        cost_class: None,
        expected_duration_sec: Some(1.0),
        priority: Priority::Normal,
        constraints: Constraints::default(),
        wait: false,
        wait_timeout_sec: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_proto::validate::Validate;

    fn cfg() -> MixConfig {
        MixConfig {
            quiet_hosts: (0..4).map(|i| format!("q{i}")).collect(),
            busy_host: "busy".into(),
            addons: 1000,
            targeted_pct: 70,
            placement_pct: 10,
            max_cost: 4,
        }
    }

    #[test]
    fn requests_are_valid_and_follow_the_mix() {
        let c = cfg();
        let mut rng = Rng::new(7);
        let (mut quiet, mut placed, mut busy) = (0, 0, 0);
        let mut addons = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let r = next_request(&c, &mut rng);
            r.validate().unwrap();
            assert!((1..=4).contains(&r.cost_units.unwrap()));
            addons.insert(r.addon_id.clone());
            match r.host_id.as_deref() {
                None => placed += 1,
                Some("busy") => busy += 1,
                Some(_) => quiet += 1,
            }
        }
        assert!((6500..7500).contains(&quiet), "{quiet}");
        assert!((700..1300).contains(&placed), "{placed}");
        assert!((1700..2300).contains(&busy), "{busy}");
        assert!(addons.len() > 900, "{}", addons.len());
    }

    #[test]
    fn the_generator_is_deterministic() {
        let (mut a, mut b) = (Rng::new(3), Rng::new(3));
        let c = cfg();
        for _ in 0..100 {
            assert_eq!(next_request(&c, &mut a), next_request(&c, &mut b));
        }
        assert_ne!(Rng::new(0).next_u64(), 0);
    }
}
