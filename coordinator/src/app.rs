//! Wiring of the coordinator process: connects NATS and Postgres, migrates,
//! ensures the reports stream, starts the actors, the ingest tasks and the
//! micro service, and shuts them down in order on SIGTERM/SIGINT.

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream;
use lull_common::Subjects;
use tokio_util::sync::CancellationToken;

use crate::config::CoordinatorConfig;
use crate::{endpoints, fleet, ingest, service, store};

/// Runs the coordinator until `stop` is cancelled.
pub async fn run(cfg: CoordinatorConfig, stop: CancellationToken) -> anyhow::Result<()> {
    let _metrics = lull_common::runtime::install_metrics(
        cfg.common.metrics_addr,
        crate::metrics::EXTRA_BUCKETS,
    )
    .context("starting the metrics listener")?;
    crate::metrics::describe();
    tracing::info!(addr = %cfg.common.metrics_addr, "serving /metrics");

    let subjects = Subjects::new(&cfg.common.subject_prefix);
    let client = lull_common::nats::connect(&cfg.common, "lull-coordinator", false)
        .await
        .context("connecting to NATS")?;
    tracing::info!(url = %cfg.common.nats_url, "connected to NATS");

    let pool = store::pool(cfg.database_url.expose(), cfg.db_pool_size)
        .context("configuring the database pool")?;
    wait_for_db(&pool, Duration::from_secs(30)).await?;
    let ran = store::migrations::migrate(&pool)
        .await
        .context("running database migrations")?;
    tracing::info!(ran, "database schema is current");

    ensure_reports_stream(&client, &subjects, &cfg).await?;

    let known = store::hosts::load(&pool)
        .await
        .context("loading the host table")?;
    let actors = CancellationToken::new();
    let (fleet, fleet_task) = fleet::spawn(
        fleet::FleetConfig {
            queue: cfg.ingest.fleet_queue,
            hosts_flush: Duration::from_secs_f64(cfg.ingest.hosts_flush_sec.max(0.1)),
            sweep: Duration::from_secs_f64(cfg.ingest.sweep_sec.max(0.1)),
            quiet: std::sync::Arc::new(cfg.quiet.clone()),
            views_flush: Duration::from_secs_f64(cfg.ingest.views_flush_sec.max(0.01)),
        },
        Some(pool.clone()),
        known,
        None,
        actors.clone(),
    );

    let intake = CancellationToken::new();
    let max = cfg.common.max_payload_bytes;
    let stats_task = tokio::spawn(ingest::stats::run(
        client.clone(),
        subjects.clone(),
        fleet.clone(),
        max,
        intake.clone(),
    ));
    let agent_task = tokio::spawn(ingest::agent_health::run(
        client.clone(),
        subjects.clone(),
        fleet.clone(),
        max,
        intake.clone(),
    ));
    let deps = endpoints::Deps {
        fleet: fleet.clone(),
        max_payload: max,
    };
    let svc = service::start(
        &client,
        &subjects,
        endpoints::all(&deps),
        cfg.ingest.endpoint_concurrency,
        intake.clone(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("starting the micro service: {e}"))?;
    tracing::info!(prefix = %subjects.prefix(), "coordinator ready");

    stop.cancelled().await;
    tracing::info!("shutting down: no new work");
    intake.cancel();
    svc.stop().await;
    let _ = stats_task.await;
    let _ = agent_task.await;
    actors.cancel();
    let _ = fleet_task.await;
    let _ = client.flush().await;
    tracing::info!("shutdown complete");
    Ok(())
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
            Err(e) => return Err(anyhow::anyhow!("connecting to the database: {e}")),
        }
    }
}

/// Creates the `LULL_REPORTS` stream on `<prefix>.report.>` if it is missing.
async fn ensure_reports_stream(
    client: &async_nats::Client,
    subjects: &Subjects,
    cfg: &CoordinatorConfig,
) -> anyhow::Result<()> {
    let js = jetstream::new(client.clone());
    js.get_or_create_stream(jetstream::stream::Config {
        name: lull_common::subjects::REPORTS_STREAM.to_string(),
        subjects: vec![subjects.reports_all()],
        storage: jetstream::stream::StorageType::File,
        duplicate_window: Duration::from_secs(cfg.ingest.reports_duplicate_window_sec),
        ..Default::default()
    })
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "creating the {} stream: {e}",
            lull_common::subjects::REPORTS_STREAM
        )
    })?;
    Ok(())
}
