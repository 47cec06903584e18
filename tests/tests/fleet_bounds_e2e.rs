//! End-to-end: a fleet of a few thousand distinct hosts against a NATS
//! server with a small max_payload. The cap on known hosts refuses the
//! newcomers beyond it (counted); `hosts.list` and `scheduler.status` page
//! through every host exactly once; a page too large for the max_payload is
//! an error reply that says how to page (not a timeout); silent hosts are
//! forgotten after the configured time, from the list and from the lease
//! book, and a refused host gets in once there is room.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use lull_proto::msg::hosts::HostSummary;
use lull_proto::msg::lease::SchedulerStatus;
use lull_proto::msg::page::{HostPage, PageRequest};
use lull_proto::msg::stats::example_snapshot;
use lull_proto::subjects::endpoints as ep;
use lull_proto::Subjects;
use lull_tests::{scrape, wait_until, Infra, NatsServer, Postgres};
use support::*;

/// Hosts published.
const HOSTS: usize = 3000;
/// The cap.
const MAX_HOSTS: usize = 2500;
/// Hosts that keep reporting after the first round.
const LIVE: usize = 10;

fn host(i: usize) -> String {
    format!("fleet-{i:05}")
}

async fn metric_value(url: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    match scrape(url).await {
        Ok(text) => metric(&text, name, labels).unwrap_or(0.0),
        Err(_) => 0.0,
    }
}

/// Every host of `hosts.list`, `limit` at a time, with the page count.
async fn list_all(client: &async_nats::Client, limit: u32) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let req = PageRequest {
            limit: Some(limit),
            cursor,
        };
        let p: HostPage = call(client, ep::HOSTS_LIST, &req)
            .await
            .expect("hosts.list page");
        pages += 1;
        assert!(p.hosts.len() <= limit as usize);
        out.extend(p.hosts.into_iter().map(|h| h.host_id));
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => return (out, pages),
        }
        assert!(pages < 10_000, "hosts.list never ends");
    }
}

/// Every host of `scheduler.status`, `limit` at a time.
async fn status_hosts(client: &async_nats::Client, limit: u32) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let req = PageRequest {
            limit: Some(limit),
            cursor,
        };
        let st: SchedulerStatus = call(client, ep::SCHEDULER_STATUS, &req)
            .await
            .expect("scheduler.status page");
        out.extend(st.hosts.into_iter().map(|h| h.host_id));
        match st.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

