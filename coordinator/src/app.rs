//! Wiring of the coordinator process: connects NATS and Postgres, migrates,
//! ensures the reports stream (`ingest::stream`), starts the actors, the ingest tasks and the
//! micro service, and shuts them down in order on SIGTERM/SIGINT.

use std::time::Duration;

use anyhow::Context;
use lull_proto::Subjects;
use tokio_util::sync::CancellationToken;

use crate::config::{secs, CoordinatorConfig};
use crate::{endpoints, fleet, ingest, scheduler, service, store};
use lull_engine::lease;

/// Runs the coordinator until `stop` is cancelled.
pub async fn run(cfg: CoordinatorConfig, stop: CancellationToken) -> anyhow::Result<()> {
    // The HTTP server (/metrics, /healthz, /readyz) runs until `run` returns;
    // /readyz says "starting" until the startup below is done.
    let http_stop = CancellationToken::new();
    let _http_guard = http_stop.clone().drop_guard();
    let ready_slot = std::sync::Arc::new(std::sync::OnceLock::new());
    let _metrics = lull_common::runtime::install_metrics(
        cfg.common.metrics_addr,
        &crate::metrics::buckets(),
        readiness(ready_slot.clone()),
        http_stop,
    )
    .context("starting the metrics listener")?;
    crate::metrics::describe();
    tracing::info!(addr = %cfg.common.metrics_addr, "serving /metrics, /healthz, /readyz");

    let subjects = Subjects::new(&cfg.common.subject_prefix);
    let client = lull_client::connect::connect(&cfg.common.nats(), "lull-coordinator", false)
        .await
        .context("connecting to NATS")?;
    tracing::info!(url = %cfg.common.nats_url, "connected to NATS");

    let pool = store::pool_with(
        cfg.database_url.expose(),
        cfg.db_pool_size,
        (cfg.ha.idle_in_transaction_sec > 0.0)
            .then(|| Duration::from_secs_f64(cfg.ha.idle_in_transaction_sec)),
    )
    .context("configuring the database pool")?;
    wait_for_db(&pool, Duration::from_secs(30)).await?;
    let ran = store::migrations::migrate(&pool)
        .await
        .context("running database migrations")?;
    tracing::info!(ran, "database schema is current");

    ingest::stream::ensure_reports_stream(&client, &subjects, &cfg).await?;

    let actors = CancellationToken::new();
    let (views_tx, views_rx) = tokio::sync::mpsc::channel(64);
    cfg.lease
        .validate()
        .context("invalid [lease] configuration")?;
    let instance = instance_id(&cfg);
    let election_stop = CancellationToken::new();
    // Cancelled when the shutdown begins: tasks ending after it are fine.
    let stopping = CancellationToken::new();
    let (leadership, election_task) = crate::leader::spawn(
        crate::leader::ElectionConfig {
            database_url: cfg.database_url.expose().to_string(),
            instance: instance.clone(),
            ttl: secs(cfg.ha.leader_ttl_sec),
            renew: secs(cfg.ha.renew_sec),
            margin: secs(cfg.ha.drift_margin_sec),
            retry: secs(cfg.ha.retry_sec),
            lock_key: cfg.ha.lock_key,
        },
        election_stop.clone(),
    );
    tracing::info!(%instance, "joined the leader election");
    let (history, blocks) = open_history(&pool, &cfg).await?;
    history.shared.set_instance(&instance);
    let (fleet, fleet_task) = fleet::spawn(
        fleet::FleetConfig {
            queue: cfg.ingest.fleet_queue,
            hosts_flush: Duration::from_secs_f64(cfg.ingest.hosts_flush_sec.max(0.1)),
            sweep: Duration::from_secs_f64(cfg.ingest.sweep_sec.max(0.1)),
            quiet: history.quiet.clone(),
            views_flush: Duration::from_secs_f64(cfg.ingest.views_flush_sec.max(0.01)),
            views_filter: fleet::ViewFilter {
                refresh_sec: cfg.ingest.views_refresh_sec,
                score_delta: cfg.ingest.views_score_delta,
                pct_delta: cfg.ingest.views_pct_delta,
                load_delta: cfg.ingest.views_load_delta,
                net_delta_frac: cfg.ingest.views_net_delta_frac,
            },
            history: Some(history.clone()),
            blocks,
            hosts: cfg.hosts.clone(),
            lists: cfg.lists,
        },
        Some(pool.clone()),
        Some(views_tx),
        actors.clone(),
    );
    // Only the leader writes history; a standby switches writes on when it
    // takes over.
    history.shared.set_writing(false);
    cfg.regions
        .validate()
        .context("invalid [regions] configuration")?;
    cfg.workers
        .validate()
        .context("invalid [workers] configuration")?;
    let (workers_slot, workers_rx) = tokio::sync::watch::channel(None);
    let forecast_task = tokio::spawn(fleet::forecast::run(
        history.clone(),
        fleet.clone(),
        workers_rx,
        actors.clone(),
    ));

    let intake = CancellationToken::new();
    let max = cfg.common.max_payload_bytes;
    let (rejected_tx, rejected_rx) = tokio::sync::watch::channel(Default::default());
    let stats_task = tokio::spawn(ingest::stats::run(
        client.clone(),
        subjects.clone(),
        fleet.clone(),
        ingest::stats::Limits {
            max_payload: max,
            window: cfg.ingest.stats_times(),
            rejection_logs_per_min: cfg.ingest.stats_rejection_logs_per_min,
        },
        rejected_tx,
        intake.clone(),
    ));
    let agent_task = tokio::spawn(ingest::agent_health::run(
        client.clone(),
        subjects.clone(),
        fleet.clone(),
        max,
        intake.clone(),
    ));
    let mut svc = service::Service::start(&client, &subjects)
        .await
        .map_err(anyhow::Error::from_boxed)
        .context("starting the micro service")?;
    let lease_group = svc.exclusive_group(&subjects, &instance);
    let duties = crate::leading::Duties {
        pool: pool.clone(),
        cfg: std::sync::Arc::new(cfg.clone()),
        client: client.clone(),
        subjects: subjects.clone(),
        fleet: fleet.clone(),
        history: history.clone(),
        group: std::sync::Arc::new(svc.exclusive_group(&subjects, &instance)),
        workers_slot,
        shutdown: intake.clone(),
    };
    let duties_task = tokio::spawn(crate::leader::scope::while_leading(
        leadership.clone(),
        intake.clone(),
        move |epoch, lost| {
            let duties = duties.clone();
            async move { duties.lead(epoch, lost).await }
        },
    ));
    let scheduler_task = scheduler::spawn(
        scheduler::SchedulerConfig {
            tick: secs(cfg.scheduler.tick_sec),
            gauges: secs(cfg.scheduler.gauges_sec),
            max_payload: max,
            events_queue: cfg.scheduler.events_queue,
            audit: scheduler::AuditConfig {
                queue: cfg.scheduler.audit_queue,
                batch: cfg.scheduler.audit_batch.max(1),
                flush: secs(cfg.scheduler.audit_flush_sec),
                retry_max: cfg.scheduler.audit_queue,
                retention: (cfg.scheduler.audit_retention_days > 0.0)
                    .then(|| secs(cfg.scheduler.audit_retention_days * 86_400.0)),
                prune_every: secs(cfg.scheduler.audit_prune_sec),
            },
            drain: secs(cfg.scheduler.drain_sec),
            takeover_settle: Duration::from_secs_f64(cfg.ha.takeover_settle_sec.max(0.0)),
            batch_max: cfg.scheduler.batch_max,
            host_metrics_max: cfg.hosts.host_metrics_max,
            queue: scheduler::QueueConfig {
                backlog: cfg.scheduler.queue_backlog.max(1),
                write_rows: cfg.scheduler.queue_write_rows.max(1),
                retry: secs(cfg.scheduler.queue_retry_sec),
            },
            lists: cfg.lists,
        },
        scheduler::SchedulerIo {
            group: lease_group,
            views: views_rx,
            client: client.clone(),
            subjects: subjects.clone(),
            pool: Some(pool.clone()),
            leadership: leadership.clone(),
            open_book: book_opener(&pool, &cfg),
            load_keys: key_loader(&pool, &cfg),
        },
        actors.clone(),
    );
    let deps = endpoints::Deps {
        rejected: rejected_rx,
        fleet: fleet.clone(),
        max_payload: max,
        lists: cfg.lists,
        history: history.clone(),
        leadership: leadership.clone(),
        pool: pool.clone(),
    };
    svc.serve(
        endpoints::all(&deps),
        cfg.ingest.endpoint_concurrency,
        intake.clone(),
    )
    .await
    .map_err(anyhow::Error::from_boxed)
    .context("starting the micro service")?;
    tracing::info!(prefix = %subjects.prefix(), "coordinator ready");
    let _ = ready_slot.set(ReadyDeps {
        client: client.clone(),
        pool: pool.clone(),
        leadership: leadership.clone(),
        stopping: stopping.clone(),
    });

    let sup = crate::supervise::Supervisor::new(stopping.clone());
    let election_task = sup.watch("election", election_task);
    let fleet_task = sup.watch("fleet", fleet_task);
    let forecast_task = sup.watch("forecast", forecast_task);
    let stats_task = sup.watch("stats_ingest", stats_task);
    let agent_task = sup.watch("agent_ingest", agent_task);
    let duties_task = sup.watch("leader_duties", duties_task);
    let scheduler_task = sup.watch("scheduler", scheduler_task);
    let fatal = sup.fatal();
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = fatal.cancelled() => {}
    }
    stopping.cancel();
    tracing::info!("shutting down: no new work");
    intake.cancel();
    // The leader's duties end first: the reports consumer, then the region
    // and worker actors after their last commit.
    let _ = duties_task.await;
    svc.stop().await;
    let _ = stats_task.await;
    let _ = agent_task.await;
    actors.cancel();
    let _ = fleet_task.await;
    let _ = forecast_task.await;
    let _ = scheduler_task.await;
    // Only now give the leadership up, so a standby takes over at once.
    election_stop.cancel();
    let _ = election_task.await;
    let _ = client.flush().await;
    let dead = sup.dead();
    if !dead.is_empty() {
        anyhow::bail!("owning task(s) ended unexpectedly: {}", dead.join(", "));
    }
    tracing::info!("shutdown complete");
    Ok(())
}

