//! End-to-end: Lull on a 3-node NATS cluster with JetStream. The coordinator
//! gets the whole URL list, creates `LULL_REPORTS` with 3 replicas, and an
//! agent (spool directory) and an SDK report publisher deliver worker
//! reports while the NATS node the coordinator is connected to is killed
//! with SIGKILL. Every report is stored exactly once, and the coordinator,
//! the agent and the SDK client all reconnect to the surviving nodes. The
//! cluster configuration under `deploy/nats/cluster/` is checked too.

mod deploy_support;
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use lull_client::connect::NatsSettings;
use lull_client::report::{PreparedReport, ReportPublisher};
use lull_common::runtime::now_unix;
use lull_proto::msg::hosts::HostDetail;
use lull_proto::msg::worker::{
    DataVerification, ExecutionOutcome, ResourceMetrics, WorkerExecutionReport,
};
use lull_proto::subjects::endpoints as ep;
use lull_proto::Subjects;
use lull_tests::bins::{self, SearchPath};
use lull_tests::nats::NatsCluster;
use lull_tests::{wait_for, wait_until, Postgres};
use serde_json::json;
use support::*;

/// Reports handed to the agent's spool directory.
const SPOOLED: usize = 60;
/// Reports published with the SDK.
const PUBLISHED: usize = 60;
/// Pause between two reports of one producer.
const PACE: Duration = Duration::from_millis(40);
/// The node is killed after this many reports of each producer.
const KILL_AFTER: usize = 20;
const HOST: &str = "cluster-host";

fn report(worker: &str, id: String) -> WorkerExecutionReport {
    let started_at = now_unix() - 5.0;
    WorkerExecutionReport {
        execution_id: id,
        worker_name: worker.to_string(),
        host_id: Some(HOST.into()),
        started_at,
        completed_at: started_at + 1.0,
        outcome: ExecutionOutcome::Success,
        duration_ms: 1000.0,
        error_message: None,
        data_verification: DataVerification::default(),
        resource_metrics: ResourceMetrics::default(),
        upstream_data_age_seconds: None,
        downstream_consumers_waiting: None,
        custom_metrics: serde_json::Map::new(),
    }
}

/// Writes a report the way a worker should: temporary name, then rename.
fn spool_report(spool: &Path, r: &WorkerExecutionReport) {
    let tmp = spool.join(format!(".{}.tmp", r.execution_id));
    std::fs::write(&tmp, serde_json::to_vec(r).expect("json")).expect("write spool file");
    std::fs::rename(&tmp, spool.join(format!("{}.json", r.execution_id))).expect("rename");
}

/// Execution ids stored in Postgres for `workers`.
async fn stored_ids(pg: &tokio_postgres::Client, workers: &[&str]) -> Vec<String> {
    let workers: Vec<String> = workers.iter().map(|w| w.to_string()).collect();
    pg.query(
        "SELECT execution_id FROM worker_executions WHERE worker_name = ANY($1) \
         ORDER BY execution_id",
        &[&workers],
    )
    .await
    .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect())
    .unwrap_or_default()
}

async fn host_detail(client: &async_nats::Client) -> Option<HostDetail> {
    call(client, ep::HOSTS_GET, &json!({ "host_id": HOST }))
        .await
        .ok()
}

