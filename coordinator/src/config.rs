//! The coordinator's configuration: the shared NATS/metrics/log settings plus
//! the database and every tunable of ingest and persistence, each with a
//! documented default. Loaded by `lull_common::config::load` (flags, then
//! the TOML file, then `LULL_*` environment variables).

use std::net::SocketAddr;

use lull_common::config::{CommonArgs, CommonConfig, Secret};
use serde::{Deserialize, Serialize};

/// A duration setting in seconds, at least a millisecond.
pub fn secs(s: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64(s.max(0.001))
}

/// Everything the coordinator can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CoordinatorConfig {
    /// NATS, subjects, metrics listener (default `0.0.0.0:9464`), logs.
    #[serde(flatten)]
    pub common: CommonConfig,
    /// Postgres URL. Env `LULL_DATABASE_URL`. Default
    /// `postgres://postgres@127.0.0.1:5432/lull`.
    pub database_url: Secret,
    /// Largest number of pooled database connections. Default 8.
    pub db_pool_size: usize,
    /// Threads of the async runtime; 0 means one per CPU core. The lease
    /// path runs on one task, so on a small host shared with NATS and
    /// Postgres, 1 wastes less CPU on cross-thread wake-ups (see
    /// docs/benchmarks.md). Env `LULL_WORKER_THREADS`. Default 0.
    pub worker_threads: usize,
    /// Ingest and persistence tunables.
    pub ingest: IngestConfig,
    /// Quiet engine thresholds (see docs/quiet.md).
    pub quiet: lull_engine::quiet::config::QuietConfig,
    /// History storage: cadences, batching, partitions, rollups, retention
    /// (`[history]`, see docs/quiet.md "History storage").
    pub history: crate::store::history::HistoryStoreConfig,
    /// Lease scheduler policy (see docs/leases.md).
    pub lease: lull_engine::lease::LeaseConfig,
    /// Shell tunables of the lease scheduler.
    pub scheduler: SchedulerTunables,
    /// Worker report scoring, learning, anomalies and missed runs
    /// (`[workers]`, see docs/workers.md).
    pub workers: lull_engine::worker::WorkerConfig,
    /// Region fatigue, outlaw, selection and insight rules (`[regions]`,
    /// see docs/regions.md).
    pub regions: lull_engine::region::RegionConfig,
    /// Shell tunables of the regions actor (`[region_service]`).
    pub region_service: crate::builds::RegionsTunables,
    /// Leader election and takeover (`[ha]`, see docs/ha.md).
    pub ha: HaConfig,
    /// Bounds on the hosts kept in memory (`[hosts]`, see docs/operations.md
    /// "Large fleets").
    pub hosts: HostsConfig,
    /// Page sizes of the list endpoints (`[lists]`).
    pub lists: ListsConfig,
}

/// Bounds on the hosts the fleet keeps in memory. Forgotten hosts stay in
/// Postgres (`hosts` table, history); they come back with their next
/// snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HostsConfig {
    /// Most hosts known at once; snapshots of new hosts beyond it are
    /// rejected (`lull_stats_messages_total{result="host_limit"}`), counted
    /// in `lull_hosts_rejected_total` and logged at most once a minute.
    /// Default 200000.
    pub max_hosts: usize,
    /// A host silent for this long is forgotten (evicted from memory, its
    /// lease-book view removed), seconds; 0 keeps hosts for ever. Default
    /// 86400 (a day).
    pub evict_after_sec: f64,
    /// Hosts that get per-host series (`lull_host_quiet_score`,
    /// `lull_host_state`, `lull_host_stale`, `lull_host_blocked`, and the
    /// lease gauges); hosts beyond it are counted in the fleet-wide gauges
    /// only. The first hosts seen keep them: a forgotten host's series read
    /// stale, without score or state, until it returns. Default 5000.
    pub host_metrics_max: usize,
    /// Most maintenance windows not yet over, fleet and hosts together; a
    /// `hosts.block` that would add one more is refused. Default 10000.
    pub max_windows: usize,
}

impl Default for HostsConfig {
    fn default() -> Self {
        HostsConfig {
            max_hosts: 200_000,
            evict_after_sec: 86_400.0,
            host_metrics_max: 5000,
            max_windows: 10_000,
        }
    }
}

/// Page sizes of the list endpoints (`hosts.list`, `scheduler.status`,
/// `regions.stats`, `learning.system`, `data_quality.summary`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListsConfig {
    /// Items in a page when the request names no `limit`. Default 1000.
    pub default_limit: usize,
    /// Most items in a page, whatever `limit` says. Default 5000.
    pub max_limit: usize,
}

impl Default for ListsConfig {
    fn default() -> Self {
        ListsConfig {
            default_limit: 1000,
            max_limit: 5000,
        }
    }
}

