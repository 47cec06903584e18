//! Lull-specific helpers shared by the end-to-end suites: starting a
//! coordinator and an agent against a harness [`Infra`], and calling the
//! micro service.
#![allow(dead_code)]

mod input;
#[allow(unused_imports)]
pub use input::*;

use std::time::Duration;

use lull_proto::Subjects;
use lull_tests::{free_port, wait_until, Infra, Service};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A running coordinator and where its metrics are.
pub struct Coordinator {
    /// The process.
    pub svc: Service,
    /// `http://127.0.0.1:PORT/metrics`.
    pub metrics_url: String,
    /// The metrics port.
    pub metrics_port: u16,
}

/// Starts `lull-coordinator` against `infra` with extra environment, and
/// waits until its micro service answers `$SRV.PING`.
pub async fn start_coordinator(infra: &Infra, extra_env: &[(&str, &str)]) -> Coordinator {
    let port = free_port().expect("free port");
    start_coordinator_on(infra, port, extra_env).await
}

/// Like [`start_coordinator`] on a given metrics port (for restarts).
pub async fn start_coordinator_on(
    infra: &Infra,
    port: u16,
    extra_env: &[(&str, &str)],
) -> Coordinator {
    let c = start_instance_on(infra, port, extra_env).await;
    // The lease endpoints are subscribed once this instance leads.
    let client = infra.nats.connect().await.expect("connect");
    let ok = wait_until(Duration::from_secs(20), || {
        let client = client.clone();
        async move {
            has_endpoint(&client, "lease.request").await
                && has_endpoint(&client, "regions.stats").await
        }
    })
    .await;
    assert!(ok.is_ok(), "coordinator never led:\n{}", c.svc.logs());
    c
}

/// Whether some instance answers `lull.v1.<name>` (only the leader
/// subscribes the lease endpoints; an empty request gets an error reply).
pub async fn has_endpoint(client: &async_nats::Client, name: &str) -> bool {
    let subject = format!("{}.{name}", Subjects::default().service_group());
    matches!(
        tokio::time::timeout(
            Duration::from_millis(500),
            client.request(subject, "".into())
        )
        .await,
        Ok(Ok(_))
    )
}

/// Starts a coordinator that may be a standby: waits for its service, not
/// for leadership.
pub async fn start_instance(infra: &Infra, extra_env: &[(&str, &str)]) -> Coordinator {
    let port = free_port().expect("free port");
    start_instance_on(infra, port, extra_env).await
}

