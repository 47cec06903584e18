//! Agent loop telemetry (seed 004): `loop.health` and `loop.failure`, with the
//! legacy alias keys of older agents accepted and normalised.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ValidationError;
use crate::validate::{self as v, Validate};

/// The state of the agent's publishing worker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TransportWorker {
    /// Whether the publisher task is alive.
    pub alive: bool,
    /// Its last error.
    #[serde(default)]
    pub error: Option<String>,
    /// How often it was restarted.
    #[serde(default, deserialize_with = "crate::int::de")]
    pub restart_count: u64,
}

/// The `transport` block: the agent outbox's real figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TransportStatus {
    /// Transport name (`nats`).
    #[serde(default)]
    pub provider: Option<String>,
    /// Messages waiting in the outbox.
    #[serde(default, deserialize_with = "crate::int::de")]
    pub queue_length: u64,
    /// Messages dropped because the outbox was full.
    #[serde(default, deserialize_with = "crate::int::de")]
    pub dropped_messages: u64,
    /// Duration of the last flush, ms.
    #[serde(default)]
    pub last_flush_duration_ms: Option<f64>,
    /// Messages published since start.
    #[serde(default, deserialize_with = "crate::int::de")]
    pub payloads_flushed_total: u64,
    /// Bytes published since start.
    #[serde(default, deserialize_with = "crate::int::de")]
    pub bytes_flushed_total: u64,
    /// Whether the NATS connection authenticates.
    #[serde(default)]
    pub auth_enabled: bool,
    /// Publisher worker state.
    #[serde(default)]
    pub worker: TransportWorker,
}

/// One collector's state in `loop.health`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CollectorHealth {
    /// Whether its last run succeeded.
    pub ok: bool,
    /// Duration of its last run, ms.
    #[serde(default)]
    pub duration_ms: f64,
    /// Its last error, if any (`Panic: ...` when the last run panicked).
    #[serde(default)]
    pub last_error: Option<String>,
    /// Runs since the agent started.
    #[serde(default, deserialize_with = "crate::int::de")]
    pub runs: u64,
    /// Failed runs since the agent started (panics included).
    #[serde(default, deserialize_with = "crate::int::de")]
    pub failures: u64,
    /// Runs that panicked since the agent started (each caught; the
    /// collector kept its cadence).
    #[serde(default, deserialize_with = "crate::int::de")]
    pub panics: u64,
}

/// `loop.health`: published every N ticks on `lull.agent.<host>.health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopHealth {
    /// Tick number.
    #[serde(deserialize_with = "crate::int::de")]
    pub tick: u64,
    /// Always `ok`.
    pub status: String,
    /// Duration of the tick, ms.
    pub duration_ms: f64,
    /// Outbox figures.
    pub transport: TransportStatus,
    /// Per-collector state.
    #[serde(default)]
    pub collectors: BTreeMap<String, CollectorHealth>,
}

/// The `summary` block of `loop.failure`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailureSummary {
    /// Duration of the failed tick, ms.
    pub duration_ms: f64,
    /// Outbox length.
    #[serde(deserialize_with = "crate::int::de")]
    pub queue_length: u64,
    /// Dropped messages.
    #[serde(deserialize_with = "crate::int::de")]
    pub dropped_messages: u64,
}

/// The legacy alias keys of `loop.failure` (seed 004 step 2), kept for
/// consumers that predate `summary`; their values equal `summary`'s.
// TODO(seed 004 step 5): drop once dashboards and CLIs read `summary`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailureAliases {
    /// `summary.duration_ms`.
    #[serde(default)]
    pub tick_duration_ms: Option<f64>,
    /// `summary.queue_length`.
    #[serde(default, deserialize_with = "crate::int::opt")]
    pub telemetry_queue: Option<u64>,
    /// `summary.dropped_messages`.
    #[serde(default, deserialize_with = "crate::int::opt")]
    pub telemetry_dropped: Option<u64>,
}

impl FailureAliases {
    /// The aliases of a summary.
    pub fn of(s: &FailureSummary) -> Self {
        FailureAliases {
            tick_duration_ms: Some(s.duration_ms),
            telemetry_queue: Some(s.queue_length),
            telemetry_dropped: Some(s.dropped_messages),
        }
    }

    /// Each key from `self`, else from `other`.
    fn or(self, other: FailureAliases) -> Self {
        FailureAliases {
            tick_duration_ms: self.tick_duration_ms.or(other.tick_duration_ms),
            telemetry_queue: self.telemetry_queue.or(other.telemetry_queue),
            telemetry_dropped: self.telemetry_dropped.or(other.telemetry_dropped),
        }
    }
}

