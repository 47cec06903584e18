//! `lease_bench`: lease request→reply latency (p50, p99) and throughput of
//! a real `lull-coordinator` (release build, real nats-server with
//! JetStream, real Postgres) at 1, 100 and 1,000 concurrent clients, side by
//! side with a raw NATS echo responder (the floor) and etcd's LeaseGrant
//! through its HTTP/JSON gateway. Prints the tables and the target ratios;
//! `--markdown PATH` also writes them as markdown. Not a test: run it with
//! `scripts/bench-leases.sh`. See `docs/benchmarks.md`.
//!
//! Everything listens on 127.0.0.1 and free ports; every loop is bounded in
//! count and time; every server is a child process killed on exit.

mod cpu;
mod http1;
mod stats;
mod workload;

use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures::StreamExt;
use lull_proto::msg::hosts::{HostSummary, QuietState};
use lull_proto::msg::lease::{HeavyLeaseResponse, OkResponse, ReleaseRequest};
use lull_proto::subjects::endpoints as ep;
use lull_proto::Subjects;
use lull_tests::{free_port, scrape, wait_until, Infra, Service};
use serde::Deserialize;

use stats::{Cell, Mix, System};
use workload::{MixConfig, Rng};

/// Subject of the echo responder.
const ECHO_SUBJECT: &str = "bench.echo";
/// Target: Lull p50 at most this many times the echo p50.
const TARGET_P50_RATIO: f64 = 1.5;
/// Target: Lull decisions per second.
const TARGET_DECISIONS: f64 = 20_000.0;

/// Bench settings; every field has a flag.
#[derive(Debug, Clone)]
struct BenchConfig {
    /// Concurrent clients per cell (`--levels 1,100,1000`). Default 1, 100, 1000.
    levels: Vec<usize>,
    /// Systems to measure (`--systems echo,lull,lull-deny,etcd`). Default all.
    systems: Vec<System>,
    /// Unmeasured run-in of each cell, seconds (`--warmup-sec`). Default 2.
    warmup_sec: f64,
    /// Measured window of each cell, seconds (`--measure-sec`). Default 6.
    measure_sec: f64,
    /// NATS connections the clients share (`--connections`). Default 4.
    connections: usize,
    /// Quiet synthetic hosts (`--hosts`). Default 16.
    hosts: usize,
    /// Cores of each synthetic host (`--host-cores`; capacity grows with
    /// them). Default 64.
    host_cores: u32,
    /// Distinct addon ids (`--addons`). Default 1000.
    addons: usize,
    /// Per-request timeout, seconds (`--timeout-sec`). Default 5.
    timeout_sec: f64,
    /// Most requests one client sends in a cell (`--max-per-client`).
    /// Default 2,000,000.
    max_per_client: u64,
    /// TTL of each etcd lease, seconds (`--etcd-ttl`). Default 30.
    etcd_ttl: u64,
    /// The etcd binary (`--etcd-bin`). Default `etcd` on PATH.
    etcd_bin: Option<PathBuf>,
    /// Where to write the markdown report (`--markdown`).
    markdown: Option<PathBuf>,
    /// Pause between cells, seconds (`--pause-sec`). Default 1.
    pause_sec: f64,
    /// Runtime threads of the coordinator and of the echo responder alike
    /// (`--server-threads`; 0 = one per core). Default 1: on a small
    /// machine that also runs the clients, NATS and Postgres, one thread
    /// wastes the least CPU on wake-ups (docs/benchmarks.md).
    server_threads: usize,
    /// Standby coordinators started beside the leader (`--standbys`).
    /// Default 0.
    standbys: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            levels: vec![1, 100, 1000],
            systems: vec![System::Echo, System::Lull, System::LullDeny, System::Etcd],
            warmup_sec: 2.0,
            measure_sec: 6.0,
            connections: 4,
            hosts: 16,
            host_cores: 64,
            addons: 1000,
            timeout_sec: 5.0,
            max_per_client: 2_000_000,
            etcd_ttl: 30,
            etcd_bin: None,
            markdown: None,
            pause_sec: 1.0,
            server_threads: 1,
            standbys: 0,
        }
    }
}

const USAGE: &str =
    "usage: lease_bench [--levels 1,100,1000] [--systems echo,lull,lull-deny,etcd] \
[--warmup-sec S] [--measure-sec S] [--connections N] [--hosts N] [--host-cores N] \
[--addons N] [--timeout-sec S] [--max-per-client N] [--etcd-ttl S] \
[--etcd-bin PATH] [--pause-sec S] [--server-threads N] [--standbys N] [--markdown PATH]";

