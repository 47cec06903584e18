//! End-to-end: build regions against real NATS/JetStream, Postgres and the
//! coordinator (and `lullctl`) as processes. Seed 000's three scenarios;
//! shuffled, duplicated reports with a `kill -9` mid-stream that equal a
//! recomputation; selection ranking, exclusions and a pardon; an invalid
//! report terminated and counted; import of legacy and current JSON and the
//! export round trip.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::jetstream;
use lull_engine::region::{campaign_stats, recompute, Baselines, RegionConfig};
use lull_proto::msg::region::{BuildRecord, CampaignStats, FatigueEventReport, RegionSelectReply};
use lull_proto::subjects::endpoints as ep;
use lull_proto::Subjects;
use lull_tests::{scrape, wait_for, wait_until, Infra, Service};
use serde_json::{json, Value};
use support::*;

const T0: f64 = 1_763_026_000.0;
/// The seed fixtures and builds below carry fixed 2025 dates: lift the
/// past bound on report times (`reports_max_age_days`) for them.
const FIXED_DATES: &[(&str, &str)] = &[("LULL_INGEST__REPORTS_MAX_AGE_DAYS", "0")];

const SEED000: &str = include_str!("../../proto/tests/fixtures/seed000.jsonc");
const SEED001: &str = include_str!("../../proto/tests/fixtures/seed001.json");

use lull_proto::msg::region::{
    example_build as build, example_build_fatigue as fatigue, example_fatigue_event as event,
};

/// Publishes to JetStream, with `Nats-Msg-Id` when `id` is given; waits for
/// every acknowledgement.
struct Publisher {
    js: jetstream::Context,
    acks: Vec<jetstream::context::PublishAckFuture>,
}

impl Publisher {
    fn new(client: &async_nats::Client) -> Publisher {
        Publisher {
            js: jetstream::new(client.clone()),
            acks: Vec::new(),
        }
    }

    async fn raw(&mut self, subject: String, id: Option<&str>, body: Vec<u8>) {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(id) = id {
            headers.insert("Nats-Msg-Id", id);
        }
        let ack = self
            .js
            .publish_with_headers(subject, headers, body.into())
            .await
            .expect("publish");
        self.acks.push(ack);
        if self.acks.len() >= 256 {
            self.flush().await;
        }
    }

    async fn build(&mut self, b: &BuildRecord, with_id: bool) {
        let subject = Subjects::default().report_build(&b.region);
        let id = with_id.then_some(b.build_id.as_str());
        self.raw(subject, id, serde_json::to_vec(b).unwrap()).await;
    }

    async fn event(&mut self, e: &FatigueEventReport, with_id: bool) {
        let subject = Subjects::default().report_fatigue(&e.region);
        let id = with_id.then_some(e.event_id.as_str());
        self.raw(subject, id, serde_json::to_vec(e).unwrap()).await;
    }

    async fn flush(&mut self) {
        for ack in self.acks.drain(..) {
            ack.await.expect("stream ack");
        }
    }
}

async fn stats(client: &async_nats::Client) -> Value {
    call::<_, Value>(client, ep::REGIONS_STATS, &json!({}))
        .await
        .expect("regions.stats")
}

/// Waits until the reports consumer has nothing pending or unacked.
async fn drained(client: &async_nats::Client) {
    let js = jetstream::new(client.clone());
    let r = wait_until(Duration::from_secs(60), || {
        let js = js.clone();
        async move {
            let Ok(stream) = js.get_stream("LULL_REPORTS").await else {
                return false;
            };
            let Ok(mut c) = stream
                .get_consumer::<jetstream::consumer::pull::Config>("lull-coordinator-reports")
                .await
            else {
                return false;
            };
            match c.info().await {
                Ok(i) => i.num_pending == 0 && i.num_ack_pending == 0,
                Err(_) => false,
            }
        }
    })
    .await;
    assert!(r.is_ok(), "the reports consumer never drained");
}

/// Waits until `regions.stats` satisfies `ok`.
async fn stats_until(
    client: &async_nats::Client,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let got = wait_for(Duration::from_secs(30), || {
        let client = client.clone();
        let ok = &ok;
        async move {
            let s = call::<_, Value>(&client, ep::REGIONS_STATS, &json!({}))
                .await
                .ok()?;
            ok(&s).then_some(s)
        }
    })
    .await;
    match got {
        Ok(v) => v,
        Err(_) => panic!("{what}: {}", stats(client).await),
    }
}

