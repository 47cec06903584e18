//! Work that only the leader does: [`while_leading`] runs a body for each
//! leadership of this instance and cancels it the moment that leadership
//! ends (deadline passed, lost, or resigned).

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Leadership;

/// Runs `body(epoch, lost)` each time this instance becomes leader; `lost`
/// is cancelled when that leadership ends or `stop` is cancelled. A body
/// that fails is logged and started again at the next leadership (or after
/// a second while still leading). Returns once `stop` is cancelled.
pub async fn while_leading<F, Fut>(leadership: Leadership, stop: CancellationToken, mut body: F)
where
    F: FnMut(u64, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut role = leadership.watch();
    loop {
        let epoch = loop {
            if let Some(e) = leadership.epoch_now() {
                break e;
            }
            tokio::select! {
                r = role.changed() => if r.is_err() { return },
                _ = stop.cancelled() => return,
            }
        };
        let lost = stop.child_token();
        let watcher = {
            let (lost, leadership) = (lost.clone(), leadership.clone());
            let mut role = leadership.watch();
            tokio::spawn(async move {
                loop {
                    if leadership.epoch_now() != Some(epoch) {
                        lost.cancel();
                        return;
                    }
                    // The deadline passes without a role change when the
                    // renewal hangs: look again at least every 100 ms.
                    tokio::select! {
                        r = role.changed() => if r.is_err() { lost.cancel(); return },
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = lost.cancelled() => return,
                    }
                }
            })
        };
        if let Err(e) = body(epoch, lost.clone()).await {
            tracing::error!(error = format!("{e:#}"), epoch, "a leader duty failed");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = lost.cancelled() => {}
            }
        }
        lost.cancel();
        let _ = watcher.await;
        if stop.is_cancelled() {
            return;
        }
    }
}
