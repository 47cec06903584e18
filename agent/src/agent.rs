//! The agent's shell: builds the collectors from the configuration, runs
//! them (the runner), assembles a snapshot every tick, feeds the outbox,
//! publishes loop telemetry, runs the spool hand-off, and shuts down
//! gracefully. The outbox publisher and the spool hand-off must not end on
//! their own: if one does (a panic, since the release profile unwinds), the
//! agent stops and exits non-zero so its service manager restarts it,
//! instead of collecting with nothing published. Collector panics are
//! caught by the runner instead. Also the `--once` and `report` entry
//! points.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::{Client, Event};
use bytes::Bytes;
use lull_common::runtime::now_unix;
use lull_proto::msg::stats::SystemStatsSnapshot;
use lull_proto::msg::telemetry::LoopHealth;
use lull_proto::Subjects;
use tokio::sync::watch;

use lull_common::metric::{buckets_of, describe_all, Metric};
use metrics::Unit;

use crate::collect::registry;
use crate::collect::Collector;
use crate::config::AgentConfig;
use crate::fault;
use crate::outbox::{Envelope, Kind};
use crate::publisher::{self, Transport};
use crate::runner::{self, Board, Runner, DURATION_BUCKETS};
use crate::schedule::{secs, Schedule};
use crate::snapshot::{self, TickError, TickInfo};
use crate::spool::{self, SpoolRun};
use crate::telemetry::{self, FailureInput, FailureStreak};

/// Counter `{result}`: ticks (`ok`, `failed`).
pub static TICKS: Metric = Metric::counter(
    "lull_agent_ticks_total",
    "Snapshot ticks by result: ok, or failed (no snapshot could be built).",
);
/// Histogram: time to assemble and enqueue one tick.
pub static TICK_DURATION: Metric = Metric::histogram(
    "lull_agent_tick_duration_seconds",
    "Time to assemble and enqueue one tick.",
)
.unit(Unit::Seconds)
.buckets(DURATION_BUCKETS);
/// Gauge: sequence number of the last snapshot.
pub static SNAPSHOT_SEQ: Metric = Metric::gauge(
    "lull_agent_snapshot_seq",
    "Sequence number of the last published snapshot.",
);
/// Gauge: 1 while connected to NATS.
pub static NATS_CONNECTED: Metric = Metric::gauge(
    "lull_agent_nats_connected",
    "1 while the agent is connected to NATS.",
);
/// Counter: NATS connection events (`connected`, `disconnected`, ...).
pub static NATS_EVENTS: Metric = Metric::counter(
    "lull_agent_nats_events_total",
    "NATS connection events by event.",
);
/// Gauge `{version,profile,panic}`: always 1.
pub static BUILD_INFO: Metric = Metric::gauge(
    "lull_agent_build_info",
    "Always 1; labels: version, profile (release or debug) and panic (the panic strategy: unwind lets the agent survive a panicking collector).",
);
/// Every metric of the tick loop and the connection.
pub static METRICS: &[&Metric] = &[
    &TICKS,
    &TICK_DURATION,
    &SNAPSHOT_SEQ,
    &NATS_CONNECTED,
    &NATS_EVENTS,
    &BUILD_INFO,
];

/// Every metric group of the agent: the loop, the runner, the outbox, the
/// spool and each collector family.
pub fn metric_groups() -> Vec<&'static [&'static Metric]> {
    let mut g = vec![METRICS, runner::METRICS, publisher::METRICS, spool::METRICS];
    g.extend(registry::metrics());
    g
}

/// The enabled collectors with their schedules, from the registry.
pub fn build_collectors(cfg: &AgentConfig) -> Vec<(Box<dyn Collector>, Schedule)> {
    cfg.sections
        .build()
        .into_iter()
        .filter_map(|c| {
            let s = cfg.collectors.get(c.name())?;
            s.enabled.then_some((c, s))
        })
        .collect()
}

