//! Where a snapshot stands against the host's latest one: next in its
//! sequence (with a gap or not), the first of a new sequence (the agent or
//! the host restarted), or an old one delivered late. Pure, and safe
//! against any `seq` (no arithmetic can overflow).

use lull_proto::msg::stats::SystemStatsSnapshot;

/// A boot time that moved by more than this many seconds is another boot.
pub(super) const BOOT_TOLERANCE_SEC: f64 = 2.0;

/// A sequence that goes back to at most this value, from well above it,
/// was restarted (the agent counts from 1 again).
pub(super) const RESTART_SEQ_MAX: u64 = 16;

/// How a snapshot relates to the host's latest one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    /// Applied; `gap` snapshots are missing in between.
    Next {
        /// Sequence numbers skipped.
        gap: u64,
    },
    /// Applied: the agent or the host restarted, a new sequence begins
    /// (no gap is counted).
    Restart,
    /// Ignored: an older snapshot delivered after a newer one.
    Late,
}

/// Places `snap` after `last`, the host's latest snapshot.
pub(super) fn place(last: &SystemStatsSnapshot, snap: &SystemStatsSnapshot) -> Order {
    if snap.seq > last.seq {
        // snap.seq > last.seq, so the difference is at least 1.
        return Order::Next {
            gap: snap.seq - last.seq - 1,
        };
    }
    if snap.seq == last.seq {
        return Order::Next { gap: 0 };
    }
    let rebooted = (snap.host.boot_time - last.host.boot_time).abs() > BOOT_TOLERANCE_SEC;
    let recounted =
        snap.seq <= RESTART_SEQ_MAX && last.seq > snap.seq.saturating_add(RESTART_SEQ_MAX);
    if rebooted || recounted {
        return Order::Restart;
    }
    if snap.collected_at < last.collected_at {
        Order::Late
    } else {
        // The sequence went back but the clock did not: a new sequence.
        Order::Restart
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_proto::msg::stats::example_snapshot;

    fn snap(seq: u64, at: f64, boot: f64) -> SystemStatsSnapshot {
        let mut s = example_snapshot("h", seq, at);
        s.host.boot_time = boot;
        s
    }

    #[test]
    fn next_gap_and_late() {
        let last = snap(5, 100.0, 10.0);
        assert_eq!(place(&last, &snap(6, 102.0, 10.0)), Order::Next { gap: 0 });
        assert_eq!(place(&last, &snap(9, 108.0, 10.0)), Order::Next { gap: 3 });
        assert_eq!(place(&last, &snap(5, 100.0, 10.0)), Order::Next { gap: 0 });
        assert_eq!(place(&last, &snap(4, 98.0, 10.5)), Order::Late);
    }

    #[test]
    fn extreme_sequence_numbers_do_not_overflow() {
        let last = snap(u64::MAX, 100.0, 10.0);
        assert_eq!(place(&last, &snap(2, 102.0, 10.0)), Order::Restart);
        assert_eq!(
            place(&last, &snap(u64::MAX, 102.0, 10.0)),
            Order::Next { gap: 0 }
        );
        let first = snap(0, 100.0, 10.0);
        assert_eq!(
            place(&first, &snap(u64::MAX, 102.0, 10.0)),
            Order::Next { gap: u64::MAX - 1 }
        );
        // Late, not a restart: the low value is no jump back.
        assert_eq!(
            place(&snap(3, 100.0, 10.0), &snap(1, 98.0, 10.0)),
            Order::Late
        );
    }

    #[test]
    fn a_restart_starts_a_new_sequence() {
        // The host rebooted, with its clock set back.
        let last = snap(5000, 100.0, 10.0);
        assert_eq!(place(&last, &snap(4000, 50.0, 40.0)), Order::Restart);
        // The agent restarted and counts from 1 (same boot).
        assert_eq!(place(&last, &snap(1, 90.0, 10.0)), Order::Restart);
        // A forged huge seq with a later clock: genuine snapshots that follow
        // in time are applied.
        let forged = snap(u64::MAX - 5, 100.0, 10.0);
        assert_eq!(place(&forged, &snap(5001, 101.0, 10.0)), Order::Restart);
    }
}