fn parse_args(args: &[String]) -> anyhow::Result<BenchConfig> {
    let mut c = BenchConfig::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            bail!("{USAGE}");
        }
        let val = it
            .next()
            .ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))?;
        let num = |v: &str| -> anyhow::Result<f64> {
            let x: f64 = v.parse().with_context(|| format!("{flag} {v}"))?;
            if !(x.is_finite() && x >= 0.0) {
                bail!("{flag} must be a finite number >= 0");
            }
            Ok(x)
        };
        let int = |v: &str| -> anyhow::Result<usize> {
            let x: usize = v.parse().with_context(|| format!("{flag} {v}"))?;
            if x == 0 {
                bail!("{flag} must be at least 1");
            }
            Ok(x)
        };
        match flag.as_str() {
            "--levels" => {
                c.levels = val.split(',').map(int).collect::<anyhow::Result<_>>()?;
                if c.levels.iter().any(|&l| l > 10_000) {
                    bail!("--levels: at most 10000 clients");
                }
            }
            "--systems" => {
                c.systems = val
                    .split(',')
                    .map(|s| match s {
                        "echo" => Ok(System::Echo),
                        "lull" => Ok(System::Lull),
                        "lull-deny" => Ok(System::LullDeny),
                        "etcd" => Ok(System::Etcd),
                        other => Err(anyhow!("unknown system {other}")),
                    })
                    .collect::<anyhow::Result<_>>()?;
            }
            "--warmup-sec" => c.warmup_sec = num(val)?.min(600.0),
            "--measure-sec" => c.measure_sec = num(val)?.clamp(0.1, 600.0),
            "--connections" => c.connections = int(val)?.min(256),
            "--hosts" => c.hosts = int(val)?.min(1000),
            "--host-cores" => c.host_cores = int(val)?.min(1024) as u32,
            "--addons" => c.addons = int(val)?.min(9999),
            "--timeout-sec" => c.timeout_sec = num(val)?.clamp(0.1, 60.0),
            "--max-per-client" => c.max_per_client = int(val)? as u64,
            "--etcd-ttl" => c.etcd_ttl = int(val)? as u64,
            "--etcd-bin" => c.etcd_bin = Some(PathBuf::from(val)),
            "--pause-sec" => c.pause_sec = num(val)?.min(60.0),
            "--server-threads" => c.server_threads = (num(val)? as usize).min(256),
            "--standbys" => c.standbys = int(val)?.min(8),
            "--markdown" => c.markdown = Some(PathBuf::from(val)),
            other => bail!("unknown flag {other}\n{USAGE}"),
        }
    }
    Ok(c)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--echo-responder") {
        let url = args
            .get(1)
            .ok_or_else(|| anyhow!("--echo-responder URL THREADS"))?;
        let threads: usize = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(0);
        let mut rt = tokio::runtime::Builder::new_multi_thread();
        if threads > 0 {
            rt.worker_threads(threads);
        }
        let rt = rt.enable_all().build().context("tokio runtime")?;
        return rt.block_on(echo_responder(url.clone()));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let cfg = parse_args(&args)?;
    rt.block_on(run(cfg))
}

