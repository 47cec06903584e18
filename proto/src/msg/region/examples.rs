//! Small valid region records for tests and examples.

use super::report::{BuildFatigue, BuildRecord, FatigueEventReport, FatigueType};

/// A small valid build record (10 minutes, 1 minute queued, $6/h), for
/// tests and examples. A failed one carries `error of <id>`.
pub fn example_build(region: &str, id: &str, t: f64, ok: bool) -> BuildRecord {
    BuildRecord {
        timestamp: t,
        build_id: id.into(),
        region: region.into(),
        build_type: Some("pytorch-clean".into()),
        machine_type: Some("c3-standard-176".into()),
        success: ok,
        status: Some(if ok { "SUCCESS" } else { "FAILURE" }.into()),
        duration_seconds: Some(600.0),
        duration_minutes: Some(10.0),
        queue_wait_seconds: Some(60.0),
        queue_wait_minutes: Some(1.0),
        working_seconds: Some(540.0),
        total_steps: Some(72),
        failed_step: None,
        spot_price_per_hour: Some(6.0),
        cost_usd: None,
        error: (!ok).then(|| format!("error of {id}")),
        timeout_reason: None,
        fatigues: vec![],
    }
}

/// A 4-hour `FATIGUED` build fatigue, for tests and examples.
pub fn example_build_fatigue(t: f64, reason: &str, code: &str) -> BuildFatigue {
    BuildFatigue {
        fatigue_reason: reason.into(),
        fatigue_reason_code: Some(code.into()),
        fatigue_time: t,
        fatigue_duration_hours: Some(4.0),
        fatigue_type: FatigueType::Fatigued,
    }
}

/// A fatigue event with no build (a pool-creation timeout), for tests and
/// examples.
pub fn example_fatigue_event(region: &str, id: &str, t: f64) -> FatigueEventReport {
    FatigueEventReport {
        event_id: id.into(),
        region: region.into(),
        fatigue_reason: "Pool creation timeout".into(),
        fatigue_reason_code: Some("beacon-timeout".into()),
        fatigue_time: t,
        fatigue_duration_hours: None,
        fatigue_type: FatigueType::Fatigued,
        error_message: Some("beacon never answered".into()),
    }
}
