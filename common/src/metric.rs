//! Metric declarations: a metric's name, kind, unit, HELP text and (for
//! histograms) buckets are written once, as a `static` beside the code
//! that emits it. The code emits through the declaration's name
//! (`metrics::counter!(GRANTED.name, ...)`), and the binary registers the
//! HELP texts and buckets by walking each module's `METRICS` list, so no
//! name is ever written twice.
//!
//! ```
//! use lull_common::metric::Metric;
//! /// Leases granted.
//! pub static GRANTED: Metric = Metric::counter("lull_demo_granted_total", "Leases granted.");
//! /// Every metric of this module.
//! pub static METRICS: &[&Metric] = &[&GRANTED];
//! # let _ = METRICS;
//! ```

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// The kind of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (`_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution of observations.
    Histogram,
}

/// One metric's declaration.
#[derive(Debug)]
pub struct Metric {
    /// The exported name (`lull_` prefix, base units, `_total` on counters).
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// The unit, when it has one.
    pub unit: Option<Unit>,
    /// The HELP text.
    pub help: &'static str,
    /// Histogram buckets other than the exporter's defaults.
    pub buckets: Option<&'static [f64]>,
}

impl Metric {
    /// A counter.
    pub const fn counter(name: &'static str, help: &'static str) -> Self {
        Metric::new(name, Kind::Counter, help)
    }

    /// A gauge.
    pub const fn gauge(name: &'static str, help: &'static str) -> Self {
        Metric::new(name, Kind::Gauge, help)
    }

    /// A histogram.
    pub const fn histogram(name: &'static str, help: &'static str) -> Self {
        Metric::new(name, Kind::Histogram, help)
    }

    const fn new(name: &'static str, kind: Kind, help: &'static str) -> Self {
        Metric {
            name,
            kind,
            unit: None,
            help,
            buckets: None,
        }
    }

    /// The same declaration with a unit.
    pub const fn unit(mut self, unit: Unit) -> Self {
        self.unit = Some(unit);
        self
    }

    /// The same declaration with its own histogram buckets.
    pub const fn buckets(mut self, buckets: &'static [f64]) -> Self {
        self.buckets = Some(buckets);
        self
    }

    /// Registers the HELP text and unit with the installed recorder.
    pub fn describe(&self) {
        let (name, help) = (self.name, self.help);
        match (self.kind, self.unit) {
            (Kind::Counter, Some(u)) => describe_counter!(name, u, help),
            (Kind::Counter, None) => describe_counter!(name, help),
            (Kind::Gauge, Some(u)) => describe_gauge!(name, u, help),
            (Kind::Gauge, None) => describe_gauge!(name, help),
            (Kind::Histogram, Some(u)) => describe_histogram!(name, u, help),
            (Kind::Histogram, None) => describe_histogram!(name, help),
        }
    }
}

/// Describes every metric of the given module lists.
pub fn describe_all(groups: &[&[&Metric]]) {
    for m in groups.iter().flat_map(|g| g.iter()) {
        m.describe();
    }
}

/// The histograms of the given module lists that declare their own
/// buckets, for `runtime::install_metrics`.
pub fn buckets_of(groups: &[&[&'static Metric]]) -> Vec<(&'static str, &'static [f64])> {
    groups
        .iter()
        .flat_map(|g| g.iter())
        .filter_map(|m| m.buckets.map(|b| (m.name, b)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    static A: Metric = Metric::counter("lull_a_total", "A.");
    static B: Metric = Metric::histogram("lull_b_seconds", "B.")
        .unit(Unit::Seconds)
        .buckets(&[1.0, 2.0]);

    #[test]
    fn buckets_are_collected_from_declarations() {
        let groups: &[&[&Metric]] = &[&[&A, &B]];
        assert_eq!(
            buckets_of(groups),
            vec![("lull_b_seconds", &[1.0, 2.0][..])]
        );
        describe_all(groups);
    }
}
