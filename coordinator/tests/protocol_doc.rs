//! Every JSON example in docs/protocol.md decodes with the project's own
//! types, so the examples cannot drift from the code (issue #15 item 13).
//!
//! An example is a fenced `json` block right after a marker line
//! `<!-- example: TypeName -->`. A message that Lull receives is decoded
//! and validated as the coordinator does (`lull_proto::decode`). A reply is
//! decoded into its type, and its re-encoding must keep every field of the
//! example, so a misspelt field name cannot hide among the ignored unknown
//! fields. Every type below must have an example, and every marker must
//! name a type below.

use std::collections::BTreeMap;

use lull_coordinator::builds::{
    ImportPart, ImportPartReply, RegionPardonReply, RegionPardonRequest, RegionStatsRequest,
};
use lull_engine::quiet::forecast::{ForecastReply, ForecastRequest};
use lull_engine::quiet::health::HealthReply;
use lull_engine::quiet::history::{HistoryReply, HistoryRequest};
use lull_engine::quiet::streaks::{ClosedStreak, StreaksRequest};
use lull_engine::region::campaign_json::ImportReport;
use lull_proto::msg::hosts::{
    BlockReply, BlockRequest, HostDetail, HostGetRequest, HostSummary, UnblockRequest,
};
use lull_proto::msg::leader::LeaderReply;
use lull_proto::msg::lease::{
    CancelRequest, HeartbeatResponse, HeavyLeaseRequest, HeavyLeaseResponse, LeaseEvent,
    LeaseHandle, OkResponse, ProgressReport, ReleaseRequest, RevokeRequest, SchedulerStatus,
};
use lull_proto::msg::region::{
    BuildRecord, CampaignStats, FatigueEventReport, RegionInsights, RegionInsightsRequest,
    RegionSelectReply, RegionSelectRequest,
};
use lull_proto::msg::stats::SystemStatsSnapshot;
use lull_proto::msg::telemetry::{LoopFailure, LoopHealth};
use lull_proto::msg::worker::{
    DataQualitySummaryReply, SystemLearningReply, WorkerExecutionReport, WorkerExecutionsReply,
    WorkerExecutionsRequest, WorkerLearningReply, WorkerRequest, WorkerStatsReply,
};
use lull_proto::validate::{decode, Validate};
use lull_proto::ErrorReply;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

type Check = fn(&str) -> Result<(), String>;

/// A message Lull receives: decoded and validated.
fn inbound<T: DeserializeOwned + Validate>(text: &str) -> Result<(), String> {
    decode::<T>(text.as_bytes(), 1 << 20)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A reply: decoded, and re-encoded without losing a field of the example.
fn reply<T: DeserializeOwned + Serialize>(text: &str) -> Result<(), String> {
    let t: T = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let example: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&t).map_err(|e| e.to_string())?;
    match lost_field(&example, &back, "") {
        Some(path) => Err(format!("field {path} is not part of the type")),
        None => Ok(()),
    }
}

/// The path of a key of `example` that `back` lacks.
fn lost_field(example: &Value, back: &Value, at: &str) -> Option<String> {
    match (example, back) {
        (Value::Object(e), Value::Object(b)) => e.iter().find_map(|(k, v)| match b.get(k) {
            None if !v.is_null() => Some(format!("{at}.{k}")),
            None => None,
            Some(bv) => lost_field(v, bv, &format!("{at}.{k}")),
        }),
        (Value::Array(e), Value::Array(b)) => e
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (v, bv))| lost_field(v, bv, &format!("{at}[{i}]"))),
        _ => None,
    }
}

