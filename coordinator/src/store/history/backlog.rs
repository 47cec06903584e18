//! History the writer has not written yet: batches cut in [`Piece`]s of one
//! INSERT each, and the retry backlog of pieces whose write failed
//! (Postgres down or failing): the
//! pieces of batches, in the order they were handed over, bounded by age
//! (`history.retry_max_age_sec`) and by size (`history.retry_max_bytes`).
//! The writer retries the oldest first and keeps everything behind it
//! waiting, so rows reach the tables in order once Postgres is back. What
//! the bounds push out is counted in `lull_history_lost_rows_total`.

use std::collections::VecDeque;

use serde_json::Value;

use super::write::{groups_of, GroupRow, HistoryBatch, QuietChunk, StreakRow};
use super::{QUIET_SAMPLES, QUIET_STREAKS, STATS_SAMPLES};
use crate::store::metrics::{HISTORY_BACKLOG_BYTES, HISTORY_BACKLOG_ROWS, HISTORY_LOST_ROWS};

/// One INSERT's worth of rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// Quiet chunks.
    Quiet(Vec<QuietChunk>),
    /// Raw group snapshots.
    Groups(Vec<GroupRow>),
    /// Closed streaks.
    Streaks(Vec<StreakRow>),
}

impl Piece {
    /// The table it goes to.
    pub fn table(&self) -> &'static str {
        match self {
            Piece::Quiet(_) => QUIET_SAMPLES,
            Piece::Groups(_) => STATS_SAMPLES,
            Piece::Streaks(_) => QUIET_STREAKS,
        }
    }

    /// Rows it holds (quiet samples count one each).
    pub fn rows(&self) -> usize {
        match self {
            Piece::Quiet(c) => c.iter().map(|c| c.samples.len()).sum(),
            Piece::Groups(r) => r.len(),
            Piece::Streaks(s) => s.len(),
        }
    }

    /// Estimated memory held, bytes.
    pub fn bytes(&self) -> usize {
        const ROW: usize = 48;
        match self {
            Piece::Quiet(c) => c
                .iter()
                .map(|c| ROW + c.host_id.len() + 16 * c.samples.len())
                .sum(),
            Piece::Groups(r) => r
                .iter()
                .map(|(h, g, _, v)| ROW + h.len() + g.len() + value_bytes(v))
                .sum(),
            Piece::Streaks(s) => s.iter().map(|s| ROW + s.host_id.len() + 32).sum(),
        }
    }
}

/// Estimated size of a JSON value in memory, bytes.
fn value_bytes(v: &Value) -> usize {
    const NODE: usize = 32;
    match v {
        Value::String(s) => NODE + s.len(),
        Value::Array(a) => NODE + a.iter().map(value_bytes).sum::<usize>(),
        Value::Object(o) => {
            NODE + o
                .iter()
                .map(|(k, v)| NODE + k.len() + value_bytes(v))
                .sum::<usize>()
        }
        _ => NODE,
    }
}

/// The pieces of a batch, in order: quiet chunks, group snapshots, then
/// streaks, each piece one INSERT of at most `max` rows.
pub fn pieces(batch: HistoryBatch, max: usize) -> Vec<Piece> {
    let max = max.max(1);
    let mut out = Vec::new();
    let mut slice: Vec<QuietChunk> = Vec::new();
    let mut in_slice = 0usize;
    for c in batch.quiet {
        in_slice += c.samples.len();
        slice.push(c);
        if in_slice >= max {
            out.push(Piece::Quiet(std::mem::take(&mut slice)));
            in_slice = 0;
        }
    }
    if !slice.is_empty() {
        out.push(Piece::Quiet(slice));
    }
    let mut rows: Vec<GroupRow> = Vec::new();
    for s in batch.snapshots {
        for (g, v) in groups_of(&s.snapshot) {
            rows.push((s.snapshot.host_id.clone(), g, s.t, v));
        }
        if rows.len() >= max {
            out.push(Piece::Groups(std::mem::take(&mut rows)));
        }
    }
    if !rows.is_empty() {
        out.push(Piece::Groups(rows));
    }
    for chunk in batch.streaks.chunks(max) {
        out.push(Piece::Streaks(chunk.to_vec()));
    }
    out
}

struct Held {
    piece: Piece,
    /// When its batch was handed to the writer.
    since: f64,
    bytes: usize,
}

/// The bounded, ordered retry backlog.
pub struct Backlog {
    held: VecDeque<Held>,
    bytes: usize,
    max_bytes: usize,
    max_age_sec: f64,
}