/// `deploy/nats/cluster/nats-<n>.conf`: three nodes that differ only in
/// `server_name`, route to each other, allow 8 MB payloads, and are valid
/// for `nats-server -t` with a generated `auth.conf`.
#[test]
fn the_deploy_cluster_configs_are_consistent_and_valid() {
    let nats_server = bins::nats_server(&SearchPath::from_env()).expect("nats-server");
    let dir = tempfile::tempdir().expect("temp dir");
    deploy_support::run_ok(
        Command::new(deploy_support::deploy("nats/gen-auth.sh"))
            .arg("-o")
            .arg(dir.path())
            .arg("agent:web1"),
    );
    let texts: Vec<String> = (1..=3)
        .map(|n| {
            deploy_support::read(&deploy_support::deploy(&format!(
                "nats/cluster/nats-{n}.conf"
            )))
        })
        .collect();
    for (i, text) in texts.iter().enumerate() {
        let n = i + 1;
        assert!(
            text.contains(&format!("server_name: lull-nats-{n}\n")),
            "nats-{n}"
        );
        assert!(text.contains("max_payload: 8MB"), "nats-{n}");
        assert!(text.contains("include auth.conf"), "nats-{n}");
        for peer in 1..=3 {
            assert!(
                text.contains(&format!("nats-route://nats-{peer}:6222")),
                "nats-{n} lacks the route to nats-{peer}"
            );
        }
        let same = text.replace(&format!("lull-nats-{n}"), "lull-nats-N");
        let first = texts[0].replace("lull-nats-1", "lull-nats-N");
        assert_eq!(
            same.lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>(),
            first
                .lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>(),
            "nats-{n} differs from nats-1 in more than server_name"
        );
        let store = dir.path().join(format!("store-{n}"));
        let conf = dir.path().join(format!("nats-{n}.conf"));
        std::fs::write(
            &conf,
            text.replace("/var/lib/nats", &store.display().to_string()),
        )
        .expect("write config");
        deploy_support::run_ok(Command::new(&nats_server).arg("-t").arg("-c").arg(&conf));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_survive_a_nats_node_loss_and_every_client_reconnects() {
    let (mut cluster, pg) = tokio::try_join!(NatsCluster::start(), Postgres::start())
        .expect("NATS cluster and Postgres");
    let client = cluster.connect().await.expect("connect to the cluster");
    let coord = start_coordinator_at(&cluster.urls(), &pg, &client, &[]).await;

    // Automatic replicas: min(3, cluster size).
    let js = jetstream::new(client.clone());
    let mut stream = js
        .get_stream(lull_proto::subjects::REPORTS_STREAM)
        .await
        .expect("the reports stream");
    let info = stream.info().await.expect("stream info");
    assert_eq!(info.config.num_replicas, 3, "{:?}", info.config);

    // Kill the node the coordinator uses. The agent is given only that node's
    // URL: it must learn the other nodes from the cluster to fail over.
    let victim = wait_for(Duration::from_secs(10), || {
        cluster.node_of_client("lull-coordinator")
    })
    .await
    .expect("the coordinator's node in /connz");
    let spool_dir = tempfile::tempdir().expect("spool temp dir");
    let spool: PathBuf = spool_dir.path().join("spool");
    std::fs::create_dir_all(&spool).expect("spool dir");
    let spool_env = spool.display().to_string();
    let (agent, _) = start_agent_at(
        &cluster.url(victim),
        HOST,
        &[
            ("LULL_SPOOL_DIR", spool_env.as_str()),
            ("LULL_SPOOL__SCAN_INTERVAL_SEC", "0.2"),
            ("LULL_SPOOL__ACK_TIMEOUT_SEC", "2"),
        ],
    );
    let seen = wait_for(Duration::from_secs(20), || {
        let client = client.clone();
        async move { host_detail(&client).await }
    })
    .await;
    assert!(seen.is_ok(), "agent never reported:\n{}", agent.logs());

    // The SDK connects with the whole list (comma separated, as in LULL_NATS_URL).
    let settings = NatsSettings {
        url: cluster.urls(),
        ..Default::default()
    };
    let sdk = lull_client::connect::connect(&settings, "cluster-sdk", false)
        .await
        .expect("SDK connect with a URL list");
    let publisher = ReportPublisher::new(sdk.clone(), Subjects::default())
        .with_ack_timeout(Duration::from_secs(2));

    let spooled = Arc::new(AtomicUsize::new(0));
    let published = Arc::new(AtomicUsize::new(0));
    let spool_task = {
        let (spool, spooled) = (spool.clone(), spooled.clone());
        tokio::spawn(async move {
            for i in 0..SPOOLED {
                spool_report(&spool, &report("cluster_spool", format!("spool-{i:03}")));
                spooled.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(PACE).await;
            }
        })
    };
    let sdk_task = {
        let published = published.clone();
        tokio::spawn(async move {
            let mut retries = 0;
            for i in 0..PUBLISHED {
                let r = PreparedReport::worker(&report("cluster_sdk", format!("sdk-{i:03}")))
                    .expect("valid report");
                // A publish whose ack is lost is resent with the same id: the
                // stream's duplicate window keeps one copy.
                while publisher.publish(&r).await.is_err() {
                    retries += 1;
                    assert!(retries < 100, "the SDK never got an ack for {}", r.id);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                published.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(PACE).await;
            }
            retries
        })
    };

    wait_until(Duration::from_secs(20), || {
        let (s, p) = (spooled.clone(), published.clone());
        async move {
            s.load(Ordering::SeqCst) >= KILL_AFTER && p.load(Ordering::SeqCst) >= KILL_AFTER
        }
    })
    .await
    .expect("the producers started");
    let killed_at = now_unix();
    cluster.kill(victim);

    spool_task.await.expect("spool producer");
    let sdk_retries = sdk_task.await.expect("SDK producer");
    eprintln!(
        "killed node {} ({}); SDK publishes retried: {sdk_retries}",
        victim,
        cluster.name(victim)
    );

    // No report lost, each stored once (execution_id is the primary key).
    let db = pg.client().await.expect("postgres client");
    let expected: BTreeSet<String> = (0..SPOOLED)
        .map(|i| format!("spool-{i:03}"))
        .chain((0..PUBLISHED).map(|i| format!("sdk-{i:03}")))
        .collect();
    let workers = ["cluster_spool", "cluster_sdk"];
    let stored = wait_for(Duration::from_secs(30), || {
        let db = &db;
        let n = expected.len();
        async move {
            let ids = stored_ids(db, &workers).await;
            (ids.len() >= n).then_some(ids)
        }
    })
    .await;
    let stored = match stored {
        Ok(ids) => ids,
        Err(_) => panic!(
            "reports missing: {} of {} stored; spool holds {:?} entries\n--- coordinator ---\n{}\n--- agent ---\n{}",
            stored_ids(&db, &workers).await.len(),
            expected.len(),
            std::fs::read_dir(&spool).map(|d| d.count()).ok(),
            coord.svc.logs(),
            agent.logs()
        ),
    };
    assert_eq!(stored.len(), expected.len(), "a report stored twice");
    assert_eq!(stored.into_iter().collect::<BTreeSet<_>>(), expected);

    // The stream kept one copy of each (Nats-Msg-Id deduplication).
    let info = stream.info().await.expect("stream info after the kill");
    assert_eq!(
        info.state.messages,
        expected.len() as u64,
        "stream copies (SDK retries: {sdk_retries})"
    );

    // Every client reconnected to a surviving node.
    for name in [
        "lull-coordinator",
        &format!("lull-agent {HOST}"),
        "cluster-sdk",
    ] {
        let node = wait_for(Duration::from_secs(15), || cluster.node_of_client(name)).await;
        assert!(
            matches!(node, Ok(n) if n != victim),
            "{name} did not reconnect: {node:?}"
        );
    }
    // The coordinator still answers, and the agent's snapshots still arrive.
    let fresh = wait_for(Duration::from_secs(15), || {
        let client = client.clone();
        async move {
            host_detail(&client)
                .await
                .filter(|d| d.snapshot.collected_at > killed_at + 1.0 && !d.stale)
        }
    })
    .await;
    assert!(
        fresh.is_ok(),
        "no snapshot after the kill:\n--- agent ---\n{}",
        agent.logs()
    );
    let executions: serde_json::Value = call(
        &client,
        ep::WORKERS_EXECUTIONS,
        &json!({ "worker_name": "cluster_sdk", "limit": 5 }),
    )
    .await
    .expect("workers.executions after the kill");
    assert_eq!(executions["executions"].as_array().map(Vec::len), Some(5));

    // The node comes back with its store and catches up.
    cluster
        .restart(victim)
        .await
        .expect("restart the killed node");
    let back = wait_for(Duration::from_secs(15), || {
        let mut stream = stream.clone();
        async move {
            let info = stream.info().await.ok()?;
            let c = info.cluster.as_ref()?;
            (c.replicas.len() == 2 && c.replicas.iter().all(|r| r.current)).then_some(())
        }
    })
    .await;
    assert!(
        back.is_ok(),
        "the restarted node never caught up:\n{}",
        cluster.all_logs()
    );
}
