//! Failover benchmark: two `lull-coordinator` processes (release builds)
//! on a real nats-server and Postgres, a steady lease load on one host, and
//! `--kills` rounds of kill -9 of the leader (the killed one comes back as a
//! standby). For each kill it measures the time to the first lease answer
//! and to the first new grant; at the end an independent checker replays
//! the lease events and the clients' grants and ends, and the report gives
//! p50 and max, leases lost and over-grants, as text and Markdown.
//!
//! Usage: failover_bench [--kills 20] [--clients 6] [--settle-sec 3]
//!                       [--markdown FILE]
//! (scripts/bench-failover.sh builds what it needs and runs it.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use lull_proto::msg::lease::LeaseEvent;
use lull_proto::Subjects;
use lull_tests::checker::check;
use lull_tests::lease_load::{self, Seen};
use lull_tests::ports::free_port;
use lull_tests::{Infra, Service};
use tokio_util::sync::CancellationToken;

struct Args {
    kills: usize,
    clients: usize,
    settle: Duration,
    markdown: Option<String>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        kills: 20,
        clients: 6,
        settle: Duration::from_secs(3),
        markdown: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--kills" => a.kills = v.parse()?,
            "--clients" => a.clients = v.parse()?,
            "--settle-sec" => a.settle = Duration::from_secs_f64(v.parse()?),
            "--markdown" => a.markdown = Some(v),
            _ => bail!("unknown flag {k}"),
        }
    }
    Ok(a)
}

/// A coordinator process and its metrics URL.
struct Coord {
    svc: Service,
    metrics: String,
}

fn start(env: &[(String, String)]) -> Result<Coord> {
    let port = free_port()?;
    let svc = Service::builder("lull-coordinator")
        .envs(env.iter().cloned())
        .env("LULL_METRICS_ADDR", format!("127.0.0.1:{port}"))
        .start()
        .context("start lull-coordinator (cargo build --release -p lull-coordinator)")?;
    Ok(Coord {
        svc,
        metrics: format!("http://127.0.0.1:{port}/metrics"),
    })
}

async fn leads(c: &Coord) -> bool {
    let body = lull_tests::http::http_get(&c.metrics)
        .await
        .map(|r| r.body)
        .unwrap_or_default();
    body.lines()
        .any(|l| l.starts_with("lull_coordinator_leader ") && l.ends_with(" 1"))
}

fn feed(client: async_nats::Client, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seq = 0;
        while !stop.is_cancelled() {
            seq += 1;
            let mut s = lull_proto::msg::stats::example_snapshot(
                "h1",
                seq,
                lull_common::runtime::now_unix(),
            );
            s.interval_sec = Some(0.3);
            s.host.cpu_pct = 2.0;
            s.host.mem_used_pct = 20.0;
            s.host.cpu_count = 4;
            s.host.load_avg = [0.08, 0.0, 0.0];
            if let Ok(b) = serde_json::to_vec(&s) {
                let _ = client
                    .publish(Subjects::default().stats("h1"), b.into())
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let a = args()?;
    let infra = Infra::start().await?;
    let mut env = infra.lull_env();
    for (k, v) in [
        ("LULL_LOG", "warn"),
        ("LULL_LEASE__HEARTBEAT_TTL_SEC", "10"),
        ("LULL_LEASE__RATE_PER_SEC", "1000"),
        ("LULL_LEASE__BURST", "1000"),
    ] {
        env.push((k.into(), v.into()));
    }
    let control = infra.nats.connect().await?;
    let stop = CancellationToken::new();
    let feeder = feed(control.clone(), stop.clone());
    let mut coords = vec![start(&env)?];
    tokio::time::sleep(Duration::from_secs(2)).await;
    coords.push(start(&env)?);
    let t = Instant::now();
    while lease_load::request(&control, "warmup", 1)
        .await
        .is_none_or(|r| !r.approved)
    {
        if t.elapsed() > Duration::from_secs(30) {
            bail!("no leader granted within 30 s:\n{}", coords[0].svc.logs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cap = 1000; // filled in from the status below
    let status: lull_proto::msg::lease::SchedulerStatus = lull_client::request::request(
        &control,
        Subjects::default().endpoint(lull_proto::subjects::endpoints::SCHEDULER_STATUS),
        &serde_json::json!({}),
        Duration::from_secs(5),
    )
    .await
    .context("scheduler.status")?;
    let cap = status
        .hosts
        .first()
        .map(|h| h.capacity_units)
        .unwrap_or(cap);

    let mut events = control
        .subscribe(Subjects::default().lease_events(">"))
        .await?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let load_stop = CancellationToken::new();
    let mut clients = Vec::new();
    for i in 0..a.clients {
        clients.push(tokio::spawn(lease_load::client(
            infra.nats.connect().await?,
            format!("load{i}"),
            load_stop.clone(),
            seen.clone(),
        )));
    }
    let probe = infra.nats.connect().await?;
    let (mut first, mut resumed) = (Vec::new(), Vec::new());
    for k in 0..a.kills {
        tokio::time::sleep(a.settle).await;
        let mut leader = None;
        for (i, c) in coords.iter().enumerate() {
            if leads(c).await {
                leader = Some(i);
            }
        }
        let Some(i) = leader else {
            bail!("round {k}: no leader found");
        };
        coords[i].svc.kill9();
        let killed = Instant::now();
        let (mut answered, mut granted) = (None, None);
        while granted.is_none() && killed.elapsed() < Duration::from_secs(30) {
            if let Some(r) = lease_load::request(&probe, "probe", 1).await {
                answered.get_or_insert(killed.elapsed());
                if let (true, Some(id), Some(tok)) = (r.approved, &r.lease_id, &r.token) {
                    granted = Some(killed.elapsed());
                    lease_load::release(&probe, id, tok).await;
                }
            } else {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let (Some(f), Some(g)) = (answered, granted) else {
            bail!("round {k}: no grant within 30 s after the kill");
        };
        first.push(f.as_secs_f64());
        resumed.push(g.as_secs_f64());
        eprintln!(
            "kill {:2}: first answer {:6.3} s, grants resumed {:6.3} s",
            k + 1,
            f.as_secs_f64(),
            g.as_secs_f64()
        );
        coords[i] = start(&env)?;
    }
    load_stop.cancel();
    for c in clients {
        let _ = c.await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut obs = std::mem::take(&mut seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.obs);
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), events.next()).await {
        if let Ok(ev) = serde_json::from_slice::<LeaseEvent>(&m.payload) {
            obs.push(lease_load::observe(ev));
        }
    }
    let findings = check(&obs, &HashMap::from([("h1".to_string(), cap)]));
    let lost = seen
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .lost
        .len();
    stop.cancel();
    let _ = feeder.await;

    let md = format!(
        "| kills | first answer p50 | first answer max | grants resumed p50 | grants resumed max | leases checked | leases lost | over-grants | ids granted twice |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n\
         | {} | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {} | {} | {} | {} |\n",
        a.kills,
        pct(&first, 0.5),
        pct(&first, 1.0),
        pct(&resumed, 0.5),
        pct(&resumed, 1.0),
        findings.leases,
        lost,
        findings.over_grants.len(),
        findings.granted_twice.len(),
    );
    println!("{md}");
    if let Some(path) = a.markdown {
        std::fs::write(&path, &md).with_context(|| format!("writing {path}"))?;
    }
    if !findings.clean() || lost > 0 {
        bail!("failover broke the invariant: {findings:?}, lost {lost}");
    }
    Ok(())
}
