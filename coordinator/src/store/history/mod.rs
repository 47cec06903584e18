//! History in Postgres: quiet samples (compact chunk rows), raw snapshots per
//! metric group, quiet streaks, and per-step rollups packed one row per host
//! per chunk; daily (configurable) time partitions created ahead and
//! dropped past retention; the writer task that takes batches from the
//! fleet actor; the maintenance task (partitions, rollups, retention); and
//! the reads behind `stats.history`, `quiet.streaks` and `quiet.forecast`.
//!
//! The fleet actor never awaits the database: it hands [`write::HistoryBatch`]es
//! to the writer through a bounded channel. See `docs/quiet.md` ("History
//! storage").

mod accounting;
pub mod backlog;
pub mod maintain;
pub mod partitions;
pub mod read;
pub mod rollup;
pub mod write;
pub mod writer;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};

use lull_engine::quiet::config::QuietConfig;
use partitions::Partitioned;

/// Raw quiet samples (one row per host per flush).
pub const QUIET_SAMPLES: &str = "quiet_samples";
/// Raw snapshots per metric group.
pub const STATS_SAMPLES: &str = "stats_samples";
/// Quiet rollups (one row per host per chunk).
pub const QUIET_ROLLUPS: &str = "quiet_rollups";
/// Group rollups (one row per host and group per chunk).
pub const STATS_ROLLUPS: &str = "stats_rollups";
/// Quiet streaks.
pub const QUIET_STREAKS: &str = "quiet_streaks";

/// Tunables of history storage (`[history]` in the coordinator config,
/// env `LULL_HISTORY__<FIELD>`). How long raw samples are kept and the
/// rollup step are `quiet.history.raw_retention_sec` and
/// `quiet.history.rollup_step_sec`, shared with the query planner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoryStoreConfig {
    /// Store one quiet sample per host per this many seconds (aligned
    /// slots). Default 10.
    pub quiet_every_sec: f64,
    /// Store one raw snapshot per host and metric group per this many
    /// seconds. Default 60.
    pub groups_every_sec: f64,
    /// How often the fleet actor hands pending rows to the writer, seconds.
    /// Default 30.
    pub flush_sec: f64,
    /// A stored quiet chunk never spans more than this, seconds (bounds the
    /// look-back of reads). Default 600.
    pub quiet_chunk_max_sec: f64,
    /// Most rows (quiet samples, group snapshots, streaks) waiting in the
    /// fleet actor; beyond it new ones are dropped and counted. Default
    /// 500000.
    pub max_pending_rows: usize,
    /// Batches queued for the writer. Default 8.
    pub writer_queue: usize,
    /// Most rows in one INSERT. Default 5000.
    pub max_batch_rows: usize,
    /// Width of a raw-table partition, seconds. Default 86400 (a day).
    pub raw_partition_sec: u64,
    /// Width of a rollup-table partition, seconds. Default 604800 (a week).
    pub rollup_partition_sec: u64,
    /// Partitions are created this far ahead, seconds. Default 172800.
    pub partition_ahead_sec: u64,
    /// How long rollups are kept, seconds. Default 7776000 (90 days).
    pub rollup_retention_sec: f64,
    /// One rollup row covers this many seconds of one host (a multiple of
    /// `quiet.history.rollup_step_sec` that divides an hour). Default 3600.
    pub rollup_chunk_sec: f64,
    /// A chunk is rolled up this long after it ends, so late rows are in.
    /// Default 120.
    pub rollup_delay_sec: f64,
    /// Most chunks rolled up per maintenance run (catch-up speed). Default 24.
    pub rollup_max_chunks: usize,
    /// How long quiet streaks are kept, seconds. Default 7776000 (90 days).
    pub streak_retention_sec: f64,
    /// Rows per DELETE of the batched deletes (streaks). Default 5000.
    pub delete_batch_rows: i64,
    /// Period of the maintenance task (partitions, rollups, retention),
    /// seconds. Default 60.
    pub maintenance_sec: f64,
    /// How often every host's forecast (`next_quiet_at` of the lease
    /// book's host views) is recomputed from the rollups, seconds.
    /// Default 600.
    pub forecast_refresh_sec: f64,
    /// Most raw rows read by one history query. Default 200000.
    pub max_read_rows: i64,
    /// Most streaks returned by one `quiet.streaks` reply. Default 10000.
    pub max_streaks: i64,
    /// Lock timeout of partition DDL, milliseconds; a DDL step that cannot
    /// get its lock in time is retried at the next run. Default 2000.
    pub lock_timeout_ms: u64,
    /// History whose write failed (Postgres down) is kept and retried, in
    /// order, for at most this long, seconds; older rows are given up and
    /// counted. Default 3600.
    pub retry_max_age_sec: f64,
    /// Most memory the retry backlog holds, bytes (estimate); beyond it the
    /// oldest rows are given up and counted. Default 268435456 (256 MiB).
    pub retry_max_bytes: usize,
    /// How often a waiting backlog is retried when no new batch comes,
    /// seconds. Default 2.
    pub retry_every_sec: f64,
}

