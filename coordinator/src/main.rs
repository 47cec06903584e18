//! `lull-coordinator`: loads the configuration and runs the coordinator
//! until SIGTERM or SIGINT, then shuts down gracefully and exits 0.

use anyhow::Context;
use clap::Parser;
use lull_coordinator::config::{Args, CoordinatorConfig};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cfg = CoordinatorConfig::load(&args).context("loading configuration")?;
    if args.common.print_config {
        print!("{}", lull_common::config::render(&cfg));
        return Ok(());
    }
    lull_common::runtime::init_logging(&cfg.common.log, cfg.common.log_format);
    let stop = CancellationToken::new();
    let signal = stop.clone();
    tokio::spawn(async move {
        lull_common::runtime::shutdown_signal().await;
        signal.cancel();
    });
    lull_coordinator::app::run(cfg, stop).await
}
