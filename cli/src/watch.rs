//! `--watch [SECS]`: run a listing again and again (like `watch` or
//! `kubectl get -w`), redrawing the screen each time, until Ctrl-C. A
//! failed round prints its error and the next round tries again; with
//! `-o json` each round prints one document.

use std::future::Future;
use std::time::Duration;

use clap::Args;

use crate::output::{human_duration, local};

/// The `--watch` flag.
#[derive(Debug, Clone, Copy, Args)]
pub struct WatchArg {
    /// Repeat every SECS seconds (default 2) until Ctrl-C.
    #[arg(
        short = 'w',
        long,
        value_name = "SECS",
        num_args = 0..=1,
        default_missing_value = "2"
    )]
    pub watch: Option<f64>,
}

/// Shortest interval accepted.
const MIN_INTERVAL_SEC: f64 = 0.2;

/// Runs `round` once, or with `--watch` every interval until Ctrl-C
/// (exit 0). `clear` redraws the screen before each round (tables).
pub async fn repeat<F, Fut>(w: WatchArg, clear: bool, mut round: F) -> anyhow::Result<i32>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<i32>>,
{
    let Some(every) = w.watch else {
        return round().await;
    };
    if !every.is_finite() || every < MIN_INTERVAL_SEC {
        anyhow::bail!("--watch must be at least {MIN_INTERVAL_SEC} s, got {every}");
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(every));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => return Ok(0),
        }
        if clear {
            print!("\x1b[2J\x1b[H");
            println!(
                "every {}  {}\n",
                human_duration(every),
                local(lull_common::runtime::now_unix())
            );
        }
        if let Err(e) = round().await {
            println!("lullctl: error: {e:#}");
        }
    }
}