impl Default for HistoryStoreConfig {
    fn default() -> Self {
        HistoryStoreConfig {
            quiet_every_sec: 10.0,
            groups_every_sec: 60.0,
            flush_sec: 30.0,
            quiet_chunk_max_sec: 600.0,
            max_pending_rows: 500_000,
            writer_queue: 8,
            max_batch_rows: 5000,
            raw_partition_sec: 86_400,
            rollup_partition_sec: 604_800,
            partition_ahead_sec: 172_800,
            rollup_retention_sec: 90.0 * 86_400.0,
            rollup_chunk_sec: 3600.0,
            rollup_delay_sec: 120.0,
            rollup_max_chunks: 24,
            streak_retention_sec: 90.0 * 86_400.0,
            delete_batch_rows: 5000,
            maintenance_sec: 60.0,
            forecast_refresh_sec: 600.0,
            max_read_rows: 200_000,
            max_streaks: 10_000,
            lock_timeout_ms: 2000,
            retry_max_age_sec: 3600.0,
            retry_max_bytes: 256 << 20,
            retry_every_sec: 2.0,
        }
    }
}

/// A history setting that makes no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("history.{field} {rule}")]
pub struct HistoryConfigError {
    /// Field name.
    pub field: &'static str,
    /// The broken rule.
    pub rule: String,
}

impl HistoryStoreConfig {
    /// Checks the settings against each other and the quiet configuration.
    pub fn validate(&self, quiet: &QuietConfig) -> Result<(), HistoryConfigError> {
        let positive = [
            ("quiet_every_sec", self.quiet_every_sec),
            ("groups_every_sec", self.groups_every_sec),
            ("flush_sec", self.flush_sec),
            ("quiet_chunk_max_sec", self.quiet_chunk_max_sec),
            ("rollup_retention_sec", self.rollup_retention_sec),
            ("rollup_chunk_sec", self.rollup_chunk_sec),
            ("streak_retention_sec", self.streak_retention_sec),
            ("maintenance_sec", self.maintenance_sec),
            ("forecast_refresh_sec", self.forecast_refresh_sec),
            ("raw_partition_sec", self.raw_partition_sec as f64),
            ("rollup_partition_sec", self.rollup_partition_sec as f64),
            ("max_batch_rows", self.max_batch_rows as f64),
            ("delete_batch_rows", self.delete_batch_rows as f64),
            ("max_read_rows", self.max_read_rows as f64),
            ("max_streaks", self.max_streaks as f64),
            ("retry_max_age_sec", self.retry_max_age_sec),
            ("retry_every_sec", self.retry_every_sec),
        ];
        for (field, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(HistoryConfigError {
                    field,
                    rule: format!("must be a number > 0, got {v}"),
                });
            }
        }
        if !(self.rollup_delay_sec.is_finite() && self.rollup_delay_sec >= 0.0) {
            return Err(HistoryConfigError {
                field: "rollup_delay_sec",
                rule: "must be >= 0".into(),
            });
        }
        let step = quiet.history.rollup_step_sec;
        let ratio = self.rollup_chunk_sec / step;
        if !(ratio >= 1.0 && (ratio - ratio.round()).abs() < 1e-9) {
            return Err(HistoryConfigError {
                field: "rollup_chunk_sec",
                rule: format!("must be a multiple of quiet.history.rollup_step_sec ({step})"),
            });
        }
        let per_hour = 3600.0 / self.rollup_chunk_sec;
        if !(per_hour >= 1.0 && (per_hour - per_hour.round()).abs() < 1e-9) {
            return Err(HistoryConfigError {
                field: "rollup_chunk_sec",
                rule: "must divide an hour (the forecast works in hours)".into(),
            });
        }
        Ok(())
    }

    /// The partitioned tables with their widths and retention.
    pub fn partitioned(&self, quiet: &QuietConfig) -> [Partitioned; 4] {
        let raw = quiet.history.raw_retention_sec;
        let rw = self.raw_partition_sec.max(1) as i64;
        let uw = self.rollup_partition_sec.max(1) as i64;
        [
            Partitioned {
                table: QUIET_SAMPLES,
                width_sec: rw,
                retention_sec: raw,
            },
            Partitioned {
                table: STATS_SAMPLES,
                width_sec: rw,
                retention_sec: raw,
            },
            Partitioned {
                table: QUIET_ROLLUPS,
                width_sec: uw,
                retention_sec: self.rollup_retention_sec,
            },
            Partitioned {
                table: STATS_ROLLUPS,
                width_sec: uw,
                retention_sec: self.rollup_retention_sec,
            },
        ]
    }
}