/// `loop.failure`: published when a tick fails, on `lull.agent.<host>.failure`.
/// Decoding accepts the legacy keys `tick_duration_ms`, `telemetry_queue` and
/// `telemetry_dropped`, in the `aliases` block or at the top level (the
/// block wins when both are there), and synthesises `summary` from them
/// when it is absent; `aliases` is always filled (from `summary` when the
/// sender had none).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoopFailure {
    /// Tick number.
    #[serde(deserialize_with = "crate::int::de")]
    pub tick: u64,
    /// Always `error`.
    pub status: String,
    /// Duration of the failed tick, ms.
    pub duration_ms: f64,
    /// Consecutive failures.
    #[serde(deserialize_with = "crate::int::de")]
    pub failure_count: u64,
    /// `Kind: message`.
    pub error: String,
    /// Path of a debug snapshot written by the agent, if any.
    pub snapshot_path: Option<String>,
    /// Outbox figures.
    pub transport: TransportStatus,
    /// Context the agent had at the time.
    pub global_context: serde_json::Value,
    /// Copy of the last `loop.health`.
    pub health: Option<serde_json::Value>,
    /// Summary (synthesised from legacy keys when absent).
    pub summary: FailureSummary,
    /// The legacy alias keys (seed 004 step 2).
    pub aliases: FailureAliases,
}

#[derive(Deserialize)]
struct RawFailure {
    #[serde(deserialize_with = "crate::int::de")]
    tick: u64,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    duration_ms: Option<f64>,
    #[serde(default)]
    tick_duration_ms: Option<f64>,
    #[serde(default, deserialize_with = "crate::int::de")]
    failure_count: u64,
    error: String,
    #[serde(default)]
    snapshot_path: Option<String>,
    #[serde(default)]
    transport: Option<TransportStatus>,
    #[serde(default, deserialize_with = "crate::int::opt")]
    telemetry_queue: Option<u64>,
    #[serde(default, deserialize_with = "crate::int::opt")]
    telemetry_dropped: Option<u64>,
    #[serde(default)]
    global_context: Option<serde_json::Value>,
    #[serde(default)]
    health: Option<serde_json::Value>,
    #[serde(default)]
    summary: Option<FailureSummary>,
    #[serde(default)]
    aliases: Option<FailureAliases>,
}

impl<'de> Deserialize<'de> for LoopFailure {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawFailure::deserialize(d)?;
        let legacy = raw.aliases.unwrap_or_default().or(FailureAliases {
            tick_duration_ms: raw.tick_duration_ms,
            telemetry_queue: raw.telemetry_queue,
            telemetry_dropped: raw.telemetry_dropped,
        });
        let duration_ms = raw
            .duration_ms
            .or(legacy.tick_duration_ms)
            .ok_or_else(|| serde::de::Error::missing_field("duration_ms"))?;
        let mut transport = raw.transport.unwrap_or_default();
        if let Some(q) = legacy.telemetry_queue {
            transport.queue_length = transport.queue_length.max(q);
        }
        if let Some(dr) = legacy.telemetry_dropped {
            transport.dropped_messages = transport.dropped_messages.max(dr);
        }
        let summary = raw.summary.unwrap_or(FailureSummary {
            duration_ms,
            queue_length: legacy.telemetry_queue.unwrap_or(transport.queue_length),
            dropped_messages: legacy
                .telemetry_dropped
                .unwrap_or(transport.dropped_messages),
        });
        let aliases = legacy.or(FailureAliases::of(&summary));
        Ok(LoopFailure {
            tick: raw.tick,
            status: raw.status.unwrap_or_else(|| "error".into()),
            duration_ms,
            failure_count: raw.failure_count,
            error: raw.error,
            snapshot_path: raw.snapshot_path,
            transport,
            global_context: raw
                .global_context
                .unwrap_or(serde_json::Value::Object(Default::default())),
            health: raw.health,
            summary,
            aliases,
        })
    }
}

fn validate_transport(t: &TransportStatus) -> Result<(), ValidationError> {
    v::non_negative_opt("transport.last_flush_duration_ms", t.last_flush_duration_ms)?;
    v::text_opt("transport.provider", t.provider.as_deref(), v::MAX_ID_LEN)?;
    v::text_opt(
        "transport.worker.error",
        t.worker.error.as_deref(),
        v::MAX_TEXT_LEN,
    )
}

impl Validate for LoopHealth {
    fn validate(&self) -> Result<(), ValidationError> {
        v::non_negative("duration_ms", self.duration_ms)?;
        v::text("status", &self.status, v::MAX_ID_LEN)?;
        validate_transport(&self.transport)?;
        v::max_items("collectors", self.collectors.len(), 64)?;
        for (name, c) in &self.collectors {
            v::non_negative(&format!("collectors.{name}.duration_ms"), c.duration_ms)?;
            v::text_opt(
                &format!("collectors.{name}.last_error"),
                c.last_error.as_deref(),
                v::MAX_TEXT_LEN,
            )?;
        }
        Ok(())
    }
}

