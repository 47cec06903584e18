//! Every request of the micro service that is not a lease operation,
//! decoded as the service does (`decode_request`: size, JSON, rules). The
//! first byte picks the request type. A rejection is an `invalid_request`
//! reply with a message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lull_coordinator::builds::{ImportPart, RegionPardonRequest, RegionStatsRequest};
use lull_coordinator::service::{decode_request, Empty};
use lull_engine::quiet::forecast::ForecastRequest;
use lull_engine::quiet::history::HistoryRequest;
use lull_engine::quiet::streaks::StreaksRequest;
use lull_proto::error::ErrorCode;
use lull_proto::msg::hosts::{BlockRequest, HostGetRequest, UnblockRequest};
use lull_proto::msg::region::{CampaignStats, RegionInsightsRequest, RegionSelectRequest};
use lull_proto::msg::worker::{WorkerExecutionsRequest, WorkerRequest};
use lull_proto::validate::Validate;
use serde::de::DeserializeOwned;

fn check<T: DeserializeOwned + Validate>(payload: &[u8]) {
    match decode_request::<T>(payload, 256 * 1024) {
        Ok(t) => assert!(t.validate().is_ok()),
        Err(e) => {
            assert_eq!(e.error.code, ErrorCode::InvalidRequest);
            assert!(!e.error.message.is_empty());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, p)) = data.split_first() else {
        return;
    };
    match which % 16 {
        0 => check::<Empty>(p),
        1 => check::<HostGetRequest>(p),
        2 => check::<BlockRequest>(p),
        3 => check::<UnblockRequest>(p),
        4 => check::<HistoryRequest>(p),
        5 => check::<StreaksRequest>(p),
        6 => check::<ForecastRequest>(p),
        7 => check::<RegionStatsRequest>(p),
        8 => check::<RegionSelectRequest>(p),
        9 => check::<RegionInsightsRequest>(p),
        10 => check::<RegionPardonRequest>(p),
        11 => check::<ImportPart>(p),
        12 => check::<CampaignStats>(p),
        13 => check::<WorkerExecutionsRequest>(p),
        14 => check::<WorkerRequest>(p),
        _ => check::<lull_proto::msg::lease::HeavyLeaseRequest>(p),
    }
});
