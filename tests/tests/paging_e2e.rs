//! End-to-end: the operator lists page. With pages of two items,
//! `hosts.blocks` (blocks, then windows), `quiet.streaks` and
//! `lease.decisions` read page by page add up to the whole list, in order,
//! with nothing twice; a reply to `hosts.block` is a first page; a cursor
//! the coordinator did not make is `invalid_request`; `lullctl` reads
//! every page by itself; and maintenance windows are bounded.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use lull_common::runtime::now_unix;
use lull_engine::quiet::streaks::{ClosedStreak, StreaksPage};
use lull_proto::msg::decisions::DecisionsReply;
use lull_proto::msg::hosts::{BlockReply, BlockScope};
use lull_proto::msg::lease::HeavyLeaseResponse;
use lull_proto::subjects::endpoints as ep;
use lull_tests::{wait_for, Infra, Service};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use support::*;

const ENV: [(&str, &str); 5] = [
    ("LULL_LISTS__DEFAULT_LIMIT", "2"),
    ("LULL_HOSTS__MAX_WINDOWS", "3"),
    ("LULL_LISTS__MAX_LIMIT", "2"),
    ("LULL_LEASE__RATE_PER_SEC", "1000"),
    ("LULL_LEASE__BURST", "1000"),
];

/// Reads `endpoint` page by page from `body`, handing each page to `take`;
/// returns how many pages there were.
async fn read_all<P: DeserializeOwned>(
    client: &async_nats::Client,
    endpoint: &str,
    body: Value,
    mut take: impl FnMut(&P),
    cursor_of: impl Fn(&P) -> Option<String>,
) -> usize {
    let mut cursor: Option<String> = None;
    for n in 1..=50 {
        let mut b = body.clone();
        if let Some(c) = &cursor {
            b["cursor"] = json!(c);
        }
        let p: P = call(client, endpoint, &b).await.unwrap();
        take(&p);
        match cursor_of(&p) {
            Some(c) => cursor = Some(c),
            None => return n,
        }
    }
    panic!("{endpoint}: no last page after 50 pages");
}

