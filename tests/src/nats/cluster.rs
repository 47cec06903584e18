//! A 3-node (or n-node) `nats-server` cluster on 127.0.0.1 with JetStream in
//! every node: free client, route and monitoring ports, one store dir per
//! node under the cluster's temp dir, and one node at a time killed and
//! restarted on the same ports and store.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::bins::{self, SearchPath};
use crate::error::{HarnessError, Result};
use crate::http::http_get;
use crate::janitor;
use crate::ports::free_port;
use crate::process::Proc;
use crate::{log_tail, STARTUP_TIMEOUT};

use super::NATS_STOP_TIMEOUT;

/// The cluster name every node is configured with.
pub const CLUSTER_NAME: &str = "lull-test";
/// Attempts at a first start with fresh ports when a port was taken
/// meanwhile by another process.
const START_ATTEMPTS: usize = 3;
/// How long the JetStream API may take to answer once every node is up
/// (the meta group elects its leader).
const META_TIMEOUT: Duration = Duration::from_secs(30);

/// One node of a [`NatsCluster`].
#[derive(Debug)]
struct Node {
    name: String,
    dir: PathBuf,
    port: u16,
    monitor_port: u16,
    route_port: u16,
    proc: Option<Proc>,
}

impl Node {
    fn log_path(&self) -> PathBuf {
        self.dir.join("nats.log")
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.join("nats.conf")
    }

    fn store_dir(&self) -> PathBuf {
        self.dir.join("store")
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.monitor_port)
    }

    fn start_failed(&self, reason: String) -> HarnessError {
        HarnessError::StartFailed {
            what: format!("nats-server {} on 127.0.0.1:{}", self.name, self.port),
            reason,
            log: log_tail(&self.log_path()),
        }
    }
}

/// The configuration file of one node: its name, ports, store and the routes
/// to every node (a route to itself is ignored by the server).
fn node_config(node: &Node, route_ports: &[u16], extra: &str) -> String {
    let routes: Vec<String> = route_ports
        .iter()
        .map(|p| format!("    nats-route://127.0.0.1:{p}"))
        .collect();
    format!(
        "server_name: {name}\n\
         listen: 127.0.0.1:{port}\n\
         http: 127.0.0.1:{monitor}\n\
         jetstream {{\n    store_dir: \"{store}\"\n}}\n\
         cluster {{\n    name: {CLUSTER_NAME}\n    listen: 127.0.0.1:{route}\n    routes: [\n{routes}\n    ]\n}}\n\
         {extra}\n",
        name = node.name,
        port = node.port,
        monitor = node.monitor_port,
        store = node.store_dir().display(),
        route = node.route_port,
        routes = routes.join("\n"),
    )
}

/// A cluster of `nats-server` processes with JetStream, owned by the test.
/// Every node is killed (SIGKILL) and the stores removed on drop.
#[derive(Debug)]
pub struct NatsCluster {
    bin: PathBuf,
    /// Dropped (each process killed) before `dir` is removed.
    nodes: Vec<Node>,
    extra: String,
    dir: TempDir,
}

impl NatsCluster {
    /// Starts a 3-node cluster and waits until every node is healthy and the
    /// JetStream API answers (the meta group has a leader).
    pub async fn start() -> Result<NatsCluster> {
        Self::start_with(3, "").await
    }