impl Validate for LoopFailure {
    fn validate(&self) -> Result<(), ValidationError> {
        v::non_negative("duration_ms", self.duration_ms)?;
        v::text("error", &self.error, v::MAX_TEXT_LEN)?;
        v::text_opt(
            "snapshot_path",
            self.snapshot_path.as_deref(),
            v::MAX_TEXT_LEN,
        )?;
        validate_transport(&self.transport)?;
        v::non_negative("summary.duration_ms", self.summary.duration_ms)?;
        v::non_negative_opt("aliases.tick_duration_ms", self.aliases.tick_duration_ms)?;
        if !self.global_context.is_object() && !self.global_context.is_null() {
            return Err(ValidationError::Invalid {
                field: "global_context".into(),
                reason: "must be an object".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::decode;

    #[test]
    fn structured_failure_round_trips() {
        let json = serde_json::json!({
            "tick": 42, "status": "error", "duration_ms": 12.5, "failure_count": 2,
            "error": "Timeout: collector host", "snapshot_path": null,
            "transport": {"provider": "nats", "queue_length": 3, "dropped_messages": 1,
                "last_flush_duration_ms": 0.4, "payloads_flushed_total": 10,
                "bytes_flushed_total": 2000, "auth_enabled": true,
                "worker": {"alive": true, "error": null, "restart_count": 0}},
            "global_context": {"host": "h"},
            "health": {"tick": 40},
            "summary": {"duration_ms": 12.5, "queue_length": 3, "dropped_messages": 1}
        });
        let f: LoopFailure = decode(json.to_string().as_bytes(), 1 << 20).unwrap();
        assert_eq!(f.transport.queue_length, 3);
        assert_eq!(f.summary.dropped_messages, 1);
        let again: LoopFailure = serde_json::from_value(serde_json::to_value(&f).unwrap()).unwrap();
        assert_eq!(again, f);
    }

    #[test]
    fn legacy_aliases_synthesise_summary() {
        let json = r#"{"tick": 7, "status": "error", "tick_duration_ms": 99.0,
            "failure_count": 1, "error": "ValueError: boom",
            "telemetry_queue": 5, "telemetry_dropped": 2}"#;
        let f: LoopFailure = decode(json.as_bytes(), 1 << 20).unwrap();
        assert_eq!(f.duration_ms, 99.0);
        assert_eq!(
            f.summary,
            FailureSummary {
                duration_ms: 99.0,
                queue_length: 5,
                dropped_messages: 2
            }
        );
        assert_eq!(f.transport.queue_length, 5);
        assert_eq!(f.transport.dropped_messages, 2);
    }

    #[test]
    fn the_aliases_block_is_accepted_alone_and_beside_top_level_keys() {
        // Only the block (seed 004 step 2), no summary, no duration_ms.
        let json = r#"{"tick": 8, "error": "E: x",
            "aliases": {"tick_duration_ms": 4.5, "telemetry_queue": 6, "telemetry_dropped": 1}}"#;
        let f: LoopFailure = decode(json.as_bytes(), 1 << 20).unwrap();
        assert_eq!(f.duration_ms, 4.5);
        assert_eq!(
            f.summary,
            FailureSummary {
                duration_ms: 4.5,
                queue_length: 6,
                dropped_messages: 1
            }
        );
        assert_eq!(f.aliases.telemetry_queue, Some(6));
        // Both: the block wins over the top-level keys, key by key.
        let json = r#"{"tick": 8, "error": "E: x", "duration_ms": 2.0,
            "telemetry_queue": 99, "telemetry_dropped": 7,
            "aliases": {"telemetry_queue": 6}}"#;
        let f: LoopFailure = decode(json.as_bytes(), 1 << 20).unwrap();
        assert_eq!(f.summary.queue_length, 6);
        assert_eq!(f.summary.dropped_messages, 7);
        assert_eq!(
            f.aliases,
            FailureAliases {
                tick_duration_ms: Some(2.0),
                telemetry_queue: Some(6),
                telemetry_dropped: Some(7)
            }
        );
        // Neither: the aliases mirror the summary, and are re-encoded as a block.
        let json = r#"{"tick": 8, "error": "E: x", "duration_ms": 2.0,
            "summary": {"duration_ms": 2.0, "queue_length": 3, "dropped_messages": 0}}"#;
        let f: LoopFailure = decode(json.as_bytes(), 1 << 20).unwrap();
        assert_eq!(f.aliases, FailureAliases::of(&f.summary));
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["aliases"]["telemetry_queue"], 3);
        let bad = r#"{"tick": 8, "error": "E: x", "aliases": {"tick_duration_ms": -1.0}}"#;
        assert!(decode::<LoopFailure>(bad.as_bytes(), 1 << 20).is_err());
    }

    #[test]
    fn failure_without_duration_is_rejected() {
        let json = r#"{"tick": 7, "error": "x"}"#;
        let e = decode::<LoopFailure>(json.as_bytes(), 1 << 20).unwrap_err();
        assert!(e.to_string().contains("duration_ms"), "{e}");
    }

    #[test]
    fn health_validates() {
        let json = r#"{"tick": 1, "status": "ok", "duration_ms": -1,
            "transport": {}, "collectors": {}}"#;
        assert!(decode::<LoopHealth>(json.as_bytes(), 1 << 20).is_err());
        let json = r#"{"tick": 1, "status": "ok", "duration_ms": 3,
            "transport": {"queue_length": 0}, "collectors": {"host": {"ok": true, "duration_ms": 1.0}}}"#;
        let h: LoopHealth = decode(json.as_bytes(), 1 << 20).unwrap();
        assert!(h.collectors["host"].ok);
    }
}
