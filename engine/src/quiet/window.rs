//! A rolling time-window average (used for `cpu_avg_2m`), fed one sample at
//! a time. Memory is bounded by a sample cap: at steady state no allocation
//! happens (the ring buffer reuses its capacity).

use std::collections::VecDeque;

/// The mean of the samples of the last `window_sec` seconds.
#[derive(Debug, Clone)]
pub struct TimeWindow {
    samples: VecDeque<(f64, f64)>,
    window_sec: f64,
    max_samples: usize,
}

impl TimeWindow {
    /// A window of `window_sec` seconds keeping at most `max_samples`
    /// samples (the oldest is dropped first when full; at least 1).
    pub fn new(window_sec: f64, max_samples: usize) -> Self {
        TimeWindow {
            samples: VecDeque::new(),
            window_sec,
            max_samples: max_samples.max(1),
        }
    }

    /// Adds `value` observed at `t` and drops samples older than
    /// `t − window_sec`. A time earlier than the newest sample is moved up
    /// to it (clocks do not run backwards inside the window). Non-finite
    /// values are ignored.
    pub fn push(&mut self, t: f64, value: f64) {
        if !value.is_finite() || !t.is_finite() {
            return;
        }
        let t = match self.samples.back() {
            Some((last, _)) if *last > t => *last,
            _ => t,
        };
        let cutoff = t - self.window_sec;
        while matches!(self.samples.front(), Some((ts, _)) if *ts < cutoff) {
            self.samples.pop_front();
        }
        while self.samples.len() >= self.max_samples {
            self.samples.pop_front();
        }
        self.samples.push_back((t, value));
    }

    /// The mean of the samples in the window, or `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        if self.samples.is_empty() {
            return None;
        }
        let sum: f64 = self.samples.iter().map(|(_, v)| v).sum();
        Some(sum / self.samples.len() as f64)
    }

    /// Number of samples held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_over_the_window_only() {
        let mut w = TimeWindow::new(120.0, 1000);
        assert_eq!(w.mean(), None);
        // 60 samples of 10% then 60 of 90%, every 2 s.
        for i in 0..60 {
            w.push(i as f64 * 2.0, 10.0);
        }
        assert_eq!(w.mean(), Some(10.0));
        for i in 60..120 {
            w.push(i as f64 * 2.0, 90.0);
        }
        // Window is [118, 238]: one 10% sample (t=118) and 60 of 90%.
        let m = w.mean().unwrap();
        assert!((m - (10.0 + 60.0 * 90.0) / 61.0).abs() < 1e-9, "{m}");
        w.push(400.0, 50.0);
        assert_eq!(w.mean(), Some(50.0), "a gap empties the window");
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn memory_is_bounded() {
        let mut w = TimeWindow::new(120.0, 8);
        for i in 0..100 {
            w.push(i as f64 * 0.01, i as f64);
        }
        assert_eq!(w.len(), 8);
        assert_eq!(w.mean(), Some((92..100).sum::<i32>() as f64 / 8.0));
    }

    #[test]
    fn backwards_time_and_bad_values() {
        let mut w = TimeWindow::new(10.0, 100);
        w.push(100.0, 20.0);
        w.push(50.0, 40.0); // treated as t=100
        assert_eq!(w.mean(), Some(30.0));
        w.push(101.0, f64::NAN);
        assert_eq!(w.len(), 2);
        w.push(111.0, 0.0); // the two t=100 samples fall out
        assert_eq!(w.mean(), Some(0.0));
    }
}
