//! `deploy/nats/`: a real nats-server runs `nats-server.conf` with the users
//! that `gen-auth.sh` generates. A host cannot publish another host's stats
//! or reports or read another's inbox, an addon cannot call `lease.revoke`
//! (an operator can) nor ask for a lease under another addon's id, agents
//! cannot create streams; the real coordinator and agent work under
//! exactly these permissions (the server logs no violation); and the
//! coordinator refuses what the server lets through but the payload
//! contradicts (an addon_id or host_id other than the subject's).

mod deploy_support;
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event};
use deploy_support::*;
use futures::StreamExt;
use lull_tests::{wait_for, wait_until, Infra, NatsServer, Postgres, Service};
use tokio::sync::mpsc;

/// Runs gen-auth.sh into `out` and returns the server configuration text:
/// nats-server.conf with auth.conf inlined (the harness writes the config
/// into its own directory, where a relative include would not resolve) and
/// without `store_dir` (the harness passes its own with `-sd`, and
/// nats-server refuses both).
fn generate(out: &Path, specs: &[&str]) -> String {
    run_ok(
        Command::new(deploy("nats/gen-auth.sh"))
            .arg("-o")
            .arg(out)
            .args(specs),
    );
    let auth = read(&out.join("auth.conf"));
    let conf = read(&deploy("nats/nats-server.conf"));
    assert!(
        conf.contains("include auth.conf"),
        "nats-server.conf must include auth.conf"
    );
    conf.lines()
        .filter(|l| !l.trim_start().starts_with("store_dir"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("include auth.conf", &auth)
}

/// `KEY=VALUE` lines of a generated `.env` file.
fn env_file(path: &Path) -> BTreeMap<String, String> {
    read(path)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A client logged in with a generated `.env` file; server errors
/// (permission violations) are forwarded to the returned channel.
async fn login(server: &NatsServer, env: &Path) -> (Client, mpsc::UnboundedReceiver<String>) {
    let e = env_file(env);
    let (tx, rx) = mpsc::unbounded_channel();
    let client = ConnectOptions::with_user_and_password(
        e["LULL_NATS_USER"].clone(),
        e["LULL_NATS_PASSWORD"].clone(),
    )
    .custom_inbox_prefix(e["LULL_NATS_INBOX_PREFIX"].clone())
    .event_callback(move |ev| {
        let tx = tx.clone();
        async move {
            if let Event::ServerError(err) = ev {
                let _ = tx.send(err.to_string());
            }
        }
    })
    .connect(server.url())
    .await
    .unwrap_or_else(|err| panic!("login {}: {err}\n{}", env.display(), server.logs()));
    (client, rx)
}

/// Waits for a permission violation that names `subject`.
async fn expect_violation(errors: &mut mpsc::UnboundedReceiver<String>, subject: &str) {
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(e) = errors.recv().await {
            if e.to_lowercase().contains("permissions violation") && e.contains(subject) {
                return Some(e);
            }
        }
        None
    })
    .await;
    assert!(
        matches!(got, Ok(Some(_))),
        "no permissions violation reported for {subject}"
    );
}

/// Makes sure the server has processed everything `coord` sent so far (a
/// subscription included): a JetStream API round trip on the same
/// connection. `flush` alone only empties the client's buffer.
async fn barrier(coord: &Client) {
    coord
        .request("$JS.API.INFO", "".into())
        .await
        .expect("JetStream account info (round trip)");
}

/// Receives the next message within `d`, if any.
async fn next_within(sub: &mut async_nats::Subscriber, d: Duration) -> Option<async_nats::Message> {
    tokio::time::timeout(d, sub.next()).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_and_addons_are_confined_to_their_subjects() {
    let dir = tempfile::tempdir().unwrap();
    let conf = generate(
        dir.path(),
        &["agent:web1", "agent:web2", "addon:backup", "operator:ops"],
    );
    let server = NatsServer::start_with_config(&conf)
        .await
        .expect("nats-server with the generated config");
    let secrets = dir.path().join("secrets");

    let (coord, _) = login(&server, &secrets.join("coordinator.env")).await;
    let (web1, mut web1_err) = login(&server, &secrets.join("agents/web1.env")).await;
    let (web2, _) = login(&server, &secrets.join("agents/web2.env")).await;
    let (addon, mut addon_err) = login(&server, &secrets.join("addons/backup.env")).await;
    let (ops, _) = login(&server, &secrets.join("operators/ops.env")).await;

    // Anonymous clients and wrong passwords are refused.
    assert!(
        async_nats::connect(server.url()).await.is_err(),
        "anonymous login accepted"
    );
    assert!(
        ConnectOptions::with_user_and_password("agent-web1".into(), "wrong".into())
            .connect(server.url())
            .await
            .is_err()
    );

    // The coordinator sees the stats a host publishes on its own subject...
    let mut stats = coord.subscribe("lull.stats.*").await.unwrap();
    barrier(&coord).await;
    web1.publish("lull.stats.web1", "own".into()).await.unwrap();
    web1.flush().await.unwrap();
    let m = next_within(&mut stats, Duration::from_secs(5))
        .await
        .expect("web1's own stats arrive");
    assert_eq!(m.subject.as_str(), "lull.stats.web1");
    // ...but not what it publishes as another host.
    web1.publish("lull.stats.web2", "forged".into())
        .await
        .unwrap();
    web1.flush().await.unwrap();
    expect_violation(&mut web1_err, "lull.stats.web2").await;
    web2.publish("lull.stats.web2", "real".into())
        .await
        .unwrap();
    web2.flush().await.unwrap();
    let m = next_within(&mut stats, Duration::from_secs(5))
        .await
        .expect("web2's stats arrive");
    assert_eq!(
        &m.payload[..],
        b"real",
        "the forged message must never arrive"
    );
    // Agent telemetry: own subject only.
    web1.publish("lull.agent.web2.health", "forged".into())
        .await
        .unwrap();
    web1.flush().await.unwrap();
    expect_violation(&mut web1_err, "lull.agent.web2.health").await;

    // A host cannot read the fleet's stats nor another host's inbox.
    let mut snoop = web1.subscribe("lull.stats.>").await.unwrap();
    let mut snoop_inbox = web1.subscribe("_INBOX.agent-web2.>").await.unwrap();
    web1.flush().await.unwrap();
    expect_violation(&mut web1_err, "lull.stats.>").await;
    expect_violation(&mut web1_err, "_INBOX.agent-web2.>").await;
    web2.publish("lull.stats.web2", "private".into())
        .await
        .unwrap();
    web2.flush().await.unwrap();
    assert!(next_within(&mut snoop, Duration::from_millis(300))
        .await
        .is_none());
    assert!(next_within(&mut snoop_inbox, Duration::from_millis(100))
        .await
        .is_none());

    // Lease replication between coordinators: only coordinators may
    // publish or read it (a sync reply carries every live token).
    let mut repl = coord.subscribe("lull.ha.>").await.unwrap();
    barrier(&coord).await;
    coord
        .publish("lull.ha.leases", "from a coordinator".into())
        .await
        .unwrap();
    coord.flush().await.unwrap();
    assert!(next_within(&mut repl, Duration::from_secs(5))
        .await
        .is_some());
    for (who, err) in [(&web1, &mut web1_err), (&addon, &mut addon_err)] {
        who.publish("lull.ha.leases", "forged".into())
            .await
            .unwrap();
        who.flush().await.unwrap();
        expect_violation(err, "lull.ha.leases").await;
        let _ = who.subscribe("lull.ha.sync").await.unwrap();
        who.flush().await.unwrap();
        expect_violation(err, "lull.ha.sync").await;
    }
    assert!(next_within(&mut repl, Duration::from_millis(300))
        .await
        .is_none());

    // A stand-in for the coordinator's micro service on lull.v1.>.
    let mut requests = coord.subscribe("lull.v1.>").await.unwrap();
    barrier(&coord).await;
    let responder = {
        let coord = coord.clone();
        let (seen_tx, seen_rx) = mpsc::unbounded_channel::<String>();
        let task = tokio::spawn(async move {
            while let Some(m) = requests.next().await {
                let _ = seen_tx.send(m.subject.to_string());
                if let Some(reply) = m.reply {
                    // Allowed by allow_responses, not by a publish grant.
                    let _ = coord.publish(reply, "{\"ok\":true}".into()).await;
                    let _ = coord.flush().await;
                }
            }
        });
        (task, seen_rx)
    };
    let (task, mut seen) = responder;

    // An addon may use the lease endpoints, requesting under its own id...
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        addon.request("lull.v1.lease.request.backup", "{}".into()),
    )
    .await
    .expect("lease.request answered in time")
    .expect("lease.request reply");
    assert_eq!(&reply.payload[..], b"{\"ok\":true}");
    assert_eq!(
        seen.recv().await.as_deref(),
        Some("lull.v1.lease.request.backup")
    );
    // ...but not under another addon's id, nor on the bare subject, which
    // names no addon (the stand-in sees neither: its next request is the
    // operator's revoke below).
    for forged in ["lull.v1.lease.request.indexer", "lull.v1.lease.request"] {
        addon
            .publish(forged, "{\"addon_id\":\"indexer\"}".into())
            .await
            .unwrap();
        addon.flush().await.unwrap();
        expect_violation(&mut addon_err, forged).await;
    }
    // ...but cannot revoke a lease (nor reach other endpoints).
    let revoke = tokio::time::timeout(
        Duration::from_secs(2),
        addon.request(
            "lull.v1.lease.revoke",
            "{\"lease_id\":\"L1\",\"reason\":\"x\"}".into(),
        ),
    )
    .await;
    assert!(
        !matches!(revoke, Ok(Ok(_))),
        "an addon got an answer from lease.revoke"
    );
    expect_violation(&mut addon_err, "lull.v1.lease.revoke").await;
    addon
        .publish("lull.v1.hosts.list", "{}".into())
        .await
        .unwrap();
    addon.flush().await.unwrap();
    expect_violation(&mut addon_err, "lull.v1.hosts.list").await;
    // An operator can revoke; the stand-in saw no addon revoke before it.
    let reply = ops
        .request(
            "lull.v1.lease.revoke",
            "{\"lease_id\":\"L1\",\"reason\":\"x\"}".into(),
        )
        .await
        .expect("operators may revoke");
    assert_eq!(&reply.payload[..], b"{\"ok\":true}");
    assert_eq!(seen.recv().await.as_deref(), Some("lull.v1.lease.revoke"));
    task.abort();

    // JetStream: the coordinator creates the stream, an agent may only
    // publish reports (and get its ack) and may not create streams.
    let js = async_nats::jetstream::new(coord.clone());
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: "LULL_REPORTS".into(),
        subjects: vec!["lull.report.>".into()],
        ..Default::default()
    })
    .await
    .expect("the coordinator creates LULL_REPORTS");
    let agent_js = async_nats::jetstream::new(web1.clone());
    for own in [
        "lull.report.worker.web1.w1",
        "lull.report.build.web1.us-west2",
        "lull.report.fatigue.web1.us-west2",
    ] {
        let ack = agent_js
            .publish(own, "{}".into())
            .await
            .expect("publish")
            .await
            .expect("a JetStream ack reaches the agent's own inbox");
        assert_eq!(ack.stream, "LULL_REPORTS");
    }
    // Reports name the publishing host: web1 cannot report as web2, nor on
    // the legacy subjects that name no host.
    for forged in [
        "lull.report.worker.web2.w1",
        "lull.report.build.web2.us-west2",
        "lull.report.fatigue.web2.us-west2",
        "lull.report.worker.w1",
        "lull.report.build.us-west2",
    ] {
        let acked = tokio::time::timeout(Duration::from_secs(2), async {
            agent_js.publish(forged, "{}".into()).await.ok()?.await.ok()
        })
        .await;
        assert!(
            !matches!(acked, Ok(Some(_))),
            "the stream took web1's {forged}"
        );
        expect_violation(&mut web1_err, forged).await;
    }
    let mut stream = js.get_stream("LULL_REPORTS").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 3);
    let created = tokio::time::timeout(
        Duration::from_secs(3),
        agent_js.create_stream(async_nats::jetstream::stream::Config {
            name: "ROGUE".into(),
            subjects: vec!["rogue.>".into()],
            ..Default::default()
        }),
    )
    .await;
    assert!(!matches!(created, Ok(Ok(_))), "an agent created a stream");
    expect_violation(&mut web1_err, "$JS.API.STREAM.CREATE.ROGUE").await;
}