/// Leader election and takeover. Every coordinator runs the election; one
/// leads (decides leases, consumes reports), the others stand by.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HaConfig {
    /// This instance's id; empty means `<host name>-<pid>`. Env
    /// `LULL_HA__INSTANCE`.
    pub instance: String,
    /// Leader TTL, seconds: Postgres ends a leader session that has been
    /// silent this long, which frees the leadership for a standby. Default 3.
    pub leader_ttl_sec: f64,
    /// How often the leader renews, seconds. Default 0.5.
    pub renew_sec: f64,
    /// Taken off the TTL for the leader's own deadline (clock drift,
    /// scheduling delay), seconds. Default 0.5.
    pub drift_margin_sec: f64,
    /// Wait before a lost election connection is retried, seconds. Default 1.
    pub retry_sec: f64,
    /// At a takeover, time given to the old leader's last replication
    /// records to arrive before the barrier, seconds. Default 0.2.
    pub takeover_settle_sec: f64,
    /// Postgres ends a pooled session that sits idle inside a transaction
    /// this long, seconds, so a paused former leader cannot hold its
    /// fencing lock past it. Default 10.
    pub idle_in_transaction_sec: f64,
    /// Advisory lock key of the election (change it only to run two
    /// independent Lull installations on one database). Default 0x6c756c6c01.
    pub lock_key: i64,
}

impl Default for HaConfig {
    fn default() -> Self {
        HaConfig {
            instance: String::new(),
            leader_ttl_sec: 3.0,
            renew_sec: 0.5,
            drift_margin_sec: 0.5,
            retry_sec: 1.0,
            takeover_settle_sec: 0.2,
            idle_in_transaction_sec: 10.0,
            lock_key: 0x6c_756c_6c01,
        }
    }
}

/// Tunables of the scheduler task around the lease book.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SchedulerTunables {
    /// Period of the book's timer, seconds: leases expire at most this late.
    /// Default 0.25.
    pub tick_sec: f64,
    /// Period of the lease gauges, seconds. Default 2.
    pub gauges_sec: f64,
    /// Lease events waiting to be published; beyond this they are dropped
    /// and counted (holders still learn the state from a heartbeat).
    /// Default 65536.
    pub events_queue: usize,
    /// Audit rows waiting to be written; beyond this they are dropped and
    /// counted. Default 262144.
    pub audit_queue: usize,
    /// At shutdown, how long buffered lease requests are still answered,
    /// seconds. Default 2.
    pub drain_sec: f64,
    /// Largest batch of lease audit rows. Default 5000.
    pub audit_batch: usize,
    /// Longest time an audit row waits before it is written, seconds.
    /// Default 1.
    pub audit_flush_sec: f64,
    /// How far back ended leases are loaded at start so they cannot be
    /// re-asserted, seconds. Default 3600.
    pub ended_lookback_sec: f64,
    /// Lease audit rows older than this many days are deleted; 0 keeps them
    /// forever. Default 30.
    pub audit_retention_days: f64,
    /// How often old audit rows are deleted, seconds. Default 60.
    pub audit_prune_sec: f64,
    /// At start, the token signing key is replaced when it is older than
    /// this many days; 0 never rotates. Default 30.
    pub key_rotate_days: f64,
    /// A replaced key still verifies tokens for this many days (holders of
    /// older tokens get a new one on their next heartbeat). Default 7.
    pub key_keep_days: f64,
    /// Most lease requests already waiting that are decided together: their
    /// lease changes go to the standbys in one replication record, then all
    /// are answered. Default 256.
    pub batch_max: usize,
    /// Batches of wait-queue changes waiting for the queue writer; past
    /// this the scheduler waits (queue changes are never dropped).
    /// Default 4096.
    pub queue_backlog: usize,
    /// Most wait-queue rows written in one transaction. Default 5000.
    pub queue_write_rows: usize,
    /// Wait before a failed wait-queue write is tried again, seconds.
    /// Default 0.2.
    pub queue_retry_sec: f64,
}

impl Default for SchedulerTunables {
    fn default() -> Self {
        SchedulerTunables {
            tick_sec: 0.25,
            gauges_sec: 2.0,
            events_queue: 65_536,
            audit_queue: 262_144,
            drain_sec: 2.0,
            audit_batch: 5000,
            audit_flush_sec: 1.0,
            ended_lookback_sec: 3600.0,
            audit_retention_days: 30.0,
            audit_prune_sec: 60.0,
            key_rotate_days: 30.0,
            key_keep_days: 7.0,
            batch_max: 256,
            queue_backlog: 4096,
            queue_write_rows: 5000,
            queue_retry_sec: 0.2,
        }
    }
}

