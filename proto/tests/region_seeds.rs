//! The region wire types against the JSON examples of seeds 000 and 001, as
//! they stand, plus round trips, the legacy migration and every validation rule.

use lull_proto::msg::region::*;
use lull_proto::validate::{decode, Validate, DEFAULT_MAX_PAYLOAD};
use lull_proto::ValidationError;
use serde_json::{json, Value};

const SEED000: &str = include_str!("fixtures/seed000.jsonc");
const SEED001: &str = include_str!("fixtures/seed001.json");

/// Removes `//` comments that are outside JSON strings.
fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    for line in src.lines() {
        let (mut in_str, mut escaped, mut cut) = (false, false, line.len());
        let bytes = line.as_bytes();
        for i in 0..bytes.len() {
            let c = bytes[i];
            if in_str {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_str = false,
                    _ => {}
                }
            } else if c == b'"' {
                in_str = true;
            } else if c == b'/' && bytes.get(i + 1) == Some(&b'/') {
                cut = i;
                break;
            }
        }
        out.push_str(&line[..cut]);
        out.push('\n');
    }
    out
}

fn seed000_value() -> Value {
    serde_json::from_str(&strip_comments(SEED000)).unwrap()
}

fn seed001_value() -> Value {
    serde_json::from_str(SEED001).unwrap()
}

fn seed000() -> CampaignStats {
    decode(strip_comments(SEED000).as_bytes(), DEFAULT_MAX_PAYLOAD).unwrap()
}

fn seed001() -> CampaignStats {
    decode(SEED001.as_bytes(), DEFAULT_MAX_PAYLOAD).unwrap()
}

/// A report: seed 000's first build plus its region.
fn build_report() -> Value {
    let mut b = seed000_value()["regions"]["us-west2"]["recent_builds"][0].clone();
    b["region"] = json!("us-west2");
    b
}

fn decode_build(v: &Value) -> Result<BuildRecord, ValidationError> {
    decode(&serde_json::to_vec(v).unwrap(), DEFAULT_MAX_PAYLOAD)
}

fn fatigue_report() -> Value {
    json!({
        "event_id": "beacon-1",
        "region": "asia-northeast1",
        "fatigue_reason": "Pool creation timeout",
        "fatigue_reason_code": "beacon-timeout",
        "fatigue_time": 1763023288.0,
        "fatigue_duration_hours": 4,
        "fatigue_type": "FATIGUED",
        "error_message": "beacon never answered"
    })
}

fn decode_fatigue(v: &Value) -> Result<FatigueEventReport, ValidationError> {
    decode(&serde_json::to_vec(v).unwrap(), DEFAULT_MAX_PAYLOAD)
}

#[test]
fn comment_stripper_keeps_slashes_in_strings() {
    let s = strip_comments("{\"a\": \"http://x\" // note\n}");
    assert_eq!(
        serde_json::from_str::<Value>(&s).unwrap(),
        json!({"a": "http://x"})
    );
}

#[test]
fn seed000_parses_with_every_field() {
    let c = seed000();
    assert_eq!(c.campaign_start, Some(1763026000.0));
    assert_eq!(c.last_updated, Some(1763030000.0));
    assert_eq!(c.total_builds_all_regions, 47);
    let r = &c.regions["us-west2"];
    assert_eq!((r.total_builds, r.successes, r.failures), (45, 42, 3));
    assert_eq!(r.success_rate, 93.3);
    assert_eq!(r.fastest_minutes, Some(8.2));
    assert_eq!(
        r.last_error.as_deref(),
        Some("Docker layer pull timeout (step 45/72)")
    );
    assert_eq!(r.last_fatigue_reason_code.as_deref(), Some("queue-timeout"));
    assert_eq!(r.current_streak, 12);
    assert_eq!(r.recent_builds.len(), 2);

    let b = &r.recent_builds[0];
    assert_eq!(b.build_id, "abc123-xyz789");
    assert!(b.region.is_empty(), "region is implied by the key");
    assert_eq!(b.status.as_deref(), Some("TIMEOUT"));
    assert_eq!(b.duration_seconds, Some(2700.0));
    assert_eq!(b.failed_step, None);
    assert_eq!(b.cost_usd, Some(6.40));
    assert_eq!(b.timeout_reason.as_deref(), Some("QUEUED"));
    assert_eq!(b.fatigues.len(), 1);
    let f = &b.fatigues[0];
    assert_eq!(f.fatigue_type, FatigueType::Fatigued);
    assert_eq!(f.fatigue_duration_hours, Some(4.0));
    assert_eq!(f.fatigue_reason_code.as_deref(), Some("queue-timeout"));

    let b = &r.recent_builds[1];
    assert_eq!((b.failed_step, b.total_steps), (Some(45), Some(72)));
    assert_eq!(b.timeout_reason, None);
    assert!(b.fatigues.is_empty());
    assert_eq!(b.duration_minutes_value(), 30.0);
    assert_eq!(b.queue_wait_minutes_value(), 5.0);
}

