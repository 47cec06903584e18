//! The scheduler's metrics: lease decisions, lease events and effects,
//! the queue writer, and the per-host and fleet-wide lease gauges.

use lull_common::metric::Metric;

/// Counter `{result,reason}`: lease requests decided.
pub(crate) static DECISIONS: Metric = Metric::counter(
    "lull_lease_decisions_total",
    "Lease requests decided, by result (granted, denied, queued) and denial reason code.",
);
/// Counter: lease requests refused because the payload's `addon_id` is not
/// the one their subject names.
pub(crate) static IDENTITY_REJECTIONS: Metric = Metric::counter(
    "lull_lease_identity_rejections_total",
    "Lease requests on lull.v1.lease.request.<addon_id> refused (forbidden) because the payload's addon_id differs from the subject's.",
);
/// Counter `{event}`: lease events published.
pub(crate) static EVENTS: Metric = Metric::counter(
    "lull_lease_events_total",
    "Lease lifecycle events published, by event (granted, released, expired, revoked).",
);
/// Counter `{effect}`: events or audit records dropped on a full queue.
pub(crate) static EFFECTS_DROPPED: Metric = Metric::counter(
    "lull_lease_effects_dropped_total",
    "Lease events (effect=event) or audit records (effect=audit) dropped because their queue was full.",
);
/// Gauge `{host}`: active leases on a host (at most
/// `hosts.host_metrics_max` hosts; the fleet's: `lull_lease_fleet_active`).
pub(crate) static HOST_ACTIVE: Metric = Metric::gauge(
    "lull_lease_active",
    "Active leases on each host (the first hosts.host_metrics_max hosts; lull_lease_fleet_active for the fleet).",
);
/// Gauge: active leases on the whole fleet.
pub(crate) static FLEET_ACTIVE: Metric = Metric::gauge(
    "lull_lease_fleet_active",
    "Active leases on the whole fleet.",
);
/// Gauge: cost units held on the whole fleet.
pub(crate) static FLEET_USED_UNITS: Metric = Metric::gauge(
    "lull_lease_fleet_used_units",
    "Cost units held by active leases on the whole fleet.",
);
/// Gauge: capacity of the whole fleet in cost units.
pub(crate) static FLEET_CAPACITY_UNITS: Metric = Metric::gauge(
    "lull_lease_fleet_capacity_units",
    "Lease capacity of the whole fleet for an unconstrained job, in cost units.",
);
/// Gauge `{host}`: capacity of a host in cost units.
pub(crate) static CAPACITY_UNITS: Metric = Metric::gauge(
    "lull_lease_capacity_units",
    "Lease capacity of each host for an unconstrained job, in cost units.",
);
/// Gauge `{host}`: cost units held on a host.
pub(crate) static USED_UNITS: Metric = Metric::gauge(
    "lull_lease_used_units",
    "Cost units held by active leases on each host.",
);
/// Gauge: queued lease requests.
pub(crate) static QUEUE_LENGTH: Metric = Metric::gauge(
    "lull_lease_queue_length",
    "Lease requests waiting in the queue.",
);
/// Gauge: seconds left of the restart grace period (0 outside it).
pub(crate) static GRACE_REMAINING: Metric = Metric::gauge(
    "lull_lease_grace_remaining_seconds",
    "Seconds left of the restart grace period, during which new grants are refused; 0 outside it.",
)
.unit(metrics::Unit::Seconds);

/// Counter `{replica}`: takeovers of the lease book.
pub(crate) static TAKEOVERS: Metric = Metric::counter(
    "lull_lease_takeovers_total",
    "Takeovers of the lease book by this coordinator, by replica (exact: no grace period; inexact: grace period).",
);
/// Histogram: how long a takeover took, from election to serving.
pub(crate) static TAKEOVER_SECONDS: Metric = Metric::histogram(
    "lull_lease_takeover_seconds",
    "Time from winning the election to serving the lease endpoints.",
)
.unit(metrics::Unit::Seconds);
/// Counter `{result}`: replication messages seen by a standby.
pub(crate) static REPLICA_MESSAGES: Metric = Metric::counter(
    "lull_lease_replica_messages_total",
    "Lease replication messages received as a standby, by result (applied, duplicate, gap, stale_epoch, snapshot, malformed, bad_mac).",
);

/// Counter `{result}`: transactions of the queue writer.
pub(crate) static QUEUE_WRITES: Metric = Metric::counter(
    "lull_lease_queue_writes_total",
    "Transactions writing lease wait-queue changes to Postgres, by result (ok, fenced, error; an error is retried).",
);
/// Counter: queue rows inserted or deleted.
pub(crate) static QUEUE_ROWS: Metric = Metric::counter(
    "lull_lease_queue_rows_written_total",
    "Lease wait-queue rows inserted or deleted by committed queue writes.",
);
/// Histogram: how long one queue write took.
pub(crate) static QUEUE_WRITE_SECONDS: Metric = Metric::histogram(
    "lull_lease_queue_write_seconds",
    "Time of one lease wait-queue write (one transaction, possibly covering many decisions).",
)
.unit(metrics::Unit::Seconds);

/// Counts a queue write.
pub(crate) fn queue_write(result: &'static str, rows: usize, took: std::time::Duration) {
    metrics::counter!(QUEUE_WRITES.name, "result" => result).increment(1);
    metrics::counter!(QUEUE_ROWS.name).increment(rows as u64);
    metrics::histogram!(QUEUE_WRITE_SECONDS.name).record(took.as_secs_f64());
}

/// Counts a takeover.
pub(crate) fn takeover(exact: bool, took: std::time::Duration) {
    let replica = if exact { "exact" } else { "inexact" };
    metrics::counter!(TAKEOVERS.name, "replica" => replica).increment(1);
    metrics::histogram!(TAKEOVER_SECONDS.name).record(took.as_secs_f64());
}

/// Counts a replication message.
pub(crate) fn replica_message(result: &'static str) {
    metrics::counter!(REPLICA_MESSAGES.name, "result" => result).increment(1);
}

/// Every metric of the scheduler.
pub(crate) static METRICS: &[&Metric] = &[
    &TAKEOVERS,
    &TAKEOVER_SECONDS,
    &REPLICA_MESSAGES,
    &DECISIONS,
    &IDENTITY_REJECTIONS,
    &EVENTS,
    &EFFECTS_DROPPED,
    &HOST_ACTIVE,
    &FLEET_ACTIVE,
    &FLEET_USED_UNITS,
    &FLEET_CAPACITY_UNITS,
    &CAPACITY_UNITS,
    &USED_UNITS,
    &QUEUE_LENGTH,
    &GRACE_REMAINING,
    &QUEUE_WRITES,
    &QUEUE_ROWS,
    &QUEUE_WRITE_SECONDS,
];