#[test]
fn generator_keeps_passwords_and_rejects_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    let gen = deploy("nats/gen-auth.sh");
    run_ok(
        Command::new(&gen)
            .arg("-o")
            .arg(dir.path())
            .args(["agent:web1", "addon:backup"]),
    );
    let first = read(&dir.path().join("secrets/agents/web1.env"));
    let hosts = dir.path().join("hosts.txt");
    std::fs::write(&hosts, "# fleet\nweb1\nweb2  # second\n\n").unwrap();
    run_ok(
        Command::new(&gen)
            .arg("-o")
            .arg(dir.path())
            .arg("-f")
            .arg(&hosts)
            .arg("addon:backup"),
    );
    assert_eq!(
        read(&dir.path().join("secrets/agents/web1.env")),
        first,
        "re-running rotated web1's password"
    );
    let auth = read(&dir.path().join("auth.conf"));
    assert!(
        auth.contains("\"lull.stats.web2\"") && auth.contains("\"lull.stats.web1\""),
        "{auth}"
    );
    assert!(
        !auth.contains("lull.stats.*\", \"lull.agent.*.*\", \"lull.report"),
        "{auth}"
    );
    let toml = read(&dir.path().join("secrets/agents/web2.toml"));
    assert!(
        toml.contains("nats_inbox_prefix = \"_INBOX.agent-web2\"")
            && toml.contains("host_id = \"web2\"")
            && toml.contains("create_stream = false"),
        "{toml}"
    );
    // Identities: an agent reports for its own host only, an addon asks
    // for leases under its own id only; their files say which id that is.
    assert!(
        auth.contains("\"lull.report.worker.web2.*\"")
            && auth.contains("\"lull.report.build.web2.*\"")
            && auth.contains("\"lull.report.fatigue.web2.*\"")
            && auth.contains("\"lull.v1.lease.request.backup\"")
            && !auth.contains("\"lull.v1.lease.request\"")
            && !auth.contains("\"lull.report.>\""),
        "{auth}"
    );
    assert_eq!(
        env_file(&dir.path().join("secrets/agents/web2.env"))["LULL_HOST_ID"],
        "web2"
    );
    assert_eq!(
        env_file(&dir.path().join("secrets/addons/backup.env"))["LULL_ADDON_ID"],
        "backup"
    );
    for bad in [
        "agent:web.1",
        "agent:*",
        "addon:a b",
        "agent:",
        "robot:x",
        "web1",
    ] {
        let out = run(Command::new(&gen).arg("-o").arg(dir.path()).arg(bad));
        assert!(!out.status.success(), "gen-auth accepted {bad:?}");
    }
    // A custom subject prefix is applied everywhere.
    let out2 = tempfile::tempdir().unwrap();
    run_ok(
        Command::new(&gen)
            .arg("-o")
            .arg(out2.path())
            .args(["-p", "acme.lull", "agent:web1"]),
    );
    let auth = read(&out2.path().join("auth.conf"));
    assert!(
        auth.contains("\"acme.lull.stats.web1\"") && !auth.contains("\"lull."),
        "{auth}"
    );
}

