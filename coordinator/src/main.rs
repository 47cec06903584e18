//! `lull-coordinator`: loads the configuration and runs the coordinator
//! until SIGTERM or SIGINT, then shuts down gracefully and exits 0. This is
//! the binary's edge: a failure arrives here as an `anyhow::Error` with its
//! whole source chain, which is logged and printed (`{:#}` / `{:?}`).

use anyhow::Context;
use clap::Parser;
use lull_coordinator::config::{Args, CoordinatorConfig};
use tokio_util::sync::CancellationToken;

/// mimalloc: the coordinator allocates many small, short-lived strings per
/// request (ids, reasons, JSON), where it is markedly faster than glibc's
/// allocator (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    abort_on_panic();
    let args = Args::parse();
    let cfg = CoordinatorConfig::load(&args).context("loading configuration")?;
    if args.common.print_config {
        print!("{}", lull_common::config::render(&cfg));
        return Ok(());
    }
    if let Some(path) = &args.probe {
        let timeout = std::time::Duration::from_secs(3);
        match lull_common::http::probe(cfg.common.metrics_addr, path, timeout) {
            Ok(_) => std::process::exit(0),
            Err(e) => {
                eprintln!("lull-coordinator: probe {path}: {e}");
                std::process::exit(1);
            }
        }
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if cfg.worker_threads > 0 {
        rt.worker_threads(cfg.worker_threads);
    }
    let rt = rt
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run(cfg))
}

/// Any panic ends the process, as the release profile's `panic = "abort"`
/// did before it became `unwind` for the agent's sake. The supervisor
/// (`supervise.rs`) already makes a panicked owning task fatal; this also
/// covers the tasks they spawn (writers, event and audit sinks), which would
/// otherwise die alone and leave the coordinator half alive. The default
/// hook prints the message and the location first.
fn abort_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::abort();
    }));
}

async fn run(cfg: CoordinatorConfig) -> anyhow::Result<()> {
    lull_common::runtime::init_logging(&cfg.common.log, cfg.common.log_format);
    let stop = CancellationToken::new();
    let signal = stop.clone();
    tokio::spawn(async move {
        lull_common::runtime::shutdown_signal().await;
        signal.cancel();
    });
    let result = lull_coordinator::app::run(cfg, stop).await;
    if let Err(e) = &result {
        // The whole chain, also in JSON logs; `main` then prints it again
        // (`{:?}`: the message and every cause) and exits non-zero.
        tracing::error!(error = %format!("{e:#}"), "the coordinator failed");
    }
    result
}
