//! Stats ingest: subscribes to `lull.stats.*`, validates each snapshot
//! (size, JSON, rules, subject host = payload host, `collected_at` within
//! `ingest.stats_clock_skew_sec` of the coordinator's clock) and hands it to
//! the fleet actor. Every message is counted in
//! `lull_stats_messages_total{result}`: rejections and `dropped` (the
//! actor's queue is full) here, `accepted` and `out_of_order` by the actor
//! once it has applied or ignored the snapshot. A rejection is also logged
//! as a warning naming the host, the subject and the reason, within
//! `ingest.stats_rejection_logs_per_min` lines a minute, so that whoever
//! runs the sender can find out why it is ignored.

use futures::StreamExt;
use lull_common::runtime::now_unix;
use lull_proto::msg::stats::SystemStatsSnapshot;
use lull_proto::validate::{CheckTimes, TimeWindow};
use lull_proto::{decode, Subjects};
use tokio_util::sync::CancellationToken;

use super::conflicts::ConflictLog;
use super::rejected::Rejected;
use super::Rejection;
use crate::fleet::FleetHandle;
use lull_proto::msg::hosts::RejectedSenders;

/// Checks one message: the subject names a host, the payload is a valid
/// snapshot collected within `window` around `now`, and both name the
/// same host.
pub fn classify(
    subjects: &Subjects,
    subject: &str,
    payload: &[u8],
    max_payload: usize,
    now: f64,
    window: &TimeWindow,
) -> Result<SystemStatsSnapshot, Rejection> {
    let host = subjects
        .host_of_stats(subject)
        .ok_or_else(|| Rejection::BadSubject(subject.to_string()))?;
    let snap: SystemStatsSnapshot = decode(payload, max_payload)?;
    if snap.host_id != host {
        return Err(Rejection::HostMismatch {
            subject: host.to_string(),
            payload: snap.host_id,
        });
    }
    snap.check_times(now, window)?;
    Ok(snap)
}

/// The checks and budgets of stats ingest.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted snapshot, bytes.
    pub max_payload: usize,
    /// The window a snapshot's `collected_at` must fall in.
    pub window: TimeWindow,
    /// Most rejection warnings a minute.
    pub rejection_logs_per_min: u32,
}

/// Runs until `shutdown`: every accepted snapshot goes to the fleet actor;
/// the senders of rejected ones are published on `rejected_view`.
pub async fn run(
    client: async_nats::Client,
    subjects: Subjects,
    fleet: FleetHandle,
    limits: Limits,
    rejected_view: tokio::sync::watch::Sender<RejectedSenders>,
    shutdown: CancellationToken,
) -> Result<(), async_nats::SubscribeError> {
    let Limits {
        max_payload,
        window,
        rejection_logs_per_min,
    } = limits;
    let mut sub = client.subscribe(subjects.stats_all()).await?;
    let mut budget = ConflictLog::new(rejection_logs_per_min);
    let mut rejected = Rejected::default();
    let mut dirty = false;
    let mut publish = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        let msg = tokio::select! {
            m = sub.next() => match m { Some(m) => m, None => break },
            _ = publish.tick(), if dirty => {
                dirty = false;
                rejected_view.send_replace(rejected.list(now_unix()));
                continue;
            }
            _ = shutdown.cancelled() => break,
        };
        let now = now_unix();
        let result = match classify(
            &subjects,
            msg.subject.as_str(),
            &msg.payload,
            max_payload,
            now,
            &window,
        ) {
            Ok(snap) => {
                let lag = now - snap.collected_at;
                metrics::histogram!(super::metrics::STATS_INGEST_LAG.name).record(lag.max(0.0));
                if fleet.snapshot(snap, now) {
                    // Counted by the fleet actor (accepted or out_of_order).
                    continue;
                }
                "dropped"
            }
            Err(rejection) => {
                let host = subjects.host_of_stats(msg.subject.as_str()).unwrap_or("?");
                rejected.record(
                    host,
                    msg.subject.as_str(),
                    rejection.label(),
                    &rejection.to_string(),
                    now,
                );
                dirty = true;
                if let Some(unlogged) = budget.admit(std::time::Instant::now()) {
                    tracing::warn!(
                        host,
                        subject = %msg.subject,
                        result = rejection.label(),
                        reason = %rejection,
                        unlogged_before = unlogged,
                        "stats snapshot rejected: this sender's snapshots are dropped until it is fixed"
                    );
                }
                rejection.label()
            }
        };
        metrics::counter!(super::metrics::STATS_MESSAGES.name, "result" => result).increment(1);
    }
    let _ = sub.unsubscribe().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_proto::msg::stats::example_snapshot;

    const W: TimeWindow = TimeWindow {
        future_skew_sec: 300.0,
        max_age_sec: Some(300.0),
    };

    fn classify(
        s: &Subjects,
        subject: &str,
        payload: &[u8],
        max: usize,
    ) -> Result<SystemStatsSnapshot, Rejection> {
        super::classify(s, subject, payload, max, 100.0, &W)
    }

    #[test]
    fn rejects_a_snapshot_outside_the_clock_window() {
        let s = Subjects::default();
        for t in [1e11, 100.0 + 301.0] {
            let snap = example_snapshot("web-1", u64::MAX, t);
            let r = classify(&s, "lull.stats.web-1", &bytes(&snap), 1 << 16).unwrap_err();
            assert_eq!(r.label(), "invalid");
            assert!(r.to_string().contains("collected_at"), "{r}");
        }
        let snap = example_snapshot("web-1", 1, 0.0);
        assert!(classify(&s, "lull.stats.web-1", &bytes(&snap), 1 << 16).is_ok());
        let snap = example_snapshot("web-1", 1, 100.0 + 299.0);
        assert!(classify(&s, "lull.stats.web-1", &bytes(&snap), 1 << 16).is_ok());
    }

    fn bytes(s: &SystemStatsSnapshot) -> Vec<u8> {
        serde_json::to_vec(s).unwrap()
    }

    #[test]
    fn accepts_a_matching_snapshot() {
        let s = Subjects::default();
        let snap = example_snapshot("web-1", 1, 100.0);
        assert!(classify(&s, "lull.stats.web-1", &bytes(&snap), 1 << 16).is_ok());
    }

    #[test]
    fn rejects_each_kind_of_bad_input() {
        let s = Subjects::default();
        let snap = example_snapshot("web-1", 1, 100.0);
        let r = classify(&s, "lull.stats.web-2", &bytes(&snap), 1 << 16).unwrap_err();
        assert_eq!(r.label(), "host_mismatch");
        let r = classify(&s, "lull.stats.web-1", b"{oops", 1 << 16).unwrap_err();
        assert_eq!(r.label(), "bad_json");
        let r = classify(&s, "lull.stats.web-1", &bytes(&snap), 10).unwrap_err();
        assert_eq!(r.label(), "too_large");
        let mut bad = snap.clone();
        bad.host.mem_used_pct = 250.0;
        let r = classify(&s, "lull.stats.web-1", &bytes(&bad), 1 << 16).unwrap_err();
        assert_eq!(r.label(), "invalid");
        let r = classify(&s, "lull.other.web-1", &bytes(&snap), 1 << 16).unwrap_err();
        assert_eq!(r.label(), "bad_subject");
    }
}