/// How the history writes are doing, for the health rollup: the age of the
/// oldest batch handed to the writer and not yet written, and the latest
/// error if writes fail since the last success.
#[derive(Debug, Default)]
pub struct DbHealth {
    inner: Mutex<DbHealthInner>,
}

#[derive(Debug, Default)]
struct DbHealthInner {
    queued: VecDeque<f64>,
    /// Creation time of the oldest batch part in the writer's retry backlog.
    held_since: Option<f64>,
    last_ok: Option<f64>,
    last_error: Option<(f64, String)>,
}

impl DbHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, DbHealthInner> {
        // A poisoned lock only means a panic elsewhere; the data is plain.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A batch created at `at` was handed to the writer.
    pub fn queued(&self, at: f64) {
        self.lock().queued.push_back(at);
    }

    /// The writer finished the oldest batch (written or given up).
    pub fn done(&self) {
        self.lock().queued.pop_front();
    }

    /// The writer's retry backlog holds rows since `since` (`None`: empty).
    pub fn holding(&self, since: Option<f64>) {
        self.lock().held_since = since;
    }

    /// A write succeeded at `now`.
    pub fn ok(&self, now: f64) {
        let mut g = self.lock();
        g.last_ok = Some(now);
        g.last_error = None;
    }

    /// A write failed at `now`.
    pub fn error(&self, now: f64, e: &str) {
        self.lock().last_error = Some((now, e.chars().take(300).collect()));
    }

    /// Seconds the oldest unwritten batch has been waiting (queued or in
    /// the retry backlog), if any.
    pub fn lag(&self, now: f64) -> Option<f64> {
        let g = self.lock();
        let oldest = match (g.queued.front().copied(), g.held_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        oldest.map(|t| (now - t).max(0.0))
    }

    /// The error of the last failed write, when no write succeeded since.
    pub fn last_error(&self) -> Option<String> {
        self.lock().last_error.as_ref().map(|(_, e)| e.clone())
    }
}

/// State shared between the writer, the maintenance task and the readers.
#[derive(Debug, Default)]
pub struct Shared {
    /// Write health.
    pub db: DbHealth,
    /// End of the last rolled-up chunk (f64 bits); reads take rollups
    /// before it and raw samples after it.
    watermark: AtomicU64,
    /// Partitions exist up to here (f64 bits).
    ready_until: AtomicU64,
    /// Writes are switched off (this coordinator stands by: the leader
    /// writes the history).
    paused: AtomicBool,
    /// The epoch of this process's latest leadership (0: never led).
    led_epoch: AtomicU64,
    /// This instance's id in the election (`lull_leader.holder`).
    instance: std::sync::OnceLock<String>,
}

impl Shared {
    /// Whether batches are written (true unless paused).
    pub fn writing(&self) -> bool {
        !self.paused.load(Ordering::Relaxed)
    }

    /// Switches writes on (leading) or off (standing by).
    pub fn set_writing(&self, on: bool) {
        self.paused.store(!on, Ordering::Relaxed);
    }

