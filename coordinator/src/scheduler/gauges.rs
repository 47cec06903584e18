//! The lease gauges as the scheduler keeps them: fleet totals (active
//! leases, used and total capacity units) and, for at most
//! `hosts.host_metrics_max` hosts, the same per host. A host's gauge
//! handles are registered once and then only set, so a refresh over a
//! large fleet costs a pass over the book, not a label lookup per host
//! and gauge; hosts beyond the cap count in the totals only.

use std::collections::{HashMap, HashSet};

use lull_engine::lease::Book;

use super::metrics as m;
use crate::label_cap::LabelCap;

/// One host's gauges.
#[derive(Debug)]
struct HostGauges {
    active: metrics::Gauge,
    used: metrics::Gauge,
    capacity: metrics::Gauge,
}

impl HostGauges {
    fn new(host: &str) -> Self {
        HostGauges {
            active: metrics::gauge!(m::HOST_ACTIVE.name, "host" => host.to_string()),
            used: metrics::gauge!(m::USED_UNITS.name, "host" => host.to_string()),
            capacity: metrics::gauge!(m::CAPACITY_UNITS.name, "host" => host.to_string()),
        }
    }
}

/// The lease gauges and the hosts that have series of their own.
#[derive(Debug)]
pub(crate) struct LeaseGauges {
    cap: LabelCap,
    hosts: HashMap<String, HostGauges>,
}

impl LeaseGauges {
    /// Per-host gauges for at most `max_hosts` hosts.
    pub(crate) fn new(max_hosts: usize) -> Self {
        LeaseGauges {
            cap: LabelCap::new("host", max_hosts),
            hosts: HashMap::new(),
        }
    }

    /// Sets every gauge from the book while leading, or zeroes them
    /// (`book` is `None`). A host that left the book keeps its series, at
    /// 0 leases and units (its handles stay, so churn never grows them).
    pub(crate) fn update(&mut self, book: Option<&Book>, now: f64) {
        let Some(book) = book else {
            for g in self.hosts.values() {
                g.active.set(0.0);
                g.used.set(0.0);
            }
            for t in [
                &m::FLEET_ACTIVE,
                &m::FLEET_USED_UNITS,
                &m::FLEET_CAPACITY_UNITS,
            ] {
                metrics::gauge!(t.name).set(0.0);
            }
            metrics::gauge!(m::QUEUE_LENGTH.name).set(0.0);
            metrics::gauge!(m::GRACE_REMAINING.name).set(0.0);
            return;
        };
        let cfg = book.config();
        let mut active: HashMap<&str, u64> = HashMap::new();
        for l in book.active_leases() {
            *active.entry(l.host_id.as_str()).or_default() += 1;
        }
        let mut seen: HashSet<&str> = HashSet::with_capacity(self.hosts.len());
        let (mut total_used, mut total_capacity) = (0u64, 0u64);
        for (id, view) in book.hosts() {
            let used = book.used_units(id);
            let capacity = view.capacity(cfg);
            total_used += u64::from(used);
            total_capacity += u64::from(capacity);
            let g = match self.hosts.get(id.as_str()) {
                Some(g) => g,
                None if self.cap.admit(id) => self
                    .hosts
                    .entry(id.clone())
                    .or_insert_with(|| HostGauges::new(id)),
                None => continue,
            };
            g.capacity.set(f64::from(capacity));
            g.used.set(f64::from(used));
            g.active
                .set(active.get(id.as_str()).copied().unwrap_or(0) as f64);
            seen.insert(id.as_str());
        }
        for (id, g) in &self.hosts {
            if !seen.contains(id.as_str()) {
                g.active.set(0.0);
                g.used.set(0.0);
            }
        }
        let leases: u64 = active.values().sum();
        metrics::gauge!(m::FLEET_ACTIVE.name).set(leases as f64);
        metrics::gauge!(m::FLEET_USED_UNITS.name).set(total_used as f64);
        metrics::gauge!(m::FLEET_CAPACITY_UNITS.name).set(total_capacity as f64);
        metrics::gauge!(m::QUEUE_LENGTH.name).set(book.queue_len() as f64);
        let grace_left = book.grace_until().map_or(0.0, |g| (g - now).max(0.0));
        metrics::gauge!(m::GRACE_REMAINING.name).set(grace_left);
    }

    /// Hosts with series of their own.
    #[cfg(test)]
    fn admitted(&self) -> usize {
        self.hosts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_engine::lease::{HostView, LeaseConfig, LeaseKey};
    use lull_proto::msg::hosts::QuietState;

    fn book(hosts: &[&str]) -> Book {
        let key = LeaseKey::from_bytes(vec![7u8; 32]).unwrap();
        let mut b = Book::new(LeaseConfig::default(), key, "t", 100.0);
        b.skip_grace();
        let views = hosts
            .iter()
            .map(|h| HostView::new(*h, QuietState::Quiet, 90.0, 4, 100.0))
            .collect();
        b.on_hosts_changed(views, 100.0);
        b
    }

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    #[test]
    fn per_host_series_stop_at_the_cap_and_the_totals_cover_every_host() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let mut g = LeaseGauges::new(2);
        metrics::with_local_recorder(&recorder, || {
            g.update(Some(&book(&["a", "b", "c"])), 100.0);
        });
        assert_eq!(g.admitted(), 2);
        let text = handle.render();
        let per_host = text
            .lines()
            .filter(|l| l.starts_with("lull_lease_capacity_units{"))
            .count();
        assert_eq!(per_host, 2, "{text}");
        let one = value(&text, "lull_lease_capacity_units{host=\"a\"}").unwrap();
        assert!(one > 0.0);
        assert_eq!(
            value(&text, "lull_lease_fleet_capacity_units"),
            Some(3.0 * one)
        );
        assert_eq!(value(&text, "lull_lease_fleet_active"), Some(0.0));
        // A host that left keeps its series at 0 used; standing down zeroes all.
        metrics::with_local_recorder(&recorder, || {
            g.update(Some(&book(&["b"])), 100.0);
            g.update(None, 100.0);
        });
        let text = handle.render();
        assert_eq!(value(&text, "lull_lease_used_units{host=\"a\"}"), Some(0.0));
        assert_eq!(value(&text, "lull_lease_fleet_capacity_units"), Some(0.0));
        assert_eq!(g.admitted(), 2);
    }
}
