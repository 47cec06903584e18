//! The fleet's metrics: per-host quiet gauges, fleet-wide counts, blocks,
//! what the agents report about their own loops, snapshot order, and the
//! history rows waiting in the actor for the writer.

use lull_common::metric::Metric;
use metrics::Unit;

/// Counter: snapshots missing by the agents' sequence numbers.
pub(crate) static STATS_SEQ_GAPS: Metric = Metric::counter(
    "lull_stats_seq_gaps_total",
    "Snapshots missing according to the agents' sequence numbers.",
);
/// Counter: snapshots that arrived after a newer one.
pub(crate) static STATS_OUT_OF_ORDER: Metric = Metric::counter(
    "lull_stats_out_of_order_total",
    "Snapshots that arrived after a newer one of the same host and were ignored.",
);
/// Gauge `{host}`: the agent's outbox length as it reports it.
pub(crate) static AGENT_REPORTED_QUEUE_LENGTH: Metric = Metric::gauge(
    "lull_fleet_agent_reported_queue_length",
    "Messages waiting in each agent's outbox, as its latest loop.health says.",
);
/// Counter `{host}`: messages the agent dropped, as it reports them.
pub(crate) static AGENT_REPORTED_DROPPED: Metric = Metric::counter(
    "lull_fleet_agent_reported_dropped_total",
    "Messages each agent dropped from its full outbox, as its latest loop.health says.",
);
/// Gauge `{host}`: arrival time of the agent's latest `loop.health`.
pub(crate) static AGENT_LAST_HEALTH: Metric = Metric::gauge(
    "lull_fleet_agent_last_health_timestamp_seconds",
    "Unix time when each agent's latest loop.health arrived.",
)
.unit(Unit::Seconds);
/// Counter `{host}`: `loop.failure` messages of the host's agent.
pub(crate) static AGENT_LOOP_FAILURES: Metric = Metric::counter(
    "lull_fleet_agent_loop_failures_total",
    "loop.failure messages reported by each host's agent.",
);
/// Gauge `{host}`: latest quiet score.
pub(crate) static HOST_QUIET_SCORE: Metric = Metric::gauge(
    "lull_host_quiet_score",
    "Latest quiet score of each host (0 busy .. 100 idle).",
);
/// Gauge `{host,state}`: 1 for the host's current quiet state.
pub(crate) static HOST_STATE: Metric = Metric::gauge(
    "lull_host_state",
    "Quiet state of each host: 1 for the current state, 0 for the others.",
);
/// Gauge `{host}`: 1 when the host is stale.
pub(crate) static HOST_STALE: Metric = Metric::gauge(
    "lull_host_stale",
    "1 when a host has sent no snapshot for 3 intervals.",
);
/// Gauge `{state}`: known hosts per quiet state.
pub(crate) static HOSTS: Metric =
    Metric::gauge("lull_hosts", "Number of known hosts in each quiet state.");
/// Gauge: stale hosts.
pub(crate) static HOSTS_STALE: Metric = Metric::gauge("lull_hosts_stale", "Number of stale hosts.");
/// Gauge `{host}`: 1 while a block keeps heavy work off the host.
pub(crate) static HOST_BLOCKED: Metric = Metric::gauge(
    "lull_host_blocked",
    "1 when an operator block (the host's own or the fleet's) keeps heavy work off a host.",
);
/// Gauge: blocked hosts.
pub(crate) static HOSTS_BLOCKED: Metric = Metric::gauge(
    "lull_hosts_blocked",
    "Number of known hosts under an operator block.",
);
/// Gauge `{scope}`: blocks in force.
pub(crate) static BLOCKS: Metric = Metric::gauge(
    "lull_blocks",
    "Operator blocks in force, by scope (host; fleet is 0 or 1).",
);
/// Gauge `{scope}`: maintenance windows scheduled.
pub(crate) static MAINTENANCE_WINDOWS: Metric = Metric::gauge(
    "lull_maintenance_windows",
    "Maintenance windows scheduled (open now or not), by scope (host, fleet).",
);
/// Gauge: history rows waiting in the actor.
pub(crate) static HISTORY_PENDING_ROWS: Metric = Metric::gauge(
    "lull_history_pending_rows",
    "Quiet samples, group snapshots and streaks waiting in the fleet actor for the history writer.",
);
/// Counter `{kind}`: history rows dropped because too many were pending.
pub(crate) static HISTORY_DROPPED: Metric = Metric::counter(
    "lull_history_dropped_total",
    "History rows dropped because too many were pending, by kind (quiet, snapshot, streak).",
);
/// Counter: history flushes postponed on a full writer queue.
pub(crate) static HISTORY_WRITER_BUSY: Metric = Metric::counter(
    "lull_history_writer_busy_total",
    "History flushes postponed because the writer's queue was full.",
);
/// Gauge: age of the oldest unwritten history batch.
pub(crate) static DB_WRITE_LAG: Metric = Metric::gauge(
    "lull_db_write_lag_seconds",
    "Age of the oldest history batch handed to the writer and not yet written (0 when none).",
)
.unit(Unit::Seconds);

/// Gauge: hosts known (kept in memory).
pub(crate) static HOSTS_KNOWN: Metric = Metric::gauge(
    "lull_hosts_known",
    "Hosts kept in memory by the fleet (at most hosts.max_hosts).",
);
/// Counter: snapshots of new hosts refused at the cap.
pub(crate) static HOSTS_REJECTED: Metric = Metric::counter(
    "lull_hosts_rejected_total",
    "Snapshots of new hosts refused because hosts.max_hosts hosts are known.",
);
/// Counter: hosts forgotten after being silent.
pub(crate) static HOSTS_EVICTED: Metric = Metric::counter(
    "lull_hosts_evicted_total",
    "Hosts forgotten (evicted from memory) after hosts.evict_after_sec without a snapshot.",
);

/// Every metric of the fleet.
pub(crate) static METRICS: &[&Metric] = &[
    &STATS_SEQ_GAPS,
    &STATS_OUT_OF_ORDER,
    &AGENT_REPORTED_QUEUE_LENGTH,
    &AGENT_REPORTED_DROPPED,
    &AGENT_LAST_HEALTH,
    &AGENT_LOOP_FAILURES,
    &HOST_QUIET_SCORE,
    &HOST_STATE,
    &HOST_STALE,
    &HOSTS,
    &HOSTS_STALE,
    &HOST_BLOCKED,
    &HOSTS_BLOCKED,
    &BLOCKS,
    &MAINTENANCE_WINDOWS,
    &HISTORY_PENDING_ROWS,
    &HISTORY_DROPPED,
    &HISTORY_WRITER_BUSY,
    &DB_WRITE_LAG,
    &HOSTS_KNOWN,
    &HOSTS_REJECTED,
    &HOSTS_EVICTED,
];