#[test]
fn seed000_round_trips_to_the_same_json() {
    let emitted = serde_json::to_value(seed000()).unwrap();
    assert_eq!(emitted, seed000_value());
}

#[test]
fn seed001_parses_and_fills_the_new_fields() {
    let c = seed001();
    assert_eq!(c.total_builds_all_regions, 47);
    let a = &c.regions["asia-northeast1"];
    assert_eq!(a.current_streak, -2);
    assert_eq!(a.success_rate, 0.0);
    assert_eq!(
        a.last_fatigue_reason.as_deref(),
        Some("Worker pool timeout")
    );
    assert_eq!(a.last_fatigue_reason_code, None);
    assert!(a.recent_builds.is_empty());
    assert_eq!(c.regions["us-west2"].last_fatigue_time, Some(1763026500.0));
}

/// Every field of `original` is in `emitted` with the same value.
fn assert_superset(original: &Value, emitted: &Value, path: &str) {
    match (original, emitted) {
        (Value::Object(o), Value::Object(e)) => {
            for (k, v) in o {
                let sub = e.get(k).unwrap_or_else(|| panic!("{path}.{k} missing"));
                assert_superset(v, sub, &format!("{path}.{k}"));
            }
        }
        _ => assert_eq!(original, emitted, "at {path}"),
    }
}

#[test]
fn seed001_round_trips() {
    let c = seed001();
    let emitted = serde_json::to_value(&c).unwrap();
    assert_superset(&seed001_value(), &emitted, "");
    let r = &emitted["regions"]["asia-northeast1"];
    assert_eq!(r["last_fatigue_reason_code"], Value::Null);
    assert_eq!(r["recent_builds"], json!([]));
    let back: CampaignStats = serde_json::from_value(emitted).unwrap();
    assert_eq!(back, c);
}

#[test]
fn legacy_region_fatigue_fields_are_migrated() {
    let mut legacy = seed001_value();
    for r in legacy["regions"].as_object_mut().unwrap().values_mut() {
        let r = r.as_object_mut().unwrap();
        let reason = r.remove("last_fatigue_reason").unwrap();
        let time = r.remove("last_fatigue_time").unwrap();
        r.insert("fatigue_reason".into(), reason);
        r.insert("fatigue_time".into(), time);
    }
    let migrated: CampaignStats = decode(&serde_json::to_vec(&legacy).unwrap(), 1 << 20).unwrap();
    assert_eq!(migrated, seed001());
    let us = &migrated.regions["us-west2"];
    assert_eq!(
        us.last_fatigue_reason.as_deref(),
        Some("Queue timeout - 45min QUEUED")
    );
    assert_eq!(us.last_fatigue_reason_code, None);
    assert_eq!(us.last_fatigue_time, Some(1763026500.0));

    let out = serde_json::to_value(&migrated).unwrap();
    let region = out["regions"]["us-west2"].as_object().unwrap();
    assert!(!region.contains_key("fatigue_reason"));
    assert!(!region.contains_key("fatigue_time"));
    assert!(region.contains_key("last_fatigue_reason_code"));
}

