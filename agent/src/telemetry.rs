//! Loop telemetry payloads (pure, seed 004): `loop.health`, published
//! every N ticks on `lull.agent.<host>.health`, and `loop.failure`,
//! published when a tick fails on `lull.agent.<host>.failure`. Both carry
//! the outbox's real `transport` figures. The failure payload also carries
//! the structured `summary`, a copy of the last health payload, the agent's
//! context, and the legacy alias keys `tick_duration_ms`,
//! `telemetry_queue` and `telemetry_dropped` for older consumers: in the
//! `aliases` block (seed 004 step 2) and, as shipped before it, at the top
//! level. `snapshot_path` stays null: the agent keeps no snapshot on disk
//! (see docs/agent.md).

use std::collections::BTreeMap;

use lull_proto::msg::telemetry::{
    CollectorHealth, FailureAliases, FailureSummary, LoopFailure, LoopHealth, TransportStatus,
};
use serde_json::{json, Value};

/// Counts consecutive failed ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureStreak(u64);

impl FailureStreak {
    /// A tick succeeded: the streak ends.
    pub fn ok(&mut self) {
        self.0 = 0;
    }

    /// A tick failed: returns the new streak length.
    pub fn failed(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// Whether tick `tick` (counted from 1) publishes a `loop.health`.
pub fn health_due(tick: u64, every_n: u64) -> bool {
    every_n > 0 && tick.is_multiple_of(every_n)
}

/// The `loop.health` payload.
pub fn health(
    tick: u64,
    duration_ms: f64,
    transport: TransportStatus,
    collectors: BTreeMap<String, CollectorHealth>,
) -> LoopHealth {
    LoopHealth {
        tick,
        status: "ok".into(),
        duration_ms: duration_ms.max(0.0),
        transport,
        collectors,
    }
}

/// What the agent knew when a tick failed.
pub fn global_context(host_id: &str, last_seq: u64, interval_sec: f64, now: f64) -> Value {
    json!({
        "host_id": host_id,
        "last_seq": last_seq,
        "interval_sec": interval_sec,
        "at": now,
        "agent_version": env!("CARGO_PKG_VERSION"),
    })
}

/// Inputs of a `loop.failure`.
#[derive(Debug, Clone)]
pub struct FailureInput<'a> {
    /// Tick number.
    pub tick: u64,
    /// Duration of the failed tick, ms.
    pub duration_ms: f64,
    /// Consecutive failed ticks, this one included.
    pub failure_count: u64,
    /// `Kind: message`.
    pub error: String,
    /// The outbox's figures.
    pub transport: TransportStatus,
    /// See [`global_context`].
    pub global_context: Value,
    /// The last `loop.health`, if any was built.
    pub last_health: Option<&'a LoopHealth>,
}

/// The structured `loop.failure`.
pub fn failure(input: FailureInput<'_>) -> LoopFailure {
    let duration_ms = input.duration_ms.max(0.0);
    let summary = FailureSummary {
        duration_ms,
        queue_length: input.transport.queue_length,
        dropped_messages: input.transport.dropped_messages,
    };
    LoopFailure {
        tick: input.tick,
        status: "error".into(),
        duration_ms,
        failure_count: input.failure_count,
        error: input.error,
        // The agent keeps no snapshot on disk: a failed tick built none,
        // and the last good one is the coordinator's (`hosts.get`).
        snapshot_path: None,
        aliases: FailureAliases::of(&summary),
        summary,
        transport: input.transport,
        global_context: input.global_context,
        health: input.last_health.and_then(|h| serde_json::to_value(h).ok()),
    }
}

/// The failure as published: the structured payload with its `aliases`
/// block, plus the same legacy keys at the top level (they shipped there
/// before the block; clients may read them). Their values equal
/// `summary`'s.
pub fn failure_wire(f: &LoopFailure) -> Value {
    let mut v = serde_json::to_value(f).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut v {
        // TODO(seed 004 step 5): drop the top-level keys, then the
        // `aliases` block, once every consumer reads `summary`.
        m.insert("tick_duration_ms".into(), json!(f.summary.duration_ms));
        m.insert("telemetry_queue".into(), json!(f.summary.queue_length));
        m.insert(
            "telemetry_dropped".into(),
            json!(f.summary.dropped_messages),
        );
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_proto::validate::{decode, Validate};

    fn transport() -> TransportStatus {
        TransportStatus {
            provider: Some("nats".into()),
            queue_length: 4,
            dropped_messages: 9,
            last_flush_duration_ms: Some(0.5),
            payloads_flushed_total: 100,
            bytes_flushed_total: 20_000,
            auth_enabled: false,
            worker: Default::default(),
        }
    }

    #[test]
    fn streak_and_cadence() {
        let mut s = FailureStreak::default();
        assert_eq!(s.failed(), 1);
        assert_eq!(s.failed(), 2);
        s.ok();
        assert_eq!(s.failed(), 1);
        assert!(!health_due(1, 5));
        assert!(health_due(5, 5));
        assert!(health_due(10, 5));
        assert!(health_due(3, 1));
        assert!(!health_due(3, 0));
    }

    #[test]
    fn health_payload_validates() {
        let h = health(
            10,
            1.5,
            transport(),
            BTreeMap::from([(
                "host".to_string(),
                CollectorHealth {
                    ok: true,
                    duration_ms: 0.3,
                    last_error: None,
                    runs: 3,
                    failures: 0,
                    panics: 0,
                },
            )]),
        );
        assert!(h.validate().is_ok());
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(v["status"], "ok");
        assert_eq!(v["transport"]["dropped_messages"], 9);
        assert_eq!(v["collectors"]["host"]["ok"], true);
    }

    #[test]
    fn failure_payload_has_summary_health_and_aliases() {
        let h = health(10, 1.0, transport(), BTreeMap::new());
        let f = failure(FailureInput {
            tick: 12,
            duration_ms: 3.25,
            failure_count: 2,
            error: "HostUnavailable: no fresh result".into(),
            transport: transport(),
            global_context: global_context("web-1", 11, 2.0, 100.0),
            last_health: Some(&h),
        });
        assert!(f.validate().is_ok());
        let v = failure_wire(&f);
        assert_eq!(v["status"], "error");
        assert_eq!(v["failure_count"], 2);
        assert_eq!(v["snapshot_path"], Value::Null);
        assert_eq!(v["summary"]["queue_length"], 4);
        assert_eq!(v["summary"]["dropped_messages"], 9);
        assert_eq!(v["tick_duration_ms"], 3.25);
        assert_eq!(v["telemetry_queue"], 4);
        assert_eq!(v["telemetry_dropped"], 9);
        assert_eq!(v["aliases"]["tick_duration_ms"], 3.25);
        assert_eq!(v["aliases"]["telemetry_queue"], 4);
        assert_eq!(v["aliases"]["telemetry_dropped"], 9);
        assert_eq!(v["health"]["tick"], 10);
        assert_eq!(v["global_context"]["host_id"], "web-1");
        assert_eq!(v["transport"]["worker"]["restart_count"], 0);
        // the coordinator's decoder accepts it and agrees
        let back: LoopFailure = decode(v.to_string().as_bytes(), 1 << 20).unwrap();
        assert_eq!(back, f);
    }
}
