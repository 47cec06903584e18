//! The coordinator's metrics, gathered: each owner declares its own beside
//! the code that emits them (`fleet::metrics`, `scheduler::metrics`, ...);
//! this module lists those declarations so the binary can register their
//! HELP texts and histogram buckets, and sets `lull_coordinator_build_info`.

use lull_common::metric::{self, Metric};

/// Gauge `{version}`: always 1 (named `<binary>_build_info` like the
/// agent's `lull_agent_build_info`).
pub(crate) static BUILD_INFO: Metric = Metric::gauge(
    "lull_coordinator_build_info",
    "Always 1; the version label carries the coordinator version.",
);

static OWN: &[&Metric] = &[&BUILD_INFO];

/// Every metric the coordinator exports, one list per module that emits
/// them.
pub static ALL: &[&[&Metric]] = &[
    OWN,
    crate::fleet::metrics::METRICS,
    crate::scheduler::metrics::METRICS,
    crate::builds::metrics::METRICS,
    crate::executions::metrics::METRICS,
    crate::ingest::metrics::METRICS,
    crate::store::metrics::METRICS,
    crate::service::METRICS,
    crate::leader::metrics::METRICS,
    crate::supervise::METRICS,
    crate::label_cap::METRICS,
    crate::deprecated::METRICS,
];

/// Histograms with buckets of their own, for
/// `lull_common::runtime::install_metrics`.
pub fn buckets() -> Vec<(&'static str, &'static [f64])> {
    metric::buckets_of(ALL)
}

/// Registers every HELP text and unit with the installed recorder and sets
/// `lull_coordinator_build_info`.
pub fn describe() {
    metric::describe_all(ALL);
    metrics::gauge!(BUILD_INFO.name, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_name_is_declared_once_and_follows_the_conventions() {
        let mut seen = HashSet::new();
        for m in ALL.iter().flat_map(|g| g.iter()) {
            assert!(seen.insert(m.name), "{} declared twice", m.name);
            assert!(m.name.starts_with("lull_"), "{}", m.name);
            assert!(!m.help.is_empty(), "{}", m.name);
            let counter = m.kind == metric::Kind::Counter;
            assert_eq!(counter, m.name.ends_with("_total"), "{}", m.name);
        }
    }

    #[test]
    fn own_buckets_are_installed_for_the_long_and_the_trimmed_histograms() {
        let names: Vec<&str> = buckets().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            vec![
                "lull_region_build_duration_seconds",
                "lull_region_queue_wait_seconds",
                "lull_worker_duration_seconds",
                "lull_stats_ingest_lag_seconds",
                "lull_request_duration_seconds",
            ]
        );
    }
}
