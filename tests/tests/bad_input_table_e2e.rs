//! End-to-end: a table of bad inputs (issue #16, "A table of bad inputs")
//! against one real coordinator, NATS with JetStream, and Postgres.
//!
//! Each row sends one hostile message the way a client would (a request on
//! `lull.v1.*`, a stats snapshot or agent telemetry on core NATS, a report
//! through JetStream) and checks three things:
//!
//! 1. the expected rejection: an error reply with its code and text, or the
//!    ingest counter of its result growing by one with the reason in the
//!    coordinator's log;
//! 2. for replies, `lull_request_errors_total{endpoint,code}` grows by one;
//! 3. nothing changed: what the row watches (the host's snapshot, its agent
//!    telemetry, the leases, the blocks, the regions document, a worker's
//!    runs, or that an unknown host stays unknown) reads the same before
//!    and after.
//!
//! The rows cover the defects of issue #16 that hostile input can reach:
//! `seq = u64::MAX` with a far-future `collected_at`, timestamps of 1e11
//! and far in the past, huge durations and `*_hours`, a subject that does
//! not match its payload. A conflicting duplicate report (counted as
//! `conflict`) needs a stored record first, so it has a test of its own
//! below, `a_conflicting_duplicate_report_changes_nothing`. The identity
//! rows (an addon asking under another addon's subject, a worker report
//! for another host than its subject's) check what the coordinator itself
//! refuses; the server-side refusal under the shipped NATS users is
//! tested in identity_e2e and nats_permissions.

mod support;

use std::time::Duration;

use lull_common::runtime::now_unix;
use lull_proto::error::{ErrorCode, ErrorReply};
use lull_proto::msg::hosts::QuietState;
use lull_proto::msg::lease::HeavyLeaseResponse;
use lull_proto::msg::region::{example_build, example_build_fatigue, example_fatigue_event};
use lull_proto::msg::stats::example_snapshot;
use lull_proto::msg::worker::example_report;
use lull_proto::subjects::endpoints as ep;
use lull_proto::Subjects;
use lull_tests::{wait_for, wait_until, Infra};
use serde_json::{json, Value};
use support::*;

const DAY: f64 = 86_400.0;
const HOST: &str = "tbl-1";
const LEASE_HOST: &str = "tbl-lease";
const REGION: &str = "tbl-r";
const WORKER: &str = "tbl-w";
const BOOT_AGO: f64 = 1000.0;

