//! End-to-end: the quiet engine's shell with real NATS, Postgres and
//! coordinator processes, fed SYNTHETIC snapshots published on NATS. The
//! state follows the load (quiet → PANIC → BUSY → quiet), history (raw and
//! rollups), streaks, health and the forecast come back from the API, a
//! silent host turns stale, operator blocks work from `lullctl` and survive
//! a restart, retention drops old partitions and old rows while ingest goes
//! on, and bad requests get error replies.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lull_client::request::RequestError;
use lull_common::runtime::now_unix;
use lull_proto::msg::hosts::{BlockReply, HostDetail, HostSummary, QuietState};
use lull_proto::msg::stats::{example_snapshot, ApiStats};
use lull_proto::subjects::endpoints as ep;
use lull_proto::ErrorCode;
use lull_tests::{scrape, wait_for, wait_until, Infra, Service};
use serde_json::{json, Value};
use support::*;

/// Load of one synthetic host: `None` = silent.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Load {
    cpu: f64,
    mem: f64,
}

const IDLE: Load = Load {
    cpu: 5.0,
    mem: 30.0,
};

/// Publishes a snapshot per host every 100 ms with the host's current load;
/// a host set to `None` goes silent.
#[derive(Clone)]
struct Publisher {
    loads: Arc<Mutex<HashMap<String, Option<Load>>>>,
}

