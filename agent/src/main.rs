//! `lull-agent`: runs the agent (default), prints one snapshot (`--once`),
//! or hands a report to the spool (`report FILE`). Exit codes: 0 success,
//! 1 failure, 2 bad configuration.

use std::time::Duration;

use clap::Parser;
use lull_agent::config::{AgentConfig, Args, Command};

fn main() {
    std::process::exit(real_main());
}

fn real_main() -> i32 {
    let args = Args::parse();
    let cfg = match AgentConfig::load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lull-agent: {e}");
            return 2;
        }
    };
    if args.common.print_config {
        print!("{}", lull_common::config::render(&cfg));
        return 0;
    }
    if let Some(path) = &args.probe {
        let timeout = std::time::Duration::from_secs(3);
        return match lull_common::http::probe(cfg.common.metrics_addr, path, timeout) {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("lull-agent: probe {path}: {e}");
                1
            }
        };
    }
    if let Some(Command::Report { file }) = &args.command {
        return match lull_agent::agent::report(&cfg, file) {
            Ok(path) => {
                println!("{}", path.display());
                0
            }
            Err(e) => {
                eprintln!("lull-agent report: {e}");
                1
            }
        };
    }
    lull_common::runtime::init_logging(&cfg.common.log, cfg.common.log_format);
    // One thread runs everything; probes that may block use a small pool.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(cfg.blocking_threads)
        .thread_keep_alive(Duration::from_secs(10))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lull-agent: cannot start the runtime: {e}");
            return 1;
        }
    };
    let code = if args.once {
        rt.block_on(async {
            match lull_agent::agent::once(&cfg).await {
                Ok(s) => match serde_json::to_string_pretty(&s) {
                    Ok(j) => {
                        println!("{j}");
                        0
                    }
                    Err(e) => {
                        eprintln!("lull-agent --once: {e}");
                        1
                    }
                },
                Err(e) => {
                    eprintln!("lull-agent --once: {e}");
                    1
                }
            }
        })
    } else {
        match rt.block_on(lull_agent::agent::run(cfg)) {
            Ok(()) => 0,
            Err(e) => {
                tracing::error!(error = %e, "lull-agent failed");
                eprintln!("lull-agent: {e:#}");
                1
            }
        }
    };
    // A probe stuck on a dead mount must not hold up the exit.
    rt.shutdown_timeout(Duration::from_millis(500));
    code
}
