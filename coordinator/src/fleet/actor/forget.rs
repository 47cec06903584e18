//! The fleet's side of `hosts.forget`: refused while the host reports;
//! otherwise the lease book is asked (it refuses while the host holds
//! leases), then the host is dropped from memory.

use tokio::sync::oneshot;

use super::Fleet;
use crate::fleet::ForgetStep;
use crate::handoff::{Forget, Views};

impl Fleet {
    /// `hosts.forget`, first step: refuse while the host reports, else ask
    /// the lease book to let it go.
    pub(super) fn forget(&mut self, host: String, now: f64) -> ForgetStep {
        if let Some(e) = self.hosts.get(&host) {
            if !e.tracker.is_stale(now) {
                return ForgetStep::Refused(format!(
                    "host {host} still reports (last snapshot {:.0} s ago)",
                    (now - e.last_seen).max(0.0)
                ));
            }
        }
        let Some(tx) = self.views.clone() else {
            return ForgetStep::Asked(None);
        };
        let (reply, rx) = oneshot::channel();
        let update = Views {
            views: Vec::new(),
            removed: Vec::new(),
            applied: None,
            forget: Some(Forget {
                host_id: host,
                reply,
            }),
        };
        tokio::spawn(async move {
            let _ = tx.send(update).await;
        });
        ForgetStep::Asked(Some(rx))
    }

    /// `hosts.forget`, last step: drops the host, unless it reported again
    /// since the first step (then its view goes back to the book); `true`
    /// when it was in memory.
    pub(super) fn drop_host(&mut self, host: &str, now: f64) -> Result<bool, String> {
        if let Some(e) = self.hosts.get(host) {
            if !e.tracker.is_stale(now) {
                self.changed.insert(host.to_string());
                return Err(format!("host {host} reported again"));
            }
        }
        let Some(e) = self.hosts.remove(host) else {
            return Ok(false);
        };
        self.roster.released(host, &e);
        self.changed.remove(host);
        tracing::info!(host, "host forgotten by the operator");
        Ok(true)
    }
}
