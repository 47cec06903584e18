//! Property round over every decoder that takes network input (issue #16,
//! "Fuzzing"): stats snapshots, agent telemetry, the three durable reports,
//! every request of the micro service and every lease operation. Each is fed
//! through the same function the coordinator calls on a message
//! (`ingest::*::classify`, `service::decode_request`, the scheduler's
//! `handle`), with two kinds of input:
//!
//! - arbitrary bytes;
//! - a valid message with one structure-aware mutation: a value replaced by
//!   a wrong type or a hostile number or string (`u64::MAX`, `1e308`,
//!   `"NaN"`, a long string, deep nesting), a raw token spliced into the
//!   text (`NaN`, `1e999`, a lone surrogate), a field removed, the text
//!   truncated or a byte flipped.
//!
//! Each must not panic, and must either decode or be rejected with a typed
//! error (a `Rejection` with a known label, or an `ErrorReply` with a code
//! and a message). A rejected lease operation leaves the book as it was.
//! The round is bounded (`FUZZ_CASES`, 256 by default per decoder and kind
//! of input) so it runs with the normal test suite; the `cargo fuzz`
//! targets in `fuzz/` run the same decoders for longer.

use lull_coordinator::builds::{ImportPart, RegionPardonRequest, RegionStatsRequest};
use lull_coordinator::ingest::{agent_health, reports, stats, Rejection};
use lull_coordinator::scheduler::endpoints::{handle, LeaseOp};
use lull_coordinator::service::{decode_request, Empty};
use lull_engine::lease::{Book, HostView, LeaseConfig, LeaseKey};
use lull_engine::quiet::forecast::ForecastRequest;
use lull_engine::quiet::history::HistoryRequest;
use lull_engine::quiet::streaks::StreaksRequest;
use lull_proto::error::{ErrorCode, ErrorReply};
use lull_proto::msg::hosts::{BlockRequest, HostGetRequest, QuietState, UnblockRequest};
use lull_proto::msg::lease::HeavyLeaseResponse;
use lull_proto::msg::region::{
    example_build, example_build_fatigue, example_fatigue_event, CampaignStats,
    RegionInsightsRequest, RegionSelectRequest,
};
use lull_proto::msg::stats::example_snapshot;
use lull_proto::msg::worker::{example_report, WorkerExecutionsRequest, WorkerRequest};
use lull_proto::validate::{TimeWindow, Validate};
use lull_proto::Subjects;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{Config, TestRunner};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

const NOW: f64 = 1_763_026_500.0;
const MAX: usize = 64 * 1024;
const WINDOW: TimeWindow = TimeWindow {
    future_skew_sec: 300.0,
    max_age_sec: Some(400.0 * 86_400.0),
};
const MARK: &str = "\u{1}raw\u{1}";

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Values that break types, ranges and assumptions.
fn hostile_values() -> Vec<Value> {
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!([deep]);
    }
    let mut deep_obj = json!({});
    for _ in 0..60 {
        deep_obj = json!({ "a": deep_obj });
    }
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(-0.0),
        json!(86400.0),
        json!(u64::MAX),
        json!(u64::MAX - 1),
        json!(i64::MIN),
        json!(i64::MAX),
        json!(9_007_199_254_740_993u64),
        json!(1e308),
        json!(-1e308),
        json!(1e11),
        json!(-1e11),
        json!(5e-324),
        json!(f64::MAX),
        json!(""),
        json!(" "),
        json!("NaN"),
        json!("Infinity"),
        json!("-inf"),
        json!("1e308"),
        json!("18446744073709551615"),
        json!("2025-11-13T10:00:00Z"),
        json!("a.b"),
        json!("*"),
        json!(">"),
        json!("\u{0}"),
        json!("\u{202e}é漢"),
        json!("x".repeat(129)),
        json!("y".repeat(5000)),
        json!([]),
        json!([1, "a", null]),
        json!({}),
        json!({"k": 1}),
        deep,
        deep_obj,
    ]
}