/// Tunables of the stats ingest and the host table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct IngestConfig {
    /// Capacity of the channel in front of the fleet actor; when it is full
    /// snapshots are dropped and counted (stats are soft state). Default 65536.
    pub fleet_queue: usize,
    /// How often the host table (`first_seen`, `last_seen`) is flushed to
    /// Postgres, seconds. Default 5.
    pub hosts_flush_sec: f64,
    /// How often staleness and the per-state gauges are re-evaluated,
    /// seconds. Default 1.
    pub sweep_sec: f64,
    /// JetStream duplicate window of the reports stream, seconds: a resend
    /// of a report within it is dropped by the server. Default 3600.
    pub reports_duplicate_window_sec: u64,
    /// Replicas of the reports stream in a NATS cluster (at most 5). 0 means
    /// automatic: min(3, number of servers the coordinator's connection
    /// knows of), which is 1 against a single server. An existing stream
    /// with another count is updated to it. Default 0.
    pub reports_replicas: usize,
    /// Reports older than this are removed from the reports stream,
    /// consumed or not, seconds; 0 is no limit. Long enough to outlast a
    /// coordinator outage. An existing stream is updated at start.
    /// Default 604800 (7 days).
    pub reports_stream_max_age_sec: u64,
    /// Size of the reports stream above which its oldest reports are
    /// removed, consumed or not (discard policy `old`: publishers are never
    /// refused), bytes; 0 is no limit. An existing stream is updated at
    /// start. Default 1073741824 (1 GiB).
    pub reports_stream_max_bytes: u64,
    /// Conflicting duplicate reports (a stored id with other content) logged
    /// per minute, with their id; the rest are only counted
    /// (`lull_reports_total{result="conflict"}`) and summed up in the next
    /// logged line. Default 20.
    pub reports_conflict_logs_per_min: u32,
    /// Most warnings a minute about rejected stats snapshots (each names
    /// the host, the subject and the reason; the rest are counted in the
    /// next line). Default 20.
    pub stats_rejection_logs_per_min: u32,
    /// Concurrent requests handled per endpoint. Default 256.
    pub endpoint_concurrency: usize,
    /// How often changed host states are pushed from the fleet to the
    /// lease book, seconds. Default 0.2.
    pub views_flush_sec: f64,
    /// A host's view is pushed to the lease book at once when its state,
    /// staleness, block, cool-down or forecast changes, or when a signal
    /// moves by at least its delta below; smaller drifts go with the next
    /// refresh, at most this many seconds later. Default 5.
    pub views_refresh_sec: f64,
    /// Quiet score points that make a view worth pushing. Default 1.
    pub views_score_delta: f64,
    /// Percentage points of CPU, memory, IO pressure or free disk that make
    /// a view worth pushing. Default 2.
    pub views_pct_delta: f64,
    /// Load per core that makes a view worth pushing. Default 0.1.
    pub views_load_delta: f64,
    /// Relative change of network throughput that makes a view worth
    /// pushing. Default 0.2 (20 %).
    pub views_net_delta_frac: f64,
    /// Name of the durable consumer on the reports stream. Default
    /// `lull-coordinator-reports`.
    pub reports_durable: String,
    /// Most reports fetched at once (one transaction per domain). Default 256.
    pub reports_batch: usize,
    /// How long one fetch waits for reports, seconds. Default 1.
    pub reports_fetch_wait_sec: f64,
    /// How long the server waits for an ack before redelivering, seconds.
    /// Default 30.
    pub reports_ack_wait_sec: f64,
    /// Delay before a report whose commit failed is redelivered, seconds.
    /// Default 2.
    pub reports_retry_delay_sec: f64,
    /// Batches queued in front of each domain actor. Default 4.
    pub reports_queue: usize,
    /// How often every worker's late/missed state is re-evaluated, seconds.
    /// Default 15.
    pub workers_schedule_eval_sec: f64,
    /// Workers with metric series of their own (worker names come from
    /// publishers); later ones fold into `worker="other"` (run counts,
    /// durations, anomalies) or are not exported (scores, schedule state).
    /// Default 500.
    pub workers_max_metric_labels: usize,
    /// Most workers kept in memory. A report that would add a worker past
    /// it is not stored: it is terminated and counted
    /// (`lull_reports_total{result="worker_limit"}`,
    /// `lull_workers_rejected_total`), with one warning when the cap is
    /// reached. Workers already stored are all loaded at a start. Default
    /// 10000.
    pub max_workers: usize,
    /// A snapshot's `collected_at` must be within this many seconds of the
    /// coordinator's clock, either way; others are rejected as invalid.
    /// Default 300.
    pub stats_clock_skew_sec: f64,
    /// How far ahead of the coordinator's clock a report's timestamps
    /// (`timestamp`, `fatigue_time`, `started_at`, `completed_at`) may be,
    /// seconds. Default 300.
    pub reports_future_skew_sec: f64,
    /// How old a report's timestamps may be, days; 0 is no bound. Imports
    /// (`regions.import`) are not bounded. Default 400.
    pub reports_max_age_days: f64,
}