async fn publish(client: &async_nats::Client, ids: impl Iterator<Item = String>, seq: u64) {
    let now = lull_common::runtime::now_unix();
    for id in ids {
        let s = example_snapshot(&id, seq, now);
        let body = serde_json::to_vec(&s).unwrap();
        client
            .publish(Subjects::default().stats(&id), body.into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_hosts_are_capped_paged_and_forgotten() {
    let (nats, pg) = tokio::try_join!(
        NatsServer::start_with_config("max_payload: 65536\n"),
        Postgres::start()
    )
    .expect("infra");
    let infra = Infra { nats, pg };
    let max_hosts = MAX_HOSTS.to_string();
    let c = start_coordinator(
        &infra,
        &[
            ("LULL_HOSTS__MAX_HOSTS", max_hosts.as_str()),
            ("LULL_HOSTS__EVICT_AFTER_SEC", "6"),
            ("LULL_LISTS__DEFAULT_LIMIT", "300"),
            ("LULL_LISTS__MAX_LIMIT", "5000"),
            ("LULL_INGEST__SWEEP_SEC", "0.2"),
            ("LULL_INGEST__FLEET_QUEUE", "65536"),
        ],
    )
    .await;
    let client = infra.nats.connect().await.expect("connect");
    let url = c.metrics_url.clone();

    // One snapshot from each of 3000 hosts, in order on one connection:
    // the first 2500 get in, the last 500 are refused.
    publish(&client, (0..HOSTS).map(host), 1).await;
    let counted = wait_until(Duration::from_secs(30), || {
        let url = url.clone();
        async move {
            metric_value(&url, "lull_hosts_rejected_total", &[]).await >= (HOSTS - MAX_HOSTS) as f64
                && metric_value(&url, "lull_hosts_known", &[]).await == MAX_HOSTS as f64
        }
    })
    .await;
    assert!(counted.is_ok(), "cap never counted:\n{}", c.svc.logs());
    let text = scrape(&url).await.unwrap();
    assert_eq!(
        metric(&text, "lull_hosts_rejected_total", &[]),
        Some((HOSTS - MAX_HOSTS) as f64)
    );
    assert_eq!(
        metric(
            &text,
            "lull_stats_messages_total",
            &[("result", "host_limit")]
        ),
        Some((HOSTS - MAX_HOSTS) as f64)
    );
    assert!(c.svc.logs().contains("host limit reached"));

    // Paging returns every admitted host exactly once, in order.
    let want: Vec<String> = (0..MAX_HOSTS).map(host).collect();
    let (got, pages) = list_all(&client, 400).await;
    assert_eq!(pages, MAX_HOSTS.div_ceil(400));
    assert_eq!(got, want);

    // A request without paging fields gets the original array shape, the
    // first default page.
    let plain: Vec<HostSummary> = call(&client, ep::HOSTS_LIST, &serde_json::json!({}))
        .await
        .expect("plain hosts.list");
    assert_eq!(plain.len(), 300);
    assert_eq!(plain[0].host_id, host(0));

    // A page over the max_payload is an error reply that says how to page.
    let too_big = call::<_, HostPage>(
        &client,
        ep::HOSTS_LIST,
        &PageRequest {
            limit: Some(2000),
            cursor: None,
        },
    )
    .await
    .expect_err("a 2000-host page does not fit in 64 KiB");
    let msg = too_big.to_string();
    assert!(msg.contains("too large") && msg.contains("cursor"), "{msg}");
    let bad = call::<_, HostPage>(
        &client,
        ep::HOSTS_LIST,
        &serde_json::json!({"limit": 10, "cursor": "not a host id!"}),
    )
    .await
    .expect_err("a cursor that is no host id");
    assert!(bad.to_string().contains("cursor"), "{bad}");

    // scheduler.status pages its hosts the same way (once the lease book
    // has every view).
    let ok = wait_until(Duration::from_secs(20), || {
        let client = client.clone();
        async move { status_hosts(&client, 250).await.len() == MAX_HOSTS }
    })
    .await;
    assert!(ok.is_ok(), "the lease book never had every host");
    let st = status_hosts(&client, 250).await;
    assert_eq!(st.iter().cloned().collect::<BTreeSet<_>>().len(), MAX_HOSTS);
    assert_eq!(st, want);
    let bad = call::<_, SchedulerStatus>(
        &client,
        ep::SCHEDULER_STATUS,
        &serde_json::json!({"cursor": "garbage"}),
    )
    .await
    .expect_err("a cursor the coordinator did not make");
    assert!(bad.to_string().contains("cursor"), "{bad}");

    // Ten hosts keep reporting; the others fall silent and are forgotten
    // after 6 s (from the list and the lease book).
    let live: Vec<String> = (0..LIVE).map(host).collect();
    let forgotten = wait_until(Duration::from_secs(60), || {
        let (client, url, live) = (client.clone(), url.clone(), live.clone());
        async move {
            publish(&client, live.into_iter(), 2).await;
            metric_value(&url, "lull_hosts_known", &[]).await == LIVE as f64
        }
    })
    .await;
    assert!(
        forgotten.is_ok(),
        "silent hosts never forgotten:\n{}",
        c.svc.logs()
    );
    let text = scrape(&url).await.unwrap();
    assert_eq!(
        metric(&text, "lull_hosts_evicted_total", &[]),
        Some((MAX_HOSTS - LIVE) as f64)
    );
    assert_eq!(list_all(&client, 400).await.0, live);
    // A forgotten host's series stay (they cannot be removed) but say so.
    let silent = host(LIVE);
    let labels = [("host", silent.as_str())];
    assert_eq!(metric(&text, "lull_host_stale", &labels), Some(1.0));
    let score = metric(&text, "lull_host_quiet_score", &labels);
    assert!(score.is_some_and(f64::is_nan), "{score:?}");
    for s in ["QUIET", "NORMAL", "BUSY", "PANIC"] {
        let l = [("host", silent.as_str()), ("state", s)];
        assert_eq!(metric(&text, "lull_host_state", &l), Some(0.0), "{s}");
    }
    let gone = wait_until(Duration::from_secs(10), || {
        let client = client.clone();
        async move { status_hosts(&client, 1000).await.len() == LIVE }
    })
    .await;
    assert!(gone.is_ok(), "forgotten hosts stayed in the lease book");

    // There is room again: a host refused before gets in.
    let late = host(HOSTS - 1);
    let joined = wait_until(Duration::from_secs(10), || {
        let (client, late) = (client.clone(), late.clone());
        async move {
            publish(&client, std::iter::once(late.clone()), 3).await;
            list_all(&client, 400).await.0.contains(&late)
        }
    })
    .await;
    assert!(joined.is_ok(), "a refused host never got in after eviction");

    // Forgotten hosts stay in Postgres.
    let db = infra.pg.client().await.unwrap();
    let n: i64 = db
        .query_one("SELECT count(*) FROM hosts", &[])
        .await
        .unwrap()
        .get(0);
    assert!(n >= MAX_HOSTS as i64, "{n} host rows");
}