#[test]
fn legacy_code_is_kept_and_new_names_win() {
    let v = json!({
        "total_builds": 1, "successes": 0, "failures": 1,
        "fatigue_reason": "old", "fatigue_reason_code": "old-code", "fatigue_time": 5.0
    });
    let r: RegionStats = serde_json::from_value(v).unwrap();
    assert_eq!(r.last_fatigue_reason_code.as_deref(), Some("old-code"));
    let v = json!({
        "total_builds": 0, "successes": 0, "failures": 0,
        "fatigue_reason": "old", "fatigue_time": 5.0,
        "last_fatigue_reason": "new", "last_fatigue_time": 9.0
    });
    let r: RegionStats = serde_json::from_value(v).unwrap();
    assert_eq!(r.last_fatigue_reason.as_deref(), Some("new"));
    assert_eq!(r.last_fatigue_time, Some(9.0));
}

#[test]
fn build_report_decodes_and_round_trips() {
    let b = decode_build(&build_report()).unwrap();
    assert_eq!(b.region, "us-west2");
    assert_eq!(b.effective_cost_usd(), Some(6.40));
    let again = serde_json::to_value(&b).unwrap();
    assert_eq!(again, build_report());
}

#[test]
fn build_report_optional_fields_are_lenient() {
    let v = json!({
        "timestamp": 10.0, "build_id": "b1", "region": "us-west2",
        "success": true, "duration_seconds": 600, "spot_price_per_hour": 6.0,
        "future_field": {"x": 1}
    });
    let b = decode_build(&v).unwrap();
    assert!(b.fatigues.is_empty());
    assert_eq!(b.duration_minutes_value(), 10.0);
    assert_eq!(b.queue_wait_minutes_value(), 0.0);
    assert_eq!(b.effective_cost_usd(), Some(1.0));
    let out = serde_json::to_value(&b).unwrap();
    assert_eq!(out["fatigues"], json!([]));
    assert_eq!(out["duration_seconds"], json!(600));
    assert_eq!(out["failed_step"], Value::Null);
}

fn assert_build_rejected(edit: impl FnOnce(&mut Value), expect: &str) {
    let mut v = build_report();
    edit(&mut v);
    let err = decode_build(&v).unwrap_err().to_string();
    assert!(err.contains(expect), "expected {expect:?} in {err:?}");
}

#[test]
fn build_report_rules() {
    assert_build_rejected(|v| v["region"] = json!(""), "region is required");
    assert_build_rejected(
        |v| {
            v.as_object_mut().unwrap().remove("region");
        },
        "region",
    );
    assert_build_rejected(|v| v["region"] = json!("us.west2"), "region must use only");
    assert_build_rejected(|v| v["build_id"] = json!(" "), "build_id is required");
    assert_build_rejected(
        |v| {
            v.as_object_mut().unwrap().remove("success");
        },
        "success",
    );
    assert_build_rejected(|v| v["timestamp"] = json!(-1.0), "timestamp must be >= 0");
    assert_build_rejected(|v| v["duration_seconds"] = json!(-5), "duration_seconds");
    assert_build_rejected(
        |v| v["queue_wait_minutes"] = json!(-0.5),
        "queue_wait_minutes",
    );
    assert_build_rejected(|v| v["working_seconds"] = json!(1e12), "working_seconds");
    assert_build_rejected(|v| v["total_steps"] = json!(-1), "invalid JSON");
    assert_build_rejected(
        |v| v["failed_step"] = json!(73),
        "failed_step must not exceed",
    );
    assert_build_rejected(|v| v["cost_usd"] = json!(-1), "cost_usd");
    assert_build_rejected(
        |v| v["spot_price_per_hour"] = json!(-8.53),
        "spot_price_per_hour",
    );
    assert_build_rejected(|v| v["success"] = json!("yes"), "invalid JSON");
    assert_build_rejected(
        |v| v["error"] = json!("e".repeat(5000)),
        "error must be at most",
    );
    assert_build_rejected(
        |v| {
            let o = v.as_object_mut().unwrap();
            o.remove("duration_seconds");
            o.remove("duration_minutes");
        },
        "duration_minutes or duration_seconds is required",
    );
    assert_build_rejected(
        |v| v["fatigues"][0]["fatigue_reason"] = json!(""),
        "fatigues[0].fatigue_reason is required",
    );
    assert_build_rejected(
        |v| v["fatigues"][0]["fatigue_duration_hours"] = json!(0),
        "fatigues[0].fatigue_duration_hours must be > 0",
    );
    assert_build_rejected(
        |v| v["fatigues"][0]["fatigue_time"] = json!(-3),
        "fatigues[0].fatigue_time",
    );
    assert_build_rejected(
        |v| v["fatigues"][0]["fatigue_type"] = json!("fatigued"),
        "invalid JSON",
    );
    assert_build_rejected(
        |v| v["fatigues"] = json!(vec![v["fatigues"][0].clone(); MAX_FATIGUES_PER_BUILD + 1]),
        "fatigues must have at most",
    );
}

