//! `ingest_bench`: the stats ingest benchmark of issue 4. It starts a real
//! `nats-server`, Postgres and a release `lull-coordinator` (all on free
//! 127.0.0.1 ports, torn down on exit), simulates N agents publishing
//! synthetic `SystemStatsSnapshot`s on `lull.stats.<host>`, and reports:
//!
//! 1. the coordinator's CPU share (utime + stime from `/proc/<pid>/stat`
//!    over the measured window, as a percentage of one core) at `--hosts`
//!    hosts sending one snapshot each `--interval-sec` (default 10,000 hosts
//!    every 2 s = 5,000 snapshots/s), with history storage on its default
//!    cadences;
//! 2. the highest sustained snapshot rate: offered rates are stepped up
//!    (`--rates`); a step is sustained when the coordinator accepted at least
//!    99 % of what was published and dropped none.
//!
//! 3. with `--fleet-check`: after the fleet phase, whether the whole fleet
//!    still answers (`hosts.list` paged through, `scheduler.status`, a
//!    `lease.request`) and the coordinator's RSS per host, e.g.
//!    `--hosts 100000 --interval-sec 20 --fleet-check --no-steps`.
//!
//! Not a test: run it with `scripts/bench-ingest.sh` (release build). Every
//! loop is bounded in count and time. See docs/quiet.md ("Ingest benchmark").

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

mod fleet_check;
use lull_proto::msg::stats::{example_snapshot, ApiStats, ProcessStats};
use lull_tests::{free_port, scrape, wait_until, Infra, Service};

/// Target: coordinator CPU at 10k hosts / 2 s, percent of one core.
const TARGET_CPU_PCT: f64 = 25.0;
/// Target: highest sustained snapshot rate.
const TARGET_RATE: f64 = 50_000.0;

#[derive(Debug, Clone)]
struct Args {
    hosts: usize,
    interval_sec: f64,
    warmup_sec: f64,
    measure_sec: f64,
    rates: Vec<f64>,
    step_sec: f64,
    publishers: usize,
    markdown: Option<std::path::PathBuf>,
    fleet_check: bool,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            hosts: 10_000,
            interval_sec: 2.0,
            warmup_sec: 15.0,
            measure_sec: 30.0,
            rates: vec![
                10_000.0, 25_000.0, 50_000.0, 75_000.0, 100_000.0, 125_000.0, 150_000.0,
            ],
            step_sec: 10.0,
            publishers: 4,
            markdown: None,
            fleet_check: false,
        }
    }
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--hosts" => a.hosts = val()?.parse()?,
            "--interval-sec" => a.interval_sec = val()?.parse()?,
            "--warmup-sec" => a.warmup_sec = val()?.parse()?,
            "--measure-sec" => a.measure_sec = val()?.parse()?,
            "--step-sec" => a.step_sec = val()?.parse()?,
            "--publishers" => a.publishers = val()?.parse()?,
            "--rates" => {
                a.rates = val()?
                    .split(',')
                    .map(|s| s.trim().parse::<f64>())
                    .collect::<Result<_, _>>()?
            }
            "--markdown" => a.markdown = Some(val()?.into()),
            "--fleet-check" => a.fleet_check = true,
            "--no-steps" => a.rates.clear(),
            "-h" | "--help" => {
                println!(
                    "ingest_bench [--hosts N] [--interval-sec S] [--warmup-sec S] [--measure-sec S] \
                     [--rates R1,R2,...] [--step-sec S] [--publishers N] [--markdown PATH] \
                     [--fleet-check] [--no-steps]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown flag {other}"),
        }
    }
    if a.hosts == 0 || a.publishers == 0 || a.interval_sec <= 0.0 {
        bail!("--hosts, --publishers and --interval-sec must be positive");
    }
    a.hosts = a.hosts.min(1_000_000);
    a.publishers = a.publishers.min(64);
    Ok(a)
}

