//! End-to-end: an operator's block (and unblock) is in force for lease
//! decisions before its reply: a lease request sent right after the reply
//! sees it, every time.

mod support;

use std::time::Duration;

use lull_proto::msg::hosts::{BlockReply, QuietState};
use lull_proto::msg::lease::{DenyReason, HeavyLeaseResponse, OkResponse};
use lull_proto::subjects::endpoints as ep;
use lull_tests::Infra;
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_and_an_unblock_are_in_force_before_their_replies() {
    let infra = Infra::start().await.expect("infra");
    let env = [
        ("LULL_LEASE__RATE_PER_SEC", "1000"),
        ("LULL_LEASE__BURST", "1000"),
        // A long push period: without the hand-off a block would reach the
        // lease book only on this timer.
        ("LULL_INGEST__VIEWS_FLUSH_SEC", "2"),
    ];
    let _coord = start_coordinator(&infra, &env).await;
    let client = infra.nats.connect().await.unwrap();
    let feeder = Feeder::start(client.clone(), Duration::from_millis(300));
    feeder.set("h1", Load::idle(4));
    wait_state(&client, "h1", QuietState::Quiet).await;
    // Let the book hear of the host (first views push).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ask = json!({"addon_id": "probe", "job_type": "j", "host_id": "h1", "cost_units": 1});
    for i in 0..50 {
        let b: BlockReply = call(
            &client,
            ep::HOSTS_BLOCK,
            &json!({"host_id": "h1", "reason": format!("maintenance {i}")}),
        )
        .await
        .unwrap();
        assert!(b.ok);
        let r: HeavyLeaseResponse = call(&client, ep::LEASE_REQUEST, &ask).await.unwrap();
        assert!(!r.approved, "round {i}: granted on a blocked host: {r:?}");
        assert_eq!(r.reason_code, Some(DenyReason::Blocked), "round {i}: {r:?}");

        let u: BlockReply = call(&client, ep::HOSTS_UNBLOCK, &json!({"host_id": "h1"}))
            .await
            .unwrap();
        assert!(u.ok);
        let r: HeavyLeaseResponse = call(&client, ep::LEASE_REQUEST, &ask).await.unwrap();
        assert!(r.approved, "round {i}: denied after the unblock: {r:?}");
        let rel: OkResponse = call(
            &client,
            ep::LEASE_RELEASE,
            &json!({"lease_id": r.lease_id, "token": r.token}),
        )
        .await
        .unwrap();
        assert!(rel.ok);
    }
    drop(feeder);
}