/// How a row's message is sent.
enum Send {
    /// A request to `lull.v1.<endpoint>`, or to another subject that the
    /// same endpoint serves (its errors are counted under the endpoint).
    Request(&'static str, Option<String>, Vec<u8>),
    /// A message on a core NATS subject (stats, agent telemetry).
    Core(String, Vec<u8>),
    /// A report through JetStream: subject and body (the message id is
    /// made unique per row).
    Report(String, Vec<u8>),
}

/// What the coordinator must do with it.
enum Expect {
    /// An error reply with this code whose message contains the text.
    Reply(ErrorCode, &'static str),
    /// This counter grows by one, and the coordinator's log names the text
    /// (no log check when empty).
    Counted(
        &'static str,
        Vec<(&'static str, &'static str)>,
        &'static str,
    ),
}

/// What must read the same before and after.
#[derive(Debug, Clone, Copy)]
enum Watch {
    /// `hosts.get`: the host's latest snapshot.
    Host(&'static str),
    /// `hosts.get`: the host's agent telemetry.
    Agent(&'static str),
    /// `hosts.get` answers not_found.
    Unknown(&'static str),
    /// `scheduler.status`: active leases, addon decisions, queue.
    Leases,
    /// `hosts.blocks`.
    Blocks,
    /// `regions.stats`.
    Regions,
    /// `workers.executions` of the worker.
    Worker(&'static str),
}

struct Row {
    name: &'static str,
    send: Send,
    expect: Expect,
    watch: Vec<Watch>,
}

fn row(name: &'static str, send: Send, expect: Expect, watch: &[Watch]) -> Row {
    Row {
        name,
        send,
        expect,
        watch: watch.to_vec(),
    }
}

fn req(endpoint: &'static str, body: Value) -> Send {
    Send::Request(endpoint, None, serde_json::to_vec(&body).unwrap())
}

fn bad(code: ErrorCode, text: &'static str) -> Expect {
    Expect::Reply(code, text)
}

fn invalid(text: &'static str) -> Expect {
    bad(ErrorCode::InvalidRequest, text)
}

fn stats_result(result: &'static str, text: &'static str) -> Expect {
    Expect::Counted("lull_stats_messages_total", vec![("result", result)], text)
}

fn agent_result(kind: &'static str, result: &'static str, text: &'static str) -> Expect {
    Expect::Counted(
        "lull_fleet_agent_messages_total",
        vec![("kind", kind), ("result", result)],
        text,
    )
}

fn report_invalid(kind: &'static str, text: &'static str) -> Expect {
    Expect::Counted(
        "lull_reports_total",
        vec![("kind", kind), ("result", "invalid")],
        text,
    )
}

/// A valid snapshot of [`HOST`] (newer than the genuine one), changed by `f`.
fn snapshot(now: f64, f: impl FnOnce(&mut Value)) -> Send {
    let mut s = example_snapshot(HOST, 11, now);
    s.host.boot_time = now - BOOT_AGO;
    let mut v = serde_json::to_value(s).unwrap();
    f(&mut v);
    Send::Core(
        Subjects::default().stats(HOST),
        serde_json::to_vec(&v).unwrap(),
    )
}

fn health() -> Value {
    json!({"tick": 1, "status": "ok", "duration_ms": 3.0,
        "transport": {"provider": "nats", "queue_length": 0},
        "collectors": {"host": {"ok": true, "duration_ms": 1.0}}})
}

fn agent(kind: &str, body: Value) -> Send {
    Send::Core(
        format!("lull.agent.{HOST}.{kind}"),
        serde_json::to_vec(&body).unwrap(),
    )
}

fn build(now: f64, f: impl FnOnce(&mut Value)) -> Send {
    let mut v = serde_json::to_value(example_build(REGION, "tbl-bad", now - 60.0, true)).unwrap();
    f(&mut v);
    Send::Report(
        Subjects::default().report_build(REGION),
        serde_json::to_vec(&v).unwrap(),
    )
}

fn fatigue(now: f64, f: impl FnOnce(&mut Value)) -> Send {
    let mut v = serde_json::to_value(example_fatigue_event(REGION, "tbl-ev", now - 60.0)).unwrap();
    f(&mut v);
    Send::Report(
        Subjects::default().report_fatigue(REGION),
        serde_json::to_vec(&v).unwrap(),
    )
}

fn worker_run(now: f64, f: impl FnOnce(&mut Value)) -> Send {
    let mut v = serde_json::to_value(example_report("tbl-x", WORKER, now - 60.0, 1000.0)).unwrap();
    f(&mut v);
    Send::Report(
        Subjects::default().report_worker(WORKER),
        serde_json::to_vec(&v).unwrap(),
    )
}

fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!({ "a": v });
    }
    v
}

/// Every row. `lease` is the granted lease's id and token.
fn rows(now: f64, lease_id: &str, token: &str, campaign: &Value) -> Vec<Row> {
    use Watch::*;
    let lease = |f: &dyn Fn(&mut Value)| {
        let mut v = json!({"addon_id": "tbl-addon", "job_type": "table", "host_id": LEASE_HOST,
            "cost_units": 5});
        f(&mut v);
        req(ep::LEASE_REQUEST, v)
    };
    let big = "x".repeat(300 * 1024);
    let long = "y".repeat(5000);
    // The genuine region's aggregate as `regions.stats` gave it, under a
    // name of our choice, changed by `f`.
    let doc = |name: &str, f: &dyn Fn(&mut Value)| {
        let mut region = campaign["regions"][REGION].clone();
        f(&mut region);
        req(
            ep::REGIONS_IMPORT,
            json!({"campaign_start": now - DAY, "last_updated": now,
                "total_builds_all_regions": 1, "regions": {name: region}}),
        )
    };
    vec![
        // --- lease requests (lease.*, scheduler.status) ---
        row(
            "lease.request cost_units 0",
            lease(&|v| v["cost_units"] = json!(0)),
            invalid("cost_units must be 1..100, got 0"),
            &[Leases],
        ),
        row(
            "lease.request cost_units 1e12",
            lease(&|v| v["cost_units"] = json!(1e12)),
            invalid("cost_units"),
            &[Leases],
        ),
        row(
            "lease.request fractional cost_units",
            lease(&|v| v["cost_units"] = json!(2.5)),
            invalid("fractional part"),
            &[Leases],
        ),
        row(
            "lease.request cost_units u64::MAX",
            lease(&|v| v["cost_units"] = json!(u64::MAX)),
            invalid("expected an integer"),
            &[Leases],
        ),
        row(
            "lease.request addon_id with a dot",
            lease(&|v| v["addon_id"] = json!("a.b")),
            invalid("addon_id must use only"),
            &[Leases],
        ),
        row(
            "lease.request host_id wildcard",
            lease(&|v| v["host_id"] = json!("h*")),
            invalid("host_id must use only"),
            &[Leases],
        ),
        row(
            "lease.request expected_duration_sec 1e308",
            lease(&|v| v["expected_duration_sec"] = json!(1e308)),
            invalid("expected_duration_sec must be"),
            &[Leases],
        ),
        row(
            "lease.request wait_timeout_sec -1",
            lease(&|v| v["wait_timeout_sec"] = json!(-1.0)),
            invalid("wait_timeout_sec must be"),
            &[Leases],
        ),
        row(
            "lease.request unknown priority",
            lease(&|v| v["priority"] = json!("URGENT")),
            invalid("unknown variant"),
            &[Leases],
        ),
        row(
            "lease.request without a cost",
            lease(&|v| {
                v.as_object_mut().unwrap().remove("cost_units");
            }),
            invalid("cost_units (or cost_class) is required"),
            &[Leases],
        ),
        row(
            "lease.request not JSON",
            Send::Request(ep::LEASE_REQUEST, None, b"{addon_id:".to_vec()),
            invalid("invalid JSON"),
            &[Leases],
        ),
        row(
            "lease.request over the payload limit",
            lease(&|v| v["pad"] = json!(big)),
            invalid("over the limit"),
            &[Leases],
        ),
        row(
            "lease.request under another addon's subject",
            Send::Request(
                ep::LEASE_REQUEST,
                Some(Subjects::default().lease_request_as("tbl-other")),
                serde_json::to_vec(&json!({"addon_id": "tbl-addon", "job_type": "table",
                    "host_id": LEASE_HOST, "cost_units": 5}))
                .unwrap(),
            ),
            bad(ErrorCode::Forbidden, "does not match the subject's addon"),
            &[Leases],
        ),
        row(
            "lease.heartbeat with another token",
            req(
                ep::LEASE_HEARTBEAT,
                json!({"lease_id": lease_id, "token": "forged"}),
            ),
            bad(ErrorCode::Forbidden, "token does not match"),
            &[Leases],
        ),
        row(
            "lease.heartbeat of an unknown lease with another lease's token",
            req(
                ep::LEASE_HEARTBEAT,
                json!({"lease_id": "nope-1", "token": token}),
            ),
            bad(
                ErrorCode::Forbidden,
                "the token does not match lease nope-1",
            ),
            &[Leases],
        ),
        row(
            "lease.revoke of an unknown lease",
            req(ep::LEASE_REVOKE, json!({"lease_id": "nope-2"})),
            bad(ErrorCode::NotFound, "unknown lease nope-2"),
            &[Leases],
        ),
        row(
            "lease.release with an empty token",
            req(
                ep::LEASE_RELEASE,
                json!({"lease_id": lease_id, "token": " "}),
            ),
            invalid("token is required"),
            &[Leases],
        ),
        row(
            "lease.report progress 1e308",
            req(
                ep::LEASE_REPORT,
                json!({"lease_id": lease_id, "token": token,
                "progress_pct": 1e308}),
            ),
            invalid("progress_pct must be 0..100"),
            &[Leases],
        ),
        row(
            "lease.report message of 5000 bytes",
            req(
                ep::LEASE_REPORT,
                json!({"lease_id": lease_id, "token": token, "message": long}),
            ),
            invalid("message must be at most 4096 bytes"),
            &[Leases],
        ),
        row(
            "lease.revoke lease_id wildcard",
            req(ep::LEASE_REVOKE, json!({"lease_id": "*"})),
            invalid("lease_id must use only"),
            &[Leases],
        ),
        row(
            "lease.cancel without a token",
            req(ep::LEASE_CANCEL, json!({"lease_id": lease_id})),
            invalid("missing field `token`"),
            &[Leases],
        ),
        row(
            "scheduler.status not JSON",
            Send::Request(ep::SCHEDULER_STATUS, None, b"nope".to_vec()),
            invalid("invalid JSON"),
            &[Leases],
        ),
        // --- hosts.*, stats.*, quiet.* ---
        row(
            "hosts.block both a host and all",
            req(ep::HOSTS_BLOCK, json!({"host_id": HOST, "all": true})),
            invalid("not both"),
            &[Blocks],
        ),
        row(
            "hosts.block until -1",
            req(ep::HOSTS_BLOCK, json!({"host_id": HOST, "until": -1.0})),
            invalid("until must be >= 0"),
            &[Blocks],
        ),
        row(
            "hosts.block reason of 5000 bytes",
            req(ep::HOSTS_BLOCK, json!({"host_id": HOST, "reason": long})),
            invalid("reason must be at most"),
            &[Blocks],
        ),
        row(
            "hosts.block until as a string",
            req(
                ep::HOSTS_BLOCK,
                json!({"host_id": HOST, "until": "tomorrow"}),
            ),
            invalid("invalid JSON"),
            &[Blocks],
        ),
        row(
            "hosts.unblock without a target",
            req(ep::HOSTS_UNBLOCK, json!({})),
            invalid("host_id (or all: true) is required"),
            &[Blocks],
        ),
        row(
            "hosts.get host id with a space",
            req(ep::HOSTS_GET, json!({"host_id": "a b"})),
            invalid("host_id must use only"),
            &[],
        ),
        row(
            "hosts.get unknown host",
            req(ep::HOSTS_GET, json!({"host_id": "tbl-none"})),
            bad(ErrorCode::NotFound, "is not known"),
            &[Unknown("tbl-none")],
        ),
        row(
            "stats.history range forever",
            req(
                ep::STATS_HISTORY,
                json!({"host_id": HOST, "group": "host", "range": "forever"}),
            ),
            invalid("range"),
            &[],
        ),
        row(
            "stats.history unknown group",
            req(ep::STATS_HISTORY, json!({"host_id": HOST, "group": "cpu"})),
            invalid("group"),
            &[],
        ),
        row(
            "quiet.forecast threshold 1e308",
            req(
                ep::QUIET_FORECAST,
                json!({"host_id": HOST, "threshold": 1e308}),
            ),
            invalid("threshold must be 0..100"),
            &[],
        ),
        row(
            "quiet.streaks negative range",
            req(ep::QUIET_STREAKS, json!({"host_id": HOST, "range": "-1h"})),
            invalid("range"),
            &[],
        ),
        // --- regions.*, workers.* ---
        row(
            "regions.select all weights zero",
            req(
                ep::REGIONS_SELECT,
                json!({"weights": {"price": 0, "success": 0, "speed": 0}}),
            ),
            invalid("at least one positive weight"),
            &[Regions],
        ),
        row(
            "regions.select 300 candidates",
            req(ep::REGIONS_SELECT, json!({"candidates": vec!["r"; 300]})),
            invalid("at most 256 items"),
            &[Regions],
        ),
        row(
            "regions.stats recent_builds_limit 101",
            req(ep::REGIONS_STATS, json!({"recent_builds_limit": 101})),
            invalid("recent_builds_limit must be 0..100"),
            &[Regions],
        ),
        row(
            "regions.insights fatigue_window_hours 1e11",
            req(ep::REGIONS_INSIGHTS, json!({"fatigue_window_hours": 1e11})),
            invalid("fatigue_window_hours must be"),
            &[Regions],
        ),
        row(
            "regions.pardon empty region",
            req(ep::REGIONS_PARDON, json!({"region": ""})),
            invalid("region is required"),
            &[Regions],
        ),
        row(
            "regions.import part beyond parts",
            req(
                ep::REGIONS_IMPORT,
                json!({"upload_id": "u1", "part": 2, "parts": 2, "data": "{"}),
            ),
            invalid("must be below parts"),
            &[Regions],
        ),
        row(
            "regions.import region name with a dot",
            doc("a.b", &|_| {}),
            invalid("regions key"),
            &[Regions],
        ),
        row(
            "regions.import negative count",
            doc("tbl-imp", &|r| r["total_builds"] = json!(-1)),
            invalid("invalid value: integer `-1`"),
            &[Regions],
        ),
        row(
            "workers.executions limit 100000",
            req(
                ep::WORKERS_EXECUTIONS,
                json!({"worker_name": WORKER, "limit": 100_000}),
            ),
            invalid("limit must be 1..500"),
            &[Worker(WORKER)],
        ),
        row(
            "regions.stats limit 0",
            req(ep::REGIONS_STATS, json!({"limit": 0})),
            invalid("limit must be 1..100000"),
            &[Regions],
        ),
        row(
            "regions.stats cursor not a region name",
            req(ep::REGIONS_STATS, json!({"cursor": "a b"})),
            invalid("cursor must use only"),
            &[Regions],
        ),
        row(
            "regions.stats cursor of 600 bytes",
            req(ep::REGIONS_STATS, json!({"cursor": "r".repeat(600)})),
            invalid("cursor must be at most 512 bytes"),
            &[Regions],
        ),
        row(
            "workers.executions foreign cursor",
            req(
                ep::WORKERS_EXECUTIONS,
                json!({"worker_name": WORKER, "cursor": "web-1"}),
            ),
            invalid("is not a cursor of workers.executions"),
            &[Worker(WORKER)],
        ),
        row(
            "workers.executions cursor of 600 bytes",
            req(
                ep::WORKERS_EXECUTIONS,
                json!({"worker_name": WORKER, "cursor": format!("1.0|{}", "x".repeat(600))}),
            ),
            invalid("cursor must be at most 512 bytes"),
            &[Worker(WORKER)],
        ),
        row(
            "data_quality.summary limit 0",
            req(ep::DATA_QUALITY_SUMMARY, json!({"limit": 0})),
            invalid("limit must be 1..100000"),
            &[],
        ),
        row(
            "learning.system cursor not a worker name",
            req(ep::LEARNING_SYSTEM, json!({"cursor": "a.b"})),
            invalid("cursor must use only"),
            &[],
        ),
        row(
            "workers.stats worker name of 129 bytes",
            req(ep::WORKERS_STATS, json!({"worker_name": "w".repeat(129)})),
            invalid("worker_name must be at most 128 bytes"),
            &[],
        ),
        // --- stats snapshots (lull.stats.<host>) ---
        row(
            "snapshot seq u64::MAX collected far in the future",
            snapshot(now, |v| {
                v["seq"] = json!(u64::MAX);
                v["collected_at"] = json!(now + 1e6);
            }),
            stats_result("invalid", "collected_at must be at most 300s ahead"),
            &[Host(HOST)],
        ),
        row(
            "snapshot collected_at 1e11",
            snapshot(now, |v| v["collected_at"] = json!(1e11)),
            stats_result("invalid", "collected_at"),
            &[Host(HOST)],
        ),
        row(
            "snapshot collected an hour ago",
            snapshot(now, |v| v["collected_at"] = json!(now - 3600.0)),
            stats_result("invalid", "behind the receiver's clock"),
            &[Host(HOST)],
        ),
        row(
            "snapshot for another host than its subject",
            snapshot(now, |v| v["host_id"] = json!("tbl-2")),
            stats_result("host_mismatch", "does not match payload host_id"),
            &[Host(HOST), Unknown("tbl-2")],
        ),
        row(
            "snapshot cpu 140 %",
            snapshot(now, |v| v["host"]["cpu_pct"] = json!(140.0)),
            stats_result("invalid", "host.cpu_pct must be 0..100"),
            &[Host(HOST)],
        ),
        row(
            "snapshot cpu as \"NaN\"",
            snapshot(now, |v| v["host"]["cpu_pct"] = json!("NaN")),
            stats_result("bad_json", "invalid JSON"),
            &[Host(HOST)],
        ),
        row(
            "snapshot not JSON",
            Send::Core(Subjects::default().stats(HOST), b"\x00\xff".to_vec()),
            stats_result("bad_json", "invalid JSON"),
            &[Host(HOST)],
        ),
        row(
            "snapshot seq as a string",
            snapshot(now, |v| v["seq"] = json!("seven")),
            stats_result("bad_json", "invalid JSON"),
            &[Host(HOST)],
        ),
        row(
            "snapshot fractional uptime",
            snapshot(now, |v| v["host"]["uptime_sec"] = json!(86400.5)),
            stats_result("bad_json", "fractional part"),
            &[Host(HOST)],
        ),
        row(
            "snapshot over the payload limit",
            snapshot(now, |v| v["pad"] = json!("z".repeat(300 * 1024))),
            stats_result("too_large", "over the limit"),
            &[Host(HOST)],
        ),
        row(
            "snapshot disk free above total",
            snapshot(now, |v| {
                v["host"]["disks"][0]["free_bytes"] = json!(u64::MAX)
            }),
            stats_result("invalid", "must not exceed total_bytes"),
            &[Host(HOST)],
        ),
        row(
            "snapshot interval 0",
            snapshot(now, |v| v["interval_sec"] = json!(0)),
            stats_result("invalid", "interval_sec must be"),
            &[Host(HOST)],
        ),
        row(
            "snapshot nested 200 deep",
            snapshot(now, |v| {
                v["addons"] = json!({"x": {"state": "RUNNING", "custom": nested(200)}})
            }),
            stats_result("bad_json", "recursion limit"),
            &[Host(HOST)],
        ),
        row(
            "snapshot older than the current one",
            snapshot(now, |v| {
                v["seq"] = json!(5);
                v["collected_at"] = json!(now - 30.0);
            }),
            stats_result("out_of_order", ""),
            &[Host(HOST)],
        ),
        // --- agent telemetry (lull.agent.<host>.*) ---
        row(
            "loop.health negative duration",
            agent("health", {
                let mut h = health();
                h["duration_ms"] = json!(-1);
                h
            }),
            agent_result("health", "invalid", "duration_ms must be >= 0"),
            &[Agent(HOST)],
        ),
        row(
            "loop.health fractional tick",
            agent("health", {
                let mut h = health();
                h["tick"] = json!(1.5);
                h
            }),
            agent_result("health", "bad_json", "fractional part"),
            &[Agent(HOST)],
        ),
        row(
            "loop.failure without a duration",
            agent("failure", json!({"tick": 3, "error": "boom"})),
            agent_result("failure", "bad_json", "duration_ms"),
            &[Agent(HOST)],
        ),
        row(
            "loop.failure context not an object",
            agent(
                "failure",
                json!({"tick": 3, "duration_ms": 1.0, "error": "boom",
                "global_context": [1]}),
            ),
            agent_result("failure", "invalid", "global_context must be an object"),
            &[Agent(HOST)],
        ),
        row(
            "agent message of an unknown kind",
            agent("other", health()),
            agent_result("other", "bad_subject", "does not match"),
            &[Agent(HOST)],
        ),
        row(
            "loop.health of a host that never sent a snapshot",
            Send::Core(
                "lull.agent.tbl-ghost.health".into(),
                serde_json::to_vec(&health()).unwrap(),
            ),
            agent_result("health", "unknown_host", ""),
            &[Unknown("tbl-ghost")],
        ),
        row(
            "loop.failure of a host that never sent a snapshot",
            Send::Core(
                "lull.agent.tbl-ghost.failure".into(),
                serde_json::to_vec(&json!({"tick": 3, "duration_ms": 1.0, "error": "boom"}))
                    .unwrap(),
            ),
            agent_result("failure", "unknown_host", ""),
            &[Unknown("tbl-ghost")],
        ),
        // --- reports (JetStream lull.report.*) ---
        row(
            "fatigue event at 1e11",
            fatigue(now, |v| v["fatigue_time"] = json!(1e11)),
            report_invalid("fatigue", "fatigue_time must be at most 300s ahead"),
            &[Regions],
        ),
        row(
            "fatigue event of 1e11 hours",
            fatigue(now, |v| v["fatigue_duration_hours"] = json!(1e11)),
            report_invalid("fatigue", "fatigue_duration_hours must be"),
            &[Regions],
        ),
        row(
            "build dated 1e11",
            build(now, |v| v["timestamp"] = json!(1e11)),
            report_invalid("build", "timestamp must be at most 300s ahead"),
            &[Regions],
        ),
        row(
            "build dated 500 days ago",
            build(now, |v| v["timestamp"] = json!(now - 500.0 * DAY)),
            report_invalid("build", "behind the receiver's clock"),
            &[Regions],
        ),
        row(
            "build dated as an ISO string",
            build(now, |v| v["timestamp"] = json!("2026-12-03T10:00:00Z")),
            report_invalid("build", "expected f64"),
            &[Regions],
        ),
        row(
            "build of 1e9 minutes",
            build(now, |v| v["duration_minutes"] = json!(1e9)),
            report_invalid("build", "duration_minutes must be"),
            &[Regions],
        ),
        row(
            "build with a fatigue of 1e6 hours",
            build(now, |v| {
                let mut f =
                    serde_json::to_value(example_build_fatigue(now - 60.0, "x", "x")).unwrap();
                f["fatigue_duration_hours"] = json!(1e6);
                v["fatigues"] = json!([f]);
            }),
            report_invalid("build", "fatigues[0].fatigue_duration_hours"),
            &[Regions],
        ),
        row(
            "build with failed_step above total_steps",
            build(now, |v| {
                v["total_steps"] = json!(3);
                v["failed_step"] = json!(4);
            }),
            report_invalid("build", "must not exceed total_steps"),
            &[Regions],
        ),
        row(
            "build for another region than its subject",
            build(now, |v| v["region"] = json!("tbl-other")),
            report_invalid("build", "does not match the subject"),
            &[Regions],
        ),
        row(
            "build not JSON",
            Send::Report(
                Subjects::default().report_build(REGION),
                b"{\"timestamp\":".to_vec(),
            ),
            report_invalid("build", "invalid JSON"),
            &[Regions],
        ),
        row(
            "report of an unknown kind",
            Send::Report(format!("lull.report.nope.{REGION}"), b"{}".to_vec()),
            report_invalid("unknown", "does not match"),
            &[Regions],
        ),
        row(
            "worker run started at 1e11",
            worker_run(now, |v| {
                v["started_at"] = json!(1e11);
                v["completed_at"] = json!(1e11 + 1.0);
            }),
            report_invalid("worker", "started_at must be at most 300s ahead"),
            &[Worker(WORKER)],
        ),
        row(
            "worker run of 1e308 ms",
            worker_run(now, |v| v["duration_ms"] = json!(1e308)),
            report_invalid("worker", "duration_ms must be 0..2592000000, got 1e308"),
            &[Worker(WORKER)],
        ),
        row(
            "worker run lasting 1e9 s",
            worker_run(now, |v| {
                v["started_at"] = json!(now - 1e9);
                v["completed_at"] = json!(now - 60.0);
            }),
            report_invalid("worker", "completed_at must be at most"),
            &[Worker(WORKER)],
        ),
        row(
            "worker run with negative records",
            worker_run(now, |v| {
                v["data_verification"] = json!({"records_processed": -5})
            }),
            report_invalid("worker", "records_processed must be >= 0"),
            &[Worker(WORKER)],
        ),
        row(
            "worker run for another host than its subject",
            {
                let mut v =
                    serde_json::to_value(example_report("tbl-x", WORKER, now - 60.0, 1000.0))
                        .unwrap();
                v["host_id"] = json!("tbl-host-b");
                Send::Report(
                    Subjects::default().report_worker_by("tbl-host-a", WORKER),
                    serde_json::to_vec(&v).unwrap(),
                )
            },
            Expect::Counted(
                "lull_reports_total",
                vec![("kind", "worker"), ("result", "host_mismatch")],
                "tbl-host-b",
            ),
            &[Worker(WORKER)],
        ),
        row(
            "worker run for another worker than its subject",
            worker_run(now, |v| v["worker_name"] = json!("tbl-other")),
            report_invalid("worker", "does not match the subject"),
            &[Worker(WORKER)],
        ),
    ]
}

async fn host(
    client: &async_nats::Client,
    h: &str,
) -> Result<Value, lull_client::request::RequestError> {
    call::<_, Value>(client, ep::HOSTS_GET, &json!({"host_id": h})).await
}

/// Reads what a watch covers.
async fn read(client: &async_nats::Client, w: Watch) -> Value {
    let fail = |e: lull_client::request::RequestError| json!({"error": e.to_string()});
    match w {
        Watch::Host(h) => host(client, h)
            .await
            .map(|v| v["snapshot"].clone())
            .unwrap_or_else(fail),
        Watch::Agent(h) => host(client, h)
            .await
            .map(|v| v["agent"].clone())
            .unwrap_or_else(fail),
        Watch::Unknown(h) => match host(client, h).await {
            Ok(v) => json!({"known": v}),
            Err(e) => json!({"unknown": e.to_string().contains("not known")}),
        },
        Watch::Leases => call::<_, Value>(client, ep::SCHEDULER_STATUS, &json!({}))
            .await
            .map(|s| json!([s["leases"]["active"], s["addons"], s["queue_length"]]))
            .unwrap_or_else(fail),
        Watch::Blocks => call::<_, Value>(client, ep::HOSTS_BLOCKS, &json!({}))
            .await
            .unwrap_or_else(fail),
        Watch::Regions => regions_stats(client).await,
        Watch::Worker(w) => {
            call::<_, Value>(client, ep::WORKERS_EXECUTIONS, &json!({"worker_name": w}))
                .await
                .unwrap_or_else(fail)
        }
    }
}

/// The coordinator's log lengths, to read what a row adds.
fn log_marks(coord: &Coordinator) -> (usize, usize) {
    (coord.svc.stdout().len(), coord.svc.stderr().len())
}

fn logs_since(coord: &Coordinator, marks: (usize, usize)) -> String {
    let (out, err) = (coord.svc.stdout(), coord.svc.stderr());
    format!(
        "{}{}",
        out.get(marks.0..).unwrap_or(""),
        err.get(marks.1..).unwrap_or("")
    )
}

/// Runs one row; returns what went wrong, if anything.
async fn check(
    client: &async_nats::Client,
    coord: &Coordinator,
    k: usize,
    r: Row,
) -> Option<String> {
    let mut before = Vec::new();
    for w in &r.watch {
        before.push(read(client, *w).await);
    }
    let marks = log_marks(coord);
    let outcome = match (&r.send, &r.expect) {
        (Send::Request(endpoint, subject, body), Expect::Reply(code, text)) => {
            let labels = [("endpoint", *endpoint), ("code", code.as_str())];
            let errors = metric_now(coord, "lull_request_errors_total", &labels).await;
            let subject = subject
                .clone()
                .unwrap_or_else(|| Subjects::default().endpoint(endpoint));
            let msg = client
                .request(subject, body.clone().into())
                .await
                .expect("reply");
            let status = msg
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::service::NATS_SERVICE_ERROR_CODE))
                .map(|v| v.to_string());
            match serde_json::from_slice::<ErrorReply>(&msg.payload) {
                Ok(e) if e.error.code == *code && e.error.message.contains(text) => {
                    if status != Some(code.status().to_string()) {
                        Err(format!("error header {status:?}, want {}", code.status()))
                    } else if wait_until(Duration::from_secs(5), || async {
                        metric_now(coord, "lull_request_errors_total", &labels).await
                            >= errors + 1.0
                    })
                    .await
                    .is_err()
                    {
                        Err(format!("lull_request_errors_total{labels:?} did not grow"))
                    } else {
                        Ok(())
                    }
                }
                _ => Err(format!(
                    "want {code} containing {text:?}, got {}",
                    String::from_utf8_lossy(&msg.payload)
                )),
            }
        }
        (Send::Request(..), Expect::Counted(..)) => {
            Err("a request must expect a reply".to_string())
        }
        (send, Expect::Counted(name, labels, text)) => {
            let was = metric_now(coord, name, labels).await;
            match send {
                Send::Core(subject, body) => {
                    publish_raw(client, subject.clone(), body.clone()).await
                }
                Send::Report(subject, body) => {
                    publish_report(
                        client,
                        subject.clone(),
                        &format!("tbl-row-{k}"),
                        body.clone(),
                    )
                    .await
                }
                Send::Request(..) => unreachable!("requests expect replies"),
            }
            let grew = wait_until(Duration::from_secs(15), || async {
                metric_now(coord, name, labels).await >= was + 1.0
            })
            .await;
            let logged = text.is_empty()
                || wait_until(Duration::from_secs(5), || async {
                    logs_since(coord, marks).contains(text)
                })
                .await
                .is_ok();
            match (grew.is_ok(), logged) {
                (true, true) => Ok(()),
                (false, _) => Err(format!("{name}{labels:?} did not grow")),
                (true, false) => Err(format!(
                    "the log does not say {text:?}:\n{}",
                    logs_since(coord, marks)
                )),
            }
        }
        (_, Expect::Reply(..)) => Err("only a request gets a reply".to_string()),
    };
    if let Err(e) = outcome {
        return Some(format!("row {k} ({}): {e}", r.name));
    }
    for (w, was) in r.watch.iter().zip(before) {
        let now = read(client, *w).await;
        if now != was {
            return Some(format!(
                "row {k} ({}): {w:?} changed:\nbefore {was}\nafter  {now}",
                r.name
            ));
        }
    }
    None
}

/// A coordinator with genuine state to protect: a quiet host holding a
/// lease, a host with a snapshot and agent telemetry, a region with a
/// build and a worker with a run. Returns the lease's id and token.
async fn setup(
    infra: &Infra,
    client: &async_nats::Client,
    coord: &Coordinator,
) -> (Feeder, String, String) {
    let feeder = Feeder::start(client.clone(), Duration::from_millis(200));
    feeder.set(LEASE_HOST, Load::idle(8));
    wait_state(client, LEASE_HOST, QuietState::Quiet).await;
    // The lease book learns of the host a views flush after the fleet.
    let r = wait_for(Duration::from_secs(15), || async {
        let body = json!({"addon_id": "tbl-addon", "job_type": "table", "host_id": LEASE_HOST,
            "cost_units": 5});
        call::<_, HeavyLeaseResponse>(client, ep::LEASE_REQUEST, &body)
            .await
            .ok()
            .filter(|r| r.approved)
    })
    .await
    .expect("the lease was never granted");

    let now = now_unix();
    let mut s = example_snapshot(HOST, 10, now);
    s.host.boot_time = now - BOOT_AGO;
    publish_snapshot(client, &s).await;
    // Telemetry of a host the fleet does not know yet is not kept.
    let known = wait_until(Duration::from_secs(10), || async {
        read(client, Watch::Host(HOST)).await["seq"] == 10
    })
    .await;
    assert!(known.is_ok(), "{HOST} never showed:\n{}", coord.svc.logs());
    publish_raw(
        client,
        format!("lull.agent.{HOST}.health"),
        serde_json::to_vec(&health()).unwrap(),
    )
    .await;
    report_build(client, &example_build(REGION, "tbl-b1", now - 120.0, true)).await;
    report_run(
        client,
        &example_report("tbl-x1", WORKER, now - 120.0, 1000.0),
    )
    .await;
    wait_reports(coord, "build", "accepted", 1.0).await;
    wait_reports(coord, "worker", "accepted", 1.0).await;
    let ok = wait_until(Duration::from_secs(10), || async {
        let v = read(client, Watch::Agent(HOST)).await;
        v["health"].is_object() && read(client, Watch::Host(HOST)).await["seq"] == 10
    })
    .await;
    assert!(
        ok.is_ok(),
        "the genuine state never showed:\n{}",
        coord.svc.logs()
    );
    let _ = infra;
    (feeder, r.lease_id.unwrap(), r.token.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_rejected_and_changes_nothing() {
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(
        &infra,
        &[
            ("LULL_INGEST__VIEWS_FLUSH_SEC", "0.1"),
            ("LULL_QUIET__CPU_WINDOW_SEC", "1.5"),
            ("LULL_LEASE__HEARTBEAT_TTL_SEC", "3600"),
            ("LULL_LEASE__GRACE_PERIOD_SEC", "0"),
            ("LULL_LEASE__RATE_PER_SEC", "100"),
            ("LULL_LEASE__BURST", "100"),
        ],
    )
    .await;
    let client = infra.nats.connect().await.unwrap();
    let (_feeder, lease_id, token) = setup(&infra, &client, &coord).await;

    let campaign = regions_stats(&client).await;
    let table = rows(now_unix(), &lease_id, &token, &campaign);
    let n = table.len();
    assert!(n >= 40, "the table has {n} rows");
    let mut failures = Vec::new();
    for (k, r) in table.into_iter().enumerate() {
        if let Some(f) = check(&client, &coord, k, r).await {
            failures.push(f);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} rows failed:\n{}\n\n{}",
        failures.len(),
        failures.join("\n"),
        coord.svc.logs()
    );

    // The coordinator is still whole: it never panicked, still answers,
    // and a genuine newer snapshot, written the way a Python agent writes
    // integers (`86400.0`), is taken.
    assert!(
        !coord.svc.logs().contains("panicked"),
        "{}",
        coord.svc.logs()
    );
    let now = now_unix();
    let mut v = serde_json::to_value(example_snapshot(HOST, 12, now)).unwrap();
    v["host"]["boot_time"] = json!(now - BOOT_AGO);
    v["host"]["uptime_sec"] = json!(86400.0);
    v["seq"] = json!(12.0);
    publish_raw(
        &client,
        Subjects::default().stats(HOST),
        serde_json::to_vec(&v).unwrap(),
    )
    .await;
    let ok = wait_until(Duration::from_secs(10), || async {
        let s = read(&client, Watch::Host(HOST)).await;
        s["seq"] == 12 && s["host"]["uptime_sec"] == 86400
    })
    .await;
    assert!(ok.is_ok(), "{}", coord.svc.logs());
}

/// Issue #16, defect 9: a conflicting duplicate (the `build_id` or
/// `execution_id` of a stored report, with other content, under another
/// `Nats-Msg-Id` so that JetStream does not drop it) changes nothing and
/// is counted as `conflict`, not `accepted`, and its id is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_duplicate_report_changes_nothing() {
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(&infra, &[]).await;
    let client = infra.nats.connect().await.unwrap();
    let now = now_unix();
    report_build(&client, &example_build(REGION, "dup-b1", now - 120.0, true)).await;
    report_run(
        &client,
        &example_report("dup-x1", WORKER, now - 120.0, 1000.0),
    )
    .await;
    wait_reports(&coord, "build", "accepted", 1.0).await;
    wait_reports(&coord, "worker", "accepted", 1.0).await;
    let regions = read(&client, Watch::Regions).await;
    let runs = read(&client, Watch::Worker(WORKER)).await;

    let mut b = example_build(REGION, "dup-b1", now - 100.0, false);
    b.error = Some("a different outcome".into());
    let body = serde_json::to_vec(&b).unwrap();
    publish_report(
        &client,
        Subjects::default().report_build(REGION),
        "dup-b1-again",
        body,
    )
    .await;
    let r = example_report("dup-x1", WORKER, now - 100.0, 99_000.0);
    let body = serde_json::to_vec(&r).unwrap();
    publish_report(
        &client,
        Subjects::default().report_worker(WORKER),
        "dup-x1-again",
        body,
    )
    .await;
    wait_reports(&coord, "build", "conflict", 1.0).await;
    wait_reports(&coord, "worker", "conflict", 1.0).await;
    assert_eq!(reports_count(&coord, "build", "accepted").await, 1.0);
    assert_eq!(read(&client, Watch::Regions).await, regions);
    assert_eq!(read(&client, Watch::Worker(WORKER)).await, runs);
    let logs = coord.svc.logs();
    assert!(logs.contains("dup-b1") && logs.contains("dup-x1"), "{logs}");
}
