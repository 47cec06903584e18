//! `lullctl report build|fatigue|worker FILE`: validates a durable report
//! and publishes it to JetStream (`Nats-Msg-Id` = the record id), waiting
//! for the stream's acknowledgement. `FILE` may be `-` for stdin.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use lull_client::report::{PreparedReport, ReportKind, ReportPublisher};
use lull_proto::validate::DEFAULT_MAX_PAYLOAD;

use crate::output::json;
use crate::Ctx;

/// Exit code of a report file that is not a valid report.
pub const EXIT_INVALID: i32 = 2;

/// Arguments of `lullctl report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// build, fatigue or worker.
    pub kind: ReportKind,
    /// The JSON file (`-` for stdin).
    pub file: PathBuf,
}

fn read_input(path: &PathBuf) -> std::io::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(path)
    }
}

/// Runs the command; returns the exit code.
pub async fn run(ctx: &Ctx, args: ReportArgs) -> anyhow::Result<i32> {
    let bytes = read_input(&args.file)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", args.file.display()))?;
    let prepared = match PreparedReport::from_json(args.kind, &bytes, DEFAULT_MAX_PAYLOAD) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "lullctl: {} is not a valid {} report: {e}",
                args.file.display(),
                args.kind
            );
            return Ok(EXIT_INVALID);
        }
    };
    let publisher = ReportPublisher::new(ctx.client.clone(), ctx.subjects.clone())
        .with_ack_timeout(ctx.timeout);
    let p = publisher.publish(&prepared).await?;
    if ctx.json {
        json(&p)?;
    } else {
        println!(
            "published {} {} to {} (stream {} seq {}{})",
            p.kind,
            p.id,
            p.subject,
            p.stream,
            p.sequence,
            if p.duplicate {
                ", duplicate: already stored"
            } else {
                ""
            }
        );
    }
    Ok(0)
}
