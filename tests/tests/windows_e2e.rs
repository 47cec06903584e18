//! End-to-end: scheduled maintenance windows. A one-off window ahead
//! grants before it opens, denies with `blocked` (retrying when it ends)
//! while open, and grants again after, without any command. A recurring
//! window written in `lullctl`'s syntax, in a named time zone, is in force
//! during its opening, shows in the forecast, is listed, survives a
//! restart, and is removed by id or with its host.

mod support;

use std::time::Duration;

use lull_common::runtime::now_unix;
use lull_proto::msg::hosts::{BlockReply, HostDetail, QuietState, Weekday};
use lull_proto::msg::lease::{DenyReason, HeavyLeaseResponse, OkResponse};
use lull_proto::subjects::endpoints as ep;
use lull_tests::{wait_for, Finished, Infra, Service};
use serde_json::{json, Value};
use support::*;

const ENV: [(&str, &str); 3] = [
    ("LULL_LEASE__RATE_PER_SEC", "1000"),
    ("LULL_LEASE__BURST", "1000"),
    // After the restart, the window (not the grace period) should answer.
    ("LULL_LEASE__GRACE_PERIOD_SEC", "1"),
];

fn ask() -> Value {
    json!({"addon_id": "probe", "job_type": "j", "host_id": "w1", "cost_units": 1})
}

async fn lease(client: &async_nats::Client) -> HeavyLeaseResponse {
    call(client, ep::LEASE_REQUEST, &ask()).await.unwrap()
}

async fn release(client: &async_nats::Client, r: &HeavyLeaseResponse) {
    let ok: OkResponse = call(
        client,
        ep::LEASE_RELEASE,
        &json!({"lease_id": r.lease_id, "token": r.token}),
    )
    .await
    .unwrap();
    assert!(ok.ok);
}

/// Asks for leases until `want` says yes (granted ones are released).
async fn wait_lease(
    client: &async_nats::Client,
    secs: u64,
    want: impl Fn(&HeavyLeaseResponse) -> bool,
) -> HeavyLeaseResponse {
    let last = std::sync::Mutex::new(None);
    let got = wait_for(Duration::from_secs(secs), || async {
        let r = lease(client).await;
        if r.approved {
            release(client, &r).await;
        }
        let ok = want(&r);
        *last.lock().unwrap() = Some(r.clone());
        ok.then_some(r)
    })
    .await;
    got.unwrap_or_else(|_| {
        panic!(
            "the lease answer never came; last: {:?}",
            last.lock().unwrap()
        )
    })
}