/// Extra coordinator settings for experiments, from `LULL_BENCH_COORD_ENV`
/// (`KEY=VALUE,KEY=VALUE`, e.g. `TOKIO_WORKER_THREADS=1`).
fn extra_coordinator_env() -> Vec<(String, String)> {
    std::env::var("LULL_BENCH_COORD_ENV")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The echo responder process: answers every request on [`ECHO_SUBJECT`]
/// with its own payload, for at most an hour.
async fn echo_responder(url: String) -> anyhow::Result<()> {
    let client = async_nats::connect(&url).await.context("connect")?;
    let mut sub = client.subscribe(ECHO_SUBJECT).await.context("subscribe")?;
    client.flush().await.context("flush")?;
    let serve = async {
        while let Some(msg) = sub.next().await {
            if let Some(reply) = msg.reply {
                let _ = client.publish(reply, msg.payload).await;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3600), serve).await;
    Ok(())
}

/// A reply the clients count.
enum Answer {
    /// Echo or etcd: a correct reply.
    Done,
    /// Lull granted the lease (the bench releases it).
    Granted { lease_id: String, token: String },
    /// Lull denied, with its reason code.
    Denied(&'static str),
}

/// One client's way of making one request. `call` returns the answer and
/// the request→reply latency (request building and reply decoding are not
/// timed).
trait Target: Send + 'static {
    fn call(&mut self) -> impl Future<Output = Result<(Answer, Duration), String>> + Send;
}

struct LullTarget {
    client: async_nats::Client,
    subject: async_nats::Subject,
    mix: Arc<MixConfig>,
    rng: Rng,
    timeout: Duration,
}

impl Target for LullTarget {
    async fn call(&mut self) -> Result<(Answer, Duration), String> {
        let req = workload::next_request(&self.mix, &mut self.rng);
        let body = serde_json::to_vec(&req).map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let msg = tokio::time::timeout(
            self.timeout,
            self.client.request(self.subject.clone(), body.into()),
        )
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| format!("request: {e}"))?;
        let lat = t0.elapsed();
        let r: HeavyLeaseResponse = serde_json::from_slice(&msg.payload).map_err(|e| {
            format!(
                "not a lease reply ({e}): {}",
                String::from_utf8_lossy(&msg.payload)
            )
        })?;
        let answer = if r.approved {
            match (r.lease_id, r.token) {
                (Some(lease_id), Some(token)) => Answer::Granted { lease_id, token },
                _ => return Err("a grant without lease_id/token".into()),
            }
        } else {
            Answer::Denied(r.reason_code.map_or("none", |c| c.as_str()))
        };
        Ok((answer, lat))
    }
}

struct EchoTarget {
    client: async_nats::Client,
    mix: Arc<MixConfig>,
    rng: Rng,
    timeout: Duration,
}

impl Target for EchoTarget {
    async fn call(&mut self) -> Result<(Answer, Duration), String> {
        // The same bodies as the lease requests, so payload sizes match.
        let req = workload::next_request(&self.mix, &mut self.rng);
        let body = serde_json::to_vec(&req).map_err(|e| e.to_string())?;
        let len = body.len();
        let t0 = Instant::now();
        let msg =
            tokio::time::timeout(self.timeout, self.client.request(ECHO_SUBJECT, body.into()))
                .await
                .map_err(|_| "timeout".to_string())?
                .map_err(|e| format!("request: {e}"))?;
        let lat = t0.elapsed();
        if msg.payload.len() != len {
            return Err(format!(
                "echo of {len} bytes came back as {}",
                msg.payload.len()
            ));
        }
        Ok((Answer::Done, lat))
    }
}

struct EtcdTarget {
    conn: http1::Http1,
}

#[derive(Deserialize)]
struct EtcdGrant {
    #[serde(rename = "ID")]
    id: String,
}

impl Target for EtcdTarget {
    async fn call(&mut self) -> Result<(Answer, Duration), String> {
        let t0 = Instant::now();
        let (status, body) = self.conn.post().await?;
        let lat = t0.elapsed();
        if status != 200 {
            return Err(format!(
                "status {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        let g: EtcdGrant = serde_json::from_slice(&body)
            .map_err(|e| format!("not a grant ({e}): {}", String::from_utf8_lossy(&body)))?;
        if g.id.is_empty() {
            return Err("a grant without ID".into());
        }
        Ok((Answer::Done, lat))
    }
}

/// The time frame of a cell: run-in until `measure_start`, measured until `end`.
#[derive(Debug, Clone, Copy)]
struct Window {
    measure_start: Instant,
    end: Instant,
}

/// What one client brings back.
#[derive(Default)]
struct ClientResult {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    mix: Mix,
}

/// How a client releases the leases it was granted: right after the
/// grant, outside the timed request, on the same connection.
#[derive(Clone)]
struct Release {
    client: async_nats::Client,
    subject: async_nats::Subject,
    timeout: Duration,
}

impl Release {
    /// Releases one lease; `true` when the coordinator says ok.
    async fn release(&self, lease_id: String, token: String) -> bool {
        let body = ReleaseRequest {
            lease_id,
            token,
            outcome: Some("success".into()),
        };
        let Ok(body) = serde_json::to_vec(&body) else {
            return false;
        };
        let res = tokio::time::timeout(
            self.timeout,
            self.client.request(self.subject.clone(), body.into()),
        )
        .await;
        matches!(res, Ok(Ok(msg)) if serde_json::from_slice::<OkResponse>(&msg.payload).is_ok_and(|r| r.ok))
    }
}

async fn client_loop<T: Target>(
    mut target: T,
    w: Window,
    max: u64,
    release: Option<Release>,
) -> ClientResult {
    let mut r = ClientResult::default();
    for _ in 0..max {
        let started = Instant::now();
        if started >= w.end {
            break;
        }
        let counted = started >= w.measure_start;
        match target.call().await {
            Ok((answer, lat)) => {
                let counted = counted && Instant::now() <= w.end;
                if counted {
                    r.latencies_us
                        .push(lat.as_micros().min(u128::from(u32::MAX)) as u32);
                }
                match answer {
                    Answer::Done => {}
                    Answer::Granted { lease_id, token } => {
                        if counted {
                            r.mix.granted += 1;
                        }
                        if let Some(rel) = &release {
                            let ok = rel.release(lease_id, token).await;
                            // Releases finished inside the window.
                            if counted && Instant::now() <= w.end {
                                if ok {
                                    r.mix.released += 1;
                                } else {
                                    r.mix.release_failed += 1;
                                }
                            }
                        }
                    }
                    Answer::Denied(code) => {
                        if counted {
                            *r.mix.denied.entry(code.to_string()).or_default() += 1;
                        }
                    }
                }
            }
            Err(e) => {
                if counted {
                    r.errors += 1;
                    if r.first_error.is_none() {
                        r.first_error = Some(e);
                    }
                }
            }
        }
    }
    r
}

/// Runs one cell: the targets as concurrent clients over a [`Window`].
async fn run_cell<T: Target>(
    cfg: &BenchConfig,
    system: System,
    targets: Vec<(T, Option<Release>)>,
    watched: &[cpu::Watched],
) -> Cell {
    let concurrency = targets.len();
    let warmup = Duration::from_secs_f64(cfg.warmup_sec);
    let measure = Duration::from_secs_f64(cfg.measure_sec);
    let start = Instant::now();
    let w = Window {
        measure_start: start + warmup,
        end: start + warmup + measure,
    };
    let clients: Vec<_> = targets
        .into_iter()
        .map(|(t, rel)| tokio::spawn(client_loop(t, w, cfg.max_per_client, rel)))
        .collect();
    tokio::time::sleep_until(w.measure_start.into()).await;
    let cpu_before = cpu::tree_cpu_sec(watched);
    let machine_before = cpu::machine_busy_sec();
    let cpu_at = Instant::now();
    tokio::time::sleep_until(w.end.into()).await;
    let cpu_after = cpu::tree_cpu_sec(watched);
    let machine_after = cpu::machine_busy_sec();
    let secs = cpu_at.elapsed().as_secs_f64();
    let mut cpu = cpu::usage_pct(&cpu_before, &cpu_after, secs);
    // Everything else on the machine (other users of the cores).
    let ours: f64 = cpu.iter().map(|(_, v)| v).sum();
    let machine = 100.0 * (machine_after - machine_before) / secs.max(1e-9);
    cpu.retain(|(_, v)| *v >= 0.5);
    cpu.push(("other processes".into(), (machine - ours).max(0.0)));

    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    let mut mix = Mix::default();
    for c in clients {
        match c.await {
            Ok(r) => {
                latencies.extend_from_slice(&r.latencies_us);
                errors += r.errors;
                if first_error.is_none() {
                    first_error = r.first_error;
                }
                mix.merge(&r.mix);
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("client task: {e}"));
            }
        }
    }
    let (count, p50_us, p99_us, per_sec) = stats::summarize(&mut latencies, cfg.measure_sec);
    let mut notes = Vec::new();
    if let Some(e) = first_error {
        notes.push(format!("first error: {e}"));
    }
    Cell {
        system,
        concurrency,
        count,
        p50_us,
        p99_us,
        per_sec,
        errors,
        mix: matches!(system, System::Lull | System::LullDeny).then_some(mix),
        cpu,
        notes,
    }
}

/// Sum of every series of `name` whose labels contain all `labels`.
fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// Coordinator counters read around a Lull cell.
#[derive(Debug, Default, Clone, Copy)]
struct CoordCounters {
    decisions: f64,
    effects_dropped: f64,
    handler_sum: f64,
    handler_count: f64,
}

async fn coord_counters(metrics_url: &str) -> CoordCounters {
    let Ok(text) = scrape(metrics_url).await else {
        return CoordCounters::default();
    };
    let h = [("endpoint", ep::LEASE_REQUEST)];
    CoordCounters {
        decisions: metric_sum(&text, "lull_lease_decisions_total", &[]),
        effects_dropped: metric_sum(&text, "lull_lease_effects_dropped_total", &[]),
        handler_sum: metric_sum(&text, "lull_request_duration_seconds_sum", &h),
        handler_count: metric_sum(&text, "lull_request_duration_seconds_count", &h),
    }
}

/// Publishes synthetic stats snapshots for the bench hosts every second,
/// so that they stay known and fresh.
fn start_feeder(
    client: async_nats::Client,
    hosts: Vec<(String, f64, f64)>,
    cores: u32,
    deadline: Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let period = Duration::from_secs(1);
        let mut seq = 0u64;
        while Instant::now() < deadline {
            seq += 1;
            let now = lull_common::runtime::now_unix();
            for (host, cpu_pct, mem_pct) in &hosts {
                let mut s = lull_proto::msg::stats::example_snapshot(host, seq, now);
                s.interval_sec = Some(period.as_secs_f64());
                s.host.cpu_pct = *cpu_pct;
                s.host.mem_used_pct = *mem_pct;
                s.host.cpu_count = cores;
                s.host.load_avg = [cpu_pct / 100.0 * f64::from(cores), 0.0, 0.0];
                if let Ok(body) = serde_json::to_vec(&s) {
                    let _ = client
                        .publish(Subjects::default().stats(host), body.into())
                        .await;
                }
            }
            let _ = client.flush().await;
            tokio::time::sleep(period).await;
        }
    })
}

async fn hosts_in_state(client: &async_nats::Client, want: &[(String, QuietState)]) -> bool {
    let subject = Subjects::default().endpoint(ep::HOSTS_LIST);
    let Ok(Ok(msg)) =
        tokio::time::timeout(Duration::from_secs(2), client.request(subject, "{}".into())).await
    else {
        return false;
    };
    let Ok(hosts) = serde_json::from_slice::<Vec<HostSummary>>(&msg.payload) else {
        return false;
    };
    want.iter().all(|(id, state)| {
        hosts
            .iter()
            .any(|h| &h.host_id == id && h.state == *state && !h.stale)
    })
}

async fn ping(client: &async_nats::Client) -> bool {
    let subject = format!("$SRV.PING.{}", lull_proto::subjects::SERVICE_NAME);
    matches!(
        tokio::time::timeout(Duration::from_secs(1), client.request(subject, "".into())).await,
        Ok(Ok(_))
    )
}

/// A running etcd and its client address.
struct Etcd {
    svc: Service,
    authority: String,
    version: String,
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

async fn start_etcd(cfg: &BenchConfig) -> anyhow::Result<Etcd> {
    let bin = cfg
        .etcd_bin
        .clone()
        .or_else(|| find_on_path("etcd"))
        .ok_or_else(|| {
            anyhow!("etcd not found: install Debian's etcd-server (apt-get install -y etcd-server) or pass --etcd-bin")
        })?;
    let version = command_first_line(&bin, &["--version"]);
    let (client_port, peer_port) = (free_port()?, free_port()?);
    let client_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let svc = Service::builder("etcd")
        .binary(&bin)
        .args([
            "--name",
            "bench",
            "--data-dir",
            "data",
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
            "--initial-cluster",
            &format!("bench={peer_url}"),
            "--logger",
            "zap",
            "--log-level",
            "warn",
        ])
        .env_remove("ETCDCTL_API")
        .start()
        .context("start etcd")?;
    let health = format!("{client_url}/health");
    let ok = wait_until(Duration::from_secs(30), || {
        let health = health.clone();
        async move {
            lull_tests::http_get(&health)
                .await
                .is_ok_and(|r| r.status == 200 && r.body.contains("true"))
        }
    })
    .await;
    if ok.is_err() {
        bail!("etcd did not become healthy:\n{}", svc.logs());
    }
    Ok(Etcd {
        svc,
        authority: format!("127.0.0.1:{client_port}"),
        version,
    })
}

fn command_first_line(bin: &std::path::Path, args: &[&str]) -> String {
    Command::new(bin)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| "unknown".into())
}

fn machine_description() -> Vec<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_string(), |(_, v)| v.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("PRETTY_NAME="))
        .map(|l| {
            l.trim_start_matches("PRETTY_NAME=")
                .trim_matches('"')
                .to_string()
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    // SAFETY: getpriority has no preconditions; errno is not needed since
    // every value in -20..=19 is a valid answer.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let autogroup = std::fs::read_to_string("/proc/self/autogroup")
        .map(|s| format!(", {}", s.trim()))
        .unwrap_or_default();
    vec![
        format!(
            "CPU: {model}, {cores} cores available (load average before the run: {}; bench and servers at nice {nice}{autogroup})",
            load.join(" ")
        ),
        format!(
            "memory: {mem_gib:.0} GiB; OS: {os}; kernel {}",
            kernel.trim()
        ),
    ]
}

async fn run(cfg: BenchConfig) -> anyhow::Result<()> {
    let hard_deadline = Instant::now() + Duration::from_secs(1800);
    let mut lines = machine_description();
    let want = |s: System| cfg.systems.contains(&s);
    eprintln!("starting nats-server, Postgres, the coordinator and the responders...");
    let infra = Infra::start()
        .await
        .context("start nats-server and Postgres")?;
    let nats_bin = lull_tests::bins::nats_server(&lull_tests::bins::SearchPath::from_env())?;
    lines.push(format!(
        "nats-server: {} (JetStream on)",
        command_first_line(&nats_bin, &["--version"])
    ));
    if let Ok(pg) = infra.pg.client().await {
        if let Ok(row) = pg.query_one("SHOW server_version", &[]).await {
            lines.push(format!("Postgres: {}", row.get::<_, String>(0)));
        }
    }

    // The coordinator: limits raised so that they do not dominate.
    let metrics_port = free_port()?;
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let coord_env: Vec<(String, String)> = infra
        .lull_env()
        .into_iter()
        .chain(
            [
                ("LULL_METRICS_ADDR", format!("127.0.0.1:{metrics_port}")),
                ("LULL_LOG", "warn".into()),
                ("LULL_LEASE__RATE_PER_SEC", "1000000000".into()),
                ("LULL_LEASE__BURST", "1000000000".into()),
                ("LULL_LEASE__MAX_GLOBAL", "1000000".into()),
                ("LULL_LEASE__MAX_PER_ADDON", "1000000".into()),
                ("LULL_LEASE__GRACE_PERIOD_SEC", "0".into()),
                ("LULL_WORKER_THREADS", cfg.server_threads.to_string()),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        )
        .chain(extra_coordinator_env())
        .collect();
    lines.push(format!(
        "coordinator env: {}",
        coord_env
            .iter()
            .filter(|(k, _)| {
                k.starts_with("LULL_LEASE")
                    || k.starts_with("TOKIO_")
                    || k == "LULL_LOG"
                    || k == "LULL_WORKER_THREADS"
            })
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let coordinator = Service::builder("lull-coordinator")
        .envs(coord_env.clone())
        .start()
        .context("start lull-coordinator (build it: cargo build --release -p lull-coordinator)")?;
    let control = infra.nats.connect().await?;
    if wait_until(Duration::from_secs(30), || {
        let c = control.clone();
        async move { ping(&c).await }
    })
    .await
    .is_err()
    {
        bail!(
            "the coordinator did not answer $SRV.PING:\n{}",
            coordinator.logs()
        );
    }
    // Standbys: they follow the leader's replication stream and receive
    // every snapshot, so they cost the leader and NATS something too.
    let mut standbys = Vec::new();
    for i in 0..cfg.standbys {
        let port = free_port()?;
        let env = coord_env.iter().cloned().map(|(k, v)| {
            if k == "LULL_METRICS_ADDR" {
                (k, format!("127.0.0.1:{port}"))
            } else {
                (k, v)
            }
        });
        standbys.push(
            Service::builder("lull-coordinator")
                .envs(env)
                .env("LULL_HA__INSTANCE", format!("standby{}", i + 1))
                .start()
                .context("start a standby coordinator")?,
        );
    }
    if !standbys.is_empty() {
        lines.push(format!("standby coordinators: {}", standbys.len()));
    }

    // Synthetic hosts: quiet ones (grants), one busy (not_quiet denials).
    let quiet_hosts: Vec<String> = (0..cfg.hosts)
        .map(|i| format!("bench-quiet-{i:03}"))
        .collect();
    let busy_host = "bench-busy".to_string();
    let mut fed: Vec<(String, f64, f64)> =
        quiet_hosts.iter().map(|h| (h.clone(), 2.0, 20.0)).collect();
    fed.push((busy_host.clone(), 90.0, 50.0));
    let feeder = start_feeder(control.clone(), fed, cfg.host_cores, hard_deadline);
    let mut states: Vec<(String, QuietState)> = quiet_hosts
        .iter()
        .map(|h| (h.clone(), QuietState::Quiet))
        .collect();
    states.push((busy_host.clone(), QuietState::Busy));
    if wait_until(Duration::from_secs(30), || {
        let c = control.clone();
        let s = states.clone();
        async move { hosts_in_state(&c, &s).await }
    })
    .await
    .is_err()
    {
        bail!(
            "the synthetic hosts never reached their states:\n{}",
            coordinator.logs()
        );
    }
    // Let the fleet push its views to the lease book.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mix = Arc::new(MixConfig {
        quiet_hosts,
        busy_host,
        addons: cfg.addons,
        targeted_pct: 70,
        placement_pct: 10,
        max_cost: 4,
    });
    let deny_mix = Arc::new(MixConfig {
        targeted_pct: 0,
        placement_pct: 0,
        ..(*mix).clone()
    });

    let echo = if want(System::Echo) {
        let me = std::env::current_exe().context("own path")?;
        let svc = Service::builder("lease-bench-echo")
            .binary(me)
            .args([
                "--echo-responder".to_string(),
                infra.nats.url(),
                cfg.server_threads.to_string(),
            ])
            .start()
            .context("start the echo responder")?;
        let probe = control.clone();
        if wait_until(Duration::from_secs(10), || {
            let c = probe.clone();
            async move {
                matches!(
                    tokio::time::timeout(
                        Duration::from_millis(500),
                        c.request(ECHO_SUBJECT, "x".into())
                    )
                    .await,
                    Ok(Ok(_))
                )
            }
        })
        .await
        .is_err()
        {
            bail!("the echo responder did not answer:\n{}", svc.logs());
        }
        Some(svc)
    } else {
        None
    };
    let etcd = if want(System::Etcd) {
        let e = start_etcd(&cfg).await?;
        lines.push(format!(
            "etcd: {} (gateway POST /v3/lease/grant, TTL {} s)",
            e.version, cfg.etcd_ttl
        ));
        Some(e)
    } else {
        None
    };

    let mut conns = Vec::new();
    for _ in 0..cfg.connections {
        conns.push(
            async_nats::ConnectOptions::new()
                .connect(infra.nats.url())
                .await
                .context("connect a bench client")?,
        );
    }

    let mut watched: Vec<cpu::Watched> = vec![
        ("bench".into(), std::process::id(), false),
        ("coordinator".into(), coordinator.pid(), true),
    ];
    for (i, s) in standbys.iter().enumerate() {
        watched.push((format!("standby{}", i + 1), s.pid(), true));
    }
    if let Some(p) = infra.nats.pid() {
        watched.push(("nats-server".into(), p, false));
    }
    if let Some(p) = infra.pg.pid() {
        watched.push(("postgres".into(), p, true));
    }
    if let Some(e) = &echo {
        watched.push(("echo".into(), e.pid(), false));
    }
    if let Some(e) = &etcd {
        watched.push(("etcd".into(), e.svc.pid(), false));
    }
    eprintln!(
        "pids: {}",
        watched
            .iter()
            .map(|(n, p, _)| format!("{n}={p}"))
            .collect::<Vec<_>>()
            .join(" ")
    );

    let timeout = Duration::from_secs_f64(cfg.timeout_sec);
    let lease_subject: async_nats::Subject = Subjects::default().endpoint(ep::LEASE_REQUEST).into();
    let release_subject: async_nats::Subject =
        Subjects::default().endpoint(ep::LEASE_RELEASE).into();
    let mut cells: Vec<Cell> = Vec::new();
    for &level in &cfg.levels {
        for &system in &[System::Echo, System::Lull, System::LullDeny, System::Etcd] {
            if !want(system) {
                continue;
            }
            if Instant::now() > hard_deadline {
                bail!("the bench ran past its 30-minute bound");
            }
            eprintln!("measuring {} with {level} clients...", system.label());
            let seed = |i: usize| (level as u64) << 32 | i as u64;
            let cell = match system {
                System::Echo => {
                    let targets = (0..level)
                        .map(|i| {
                            let t = EchoTarget {
                                client: conns[i % conns.len()].clone(),
                                mix: mix.clone(),
                                rng: Rng::new(seed(i)),
                                timeout,
                            };
                            (t, None)
                        })
                        .collect();
                    run_cell(&cfg, system, targets, &watched).await
                }
                System::Lull | System::LullDeny => {
                    let mix = if system == System::Lull {
                        mix.clone()
                    } else {
                        deny_mix.clone()
                    };
                    let before = coord_counters(&metrics_url).await;
                    let targets = (0..level)
                        .map(|i| {
                            let client = conns[i % conns.len()].clone();
                            let release = Release {
                                client: client.clone(),
                                subject: release_subject.clone(),
                                timeout,
                            };
                            let t = LullTarget {
                                client,
                                subject: lease_subject.clone(),
                                mix: mix.clone(),
                                rng: Rng::new(seed(i)),
                                timeout,
                            };
                            (t, Some(release))
                        })
                        .collect();
                    let mut cell = run_cell(&cfg, system, targets, &watched).await;
                    let after = coord_counters(&metrics_url).await;
                    let n = after.handler_count - before.handler_count;
                    if let Some(m) = &cell.mix {
                        let ops = (m.granted + m.denied_total() + m.released + m.release_failed)
                            as f64
                            / cfg.measure_sec;
                        cell.notes.push(format!(
                            "coordinator requests (lease.request + lease.release) {}/s",
                            stats::fmt_rate(ops)
                        ));
                    }
                    cell.notes.push(format!(
                        "coordinator's own count for the whole cell: {:.0} decisions, lease.request handler mean {:.0} µs, effects dropped {:.0}",
                        after.decisions - before.decisions,
                        if n > 0.0 { 1e6 * (after.handler_sum - before.handler_sum) / n } else { 0.0 },
                        after.effects_dropped - before.effects_dropped
                    ));
                    cell
                }
                System::Etcd => {
                    let Some(e) = &etcd else { continue };
                    let body = format!("{{\"TTL\": {}}}", cfg.etcd_ttl);
                    let conns = futures::future::join_all((0..level).map(|_| {
                        http1::Http1::connect(&e.authority, "/v3/lease/grant", &body, timeout)
                    }))
                    .await
                    .into_iter()
                    .collect::<Result<Vec<_>, String>>()
                    .map_err(|e| anyhow!("connect to etcd: {e}"))?;
                    let targets = conns
                        .into_iter()
                        .map(|conn| (EtcdTarget { conn }, None))
                        .collect();
                    run_cell(&cfg, system, targets, &watched).await
                }
            };
            eprintln!(
                "  p50 {} p99 {} {}/s errors {}",
                stats::fmt_us(cell.p50_us),
                stats::fmt_us(cell.p99_us),
                stats::fmt_rate(cell.per_sec),
                cell.errors
            );
            cells.push(cell);
            tokio::time::sleep(Duration::from_secs_f64(cfg.pause_sec)).await;
        }
    }
    feeder.abort();

    let table = stats::render_table(&cells);
    let verdicts =
        stats::render_verdicts(&stats::verdicts(&cells, TARGET_P50_RATIO, TARGET_DECISIONS));
    let details = stats::render_details(&cells);
    let setup = format!(
        "warm-up {} s + measured {} s per cell; {} NATS client connections; coordinator and echo responder on {} runtime thread(s); {} quiet hosts × {} cores + 1 busy host; {} addons; request mix 70% named quiet host / 10% placement / 20% busy host (not_quiet), cost 1..4 units; each client releases its granted lease right after the grant (untimed); \"all denied\" sends every request to the busy host",
        cfg.warmup_sec,
        cfg.measure_sec,
        cfg.connections,
        if cfg.server_threads == 0 {
            "one per core".to_string()
        } else {
            cfg.server_threads.to_string()
        },
        cfg.hosts,
        cfg.host_cores,
        cfg.addons
    );
    let mut md = String::new();
    md.push_str("Machine:\n\n");
    for l in &lines {
        md.push_str(&format!("- {l}\n"));
    }
    md.push_str(&format!("- {setup}\n\n"));
    md.push_str(&table);
    md.push('\n');
    md.push_str(&verdicts);
    md.push_str("\nPer cell:\n\n");
    md.push_str(&details);
    println!("{md}");
    if let Some(p) = &cfg.markdown {
        std::fs::write(p, &md).with_context(|| format!("write {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    drop(echo);
    drop(etcd);
    drop(standbys);
    drop(coordinator);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_are_bounded() {
        let a = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let c = parse_args(&a("--levels 1,10 --systems lull,echo --measure-sec 3")).unwrap();
        assert_eq!(c.levels, vec![1, 10]);
        assert_eq!(c.systems, vec![System::Lull, System::Echo]);
        assert_eq!(c.measure_sec, 3.0);
        assert!(parse_args(&a("--levels 0")).is_err());
        assert!(parse_args(&a("--levels 20000")).is_err());
        assert!(parse_args(&a("--systems redis")).is_err());
        assert!(parse_args(&a("--measure-sec")).is_err());
        assert!(parse_args(&a("--bogus 1")).is_err());
        assert_eq!(parse_args(&[]).unwrap().levels, vec![1, 100, 1000]);
    }

    #[test]
    fn metric_sums_match_labels() {
        let text = "# TYPE x counter\nx{result=\"granted\",reason=\"none\"} 3\nx{result=\"denied\",reason=\"not_quiet\"} 2\nxy 100\nx 1\n";
        assert_eq!(metric_sum(text, "x", &[]), 6.0);
        assert_eq!(metric_sum(text, "x", &[("result", "denied")]), 2.0);
        assert_eq!(metric_sum(text, "nope", &[]), 0.0);
    }
}
