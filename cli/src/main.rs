//! `lullctl`: the operator's CLI. One module per command group; each prints
//! a human table or, with `--json`, the raw reply.

mod block;
mod context;
mod coordinators;
mod hosts;
mod leases;
mod output;
mod pages;
mod regions;
mod report;
mod run;
mod schedule;
mod status;
mod workers;

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lull_common::config::{CommonArgs, CommonConfig};
use lull_proto::Subjects;

/// Global options.
#[derive(Debug, Parser)]
#[command(name = "lullctl", version, about = "Operate a Lull fleet")]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Print replies as JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Request timeout in seconds.
    #[arg(long, global = true, default_value_t = 5.0)]
    timeout: f64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List hosts with their quiet state.
    Hosts(hosts::HostsArgs),
    /// Keep heavy work off a host or the fleet, now or in a scheduled maintenance window; no target lists blocks and windows.
    Block(block::BlockArgs),
    /// Lift a host's or the fleet-wide block, or remove maintenance windows.
    Unblock(block::UnblockArgs),
    /// Build regions: campaign stats, selection, insights, pardon, import/export.
    Regions(regions::RegionsArgs),
    /// Worker executions, scores, learning insights and data quality.
    Workers(workers::WorkersArgs),
    /// The coordinators (leader, epoch, standbys) and the scheduler: leases, host capacity, per-addon decisions.
    Status(status::StatusArgs),
    /// List active (and with --recent, ended) leases.
    Leases(leases::LeasesArgs),
    /// Revoke a lease (its holder is told at once).
    Revoke(leases::RevokeArgs),
    /// Run a command under a heavy-work lease.
    Run(run::RunArgs),
    /// Publish a durable report (build, fatigue or worker) from a JSON file.
    Report(report::ReportArgs),
}

/// What every command gets: a connection, the subjects and output options.
pub struct Ctx {
    /// NATS client.
    pub client: async_nats::Client,
    /// Subjects under the configured prefix.
    pub subjects: Subjects,
    /// Print JSON.
    pub json: bool,
    /// Request timeout.
    pub timeout: Duration,
}

/// Exit code of any failure but "could not ask" ([`run::EXIT_UNAVAILABLE`]).
const EXIT_FAILURE: i32 = 1;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let code = match run_cli().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lullctl: error: {e:#}");
            exit_code_of(&e)
        }
    };
    std::process::exit(code);
}

/// The exit code for a failed command: [`run::EXIT_UNAVAILABLE`] when the cause
/// is that nothing could be asked, else [`EXIT_FAILURE`].
fn exit_code_of(e: &anyhow::Error) -> i32 {
    let unreachable = e.downcast_ref::<Unreachable>().is_some()
        || e.chain().any(|c| {
            c.downcast_ref::<lull_client::request::RequestError>()
                .is_some_and(|r| r.code() == Some(lull_proto::error::ErrorCode::Unavailable))
        });
    if unreachable {
        run::EXIT_UNAVAILABLE
    } else {
        EXIT_FAILURE
    }
}

/// NATS could not be reached at start.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach NATS at {0}")]
struct Unreachable(String);

async fn run_cli() -> anyhow::Result<i32> {
    let cli = Cli::parse();
    let mut defaults = CommonConfig::default();
    if let Some(ctx_file) = context::file_if_present() {
        defaults = lull_common::config::with_base_file(&defaults, &ctx_file)
            .with_context(|| format!("reading the context file {}", ctx_file.display()))?;
    }
    let cfg: CommonConfig =
        lull_common::config::load(&defaults, cli.common.config.as_ref(), &cli.common)
            .context("loading configuration")?;
    if cli.common.print_config {
        print!("{}", lull_common::config::render(&cfg));
        return Ok(0);
    }
    lull_common::runtime::init_logging("warn", cfg.log_format);
    let client = lull_client::connect::connect(&cfg.nats(), "lullctl", false)
        .await
        .context(Unreachable(cfg.nats_url.clone()))?;
    let ctx = Ctx {
        client,
        subjects: Subjects::new(&cfg.subject_prefix),
        json: cli.json,
        timeout: Duration::from_secs_f64(cli.timeout.max(0.1)),
    };
    let code = match cli.command {
        Command::Hosts(a) => hosts::run(&ctx, a).await?,
        Command::Block(a) => block::block(&ctx, a).await?,
        Command::Unblock(a) => block::unblock(&ctx, a).await?,
        Command::Regions(a) => regions::run(&ctx, a).await?,
        Command::Workers(a) => workers::run(&ctx, a).await?,
        Command::Status(a) => status::status(&ctx, a).await?,
        Command::Leases(a) => leases::leases(&ctx, a).await?,
        Command::Revoke(a) => leases::revoke(&ctx, a).await?,
        Command::Run(a) => run::run(&ctx, a).await?,
        Command::Report(a) => report::run(&ctx, a).await?,
    };
    let _ = ctx.client.flush().await;
    Ok(code)
}
