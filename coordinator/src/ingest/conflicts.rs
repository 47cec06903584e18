//! Rate-limited logging of conflicting duplicate reports (an id already
//! stored with other content): one line per report up to a budget per
//! minute, then silence until the next minute, whose first line says how
//! many went unlogged. The counter (`lull_reports_total{result="conflict"}`)
//! counts every one.

use std::time::{Duration, Instant};

/// The log budget of conflicting reports. Owned by the reports consumer.
#[derive(Debug)]
pub struct ConflictLog {
    per_min: u32,
    window_start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl ConflictLog {
    /// At most `per_min` lines a minute (0 logs none).
    pub fn new(per_min: u32) -> ConflictLog {
        ConflictLog {
            per_min,
            window_start: None,
            logged: 0,
            suppressed: 0,
        }
    }

    /// Whether one more conflict may be logged at `now`; when it may, the
    /// number of conflicts left unlogged since the last logged one.
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        let fresh = self
            .window_start
            .is_none_or(|s| now.saturating_duration_since(s) >= Duration::from_secs(60));
        if fresh {
            self.window_start = Some(now);
            self.logged = 0;
        }
        if self.logged < self.per_min {
            self.logged += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }

    /// Logs one conflicting report of `kind` with its `id`, within the budget.
    pub fn log(&mut self, kind: &str, id: &str, now: Instant) {
        if let Some(unlogged) = self.admit(now) {
            tracing::warn!(
                kind,
                id,
                unlogged_before = unlogged,
                "conflicting duplicate report dropped: its id is already stored with other \
                 content; the stored record stays"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_per_minute() {
        let t0 = Instant::now();
        let mut l = ConflictLog::new(2);
        assert_eq!(l.admit(t0), Some(0));
        assert_eq!(l.admit(t0), Some(0));
        assert_eq!(l.admit(t0 + Duration::from_secs(1)), None);
        assert_eq!(l.admit(t0 + Duration::from_secs(59)), None);
        // A new minute: logs again, and says how many went unlogged.
        assert_eq!(l.admit(t0 + Duration::from_secs(60)), Some(2));
        assert_eq!(l.admit(t0 + Duration::from_secs(61)), Some(0));
        assert_eq!(l.admit(t0 + Duration::from_secs(62)), None);
        let mut none = ConflictLog::new(0);
        assert_eq!(none.admit(t0), None);
    }
}
