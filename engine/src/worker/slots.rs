//! The best and busiest time slots (hours of day, days of week) of a
//! worker, from its per-slot statistics.

use super::aggregate::{SlotStats, WorkerAggregate};
use super::config::WorkerConfig;

/// The best slot (hour or day): highest mean score among slots with at
/// least `min_runs` runs; ties go to the higher success rate, then the
/// shorter mean duration, then the earlier slot.
pub fn best_slot(slots: &[SlotStats], min_runs: u64) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, s) in slots.iter().enumerate() {
        if s.executions < min_runs.max(1) {
            continue;
        }
        let better = match best {
            None => true,
            Some(b) => {
                let o = &slots[b];
                let key = |x: &SlotStats| {
                    (
                        x.avg_score().unwrap_or(0.0),
                        x.success_rate(),
                        -x.avg_duration_ms().unwrap_or(0.0),
                    )
                };
                let (a1, a2, a3) = key(s);
                let (b1, b2, b3) = key(o);
                a1.total_cmp(&b1)
                    .then(a2.total_cmp(&b2))
                    .then(a3.total_cmp(&b3))
                    .is_gt()
            }
        };
        if better {
            best = Some(i);
        }
    }
    best
}

/// The slot with the most runs (ties to the earlier), `None` without runs.
pub fn busiest_slot(slots: &[SlotStats]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, s) in slots.iter().enumerate() {
        if s.executions > 0 && best.is_none_or(|b| s.executions > slots[b].executions) {
            best = Some(i);
        }
    }
    best
}

/// Best UTC hour of the worker.
pub fn best_hour(agg: &WorkerAggregate, cfg: &WorkerConfig) -> Option<u8> {
    best_slot(&agg.by_hour, cfg.learning.min_bucket_runs).map(|h| h as u8)
}

/// Best UTC day of week of the worker (0 = Monday).
pub fn best_day(agg: &WorkerAggregate, cfg: &WorkerConfig) -> Option<u8> {
    best_slot(&agg.by_day, cfg.learning.min_bucket_runs).map(|d| d as u8)
}