fn tick_info<'a>(cfg: &'a AgentConfig, seq: u64, now: f64) -> TickInfo<'a> {
    TickInfo {
        host_id: &cfg.host_id,
        seq,
        now,
        interval_sec: cfg.interval_sec,
        stale_after_intervals: cfg.stale_after_intervals,
    }
}

/// `--once`: runs every collector (the delta ones twice, `once_warmup_ms`
/// apart) and assembles one snapshot. Needs no NATS.
pub async fn once(cfg: &AgentConfig) -> Result<SystemStatsSnapshot, TickError> {
    let board: Board = Default::default();
    let mut cols = build_collectors(cfg);
    let delta = registry::delta_collectors();
    futures::future::join_all(cols.iter_mut().map(|(c, s)| {
        let board = &board;
        async move { runner::run_once(c.as_mut(), s, board).await }
    }))
    .await;
    tokio::time::sleep(Duration::from_millis(cfg.once_warmup_ms)).await;
    futures::future::join_all(
        cols.iter_mut()
            .filter(|(c, _)| delta.contains(&c.name()))
            .map(|(c, s)| {
                let board = &board;
                async move { runner::run_once(c.as_mut(), s, board).await }
            }),
    )
    .await;
    let b = board.lock().unwrap_or_else(|e| e.into_inner());
    snapshot::assemble(&tick_info(cfg, 1, now_unix()), &b)
}

/// `lull-agent report FILE`: validates the report and drops it into the
/// spool atomically (`-` reads standard input). Returns the spool path.
pub fn report(cfg: &AgentConfig, file: &Path) -> Result<std::path::PathBuf, spool::SpoolError> {
    let bytes = if file == Path::new("-") {
        use std::io::Read;
        let mut b = Vec::new();
        std::io::stdin()
            .take(cfg.common.max_payload_bytes as u64 + 1)
            .read_to_end(&mut b)
            .map_err(|source| spool::SpoolError::Io {
                path: file.to_path_buf(),
                source,
            })?;
        b
    } else {
        std::fs::read(file).map_err(|source| spool::SpoolError::Io {
            path: file.to_path_buf(),
            source,
        })?
    };
    spool::write_report(
        &cfg.spool_dir,
        &bytes,
        &Subjects::new(&cfg.common.subject_prefix),
        &cfg.host_id,
        cfg.common.max_payload_bytes,
    )
}

async fn connect(cfg: &AgentConfig) -> anyhow::Result<Client> {
    let opts =
        lull_client::connect::options(&cfg.common.nats(), &format!("lull-agent {}", cfg.host_id))
            .await?
            .client_capacity(cfg.outbox.client_capacity.max(1))
            .retry_on_initial_connect()
            .event_callback(|ev| async move {
                let label = match &ev {
                    Event::Connected => "connected",
                    Event::Disconnected => "disconnected",
                    Event::LameDuckMode => "lame_duck",
                    Event::Draining => "draining",
                    Event::Closed => "closed",
                    Event::SlowConsumer(_) => "slow_consumer",
                    Event::ServerError(_) => "server_error",
                    Event::ClientError(_) => "client_error",
                };
                match ev {
                    Event::Connected => {
                        metrics::gauge!(NATS_CONNECTED.name).set(1.0);
                        tracing::info!("connected to NATS");
                    }
                    Event::Disconnected | Event::Closed => {
                        metrics::gauge!(NATS_CONNECTED.name).set(0.0);
                        tracing::warn!(event = label, "NATS connection lost; reconnecting");
                    }
                    other => tracing::info!(event = %other, "NATS event"),
                }
                metrics::counter!(NATS_EVENTS.name, "event" => label).increment(1);
            });
    // A comma-separated list of servers (a NATS cluster): the client
    // connects to one and fails over to the others.
    let servers = lull_client::connect::server_addrs(&cfg.common.nats_url)?;
    Ok(opts.connect(servers).await?)
}

/// What the agent's `/readyz` checks: NATS connected (a disconnected agent
/// keeps collecting and spools, but its reports do not arrive) and the
/// shutdown not begun.
#[derive(Clone, Default)]
struct ReadySlot {
    client: Arc<std::sync::OnceLock<Client>>,
    stopping: lull_common::http::CancellationToken,
}

