//! Process plumbing shared by the binaries: logging, the Prometheus
//! exporter and its HTTP server, shutdown signals and the wall clock.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::LogFormat;
use crate::http::ReadinessFn;
use tokio_util::sync::CancellationToken;

/// Seconds since the Unix epoch, as a float (the wire's time format).
pub fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Installs the global tracing subscriber with `filter` (an `EnvFilter`
/// directive) in text or JSON format. Logs go to stderr, coloured only when
/// stderr is a terminal and `NO_COLOR` is unset: log files, journald and
/// pipes get plain text.
pub fn init_logging(filter: &str, format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Buckets (seconds) of latency histograms: 50 µs to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// Buckets (seconds) of long durations such as builds and worker runs.
pub const LONG_DURATION_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0,
];

/// Buckets of sizes and counts (batch sizes, queue lengths).
pub const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0,
];

/// Installs the Prometheus exporter as the global recorder and serves
/// `/metrics`, `/healthz` and `/readyz` on `addr` with [`crate::http`]
/// (must be called inside a tokio runtime) until `stop` is cancelled.
/// `ready` is the binary's readiness callback. Every histogram is rendered
/// as a real histogram: `_seconds` ones get [`LATENCY_BUCKETS`], others
/// [`SIZE_BUCKETS`], unless `extra` names buckets for a metric.
pub fn install_metrics(
    addr: SocketAddr,
    extra: &[(&str, &[f64])],
    ready: ReadinessFn,
    stop: CancellationToken,
) -> Result<PrometheusHandle, MetricsError> {
    let mut b = PrometheusBuilder::new()
        .set_buckets(SIZE_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?;
    for (name, buckets) in extra {
        b = b.set_buckets_for_metric(Matcher::Full((*name).to_string()), buckets)?;
    }
    let recorder = b.build_recorder();
    let handle = recorder.handle();
    crate::http::serve(addr, handle.clone(), ready, stop.clone()).map_err(MetricsError::Listen)?;
    metrics::set_global_recorder(recorder).map_err(|_| MetricsError::AlreadyInstalled)?;
    // HELP texts of the process_* metrics the HTTP server sets at each scrape.
    metrics_process::Collector::default().describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tick.tick() => upkeep.run_upkeep(),
                _ = stop.cancelled() => return,
            }
        }
    });
    Ok(handle)
}

/// The metrics exporter could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Bad buckets.
    #[error("metrics exporter: {0}")]
    Build(#[from] BuildError),
    /// The HTTP listener could not bind.
    #[error("metrics listener: {0}")]
    Listen(std::io::Error),
    /// A global recorder is already installed.
    #[error("a metrics recorder is already installed")]
    AlreadyInstalled,
}

/// Waits for SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