impl Publisher {
    fn start(client: async_nats::Client) -> (Publisher, tokio::task::JoinHandle<()>) {
        let p = Publisher {
            loads: Arc::new(Mutex::new(HashMap::new())),
        };
        let loads = p.loads.clone();
        let task = tokio::spawn(async move {
            let mut seq = 0u64;
            loop {
                seq += 1;
                let now = now_unix();
                let hosts: Vec<(String, Load)> = loads
                    .lock()
                    .unwrap()
                    .iter()
                    .filter_map(|(h, l)| l.map(|l| (h.clone(), l)))
                    .collect();
                for (h, l) in hosts {
                    let mut s = example_snapshot(&h, seq, now);
                    s.interval_sec = Some(0.5);
                    s.host.cpu_pct = l.cpu;
                    s.host.mem_used_pct = l.mem;
                    s.api = Some(ApiStats {
                        rps: 1.0,
                        error_rate: 0.0,
                        p95_ms: 20.0,
                    });
                    let body = serde_json::to_vec(&s).unwrap();
                    let _ = client.publish(format!("lull.stats.{h}"), body.into()).await;
                }
                let _ = client.flush().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        (p, task)
    }

    fn set(&self, host: &str, load: Option<Load>) {
        self.loads.lock().unwrap().insert(host.to_string(), load);
    }
}

/// Fast cadences so a test sees history, rollups and streaks in seconds.
const FAST: &[(&str, &str)] = &[
    ("LULL_INGEST__SWEEP_SEC", "0.2"),
    ("LULL_INGEST__VIEWS_FLUSH_SEC", "0.1"),
    ("LULL_QUIET__CPU_WINDOW_SEC", "1.5"),
    ("LULL_QUIET__STREAKS__MIN_STREAK_SEC", "1.5"),
    ("LULL_QUIET__STREAKS__MAX_GAP_SEC", "3"),
    ("LULL_QUIET__HISTORY__ROLLUP_STEP_SEC", "2"),
    ("LULL_QUIET__FORECAST__MIN_SAMPLES", "1"),
    ("LULL_QUIET__FORECAST__THRESHOLD", "1"),
    ("LULL_HISTORY__QUIET_EVERY_SEC", "0.2"),
    ("LULL_HISTORY__GROUPS_EVERY_SEC", "0.5"),
    ("LULL_HISTORY__FLUSH_SEC", "0.3"),
    ("LULL_HISTORY__MAINTENANCE_SEC", "0.5"),
    ("LULL_HISTORY__ROLLUP_CHUNK_SEC", "4"),
    ("LULL_HISTORY__ROLLUP_DELAY_SEC", "0.5"),
    ("LULL_HISTORY__FORECAST_REFRESH_SEC", "1"),
];

fn env(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut v: Vec<(&str, &str)> = FAST.to_vec();
    v.extend_from_slice(extra);
    v
}

async fn host_state(client: &async_nats::Client, host: &str) -> Option<HostSummary> {
    let hosts: Vec<HostSummary> = call(client, ep::HOSTS_LIST, &json!({})).await.ok()?;
    hosts.into_iter().find(|h| h.host_id == host)
}

async fn wait_state(
    client: &async_nats::Client,
    coord: &Coordinator,
    host: &str,
    want: QuietState,
) {
    let c = client.clone();
    wait_until(Duration::from_secs(20), || {
        let c = c.clone();
        async move { host_state(&c, host).await.is_some_and(|h| h.state == want) }
    })
    .await
    .unwrap_or_else(|_| panic!("{host} never reached {want}\n{}", coord.svc.logs()));
}

fn error_code<T: std::fmt::Debug>(r: Result<T, RequestError>) -> ErrorCode {
    match r {
        Err(RequestError::Service { code, .. }) => code,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

/// Min and max of `field` over the points of a history reply.
fn span(reply: &Value, field: &str) -> (f64, f64, usize) {
    let pts = reply["points"].as_array().cloned().unwrap_or_default();
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    let mut n = 0;
    for p in &pts {
        if let Some(a) = p["values"].get(field) {
            lo = lo.min(a["min"].as_f64().unwrap());
            hi = hi.max(a["max"].as_f64().unwrap());
            n += 1;
        }
    }
    (lo, hi, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_follows_load_with_history_streaks_health_and_staleness() {
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(&infra, &env(&[])).await;
    let client = infra.nats.connect().await.unwrap();
    let (pubr, task) = Publisher::start(client.clone());
    pubr.set("q-1", Some(IDLE));
    pubr.set("q-2", Some(IDLE));

    // Idle: QUIET, long enough for a streak.
    wait_state(&client, &coord, "q-1", QuietState::Quiet).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Memory at 97 %: a hard trigger, PANIC at once.
    pubr.set(
        "q-1",
        Some(Load {
            cpu: 5.0,
            mem: 97.0,
        }),
    );
    wait_state(&client, &coord, "q-1", QuietState::Panic).await;
    let text = scrape(&coord.metrics_url).await.unwrap();
    assert_eq!(
        metric(
            &text,
            "lull_host_state",
            &[("host", "q-1"), ("state", "PANIC")]
        ),
        Some(1.0),
        "{text}"
    );
    let d: HostDetail = call(&client, ep::HOSTS_GET, &json!({"host_id": "q-1"}))
        .await
        .unwrap();
    assert!(
        d.quiet.reasons.iter().any(|r| r.contains("mem_pct")),
        "{:?}",
        d.quiet.reasons
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    // CPU saturated, memory fine: BUSY.
    pubr.set(
        "q-1",
        Some(Load {
            cpu: 95.0,
            mem: 30.0,
        }),
    );
    wait_state(&client, &coord, "q-1", QuietState::Busy).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Idle again: back to QUIET.
    pubr.set("q-1", Some(IDLE));
    wait_state(&client, &coord, "q-1", QuietState::Quiet).await;

    // The first quiet streak was closed by the PANIC and persisted.
    let c = client.clone();
    let streaks: Vec<Value> = wait_for(Duration::from_secs(10), || {
        let c = c.clone();
        async move {
            let s: Vec<Value> = call(
                &c,
                ep::QUIET_STREAKS,
                &json!({"host_id": "q-1", "range": "1h"}),
            )
            .await
            .ok()?;
            (!s.is_empty()).then_some(s)
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no streaks\n{}", coord.svc.logs()));
    let first = &streaks[0];
    let dur = first["end_time"].as_f64().unwrap() - first["start_time"].as_f64().unwrap();
    assert!(dur >= 1.5, "{first}");
    assert!(first["avg_score"].as_f64().unwrap() >= 75.0, "{first}");
    assert!(first["min_score"].as_f64().unwrap() >= 75.0, "{first}");
    let pg = infra.pg.client().await.unwrap();
    let stored: i64 = pg
        .query_one(
            "SELECT count(*) FROM quiet_streaks WHERE host_id = 'q-1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stored >= 1);

    // Raw quiet history (step below the rollup step): the PANIC dip and the
    // quiet stretches are both there.
    let c = client.clone();
    let raw: Value = wait_for(Duration::from_secs(10), || {
        let c = c.clone();
        async move {
            let r: Value = call(
                &c,
                ep::STATS_HISTORY,
                &json!({"host_id": "q-1", "group": "quiet", "range": "5m", "step": "1s"}),
            )
            .await
            .ok()?;
            let (lo, hi, _) = span(&r, "quiet_score");
            (lo <= 10.0 && hi >= 75.0).then_some(r)
        }
    })
    .await
    .unwrap_or_else(|_| panic!("quiet history incomplete\n{}", coord.svc.logs()));
    assert_eq!(raw["step"], "1s");
    assert_eq!(raw["group"], "quiet");

    // Raw host-group history: the CPU burst.
    let host_hist: Value = call(
        &client,
        ep::STATS_HISTORY,
        &json!({"host_id": "q-1", "group": "host", "range": "5m", "step": "1s"}),
    )
    .await
    .unwrap();
    let (_, cpu_hi, n) = span(&host_hist, "cpu_pct");
    assert!(n > 0 && cpu_hi >= 90.0, "{host_hist}");
    assert!(span(&host_hist, "disks[/].used_pct").2 > 0, "{host_hist}");
    let api_hist: Value = call(
        &client,
        ep::STATS_HISTORY,
        &json!({"host_id": "q-1", "group": "api", "range": "5m", "step": "1s"}),
    )
    .await
    .unwrap();
    assert!(span(&api_hist, "rps").2 > 0, "{api_hist}");

    // Rollups: a step of at least the rollup step reads them (up to the
    // watermark) plus raw samples after it.
    let c = client.clone();
    let pgr = &pg;
    wait_until(Duration::from_secs(15), || {
        let c = c.clone();
        let pg = pgr;
        async move {
            let rolled: i64 = pg
                .query_one(
                    "SELECT count(*) FROM quiet_rollups WHERE host_id = 'q-1'",
                    &[],
                )
                .await
                .map(|r| r.get(0))
                .unwrap_or(0);
            let groups: i64 = pg
                .query_one(
                    "SELECT count(*) FROM stats_rollups WHERE host_id = 'q-1' AND grp = 'host'",
                    &[],
                )
                .await
                .map(|r| r.get(0))
                .unwrap_or(0);
            if rolled < 2 || groups < 2 {
                return false;
            }
            let r: Value = match call(
                &c,
                ep::STATS_HISTORY,
                &json!({"host_id": "q-1", "group": "quiet", "range": "5m", "step": "4s"}),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => return false,
            };
            let (lo, hi, _) = span(&r, "quiet_score");
            let h: Value = match call(
                &c,
                ep::STATS_HISTORY,
                &json!({"host_id": "q-1", "group": "host", "range": "5m", "step": "4s"}),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => return false,
            };
            lo <= 10.0 && hi >= 75.0 && span(&h, "cpu_pct").1 >= 90.0
        }
    })
    .await
    .unwrap_or_else(|_| panic!("rollups never served\n{}", coord.svc.logs()));
    let text = scrape(&coord.metrics_url).await.unwrap();
    for table in [
        "quiet_samples",
        "stats_samples",
        "quiet_rollups",
        "quiet_streaks",
    ] {
        assert!(
            metric(
                &text,
                "lull_db_last_write_timestamp_seconds",
                &[("table", table)]
            )
            .is_some(),
            "no writes to {table}:\n{text}"
        );
        assert!(
            text.contains(&format!("lull_db_batch_rows_bucket{{table=\"{table}\"")),
            "no batch histogram for {table}"
        );
    }
    assert!(metric(&text, "lull_history_rollup_watermark_seconds", &[]).unwrap() > 0.0);
    assert!(
        !text.contains("lull_history_maintenance_errors_total{"),
        "maintenance failed:\n{text}"
    );
    assert!(!text.contains("lull_db_write_errors_total{"), "{text}");

    // Forecast: the heatmap is built from the rollups; this hour has points
    // and (with the test's low threshold) the window starts now. The fleet
    // also pushes it as next_quiet_at; the reply is what we can see here.
    let c = client.clone();
    let fc: Value = wait_for(Duration::from_secs(10), || {
        let c = c.clone();
        async move {
            let f: Value = call(&c, ep::QUIET_FORECAST, &json!({"host_id": "q-1"}))
                .await
                .ok()?;
            (!f["next_window"].is_null()).then_some(f)
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no forecast window\n{}", coord.svc.logs()));
    assert_eq!(fc["heatmap"].as_array().unwrap().len(), 168);
    assert!(fc["samples"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s.as_u64() > Some(0)));
    assert!(fc["next_window"]["start_time"].as_f64().unwrap() <= now_unix() + 1.0);
    assert_eq!(
        error_code(
            call::<_, Value>(&client, ep::QUIET_FORECAST, &json!({"host_id": "nobody"})).await
        ),
        ErrorCode::NotFound
    );

    // Health is ok while both hosts report.
    let h: Value = call(&client, ep::STATS_HEALTH, &json!({})).await.unwrap();
    assert_eq!(h["counts"]["stale"], 0, "{h}");

    // q-2 goes silent: stale in hosts.list, the metrics and the health.
    pubr.set("q-2", None);
    let c = client.clone();
    wait_until(Duration::from_secs(10), || {
        let c = c.clone();
        async move { host_state(&c, "q-2").await.is_some_and(|h| h.stale) }
    })
    .await
    .unwrap_or_else(|_| panic!("q-2 never stale\n{}", coord.svc.logs()));
    assert!(!host_state(&client, "q-1").await.unwrap().stale);
    let url = coord.metrics_url.clone();
    wait_until(Duration::from_secs(5), || {
        let url = url.clone();
        async move {
            let t = scrape(&url).await.unwrap_or_default();
            metric(&t, "lull_host_stale", &[("host", "q-2")]) == Some(1.0)
                && metric(&t, "lull_host_stale", &[("host", "q-1")]) == Some(0.0)
                && metric(&t, "lull_hosts_stale", &[]) == Some(1.0)
        }
    })
    .await
    .unwrap_or_else(|_| panic!("stale not in metrics"));
    let h: Value = call(&client, ep::STATS_HEALTH, &json!({})).await.unwrap();
    assert_eq!(h["counts"]["stale"], 1, "{h}");
    assert_ne!(h["status"], "ok", "{h}");
    assert!(
        h["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("q-2")),
        "{h}"
    );
    // It comes back when it reports again.
    pubr.set("q-2", Some(IDLE));
    let c = client.clone();
    wait_until(Duration::from_secs(10), || {
        let c = c.clone();
        async move { host_state(&c, "q-2").await.is_some_and(|h| !h.stale) }
    })
    .await
    .unwrap();

    // Bad requests get error replies, and the service keeps answering.
    for (endpoint, body) in [
        (
            ep::STATS_HISTORY,
            json!({"host_id": "q-1", "group": "disk"}),
        ),
        (
            ep::STATS_HISTORY,
            json!({"host_id": "q-1", "group": "quiet", "range": "soon"}),
        ),
        (
            ep::STATS_HISTORY,
            json!({"host_id": "q-1", "group": "quiet", "range": "1m", "step": "1h"}),
        ),
        (
            ep::STATS_HISTORY,
            json!({"host_id": "q-1", "group": "quiet", "range": "30d", "step": "1s"}),
        ),
        (
            ep::STATS_HISTORY,
            json!({"host_id": "a.b", "group": "quiet"}),
        ),
        (ep::STATS_HISTORY, json!({"group": "quiet"})),
        (ep::QUIET_STREAKS, json!({})),
        (ep::QUIET_STREAKS, json!({"host_id": "q-1", "range": "0h"})),
        (
            ep::QUIET_FORECAST,
            json!({"host_id": "q-1", "threshold": 500}),
        ),
        (ep::HOSTS_BLOCK, json!({})),
        (ep::HOSTS_BLOCK, json!({"host_id": "q-1", "all": true})),
        (ep::HOSTS_BLOCK, json!({"host_id": "q-1", "until": 5.0})),
        (ep::HOSTS_UNBLOCK, json!({"host_id": "*"})),
    ] {
        let r = call::<_, Value>(&client, endpoint, &body).await;
        assert_eq!(
            error_code(r),
            ErrorCode::InvalidRequest,
            "{endpoint} {body}"
        );
    }
    for endpoint in [ep::STATS_HISTORY, ep::QUIET_STREAKS, ep::HOSTS_BLOCK] {
        let reply = call_raw(&client, endpoint, b"{not json".to_vec()).await;
        let body: Value = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(body["error"]["code"], "invalid_request", "{endpoint}");
        assert_eq!(
            reply
                .headers
                .unwrap()
                .get("Nats-Service-Error-Code")
                .map(|v| v.as_str()),
            Some("400")
        );
    }
    assert!(ping(&client).await);

    task.abort();
    let mut coord = coord;
    let status = coord.svc.terminate(Duration::from_secs(15)).await.unwrap();
    assert!(status.success(), "{}", coord.svc.logs());
    // The open streak of q-1 was persisted on shutdown.
    let n: i64 = pg
        .query_one(
            "SELECT count(*) FROM quiet_streaks WHERE host_id = 'q-1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(n >= 2, "streaks stored: {n}");
}

async fn lullctl(infra: &Infra, args: &[&str]) -> lull_tests::Finished {
    let out = Service::builder("lullctl")
        .env("LULL_NATS_URL", infra.nats.url())
        .args(args)
        .run(Duration::from_secs(20))
        .await
        .expect("run lullctl");
    assert!(out.status.success(), "lullctl {args:?}: {out:?}");
    out
}

async fn blocked(client: &async_nats::Client) -> HashMap<String, bool> {
    let hosts: Vec<HostSummary> = call(client, ep::HOSTS_LIST, &json!({})).await.unwrap();
    hosts.into_iter().map(|h| (h.host_id, h.blocked)).collect()
}

async fn wait_blocked(client: &async_nats::Client, want: &[(&str, bool)]) {
    let c = client.clone();
    let want: Vec<(String, bool)> = want.iter().map(|(h, b)| (h.to_string(), *b)).collect();
    let w = want.clone();
    wait_until(Duration::from_secs(15), || {
        let c = c.clone();
        let w = w.clone();
        async move {
            let hosts: Vec<HostSummary> = match call(&c, ep::HOSTS_LIST, &json!({})).await {
                Ok(h) => h,
                Err(_) => return false,
            };
            w.iter()
                .all(|(h, b)| hosts.iter().any(|x| x.host_id == *h && x.blocked == *b))
        }
    })
    .await
    .ok();
    let now = blocked(client).await;
    for (h, b) in &want {
        assert_eq!(
            now.get(h),
            Some(b),
            "blocked flags never became {want:?}: {now:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_work_from_lullctl_and_survive_restarts() {
    let infra = Infra::start().await.expect("infra");
    let mut coord = start_coordinator(&infra, &env(&[])).await;
    let client = infra.nats.connect().await.unwrap();
    let (pubr, task) = Publisher::start(client.clone());
    pubr.set("b-1", Some(IDLE));
    pubr.set("b-2", Some(IDLE));
    wait_blocked(&client, &[("b-1", false), ("b-2", false)]).await;
    wait_state(&client, &coord, "b-1", QuietState::Quiet).await;

    // Block one host with a reason and a window, through lullctl.
    let out = lullctl(
        &infra,
        &["block", "b-1", "--reason", "disk swap", "--until", "1h"],
    )
    .await;
    assert!(out.stdout.contains("blocked host b-1"), "{out:?}");
    assert!(out.stdout.contains("disk swap"), "{out:?}");
    wait_blocked(&client, &[("b-1", true), ("b-2", false)]).await;
    let d: HostDetail = call(&client, ep::HOSTS_GET, &json!({"host_id": "b-1"}))
        .await
        .unwrap();
    let b = d.block.expect("block in hosts.get");
    assert_eq!(b.reason.as_deref(), Some("disk swap"));
    assert!(b.until.unwrap() > now_unix() + 3000.0);

    // The lease book sees it: a lease on b-1 is refused with `blocked`.
    let c = client.clone();
    let denial: Value = wait_for(Duration::from_secs(10), || {
        let c = c.clone();
        async move {
            let r: Value = call(
                &c,
                ep::LEASE_REQUEST,
                &json!({"addon_id": "e2e", "job_type": "reindex", "host_id": "b-1", "cost_units": 1}),
            )
            .await
            .ok()?;
            (r["reason_code"] == "blocked").then_some(r)
        }
    })
    .await
    .unwrap_or_else(|_| panic!("lease never denied as blocked\n{}", coord.svc.logs()));
    assert_eq!(denial["approved"], false);
    assert!(
        denial["reason"].as_str().unwrap().contains("disk swap"),
        "{denial}"
    );

    // The whole fleet, through the endpoint.
    let r: BlockReply = call(
        &client,
        ep::HOSTS_BLOCK,
        &json!({"all": true, "reason": "maintenance window"}),
    )
    .await
    .unwrap();
    assert!(r.ok && r.changed);
    assert_eq!(r.blocks.len(), 2);
    wait_blocked(&client, &[("b-1", true), ("b-2", true)]).await;
    let url = coord.metrics_url.clone();
    wait_until(Duration::from_secs(5), || {
        let url = url.clone();
        async move {
            let t = scrape(&url).await.unwrap_or_default();
            metric(&t, "lull_host_blocked", &[("host", "b-2")]) == Some(1.0)
                && metric(&t, "lull_hosts_blocked", &[]) == Some(2.0)
                && metric(&t, "lull_blocks", &[("scope", "fleet")]) == Some(1.0)
        }
    })
    .await
    .expect("block metrics");

    // Restart: both blocks are loaded from Postgres.
    assert!(coord
        .svc
        .terminate(Duration::from_secs(15))
        .await
        .unwrap()
        .success());
    let mut coord = start_coordinator(&infra, &env(&[])).await;
    wait_blocked(&client, &[("b-1", true), ("b-2", true)]).await;
    let out = lullctl(&infra, &["--json", "block"]).await;
    let listed: Value = serde_json::from_str(&out.stdout).unwrap();
    let blocks = listed["blocks"].as_array().expect("blocks");
    assert_eq!(blocks.len(), 2, "{listed}");
    assert!(blocks[0].get("host_id").is_none(), "fleet first: {listed}");
    assert!(blocks[0]["blocked_at"].is_string(), "RFC 3339: {listed}");

    // Lift the fleet block: b-1 keeps its own.
    let out = lullctl(&infra, &["unblock", "--all"]).await;
    assert!(out.stdout.contains("unblocked the fleet"), "{out:?}");
    wait_blocked(&client, &[("b-1", true), ("b-2", false)]).await;
    let out = lullctl(&infra, &["unblock", "b-1"]).await;
    assert!(out.stdout.contains("unblocked host b-1"), "{out:?}");
    let out = lullctl(&infra, &["unblock", "b-1"]).await;
    assert!(out.stdout.contains("was not blocked"), "{out:?}");
    wait_blocked(&client, &[("b-1", false), ("b-2", false)]).await;

    // A maintenance window ends by itself, and the table forgets it.
    let r: BlockReply = call(
        &client,
        ep::HOSTS_BLOCK,
        &json!({"host_id": "b-2", "until": now_unix() + 1.5}),
    )
    .await
    .unwrap();
    assert_eq!(r.blocks.len(), 1);
    wait_blocked(&client, &[("b-2", true)]).await;
    wait_blocked(&client, &[("b-2", false)]).await;

    // Restart again: nothing is blocked.
    assert!(coord
        .svc
        .terminate(Duration::from_secs(15))
        .await
        .unwrap()
        .success());
    let mut coord = start_coordinator(&infra, &env(&[])).await;
    wait_blocked(&client, &[("b-1", false), ("b-2", false)]).await;
    let pg = infra.pg.client().await.unwrap();
    let c = &pg;
    wait_until(Duration::from_secs(10), || async move {
        c.query_one("SELECT count(*) FROM host_blocks", &[])
            .await
            .map(|r| r.get::<_, i64>(0) == 0)
            .unwrap_or(false)
    })
    .await
    .expect("ended block deleted from the table");
    task.abort();
    assert!(coord
        .svc
        .terminate(Duration::from_secs(15))
        .await
        .unwrap()
        .success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_old_partitions_and_rows_while_ingest_goes_on() {
    let infra = Infra::start().await.expect("infra");
    // Tiny retention: raw rows 6 s in 2 s partitions, rollups 8 s in 4 s
    // partitions, streaks 5 s.
    let coord = start_coordinator(
        &infra,
        &env(&[
            ("LULL_QUIET__HISTORY__RAW_RETENTION_SEC", "6"),
            ("LULL_QUIET__HISTORY__ROLLUP_STEP_SEC", "1"),
            ("LULL_HISTORY__ROLLUP_CHUNK_SEC", "2"),
            ("LULL_HISTORY__RAW_PARTITION_SEC", "2"),
            ("LULL_HISTORY__ROLLUP_PARTITION_SEC", "4"),
            ("LULL_HISTORY__ROLLUP_RETENTION_SEC", "8"),
            ("LULL_HISTORY__PARTITION_AHEAD_SEC", "10"),
            ("LULL_HISTORY__STREAK_RETENTION_SEC", "5"),
        ]),
    )
    .await;
    let client = infra.nats.connect().await.unwrap();
    let (pubr, task) = Publisher::start(client.clone());
    pubr.set("r-1", Some(IDLE));
    let pg = infra.pg.client().await.unwrap();
    // Old rows put there directly: a streak from an hour ago and a block
    // that ended an hour ago.
    let old = now_unix() - 3600.0;
    pg.execute(
        "INSERT INTO quiet_streaks (host_id, start_time, end_time, avg_score, min_score)
         VALUES ('old-host', $1, $2, 90, 80)",
        &[&(old - 600.0), &old],
    )
    .await
    .unwrap();
    pg.execute(
        "INSERT INTO host_blocks (target, reason, until, blocked_at) VALUES ('gone', 'x', $1, $2)",
        &[&old, &(old - 60.0)],
    )
    .await
    .unwrap();
    let started = now_unix();

    // Let data age past retention.
    let url = coord.metrics_url.clone();
    let pgr = &pg;
    wait_until(Duration::from_secs(40), || {
        let url = url.clone();
        async move {
            if now_unix() - started < 12.0 {
                return false;
            }
            let t = scrape(&url).await.unwrap_or_default();
            let dropped = [
                "quiet_samples",
                "stats_samples",
                "quiet_rollups",
                "stats_rollups",
            ]
            .iter()
            .all(|tb| {
                metric(
                    &t,
                    "lull_history_partitions_dropped_total",
                    &[("table", tb)],
                )
                .is_some_and(|v| v >= 1.0)
            });
            let q = |sql: &'static str| async move {
                pgr.query_one(sql, &[])
                    .await
                    .map(|r| r.get::<_, i64>(0))
                    .unwrap_or(-1)
            };
            dropped
                && q("SELECT count(*) FROM quiet_streaks WHERE host_id = 'old-host'").await == 0
                && q("SELECT count(*) FROM host_blocks WHERE target = 'gone'").await == 0
        }
    })
    .await
    .unwrap_or_else(|_| panic!("retention did not run\n{}", coord.svc.logs()));

    // Nothing older than retention + one partition (+ a run's slack) is left,
    // recent rows are, and no write failed on the way.
    let now = now_unix();
    let oldest = |sql: &'static str| {
        let pg = &pg;
        async move {
            pg.query_one(sql, &[])
                .await
                .unwrap()
                .get::<_, Option<f64>>(0)
        }
    };
    let q_min = oldest("SELECT min(t) FROM quiet_samples")
        .await
        .expect("recent quiet rows");
    assert!(
        q_min >= now - 6.0 - 2.0 - 2.0,
        "oldest quiet row {:.1}s old",
        now - q_min
    );
    let s_min = oldest("SELECT min(t) FROM stats_samples")
        .await
        .expect("recent group rows");
    assert!(
        s_min >= now - 6.0 - 2.0 - 2.0,
        "oldest group row {:.1}s old",
        now - s_min
    );
    let r_min = oldest("SELECT min(t) FROM quiet_rollups")
        .await
        .expect("recent rollups");
    assert!(
        r_min >= now - 8.0 - 4.0 - 2.0,
        "oldest rollup {:.1}s old",
        now - r_min
    );
    let recent: i64 = pg
        .query_one(
            "SELECT count(*) FROM quiet_samples WHERE t > $1",
            &[&(now - 2.0)],
        )
        .await
        .unwrap()
        .get(0);
    assert!(recent > 0, "ingest stopped");
    let parts: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'quiet_samples'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // Behind: retention / width + 1; ahead: ahead / width + 1.
    assert!(parts <= 6 / 2 + 1 + 10 / 2 + 2, "{parts} partitions");
    let text = scrape(&coord.metrics_url).await.unwrap();
    assert!(
        metric(
            &text,
            "lull_db_write_errors_total",
            &[("table", "quiet_samples")]
        )
        .is_none(),
        "{text}"
    );
    assert!(
        metric(
            &text,
            "lull_history_rows_deleted_total",
            &[("table", "quiet_streaks")]
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        !text.contains("lull_history_maintenance_errors_total{"),
        "maintenance failed:\n{text}\n{}",
        coord.svc.logs()
    );
    task.abort();
    let mut coord = coord;
    assert!(coord
        .svc
        .terminate(Duration::from_secs(15))
        .await
        .unwrap()
        .success());
}
