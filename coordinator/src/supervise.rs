//! Owning tasks must not end on their own. A coordinator whose fleet actor
//! or scheduler died would otherwise stay half alive: answering `$SRV.PING`,
//! perhaps granting leases on stale views. The [`Supervisor`] watches every
//! owning task; one that ends before the shutdown began is logged, counted,
//! and ends the process with an error (exit code non-zero), so its
//! supervisor restarts it and a standby takes over meanwhile.

use std::sync::{Arc, Mutex};

use lull_common::metric::Metric;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Counter `{task}`: owning tasks that ended unexpectedly.
pub(crate) static TASK_DEATHS: Metric = Metric::counter(
    "lull_coordinator_task_deaths_total",
    "Owning tasks of the coordinator that ended before shutdown (the process then exits non-zero), by task.",
);

/// Every metric of the supervisor.
pub(crate) static METRICS: &[&Metric] = &[&TASK_DEATHS];

/// Watches owning tasks.
#[derive(Debug, Clone)]
pub struct Supervisor {
    stopping: CancellationToken,
    fatal: CancellationToken,
    dead: Arc<Mutex<Vec<&'static str>>>,
}

impl Supervisor {
    /// A supervisor; tasks that end after `stopping` is cancelled are fine.
    pub fn new(stopping: CancellationToken) -> Self {
        Supervisor {
            stopping,
            fatal: CancellationToken::new(),
            dead: Arc::default(),
        }
    }

    /// Watches `task`: the returned handle ends with it.
    ///
    /// Fault injection for tests: with `LULL_FAULT_END_TASK=<name>` in the
    /// environment the named task is aborted a second after start.
    pub fn watch<T: Send + 'static>(
        &self,
        name: &'static str,
        task: JoinHandle<T>,
    ) -> JoinHandle<()> {
        if std::env::var("LULL_FAULT_END_TASK").is_ok_and(|v| v == name) {
            let abort = task.abort_handle();
            tracing::warn!(
                task = name,
                "fault injection: this task will be aborted in 1 s"
            );
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                abort.abort();
            });
        }
        let me = self.clone();
        tokio::spawn(async move {
            let how = match task.await {
                Ok(_) => "returned",
                Err(e) if e.is_panic() => "panicked",
                Err(_) => "was cancelled",
            };
            if !me.stopping.is_cancelled() {
                tracing::error!(
                    task = name,
                    how,
                    "an owning task ended unexpectedly; stopping"
                );
                metrics::counter!(TASK_DEATHS.name, "task" => name).increment(1);
                if let Ok(mut d) = me.dead.lock() {
                    d.push(name);
                }
                me.fatal.cancel();
            }
        })
    }

    /// Cancelled once a watched task died.
    pub fn fatal(&self) -> CancellationToken {
        self.fatal.clone()
    }

    /// The tasks that died.
    pub fn dead(&self) -> Vec<&'static str> {
        self.dead.lock().map(|d| d.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With `panic = "unwind"` (the release profile since the agent catches
    /// collector panics) a panicked owning task is still fatal.
    #[tokio::test]
    async fn a_panicked_owning_task_is_fatal() {
        let sup = Supervisor::new(CancellationToken::new());
        let task = tokio::spawn(async {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            panic!("owning task bug");
        });
        sup.watch("fleet", task).await.unwrap();
        assert!(sup.fatal().is_cancelled());
        assert_eq!(sup.dead(), vec!["fleet"]);
    }

    #[tokio::test]
    async fn a_task_ending_after_the_shutdown_began_is_fine() {
        let stopping = CancellationToken::new();
        let sup = Supervisor::new(stopping.clone());
        stopping.cancel();
        sup.watch("fleet", tokio::spawn(async {})).await.unwrap();
        assert!(!sup.fatal().is_cancelled());
        assert!(sup.dead().is_empty());
    }
}