/// Tokens that are not valid JSON values, or are at its edges.
const RAW_TOKENS: &[&str] = &[
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e999",
    "18446744073709551616",
    "-9223372036854775809",
    "1E+308",
    "-0",
    "0.0000000000000000000000000000001e-400",
    "\"\\ud800\"",
    "\"\\u0000\"",
    "01",
    "+1",
    ".5",
    "",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]",
];

/// One structure-aware change to a valid message.
#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the value at a path.
    Replace(Index, Value),
    /// Replace the value at a path by a raw token in the text.
    Raw(Index, &'static str),
    /// Remove the value at a path (a key or an array item).
    Remove(Index),
    /// Add an unknown key to the object at a path.
    Extra(Index, Value),
    /// Cut the text.
    Truncate(Index),
    /// Flip one byte of the text.
    Flip(Index, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), select(hostile_values())).prop_map(|(i, v)| Mutation::Replace(i, v)),
        2 => (any::<Index>(), select(RAW_TOKENS)).prop_map(|(i, t)| Mutation::Raw(i, t)),
        1 => any::<Index>().prop_map(Mutation::Remove),
        1 => (any::<Index>(), select(hostile_values())).prop_map(|(i, v)| Mutation::Extra(i, v)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
    ]
}

/// JSON pointers of every value in `v`, the root first.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let k = k.replace('~', "~0").replace('/', "~1");
                pointers(x, format!("{at}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn pick(v: &Value, i: &Index) -> String {
    let mut all = Vec::new();
    pointers(v, String::new(), &mut all);
    all[i.index(all.len())].clone()
}

/// Applies `m` to `valid` and returns the bytes to decode.
fn apply(valid: &Value, m: &Mutation) -> Vec<u8> {
    let mut v = valid.clone();
    match m {
        Mutation::Replace(i, x) => {
            let p = pick(&v, i);
            if let Some(slot) = v.pointer_mut(&p) {
                *slot = x.clone();
            }
        }
        Mutation::Raw(i, token) => {
            let p = pick(&v, i);
            if let Some(slot) = v.pointer_mut(&p) {
                *slot = json!(MARK);
            }
            let text = serde_json::to_string(&v).unwrap();
            let marked = serde_json::to_string(MARK).unwrap();
            return text.replacen(&marked, token, 1).into_bytes();
        }
        Mutation::Remove(i) => {
            let p = pick(&v, i);
            if let Some((parent, last)) = p.rsplit_once('/') {
                match v.pointer_mut(parent) {
                    Some(Value::Object(o)) => {
                        o.remove(&last.replace("~1", "/").replace("~0", "~"));
                    }
                    Some(Value::Array(a)) => {
                        if let Ok(k) = last.parse::<usize>() {
                            if k < a.len() {
                                a.remove(k);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Mutation::Extra(i, x) => {
            let p = pick(&v, i);
            if let Some(Value::Object(o)) = v.pointer_mut(&p) {
                o.insert("unexpected_field".into(), x.clone());
            }
        }
        Mutation::Truncate(i) => {
            let text = serde_json::to_vec(&v).unwrap();
            return text[..i.index(text.len() + 1)].to_vec();
        }
        Mutation::Flip(i, b) => {
            let mut text = serde_json::to_vec(&v).unwrap();
            let k = i.index(text.len());
            text[k] = *b;
            return text;
        }
    }
    serde_json::to_vec(&v).unwrap()
}

const LABELS: &[&str] = &[
    "bad_subject",
    "too_large",
    "bad_json",
    "invalid",
    "host_mismatch",
];

/// A rejection must be typed, labelled and say something.
fn check_rejection(r: &Rejection) {
    assert!(LABELS.contains(&r.label()), "unknown label {}", r.label());
    assert!(!r.to_string().trim().is_empty(), "{r:?} has no message");
}

/// An error reply must have a code and a message.
fn check_reply(e: &ErrorReply) {
    assert!(!e.error.message.trim().is_empty(), "{e:?} has no message");
    let json = serde_json::to_value(e).unwrap();
    assert!(json["error"]["code"].is_string(), "{json}");
}

/// The check of one input.
type CheckFn = Box<dyn Fn(&[u8])>;

/// One decoder under test: its name, a valid message, and the check of one
/// input (panics on a broken property).
struct Target {
    name: &'static str,
    valid: Value,
    check: CheckFn,
}

fn ingest_target(
    name: &'static str,
    valid: Value,
    f: impl Fn(&[u8]) -> Result<(), Rejection> + 'static,
) -> Target {
    Target {
        name,
        valid,
        check: Box::new(move |b| {
            if let Err(r) = f(b) {
                check_rejection(&r)
            }
        }),
    }
}

/// A request decoded as the micro service does; a decoded one validates.
fn request<T: DeserializeOwned + Validate + 'static>(name: &'static str, valid: Value) -> Target {
    Target {
        name,
        valid,
        check: Box::new(|b| match decode_request::<T>(b, MAX) {
            Ok(t) => assert!(t.validate().is_ok()),
            Err(e) => {
                assert_eq!(e.error.code, ErrorCode::InvalidRequest, "{e:?}");
                check_reply(&e);
            }
        }),
    }
}

/// A book with one quiet host and one granted lease, and that lease's
/// id and token.
fn book() -> (Book, String, String) {
    let key = LeaseKey::from_bytes(vec![7u8; 32]).unwrap();
    let mut b = Book::new(LeaseConfig::default(), key, "f", NOW);
    b.skip_grace();
    b.on_hosts_changed(
        vec![HostView::new("h1", QuietState::Quiet, 90.0, 8, NOW)],
        NOW,
    );
    let req = br#"{"addon_id":"indexer","job_type":"reindex","host_id":"h1","cost_units":5}"#;
    let h = handle(&mut b, LeaseOp::Request, req, MAX, NOW);
    let r: HeavyLeaseResponse = serde_json::from_slice(&h.reply.unwrap()).unwrap();
    (b, r.lease_id.unwrap(), r.token.unwrap())
}

fn status_of(b: &mut Book) -> Value {
    let h = handle(b, LeaseOp::Status, b"", MAX, NOW);
    serde_json::from_slice(&h.reply.unwrap()).unwrap()
}

/// A lease operation applied to a fresh book: a rejected one (any error
/// reply) leaves the book's status as it was.
fn lease_target(name: &'static str, op: LeaseOp, valid: Value) -> Target {
    Target {
        name,
        valid,
        check: Box::new(move |b| {
            let (mut book, _, _) = book();
            let before = status_of(&mut book);
            let h = handle(&mut book, op, b, MAX, NOW + 1.0);
            if let Err(e) = &h.reply {
                check_reply(e);
                assert!(h.effects.is_empty(), "a rejected {name} has effects");
                assert_eq!(
                    status_of(&mut book),
                    before,
                    "a rejected {name} changed the book"
                );
            }
        }),
    }
}

fn targets() -> Vec<Target> {
    let s = Subjects::default();
    let (_, lease_id, token) = book();
    let handle_json = json!({"lease_id": lease_id, "token": token});
    let mut build = example_build("us-west2", "b1", NOW - 60.0, false);
    build.fatigues = vec![example_build_fatigue(
        NOW - 120.0,
        "Queue timeout",
        "queue-timeout",
    )];
    let s1 = s.clone();
    let s2 = s.clone();
    let s3 = s.clone();
    let s4 = s.clone();
    let s5 = s.clone();
    let s6 = s.clone();
    vec![
        ingest_target(
            "stats snapshot",
            serde_json::to_value(example_snapshot("h1", u64::MAX - 1, NOW)).unwrap(),
            move |b| stats::classify(&s1, "lull.stats.h1", b, MAX, NOW, &WINDOW).map(|_| ()),
        ),
        ingest_target(
            "loop.health",
            json!({"tick": 1, "status": "ok", "duration_ms": 3.0,
                "transport": {"provider": "nats", "queue_length": 0, "dropped_messages": 0,
                    "worker": {"alive": true, "restart_count": 0}},
                "collectors": {"host": {"ok": true, "duration_ms": 1.0, "last_error": null}}}),
            move |b| agent_health::classify(&s2, "lull.agent.h1.health", b, MAX).map(|_| ()),
        ),
        ingest_target(
            "loop.failure",
            json!({"tick": 7, "status": "error", "tick_duration_ms": 99.0,
                "failure_count": 1, "error": "ValueError: boom",
                "telemetry_queue": 5, "telemetry_dropped": 2,
                "global_context": {"host": "h1"}, "health": {"tick": 6}}),
            move |b| agent_health::classify(&s3, "lull.agent.h1.failure", b, MAX).map(|_| ()),
        ),
        ingest_target(
            "build report",
            serde_json::to_value(&build).unwrap(),
            move |b| {
                reports::classify(&s4, "lull.report.build.us-west2", b, MAX, NOW, &WINDOW)
                    .map(|_| ())
            },
        ),
        ingest_target(
            "fatigue report",
            serde_json::to_value(example_fatigue_event("us-west2", "e1", NOW - 30.0)).unwrap(),
            move |b| {
                reports::classify(&s5, "lull.report.fatigue.us-west2", b, MAX, NOW, &WINDOW)
                    .map(|_| ())
            },
        ),
        ingest_target(
            "worker execution report",
            serde_json::to_value(example_report("x1", "sse_guardian", NOW - 100.0, 2500.0))
                .unwrap(),
            move |b| {
                reports::classify(&s6, "lull.report.worker.sse_guardian", b, MAX, NOW, &WINDOW)
                    .map(|_| ())
            },
        ),
        lease_target(
            "lease.request",
            LeaseOp::Request,
            json!({"addon_id": "indexer", "job_type": "reindex", "host_id": "h1",
                "cost_units": 5, "cost_class": "HIGH", "expected_duration_sec": 600.0,
                "priority": "HIGH", "constraints": {"cpu_heavy": true},
                "wait": true, "wait_timeout_sec": 30.0}),
        ),
        lease_target("lease.heartbeat", LeaseOp::Heartbeat, handle_json.clone()),
        lease_target(
            "lease.release",
            LeaseOp::Release,
            json!({"lease_id": lease_id, "token": token, "outcome": "success"}),
        ),
        lease_target(
            "lease.report",
            LeaseOp::Report,
            json!({"lease_id": lease_id, "token": token, "progress_pct": 50.0,
                "message": "half", "metrics": {"rows": 10}}),
        ),
        lease_target(
            "lease.revoke",
            LeaseOp::Revoke,
            json!({"lease_id": lease_id, "reason": "maintenance"}),
        ),
        lease_target("lease.cancel", LeaseOp::Cancel, handle_json),
        lease_target("scheduler.status", LeaseOp::Status, json!({})),
        request::<Empty>("hosts.list", json!({})),
        request::<HostGetRequest>("hosts.get", json!({"host_id": "h1"})),
        request::<BlockRequest>(
            "hosts.block",
            json!({"host_id": "h1", "reason": "maintenance", "until": NOW + 3600.0}),
        ),
        request::<UnblockRequest>("hosts.unblock", json!({"all": true})),
        request::<HistoryRequest>(
            "stats.history",
            json!({"host_id": "h1", "group": "addon:indexer", "range": "24h", "step": "1m"}),
        ),
        request::<StreaksRequest>("quiet.streaks", json!({"host_id": "h1", "range": "7d"})),
        request::<ForecastRequest>(
            "quiet.forecast",
            json!({"host_id": "h1", "threshold": 70.0}),
        ),
        request::<RegionStatsRequest>(
            "regions.stats",
            json!({"regions": ["us-west2"], "recent_builds_limit": 10}),
        ),
        request::<RegionSelectRequest>(
            "regions.select",
            json!({"candidates": ["us-west2", "eu-west1"],
                "weights": {"price": 0.4, "success": 0.4, "speed": 0.2}}),
        ),
        request::<RegionInsightsRequest>(
            "regions.insights",
            json!({"fatigue_window_hours": 168.0}),
        ),
        request::<RegionPardonRequest>("regions.pardon", json!({"region": "us-west2"})),
        request::<ImportPart>(
            "regions.import part",
            json!({"upload_id": "u1", "part": 0, "parts": 2, "data": "{\"regions\":"}),
        ),
        request::<CampaignStats>("regions.import", campaign()),
        request::<WorkerExecutionsRequest>(
            "workers.executions",
            json!({"worker_name": "sse_guardian", "limit": 20}),
        ),
        request::<WorkerRequest>("workers.stats", json!({"worker_name": "sse_guardian"})),
    ]
}

/// A campaign document of one region with one build, as exported.
fn campaign() -> Value {
    use lull_engine::region::{campaign_stats, recompute, Baselines, RegionConfig};
    let b = example_build("us-west2", "b1", NOW - 60.0, true);
    let doc = campaign_stats(&recompute(
        &Baselines::default(),
        std::slice::from_ref(&b),
        &[],
        &RegionConfig::default(),
    ));
    serde_json::to_value(doc).unwrap()
}

fn run(t: &Target, strategy: impl Strategy<Value = Vec<u8>>) {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |bytes| {
        (t.check)(&bytes);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{}: {e}", t.name);
    }
}

#[test]
fn every_valid_example_decodes() {
    for t in targets() {
        let bytes = serde_json::to_vec(&t.valid).unwrap();
        (t.check)(&bytes);
    }
    // And is accepted, not merely rejected cleanly.
    let s = Subjects::default();
    for (subject, v) in [
        ("lull.stats.h1", targets()[0].valid.clone()),
        ("lull.report.build.us-west2", targets()[3].valid.clone()),
    ] {
        let b = serde_json::to_vec(&v).unwrap();
        let ok = if subject.contains("stats") {
            stats::classify(&s, subject, &b, MAX, NOW, &WINDOW).map(|_| ())
        } else {
            reports::classify(&s, subject, &b, MAX, NOW, &WINDOW).map(|_| ())
        };
        assert!(ok.is_ok(), "{subject}: {ok:?}");
    }
}

#[test]
fn arbitrary_bytes_are_rejected_cleanly() {
    for t in targets() {
        run(&t, prop::collection::vec(any::<u8>(), 0..256));
    }
}

#[test]
fn mutated_messages_are_decoded_or_rejected_cleanly() {
    for t in targets() {
        let valid = t.valid.clone();
        run(&t, mutation().prop_map(move |m| apply(&valid, &m)));
    }
}

#[test]
fn several_mutations_at_once() {
    for t in targets() {
        let valid = t.valid.clone();
        run(
            &t,
            prop::collection::vec(mutation(), 2..5).prop_map(move |ms| {
                let mut v = valid.clone();
                for m in &ms {
                    match serde_json::from_slice::<Value>(&apply(&v, m)) {
                        Ok(next) => v = next,
                        Err(_) => return apply(&v, m),
                    }
                }
                serde_json::to_vec(&v).unwrap()
            }),
        );
    }
}

#[test]
fn oversized_and_deeply_nested_payloads_are_rejected() {
    for t in targets() {
        (t.check)(&vec![b' '; MAX + 1]);
        (t.check)("[".repeat(100_000).as_bytes());
        (t.check)(format!("{}1{}", "[".repeat(127), "]".repeat(127)).as_bytes());
        let mut v = t.valid.clone();
        if let Value::Object(o) = &mut v {
            o.insert("deep".into(), json!(MARK));
        }
        let text = serde_json::to_string(&v).unwrap().replacen(
            &serde_json::to_string(MARK).unwrap(),
            &format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200)),
            1,
        );
        (t.check)(text.as_bytes());
    }
}