/// Every message type of the protocol with its check.
fn types() -> BTreeMap<&'static str, Check> {
    let mut m: BTreeMap<&'static str, Check> = BTreeMap::new();
    // Published to Lull.
    m.insert("SystemStatsSnapshot", inbound::<SystemStatsSnapshot>);
    m.insert("LoopHealth", inbound::<LoopHealth>);
    m.insert("LoopFailure", inbound::<LoopFailure>);
    m.insert("BuildRecord", inbound::<BuildRecord>);
    m.insert("FatigueEventReport", inbound::<FatigueEventReport>);
    m.insert("WorkerExecutionReport", inbound::<WorkerExecutionReport>);
    // Requests.
    m.insert("HeavyLeaseRequest", inbound::<HeavyLeaseRequest>);
    m.insert("LeaseHandle", inbound::<LeaseHandle>);
    m.insert("ReleaseRequest", inbound::<ReleaseRequest>);
    m.insert("ProgressReport", inbound::<ProgressReport>);
    m.insert("RevokeRequest", inbound::<RevokeRequest>);
    m.insert("CancelRequest", inbound::<CancelRequest>);
    m.insert("HostGetRequest", inbound::<HostGetRequest>);
    m.insert("PageRequest", inbound::<lull_proto::msg::page::PageRequest>);
    m.insert("BlockRequest", inbound::<BlockRequest>);
    m.insert("UnblockRequest", inbound::<UnblockRequest>);
    m.insert("HistoryRequest", inbound::<HistoryRequest>);
    m.insert("StreaksRequest", inbound::<StreaksRequest>);
    m.insert("ForecastRequest", inbound::<ForecastRequest>);
    m.insert("RegionStatsRequest", inbound::<RegionStatsRequest>);
    m.insert("RegionSelectRequest", inbound::<RegionSelectRequest>);
    m.insert("RegionInsightsRequest", inbound::<RegionInsightsRequest>);
    m.insert("RegionPardonRequest", inbound::<RegionPardonRequest>);
    m.insert("ImportPart", inbound::<ImportPart>);
    m.insert("CampaignStats", inbound::<CampaignStats>);
    m.insert(
        "WorkerExecutionsRequest",
        inbound::<WorkerExecutionsRequest>,
    );
    m.insert("WorkerRequest", inbound::<WorkerRequest>);
    m.insert(
        "DecisionsRequest",
        inbound::<lull_proto::msg::decisions::DecisionsRequest>,
    );
    m.insert(
        "ForgetRequest",
        inbound::<lull_proto::msg::hosts::ForgetRequest>,
    );
    // Replies and events.
    m.insert("ErrorReply", reply::<ErrorReply>);
    m.insert("HeavyLeaseResponse", reply::<HeavyLeaseResponse>);
    m.insert("HeartbeatResponse", reply::<HeartbeatResponse>);
    m.insert("OkResponse", reply::<OkResponse>);
    m.insert("LeaseEvent", reply::<LeaseEvent>);
    m.insert("SchedulerStatus", reply::<SchedulerStatus>);
    m.insert("HostSummaryList", reply::<Vec<HostSummary>>);
    m.insert("HostPage", reply::<lull_proto::msg::page::HostPage>);
    m.insert("HostDetail", reply::<HostDetail>);
    m.insert("BlockReply", reply::<BlockReply>);
    m.insert("HistoryReply", reply::<HistoryReply>);
    m.insert("HealthReply", reply::<HealthReply>);
    m.insert("ClosedStreakList", reply::<Vec<ClosedStreak>>);
    m.insert(
        "StreaksPage",
        reply::<lull_engine::quiet::streaks::StreaksPage>,
    );
    m.insert("ForecastReply", reply::<ForecastReply>);
    m.insert("LeaderReply", reply::<LeaderReply>);
    m.insert("RegionSelectReply", reply::<RegionSelectReply>);
    m.insert("RegionInsights", reply::<RegionInsights>);
    m.insert("RegionPardonReply", reply::<RegionPardonReply>);
    m.insert("ImportPartReply", reply::<ImportPartReply>);
    m.insert("ImportReport", reply::<ImportReport>);
    m.insert("WorkerExecutionsReply", reply::<WorkerExecutionsReply>);
    m.insert("WorkerStatsReply", reply::<WorkerStatsReply>);
    m.insert("WorkerLearningReply", reply::<WorkerLearningReply>);
    m.insert("SystemLearningReply", reply::<SystemLearningReply>);
    m.insert("DataQualitySummaryReply", reply::<DataQualitySummaryReply>);
    m.insert(
        "DecisionsReply",
        reply::<lull_proto::msg::decisions::DecisionsReply>,
    );
    m.insert("ForgetReply", reply::<lull_proto::msg::hosts::ForgetReply>);
    m.insert(
        "RejectedSenders",
        reply::<lull_proto::msg::hosts::RejectedSenders>,
    );
    m
}

/// `(line, type name, JSON text)` of every marked example.
fn examples(doc: &str) -> Vec<(usize, String, String)> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(name) = l
            .trim()
            .strip_prefix("<!-- example:")
            .and_then(|r| r.strip_suffix("-->"))
        else {
            continue;
        };
        assert_eq!(
            lines.get(i + 1).map(|l| l.trim()),
            Some("```json"),
            "docs/protocol.md:{}: the marker must be followed by a ```json block",
            i + 1
        );
        let body: Vec<&str> = lines[i + 2..]
            .iter()
            .take_while(|l| l.trim() != "```")
            .copied()
            .collect();
        out.push((i + 1, name.trim().to_string(), body.join("\n")));
    }
    out
}

#[test]
fn every_example_in_protocol_md_decodes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    let doc = std::fs::read_to_string(path).expect("docs/protocol.md");
    let types = types();
    let found = examples(&doc);
    let mut failures = Vec::new();
    for (line, name, text) in &found {
        match types.get(name.as_str()) {
            None => failures.push(format!("line {line}: unknown type {name}")),
            Some(check) => {
                if let Err(e) = check(text) {
                    failures.push(format!("line {line}: {name}: {e}"));
                }
            }
        }
    }
    for name in types.keys() {
        if !found.iter().any(|(_, n, _)| n == name) {
            failures.push(format!("no example of {name}"));
        }
    }
    // Every fenced JSON block is an example.
    let blocks = doc.lines().filter(|l| l.trim() == "```json").count();
    if blocks != found.len() {
        failures.push(format!(
            "{blocks} json blocks but {} marked examples",
            found.len()
        ));
    }
    assert!(
        failures.is_empty(),
        "docs/protocol.md:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_drifted_example_is_caught() {
    let types = types();
    let check = types["BuildRecord"];
    let good = r#"{"timestamp": 1764755400.0, "build_id": "b1", "region": "r",
        "success": true, "duration_minutes": 5.0}"#;
    assert!(check(good).is_ok());
    let iso = good.replace("1764755400.0", "\"2026-12-03T10:00:00Z\"");
    assert!(check(&iso).unwrap_err().contains("expected f64"));
    let check = types["OkResponse"];
    assert!(check(r#"{"ok": true}"#).is_ok());
    let e = check(r#"{"ok": true, "resaon": "typo"}"#).unwrap_err();
    assert!(e.contains(".resaon"), "{e}");
    let marked = "<!-- example: OkResponse -->\n```json\n{\"ok\": true}\n```\n";
    assert_eq!(examples(marked)[0].1, "OkResponse");
}