/// The real binaries under the generated permissions: the agent's stats
/// reach the coordinator, an operator's `hosts.list` is answered, a spooled
/// report gets its JetStream ack, and the server logs no violation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_and_agent_run_under_the_generated_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let conf = generate(dir.path(), &["agent:perm-host", "operator:ops"]);
    let (nats, pg) =
        tokio::try_join!(NatsServer::start_with_config(&conf), Postgres::start()).expect("servers");
    let infra = Infra { nats, pg };
    let secrets = dir.path().join("secrets");

    let mut coord = Service::builder("lull-coordinator")
        .env("LULL_NATS_URL", infra.nats.url())
        .env("LULL_DATABASE_URL", infra.pg.url())
        .env("LULL_CONFIG", secrets.join("coordinator.toml"))
        .env(
            "LULL_METRICS_ADDR",
            format!("127.0.0.1:{}", lull_tests::free_port().unwrap()),
        )
        .start()
        .expect("coordinator");
    let (ops, _) = login(&infra.nats, &secrets.join("operators/ops.env")).await;
    let up = wait_until(Duration::from_secs(20), || {
        let ops = ops.clone();
        async move { support::ping(&ops).await }
    })
    .await;
    assert!(
        up.is_ok(),
        "coordinator not reachable under its permissions\n{}\n{}",
        coord.logs(),
        infra.nats.logs()
    );

    let spool = tempfile::tempdir().unwrap();
    let mut agent = Service::builder("lull-agent")
        .env("LULL_NATS_URL", infra.nats.url())
        .env("LULL_CONFIG", secrets.join("agents/perm-host.toml"))
        .env("LULL_HOST_ID", "perm-host")
        .env("LULL_INTERVAL_SEC", "0.5")
        .env("LULL_SPOOL_DIR", spool.path())
        .env(
            "LULL_METRICS_ADDR",
            format!("127.0.0.1:{}", lull_tests::free_port().unwrap()),
        )
        .start()
        .expect("agent");

    // The host is listed: stats flowed agent -> coordinator, and the
    // micro service answered the operator.
    let listed = wait_for(Duration::from_secs(15), || {
        let ops = ops.clone();
        async move {
            let hosts: Vec<serde_json::Value> =
                support::call(&ops, "hosts.list", &serde_json::json!({}))
                    .await
                    .ok()?;
            hosts
                .iter()
                .any(|h| h["host_id"] == "perm-host")
                .then_some(())
        }
    })
    .await;
    assert!(
        listed.is_ok(),
        "perm-host never listed\ncoordinator:\n{}\nagent:\n{}\nnats:\n{}",
        coord.logs(),
        agent.logs(),
        infra.nats.logs()
    );

    // A spooled report is published and acknowledged (then deleted).
    let mut report = lull_proto::msg::worker::example_report(
        "perm-exec-1",
        "perm_worker",
        lull_common::runtime::now_unix() - 5.0,
        1500.0,
    );
    report.host_id = Some("perm-host".into());
    let file = dir.path().join("report.json");
    std::fs::write(&file, serde_json::to_vec(&report).unwrap()).unwrap();
    let done = Service::builder("lull-agent")
        .args([std::ffi::OsStr::new("report"), file.as_os_str()])
        .env("LULL_SPOOL_DIR", spool.path())
        .env("LULL_HOST_ID", "perm-host")
        .run(Duration::from_secs(10))
        .await
        .expect("lull-agent report");
    assert!(
        done.status.success(),
        "lull-agent report: {}{}",
        done.stdout,
        done.stderr
    );
    let drained = wait_until(Duration::from_secs(15), || {
        let dir = spool.path().to_path_buf();
        async move {
            std::fs::read_dir(&dir)
                .map(|d| {
                    d.filter_map(|e| e.ok()).all(|e| {
                        e.path().is_dir() || e.file_name().to_string_lossy().starts_with('.')
                    })
                })
                .unwrap_or(false)
        }
    })
    .await;
    assert!(
        drained.is_ok(),
        "the report was never acknowledged\nagent:\n{}\nnats:\n{}",
        agent.logs(),
        infra.nats.logs()
    );

    let log = infra.nats.logs();
    assert!(
        !log.to_lowercase().contains("permissions violation"),
        "the real binaries needed permissions they do not have:\n{log}"
    );
    assert!(agent.terminate(Duration::from_secs(10)).await.is_ok());
    assert!(coord.terminate(Duration::from_secs(15)).await.is_ok());
}