    /// Switches writes on for the leadership of `epoch`.
    pub fn lead(&self, epoch: u64) {
        self.led_epoch.store(epoch, Ordering::Relaxed);
        self.set_writing(true);
    }

    /// Names this instance as the election knows it (once).
    pub fn set_instance(&self, id: &str) {
        let _ = self.instance.set(id.to_string());
    }

    /// This instance's id in the election (empty until set).
    pub fn instance(&self) -> &str {
        self.instance.get().map_or("", String::as_str)
    }

    /// The epoch of this process's latest leadership (0: never led).
    pub fn led_epoch(&self) -> u64 {
        self.led_epoch.load(Ordering::Relaxed)
    }

    /// The rollup watermark (0 before the first maintenance run).
    pub fn watermark(&self) -> f64 {
        f64::from_bits(self.watermark.load(Ordering::Relaxed))
    }

    /// Sets the rollup watermark.
    pub fn set_watermark(&self, t: f64) {
        self.watermark.store(t.to_bits(), Ordering::Relaxed);
    }

    /// Partitions exist up to this time.
    pub fn ready_until(&self) -> f64 {
        f64::from_bits(self.ready_until.load(Ordering::Relaxed))
    }

    /// Records that partitions exist up to `t`.
    pub fn set_ready_until(&self, t: f64) {
        self.ready_until.store(t.to_bits(), Ordering::Relaxed);
    }
}

/// Cheap, cloneable handle on the history store.
#[derive(Debug, Clone)]
pub struct HistoryStore {
    /// The pool.
    pub pool: Pool,
    /// Storage tunables.
    pub cfg: Arc<HistoryStoreConfig>,
    /// Quiet engine configuration (history limits, streaks, forecast, health).
    pub quiet: Arc<QuietConfig>,
    /// Shared state.
    pub shared: Arc<Shared>,
}

impl HistoryStore {
    /// A store over `pool`.
    pub fn new(pool: Pool, cfg: HistoryStoreConfig, quiet: Arc<QuietConfig>) -> Self {
        HistoryStore {
            pool,
            cfg: Arc::new(cfg),
            quiet,
            shared: Arc::new(Shared::default()),
        }
    }
}

/// Wire code of a quiet state in `quiet_samples.states`.
pub fn state_code(s: lull_proto::msg::hosts::QuietState) -> i16 {
    use lull_proto::msg::hosts::QuietState::*;
    match s {
        Quiet => 0,
        Normal => 1,
        Busy => 2,
        Panic => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        let q = QuietConfig::default();
        let c = HistoryStoreConfig::default();
        assert!(c.validate(&q).is_ok());
        let bad = HistoryStoreConfig {
            rollup_chunk_sec: 90.0,
            ..c.clone()
        };
        assert_eq!(bad.validate(&q).unwrap_err().field, "rollup_chunk_sec");
        let bad = HistoryStoreConfig {
            rollup_chunk_sec: 7200.0,
            ..c.clone()
        };
        assert_eq!(bad.validate(&q).unwrap_err().field, "rollup_chunk_sec");
        let bad = HistoryStoreConfig {
            flush_sec: 0.0,
            ..c.clone()
        };
        assert_eq!(bad.validate(&q).unwrap_err().field, "flush_sec");
        let p = c.partitioned(&q);
        assert_eq!(p[0].retention_sec, 7.0 * 86_400.0);
        assert_eq!(p[2].width_sec, 604_800);
    }

    #[test]
    fn db_health_tracks_lag_and_errors() {
        let h = DbHealth::default();
        assert_eq!(h.lag(10.0), None);
        h.queued(5.0);
        h.queued(8.0);
        assert_eq!(h.lag(10.0), Some(5.0));
        h.done();
        assert_eq!(h.lag(10.0), Some(2.0));
        h.error(9.0, "boom");
        assert_eq!(h.last_error().as_deref(), Some("boom"));
        h.ok(10.0);
        assert_eq!(h.last_error(), None);
        h.done();
        assert_eq!(h.lag(10.0), None);
        h.holding(Some(4.0));
        assert_eq!(h.lag(10.0), Some(6.0));
        h.holding(None);
        assert_eq!(h.lag(10.0), None);
    }
}