/// What `/readyz` checks, once the startup (NATS, Postgres, migrations,
/// the micro service) is done.
struct ReadyDeps {
    client: async_nats::Client,
    pool: deadpool_postgres::Pool,
    leadership: crate::leader::Leadership,
    stopping: CancellationToken,
}

/// How long `/readyz` waits for a pooled connection and `SELECT 1`.
const READY_DB_TIMEOUT: Duration = Duration::from_secs(2);

/// The readiness callback: ready when the startup is done (migrations ran),
/// NATS is connected, Postgres answers `SELECT 1` within
/// [`READY_DB_TIMEOUT`] and the shutdown has not begun. A ready standby is
/// ready too (it serves reads); the role is `leader` or `standby`, and
/// `/readyz?leader` asks for the leader.
fn readiness(
    slot: std::sync::Arc<std::sync::OnceLock<ReadyDeps>>,
) -> lull_common::http::ReadinessFn {
    use lull_common::http::{Check, Readiness};
    lull_common::http::readiness(move || {
        let slot = slot.clone();
        async move {
            let Some(d) = slot.get() else {
                return Readiness {
                    role: None,
                    checks: vec![Check::fail(
                        "startup",
                        "connecting to NATS and Postgres, migrating",
                    )],
                };
            };
            let mut checks = vec![Check::pass("startup", "migrations done")];
            checks.push(match d.client.connection_state() {
                async_nats::connection::State::Connected => Check::pass("nats", "connected"),
                other => Check::fail("nats", format!("{other:?}").to_lowercase()),
            });
            let ping = async {
                let conn = d.pool.get().await.map_err(|e| e.to_string())?;
                conn.simple_query("SELECT 1")
                    .await
                    .map_err(|e| e.to_string())
            };
            checks.push(match tokio::time::timeout(READY_DB_TIMEOUT, ping).await {
                Ok(Ok(_)) => Check::pass("postgres", "SELECT 1"),
                Ok(Err(e)) => Check::fail("postgres", e),
                Err(_) => Check::fail("postgres", format!("no answer within {READY_DB_TIMEOUT:?}")),
            });
            checks.push(if d.stopping.is_cancelled() {
                Check::fail("shutdown", "shutting down")
            } else {
                Check::pass("shutdown", "running")
            });
            let role = if d.leadership.epoch_now().is_some() {
                "leader"
            } else {
                "standby"
            };
            Readiness {
                role: Some(role),
                checks,
            }
        }
    })
}

