//! Export of the custom-metric threshold rules
//! ([`lull_engine::worker::threshold`]): the breach counter per worker and
//! rule, the standing-breach gauge of each worker's latest run, and the
//! latest value of every watched metric. Label sets stay bounded: `rule`
//! and `metric` come from the configured rules (at most 64), never from
//! the reports.

use std::collections::{BTreeSet, HashMap};

use lull_engine::worker::threshold::{self, ThresholdRule};
use lull_engine::worker::WorkerAggregate;
use lull_proto::msg::worker::{AnomalyKind, ScoredExecution, Severity};

use super::metrics as m;

/// The breach gauges set to 1 per worker, so that they go back to 0 when a
/// later run no longer breaches. Owned by the workers actor.
#[derive(Debug, Default)]
pub(crate) struct BreachGauges {
    set: HashMap<String, BTreeSet<(String, Severity)>>,
}

impl BreachGauges {
    /// Restores the counter and the gauges of a loaded aggregate.
    pub(crate) fn restore(&mut self, agg: &WorkerAggregate) {
        for (rule, n) in &agg.threshold_breaches {
            metrics::counter!(m::THRESHOLD_BREACHES.name,
                "worker" => agg.worker_name.clone(), "rule" => rule.clone())
            .absolute(*n);
        }
        let Some(latest) = &agg.latest else { return };
        let mut set = BTreeSet::new();
        for a in &latest.breaches {
            let rule = a.rule.clone().unwrap_or_else(|| a.metric.clone());
            let severity = a.severity.unwrap_or_default();
            metrics::gauge!(m::THRESHOLD_BREACHED.name,
                "worker" => agg.worker_name.clone(), "rule" => rule.clone(),
                "severity" => severity.as_str())
            .set(1.0);
            if let Some(v) = a.evidence.get("value") {
                metrics::gauge!(m::CUSTOM_METRIC.name,
                    "worker" => agg.worker_name.clone(), "metric" => a.metric.clone())
                .set(*v);
            }
            set.insert((rule, severity));
        }
        self.set.insert(agg.worker_name.clone(), set);
    }

    /// Counts the breaches of a stored run under `worker`, its label (its
    /// name, or `other` beyond `ingest.max_metric_workers`).
    pub(crate) fn count(e: &ScoredExecution, worker: &str) {
        for a in &e.anomalies {
            if a.kind == AnomalyKind::CustomThreshold {
                let rule = a.rule.clone().unwrap_or_else(|| a.metric.clone());
                metrics::counter!(m::THRESHOLD_BREACHES.name,
                    "worker" => worker.to_string(), "rule" => rule)
                .increment(1);
            }
        }
    }

    /// Sets the gauges from the worker's new latest run `e`: 1 for each rule
    /// it breaches, 0 for each rule whose metric it reported within the
    /// threshold and for each rule breached before that it no longer does.
    pub(crate) fn latest(&mut self, e: &ScoredExecution, rules: &[ThresholdRule]) {
        let worker = &e.report.worker_name;
        let before = self.set.remove(worker).unwrap_or_default();
        let mut now = BTreeSet::new();
        for ev in threshold::evaluate(&e.report, rules) {
            let key = (ev.rule.name().to_string(), ev.rule.severity);
            metrics::gauge!(m::THRESHOLD_BREACHED.name,
                "worker" => worker.clone(), "rule" => key.0.clone(),
                "severity" => key.1.as_str())
            .set(if ev.breached { 1.0 } else { 0.0 });
            metrics::gauge!(m::CUSTOM_METRIC.name,
                "worker" => worker.clone(), "metric" => ev.rule.metric.clone())
            .set(ev.value);
            if ev.breached {
                now.insert(key);
            }
        }
        for (rule, severity) in before.difference(&now) {
            metrics::gauge!(m::THRESHOLD_BREACHED.name,
                "worker" => worker.clone(), "rule" => rule.clone(),
                "severity" => severity.as_str())
            .set(0.0);
        }
        self.set.insert(worker.clone(), now);
    }
}