impl ReadySlot {
    fn readiness(&self) -> lull_common::http::ReadinessFn {
        use lull_common::http::{Check, Readiness};
        let slot = self.clone();
        lull_common::http::readiness(move || {
            let nats = match slot.client.get().map(|c| c.connection_state()) {
                None => Check::fail("nats", "connecting"),
                Some(async_nats::connection::State::Connected) => Check::pass("nats", "connected"),
                Some(other) => Check::fail("nats", format!("{other:?}").to_lowercase()),
            };
            let shutdown = if slot.stopping.is_cancelled() {
                Check::fail("shutdown", "shutting down")
            } else {
                Check::pass("shutdown", "running")
            };
            std::future::ready(Readiness {
                role: None,
                checks: vec![nats, shutdown],
            })
        })
    }
}

/// Runs the agent until SIGTERM/SIGINT, then stops collecting, flushes the
/// outbox (bounded by `shutdown_flush_timeout_sec`) and returns.
pub async fn run(cfg: AgentConfig) -> anyhow::Result<()> {
    let groups = metric_groups();
    // The HTTP server (/metrics, /healthz, /readyz) runs until `run` returns.
    let http_stop = lull_common::http::CancellationToken::new();
    let _http_guard = http_stop.clone().drop_guard();
    let ready = ReadySlot::default();
    let _handle = lull_common::runtime::install_metrics(
        cfg.common.metrics_addr,
        &buckets_of(&groups),
        ready.readiness(),
        http_stop,
    )?;
    describe_all(&groups);
    metrics::gauge!(
        BUILD_INFO.name,
        "version" => env!("CARGO_PKG_VERSION"),
        "profile" => if cfg!(debug_assertions) { "debug" } else { "release" },
        "panic" => if cfg!(panic = "unwind") { "unwind" } else { "abort" },
    )
    .set(1.0);
    publisher::zero_metrics();
    spool::zero_metrics();
    metrics::gauge!(NATS_CONNECTED.name).set(0.0);
    let subjects = Subjects::new(&cfg.common.subject_prefix);
    let client = connect(&cfg).await?;
    let _ = ready.client.set(client.clone());
    tracing::info!(
        host_id = %cfg.host_id,
        nats = %cfg.common.nats_url,
        metrics = %cfg.common.metrics_addr,
        spool = %cfg.spool_dir.display(),
        "lull-agent started"
    );

    let collectors = fault::apply(
        build_collectors(&cfg),
        &fault::from_env().map_err(anyhow::Error::msg)?,
    )
    .map_err(anyhow::Error::msg)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let transport = Transport::new(&cfg.outbox, cfg.common.auth_enabled());
    let runner = Runner::start(collectors, stop_rx.clone());
    let mut publisher = tokio::spawn(publisher::run(
        Arc::clone(&transport),
        client.clone(),
        cfg.outbox.clone(),
        stop_rx.clone(),
    ));
    let mut spooler = tokio::spawn(spool::run(
        SpoolRun {
            dir: cfg.spool_dir.clone(),
            cfg: cfg.spool.clone(),
            subjects: subjects.clone(),
            max_bytes: cfg.common.max_payload_bytes,
            host_id: cfg.host_id.clone(),
        },
        client.clone(),
        stop_rx.clone(),
    ));

    let board = runner.board();
    let died = tokio::select! {
        _ = tick_loop(&cfg, &subjects, &transport, &board) => None,
        r = &mut publisher => Some(("outbox publisher", r)),
        r = &mut spooler => Some(("spool hand-off", r)),
    };
    if let Some((task, r)) = died {
        let how = match r {
            Err(e) if e.is_panic() => "panicked",
            Err(_) => "was cancelled",
            Ok(()) => "returned",
        };
        tracing::error!(
            task,
            how,
            "a task of the agent ended unexpectedly; stopping"
        );
        ready.stopping.cancel();
        let _ = stop_tx.send(true);
        runner.abort();
        return Err(anyhow::anyhow!(
            "the {task} task {how}; exiting so that the agent is restarted"
        ));
    }

    tracing::info!("shutting down: flushing the outbox");
    ready.stopping.cancel();
    let _ = stop_tx.send(true);
    runner.abort();
    let budget = secs(cfg.shutdown_flush_timeout_sec);
    let deadline = Instant::now() + budget;
    if tokio::time::timeout(budget, publisher).await.is_err() {
        tracing::warn!("the outbox publisher did not stop in time");
    }
    let left = publisher::drain(
        &transport,
        &client,
        &cfg.outbox,
        deadline.saturating_duration_since(Instant::now()),
    )
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(1), spooler).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), client.flush()).await;
    if left > 0 {
        tracing::warn!(left, "messages left unpublished at shutdown");
    }
    tracing::info!("lull-agent stopped");
    Ok(())
}