/// This instance's id: configured, or `<host name>-<pid>`.
fn instance_id(cfg: &CoordinatorConfig) -> String {
    if !cfg.ha.instance.is_empty() {
        return cfg.ha.instance.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "coordinator".into());
    format!("{host}-{}", std::process::id())
}

/// Opens the lease book for a leadership epoch (see [`open_book`]).
fn book_opener(pool: &deadpool_postgres::Pool, cfg: &CoordinatorConfig) -> scheduler::BookOpener {
    let (pool, cfg) = (pool.clone(), cfg.clone());
    std::sync::Arc::new(move |epoch| {
        let (pool, cfg) = (pool.clone(), cfg.clone());
        Box::pin(async move { open_book(&pool, &cfg, epoch).await })
    })
}

/// Loads the replication seal keys a standby verifies with (no rotation).
fn key_loader(pool: &deadpool_postgres::Pool, cfg: &CoordinatorConfig) -> scheduler::KeyLoader {
    let (pool, keep) = (
        pool.clone(),
        cfg.scheduler.key_keep_days.max(0.0) * 86_400.0,
    );
    std::sync::Arc::new(move || {
        let pool = pool.clone();
        Box::pin(async move {
            let now = lull_common::runtime::now_unix();
            let fresh = hex::encode(rand::random::<[u8; 32]>());
            let keys = store::leases::load_keys(&pool, &fresh, now, None, keep)
                .await
                .context("loading the lease signing keys")?;
            Ok(scheduler::replica::SealKey::all_from_hex(&keys.keys_hex))
        })
    })
}

