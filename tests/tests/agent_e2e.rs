//! End-to-end tests of `lull-agent` against a real `nats-server -js`: the
//! report spool survives a NATS outage and delivers every report exactly
//! once, stats dropped while NATS is down show up in the next
//! `loop.health`, a hung collector times out while the others keep their
//! cadence, a malformed spool file is quarantined with its reason, and
//! `--once` prints a valid snapshot.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use lull_proto::msg::stats::SystemStatsSnapshot;
use lull_proto::msg::telemetry::LoopHealth;
use lull_proto::validate::{decode, DEFAULT_MAX_PAYLOAD};
use lull_tests::{free_port, scrape, wait_for, wait_until, NatsServer, Service};
use support::metric;

struct Agent {
    svc: Service,
    metrics_url: String,
    spool: PathBuf,
    _dir: tempfile::TempDir,
}

/// Starts `lull-agent` against `nats` with its own spool dir and extra env.
fn start_agent(
    nats: &NatsServer,
    host_id: &str,
    extra_env: &[(&str, &str)],
    config: Option<&str>,
) -> Agent {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = dir.path().join("spool");
    let port = free_port().expect("free port");
    let mut b = Service::builder("lull-agent")
        .env("LULL_NATS_URL", nats.url())
        .env("LULL_METRICS_ADDR", format!("127.0.0.1:{port}"))
        .env("LULL_HOST_ID", host_id)
        .env("LULL_SPOOL_DIR", &spool)
        .env("LULL_INTERVAL_SEC", "0.25")
        .env("LULL_SPOOL__SCAN_INTERVAL_SEC", "0.2")
        .env("LULL_LOG", "info,lull_agent=debug");
    for (k, v) in extra_env {
        b = b.env(k, v);
    }
    if let Some(toml) = config {
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, toml).expect("write config");
        b = b.arg("--config").arg(&path);
    }
    Agent {
        svc: b.start().expect("start agent"),
        metrics_url: format!("http://127.0.0.1:{port}/metrics"),
        spool,
        _dir: dir,
    }
}

impl Agent {
    async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let text = scrape(&self.metrics_url).await.ok()?;
        metric(&text, name, labels)
    }

    async fn wait_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        ok: impl Fn(f64) -> bool,
        within: Duration,
    ) -> f64 {
        let got = wait_for(within, || async {
            self.metric(name, labels).await.filter(|v| ok(*v))
        })
        .await;
        match got {
            Ok(v) => v,
            Err(_) => panic!(
                "{name}{labels:?} never reached the expected value (last {:?})\n{}",
                self.metric(name, labels).await,
                self.svc.logs()
            ),
        }
    }
}

/// Writes a report the way a worker should: temporary name, then rename.
fn drop_report(spool: &Path, name: &str, body: &serde_json::Value) {
    std::fs::create_dir_all(spool).unwrap();
    let tmp = spool.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec(body).unwrap()).unwrap();
    std::fs::rename(&tmp, spool.join(name)).unwrap();
}

fn worker_report(i: usize) -> serde_json::Value {
    serde_json::json!({
        "execution_id": format!("exec-{i:03}"),
        "worker_name": "spool_test",
        "started_at": 1_763_026_000.0 + i as f64,
        "completed_at": 1_763_026_010.0 + i as f64,
        "outcome": "SUCCESS",
        "duration_ms": 10_000.0,
    })
}

fn spool_files(spool: &Path) -> usize {
    std::fs::read_dir(spool)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
                .count()
        })
        .unwrap_or(0)
}

