//! Polling helpers for conditions that become true eventually.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{HarnessError, Result};

/// Interval between two evaluations of a polled condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Evaluates `cond` every [`POLL_INTERVAL`] until it returns `true`, or fails
/// with [`HarnessError::Timeout`] once `timeout` has elapsed. The condition is
/// always evaluated at least once, and once more at the deadline.
pub async fn wait_until<F, Fut>(timeout: Duration, mut cond: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(timeout, || {
        let fut = cond();
        async move { fut.await.then_some(()) }
    })
    .await
}

/// Evaluates `probe` every [`POLL_INTERVAL`] until it returns `Some(value)`,
/// and returns that value; fails with [`HarnessError::Timeout`] once `timeout`
/// has elapsed.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last_chance = Instant::now() >= deadline;
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if last_chance {
            return Err(HarnessError::Timeout {
                what: "condition".into(),
                after: timeout,
            });
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(POLL_INTERVAL.min(left)).await;
    }
}