/// CPU seconds (utime + stime) a process has used.
fn cpu_sec(pid: u32) -> f64 {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(rest) = text.rfind(')').map(|i| &text[i + 1..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let tps = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ticks as f64 / if tps > 0 { tps as f64 } else { 100.0 }
}

/// Busy CPU seconds of the whole machine (all cores).
fn machine_busy_sec() -> f64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = v
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
        .map(|(_, x)| *x)
        .sum();
    // SAFETY: sysconf has no preconditions.
    let tps = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    busy as f64 / if tps > 0 { tps as f64 } else { 100.0 }
}

/// Payloads built from a template: the snapshot JSON after `collected_at`
/// is fixed per load profile, the head is written per message.
struct Payloads {
    tails: Vec<String>,
}

impl Payloads {
    fn new() -> anyhow::Result<Self> {
        let mut tails = Vec::new();
        for cpu in [3.0, 30.0, 55.0, 90.0] {
            let mut s = example_snapshot("h", 1, 1.0);
            s.host.cpu_pct = cpu;
            s.process = vec![
                ProcessStats {
                    name: "lull-agent".into(),
                    pid: 812,
                    rss_bytes: 9 << 20,
                    cpu_pct: 0.4,
                    threads: 3,
                    fds: Some(14),
                },
                ProcessStats {
                    name: "postgres".into(),
                    pid: 1201,
                    rss_bytes: 310 << 20,
                    cpu_pct: cpu / 4.0,
                    threads: 1,
                    fds: Some(61),
                },
            ];
            s.api = Some(ApiStats {
                rps: 3.0,
                error_rate: 0.0,
                p95_ms: 40.0,
            });
            let json = serde_json::to_string(&s)?;
            let at = json
                .find("\"interval_sec\"")
                .context("template has no interval_sec")?;
            tails.push(json[at..].to_string());
        }
        Ok(Payloads { tails })
    }

    fn build(&self, host: &str, profile: usize, seq: u64, now: f64) -> Vec<u8> {
        format!(
            "{{\"host_id\":\"{host}\",\"seq\":{seq},\"collected_at\":{now:.3},{}",
            self.tails[profile % self.tails.len()]
        )
        .into_bytes()
    }
}

fn now_unix() -> f64 {
    lull_common::runtime::now_unix()
}

/// Publishes at `rate` snapshots/s, round-robin over `hosts`, for
/// `duration`, split over the publishers (one NATS connection each).
/// Returns how many were published.
async fn publish(
    clients: &[async_nats::Client],
    payloads: &Arc<Payloads>,
    hosts: usize,
    rate: f64,
    duration: Duration,
    seqs: &Arc<Vec<AtomicU64>>,
) -> u64 {
    let per = clients.len();
    let published = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (k, client) in clients.iter().enumerate() {
        let client = client.clone();
        let payloads = payloads.clone();
        let published = published.clone();
        let seqs = seqs.clone();
        let my_hosts: Vec<usize> = (k..hosts).step_by(per).collect();
        let my_rate = rate / per as f64;
        tasks.push(tokio::spawn(async move {
            if my_hosts.is_empty() {
                return;
            }
            let start = Instant::now();
            let tick = Duration::from_millis(5);
            let mut sent = 0u64;
            let mut i = 0usize;
            while start.elapsed() < duration {
                let due = (start.elapsed().as_secs_f64() * my_rate) as u64;
                let now = now_unix();
                // Bounded burst per tick so a slow start cannot explode.
                let burst = (due.saturating_sub(sent)).min(20_000);
                for _ in 0..burst {
                    let h = my_hosts[i % my_hosts.len()];
                    i += 1;
                    let seq = seqs[h].fetch_add(1, Ordering::Relaxed) + 1;
                    let host = format!("bench-{h:06}");
                    let body = payloads.build(&host, h, seq, now);
                    if client
                        .publish(format!("lull.stats.{host}"), body.into())
                        .await
                        .is_err()
                    {
                        return;
                    }
                    sent += 1;
                }
                published.fetch_add(burst, Ordering::Relaxed);
                tokio::time::sleep(tick).await;
            }
            let _ = client.flush().await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    published.load(Ordering::Relaxed)
}

/// Sum of `lull_stats_messages_total` by result.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    accepted: f64,
    dropped: f64,
    other: f64,
}

fn counts(text: &str) -> Counts {
    let mut c = Counts::default();
    for l in text
        .lines()
        .filter(|l| l.starts_with("lull_stats_messages_total{"))
    {
        let v: f64 = l
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        if l.contains("result=\"accepted\"") {
            c.accepted += v;
        } else if l.contains("result=\"dropped\"") {
            c.dropped += v;
        } else {
            c.other += v;
        }
    }
    c
}

struct Measured {
    offered: f64,
    accepted: f64,
    dropped: f64,
    lost: f64,
    coord_cpu_pct: f64,
    nats_cpu_pct: f64,
    bench_cpu_pct: f64,
    machine_pct: f64,
}

async fn measure(
    coord: u32,
    nats: Option<u32>,
    metrics_url: &str,
    run: impl std::future::Future<Output = u64>,
) -> anyhow::Result<Measured> {
    let before = counts(&scrape(metrics_url).await?);
    let me = std::process::id();
    let (c0, n0, m0) = (
        cpu_sec(coord),
        nats.map_or(0.0, cpu_sec),
        machine_busy_sec(),
    );
    let b0 = cpu_sec(me);
    let t0 = Instant::now();
    let published = run.await;
    // Let the coordinator drain what is in flight before counting.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let wall_pub = t0.elapsed().as_secs_f64() - 1.5;
    let wall = t0.elapsed().as_secs_f64();
    let (c1, n1, m1) = (
        cpu_sec(coord),
        nats.map_or(0.0, cpu_sec),
        machine_busy_sec(),
    );
    let b1 = cpu_sec(me);
    let after = counts(&scrape(metrics_url).await?);
    let accepted = after.accepted - before.accepted;
    let dropped = after.dropped - before.dropped;
    let delivered = accepted + dropped + (after.other - before.other);
    Ok(Measured {
        offered: published as f64 / wall_pub,
        accepted: accepted / wall_pub,
        dropped,
        lost: (published as f64 - delivered).max(0.0),
        coord_cpu_pct: (c1 - c0) / wall * 100.0,
        nats_cpu_pct: (n1 - n0) / wall * 100.0,
        bench_cpu_pct: (b1 - b0) / wall * 100.0,
        machine_pct: (m1 - m0) / wall * 100.0,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let infra = Infra::start()
        .await
        .context("start nats-server and Postgres")?;
    let port = free_port()?;
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let mut env = infra.lull_env();
    env.push(("LULL_METRICS_ADDR".into(), format!("127.0.0.1:{port}")));
    env.push(("LULL_LOG".into(), "warn".into()));
    let mut coord = Service::builder("lull-coordinator")
        .envs(env)
        .start()
        .context("start lull-coordinator (build it: cargo build --release -p lull-coordinator)")?;
    let url = metrics_url.clone();
    if wait_until(Duration::from_secs(30), || {
        let url = url.clone();
        async move {
            scrape(&url)
                .await
                .is_ok_and(|t| t.contains("lull_coordinator_build_info"))
        }
    })
    .await
    .is_err()
    {
        bail!("the coordinator did not start:\n{}", coord.logs());
    }
    // The ingest subscription exists once the service is up; give it a beat.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let coord_pid = coord.pid();
    let rss_start = fleet_check::rss_bytes(coord_pid);
    let nats_pid = infra.nats.pid();
    let mut clients = Vec::new();
    for _ in 0..args.publishers {
        clients.push(infra.nats.connect().await?);
    }
    let payloads = Arc::new(Payloads::new()?);
    let seqs: Arc<Vec<AtomicU64>> = Arc::new((0..args.hosts).map(|_| AtomicU64::new(0)).collect());
    let fleet_rate = args.hosts as f64 / args.interval_sec;
    println!(
        "ingest_bench: {} hosts, one snapshot each {} s ({fleet_rate:.0}/s); coordinator pid {coord_pid}",
        args.hosts, args.interval_sec
    );

    // 1. The fleet at its natural rate.
    let warm = Duration::from_secs_f64(args.warmup_sec);
    publish(&clients, &payloads, args.hosts, fleet_rate, warm, &seqs).await;
    let fleet = measure(coord_pid, nats_pid, &metrics_url, async {
        publish(
            &clients,
            &payloads,
            args.hosts,
            fleet_rate,
            Duration::from_secs_f64(args.measure_sec),
            &seqs,
        )
        .await
    })
    .await?;
    let hosts_known = scrape(&metrics_url)
        .await?
        .lines()
        .filter(|l| l.starts_with("lull_host_quiet_score{"))
        .count();
    println!(
        "fleet: offered {:.0}/s accepted {:.0}/s dropped {} lost {} coordinator {:.1}% nats {:.1}% generator {:.1}% machine {:.1}% (of one core) hosts {hosts_known}",
        fleet.offered, fleet.accepted, fleet.dropped, fleet.lost, fleet.coord_cpu_pct, fleet.nats_cpu_pct, fleet.bench_cpu_pct, fleet.machine_pct
    );

    let mut md = String::new();
    if args.fleet_check {
        // Let the last snapshots land.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss = fleet_check::rss_bytes(coord_pid);
        let c = fleet_check::run(&clients[0], "bench-000000").await?;
        let per_host = rss.saturating_sub(rss_start) as f64 / c.listed.max(1) as f64;
        let line = format!(
            "| hosts listed | pages | hosts.list (all pages) | scheduler.status | lease.request | RSS at start | RSS with the fleet | per host |\n|---|---|---|---|---|---|---|---|\n| {} | {} | {:.2} s | {:.0} ms | {:.1} ms | {:.1} MB | {:.1} MB | {:.1} KB |\n\n",
            c.listed,
            c.pages,
            c.list_time.as_secs_f64(),
            c.status_time.as_secs_f64() * 1000.0,
            c.lease_time.as_secs_f64() * 1000.0,
            rss_start as f64 / 1e6,
            rss as f64 / 1e6,
            per_host / 1024.0
        );
        println!("fleet check:\n{line}");
        md.push_str(&line);
    }

    // 2. Stepped rates.
    let mut steps = Vec::new();
    for &rate in &args.rates {
        let m = measure(coord_pid, nats_pid, &metrics_url, async {
            publish(
                &clients,
                &payloads,
                args.hosts,
                rate,
                Duration::from_secs_f64(args.step_sec),
                &seqs,
            )
            .await
        })
        .await?;
        let sustained = m.dropped == 0.0 && m.lost == 0.0 && m.accepted >= 0.99 * m.offered;
        println!(
            "rate {rate:.0}/s: offered {:.0}/s accepted {:.0}/s dropped {} lost {} coordinator {:.1}% nats {:.1}% generator {:.1}% machine {:.1}% {}",
            m.offered,
            m.accepted,
            m.dropped,
            m.lost,
            m.coord_cpu_pct,
            m.nats_cpu_pct,
            m.bench_cpu_pct,
            m.machine_pct,
            if sustained { "sustained" } else { "NOT sustained" }
        );
        let generator_short = m.offered < 0.95 * rate;
        steps.push((rate, m, sustained, generator_short));
        // Let queues empty before the next step.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // The highest step sustained: its nominal rate (the generator paces to
    // within a fraction of a percent of it) and what was accepted.
    let best = steps
        .iter()
        .filter(|(_, _, s, _)| *s)
        .map(|(rate, m, _, _)| (*rate, m.accepted))
        .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a });

    md.push_str(&format!(
        "| hosts | interval | offered/s | accepted/s | coordinator CPU (% of one core) | µs CPU per snapshot | nats-server CPU | generator CPU | machine busy (all cores) | target |\n|---|---|---|---|---|---|---|---|---|---|\n| {} | {} s | {:.0} | {:.0} | **{:.1} %** | {:.1} | {:.1} % | {:.1} % | {:.1} % | ≤ {TARGET_CPU_PCT} % ({}) |\n\n",
        args.hosts,
        args.interval_sec,
        fleet.offered,
        fleet.accepted,
        fleet.coord_cpu_pct,
        fleet.coord_cpu_pct * 1e4 / fleet.accepted.max(1.0),
        fleet.nats_cpu_pct,
        fleet.bench_cpu_pct,
        fleet.machine_pct,
        if fleet.coord_cpu_pct <= TARGET_CPU_PCT { "met" } else { "missed" }
    ));
    md.push_str("| offered rate (target) | offered/s | accepted/s | dropped | lost | coordinator CPU | µs CPU per snapshot | nats-server CPU | generator CPU | machine busy | sustained |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (rate, m, s, short) in &steps {
        md.push_str(&format!(
            "| {rate:.0} | {:.0}{} | {:.0} | {:.0} | {:.0} | {:.1} % | {:.1} | {:.1} % | {:.1} % | {:.1} % | {} |\n",
            m.offered,
            if *short { " (generator short)" } else { "" },
            m.accepted,
            m.dropped,
            m.lost,
            m.coord_cpu_pct,
            m.coord_cpu_pct * 1e4 / m.accepted.max(1.0),
            m.nats_cpu_pct,
            m.bench_cpu_pct,
            m.machine_pct,
            if *s { "yes" } else { "no" }
        ));
    }
    md.push_str(&format!(
        "\nHighest sustained rate: **{:.0} snapshots/s** (accepted {:.0}/s; target ≥ {TARGET_RATE:.0}: {}).\n",
        best.0,
        best.1,
        if best.0 >= TARGET_RATE { "met" } else { "missed" }
    ));
    println!("\n{md}");
    if let Some(p) = &args.markdown {
        std::fs::write(p, &md).with_context(|| format!("writing {}", p.display()))?;
    }
    let _ = coord.terminate(Duration::from_secs(20)).await;
    Ok(())
}