async fn stream_messages(nats: &NatsServer) -> Option<u64> {
    let js = nats.jetstream().await.ok()?;
    let mut s = js
        .get_stream(lull_proto::subjects::REPORTS_STREAM)
        .await
        .ok()?;
    Some(s.info().await.ok()?.state.messages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_delivers_every_report_exactly_once_across_a_nats_outage() {
    let mut nats = NatsServer::start().await.expect("nats");
    let agent = start_agent(&nats, "spool-host", &[], None);
    agent
        .wait_metric(
            "lull_agent_nats_connected",
            &[],
            |v| v == 1.0,
            Duration::from_secs(15),
        )
        .await;

    nats.stop().await.expect("stop nats");
    agent
        .wait_metric(
            "lull_agent_nats_connected",
            &[],
            |v| v == 0.0,
            Duration::from_secs(15),
        )
        .await;

    // 90 reports written by "workers" directly, 10 through `lull-agent report`.
    for i in 0..90 {
        drop_report(&agent.spool, &format!("r-{i:03}.json"), &worker_report(i));
    }
    for i in 90..100 {
        let file = agent._dir.path().join(format!("in-{i}.json"));
        std::fs::write(&file, serde_json::to_vec(&worker_report(i)).unwrap()).unwrap();
        let out = Service::builder("lull-agent")
            .env("LULL_SPOOL_DIR", &agent.spool)
            .arg("report")
            .arg(&file)
            .run(Duration::from_secs(10))
            .await
            .expect("lull-agent report");
        assert!(out.status.success(), "report failed: {}", out.stderr);
        assert!(out.stdout.trim().ends_with(".json"), "{}", out.stdout);
    }
    // While NATS is down every file waits, and depth and age are metrics.
    agent
        .wait_metric(
            "lull_agent_spool_files",
            &[],
            |v| v == 100.0,
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(spool_files(&agent.spool), 100);
    assert!(
        agent
            .metric("lull_agent_spool_oldest_age_seconds", &[])
            .await
            .unwrap()
            >= 0.0
    );

    nats.start_again().await.expect("restart nats");
    let delivered = wait_for(Duration::from_secs(40), || async {
        let n = stream_messages(&nats).await?;
        (n >= 100 && spool_files(&agent.spool) == 0).then_some(n)
    })
    .await;
    let n = match delivered {
        Ok(n) => n,
        Err(_) => panic!(
            "reports not delivered: stream has {:?}, spool has {}\n{}",
            stream_messages(&nats).await,
            spool_files(&agent.spool),
            agent.svc.logs()
        ),
    };
    assert_eq!(n, 100, "each report exactly once");
    // Stored with the record id as Nats-Msg-Id, and the agent's host id
    // filled in (the reports had none).
    let js = nats.jetstream().await.unwrap();
    let stream = js
        .get_stream(lull_proto::subjects::REPORTS_STREAM)
        .await
        .unwrap();
    let first = stream.get_raw_message(1).await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&first.payload).unwrap();
    assert_eq!(body["host_id"], "spool-host");
    assert_eq!(
        first.headers.get("Nats-Msg-Id").map(|v| v.as_str()),
        body["execution_id"].as_str()
    );
    assert_eq!(
        first.subject.as_str(),
        "lull.report.worker.spool-host.spool_test"
    );

    // A resend of a delivered report is dropped by the stream (Nats-Msg-Id).
    drop_report(&agent.spool, "again.json", &worker_report(7));
    wait_until(Duration::from_secs(10), || async {
        spool_files(&agent.spool) == 0
    })
    .await
    .expect("resend consumed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stream_messages(&nats).await, Some(100));
    let published = agent
        .wait_metric(
            "lull_agent_spool_published_total",
            &[("kind", "worker")],
            |v| v >= 101.0,
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(published, 101.0);

    // Graceful shutdown.
    let mut svc = agent.svc;
    let status = svc
        .terminate(Duration::from_secs(10))
        .await
        .expect("terminate");
    assert!(status.success(), "exit status {status:?}\n{}", svc.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_dropped_while_nats_is_down_show_in_the_next_health() {
    let mut nats = NatsServer::start().await.expect("nats");
    let agent = start_agent(
        &nats,
        "drop-host",
        &[
            ("LULL_OUTBOX__MAX_MESSAGES", "6"),
            ("LULL_HEALTH_EVERY_N_TICKS", "2"),
        ],
        None,
    );
    agent
        .wait_metric(
            "lull_agent_nats_connected",
            &[],
            |v| v == 1.0,
            Duration::from_secs(15),
        )
        .await;
    nats.stop().await.expect("stop nats");
    // Four ticks a second into an outbox of 6: stats get dropped.
    let dropped = agent
        .wait_metric(
            "lull_agent_outbox_dropped_total",
            &[("kind", "stats")],
            |v| v >= 5.0,
            Duration::from_secs(15),
        )
        .await;
    assert!(
        agent
            .metric("lull_agent_outbox_queue_length", &[])
            .await
            .unwrap()
            <= 6.0
    );

    nats.start_again().await.expect("restart nats");
    let client = nats.connect().await.unwrap();
    let mut sub = client
        .subscribe("lull.agent.drop-host.health")
        .await
        .unwrap();
    client.flush().await.unwrap();
    let health: LoopHealth = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let msg = sub.next().await.expect("subscription open");
            let h: LoopHealth =
                decode(&msg.payload, DEFAULT_MAX_PAYLOAD).expect("valid loop.health");
            if h.transport.dropped_messages as f64 >= dropped {
                return h;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no loop.health with the drops\n{}", agent.svc.logs()));
    assert_eq!(health.status, "ok");
    assert_eq!(health.transport.provider.as_deref(), Some("nats"));
    assert!(health.transport.worker.alive);
    assert!(health.transport.payloads_flushed_total > 0);
    assert!(health.collectors["host"].ok, "{:?}", health.collectors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_collector_times_out_while_the_others_keep_their_cadence() {
    let nats = NatsServer::start().await.expect("nats");
    // The health command sleeps far longer than the collector may run.
    let config = r#"
[collectors.host]
interval_sec = 0.25
jitter_sec = 0.0
timeout_sec = 0.2
[collectors.addon_health]
interval_sec = 0.5
jitter_sec = 0.0
timeout_sec = 0.3
[[addons]]
id = "sleepy"
health_command = ["sleep", "30"]
health_timeout_sec = 60.0
"#;
    let agent = start_agent(&nats, "hung-host", &[], Some(config));
    let client = nats.connect().await.unwrap();
    let mut sub = client.subscribe("lull.stats.hung-host").await.unwrap();
    client.flush().await.unwrap();

    // Stats keep coming every tick, carrying the timeout in `errors`.
    let started = std::time::Instant::now();
    let mut seqs = Vec::new();
    let mut saw_timeout = false;
    while started.elapsed() < Duration::from_secs(4) {
        let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(2), sub.next()).await else {
            panic!("stats stopped arriving\n{}", agent.svc.logs());
        };
        let s: SystemStatsSnapshot =
            decode(&msg.payload, DEFAULT_MAX_PAYLOAD).expect("valid snapshot");
        seqs.push(s.seq);
        saw_timeout |= s
            .errors
            .iter()
            .any(|e| e.collector == "addon_health" && e.error.starts_with("Timeout"));
    }
    assert!(
        saw_timeout,
        "no addon_health timeout in errors\n{}",
        agent.svc.logs()
    );
    // ~16 ticks in 4 s at 0.25 s; allow slack for a loaded machine.
    assert!(seqs.len() >= 10, "only {} snapshots in 4 s", seqs.len());
    assert!(
        seqs.windows(2).all(|w| w[1] > w[0]),
        "seq not increasing: {seqs:?}"
    );

    let timeouts = agent
        .wait_metric(
            "lull_agent_collector_runs_total",
            &[("collector", "addon_health"), ("result", "timeout")],
            |v| v >= 3.0,
            Duration::from_secs(5),
        )
        .await;
    assert!(timeouts >= 3.0);
    let host_ok = agent
        .metric(
            "lull_agent_collector_runs_total",
            &[("collector", "host"), ("result", "ok")],
        )
        .await
        .unwrap();
    assert!(host_ok >= 12.0, "host ran {host_ok} times");
    assert_eq!(
        agent
            .metric(
                "lull_agent_collector_success",
                &[("collector", "addon_health")]
            )
            .await,
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_spool_file_is_quarantined_with_its_reason() {
    let nats = NatsServer::start().await.expect("nats");
    let agent = start_agent(
        &nats,
        "bad-host",
        &[("LULL_SPOOL__SETTLE_SEC", "0.5")],
        None,
    );
    drop_report(
        &agent.spool,
        "bad.json",
        &serde_json::json!({"hello": "world"}),
    );
    std::fs::write(
        agent.spool.join("truncated.json"),
        b"{\"execution_id\": \"x",
    )
    .unwrap();
    drop_report(&agent.spool, "good.json", &worker_report(1));
    // A writer's temporary file is left alone.
    std::fs::write(agent.spool.join(".inflight.json.tmp"), b"{").unwrap();

    let failed = agent.spool.join("failed");
    wait_until(Duration::from_secs(20), || async {
        failed.join("bad.json.error").exists() && failed.join("truncated.json.error").exists()
    })
    .await
    .unwrap_or_else(|_| panic!("not quarantined\n{}", agent.svc.logs()));
    let reason = std::fs::read_to_string(failed.join("bad.json.error")).unwrap();
    assert!(reason.contains("not a report"), "{reason}");
    let reason = std::fs::read_to_string(failed.join("truncated.json.error")).unwrap();
    assert!(reason.contains("not JSON"), "{reason}");
    assert_eq!(
        std::fs::read_to_string(failed.join("bad.json")).unwrap(),
        r#"{"hello":"world"}"#
    );
    agent
        .wait_metric(
            "lull_agent_spool_failed_total",
            &[],
            |v| v == 2.0,
            Duration::from_secs(5),
        )
        .await;
    wait_until(Duration::from_secs(20), || async {
        !agent.spool.join("good.json").exists()
    })
    .await
    .expect("good report published");
    assert!(agent.spool.join(".inflight.json.tmp").exists());
    assert_eq!(stream_messages(&nats).await, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_prints_a_valid_snapshot_without_nats() {
    let out = Service::builder("lull-agent")
        .env("LULL_HOST_ID", "once-host")
        .env("LULL_NATS_URL", "nats://127.0.0.1:1")
        .arg("--once")
        .run(Duration::from_secs(20))
        .await
        .expect("run --once");
    assert!(out.status.success(), "{}", out.stderr);
    let s: SystemStatsSnapshot =
        decode(out.stdout.as_bytes(), DEFAULT_MAX_PAYLOAD).expect("valid snapshot");
    assert_eq!(s.host_id, "once-host");
    assert!(s.host.cpu_count >= 1);
    assert!(s.host.disks.iter().any(|d| d.mount == "/"));
    assert_eq!(s.process[0].name, "lull-agent");
}
