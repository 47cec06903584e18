//! The leadership metrics: who leads, in which epoch, and why it changed.

use lull_common::metric::Metric;

/// 1 while this instance leads.
pub(crate) static LEADER: Metric = Metric::gauge(
    "lull_coordinator_leader",
    "1 while this coordinator is the leader (decides leases and writes reports), 0 on a standby.",
);
/// The fencing epoch of this instance's leadership.
pub(crate) static EPOCH: Metric = Metric::gauge(
    "lull_coordinator_epoch",
    "The epoch (fencing term) this coordinator leads in; 0 on a standby.",
);
/// Leadership changes of this instance.
pub(crate) static CHANGES: Metric = Metric::counter(
    "lull_coordinator_leader_changes_total",
    "Leadership changes of this coordinator, by reason (elected, resigned, renew_failed, deadline_passed, fenced).",
);

/// Every leadership metric.
pub(crate) static METRICS: &[&Metric] = &[&LEADER, &EPOCH, &CHANGES];

/// Sets the role gauges.
pub(crate) fn set_role(leader: bool, epoch: u64) {
    metrics::gauge!(LEADER.name).set(if leader { 1.0 } else { 0.0 });
    metrics::gauge!(EPOCH.name).set(epoch as f64);
}

/// Counts one change.
pub(crate) fn changed(reason: &'static str) {
    metrics::counter!(CHANGES.name, "reason" => reason).increment(1);
}
