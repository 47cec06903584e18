//! End-to-end: NATS, Postgres, the coordinator and an agent as real
//! processes. The host shows up with a quiet state, /metrics shows it, the
//! micro service answers `$SRV.PING`, bad messages are rejected and counted
//! without harming the coordinator, and shutdown is graceful.

mod support;

use std::time::Duration;

use lull_proto::msg::hosts::{HostDetail, HostSummary, RejectedSenders};
use lull_proto::msg::stats::{example_snapshot, SystemStatsSnapshot};
use lull_proto::subjects::endpoints as ep;
use lull_proto::ErrorCode;
use lull_tests::{scrape, wait_for, wait_until, Infra, Service};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_to_coordinator_end_to_end() {
    let infra = Infra::start().await.expect("infra");
    let mut coord = start_coordinator(&infra, &[]).await;
    let (mut agent, agent_port) = start_agent(&infra, "e2e-host", &[]);
    let client = infra.nats.connect().await.unwrap();

    // Within 10 s the host is listed with a quiet state.
    let hosts: Vec<HostSummary> = wait_for(Duration::from_secs(10), || {
        let client = client.clone();
        async move {
            let hosts: Vec<HostSummary> = call(&client, ep::HOSTS_LIST, &serde_json::json!({}))
                .await
                .ok()?;
            hosts
                .iter()
                .any(|h| h.host_id == "e2e-host")
                .then_some(hosts)
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "host never listed\ncoordinator:\n{}\nagent:\n{}",
            coord.svc.logs(),
            agent.logs()
        )
    });
    let h = hosts.iter().find(|h| h.host_id == "e2e-host").unwrap();
    assert!((0.0..=100.0).contains(&h.quiet_score));
    assert!(!h.stale);

    // hosts.get has the snapshot and the assessment.
    let d: HostDetail = call(
        &client,
        ep::HOSTS_GET,
        &serde_json::json!({"host_id": "e2e-host"}),
    )
    .await
    .unwrap();
    assert_eq!(d.snapshot.host_id, "e2e-host");
    assert!(d.snapshot.host.cpu_count >= 1);
    assert_eq!(d.quiet.state, h.state);

    // /metrics shows the host, and has HELP text and real histograms.
    let text = scrape(&coord.metrics_url).await.unwrap();
    assert!(
        metric(&text, "lull_host_quiet_score", &[("host", "e2e-host")]).is_some(),
        "{text}"
    );
    assert!(text.contains("# HELP lull_host_quiet_score"));
    assert!(metric(&text, "lull_coordinator_build_info", &[]).is_some());
    assert!(
        text.contains("lull_request_duration_seconds_bucket"),
        "{text}"
    );
    // The agent serves its own metrics.
    let agent_text = scrape(&format!("http://127.0.0.1:{agent_port}/metrics"))
        .await
        .unwrap();
    assert!(agent_text.contains("lull_agent_"), "{agent_text}");
    // Both expose the standard process metrics and pass Prometheus's lint.
    for (who, text) in [("coordinator", &text), ("agent", &agent_text)] {
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(name), "{who}: {name} missing");
        }
        lull_tests::promtool::assert_clean(text);
    }
    assert!(metric(&agent_text, "lull_agent_build_info", &[]).is_some());

    // A malformed message and a host mismatch are rejected and counted.
    client
        .publish("lull.stats.bad-host", "{not json".into())
        .await
        .unwrap();
    let other = example_snapshot("host-b", 1, lull_common::runtime::now_unix());
    client
        .publish(
            "lull.stats.host-a",
            serde_json::to_vec(&other).unwrap().into(),
        )
        .await
        .unwrap();
    let mut out_of_range: SystemStatsSnapshot =
        example_snapshot("host-c", 1, lull_common::runtime::now_unix());
    out_of_range.host.cpu_pct = 900.0;
    client
        .publish(
            "lull.stats.host-c",
            serde_json::to_vec(&out_of_range).unwrap().into(),
        )
        .await
        .unwrap();
    client.flush().await.unwrap();
    let url = coord.metrics_url.clone();
    wait_until(Duration::from_secs(10), || {
        let url = url.clone();
        async move {
            let t = scrape(&url).await.unwrap_or_default();
            metric(&t, "lull_stats_messages_total", &[("result", "bad_json")]) == Some(1.0)
                && metric(
                    &t,
                    "lull_stats_messages_total",
                    &[("result", "host_mismatch")],
                ) == Some(1.0)
                && metric(&t, "lull_stats_messages_total", &[("result", "invalid")]) == Some(1.0)
        }
    })
    .await
    .unwrap_or_else(|_| panic!("rejections not counted:\n{}", coord.svc.logs()));
    // The sender can find out why: a warning names the host, the subject
    // and the reason.
    let logs = coord.svc.logs();
    for host in ["bad-host", "host-a", "host-c"] {
        let line = logs
            .lines()
            .find(|l| {
                l.contains("stats snapshot rejected") && l.contains(&format!("host=\"{host}\""))
            })
            .unwrap_or_else(|| panic!("no warning for {host}:\n{logs}"));
        assert!(line.contains(&format!("lull.stats.{host}")), "{line}");
        assert!(line.contains("reason="), "{line}");
    }
    // ... and so can the operator: hosts.rejected and `lullctl hosts`.
    let rejected = wait_for(Duration::from_secs(10), || {
        let client = client.clone();
        async move {
            let r: RejectedSenders = call(&client, ep::HOSTS_REJECTED, &serde_json::json!({}))
                .await
                .ok()?;
            (r.senders.len() == 3).then_some(r)
        }
    })
    .await
    .expect("three rejected senders");
    let c = rejected
        .senders
        .iter()
        .find(|s| s.host_id == "host-c")
        .unwrap();
    assert_eq!((c.result.as_str(), c.count), ("invalid", 1));
    assert!(c.reason.contains("cpu_pct"), "{c:?}");
    let f = Service::builder("lullctl")
        .envs(infra.lull_env())
        .arg("hosts")
        .run(Duration::from_secs(30))
        .await
        .unwrap();
    assert!(f.stdout.contains("REJECTED SENDERS"), "{}", f.stdout);
    for (host, result) in [
        ("bad-host", "bad_json"),
        ("host-a", "host_mismatch"),
        ("host-c", "invalid"),
    ] {
        assert!(
            f.stdout
                .lines()
                .any(|l| l.starts_with(host) && l.contains(result)),
            "{host} {result} missing:\n{}",
            f.stdout
        );
    }

    // Still healthy and correct: only the real host is known, PING works,
    // a bad request gets an error reply, a good one still succeeds.
    assert!(ping(&client).await);
    let hosts: Vec<HostSummary> = call(&client, ep::HOSTS_LIST, &serde_json::json!({}))
        .await
        .unwrap();
    let ids: Vec<&str> = hosts.iter().map(|h| h.host_id.as_str()).collect();
    assert_eq!(ids, vec!["e2e-host"]);
    match call::<_, HostDetail>(
        &client,
        ep::HOSTS_GET,
        &serde_json::json!({"host_id": "nope"}),
    )
    .await
    {
        Err(lull_client::request::RequestError::Service { code, .. }) => {
            assert_eq!(code, ErrorCode::NotFound)
        }
        other => panic!("expected not_found, got {other:?}"),
    }
    let reply = call_raw(&client, ep::HOSTS_GET, b"{\"host_id\": 5}".to_vec()).await;
    let headers = reply.headers.expect("error headers");
    assert_eq!(
        headers.get("Nats-Service-Error-Code").map(|v| v.as_str()),
        Some("400")
    );
    let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");

    // Graceful shutdown: both exit 0, and the host table was flushed.
    let status = agent.terminate(Duration::from_secs(10)).await.unwrap();
    assert!(status.success(), "agent exit {status:?}\n{}", agent.logs());
    let status = coord.svc.terminate(Duration::from_secs(10)).await.unwrap();
    assert!(
        status.success(),
        "coordinator exit {status:?}\n{}",
        coord.svc.logs()
    );
    let pg = infra.pg.client().await.unwrap();
    let row = pg
        .query_one(
            "SELECT first_seen, last_seen FROM hosts WHERE host_id = 'e2e-host'",
            &[],
        )
        .await
        .unwrap();
    let (first, last): (f64, f64) = (row.get(0), row.get(1));
    assert!(first > 0.0 && last >= first);
    let versions: i64 = pg
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert!(versions >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_once_prints_a_valid_snapshot() {
    let out = Service::builder("lull-agent")
        .arg("--once")
        .env("LULL_HOST_ID", "once-host")
        .run(Duration::from_secs(30))
        .await
        .expect("run --once");
    assert!(out.status.success(), "{out:?}");
    let snap: SystemStatsSnapshot =
        lull_proto::decode(out.stdout.as_bytes(), 1 << 20).expect("valid snapshot");
    assert_eq!(snap.host_id, "once-host");
    assert!(snap.host.cpu_count >= 1);
    assert!(snap.host.mem_total_bytes > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_idempotent_across_restarts() {
    let infra = Infra::start().await.expect("infra");
    let mut c1 = start_coordinator(&infra, &[]).await;
    assert!(c1
        .svc
        .terminate(Duration::from_secs(10))
        .await
        .unwrap()
        .success());
    let mut c2 = start_coordinator(&infra, &[]).await;
    assert!(c2
        .svc
        .terminate(Duration::from_secs(10))
        .await
        .unwrap()
        .success());
    let pg = infra.pg.client().await.unwrap();
    let n: i64 = pg
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n as usize, lull_coordinator_migrations());
}

fn lull_coordinator_migrations() -> usize {
    lull_coordinator::store::migrations::MIGRATIONS.len()
}
