//! `lull.agent.<host>.health` and `.failure`: loop telemetry through the
//! coordinator's ingest check. The first byte picks the subject.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lull_coordinator::ingest::agent_health::classify;
use lull_proto::Subjects;

fuzz_target!(|data: &[u8]| {
    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    let subject = if which % 2 == 0 {
        "lull.agent.h1.health"
    } else {
        "lull.agent.h1.failure"
    };
    if let Err(r) = classify(&Subjects::default(), subject, payload, 256 * 1024) {
        assert!(!r.label().is_empty() && !r.to_string().is_empty());
    }
});
