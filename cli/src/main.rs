//! `lullctl`: the operator's CLI. One module per command group; each prints
//! a human table (`-o table`, `-o wide`) or one stable JSON document
//! (`-o json`, alias `--json`).

mod args;
mod block;
mod context;
mod coordinators;
mod decisions;
mod forecast;
mod health;
mod history;
mod hosts;
mod leases;
mod output;
mod pages;
mod regions;
mod report;
mod run;
mod schedule;
mod status;
mod streaks;
mod watch;
mod workers;

use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use lull_common::config::CommonConfig;
use lull_proto::Subjects;

use crate::args::{ClientArgs, Format};

/// Global options.
#[derive(Debug, Parser)]
#[command(name = "lullctl", version, about = "Operate a Lull fleet")]
struct Cli {
    #[command(flatten)]
    common: ClientArgs,
    /// Output format: table, wide (more columns) or json.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
    /// The same as `-o json`.
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
    /// List hosts with their quiet state, show one, or forget one.
    Hosts(hosts::HostsArgs),
    /// Keep heavy work off a host or the fleet, now or in a scheduled maintenance window; no target lists blocks and windows.
    Block(block::BlockArgs),
    /// Lift a host's or the fleet-wide block, or remove maintenance windows.
    Unblock(block::UnblockArgs),
    /// A host's quiet forecast: a heatmap of the week and the next quiet window.
    Forecast(forecast::ForecastArgs),
    /// A host's recent figures, one sparkline per signal.
    History(history::HistoryArgs),
    /// Quiet streaks (uninterrupted QUIET periods) of one host or every host.
    Streaks(streaks::StreaksArgs),
    /// Fleet health: ok, warn or error with the reasons (exit 1 on error).
    Health(health::HealthArgs),
    /// Build regions: campaign stats, selection, insights, pardon, import/export.
    Regions(regions::RegionsArgs),
    /// Worker executions, scores, learning insights and data quality.
    Workers(workers::WorkersArgs),
    /// The coordinators (leader, epoch, standbys) and the scheduler: leases, host capacity, per-addon decisions.
    Status(status::StatusArgs),
    /// List active (--recent: also ended) leases, or recent denials (--denied).
    Leases(leases::LeasesArgs),
    /// Revoke a lease (its holder is told at once).
    Revoke(leases::RevokeArgs),
    /// Run a command under a heavy-work lease.
    Run(run::RunArgs),
    /// Publish a durable report (build, fatigue or worker) from a JSON file.
    Report(report::ReportArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion(CompletionArgs),
}

/// Arguments of `lullctl completion`.
#[derive(Debug, clap::Args)]
struct CompletionArgs {
    /// The shell.
    shell: clap_complete::Shell,
}

/// What every command gets: a connection, the subjects and output options.
pub struct Ctx {
    /// NATS client.
    pub client: async_nats::Client,
    /// Subjects under the configured prefix.
    pub subjects: Subjects,
    /// The output format.
    pub output: Format,
    /// Print JSON (`output` is `Json`).
    pub json: bool,
    /// Request timeout.
    pub timeout: Duration,
}

impl Ctx {
    /// Whether `-o wide` was asked for.
    pub fn wide(&self) -> bool {
        self.output == Format::Wide
    }
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
    if let Command::Completion(a) = &cli.command {
        let mut cmd = Cli::command();
        clap_complete::generate(a.shell, &mut cmd, "lullctl", &mut std::io::stdout());
        return Ok(0);
    }
    let mut defaults = CommonConfig::default();
    if let Some(ctx_file) = context::file_if_present() {
        defaults = lull_common::config::with_base_file(&defaults, &ctx_file)
            .with_context(|| format!("reading the context file {}", ctx_file.display()))?;
    }
    let cfg: CommonConfig =
        lull_common::config::load(&defaults, cli.common.config.as_ref(), &cli.common)
            .context("loading configuration")?;
    if cli.common.print_config {
        print!("{}", lull_common::config::render(&args::client_view(&cfg)));
        return Ok(0);
    }
    lull_common::runtime::init_logging("warn", cfg.log_format);
    let client = lull_client::connect::connect(&cfg.nats(), "lullctl", false)
        .await
        .context(Unreachable(cfg.nats_url.clone()))?;
    let output = if cli.json { Format::Json } else { cli.output };
    let ctx = Ctx {
        client,
        subjects: Subjects::new(&cfg.subject_prefix),
        output,
        json: output == Format::Json,
        timeout: Duration::from_secs_f64(cli.timeout.max(0.1)),
    };
    let code = match cli.command {
        Command::Hosts(a) => hosts::run(&ctx, a).await?,
        Command::Block(a) => block::block(&ctx, a).await?,
        Command::Unblock(a) => block::unblock(&ctx, a).await?,
        Command::Forecast(a) => forecast::run(&ctx, a).await?,
        Command::History(a) => history::run(&ctx, a).await?,
        Command::Streaks(a) => streaks::run(&ctx, a).await?,
        Command::Health(a) => health::run(&ctx, a).await?,
        Command::Regions(a) => regions::run(&ctx, a).await?,
        Command::Workers(a) => workers::run(&ctx, a).await?,
        Command::Status(a) => status::status(&ctx, a).await?,
        Command::Leases(a) => leases::leases(&ctx, a).await?,
        Command::Revoke(a) => leases::revoke(&ctx, a).await?,
        Command::Run(a) => run::run(&ctx, a).await?,
        Command::Report(a) => report::run(&ctx, a).await?,
        Command::Completion(_) => 0,
    };
    let _ = ctx.client.flush().await;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_is_consistent_and_has_no_server_flags() {
        Cli::command().debug_assert();
        let help = Cli::command().render_long_help().to_string();
        for server_only in ["--metrics-addr", "--log ", "--log\n"] {
            assert!(!help.contains(server_only), "{server_only} in:\n{help}");
        }
        assert!(help.contains("--nats-url") && help.contains("--output"));
    }

    #[test]
    fn json_is_an_alias_of_output_json() {
        let c = Cli::try_parse_from(["lullctl", "--json", "hosts"]).unwrap();
        assert!(c.json);
        let c = Cli::try_parse_from(["lullctl", "hosts", "-o", "wide"]).unwrap();
        assert_eq!(c.output, Format::Wide);
        assert!(Cli::try_parse_from(["lullctl", "-o", "yaml", "hosts"]).is_err());
    }
}