async fn tick_loop(cfg: &AgentConfig, subjects: &Subjects, transport: &Transport, board: &Board) {
    let interval = secs(cfg.interval_sec);
    // The first tick comes one interval in, when the collectors have run.
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let signal = lull_common::runtime::shutdown_signal();
    tokio::pin!(signal);
    let stats_subject = subjects.stats(&cfg.host_id);
    let health_subject = subjects.agent_health(&cfg.host_id);
    let failure_subject = subjects.agent_failure(&cfg.host_id);
    let mut tick = 0u64;
    let mut seq = 0u64;
    let mut streak = FailureStreak::default();
    let mut last_health: Option<LoopHealth> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut signal => return,
        }
        tick += 1;
        let started = Instant::now();
        let now = now_unix();
        let built = {
            let b = board.lock().unwrap_or_else(|e| e.into_inner());
            snapshot::assemble(&tick_info(cfg, seq + 1, now), &b)
                .and_then(|s| snapshot::encode(&s, cfg.common.max_payload_bytes))
        };
        match built {
            Ok(bytes) => {
                seq += 1;
                streak.ok();
                transport.enqueue(Envelope {
                    kind: Kind::Stats,
                    subject: stats_subject.clone(),
                    payload: Bytes::from(bytes),
                });
                metrics::counter!(TICKS.name, "result" => "ok").increment(1);
                metrics::gauge!(SNAPSHOT_SEQ.name).set(seq as f64);
                if telemetry::health_due(tick, cfg.health_every_n_ticks) {
                    let collectors = {
                        let b = board.lock().unwrap_or_else(|e| e.into_inner());
                        runner::collectors_health(&b)
                    };
                    let h = telemetry::health(
                        tick,
                        started.elapsed().as_secs_f64() * 1000.0,
                        transport.status(),
                        collectors,
                    );
                    if let Ok(p) = serde_json::to_vec(&h) {
                        transport.enqueue(Envelope {
                            kind: Kind::Health,
                            subject: health_subject.clone(),
                            payload: Bytes::from(p),
                        });
                    }
                    last_health = Some(h);
                }
            }
            Err(e) => {
                let failure_count = streak.failed();
                tracing::warn!(tick, failure_count, error = %e, "tick failed");
                metrics::counter!(TICKS.name, "result" => "failed").increment(1);
                let f = telemetry::failure(FailureInput {
                    tick,
                    duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                    failure_count,
                    error: e.to_string(),
                    transport: transport.status(),
                    global_context: telemetry::global_context(
                        &cfg.host_id,
                        seq,
                        cfg.interval_sec,
                        now,
                    ),
                    last_health: last_health.as_ref(),
                });
                if let Ok(p) = serde_json::to_vec(&telemetry::failure_wire(&f)) {
                    transport.enqueue(Envelope {
                        kind: Kind::Failure,
                        subject: failure_subject.clone(),
                        payload: Bytes::from(p),
                    });
                }
            }
        }
        metrics::histogram!(TICK_DURATION.name).record(started.elapsed().as_secs_f64());
    }
}
