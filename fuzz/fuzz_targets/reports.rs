//! Durable reports (`lull.report.build|fatigue|worker.<key>`) through the
//! coordinator's check (JSON, rules, subject key, time window). The first
//! byte picks the kind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lull_coordinator::ingest::reports::classify;
use lull_proto::validate::TimeWindow;
use lull_proto::Subjects;

const NOW: f64 = 1_763_026_500.0;
const SUBJECTS: [&str; 3] = [
    "lull.report.build.us-west2",
    "lull.report.fatigue.us-west2",
    "lull.report.worker.sse_guardian",
];

fuzz_target!(|data: &[u8]| {
    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    let window = TimeWindow {
        future_skew_sec: 300.0,
        max_age_sec: Some(400.0 * 86_400.0),
    };
    let subject = SUBJECTS[usize::from(which) % SUBJECTS.len()];
    if let Err(r) = classify(&Subjects::default(), subject, payload, 256 * 1024, NOW, &window) {
        assert!(!r.label().is_empty() && !r.to_string().is_empty());
    }
});
