//! End-to-end tests of the agent's fault paths (issue #17 items 2 and 3),
//! with the test-only switch `LULL_FAULT_PANIC_COLLECTOR`:
//!
//! - a collector that panics on every run does not take the agent down: the
//!   other collectors' data keeps coming at the tick cadence, the panicking
//!   one keeps its own cadence, and `lull_agent_collector_runs_total
//!   {result="panic"}`, `loop.health` and the snapshot's `errors` show it;
//! - the release profile unwinds (a check of Cargo.toml), and the panic
//!   test runs against a release-built agent when `LULL_TEST_AGENT_BIN`
//!   names one (it then asserts from the agent's own build info that it is
//!   a release build with the unwind strategy): see docs/agent.md;
//! - seed 004's failure path: the host collector panics after a few good
//!   runs, so ticks fail for real; the agent publishes `loop.failure`
//!   (structured, with the `aliases` block and the top-level legacy keys),
//!   and `hosts.get`, `stats.health`, the coordinator's metrics and
//!   `lullctl hosts HOST` all show it.

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use lull_proto::msg::hosts::{HostDetail, HostGetRequest};
use lull_proto::msg::stats::SystemStatsSnapshot;
use lull_proto::msg::telemetry::LoopHealth;
use lull_proto::subjects::endpoints as ep;
use lull_proto::validate::{decode, DEFAULT_MAX_PAYLOAD};
use lull_tests::{free_port, scrape, wait_for, Infra, NatsServer, Service, ServiceBuilder};
use serde_json::{json, Value};
use support::{call, metric, start_coordinator};

/// Env var naming an agent binary to test instead of the one built with
/// the tests (e.g. `$CARGO_TARGET_DIR/release/lull-agent`).
const AGENT_BIN_ENV: &str = "LULL_TEST_AGENT_BIN";

/// The agent under test: `LULL_TEST_AGENT_BIN`, else the harness's.
fn agent_builder() -> ServiceBuilder {
    let b = Service::builder("lull-agent");
    match std::env::var_os(AGENT_BIN_ENV).filter(|v| !v.is_empty()) {
        Some(bin) => b.binary(bin),
        None => b,
    }
}

/// The first message on `sub` within `within` that `pick` accepts.
async fn next_matching<T>(
    sub: &mut async_nats::Subscriber,
    within: Duration,
    pick: impl Fn(&[u8]) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, sub.next()).await.ok()??;
        if let Some(t) = pick(&msg.payload) {
            return Some(t);
        }
    }
}

async fn metric_at(url: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metric(&scrape(url).await.ok()?, name, labels)
}