/// Builds the lease book: the signing key comes from the database (created
/// on first start), and recently ended leases are remembered so they cannot
/// be re-asserted. On the very first start there is nothing to re-assert,
/// so the grace period is skipped.
async fn open_book(
    pool: &deadpool_postgres::Pool,
    cfg: &CoordinatorConfig,
    epoch: u64,
) -> anyhow::Result<(lease::Book, Vec<scheduler::replica::SealKey>)> {
    let now = lull_common::runtime::now_unix();
    let fresh = hex::encode(rand::random::<[u8; 32]>());
    let days = |d: f64| d * 86_400.0;
    let keys = store::leases::load_keys(
        pool,
        &fresh,
        now,
        (cfg.scheduler.key_rotate_days > 0.0).then(|| days(cfg.scheduler.key_rotate_days)),
        days(cfg.scheduler.key_keep_days.max(0.0)),
    )
    .await
    .context("loading the lease signing keys")?;
    let mut parsed = keys
        .keys_hex
        .iter()
        .map(|h| lease::LeaseKey::from_hex(h).context("a stored lease key is unusable"));
    let key = parsed
        .next()
        .ok_or_else(|| anyhow::anyhow!("no lease signing key"))??;
    let previous = parsed.collect::<anyhow::Result<Vec<_>>>()?;
    if keys.rotated {
        tracing::info!(
            previous = previous.len(),
            "rotated the lease signing key; older tokens are swapped on their next heartbeat"
        );
    }
    let seal = scheduler::replica::SealKey::all_from_hex(&keys.keys_hex);
    // Ids carry the epoch, so no two leaderships can mint the same id.
    let mut book = lease::Book::new(cfg.lease.clone(), key, format!("L{epoch}"), now);
    book.add_previous_keys(previous);
    if keys.first {
        book.skip_grace();
    } else {
        tracing::info!(
            grace_sec = cfg.lease.grace_period(),
            "grace period: holders may re-assert their leases; new grants wait"
        );
    }
    let ended = store::leases::ended_since(pool, now - cfg.scheduler.ended_lookback_sec)
        .await
        .context("loading recently ended leases")?;
    book.restore_tombstones(ended);
    Ok((book, seal))
}

/// Opens the history store (checks its settings, creates today's and the
/// coming partitions, loads the rollup watermark) and loads the operator
/// blocks still in force.
async fn open_history(
    pool: &deadpool_postgres::Pool,
    cfg: &CoordinatorConfig,
) -> anyhow::Result<(
    store::history::HistoryStore,
    lull_engine::quiet::blocks::Blocks,
)> {
    cfg.history
        .validate(&cfg.quiet)
        .context("invalid [history] configuration")?;
    let history = store::history::HistoryStore::new(
        pool.clone(),
        cfg.history.clone(),
        std::sync::Arc::new(cfg.quiet.clone()),
    );
    store::history::maintain::prepare(&history)
        .await
        .context("preparing history storage")?;
    let now = lull_common::runtime::now_unix();
    let blocks = store::blocks::load_all(pool, now)
        .await
        .context("loading operator blocks and maintenance windows")?;
    tracing::info!(
        blocks = blocks.list(now).len(),
        windows = blocks.windows(now).len(),
        "operator blocks loaded"
    );
    Ok((history, blocks))
}

async fn wait_for_db(pool: &deadpool_postgres::Pool, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match pool.get().await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "database not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(anyhow::Error::new(e).context("connecting to the database")),
        }
    }
}