#[test]
fn non_finite_numbers_are_rejected() {
    let mut b = decode_build(&build_report()).unwrap();
    b.timestamp = f64::NAN;
    assert!(matches!(
        b.validate(),
        Err(ValidationError::NotFinite { .. })
    ));
    let mut b = decode_build(&build_report()).unwrap();
    b.cost_usd = Some(f64::INFINITY);
    assert!(matches!(
        b.validate(),
        Err(ValidationError::NotFinite { .. })
    ));
    let mut b = decode_build(&build_report()).unwrap();
    b.fatigues[0].fatigue_duration_hours = Some(f64::NAN);
    assert!(b.validate().is_err());
    let mut e = decode_fatigue(&fatigue_report()).unwrap();
    e.fatigue_time = f64::NEG_INFINITY;
    assert!(e.validate().is_err());
}

#[test]
fn oversized_build_report_is_rejected() {
    let bytes = serde_json::to_vec(&build_report()).unwrap();
    assert!(matches!(
        decode::<BuildRecord>(&bytes, 100),
        Err(ValidationError::TooLarge { .. })
    ));
}

#[test]
fn fatigue_report_decodes_and_defaults() {
    let e = decode_fatigue(&fatigue_report()).unwrap();
    assert_eq!(
        e.as_fatigue().fatigue_reason_code.as_deref(),
        Some("beacon-timeout")
    );
    assert_eq!(serde_json::to_value(&e).unwrap(), fatigue_report());

    let minimal =
        json!({"event_id": "e", "region": "r", "fatigue_reason": "x", "fatigue_time": 1.0});
    let e = decode_fatigue(&minimal).unwrap();
    assert_eq!(e.fatigue_type, FatigueType::Fatigued);
    assert_eq!(e.fatigue_duration_hours, None);
    assert_eq!(e.error_message, None);
}

#[test]
fn fatigue_report_rules() {
    let cases: [(&str, Value, &str); 6] = [
        ("event_id", json!(""), "event_id is required"),
        ("region", json!("a b"), "region must use only"),
        ("fatigue_reason", json!(" "), "fatigue_reason is required"),
        ("fatigue_time", json!(-1), "fatigue_time must be >= 0"),
        (
            "fatigue_duration_hours",
            json!(9000),
            "fatigue_duration_hours must be",
        ),
        ("fatigue_type", json!("TIRED"), "invalid JSON"),
    ];
    for (field, value, expect) in cases {
        let mut v = fatigue_report();
        v[field] = value;
        let err = decode_fatigue(&v).unwrap_err().to_string();
        assert!(
            err.contains(expect),
            "{field}: expected {expect:?} in {err:?}"
        );
    }
    let mut v = fatigue_report();
    v.as_object_mut().unwrap().remove("fatigue_time");
    assert!(decode_fatigue(&v).is_err());
}

