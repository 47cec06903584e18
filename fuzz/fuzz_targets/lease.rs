//! The lease operations (`lease.request|heartbeat|release|report|revoke|
//! cancel`, `scheduler.status`) applied by the scheduler's `handle` to a
//! book with one quiet host and one granted lease. The first byte picks
//! the operation. A rejected operation has no effect and leaves the book's
//! status as it was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lull_coordinator::scheduler::endpoints::{handle, LeaseOp};
use lull_engine::lease::{Book, HostView, LeaseConfig, LeaseKey};
use lull_proto::msg::hosts::QuietState;

const NOW: f64 = 1_763_026_500.0;
const MAX: usize = 256 * 1024;

fn book() -> Book {
    let key = LeaseKey::from_bytes(vec![7u8; 32]).expect("key");
    let mut b = Book::new(LeaseConfig::default(), key, "f", NOW);
    b.skip_grace();
    b.on_hosts_changed(vec![HostView::new("h1", QuietState::Quiet, 90.0, 8, NOW)], NOW);
    let req = br#"{"addon_id":"indexer","job_type":"reindex","host_id":"h1","cost_units":5}"#;
    let _ = handle(&mut b, LeaseOp::Request, req, MAX, NOW);
    b
}

fn status(b: &mut Book) -> Vec<u8> {
    handle(b, LeaseOp::Status, b"", MAX, NOW).reply.expect("status").to_vec()
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    let op = LeaseOp::ALL[usize::from(which) % LeaseOp::ALL.len()];
    let mut b = book();
    let before = status(&mut b);
    let h = handle(&mut b, op, payload, MAX, NOW + 1.0);
    if let Err(e) = &h.reply {
        assert!(!e.error.message.is_empty());
        assert!(h.effects.is_empty());
        assert_eq!(status(&mut b), before);
    }
});