    /// Starts a cluster of `size` nodes (at least 1); `extra` is appended to
    /// every node's configuration file (e.g. `max_payload: 8MB`).
    pub async fn start_with(size: usize, extra: &str) -> Result<NatsCluster> {
        let bin = bins::nats_server(&SearchPath::from_env())?;
        janitor::sweep_once();
        let dir = tempfile::Builder::new()
            .prefix("lull-nats-cluster-")
            .tempdir()
            .map_err(|e| HarnessError::io("create the NATS cluster temp dir", e))?;
        janitor::mark_owned(dir.path()).map_err(|e| HarnessError::io("write the owner file", e))?;
        let mut cluster = NatsCluster {
            bin,
            nodes: Vec::new(),
            extra: extra.to_string(),
            dir,
        };
        for i in 1..=size.max(1) {
            let name = format!("n{i}");
            let node_dir = cluster.dir.path().join(&name);
            std::fs::create_dir_all(&node_dir)
                .map_err(|e| HarnessError::io("create a node dir", e))?;
            cluster.nodes.push(Node {
                name,
                dir: node_dir,
                port: 0,
                monitor_port: 0,
                route_port: 0,
                proc: None,
            });
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            for node in &mut cluster.nodes {
                node.port = free_port()?;
                node.monitor_port = free_port()?;
                node.route_port = free_port()?;
            }
            cluster.write_configs()?;
            match cluster.launch_all().await {
                Ok(()) => break,
                Err(HarnessError::StartFailed { log, .. })
                    if attempt < START_ATTEMPTS && log.contains("address already in use") =>
                {
                    for node in &mut cluster.nodes {
                        if let Some(mut p) = node.proc.take() {
                            p.kill();
                        }
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        cluster.wait_jetstream(META_TIMEOUT).await?;
        Ok(cluster)
    }

    fn write_configs(&self) -> Result<()> {
        let routes: Vec<u16> = self.nodes.iter().map(|n| n.route_port).collect();
        for node in &self.nodes {
            std::fs::write(node.conf_path(), node_config(node, &routes, &self.extra))
                .map_err(|e| HarnessError::io("write a node's nats.conf", e))?;
        }
        Ok(())
    }

    /// Spawns every node, then waits until each one is healthy (a clustered
    /// JetStream node is healthy once it knows the meta leader).
    async fn launch_all(&mut self) -> Result<()> {
        for i in 0..self.nodes.len() {
            self.spawn(i)?;
        }
        for i in 0..self.nodes.len() {
            self.wait_healthy(i).await?;
        }
        Ok(())
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-c").arg(node.conf_path()).current_dir(&node.dir);
        let log = node.log_path();
        node.proc = Some(Proc::spawn("nats-server", cmd, &log, &log, None)?);
        Ok(())
    }

    async fn wait_healthy(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        let healthz = format!("{}/healthz", node.monitor_url());
        let h = &healthz;
        let Some(proc) = node.proc.as_mut() else {
            return Err(node.start_failed("it is not running".into()));
        };
        let ready = proc
            .wait_ready(
                STARTUP_TIMEOUT,
                Duration::from_millis(50),
                "/healthz not OK",
                || async move { http_get(h).await.is_ok_and(|r| r.status == 200) },
            )
            .await;
        if let Err(why) = ready {
            node.proc = None;
            return Err(node.start_failed(why));
        }
        tracing::debug!(node = %node.name, port = node.port, "nats cluster node ready");
        Ok(())
    }

    /// Polls `$JS.API.INFO` through a client of the whole cluster until it
    /// answers without an error (the JetStream meta leader exists).
    pub async fn wait_jetstream(&self, timeout: Duration) -> Result<()> {
        let client = self.connect().await?;
        crate::wait::wait_until(timeout, || {
            let client = client.clone();
            async move {
                let reply = tokio::time::timeout(
                    Duration::from_secs(2),
                    client.request("$JS.API.INFO", "".into()),
                )
                .await;
                match reply {
                    Ok(Ok(msg)) => serde_json::from_slice::<serde_json::Value>(&msg.payload)
                        .is_ok_and(|v| v.get("error").is_none() && v.get("memory").is_some()),
                    _ => false,
                }
            }
        })
        .await
        .map_err(|_| HarnessError::Timeout {
            what: "the JetStream API of the NATS cluster ($JS.API.INFO)".into(),
            after: timeout,
        })
    }

    /// The number of nodes.
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// Every node's client URL, comma separated
    /// (`nats://127.0.0.1:a,nats://127.0.0.1:b,nats://127.0.0.1:c`): the
    /// value for `LULL_NATS_URL`.
    pub fn urls(&self) -> String {
        self.url_list().join(",")
    }

    /// Every node's client URL.
    pub fn url_list(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// Node `i`'s client URL (`nats://127.0.0.1:<port>`). Panics when `i` is
    /// out of range, like indexing.
    pub fn url(&self, i: usize) -> String {
        self.nodes[i].url()
    }

    /// Node `i`'s client port.
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port
    }

    /// Node `i`'s `server_name` (`n1`, `n2`, ...).
    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// Node `i`'s monitoring base URL (`/healthz`, `/varz`, `/jsz`, `/connz`).
    pub fn monitor_url(&self, i: usize) -> String {
        self.nodes[i].monitor_url()
    }

    /// Node `i`'s JetStream store directory (kept across kill and restart).
    pub fn store_dir(&self, i: usize) -> PathBuf {
        self.nodes[i].store_dir()
    }

    /// The cluster's temp dir (one sub dir per node).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The index of the node listening on client port `port`.
    pub fn index_of_port(&self, port: u16) -> Option<usize> {
        self.nodes.iter().position(|n| n.port == port)
    }

    /// Whether node `i` is running.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i].proc.as_mut().is_some_and(Proc::is_running)
    }

    /// Everything node `i` logged so far (all runs).
    pub fn logs(&self, i: usize) -> String {
        std::fs::read_to_string(self.nodes[i].log_path()).unwrap_or_default()
    }

    /// Every node's log, each under a header line.
    pub fn all_logs(&self) -> String {
        (0..self.nodes.len())
            .map(|i| format!("--- {} ---\n{}", self.nodes[i].name, self.logs(i)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Kills node `i` at once (SIGKILL), as a crash would. Its ports and
    /// store are kept for [`NatsCluster::restart`]. Returns the exit status
    /// (`None` when it was not running).
    pub fn kill(&mut self, i: usize) -> Option<ExitStatus> {
        self.nodes[i].proc.take().map(|mut p| p.kill())
    }

    /// Stops node `i` gracefully (SIGTERM, then SIGKILL after
    /// [`NATS_STOP_TIMEOUT`]). A no-op when it is not running.
    pub async fn stop(&mut self, i: usize) -> Result<()> {
        if let Some(mut p) = self.nodes[i].proc.take() {
            p.stop_with(Signal::SIGTERM, NATS_STOP_TIMEOUT).await?;
        }
        Ok(())
    }

    /// Starts node `i` again on the same ports, store and configuration, and
    /// waits until it is healthy (it rejoined the cluster, knows the meta
    /// leader and its streams are current). Fails if it is running.
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        if self.is_running(i) {
            return Err(self.nodes[i].start_failed("it is already running".into()));
        }
        self.spawn(i)?;
        self.wait_healthy(i).await
    }

    /// Which running node a client named `name` (its `CONNECT` name) is
    /// connected to, from each node's `/connz`.
    pub async fn node_of_client(&self, name: &str) -> Option<usize> {
        for (i, node) in self.nodes.iter().enumerate() {
            if node.proc.is_none() {
                continue;
            }
            let url = format!("{}/connz?limit=4096", node.monitor_url());
            let Ok(resp) = http_get(&url).await else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&resp.body) else {
                continue;
            };
            let found = v["connections"]
                .as_array()
                .is_some_and(|a| a.iter().any(|c| c["name"].as_str() == Some(name)));
            if found {
                return Some(i);
            }
        }
        None
    }

    /// Connects a client that knows every node (no authentication) and
    /// fails over between them.
    pub async fn connect(&self) -> Result<async_nats::Client> {
        async_nats::ConnectOptions::new()
            .connect(self.url_list())
            .await
            .map_err(|e| HarnessError::Nats(format!("connect to {}: {e}", self.urls())))
    }

    /// Connects a client and returns its JetStream context.
    pub async fn jetstream(&self) -> Result<async_nats::jetstream::Context> {
        Ok(async_nats::jetstream::new(self.connect().await?))
    }
}
