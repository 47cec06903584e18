//! Trends of a worker's recent runs: the direction of a series over its
//! last `k` values ([`trend`]), and the duration and data-volume trends.

use lull_proto::msg::worker::{DurationTrend, VolumeTrend};

use super::aggregate::{mean, RunSample};
use super::config::WorkerConfig;

/// Rounds to three decimals.
pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Direction of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The recent mean is above the earlier one by more than the tolerance.
    Up,
    /// The recent mean is below the earlier one by more than the tolerance.
    Down,
    /// Within the tolerance.
    Flat,
}

/// A trend reading with its evidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendReading {
    /// The direction.
    pub direction: Direction,
    /// Mean of the `k` values before the latest `k`.
    pub earlier_mean: f64,
    /// Mean of the latest `k` values.
    pub recent_mean: f64,
}

/// Compares the mean of the last `k` values with the mean of the `k` before
/// them; a relative change beyond `tolerance` is a direction. `None` with
/// fewer than `2k` values.
pub fn trend(values: &[f64], k: usize, tolerance: f64) -> Option<TrendReading> {
    if k == 0 || values.len() < 2 * k {
        return None;
    }
    let n = values.len();
    let recent = mean(&values[n - k..])?;
    let earlier = mean(&values[n - 2 * k..n - k])?;
    let direction = if earlier <= 0.0 {
        if recent > 0.0 {
            Direction::Up
        } else {
            Direction::Flat
        }
    } else {
        let rel = (recent - earlier) / earlier;
        if rel > tolerance {
            Direction::Up
        } else if rel < -tolerance {
            Direction::Down
        } else {
            Direction::Flat
        }
    };
    Some(TrendReading {
        direction,
        earlier_mean: earlier,
        recent_mean: recent,
    })
}

/// Run-time direction of a duration series (oldest first).
pub fn duration_trend(durations: &[f64], cfg: &WorkerConfig) -> Option<DurationTrend> {
    trend(
        durations,
        cfg.learning.trend_window,
        cfg.learning.trend_tolerance,
    )
    .map(|t| match t.direction {
        Direction::Up => DurationTrend::Slower,
        Direction::Down => DurationTrend::Faster,
        Direction::Flat => DurationTrend::Stable,
    })
}

/// Volume direction of a records series (oldest first).
pub fn volume_trend(volumes: &[f64], cfg: &WorkerConfig) -> Option<VolumeTrend> {
    trend(
        volumes,
        cfg.learning.trend_window,
        cfg.learning.trend_tolerance,
    )
    .map(|t| match t.direction {
        Direction::Up => VolumeTrend::Increasing,
        Direction::Down => VolumeTrend::Decreasing,
        Direction::Flat => VolumeTrend::Stable,
    })
}

/// Durations of the runs that did work, oldest first.
pub fn work_durations(samples: &[RunSample]) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.outcome.did_work())
        .map(|s| s.duration_ms)
        .collect()
}

/// Volumes of the runs that did work and reported one, oldest first.
pub fn work_volumes(samples: &[RunSample]) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.outcome.did_work())
        .filter_map(|s| s.records.map(|r| r as f64))
        .collect()
}