impl IngestConfig {
    /// The replica count of the reports stream when the connection knows of
    /// `known_servers` servers: `reports_replicas`, or when it is 0,
    /// min(3, `known_servers`); always within 1..=5.
    pub fn reports_replicas_for(&self, known_servers: usize) -> usize {
        match self.reports_replicas {
            0 => known_servers.clamp(1, 3),
            n => n.min(5),
        }
    }
}

impl IngestConfig {
    /// The window of a snapshot's `collected_at`.
    pub fn stats_times(&self) -> lull_proto::validate::TimeWindow {
        lull_proto::validate::TimeWindow::symmetric(self.stats_clock_skew_sec.max(0.0))
    }

    /// The window of a report's timestamps.
    pub fn report_times(&self) -> lull_proto::validate::TimeWindow {
        lull_proto::validate::TimeWindow {
            future_skew_sec: self.reports_future_skew_sec.max(0.0),
            max_age_sec: (self.reports_max_age_days > 0.0)
                .then_some(self.reports_max_age_days * 86_400.0),
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            fleet_queue: 65_536,
            hosts_flush_sec: 5.0,
            sweep_sec: 1.0,
            reports_duplicate_window_sec: 3600,
            reports_replicas: 0,
            reports_stream_max_age_sec: 7 * 86_400,
            reports_stream_max_bytes: 1 << 30,
            reports_conflict_logs_per_min: 20,
            stats_rejection_logs_per_min: 20,
            endpoint_concurrency: 256,
            views_flush_sec: 0.2,
            views_refresh_sec: 5.0,
            views_score_delta: 1.0,
            views_pct_delta: 2.0,
            views_load_delta: 0.1,
            views_net_delta_frac: 0.2,
            reports_durable: "lull-coordinator-reports".into(),
            reports_batch: 256,
            reports_fetch_wait_sec: 1.0,
            reports_ack_wait_sec: 30.0,
            reports_retry_delay_sec: 2.0,
            reports_queue: 4,
            workers_schedule_eval_sec: 15.0,
            workers_max_metric_labels: 500,
            max_workers: 10_000,
            stats_clock_skew_sec: 300.0,
            reports_future_skew_sec: 300.0,
            reports_max_age_days: 400.0,
        }
    }
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            common: CommonConfig::with_metrics_addr(SocketAddr::from(([0, 0, 0, 0], 9464))),
            database_url: Secret::new("postgres://postgres@127.0.0.1:5432/lull"),
            db_pool_size: 8,
            worker_threads: 0,
            ingest: IngestConfig::default(),
            quiet: Default::default(),
            history: Default::default(),
            lease: Default::default(),
            scheduler: Default::default(),
            workers: Default::default(),
            regions: Default::default(),
            region_service: Default::default(),
            ha: HaConfig::default(),
            hosts: HostsConfig::default(),
            lists: ListsConfig::default(),
        }
    }
}

/// Command-line flags of `lull-coordinator`.
#[derive(Debug, Clone, Default, clap::Parser, Serialize)]
#[command(name = "lull-coordinator", version, about = "Lull coordinator")]
pub struct Args {
    /// Shared flags.
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
    /// Container healthcheck: GET this path (`/readyz`, `/healthz`) on the
    /// running coordinator's metrics listener and exit 0 on 200, 1 else.
    #[arg(long, value_name = "PATH")]
    #[serde(skip)]
    pub probe: Option<String>,
}

impl CoordinatorConfig {
    /// Loads the configuration for the given flags.
    pub fn load(args: &Args) -> Result<Self, lull_common::config::ConfigError> {
        lull_common::config::load(
            &CoordinatorConfig::default(),
            args.common.config.as_ref(),
            args,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_replicas_follow_the_cluster_unless_set() {
        let auto = IngestConfig::default();
        assert_eq!(auto.reports_replicas_for(0), 1);
        assert_eq!(auto.reports_replicas_for(1), 1);
        assert_eq!(auto.reports_replicas_for(2), 2);
        assert_eq!(auto.reports_replicas_for(5), 3);
        let fixed = IngestConfig {
            reports_replicas: 5,
            ..IngestConfig::default()
        };
        assert_eq!(fixed.reports_replicas_for(1), 5);
        let too_many = IngestConfig {
            reports_replicas: 9,
            ..IngestConfig::default()
        };
        assert_eq!(too_many.reports_replicas_for(3), 5);
    }

    #[test]
    fn defaults_and_redaction() {
        let c = CoordinatorConfig::default();
        assert_eq!(c.common.metrics_addr.port(), 9464);
        let mut c = c;
        c.database_url = Secret::new("postgres://u:pw@h/db");
        let out = lull_common::config::render(&c);
        assert!(!out.contains("pw@"), "{out}");
    }
}