impl Backlog {
    /// An empty backlog holding at most `max_bytes`, pieces at most
    /// `max_age_sec` old.
    pub fn new(max_bytes: usize, max_age_sec: f64) -> Self {
        Backlog {
            held: VecDeque::new(),
            bytes: 0,
            max_bytes,
            max_age_sec,
        }
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// When the oldest waiting piece was handed over.
    pub fn oldest(&self) -> Option<f64> {
        self.held.front().map(|h| h.since)
    }

    /// Puts a piece (of a batch handed over at `since`) at the back; the
    /// oldest pieces go when the bytes bound is passed.
    pub fn push(&mut self, piece: Piece, since: f64) {
        let bytes = piece.bytes();
        self.bytes += bytes;
        self.held.push_back(Held {
            piece,
            since,
            bytes,
        });
        while self.bytes > self.max_bytes {
            if !self.drop_front("too_many_bytes") {
                break;
            }
        }
        self.publish();
    }

    /// Gives up the pieces older than the age bound at `now`.
    pub fn expire(&mut self, now: f64) {
        while self
            .held
            .front()
            .is_some_and(|h| now - h.since > self.max_age_sec)
        {
            self.drop_front("too_old");
        }
        self.publish();
    }

    /// The oldest piece.
    pub fn front(&self) -> Option<&Piece> {
        self.held.front().map(|h| &h.piece)
    }

    /// Takes the oldest piece away (written).
    pub fn pop(&mut self) {
        if let Some(h) = self.held.pop_front() {
            self.bytes -= h.bytes;
        }
        self.publish();
    }

    /// Gives up the oldest piece for `reason`, counted; false when empty.
    pub fn drop_front(&mut self, reason: &'static str) -> bool {
        let Some(h) = self.held.pop_front() else {
            return false;
        };
        self.bytes -= h.bytes;
        let rows = h.piece.rows();
        metrics::counter!(HISTORY_LOST_ROWS.name, "table" => h.piece.table(), "reason" => reason)
            .increment(rows as u64);
        tracing::warn!(
            table = h.piece.table(),
            rows,
            reason,
            "history rows given up"
        );
        true
    }

    /// Lets go, uncounted, of the pieces handed over after `t` (another
    /// leader wrote those); returns the rows let go.
    pub fn keep_until(&mut self, t: f64) -> usize {
        let mut rows = 0;
        let mut bytes = 0;
        self.held.retain(|h| {
            let keep = h.since <= t;
            if !keep {
                rows += h.piece.rows();
                bytes += h.bytes;
            }
            keep
        });
        self.bytes -= bytes;
        self.publish();
        rows
    }

    /// Rows waiting.
    pub fn rows(&self) -> usize {
        self.held.iter().map(|h| h.piece.rows()).sum()
    }

    fn publish(&self) {
        metrics::gauge!(HISTORY_BACKLOG_BYTES.name).set(self.bytes as f64);
        metrics::gauge!(HISTORY_BACKLOG_ROWS.name).set(self.rows() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::super::write::QuietPoint;
    use super::*;
    use lull_proto::msg::hosts::QuietState;

    fn quiet(t: f64) -> Piece {
        Piece::Quiet(vec![QuietChunk {
            host_id: "h".into(),
            samples: vec![QuietPoint {
                t,
                score: 90.0,
                state: QuietState::Quiet,
            }],
        }])
    }

    fn times(b: &Backlog) -> Vec<f64> {
        b.held
            .iter()
            .map(|h| match &h.piece {
                Piece::Quiet(c) => c[0].samples[0].t,
                _ => -1.0,
            })
            .collect()
    }

    #[test]
    fn keeps_order_and_bounds_by_bytes_and_age() {
        let one = quiet(0.0).bytes();
        let mut b = Backlog::new(3 * one, 60.0);
        for t in 0..5 {
            b.push(quiet(f64::from(t)), f64::from(t) * 10.0);
        }
        // The two oldest went for the bytes bound; order is kept.
        assert_eq!(times(&b), vec![2.0, 3.0, 4.0]);
        assert_eq!(b.oldest(), Some(20.0));
        b.expire(85.0);
        assert_eq!(times(&b), vec![3.0, 4.0]);
        assert_eq!(b.front(), Some(&quiet(3.0)));
        b.pop();
        assert_eq!(b.rows(), 1);
        b.push(quiet(9.0), 100.0);
        assert_eq!(b.keep_until(90.0), 1);
        b.pop();
        assert!(b.is_empty());
        assert_eq!(b.bytes, 0);
        assert!(!b.drop_front("too_old"));
    }

    #[test]
    fn sizes_grow_with_content() {
        let small: GroupRow = ("h".into(), "host".into(), 1.0, serde_json::json!({"a": 1}));
        let big: GroupRow = (
            "h".into(),
            "host".into(),
            1.0,
            serde_json::json!({"a": "x".repeat(1000), "b": [1, 2, 3]}),
        );
        assert!(
            Piece::Groups(vec![big]).bytes() > Piece::Groups(vec![small.clone()]).bytes() + 1000
        );
        assert_eq!(Piece::Groups(vec![small]).table(), STATS_SAMPLES);
    }
}
