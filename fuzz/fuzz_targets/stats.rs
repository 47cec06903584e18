//! `lull.stats.<host>`: a stats snapshot through the coordinator's ingest
//! check (size, JSON, rules, subject host, clock window). It must decode or
//! be rejected with a labelled `Rejection`, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lull_coordinator::ingest::stats::classify;
use lull_proto::validate::TimeWindow;
use lull_proto::Subjects;

const NOW: f64 = 1_763_026_500.0;

fuzz_target!(|data: &[u8]| {
    let window = TimeWindow::symmetric(300.0);
    if let Err(r) = classify(&Subjects::default(), "lull.stats.h1", data, 256 * 1024, NOW, &window) {
        assert!(!r.label().is_empty() && !r.to_string().is_empty());
    }
});
