//! After the fleet phase: does a large fleet still answer? Pages through
//! `hosts.list`, asks `scheduler.status` and `lease.request`, and reads the
//! coordinator's RSS (from `/proc/<pid>/status`) to give memory per host.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use lull_proto::msg::lease::{HeavyLeaseRequest, HeavyLeaseResponse, SchedulerStatus};
use lull_proto::msg::page::{HostPage, PageRequest};
use lull_proto::subjects::endpoints as ep;
use lull_proto::Subjects;

/// Resident set size of a process, bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// What the check found.
#[derive(Debug)]
pub struct FleetCheck {
    /// Hosts listed by paging through `hosts.list`.
    pub listed: usize,
    /// Pages it took.
    pub pages: usize,
    /// Time to page through all of them.
    pub list_time: Duration,
    /// Time of one `scheduler.status` (first page).
    pub status_time: Duration,
    /// Time of one `lease.request` (granted or denied).
    pub lease_time: Duration,
}

async fn call<B: serde::Serialize, R: serde::de::DeserializeOwned>(
    client: &async_nats::Client,
    endpoint: &str,
    body: &B,
) -> anyhow::Result<R> {
    lull_client::request::request(
        client,
        Subjects::default().endpoint(endpoint),
        body,
        Duration::from_secs(10),
    )
    .await
    .with_context(|| endpoint.to_string())
}

/// Runs the check against the coordinator behind `client`; `host` is one
/// of the generated hosts.
pub async fn run(client: &async_nats::Client, host: &str) -> anyhow::Result<FleetCheck> {
    let t0 = Instant::now();
    let (mut listed, mut pages, mut cursor) = (0usize, 0usize, None::<String>);
    loop {
        let page: HostPage = call(
            client,
            ep::HOSTS_LIST,
            &PageRequest {
                limit: Some(1000),
                cursor: cursor.clone(),
            },
        )
        .await?;
        listed += page.hosts.len();
        pages += 1;
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        if pages > 10_000 {
            bail!("hosts.list never ended");
        }
    }
    let list_time = t0.elapsed();
    let t1 = Instant::now();
    let _: SchedulerStatus = call(client, ep::SCHEDULER_STATUS, &serde_json::json!({})).await?;
    let status_time = t1.elapsed();
    let req = HeavyLeaseRequest {
        addon_id: "bench".into(),
        job_type: "fleet-check".into(),
        host_id: Some(host.into()),
        cost_units: Some(10),
        cost_class: None,
        expected_duration_sec: None,
        priority: Default::default(),
        constraints: Default::default(),
        wait: false,
        wait_timeout_sec: None,
    };
    let t2 = Instant::now();
    let _: HeavyLeaseResponse = call(client, ep::LEASE_REQUEST, &req).await?;
    let lease_time = t2.elapsed();
    Ok(FleetCheck {
        listed,
        pages,
        list_time,
        status_time,
        lease_time,
    })
}
