//! An independent lease checker: replays what was observed of a run (lease
//! events from `lull.lease.events.>`, the grants the clients received, the
//! ends they caused) and reports every instant at which a host's granted
//! units exceed its capacity, and every lease id granted twice.
//!
//! A lease counts as possibly running from the earliest sign of its grant
//! (the GRANTED event or the holder's reply) until the earliest sign of its
//! end (an end event or the holder's release); the checker knows nothing of
//! the coordinator's internals.

use std::collections::{BTreeMap, HashMap};

/// One observation.
#[derive(Debug, Clone, PartialEq)]
pub enum Obs {
    /// A grant: from a GRANTED event (`from_event`) or a holder's reply.
    Granted {
        /// Unix seconds.
        at: f64,
        /// Lease id.
        lease_id: String,
        /// Host.
        host_id: String,
        /// Units, when known (a holder knows what it asked for).
        units: Option<u32>,
        /// Whether this is the coordinator's GRANTED event.
        from_event: bool,
    },
    /// The lease ended (event or the holder's release).
    Ended {
        /// Unix seconds.
        at: f64,
        /// Lease id.
        lease_id: String,
    },
}

/// What the checker found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findings {
    /// `(time, host, units in use, capacity)` at every over-grant.
    pub over_grants: Vec<(f64, String, u32, u32)>,
    /// Lease ids with more than one GRANTED event.
    pub granted_twice: Vec<String>,
    /// Leases checked.
    pub leases: usize,
}

impl Findings {
    /// Whether nothing was wrong.
    pub fn clean(&self) -> bool {
        self.over_grants.is_empty() && self.granted_twice.is_empty()
    }
}

#[derive(Debug, Default)]
struct Lease {
    host: String,
    units: u32,
    start: f64,
    end: f64,
    grant_events: usize,
}

/// Replays `obs` against `capacity` per host.
pub fn check(obs: &[Obs], capacity: &HashMap<String, u32>) -> Findings {
    let mut leases: BTreeMap<String, Lease> = BTreeMap::new();
    for o in obs {
        match o {
            Obs::Granted {
                at,
                lease_id,
                host_id,
                units,
                from_event,
            } => {
                let l = leases.entry(lease_id.clone()).or_insert_with(|| Lease {
                    start: f64::INFINITY,
                    end: f64::INFINITY,
                    ..Lease::default()
                });
                l.host = host_id.clone();
                l.start = l.start.min(*at);
                if let Some(u) = units {
                    l.units = l.units.max(*u);
                }
                if *from_event {
                    l.grant_events += 1;
                }
            }
            Obs::Ended { at, lease_id } => {
                if let Some(l) = leases.get_mut(lease_id) {
                    l.end = l.end.min(*at);
                } else {
                    leases.insert(
                        lease_id.clone(),
                        Lease {
                            start: f64::INFINITY,
                            end: *at,
                            ..Lease::default()
                        },
                    );
                }
            }
        }
    }
    let mut f = Findings {
        leases: leases.len(),
        ..Findings::default()
    };
    // Sweep per host: +units at start, -units at end (ends first at a tie).
    let mut points: BTreeMap<String, Vec<(f64, i64)>> = BTreeMap::new();
    for (id, l) in &leases {
        if l.grant_events > 1 {
            f.granted_twice.push(id.clone());
        }
        if !l.start.is_finite() || l.end <= l.start {
            continue;
        }
        let p = points.entry(l.host.clone()).or_default();
        p.push((l.start, i64::from(l.units)));
        if l.end.is_finite() {
            p.push((l.end, -i64::from(l.units)));
        }
    }
    for (host, mut p) in points {
        p.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let cap = capacity.get(&host).copied().unwrap_or(u32::MAX);
        let mut used: i64 = 0;
        for (t, d) in p {
            used += d;
            if used > i64::from(cap) {
                f.over_grants.push((t, host.clone(), used as u32, cap));
            }
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(at: f64, id: &str, units: u32, ev: bool) -> Obs {
        Obs::Granted {
            at,
            lease_id: id.into(),
            host_id: "h".into(),
            units: Some(units),
            from_event: ev,
        }
    }

    fn e(at: f64, id: &str) -> Obs {
        Obs::Ended {
            at,
            lease_id: id.into(),
        }
    }

    #[test]
    fn finds_over_grants_and_double_grants_and_passes_clean_runs() {
        let cap = HashMap::from([("h".to_string(), 10)]);
        let clean = [
            g(1.0, "a", 6, true),
            g(1.1, "a", 6, false),
            e(2.0, "a"),
            g(2.0, "b", 10, true),
        ];
        assert!(check(&clean, &cap).clean());
        let over = [g(1.0, "a", 6, true), g(1.5, "b", 6, true), e(2.0, "a")];
        let f = check(&over, &cap);
        assert_eq!(f.over_grants, vec![(1.5, "h".to_string(), 12, 10)]);
        let twice = [g(1.0, "a", 1, true), g(3.0, "a", 1, true)];
        assert_eq!(check(&twice, &cap).granted_twice, vec!["a".to_string()]);
        // A lease whose end came before its first sign of grant never ran.
        let early_end = [e(1.0, "a"), g(2.0, "a", 20, false)];
        assert!(check(&early_end, &cap).over_grants.is_empty());
    }
}