/// Like [`start_instance`] on a given metrics port.
pub async fn start_instance_on(
    infra: &Infra,
    port: u16,
    extra_env: &[(&str, &str)],
) -> Coordinator {
    let mut env = infra.lull_env();
    env.push(("LULL_METRICS_ADDR".into(), format!("127.0.0.1:{port}")));
    env.push(("LULL_LOG".into(), "info,lull_coordinator=debug".into()));
    for (k, v) in extra_env {
        env.push((k.to_string(), v.to_string()));
    }
    let svc = Service::builder("lull-coordinator")
        .envs(env)
        .start()
        .expect("start coordinator");
    let client = infra.nats.connect().await.expect("connect");
    let ok = wait_until(Duration::from_secs(20), || {
        let client = client.clone();
        async move { ping(&client).await }
    })
    .await;
    assert!(
        ok.is_ok(),
        "coordinator did not answer $SRV.PING:\n{}",
        svc.logs()
    );
    // PING is answered as soon as the service exists, before its endpoints
    // are subscribed: wait until the endpoint list stops growing.
    let mut last = 0;
    for _ in 0..100 {
        let n = endpoint_count(&client).await;
        if n > 0 && n == last {
            break;
        }
        last = n;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Another instance may have answered the PING: wait for this one's
    // own HTTP listener too.
    let live = wait_until(Duration::from_secs(20), || async move {
        lull_tests::http::http_get(&format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await;
    assert!(
        live.is_ok(),
        "coordinator never served /healthz:\n{}",
        svc.logs()
    );
    Coordinator {
        svc,
        metrics_url: format!("http://127.0.0.1:{port}/metrics"),
        metrics_port: port,
    }
}

/// How many endpoints `$SRV.INFO` lists for `lull-coordinator` (0 on no reply).
pub async fn endpoint_count(client: &async_nats::Client) -> usize {
    let subject = format!("$SRV.INFO.{}", lull_proto::subjects::SERVICE_NAME);
    match tokio::time::timeout(Duration::from_secs(1), client.request(subject, "".into())).await {
        Ok(Ok(msg)) => serde_json::from_slice::<serde_json::Value>(&msg.payload)
            .ok()
            .and_then(|v| v["endpoints"].as_array().map(|a| a.len()))
            .unwrap_or(0),
        _ => 0,
    }
}

/// Whether `lull-coordinator` answers `$SRV.PING`.
pub async fn ping(client: &async_nats::Client) -> bool {
    let subject = format!("$SRV.PING.{}", lull_proto::subjects::SERVICE_NAME);
    match tokio::time::timeout(Duration::from_secs(1), client.request(subject, "".into())).await {
        Ok(Ok(msg)) => serde_json::from_slice::<serde_json::Value>(&msg.payload)
            .map(|v| v["name"] == lull_proto::subjects::SERVICE_NAME)
            .unwrap_or(false),
        _ => false,
    }
}

/// Starts `lull-agent` for `host_id` with a fast interval.
pub fn start_agent(infra: &Infra, host_id: &str, extra_env: &[(&str, &str)]) -> (Service, u16) {
    let port = free_port().expect("free port");
    let mut env = infra.lull_env();
    env.push(("LULL_METRICS_ADDR".into(), format!("127.0.0.1:{port}")));
    env.push(("LULL_HOST_ID".into(), host_id.into()));
    env.push(("LULL_INTERVAL_SEC".into(), "0.5".into()));
    for (k, v) in extra_env {
        env.push((k.to_string(), v.to_string()));
    }
    let svc = Service::builder("lull-agent")
        .envs(env)
        .start()
        .expect("start agent");
    (svc, port)
}

/// Calls `lull.v1.<endpoint>` and decodes the reply (or the error reply).
pub async fn call<B: Serialize, R: DeserializeOwned>(
    client: &async_nats::Client,
    endpoint: &str,
    body: &B,
) -> Result<R, lull_client::request::RequestError> {
    lull_client::request::request(
        client,
        Subjects::default().endpoint(endpoint),
        body,
        Duration::from_secs(5),
    )
    .await
}

/// Sends raw bytes to `lull.v1.<endpoint>` and returns the reply message.
pub async fn call_raw(
    client: &async_nats::Client,
    endpoint: &str,
    payload: Vec<u8>,
) -> async_nats::Message {
    client
        .request(Subjects::default().endpoint(endpoint), payload.into())
        .await
        .expect("reply")
}

/// Value of the first sample of `name` whose label set contains every
/// `labels` pair (`key="value"`), from a Prometheus text exposition.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' '))
        })
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Load of a synthetic host, as published by a [`Feeder`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// CPU percent.
    pub cpu_pct: f64,
    /// Memory used percent.
    pub mem_pct: f64,
    /// Cores.
    pub cpu_count: u32,
}

impl Load {
    /// An idle host with `cores` cores.
    pub fn idle(cores: u32) -> Load {
        Load {
            cpu_pct: 2.0,
            mem_pct: 20.0,
            cpu_count: cores,
        }
    }

    /// A CPU-busy host (quiet score about 35: BUSY).
    pub fn busy(cores: u32) -> Load {
        Load {
            cpu_pct: 90.0,
            mem_pct: 50.0,
            cpu_count: cores,
        }
    }

    /// A host out of memory (a PANIC trigger).
    pub fn panic(cores: u32) -> Load {
        Load {
            cpu_pct: 50.0,
            mem_pct: 98.0,
            cpu_count: cores,
        }
    }
}

/// Publishes synthetic snapshots for a set of hosts every `period`, with
/// loads that the test can change or remove (a removed host goes silent).
pub struct Feeder {
    hosts: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, Load>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Feeder {
    /// Starts publishing on `client` every `period`.
    pub fn start(client: async_nats::Client, period: Duration) -> Feeder {
        let hosts: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, Load>>> =
            Default::default();
        let shared = hosts.clone();
        let task = tokio::spawn(async move {
            let mut seq = 0u64;
            loop {
                seq += 1;
                let now = lull_common::runtime::now_unix();
                let batch: Vec<(String, Load)> = shared
                    .lock()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
                    .unwrap_or_default();
                for (host, load) in batch {
                    let mut s = lull_proto::msg::stats::example_snapshot(&host, seq, now);
                    s.interval_sec = Some(period.as_secs_f64());
                    s.host.cpu_pct = load.cpu_pct;
                    s.host.mem_used_pct = load.mem_pct;
                    s.host.cpu_count = load.cpu_count;
                    s.host.load_avg = [load.cpu_pct / 100.0 * load.cpu_count as f64, 0.0, 0.0];
                    if let Ok(body) = serde_json::to_vec(&s) {
                        let _ = client
                            .publish(Subjects::default().stats(&host), body.into())
                            .await;
                    }
                }
                let _ = client.flush().await;
                tokio::time::sleep(period).await;
            }
        });
        Feeder { hosts, task }
    }

    /// Sets (or adds) a host's load.
    pub fn set(&self, host: &str, load: Load) {
        if let Ok(mut m) = self.hosts.lock() {
            m.insert(host.to_string(), load);
        }
    }

    /// Stops publishing for a host.
    pub fn silence(&self, host: &str) {
        if let Ok(mut m) = self.hosts.lock() {
            m.remove(host);
        }
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits until `host` is listed in `state`.
pub async fn wait_state(
    client: &async_nats::Client,
    host: &str,
    state: lull_proto::msg::hosts::QuietState,
) {
    let client = client.clone();
    let host = host.to_string();
    let r = lull_tests::wait_until(Duration::from_secs(15), || {
        let client = client.clone();
        let host = host.clone();
        async move {
            let hosts: Vec<lull_proto::msg::hosts::HostSummary> = match call(
                &client,
                lull_proto::subjects::endpoints::HOSTS_LIST,
                &serde_json::json!({}),
            )
            .await
            {
                Ok(h) => h,
                Err(_) => return false,
            };
            hosts
                .iter()
                .any(|h| h.host_id == host && h.state == state && !h.stale)
        }
    })
    .await;
    assert!(r.is_ok(), "host {host} never reached {state}");
}

/// Like [`start_coordinator`] against any NATS servers: `nats_url` is the
/// value of `LULL_NATS_URL` (one URL or a comma-separated list, e.g.
/// [`lull_tests::nats::NatsCluster::urls`]) and `client` a connection to the same
/// servers, used to wait until the instance serves and leads.
pub async fn start_coordinator_at(
    nats_url: &str,
    pg: &lull_tests::Postgres,
    client: &async_nats::Client,
    extra_env: &[(&str, &str)],
) -> Coordinator {
    let port = free_port().expect("free port");
    let svc = Service::builder("lull-coordinator")
        .env("LULL_NATS_URL", nats_url)
        .env("LULL_DATABASE_URL", pg.url())
        .env("LULL_METRICS_ADDR", format!("127.0.0.1:{port}"))
        .env("LULL_LOG", "info,lull_coordinator=debug")
        .envs(extra_env.iter().copied())
        .start()
        .expect("start coordinator");
    let ok = wait_until(Duration::from_secs(30), || {
        let client = client.clone();
        async move {
            ping(&client).await
                && has_endpoint(&client, "lease.request").await
                && has_endpoint(&client, "regions.stats").await
        }
    })
    .await;
    assert!(ok.is_ok(), "coordinator never led:\n{}", svc.logs());
    Coordinator {
        svc,
        metrics_url: format!("http://127.0.0.1:{port}/metrics"),
        metrics_port: port,
    }
}

/// Like [`start_agent`] against any NATS servers (`nats_url` is the value of
/// `LULL_NATS_URL`).
pub fn start_agent_at(nats_url: &str, host_id: &str, extra_env: &[(&str, &str)]) -> (Service, u16) {
    let port = free_port().expect("free port");
    let svc = Service::builder("lull-agent")
        .env("LULL_NATS_URL", nats_url)
        .env("LULL_METRICS_ADDR", format!("127.0.0.1:{port}"))
        .env("LULL_HOST_ID", host_id)
        .env("LULL_INTERVAL_SEC", "0.5")
        .envs(extra_env.iter().copied())
        .start()
        .expect("start agent");
    (svc, port)
}