#[test]
fn the_release_profile_unwinds() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let toml = std::fs::read_to_string(path).expect("workspace Cargo.toml");
    let mut section = "";
    let mut panic = None;
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[profile.release]" {
            if let Some(v) = line.strip_prefix("panic") {
                panic = Some(v.trim_start_matches([' ', '=']).trim().to_string());
            }
        }
    }
    // Absent means the default, unwind.
    assert!(
        panic.as_deref().is_none_or(|p| p == "\"unwind\""),
        "[profile.release] panic = {panic:?}: with abort a collector's panic kills the agent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_panics_on_every_run_does_not_stop_the_agent() {
    let nats = NatsServer::start().await.expect("nats");
    let port = free_port().expect("free port");
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut agent = agent_builder()
        .env("LULL_NATS_URL", nats.url())
        .env("LULL_METRICS_ADDR", format!("127.0.0.1:{port}"))
        .env("LULL_HOST_ID", "panic-host")
        .env("LULL_SPOOL_DIR", dir.path().join("spool"))
        .env("LULL_INTERVAL_SEC", "0.25")
        .env("LULL_HEALTH_EVERY_N_TICKS", "2")
        .env("LULL_COLLECTORS__HOST__INTERVAL_SEC", "0.25")
        .env("LULL_COLLECTORS__PRESSURE__INTERVAL_SEC", "0.25")
        .env("LULL_COLLECTORS__PRESSURE__JITTER_SEC", "0")
        .env("LULL_FAULT_PANIC_COLLECTOR", "pressure")
        .env("LULL_LOG", "info")
        .start()
        .expect("start agent");
    let client = nats.connect().await.unwrap();
    let mut stats = client.subscribe("lull.stats.panic-host").await.unwrap();
    let mut health = client
        .subscribe("lull.agent.panic-host.health")
        .await
        .unwrap();
    client.flush().await.unwrap();

    // Which agent runs: a release build must say so itself.
    let build = wait_for(Duration::from_secs(15), || async {
        let text = scrape(&metrics_url).await.ok()?;
        text.lines()
            .find(|l| l.starts_with("lull_agent_build_info{"))
            .map(str::to_string)
    })
    .await
    .unwrap_or_else(|_| panic!("no build info\n{}", agent.logs()));
    assert!(build.contains("panic=\"unwind\""), "{build}");
    if std::env::var_os(AGENT_BIN_ENV).is_some() {
        assert!(build.contains("profile=\"release\""), "{build}");
    }
    eprintln!("agent under test: {build}");

    // Stats keep coming every tick with the other collectors' data, and the
    // panic in `errors`.
    let started = Instant::now();
    let mut seqs = Vec::new();
    let mut saw_panic = false;
    let mut with_process = 0;
    while started.elapsed() < Duration::from_secs(5) {
        let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(5), stats.next()).await else {
            panic!("stats stopped arriving\n{}", agent.logs());
        };
        let s: SystemStatsSnapshot =
            decode(&msg.payload, DEFAULT_MAX_PAYLOAD).expect("valid snapshot");
        assert!(s.host.cpu_count > 0);
        assert!(
            s.host.pressure.is_none(),
            "the pressure part is never filled"
        );
        with_process += usize::from(!s.process.is_empty());
        seqs.push(s.seq);
        saw_panic |= s
            .errors
            .iter()
            .any(|e| e.collector == "pressure" && e.error.starts_with("Panic: fault injection"));
    }
    assert!(saw_panic, "no pressure panic in errors\n{}", agent.logs());
    // 20 ticks in 5 s at 0.25 s; allow slack for a machine loaded by the
    // rest of the suite (a stopped loop sends none).
    assert!(seqs.len() >= 8, "only {} snapshots in 5 s", seqs.len());
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
    assert!(with_process >= seqs.len() / 2, "process data missing");
    let elapsed = started.elapsed().as_secs_f64() + 0.5;

    // The panicking collector keeps its cadence (one run per 0.25 s; a
    // third of it on a loaded machine), and the metric counts each run as
    // a panic.
    let panics = metric_at(
        &metrics_url,
        "lull_agent_collector_runs_total",
        &[("collector", "pressure"), ("result", "panic")],
    )
    .await
    .unwrap_or(0.0);
    let host_ok = metric_at(
        &metrics_url,
        "lull_agent_collector_runs_total",
        &[("collector", "host"), ("result", "ok")],
    )
    .await
    .unwrap_or(0.0);
    assert!(
        panics >= 0.33 * elapsed / 0.25,
        "{panics} panics in {elapsed:.1} s"
    );
    assert!(host_ok >= 0.33 * elapsed / 0.25, "host ran {host_ok} times");
    assert_eq!(
        metric_at(
            &metrics_url,
            "lull_agent_collector_runs_total",
            &[("collector", "pressure"), ("result", "ok")],
        )
        .await,
        None
    );
    // No tick failed: the pressure part is optional.
    assert_eq!(
        metric_at(
            &metrics_url,
            "lull_agent_ticks_total",
            &[("result", "failed")]
        )
        .await
        .unwrap_or(0.0),
        0.0
    );
    let text = scrape(&metrics_url).await.unwrap();
    assert!(
        text.contains("# HELP lull_agent_collector_runs_total")
            && text
                .lines()
                .any(|l| l.starts_with("# HELP lull_agent_collector_runs_total")
                    && l.contains("panic")),
        "help text does not name panic"
    );

    // loop.health reports the panics per collector.
    let h: LoopHealth = next_matching(&mut health, Duration::from_secs(5), |p| {
        let h: LoopHealth = decode(p, DEFAULT_MAX_PAYLOAD).ok()?;
        (h.collectors["pressure"].panics >= 3).then_some(h)
    })
    .await
    .unwrap_or_else(|| panic!("no loop.health with the panics\n{}", agent.logs()));
    let p = &h.collectors["pressure"];
    assert!(!p.ok);
    assert_eq!(p.failures, p.panics);
    assert!(p.runs >= p.panics);
    assert!(
        p.last_error.as_deref().unwrap().starts_with("Panic:"),
        "{p:?}"
    );
    assert!(h.collectors["host"].ok && h.collectors["host"].panics == 0);
    assert!(agent.is_running(), "the agent died\n{}", agent.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_loop_failure_reaches_hosts_get_stats_health_metrics_and_lullctl() {
    const HOST: &str = "fail-host";
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(&infra, &[]).await;
    let client = infra.nats.connect().await.unwrap();
    let mut wire = client
        .subscribe(format!("lull.agent.{HOST}.failure"))
        .await
        .unwrap();
    client.flush().await.unwrap();

    // The host collector succeeds 16 times (4 s at 0.25 s), so the
    // coordinator knows the host and has a loop.health, then panics on
    // every run: its result goes stale and every tick fails.
    let (mut agent, _) = support::start_agent(
        &infra,
        HOST,
        &[
            ("LULL_HEALTH_EVERY_N_TICKS", "2"),
            ("LULL_COLLECTORS__HOST__INTERVAL_SEC", "0.25"),
            ("LULL_COLLECTORS__HOST__JITTER_SEC", "0"),
            ("LULL_COLLECTORS__HOST__TIMEOUT_SEC", "1.0"),
            ("LULL_FAULT_PANIC_COLLECTOR", "host@16"),
        ],
    );

    // On the wire: the structured payload, the aliases block and the
    // top-level legacy keys, all agreeing with `summary`. (A slow first
    // host run on a loaded machine may fail a tick earlier, for another
    // reason: wait for the injected one.)
    let v: Value = next_matching(&mut wire, Duration::from_secs(40), |p| {
        let v: Value = serde_json::from_slice(p).ok()?;
        v["error"]
            .as_str()?
            .contains("Panic: fault injection")
            .then_some(v)
    })
    .await
    .unwrap_or_else(|| panic!("no loop.failure published\n{}", agent.logs()));
    assert_eq!(v["status"], "error", "{v}");
    let err = v["error"].as_str().unwrap();
    assert!(
        err.starts_with(
            "HostUnavailable: host collector has no fresh result (Panic: fault injection"
        ),
        "{v}"
    );
    assert_eq!(v["snapshot_path"], Value::Null);
    assert_eq!(v["global_context"]["host_id"], HOST);
    assert!(
        v["health"]["tick"].as_u64().is_some(),
        "no health copy: {v}"
    );
    for (alias, key) in [
        ("tick_duration_ms", "duration_ms"),
        ("telemetry_queue", "queue_length"),
        ("telemetry_dropped", "dropped_messages"),
    ] {
        assert_eq!(v["aliases"][alias], v["summary"][key], "{alias}: {v}");
        assert_eq!(v[alias], v["summary"][key], "{alias}: {v}");
    }

    // hosts.get keeps the latest failure, with its aliases.
    let c = client.clone();
    let d: HostDetail = wait_for(Duration::from_secs(15), || {
        let c = c.clone();
        async move {
            let d: HostDetail = call(
                &c,
                ep::HOSTS_GET,
                &HostGetRequest {
                    host_id: HOST.into(),
                },
            )
            .await
            .ok()?;
            let injected = d
                .agent
                .failure
                .as_ref()
                .is_some_and(|f| f.error.contains("Panic: fault injection"));
            injected.then_some(d)
        }
    })
    .await
    .unwrap_or_else(|_| panic!("hosts.get never showed the failure\n{}", coord.svc.logs()));
    let f = d.agent.failure.as_ref().unwrap();
    assert!(f.error.starts_with("HostUnavailable:"), "{f:?}");
    assert!(f.failure_count >= 1);
    assert_eq!(f.aliases.tick_duration_ms, Some(f.summary.duration_ms));
    assert!(d.agent.failure_at.is_some());
    let h = d
        .agent
        .health
        .as_ref()
        .expect("a loop.health before the failure");
    // The last health came from a good tick: before the panics, or while
    // the last good host result was still fresh (then it shows them).
    let hc = &h.collectors["host"];
    assert!(
        hc.ok
            || hc
                .last_error
                .as_deref()
                .is_some_and(|e| e.starts_with("Panic:")),
        "{hc:?}"
    );

    // stats.health: the host is at least `warn`, with the failure as reason.
    let health: Value = call(&client, ep::STATS_HEALTH, &json!({})).await.unwrap();
    let row = health["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["host_id"] == HOST)
        .unwrap_or_else(|| panic!("{HOST} not in stats.health: {health}"))
        .clone();
    assert_ne!(row["status"], "ok", "{row}");
    assert!(
        row["reasons"].as_array().unwrap().iter().any(|r| {
            let r = r.as_str().unwrap();
            r.starts_with("agent loop failure") && r.contains("HostUnavailable")
        }),
        "{row}"
    );

    // The coordinator's metrics.
    let text = scrape(&coord.metrics_url).await.unwrap();
    let failures = metric(
        &text,
        "lull_fleet_agent_loop_failures_total",
        &[("host", HOST)],
    );
    assert!(failures.is_some_and(|n| n >= 1.0), "{failures:?}");
    let accepted = metric(
        &text,
        "lull_fleet_agent_messages_total",
        &[("kind", "failure"), ("result", "accepted")],
    );
    assert!(accepted.is_some_and(|n| n >= 1.0), "{accepted:?}");

    // lullctl hosts HOST, without --json.
    let out = Service::builder("lullctl")
        .envs(infra.lull_env())
        .args(["hosts", HOST])
        .run(Duration::from_secs(30))
        .await
        .expect("lullctl finished");
    assert!(out.status.success(), "{out:?}");
    eprintln!("lullctl hosts {HOST}:\n{}", out.stdout);
    assert!(out.stdout.contains("agent loop: FAILING"), "{}", out.stdout);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("last loop failure:")
                && l.contains("HostUnavailable: host collector has no fresh result")),
        "{}",
        out.stdout
    );
    // The agent itself stays up while its ticks fail.
    assert!(agent.is_running(), "the agent died\n{}", agent.logs());
}