async fn lullctl(infra: &Infra, args: &[&str]) -> Finished {
    let out = Service::builder("lullctl")
        .envs(infra.lull_env())
        .args(args.iter().copied())
        .run(Duration::from_secs(30))
        .await
        .expect("lullctl finished");
    assert!(out.status.success(), "lullctl {args:?}: {out:?}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_ahead_blocks_only_while_open() {
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(&infra, &ENV).await;
    let client = infra.nats.connect().await.unwrap();
    let feeder = Feeder::start(client.clone(), Duration::from_millis(300));
    feeder.set("w1", Load::idle(4));
    wait_state(&client, "w1", QuietState::Quiet).await;
    wait_lease(&client, 15, |r| r.approved).await;

    // Bad windows get a clear error and change nothing.
    for (bad, says) in [
        (
            json!({"host_id": "w1", "recurrence": {"at": "02:00", "duration_sec": 60, "tz": "Nowhere/Land"}}),
            "Nowhere/Land",
        ),
        (
            json!({"host_id": "w1", "recurrence": {"at": "2am", "duration_sec": 60}}),
            "recurrence.at",
        ),
        (
            json!({"host_id": "w1", "from": now_unix() + 100.0, "until": now_unix() + 50.0}),
            "until",
        ),
    ] {
        let e = call::<_, BlockReply>(&client, ep::HOSTS_BLOCK, &bad)
            .await
            .expect_err("a bad window is refused");
        let text = e.to_string();
        assert!(
            text.contains("invalid_request") && text.contains(says),
            "{bad}: {text}"
        );
    }
    let none: BlockReply = call(&client, ep::HOSTS_BLOCKS, &json!({})).await.unwrap();
    assert!(
        none.windows.is_empty() && none.blocks.is_empty(),
        "{none:?}"
    );

    // A window from 3 s to 7 s from now.
    let from = now_unix() + 3.0;
    let until = from + 4.0;
    let r: BlockReply = call(
        &client,
        ep::HOSTS_BLOCK,
        &json!({"host_id": "w1", "from": from, "until": until, "reason": "patch"}),
    )
    .await
    .unwrap();
    assert!(r.ok && r.changed && r.blocks.is_empty(), "{r:?}");
    let w = &r.windows[0];
    assert!(!w.open && w.next_start == Some(from) && w.next_end == Some(until));

    // Before it opens: granted.
    let r = lease(&client).await;
    assert!(
        r.approved || now_unix() >= from,
        "denied before the window: {r:?}"
    );
    if r.approved {
        release(&client, &r).await;
    }
    // Inside: denied `blocked`, retry when the window ends.
    let d = wait_lease(&client, 10, |r| r.reason_code == Some(DenyReason::Blocked)).await;
    let asked = now_unix();
    assert!(asked < until, "denied after the window: {d:?}");
    assert!(d.reason.as_deref().unwrap_or("").contains("patch"), "{d:?}");
    let retry = d.retry_after_sec.unwrap();
    assert!(
        retry <= until - from + 1.0 && retry >= (until - asked - 1.0).max(1.0) - 1.0,
        "retry_after_sec {retry} is not the end of the window ({:.1}s away)",
        until - asked
    );
    let h: HostDetail = call(&client, ep::HOSTS_GET, &json!({"host_id": "w1"}))
        .await
        .unwrap();
    let b = h.block.expect("the window in force is the host's block");
    assert_eq!((b.window_id, b.until), (Some(w.id), Some(until)));
    // After it: granted again, by itself.
    wait_lease(&client, 10, |r| r.approved).await;
    assert!(now_unix() >= until - 0.05, "granted inside the window");
    drop(feeder);
    drop(coord);
}

/// The local time in Berlin now, `HH:MM`.
fn berlin_now() -> String {
    let tz = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    let t = jiff::Timestamp::now().to_zoned(tz);
    format!("{:02}:{:02}", t.hour(), t.minute())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recurring_windows_from_lullctl() {
    let infra = Infra::start().await.expect("infra");
    let mut coord = start_coordinator(&infra, &ENV).await;
    let client = infra.nats.connect().await.unwrap();
    let feeder = Feeder::start(client.clone(), Duration::from_millis(300));
    feeder.set("w1", Load::idle(4));
    wait_state(&client, "w1", QuietState::Quiet).await;
    wait_lease(&client, 15, |r| r.approved).await;

    // Every day at this minute (Berlin time) for 3 minutes: open now, for
    // two minutes at least.
    let at = berlin_now();
    let out = lullctl(
        &infra,
        &[
            "block",
            "w1",
            "--at",
            &at,
            "--for",
            "3m",
            "--every",
            "day",
            "--tz",
            "Europe/Berlin",
            "--reason",
            "daily patch",
        ],
    )
    .await;
    assert!(
        out.stdout
            .contains("scheduled a maintenance window for host w1"),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains(&format!("daily {at} for 3m (Europe/Berlin)")),
        "{out:?}"
    );
    assert!(out.stdout.contains("open until"), "{out:?}");
    let d = lease(&client).await;
    assert_eq!(d.reason_code, Some(DenyReason::Blocked), "{d:?}");
    let retry = d.retry_after_sec.unwrap();
    assert!(
        (100.0..=181.0).contains(&retry),
        "retry {retry} is not the opening's end"
    );

    // The forecast marks this hour as blocked.
    let f: Value = call(&client, ep::QUIET_FORECAST, &json!({"host_id": "w1"}))
        .await
        .unwrap();
    let hour = lull_engine::quiet::forecast::hour_of_week(now_unix());
    assert_eq!(f["blocked"][hour], true, "{f}");

    // A weekly window in the syntax operators know.
    let out = lullctl(
        &infra,
        &[
            "block",
            "w1",
            "--at",
            "sat,sun 02:00",
            "--for",
            "4h",
            "--every",
            "week",
            "--tz",
            "Europe/Berlin",
        ],
    )
    .await;
    assert!(
        out.stdout.contains("sat,sun 02:00 for 4h (Europe/Berlin)"),
        "{out:?}"
    );
    let bad = Service::builder("lullctl")
        .envs(infra.lull_env())
        .args([
            "block",
            "w1",
            "--at",
            "sat 02:00",
            "--for",
            "4h",
            "--every",
            "week",
            "--tz",
            "Nowhere/Land",
        ])
        .run(Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        !bad.status.success() && bad.stderr.contains("Nowhere/Land"),
        "{bad:?}"
    );

    // Restart: the windows come back from Postgres, the daily one in force.
    assert!(coord
        .svc
        .terminate(Duration::from_secs(15))
        .await
        .unwrap()
        .success());
    coord = start_coordinator(&infra, &ENV).await;
    // The wire reply (lullctl -o json shows times as RFC 3339).
    let listed: BlockReply = call(&client, ep::HOSTS_BLOCKS, &json!({})).await.unwrap();
    assert_eq!(listed.windows.len(), 2, "{listed:?}");
    let daily = &listed.windows[0];
    let weekly = &listed.windows[1];
    assert!(daily.open);
    assert_eq!(
        weekly.recurrence.as_ref().unwrap().days,
        vec![Weekday::Sat, Weekday::Sun]
    );
    assert_eq!(listed.blocks[0].window_id, Some(daily.id));
    wait_lease(&client, 15, |r| r.reason_code == Some(DenyReason::Blocked)).await;

    // Removing the daily window by id frees the host at once.
    let out = lullctl(&infra, &["unblock", "--window", &daily.id.to_string()]).await;
    assert!(
        out.stdout.contains(&format!("removed window {}", daily.id)),
        "{out:?}"
    );
    let r = lease(&client).await;
    assert!(r.approved, "denied after the window was removed: {r:?}");
    release(&client, &r).await;
    // Unblocking the host with --windows removes the weekly one too.
    let out = lullctl(&infra, &["--json", "unblock", "w1", "--windows"]).await;
    let after: BlockReply = serde_json::from_str(&out.stdout).unwrap();
    assert!(after.changed && after.windows.is_empty(), "{after:?}");
    let pg = infra.pg.client().await.unwrap();
    let n: i64 = pg
        .query_one("SELECT count(*) FROM maintenance_windows", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    drop(feeder);
    drop(coord);
}