/// `promtool check metrics` has nothing to say about the region metrics.
fn promtool_clean(exposition: &str) {
    let regions: String = exposition
        .lines()
        .filter(|l| l.contains("lull_region_"))
        .map(|l| format!("{l}\n"))
        .collect();
    lull_tests::promtool::assert_clean(&regions);
}

/// Log text without ANSI colour sequences.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn strip_comments(src: &str) -> String {
    src.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

const REGION_FIELDS: &[&str] = &[
    "total_builds",
    "successes",
    "failures",
    "success_rate",
    "total_duration_minutes",
    "total_queue_wait_minutes",
    "avg_duration_minutes",
    "avg_queue_wait_minutes",
    "fastest_minutes",
    "slowest_minutes",
    "last_error",
    "last_error_time",
    "fatigue_incidents",
    "last_fatigue_reason",
    "last_fatigue_reason_code",
    "last_fatigue_time",
    "current_streak",
    "last_used",
    "recent_builds",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenarios_selection_pardon_and_invalid_reports() {
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(&infra, FIXED_DATES).await;
    let client = infra.nats.connect().await.unwrap();
    let mut p = Publisher::new(&client);

    // Seed 000, scenario 1: a build that timed out with a fatigue.
    let mut s1 = build("us-west2", "abc123-xyz789", T0 + 3950.0, false);
    s1.status = Some("TIMEOUT".into());
    s1.duration_seconds = Some(2700.0);
    s1.duration_minutes = Some(45.0);
    s1.queue_wait_seconds = Some(2700.0);
    s1.queue_wait_minutes = Some(45.0);
    s1.spot_price_per_hour = Some(8.53);
    s1.cost_usd = Some(6.40);
    s1.error = Some("Build stuck in QUEUED for 45 minutes".into());
    s1.timeout_reason = Some("QUEUED".into());
    s1.fatigues = vec![fatigue(
        T0 + 3950.0,
        "Queue timeout - 45min QUEUED",
        "queue-timeout",
    )];
    // Scenario 3: a normal failure, no fatigue (older).
    let mut s3 = build("us-west2", "def456-uvw123", T0, false);
    s3.failed_step = Some(45);
    s3.error = Some("Docker layer pull timeout".into());
    // Scenario 2: a fatigue with no build, in another region.
    let s2 = event("asia-northeast1", "beacon-1", T0 + 100.0);
    p.build(&s3, true).await;
    p.event(&s2, true).await;
    p.flush().await;
    let before = stats_until(&client, "scenario 3 and 2", |s| {
        s["regions"]["us-west2"]["total_builds"] == 1
            && s["regions"]["asia-northeast1"]["fatigue_incidents"] == 1
    })
    .await;
    let r = &before["regions"]["us-west2"];
    assert_eq!(r["fatigue_incidents"], 0, "scenario 3 adds no fatigue");
    assert_eq!(r["last_fatigue_reason"], Value::Null);
    assert_eq!(r["last_error"], "Docker layer pull timeout (step 45/72)");
    let a = &before["regions"]["asia-northeast1"];
    assert_eq!(a["total_builds"], 0, "scenario 2 adds no build");
    assert_eq!(a["last_fatigue_reason"], "Pool creation timeout");
    assert_eq!(a["last_fatigue_reason_code"], "beacon-timeout");
    assert_eq!(a["last_fatigue_time"], T0 + 100.0);
    assert_eq!(a["recent_builds"], json!([]));
    assert_eq!(a["last_used"], Value::Null);

    p.build(&s1, true).await;
    p.flush().await;
    let s = stats_until(&client, "scenario 1", |s| {
        s["regions"]["us-west2"]["total_builds"] == 2
    })
    .await;
    // The exact seed 000 structure.
    let keys: BTreeSet<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "campaign_start",
            "last_updated",
            "total_builds_all_regions",
            "regions"
        ])
    );
    let r = &s["regions"]["us-west2"];
    let fields: BTreeSet<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        REGION_FIELDS.iter().copied().collect::<BTreeSet<_>>()
    );
    assert_eq!(s["campaign_start"], T0);
    assert_eq!(s["last_updated"], T0 + 3950.0);
    assert_eq!(s["total_builds_all_regions"], 2);
    assert_eq!(
        (r["failures"].clone(), r["current_streak"].clone()),
        (json!(2), json!(-2))
    );
    assert_eq!(
        r["fatigue_incidents"], 1,
        "the build's fatigue counts for the region"
    );
    assert_eq!(r["last_fatigue_reason"], "Queue timeout - 45min QUEUED");
    assert_eq!(r["last_fatigue_reason_code"], "queue-timeout");
    assert_eq!(r["last_fatigue_time"], T0 + 3950.0);
    assert_eq!(r["last_error"], "Build stuck in QUEUED for 45 minutes");
    let recent = r["recent_builds"].as_array().unwrap();
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[0]["build_id"], "abc123-xyz789", "newest first");
    assert_eq!(recent[0]["fatigues"][0]["fatigue_type"], "FATIGUED");
    assert_eq!(recent[0]["fatigues"][0]["fatigue_duration_hours"], 4);
    assert_eq!(recent[0]["duration_seconds"], 2700);
    assert_eq!(recent[1]["fatigues"], json!([]));
    assert!(recent[0].get("region").is_none());

    // An invalid report is terminated, counted, and changes nothing.
    let mut bad = build("us-west2", "bad-1", T0 + 5000.0, true);
    bad.duration_minutes = Some(-3.0);
    p.build(&bad, true).await;
    p.raw(
        Subjects::default().report_build("us-west2"),
        Some("garbage"),
        b"{not json".to_vec(),
    )
    .await;
    p.flush().await;
    let url = coord.metrics_url.clone();
    wait_until(Duration::from_secs(15), || {
        let url = url.clone();
        async move {
            let t = scrape(&url).await.unwrap_or_default();
            metric(
                &t,
                "lull_reports_total",
                &[("kind", "build"), ("result", "invalid")],
            ) == Some(2.0)
        }
    })
    .await
    .unwrap_or_else(|_| panic!("invalid reports not counted:\n{}", coord.svc.logs()));
    drained(&client).await;
    assert_eq!(stats(&client).await, s, "an invalid report changes nothing");
    assert!(
        coord.svc.logs().contains("bad-1"),
        "the rejected id is logged"
    );

    // Selection: healthy regions ranked, the others excluded with why.
    let now = lull_common::runtime::now_unix();
    let mut batch = Vec::new();
    for i in 0..4 {
        let mut cheap = build(
            "cheap",
            &format!("c{i}"),
            now - 86_400.0 * 3.0 + f64::from(i),
            true,
        );
        cheap.spot_price_per_hour = Some(2.0);
        batch.push(cheap);
        let mut fast = build(
            "fast",
            &format!("f{i}"),
            now - 86_400.0 * 3.0 + f64::from(i),
            true,
        );
        fast.spot_price_per_hour = Some(8.0);
        fast.duration_minutes = Some(5.0);
        batch.push(fast);
    }
    let mut tired = build("tired", "t0", now - 600.0, false);
    tired.fatigues = vec![fatigue(
        now - 600.0,
        "Queue timeout - 45min QUEUED",
        "queue-timeout",
    )];
    batch.push(tired);
    // Outlaw: 4 old fatigue incidents (no rest left) and 1 success in 4.
    for i in 0..4 {
        let mut b = build(
            "outlaw",
            &format!("o{i}"),
            now - 86_400.0 * 10.0 + f64::from(i) * 3600.0,
            i == 0,
        );
        b.fatigues = vec![fatigue(b.timestamp, "Worker pool timeout", "pool-timeout")];
        batch.push(b);
    }
    for b in &batch {
        p.build(b, true).await;
    }
    p.flush().await;
    stats_until(&client, "selection regions", |s| {
        s["regions"]["outlaw"]["total_builds"] == 4 && s["regions"]["tired"]["total_builds"] == 1
    })
    .await;
    let sel: RegionSelectReply = call(
        &client,
        ep::REGIONS_SELECT,
        &json!({"candidates": ["cheap", "fast", "tired", "outlaw", "nowhere"],
                "weights": {"price": 1.0, "success": 0.0, "speed": 0.0}}),
    )
    .await
    .unwrap();
    let ranked: Vec<&str> = sel.ranked.iter().map(|r| r.region.as_str()).collect();
    assert_eq!(ranked, ["cheap", "fast"], "{sel:?}");
    assert_eq!(sel.ranked[0].scores.price, 1.0);
    assert_eq!(sel.ranked[1].scores.price, 0.25);
    let sel_speed: RegionSelectReply = call(
        &client,
        ep::REGIONS_SELECT,
        &json!({"candidates": ["cheap", "fast"], "weights": {"speed": 1.0}}),
    )
    .await
    .unwrap();
    assert_eq!(sel_speed.ranked[0].region, "fast");
    let why: Vec<(String, String)> = sel
        .excluded
        .iter()
        .map(|x| (x.region.clone(), format!("{:?}", x.code).to_uppercase()))
        .collect();
    assert_eq!(
        why,
        [
            ("nowhere".to_string(), "UNKNOWN".to_string()),
            ("outlaw".into(), "OUTLAWED".into()),
            ("tired".into(), "FATIGUED".into()),
        ]
    );
    let tired_until = sel
        .excluded
        .iter()
        .find(|x| x.region == "tired")
        .unwrap()
        .until;
    assert!(
        tired_until.is_some_and(|u| (u - (now - 600.0 + 4.0 * 3600.0)).abs() < 1.0),
        "{tired_until:?}"
    );
    let outlaw = sel.excluded.iter().find(|x| x.region == "outlaw").unwrap();
    assert_eq!(outlaw.until, None);
    assert!(
        outlaw.reason.contains("4 fatigue incidents"),
        "{}",
        outlaw.reason
    );

    // The gauges say so.
    let url = coord.metrics_url.clone();
    let gauges_ok = wait_until(Duration::from_secs(15), || {
        let url = url.clone();
        async move {
            let t = scrape(&url).await.unwrap_or_default();
            metric(&t, "lull_region_outlawed", &[("region", "outlaw")]) == Some(1.0)
                && metric(
                    &t,
                    "lull_region_fatigue_state",
                    &[("region", "tired"), ("state", "FATIGUED")],
                ) == Some(1.0)
                && metric(
                    &t,
                    "lull_region_builds_total",
                    &[("region", "cheap"), ("result", "success")],
                ) == Some(4.0)
        }
    })
    .await;
    let text = scrape(&coord.metrics_url).await.unwrap();
    assert!(gauges_ok.is_ok(), "region gauges missing:\n{text}");
    for name in [
        "lull_region_success_ratio",
        "lull_region_streak",
        "lull_region_fatigue_incidents_total",
        "lull_region_build_cost_cents_total",
        "lull_region_build_duration_seconds_bucket",
        "lull_region_queue_wait_seconds_bucket",
    ] {
        assert!(text.contains(name), "{name} missing");
        assert!(text.contains(&format!("# HELP {}", name.trim_end_matches("_bucket"))));
    }

    promtool_clean(&text);

    // A pardon lifts the outlaw, is persisted, and survives a restart.
    let pardon: Value = call(&client, ep::REGIONS_PARDON, &json!({"region": "outlaw"}))
        .await
        .unwrap();
    assert_eq!(pardon["was_outlawed"], true);
    assert_eq!(pardon["state"], "HEALTHY");
    let unknown =
        call::<_, Value>(&client, ep::REGIONS_PARDON, &json!({"region": "nowhere"})).await;
    assert!(
        matches!(
            unknown,
            Err(lull_client::request::RequestError::Service {
                code: lull_proto::ErrorCode::NotFound,
                ..
            })
        ),
        "{unknown:?}"
    );
    let pg = infra.pg.client().await.unwrap();
    let n: i64 = pg
        .query_one(
            "SELECT count(*) FROM region_pardons WHERE region = 'outlaw'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let mut coord = coord;
    let port = coord.metrics_port;
    assert!(coord
        .svc
        .terminate(Duration::from_secs(15))
        .await
        .unwrap()
        .success());
    let coord = start_coordinator_on(&infra, port, &[]).await;
    let sel: RegionSelectReply = call(
        &client,
        ep::REGIONS_SELECT,
        &json!({"candidates": ["outlaw"]}),
    )
    .await
    .unwrap();
    assert_eq!(
        sel.ranked.len(),
        1,
        "pardon survives a restart: {sel:?}\n{}",
        coord.svc.logs()
    );
    assert_eq!(
        stats(&client).await["regions"]["us-west2"],
        s["regions"]["us-west2"]
    );

    // Insights answer from the same state.
    let ins: Value = call(&client, ep::REGIONS_INSIGHTS, &json!({}))
        .await
        .unwrap();
    assert!(ins["fatigue"]["total"].as_u64().unwrap() >= 1, "{ins}");
    assert!(
        ins["badges"].as_array().is_some_and(|b| !b.is_empty()),
        "{ins}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffled_duplicated_reports_survive_kill9_and_equal_a_recomputation() {
    let infra = Infra::start().await.expect("infra");
    let mut coord = start_coordinator(&infra, FIXED_DATES).await;
    let client = infra.nats.connect().await.unwrap();
    let mut p = Publisher::new(&client);

    // 2400 builds and 60 bare events in four regions.
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let regions = ["us-west2", "europe-west1", "asia-northeast1", "us-central1"];
    let mut builds = Vec::new();
    for i in 0..2400u64 {
        let region = regions[(next() % 4) as usize];
        let t = T0 + (next() % 500_000) as f64;
        let mut b = build(region, &format!("b{i:05}"), t, next() % 5 != 0);
        b.duration_minutes = Some((next() % 6000) as f64 / 7.0 + 1.0);
        b.queue_wait_minutes = Some((next() % 300) as f64 / 3.0);
        if next() % 10 == 0 {
            b.fatigues = vec![fatigue(t, &format!("Queue timeout {i}"), "queue-timeout")];
        }
        builds.push(b);
    }
    let events: Vec<FatigueEventReport> = (0..60u64)
        .map(|i| {
            let region = regions[(next() % 4) as usize];
            event(region, &format!("e{i:03}"), T0 + (next() % 500_000) as f64)
        })
        .collect();

    // Arrivals: every record once, a quarter again with the same
    // Nats-Msg-Id (dropped by the stream), a tenth again without one
    // (reaching the coordinator), all shuffled.
    #[derive(Clone, Copy)]
    enum A {
        B(usize, bool),
        E(usize, bool),
    }
    let mut arrivals: Vec<A> = (0..builds.len()).map(|i| A::B(i, true)).collect();
    arrivals.extend((0..events.len()).map(|i| A::E(i, true)));
    for i in 0..builds.len() {
        match next() % 20 {
            0..=4 => arrivals.push(A::B(i, true)),
            5..=6 => arrivals.push(A::B(i, false)),
            _ => {}
        }
    }
    for i in 0..events.len() {
        if next() % 3 == 0 {
            arrivals.push(A::E(i, false));
        }
    }
    for i in (1..arrivals.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        arrivals.swap(i, j);
    }
    let half = arrivals.len() / 2;
    for a in &arrivals[..half] {
        match *a {
            A::B(i, id) => p.build(&builds[i], id).await,
            A::E(i, id) => p.event(&events[i], id).await,
        }
    }
    p.flush().await;

    // Kill -9 while the first half is being committed, publish the rest
    // while the coordinator is down, then restart it.
    stats_until(&client, "some commits", |s| {
        s["total_builds_all_regions"].as_u64().unwrap_or(0) > 0
    })
    .await;
    let port = coord.metrics_port;
    coord.svc.kill9();
    for a in &arrivals[half..] {
        match *a {
            A::B(i, id) => p.build(&builds[i], id).await,
            A::E(i, id) => p.event(&events[i], id).await,
        }
    }
    p.flush().await;
    let mut coord = start_coordinator_on(&infra, port, &[]).await;
    drained(&client).await;

    let expected = serde_json::to_value(campaign_stats(&recompute(
        &Baselines::default(),
        &builds,
        &events,
        &RegionConfig::default(),
    )))
    .unwrap();
    let got = stats(&client).await;
    assert_eq!(got["total_builds_all_regions"], 2400);
    for r in regions {
        assert_eq!(got["regions"][r], expected["regions"][r], "region {r}");
    }
    assert_eq!(got, expected, "nothing lost, nothing counted twice");
    let pg = infra.pg.client().await.unwrap();
    let n: i64 = pg
        .query_one("SELECT count(*) FROM region_builds", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2400);
    let text = scrape(&coord.metrics_url).await.unwrap();
    let total: f64 = regions
        .iter()
        .flat_map(|r| {
            ["success", "failure"].map(|res| {
                metric(
                    &text,
                    "lull_region_builds_total",
                    &[("region", r), ("result", res)],
                )
                .unwrap_or(0.0)
            })
        })
        .sum();
    assert_eq!(total, 2400.0);

    // The persisted aggregates alone (no replay) give the same answer.
    assert!(coord
        .svc
        .terminate(Duration::from_secs(15))
        .await
        .unwrap()
        .success());
    let coord = start_coordinator_on(&infra, port, &[]).await;
    assert_eq!(stats(&client).await, expected);
    assert!(
        plain(&coord.svc.logs()).contains("replayed=0"),
        "a clean restart replays nothing:\n{}",
        coord.svc.logs()
    );
}

async fn lullctl(infra: &Infra, args: &[&str]) -> lull_tests::Finished {
    let out = Service::builder("lullctl")
        .envs(infra.lull_env())
        .args(args)
        .run(Duration::from_secs(60))
        .await
        .expect("run lullctl");
    assert!(out.status.success(), "lullctl {args:?}: {out:?}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_legacy_and_current_json_and_export_round_trip() {
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(&infra, FIXED_DATES).await;
    let client = infra.nats.connect().await.unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Seed 000 as shown (with // comments) imports, and exports unchanged.
    let seed000 = dir.path().join("seed000.jsonc");
    std::fs::write(&seed000, SEED000).unwrap();
    let out = lullctl(
        &infra,
        &["--json", "regions", "import", seed000.to_str().unwrap()],
    )
    .await;
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["regions_adopted"], json!(["us-west2"]));
    assert_eq!(report["builds_adopted"], 2);
    let expected000: Value = serde_json::from_str(&strip_comments(SEED000)).unwrap();
    let exported = dir.path().join("export.json");
    lullctl(&infra, &["regions", "export", exported.to_str().unwrap()]).await;
    let back: Value = serde_json::from_str(&std::fs::read_to_string(&exported).unwrap()).unwrap();
    assert_eq!(back, expected000);

    // Again: every build is known, nothing changes.
    let out = lullctl(
        &infra,
        &["--json", "regions", "import", exported.to_str().unwrap()],
    )
    .await;
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["builds_skipped"], 2);
    assert_eq!(report["builds_added"], 0);
    assert_eq!(stats(&client).await, expected000);

    // A reported build that was imported is a duplicate.
    let mut p = Publisher::new(&client);
    let mut dup: BuildRecord =
        serde_json::from_value(expected000["regions"]["us-west2"]["recent_builds"][0].clone())
            .unwrap();
    dup.region = "us-west2".into();
    p.build(&dup, false).await;
    p.flush().await;
    drained(&client).await;
    assert_eq!(stats(&client).await, expected000);

    // Legacy seed 001 (region-level fatigue_reason / fatigue_time).
    let mut legacy: Value = serde_json::from_str(SEED001).unwrap();
    for r in legacy["regions"].as_object_mut().unwrap().values_mut() {
        let o = r.as_object_mut().unwrap();
        for (old, new) in [
            ("fatigue_reason", "last_fatigue_reason"),
            ("fatigue_time", "last_fatigue_time"),
        ] {
            if let Some(v) = o.remove(new) {
                o.insert(old.into(), v);
            }
        }
        o.remove("last_fatigue_reason_code");
    }
    let legacy_file = dir.path().join("legacy.json");
    std::fs::write(&legacy_file, serde_json::to_vec_pretty(&legacy).unwrap()).unwrap();
    let out = lullctl(
        &infra,
        &["--json", "regions", "import", legacy_file.to_str().unwrap()],
    )
    .await;
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        report["regions_adopted"],
        json!(["asia-northeast1"]),
        "{report}"
    );
    assert_eq!(report["regions_merged"], json!(["us-west2"]));
    let s = stats(&client).await;
    let asia = &s["regions"]["asia-northeast1"];
    let seed: Value = serde_json::from_str(SEED001).unwrap();
    for (field, value) in seed["regions"]["asia-northeast1"].as_object().unwrap() {
        assert_eq!(&asia[field], value, "asia-northeast1.{field}");
    }
    assert_eq!(asia["last_fatigue_reason"], "Worker pool timeout");
    assert_eq!(asia["last_fatigue_reason_code"], Value::Null);
    assert_eq!(s["regions"]["us-west2"], expected000["regions"]["us-west2"]);

    // The table and the JSON views work, and a restart keeps everything.
    let out = lullctl(&infra, &["regions"]).await;
    assert!(out.stdout.contains("asia-northeast1"), "{}", out.stdout);
    let out = lullctl(&infra, &["regions", "insights"]).await;
    assert!(out.stdout.contains("Fatigue incidents"), "{}", out.stdout);
    let out = lullctl(&infra, &["--json", "regions", "select"]).await;
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(v["ranked"].is_array(), "{v}");
    let mut coord = coord;
    let port = coord.metrics_port;
    assert!(coord
        .svc
        .terminate(Duration::from_secs(15))
        .await
        .unwrap()
        .success());
    let _coord = start_coordinator_on(&infra, port, &[]).await;
    assert_eq!(stats(&client).await, s);
    let doc: CampaignStats = call(
        &client,
        ep::REGIONS_STATS,
        &json!({"regions": ["asia-northeast1"], "recent_builds_limit": 0}),
    )
    .await
    .unwrap();
    assert_eq!(doc.regions.len(), 1);
}
