//! Use of the deprecated subjects that stay accepted during their
//! deprecation period: the bare `lull.v1.lease.request` (no addon id in
//! the subject) and the report subjects without the publishing host
//! (`lull.report.<kind>.<key>`). Each message on one is counted in
//! `lull_deprecated_subject_messages_total{kind}`, and a warning is
//! logged at most once per [`LOG_EVERY_SEC`] per subject, so an operator
//! knows which publishers still need updating before the old subjects go.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use lull_common::metric::Metric;

/// Counter `{kind}`: messages received on a deprecated subject.
pub(crate) static DEPRECATED: Metric = Metric::counter(
    "lull_deprecated_subject_messages_total",
    "Messages received on a deprecated subject still accepted (kind=lease.request: the bare lease request subject without the addon id; report.build, report.fatigue, report.worker: report subjects without the publishing host).",
);

/// Every metric of this module.
pub(crate) static METRICS: &[&Metric] = &[&DEPRECATED];

/// Seconds between two warnings about the same subject.
pub const LOG_EVERY_SEC: u64 = 3600;

/// A deprecated subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Old {
    /// `lull.v1.lease.request` without `.<addon_id>`.
    LeaseRequest,
    /// `lull.report.build.<region>`.
    ReportBuild,
    /// `lull.report.fatigue.<region>`.
    ReportFatigue,
    /// `lull.report.worker.<worker>`.
    ReportWorker,
}

impl Old {
    const ALL: [Old; 4] = [
        Old::LeaseRequest,
        Old::ReportBuild,
        Old::ReportFatigue,
        Old::ReportWorker,
    ];

    /// The `kind` label value.
    pub fn label(self) -> &'static str {
        match self {
            Old::LeaseRequest => "lease.request",
            Old::ReportBuild => "report.build",
            Old::ReportFatigue => "report.fatigue",
            Old::ReportWorker => "report.worker",
        }
    }

    /// What to publish on instead.
    fn instead(self) -> &'static str {
        match self {
            Old::LeaseRequest => "lull.v1.lease.request.<addon_id>",
            Old::ReportBuild => "lull.report.build.<host>.<region>",
            Old::ReportFatigue => "lull.report.fatigue.<host>.<region>",
            Old::ReportWorker => "lull.report.worker.<host>.<worker>",
        }
    }

    /// The legacy report subject of `kind` (`build`, `fatigue`, `worker`).
    pub fn report(kind: &str) -> Option<Old> {
        match kind {
            "build" => Some(Old::ReportBuild),
            "fatigue" => Some(Old::ReportFatigue),
            "worker" => Some(Old::ReportWorker),
            _ => None,
        }
    }
}

/// Unix seconds of the last warning per subject (0: never).
static LAST_LOG: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// The counters, registered once (the lease path must not look labels up
/// per request).
static COUNTERS: OnceLock<[metrics::Counter; 4]> = OnceLock::new();

/// Counts one message on `old` and warns when the last warning about it is
/// older than [`LOG_EVERY_SEC`].
pub fn seen(old: Old, subject: &str) {
    let i = Old::ALL.iter().position(|o| *o == old).unwrap_or(0);
    let counters = COUNTERS
        .get_or_init(|| Old::ALL.map(|o| metrics::counter!(DEPRECATED.name, "kind" => o.label())));
    counters[i].increment(1);
    let now = lull_common::runtime::now_unix() as u64;
    let last = LAST_LOG[i].load(Ordering::Relaxed);
    if now.saturating_sub(last) >= LOG_EVERY_SEC
        && LAST_LOG[i]
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            subject,
            instead = old.instead(),
            "a publisher uses a deprecated subject; it will stop being accepted \
             (see lull_deprecated_subject_messages_total)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_kinds_map_to_their_subjects() {
        assert_eq!(Old::report("worker"), Some(Old::ReportWorker));
        assert_eq!(Old::report("build").map(Old::label), Some("report.build"));
        assert_eq!(Old::report("stats"), None);
        let labels: Vec<&str> = Old::ALL.iter().map(|o| o.label()).collect();
        assert_eq!(labels.len(), 4);
    }
}