/// Scrapes the coordinator's metrics listener.
async fn metric_at(url: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = lull_tests::scrape(url).await.unwrap_or_default();
    support::metric(&text, name, labels).unwrap_or(0.0)
}

/// Issue #16, items 4 and 5, under the shipped config with the real
/// coordinator and agent: addon `backup` cannot ask for leases as
/// `indexer` (the server refuses indexer's subject; on its own subject the
/// coordinator refuses the payload's addon_id, counted) and so cannot
/// empty indexer's rate bucket; an agent cannot report for another host
/// (the server refuses the subject; a payload naming another host is
/// rejected as `host_mismatch` and terminated, not stored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addons_and_agents_cannot_act_under_another_id() {
    use lull_client::lease::LeaseClient;
    use lull_proto::msg::lease::{DenyReason, HeavyLeaseRequest};
    use lull_proto::Subjects;

    let dir = tempfile::tempdir().unwrap();
    let conf = generate(
        dir.path(),
        &[
            "agent:id-host",
            "addon:backup",
            "addon:indexer",
            "operator:ops",
        ],
    );
    let (nats, pg) =
        tokio::try_join!(NatsServer::start_with_config(&conf), Postgres::start()).expect("servers");
    let infra = Infra { nats, pg };
    let secrets = dir.path().join("secrets");
    let port = lull_tests::free_port().unwrap();
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let coord = Service::builder("lull-coordinator")
        .env("LULL_NATS_URL", infra.nats.url())
        .env("LULL_DATABASE_URL", infra.pg.url())
        .env("LULL_CONFIG", secrets.join("coordinator.toml"))
        .env("LULL_METRICS_ADDR", format!("127.0.0.1:{port}"))
        // A small bucket (3 requests, next one in 100 s) and no grace
        // period, so that every request takes a token.
        .env("LULL_LEASE__BURST", "3")
        .env("LULL_LEASE__RATE_PER_SEC", "0.01")
        .env("LULL_LEASE__GRACE_PERIOD_SEC", "0")
        .start()
        .expect("coordinator");
    let (ops, _) = login(&infra.nats, &secrets.join("operators/ops.env")).await;
    let (backup, mut backup_err) = login(&infra.nats, &secrets.join("addons/backup.env")).await;
    let (indexer, _) = login(&infra.nats, &secrets.join("addons/indexer.env")).await;
    let (agent, mut agent_err) = login(&infra.nats, &secrets.join("agents/id-host.env")).await;
    let leading = wait_until(Duration::from_secs(20), || {
        let ops = ops.clone();
        async move { support::has_endpoint(&ops, "scheduler.status").await }
    })
    .await;
    assert!(leading.is_ok(), "coordinator never led\n{}", coord.logs());

    let ask = |addon: &str| HeavyLeaseRequest {
        addon_id: addon.into(),
        job_type: "reindex".into(),
        host_id: Some("id-host".into()),
        cost_units: Some(1),
        cost_class: None,
        expected_duration_sec: None,
        priority: Default::default(),
        constraints: Default::default(),
        wait: false,
        wait_timeout_sec: None,
    };
    let subjects = Subjects::default();

    // backup, on its own subject, asks as indexer five times: refused
    // `forbidden` by the coordinator, counted, no token taken.
    for _ in 0..5 {
        let e = lull_client::request::request::<_, serde_json::Value>(
            &backup,
            subjects.lease_request_as("backup"),
            &ask("indexer"),
            Duration::from_secs(5),
        )
        .await
        .expect_err("a forged addon_id must be refused");
        match &e {
            lull_client::request::RequestError::Service { code, message } => {
                assert_eq!(*code, lull_proto::ErrorCode::Forbidden, "{e}");
                assert!(
                    message.contains("indexer") && message.contains("backup"),
                    "{e}"
                );
            }
            other => panic!("expected forbidden, got {other}"),
        }
    }
    // On indexer's subject the server refuses it outright.
    backup
        .publish(
            subjects.lease_request_as("indexer"),
            serde_json::to_vec(&ask("indexer")).unwrap().into(),
        )
        .await
        .unwrap();
    backup.flush().await.unwrap();
    expect_violation(&mut backup_err, "lull.v1.lease.request.indexer").await;
    assert_eq!(
        metric_at(&metrics_url, "lull_lease_identity_rejections_total", &[]).await,
        5.0
    );

    // indexer's bucket is whole: its requests (through the SDK, on its
    // own subject) are decided, none rate_limited within the burst.
    let lc = LeaseClient::new(indexer.clone(), subjects.clone());
    for _ in 0..3 {
        let r = lc.request_raw(&ask("indexer")).await.expect("indexer asks");
        assert_ne!(r.reason_code, Some(DenyReason::RateLimited), "{r:?}");
    }
    // The bucket does limit: backup's own fourth request is rate_limited.
    let lc = LeaseClient::new(backup.clone(), subjects.clone());
    let mut last = None;
    for _ in 0..4 {
        last = Some(lc.request_raw(&ask("backup")).await.expect("backup asks"));
    }
    assert_eq!(
        last.and_then(|r| r.reason_code),
        Some(DenyReason::RateLimited)
    );

    // Reports: id-host's user may publish only under id-host.
    let js = async_nats::jetstream::new(agent.clone());
    let publish = |subject: String, id: &str, body: Vec<u8>| {
        let js = js.clone();
        let id = id.to_string();
        async move {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", id.as_str());
            tokio::time::timeout(Duration::from_secs(3), async {
                js.publish_with_headers(subject, headers, body.into())
                    .await
                    .ok()?
                    .await
                    .ok()
            })
            .await
            .ok()
            .flatten()
        }
    };
    let now = lull_common::runtime::now_unix();
    let mut run =
        lull_proto::msg::worker::example_report("id-forged", "id_worker", now - 60.0, 1000.0);
    run.host_id = Some("other-host".into());
    // As another host: the server refuses the subject.
    let acked = publish(
        subjects.report_worker_by("other-host", "id_worker"),
        "id-forged",
        serde_json::to_vec(&run).unwrap(),
    )
    .await;
    assert!(acked.is_none(), "the stream took a report as other-host");
    expect_violation(&mut agent_err, "lull.report.worker.other-host.id_worker").await;
    // On its own subject, a payload naming another host: stored by the
    // stream (the server cannot read payloads), rejected by the coordinator.
    let acked = publish(
        subjects.report_worker_by("id-host", "id_worker"),
        "id-forged",
        serde_json::to_vec(&run).unwrap(),
    )
    .await;
    assert!(acked.is_some(), "the stream refused id-host's own subject");
    // Its genuine report, without host_id: the coordinator fills it in.
    run.execution_id = "id-genuine".into();
    run.host_id = None;
    let acked = publish(
        subjects.report_worker_by("id-host", "id_worker"),
        "id-genuine",
        serde_json::to_vec(&run).unwrap(),
    )
    .await;
    assert!(acked.is_some());
    let settled = wait_until(Duration::from_secs(20), || async {
        metric_at(
            &metrics_url,
            "lull_reports_total",
            &[("kind", "worker"), ("result", "host_mismatch")],
        )
        .await
            >= 1.0
            && metric_at(
                &metrics_url,
                "lull_reports_total",
                &[("kind", "worker"), ("result", "accepted")],
            )
            .await
                >= 1.0
    })
    .await;
    assert!(settled.is_ok(), "reports not consumed\n{}", coord.logs());
    let runs: lull_proto::msg::worker::WorkerExecutionsReply = support::call(
        &ops,
        "workers.executions",
        &serde_json::json!({"worker_name": "id_worker"}),
    )
    .await
    .expect("workers.executions");
    let ids: Vec<(String, Option<String>)> = runs
        .executions
        .iter()
        .map(|r| (r.report.execution_id.clone(), r.report.host_id.clone()))
        .collect();
    assert_eq!(
        ids,
        vec![("id-genuine".to_string(), Some("id-host".to_string()))],
        "only the genuine run is stored, under its publishing host"
    );
    // The rejected report was terminated, not left to be redelivered.
    let (coord_client, _) = login(&infra.nats, &secrets.join("coordinator.env")).await;
    let cjs = async_nats::jetstream::new(coord_client);
    let drained = wait_until(Duration::from_secs(10), || {
        let cjs = cjs.clone();
        async move {
            let Ok(mut c) = cjs
                .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
                    "lull-coordinator-reports",
                    "LULL_REPORTS",
                )
                .await
            else {
                return false;
            };
            c.info()
                .await
                .map(|i| i.num_ack_pending == 0 && i.num_pending == 0)
                .unwrap_or(false)
        }
    })
    .await;
    assert!(drained.is_ok(), "a rejected report is still pending");
    let logs = coord.logs();
    assert!(
        logs.contains("other-host") && logs.contains("id-forged"),
        "the rejection is logged with the ids\n{logs}"
    );
}
