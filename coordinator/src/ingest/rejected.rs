//! The senders whose stats snapshots are being rejected, so that an
//! operator can find them (`lull.v1.hosts.rejected`, `lullctl hosts`): one
//! row per host named in the subject, at most `MAX_SENDERS`, forgotten
//! `WINDOW_SEC` after their last rejection. Owned by the stats ingest task;
//! pure, with the clock passed in.

use std::collections::HashMap;

use lull_proto::msg::hosts::{RejectedSender, RejectedSenders};

/// Most senders remembered (the oldest is forgotten first).
pub const MAX_SENDERS: usize = 1000;
/// How long a sender is listed after its last rejection, seconds.
pub const WINDOW_SEC: f64 = 600.0;

/// The table.
#[derive(Debug, Default)]
pub struct Rejected {
    rows: HashMap<String, RejectedSender>,
}

impl Rejected {
    /// Records one rejected snapshot at `now`.
    pub fn record(&mut self, host: &str, subject: &str, result: &str, reason: &str, now: f64) {
        if let Some(r) = self.rows.get_mut(host) {
            r.subject = subject.to_string();
            r.result = result.to_string();
            r.reason = reason.to_string();
            r.count += 1;
            r.last_at = now;
            return;
        }
        if self.rows.len() >= MAX_SENDERS {
            self.forget_older_than(now - WINDOW_SEC);
        }
        if self.rows.len() >= MAX_SENDERS {
            let oldest = self
                .rows
                .values()
                .min_by(|a, b| a.last_at.total_cmp(&b.last_at))
                .map(|r| r.host_id.clone());
            if let Some(h) = oldest {
                self.rows.remove(&h);
            }
        }
        self.rows.insert(
            host.to_string(),
            RejectedSender {
                host_id: host.to_string(),
                subject: subject.to_string(),
                result: result.to_string(),
                reason: reason.to_string(),
                count: 1,
                last_at: now,
            },
        );
    }

    fn forget_older_than(&mut self, t: f64) {
        self.rows.retain(|_, r| r.last_at >= t);
    }

    /// The senders rejected in the window before `now`, most recent first.
    pub fn list(&mut self, now: f64) -> RejectedSenders {
        self.forget_older_than(now - WINDOW_SEC);
        let mut senders: Vec<RejectedSender> = self.rows.values().cloned().collect();
        senders.sort_by(|a, b| b.last_at.total_cmp(&a.last_at));
        RejectedSenders {
            window_sec: WINDOW_SEC,
            senders,
        }
    }
}

/// The table as the endpoint sees it: refreshed by the stats task at most
/// once a second.
pub type RejectedView = tokio::sync::watch::Receiver<RejectedSenders>;

/// `lull.v1.hosts.rejected`, answered by every instance (each reads all
/// stats): the senders rejected in the last window.
pub fn endpoints(
    view: RejectedView,
    max_payload: usize,
) -> Vec<(&'static str, crate::service::Handler)> {
    let h = crate::service::typed(max_payload, move |_: crate::service::Empty| {
        let mut list = view.borrow().clone();
        async move {
            let since = lull_common::runtime::now_unix() - list.window_sec;
            list.senders.retain(|s| s.last_at >= since);
            Ok::<_, lull_proto::error::ErrorReply>(list)
        }
    });
    vec![(lull_proto::subjects::endpoints::HOSTS_REJECTED, h)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_host_and_forgets_after_the_window() {
        let mut r = Rejected::default();
        r.record(
            "a",
            "lull.stats.a",
            "invalid",
            "cpu_pct out of range",
            100.0,
        );
        r.record("a", "lull.stats.a", "bad_json", "expected value", 101.0);
        r.record(
            "b",
            "lull.stats.b",
            "host_mismatch",
            "payload names c",
            102.0,
        );
        let l = r.list(103.0);
        assert_eq!(l.senders.len(), 2);
        assert_eq!(l.senders[0].host_id, "b");
        assert_eq!(l.senders[1].count, 2);
        assert_eq!(l.senders[1].result, "bad_json");
        assert!(r.list(101.0 + WINDOW_SEC + 1.0).senders.len() == 1);
        assert!(r.list(102.0 + WINDOW_SEC + 1.0).senders.is_empty());
    }

    #[test]
    fn stays_bounded() {
        let mut r = Rejected::default();
        for i in 0..(MAX_SENDERS + 50) {
            r.record(&format!("h{i}"), "s", "invalid", "x", i as f64 * 0.1);
        }
        let l = r.list((MAX_SENDERS + 50) as f64 * 0.1);
        assert_eq!(l.senders.len(), MAX_SENDERS);
        assert!(l.senders.iter().all(|s| s.host_id != "h0"));
    }
}