/// `endpoint` refuses `body` as `invalid_request` naming the cursor.
async fn refuses_cursor(client: &async_nats::Client, endpoint: &str, body: Value) {
    let e = call::<_, Value>(client, endpoint, &body)
        .await
        .expect_err("a foreign cursor is refused");
    let text = e.to_string();
    assert!(
        text.contains("invalid_request") && text.contains("cursor"),
        "{endpoint} {body}: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_page_blocks_then_windows() {
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(&infra, &ENV).await;
    let client = infra.nats.connect().await.unwrap();

    let mut last = None;
    for h in ["h5", "h3", "h1", "h4", "h2"] {
        let r: BlockReply = call(
            &client,
            ep::HOSTS_BLOCK,
            &json!({"host_id": h, "reason": format!("patch {h}")}),
        )
        .await
        .unwrap();
        last = Some(r);
    }
    let from = now_unix() + 3600.0;
    for i in 0..3 {
        let at = from + f64::from(i) * 600.0;
        let _: BlockReply = call(
            &client,
            ep::HOSTS_BLOCK,
            &json!({"host_id": "h1", "from": at, "until": at + 60.0}),
        )
        .await
        .unwrap();
    }
    // A fourth window is past hosts.max_windows: refused, nothing stored.
    let e = call::<_, BlockReply>(
        &client,
        ep::HOSTS_BLOCK,
        &json!({"host_id": "h2", "from": from, "until": from + 60.0}),
    )
    .await
    .expect_err("past the window limit");
    assert!(e.to_string().contains("hosts.max_windows"), "{e}");
    // The reply to a change is the first page, with the cursor of the rest.
    let last = last.unwrap();
    assert_eq!(last.blocks.len(), 2, "{last:?}");
    assert!(last.next_cursor.is_some(), "{last:?}");

    let (mut hosts, mut windows) = (Vec::new(), Vec::new());
    let pages = read_all(
        &client,
        ep::HOSTS_BLOCKS,
        json!({}),
        |p: &BlockReply| {
            assert!(p.blocks.len() + p.windows.len() <= 2, "{p:?}");
            assert!(p.blocks.iter().all(|b| b.scope == BlockScope::Host));
            hosts.extend(p.blocks.iter().filter_map(|b| b.host_id.clone()));
            windows.extend(p.windows.iter().map(|w| w.id));
        },
        |p| p.next_cursor.clone(),
    )
    .await;
    assert_eq!(hosts, ["h1", "h2", "h3", "h4", "h5"]);
    assert_eq!(windows.len(), 3, "{windows:?}");
    assert!(windows.windows(2).all(|w| w[0] < w[1]), "{windows:?}");
    assert_eq!(pages, 4, "8 items, 2 a page");

    for bad in ["zz", "w:x", "b", ""] {
        refuses_cursor(&client, ep::HOSTS_BLOCKS, json!({"cursor": bad})).await;
    }

    // lullctl lists them all, whatever the page size.
    let out = Service::builder("lullctl")
        .envs(infra.lull_env())
        .args(["-o", "json", "block"])
        .run(Duration::from_secs(30))
        .await
        .expect("lullctl finished");
    assert!(out.status.success(), "{out:?}");
    // (Its JSON writes times as RFC 3339 text.)
    let listed: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let n = |k: &str| listed[k].as_array().map_or(0, Vec::len);
    assert_eq!((n("blocks"), n("windows")), (5, 3), "{listed}");

    // `--watch` lists again every interval (each round reads every page)
    // until Ctrl-C, which ends it with 0.
    let mut watch = Service::builder("lullctl")
        .envs(infra.lull_env())
        .args(["-o", "json", "hosts", "--watch", "0.3"])
        .start()
        .expect("lullctl --watch starts");
    let docs = |s: &Service| -> Vec<Value> {
        serde_json::Deserializer::from_str(&s.stdout())
            .into_iter::<Value>()
            .map_while(Result::ok)
            .collect()
    };
    lull_tests::wait_until(Duration::from_secs(20), || async {
        docs(&watch).len() >= 3
    })
    .await
    .unwrap_or_else(|_| panic!("fewer than 3 rounds: {}", watch.logs()));
    watch.signal(nix::sys::signal::Signal::SIGINT);
    let st = watch
        .wait(Duration::from_secs(10))
        .await
        .expect("exits on Ctrl-C");
    assert!(st.success(), "{st:?}: {}", watch.logs());
    let all = docs(&watch);
    assert!(
        all.len() >= 3 && all.iter().all(|d| d == &all[0]),
        "{all:?}"
    );
    drop(coord);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaks_and_decisions_page_in_order() {
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(&infra, &ENV).await;
    let client = infra.nats.connect().await.unwrap();

    // Seven stored streaks of one host, an hour apart.
    let (db, conn) = tokio_postgres::connect(&infra.pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let t0 = (now_unix() - 86_400.0).floor();
    for i in 0..7 {
        let start = t0 + f64::from(i) * 3600.0;
        db.execute(
            "INSERT INTO quiet_streaks (host_id, start_time, end_time, avg_score, min_score)
             VALUES ('s1', $1, $2, 90, 80)",
            &[&start, &(start + 1800.0)],
        )
        .await
        .unwrap();
    }
    let whole: Vec<ClosedStreak> = call(
        &client,
        ep::QUIET_STREAKS,
        &json!({"host_id": "s1", "range": "7d"}),
    )
    .await
    .unwrap();
    assert_eq!(whole.len(), 7, "the unpaged reply is the bare array");
    let mut paged = Vec::new();
    let pages = read_all(
        &client,
        ep::QUIET_STREAKS,
        json!({"host_id": "s1", "range": "7d", "limit": 2}),
        |p: &StreaksPage| {
            assert!(p.streaks.len() <= 2);
            paged.extend(p.streaks.iter().cloned());
        },
        |p| p.next_cursor.clone(),
    )
    .await;
    assert_eq!(paged, whole);
    assert_eq!(pages, 4);
    for bad in ["x", "inf", ""] {
        refuses_cursor(
            &client,
            ep::QUIET_STREAKS,
            json!({"host_id": "s1", "cursor": bad}),
        )
        .await;
    }

    // Five denials (a host nobody knows), read back two at a time.
    for i in 0..5 {
        let r: HeavyLeaseResponse = call(
            &client,
            ep::LEASE_REQUEST,
            &json!({"addon_id": "probe", "job_type": format!("j{i}"), "host_id": "ghost", "cost_units": 1}),
        )
        .await
        .unwrap();
        assert!(!r.approved, "{r:?}");
    }
    let q = json!({"kind": "denied", "addon_id": "probe", "since": 0.0, "limit": 2});
    let seen = std::sync::Mutex::new(None);
    let got = wait_for(Duration::from_secs(20), || async {
        let r = call::<_, DecisionsReply>(&client, ep::LEASE_DECISIONS, &q).await;
        let done = matches!(&r, Ok(r) if r.counts.values().sum::<u64>() == 5);
        *seen.lock().unwrap() = Some(r);
        done.then_some(())
    })
    .await;
    assert!(
        got.is_ok(),
        "the five denials never reached the audit trail: {:?}",
        seen.lock().unwrap()
    );
    let mut jobs = Vec::new();
    let mut at = Vec::new();
    let pages = read_all(
        &client,
        ep::LEASE_DECISIONS,
        q.clone(),
        |p: &DecisionsReply| {
            assert_eq!(p.truncated, p.next_cursor.is_some(), "{p:?}");
            assert_eq!(p.counts.values().sum::<u64>(), 5, "counts cover the range");
            jobs.extend(p.decisions.iter().map(|d| d.job_type.clone()));
            at.extend(p.decisions.iter().map(|d| d.at));
        },
        |p| p.next_cursor.clone(),
    )
    .await;
    assert_eq!(pages, 3);
    assert_eq!(jobs.iter().collect::<HashSet<_>>().len(), 5, "{jobs:?}");
    assert!(at.windows(2).all(|w| w[0] >= w[1]), "newest first: {at:?}");
    refuses_cursor(&client, ep::LEASE_DECISIONS, json!({"cursor": "web-1"})).await;
    drop(coord);
}
