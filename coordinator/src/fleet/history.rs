//! What the fleet keeps for the history writer: every host's quiet samples
//! and group snapshots on their cadence, closed quiet streaks, bounded by
//! `max_pending_rows` (drops are counted), and the batch they leave in.

use std::collections::HashMap;

use super::host::HostEntry;
use super::metrics as m;
use crate::store::history::write::{
    split_chunk, HistoryBatch, QuietChunk, QuietPoint, SnapshotSample, StreakRow,
};
use crate::store::history::HistoryStore;
use lull_engine::quiet::streaks::{ClosedStreak, QuietSample};

/// Rows waiting for the history writer (besides each host's `qbuf`).
#[derive(Default)]
pub(super) struct Pending {
    snaps: Vec<SnapshotSample>,
    streaks: Vec<StreakRow>,
    /// Quiet samples of hosts forgotten before their next flush.
    orphans: Vec<QuietChunk>,
    /// All pending rows, `qbuf`s included.
    pub(super) rows: usize,
}

impl Pending {
    /// Room for one more row under `max`; counts a drop otherwise.
    fn room(&mut self, max: usize, kind: &'static str) -> bool {
        if self.rows >= max {
            metrics::counter!(m::HISTORY_DROPPED.name, "kind" => kind).increment(1);
            return false;
        }
        self.rows += 1;
        true
    }

    /// Keeps a closed streak of `host`, room permitting.
    pub(super) fn streak(&mut self, max: usize, host: &str, streak: ClosedStreak) {
        if self.room(max, "streak") {
            self.streaks.push(StreakRow {
                host_id: host.to_string(),
                streak,
            });
        }
    }

    /// Keeps the unwritten quiet samples of a host being forgotten (they
    /// are counted in `rows` already).
    pub(super) fn orphan(&mut self, host: &str, samples: Vec<QuietPoint>) {
        if !samples.is_empty() {
            self.orphans.push(QuietChunk {
                host_id: host.to_string(),
                samples,
            });
        }
    }

    /// Everything pending, the hosts' quiet samples cut into chunks of at
    /// most `max_span` seconds, as one batch; the buffers are left empty.
    pub(super) fn take_batch(
        &mut self,
        hosts: &mut HashMap<String, HostEntry>,
        max_span: f64,
        now: f64,
    ) -> HistoryBatch {
        let mut quiet = Vec::new();
        for c in std::mem::take(&mut self.orphans) {
            quiet.extend(split_chunk(c, max_span));
        }
        for (id, e) in hosts {
            if !e.qbuf.is_empty() {
                let samples = std::mem::take(&mut e.qbuf);
                quiet.extend(split_chunk(
                    QuietChunk {
                        host_id: id.clone(),
                        samples,
                    },
                    max_span,
                ));
            }
        }
        self.rows = 0;
        HistoryBatch {
            created_at: now,
            quiet,
            snapshots: std::mem::take(&mut self.snaps),
            streaks: std::mem::take(&mut self.streaks),
        }
    }
}

/// Feeds the host's latest assessed snapshot (received at `at`) to its
/// streak builder, and keeps a quiet sample and a copy of the snapshot for
/// the history when their cadence slot is new.
pub(super) fn sample(
    e: &mut HostEntry,
    pending: &mut Pending,
    history: Option<&HistoryStore>,
    at: f64,
) {
    let closed = e.streaks.push(QuietSample {
        time: at,
        score: e.quiet.quiet_score,
        state: e.quiet.state,
    });
    let Some(store) = history else {
        return;
    };
    let cfg = &store.cfg;
    let max = cfg.max_pending_rows;
    if let Some(s) = closed {
        pending.streak(max, &e.snapshot.host_id, s);
    }
    let slot = (at / cfg.quiet_every_sec).floor() as i64;
    if slot != e.quiet_slot && pending.room(max, "quiet") {
        e.quiet_slot = slot;
        e.qbuf.push(QuietPoint {
            t: at,
            score: e.quiet.quiet_score as f32,
            state: e.quiet.state,
        });
    }
    let slot = (at / cfg.groups_every_sec).floor() as i64;
    if slot != e.group_slot && pending.room(max, "snapshot") {
        e.group_slot = slot;
        pending.snaps.push(SnapshotSample {
            t: at,
            snapshot: (*e.snapshot).clone(),
        });
    }
}
