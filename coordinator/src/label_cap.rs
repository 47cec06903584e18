//! Bounded label values for the metrics whose labels come from publishers
//! (region, worker and host names): the first `max` distinct values get series of
//! their own; the rest fold into `other`, counted in
//! `lull_metric_label_overflow_total{label}`, with one warning when the cap
//! is first reached. The APIs still answer for every region and worker;
//! only the metrics are bounded.

use std::collections::HashSet;

use lull_common::metric::Metric;

/// The label value of everything beyond the cap.
pub const OTHER: &str = "other";

/// Counter `{label}`: metric updates folded into `other` or skipped.
pub(crate) static OVERFLOW: Metric = Metric::counter(
    "lull_metric_label_overflow_total",
    "Metric updates whose region, worker or host label was beyond its configured cap, so they were folded into label value \"other\" (histograms, increments) or skipped (gauges, totals), by label.",
);

/// Every metric of this module.
pub(crate) static METRICS: &[&Metric] = &[&OVERFLOW];

/// The admitted values of one label.
#[derive(Debug)]
pub struct LabelCap {
    label: &'static str,
    max: usize,
    admitted: HashSet<String>,
    warned: bool,
}

impl LabelCap {
    /// A cap of `max` distinct values for `label` (0 admits none).
    pub fn new(label: &'static str, max: usize) -> Self {
        LabelCap {
            label,
            max,
            admitted: HashSet::new(),
            warned: false,
        }
    }

    /// Whether `value` has series of its own: it has already, or there is
    /// room. A refused value is counted as an overflow.
    pub fn admit(&mut self, value: &str) -> bool {
        if self.admitted.contains(value) {
            return true;
        }
        if value != OTHER && self.admitted.len() < self.max {
            self.admitted.insert(value.to_string());
            return true;
        }
        metrics::counter!(OVERFLOW.name, "label" => self.label).increment(1);
        if !self.warned {
            self.warned = true;
            tracing::warn!(
                label = self.label,
                max = self.max,
                value,
                "metric label cap reached: further values are reported as \"other\""
            );
        }
        false
    }

    /// `value` when admitted, else [`OTHER`].
    pub fn label(&mut self, value: &str) -> String {
        if self.admit(value) {
            value.to_string()
        } else {
            OTHER.to_string()
        }
    }

    /// Values admitted so far.
    pub fn len(&self) -> usize {
        self.admitted.len()
    }

    /// Whether no value was admitted yet.
    pub fn is_empty(&self) -> bool {
        self.admitted.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_values_are_admitted_then_other() {
        let mut cap = LabelCap::new("region", 2);
        assert_eq!(cap.label("a"), "a");
        assert_eq!(cap.label("b"), "b");
        assert_eq!(cap.label("c"), OTHER);
        assert_eq!(cap.label("a"), "a", "admitted values stay admitted");
        assert!(!cap.admit("d"));
        assert_eq!(cap.len(), 2);
    }

    #[test]
    fn a_publisher_cannot_name_a_value_other() {
        let mut cap = LabelCap::new("worker", 5);
        assert!(!cap.admit(OTHER));
        assert!(cap.is_empty());
    }

    #[test]
    fn zero_admits_nothing() {
        let mut cap = LabelCap::new("worker", 0);
        assert_eq!(cap.label("x"), OTHER);
    }
}
