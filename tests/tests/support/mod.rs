//! Lull-specific helpers shared by the end-to-end suites: starting a
//! coordinator and an agent against a harness [`Infra`], and calling the
//! micro service.
#![allow(dead_code)]

use std::time::Duration;

use lull_common::Subjects;
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
    Coordinator {
        svc,
        metrics_url: format!("http://127.0.0.1:{port}/metrics"),
        metrics_port: port,
    }
}

/// Whether `lull-coordinator` answers `$SRV.PING`.
pub async fn ping(client: &async_nats::Client) -> bool {
    let subject = format!("$SRV.PING.{}", lull_common::subjects::SERVICE_NAME);
    match tokio::time::timeout(Duration::from_secs(1), client.request(subject, "".into())).await {
        Ok(Ok(msg)) => serde_json::from_slice::<serde_json::Value>(&msg.payload)
            .map(|v| v["name"] == lull_common::subjects::SERVICE_NAME)
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
) -> Result<R, lull_common::client::request::RequestError> {
    lull_common::client::request::request(
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
