//! The forecast refresher: every `history.forecast_refresh_sec` it builds
//! every host's hour-of-week heatmap from the rollups (aggregated in the
//! database), predicts the next quiet window, and hands the start times to
//! the fleet actor, which puts them into the lease book's host views as
//! `next_quiet_at`. It also hands each host's usually-quiet hours of the
//! day to the workers' state, for schedule recommendations. Forecasts
//! change by the hour, so this runs on a timer, never per snapshot.

use std::time::Duration;

use lull_common::runtime::now_unix;
use tokio_util::sync::CancellationToken;

use super::FleetHandle;
use crate::executions::{QuietHours, WorkersHandle};
use crate::store::history::{read, HistoryStore};
use lull_engine::quiet::blocks::Blocks;
use lull_engine::quiet::forecast::{next_quiet_window_outside, quiet_hours_of_day, Heatmap};
use lull_engine::quiet::maintenance::LOOKAHEAD_SEC;

/// The next quiet window's start per host, outside its blocks and
/// maintenance windows (pure).
pub fn hints(
    maps: &[(String, Heatmap)],
    blocks: &Blocks,
    now: f64,
    threshold: f64,
) -> Vec<(String, Option<f64>)> {
    maps.iter()
        .map(|(h, m)| {
            let blocked = blocks.spans_of(h, now, now + LOOKAHEAD_SEC);
            (
                h.clone(),
                next_quiet_window_outside(m, now, threshold, &blocked).map(|w| w.start_time),
            )
        })
        .collect()
}

/// The usually-quiet UTC hours of each host that has any (pure).
pub fn quiet_hours(maps: &[(String, Heatmap)], threshold: f64) -> QuietHours {
    maps.iter()
        .map(|(h, m)| (h.clone(), quiet_hours_of_day(m, threshold)))
        .filter(|(_, hours)| !hours.is_empty())
        .collect()
}

/// One refresh at `now`.
pub async fn refresh(
    store: &HistoryStore,
    fleet: &FleetHandle,
    workers: Option<&WorkersHandle>,
    now: f64,
) -> anyhow::Result<usize> {
    let f = &store.quiet.forecast;
    let since = now - f64::from(f.lookback_days) * 86_400.0;
    let maps = read::heatmaps(store, since).await?;
    if let Some(w) = workers {
        w.set_quiet_hours(quiet_hours(&maps, f.threshold));
    }
    let blocks = fleet.blocks_now().await?;
    let hints = hints(&maps, &blocks, now, f.threshold);
    let n = hints.len();
    fleet.set_forecasts(hints).await?;
    Ok(n)
}

/// Runs [`refresh`] at start and then every `forecast_refresh_sec` until
/// `shutdown`; the workers handle is the current leadership's, if any.
pub async fn run(
    store: HistoryStore,
    fleet: FleetHandle,
    workers: tokio::sync::watch::Receiver<Option<WorkersHandle>>,
    shutdown: CancellationToken,
) {
    let period = Duration::from_secs_f64(store.cfg.forecast_refresh_sec.max(0.05));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => break,
        }
        // The workers' state lives with the leader (None on a standby).
        let w = workers.borrow().clone();
        match refresh(&store, &fleet, w.as_ref(), now_unix()).await {
            Ok(n) => tracing::debug!(hosts = n, "forecasts refreshed"),
            Err(e) => {
                metrics::counter!(crate::store::metrics::HISTORY_MAINTENANCE_ERRORS.name, "step" => "forecast")
                    .increment(1);
                tracing::warn!(error = %e, "refreshing forecasts failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Monday 2025-11-10 00:00:00 UTC.
    const MONDAY: f64 = 1_762_732_800.0;

    #[test]
    fn hints_give_the_next_window_start() {
        let mut quiet_at_3 = Heatmap::new(1);
        quiet_at_3.add(MONDAY + 3.0 * 3600.0, 95.0);
        let mut busy = Heatmap::new(1);
        busy.add(MONDAY + 3.0 * 3600.0, 20.0);
        let maps = [("a".into(), quiet_at_3), ("b".into(), busy)];
        let h = hints(&maps, &Blocks::default(), MONDAY + 600.0, 75.0);
        assert_eq!(h[0], ("a".to_string(), Some(MONDAY + 3.0 * 3600.0)));
        assert_eq!(h[1], ("b".to_string(), None));
        // A maintenance window over a's quiet hour leaves it no window.
        let mut blocks = Blocks::default();
        blocks.add_window(
            Some("a".into()),
            lull_engine::quiet::maintenance::Window {
                id: 1,
                reason: None,
                from: MONDAY + 2.0 * 3600.0,
                until: Some(MONDAY + 5.0 * 3600.0),
                weekly: None,
                created_at: MONDAY,
            },
        );
        let h = hints(&maps, &blocks, MONDAY + 600.0, 75.0);
        assert_eq!(h[0], ("a".to_string(), None));
    }
}