fn assert_campaign_rejected(edit: impl FnOnce(&mut Value), expect: &str) {
    let mut v = seed000_value();
    edit(&mut v);
    let err = decode::<CampaignStats>(&serde_json::to_vec(&v).unwrap(), 1 << 20)
        .unwrap_err()
        .to_string();
    assert!(err.contains(expect), "expected {expect:?} in {err:?}");
}

#[test]
fn campaign_rules() {
    assert_campaign_rejected(
        |v| v["regions"]["us-west2"]["successes"] = json!(40),
        "must equal successes + failures",
    );
    assert_campaign_rejected(
        |v| v["regions"]["us-west2"]["failures"] = json!(-3),
        "invalid JSON",
    );
    assert_campaign_rejected(
        |v| v["regions"]["us-west2"]["current_streak"] = json!(-46),
        "current_streak must not exceed",
    );
    assert_campaign_rejected(
        |v| v["regions"]["us-west2"]["success_rate"] = json!(120.5),
        "regions.us-west2.success_rate must be 0..100",
    );
    assert_campaign_rejected(
        |v| v["regions"]["us-west2"]["fastest_minutes"] = json!(20.0),
        "fastest_minutes must not exceed slowest_minutes",
    );
    assert_campaign_rejected(
        |v| v["regions"]["us-west2"]["avg_duration_minutes"] = json!(-1.0),
        "avg_duration_minutes must be >= 0",
    );
    assert_campaign_rejected(
        |v| v["regions"]["us-west2"]["recent_builds"][1]["region"] = json!("europe-west1"),
        "recent_builds[1].region must be",
    );
    assert_campaign_rejected(
        |v| v["regions"]["us-west2"]["recent_builds"][0]["cost_usd"] = json!(-1),
        "regions.us-west2.recent_builds[0].cost_usd",
    );
    assert_campaign_rejected(
        |v| {
            let r = v["regions"]["us-west2"].clone();
            v["regions"]["bad region"] = r;
        },
        "regions key must use only",
    );
    assert_campaign_rejected(|v| v["campaign_start"] = json!(-1.0), "campaign_start");
}

#[test]
fn select_request_rules() {
    let ok: RegionSelectRequest = decode(
        br#"{"candidates":["us-west2","asia-northeast1"],"weights":{"price":1,"success":2}}"#,
        1024,
    )
    .unwrap();
    assert_eq!(ok.weights.unwrap().speed, 0.0);
    assert!(decode::<RegionSelectRequest>(b"{}", 1024).is_ok());
    let bad = [
        r#"{"weights":{"price":0,"success":0,"speed":0}}"#,
        r#"{"weights":{"price":-1,"success":2}}"#,
        r#"{"candidates":["a.b"]}"#,
        r#"{"candidates":"us-west2"}"#,
    ];
    for b in bad {
        assert!(
            decode::<RegionSelectRequest>(b.as_bytes(), 1024).is_err(),
            "{b}"
        );
    }
}

#[test]
fn insights_request_rules() {
    assert!(decode::<RegionInsightsRequest>(b"{}", 1024).is_ok());
    assert!(decode::<RegionInsightsRequest>(br#"{"fatigue_window_hours":168}"#, 1024).is_ok());
    assert!(decode::<RegionInsightsRequest>(br#"{"fatigue_window_hours":-1}"#, 1024).is_err());
}

#[test]
fn enums_use_uppercase_wire_names() {
    assert_eq!(
        serde_json::to_value(RegionState::Outlawed).unwrap(),
        json!("OUTLAWED")
    );
    assert_eq!(
        serde_json::to_value(ExclusionCode::Fatigued).unwrap(),
        json!("FATIGUED")
    );
    assert_eq!(
        serde_json::to_value(BadgeKind::SpeedKing).unwrap(),
        json!("SPEED_KING")
    );
    assert_eq!(
        serde_json::to_value(Trend::Improving).unwrap(),
        json!("IMPROVING")
    );
    assert_eq!(FatigueType::Exhausted.as_str(), "EXHAUSTED");
    assert_eq!(BadgeKind::CostLeader.title(), "Cost Leader");
}
