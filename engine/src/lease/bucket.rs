//! A token bucket with an injected clock: each addon's lease requests are
//! rate limited by one (`rate_limited`). Pure.

/// A token bucket: holds up to `burst` tokens, refills at `rate` tokens per
/// second, and each request takes one token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    updated_at: f64,
}

impl TokenBucket {
    /// A full bucket. A negative or NaN `rate` counts as 0 (never refills);
    /// `burst` is at least 1 so a fresh bucket always admits one request.
    pub fn new(rate: f64, burst: f64, now: f64) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            0.0
        };
        let burst = if burst.is_finite() {
            burst.max(1.0)
        } else {
            1.0
        };
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            updated_at: now,
        }
    }

    /// Refill rate, tokens per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Bucket size.
    pub fn burst(&self) -> f64 {
        self.burst
    }

    /// Tokens available at `now`. A clock that steps backwards adds nothing.
    pub fn available(&self, now: f64) -> f64 {
        let elapsed = now - self.updated_at;
        if elapsed > 0.0 {
            (self.tokens + elapsed * self.rate).min(self.burst)
        } else {
            self.tokens
        }
    }

    /// `None` when a token is available at `now`, else the seconds until one
    /// is (infinite when the bucket never refills).
    pub fn wait_sec(&self, now: f64) -> Option<f64> {
        let have = self.available(now);
        if have >= 1.0 {
            None
        } else if self.rate > 0.0 {
            Some((1.0 - have) / self.rate)
        } else {
            Some(f64::INFINITY)
        }
    }

    /// Takes one token, or returns the seconds to wait for one.
    pub fn try_take(&mut self, now: f64) -> Result<(), f64> {
        let have = self.available(now);
        if now > self.updated_at {
            self.updated_at = now;
        }
        self.tokens = have;
        match self.wait_sec(now) {
            None => {
                self.tokens -= 1.0;
                Ok(())
            }
            Some(w) => Err(w),
        }
    }

    /// Whether the bucket is full at `now` (its addon has been idle long
    /// enough that forgetting the bucket changes nothing).
    pub fn is_full(&self, now: f64) -> bool {
        self.available(now) >= self.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let mut b = TokenBucket::new(2.0, 3.0, 100.0);
        assert!(b.try_take(100.0).is_ok());
        assert!(b.try_take(100.0).is_ok());
        assert!(b.try_take(100.0).is_ok());
        let wait = b.try_take(100.0).unwrap_err();
        assert!((wait - 0.5).abs() < 1e-9, "{wait}");
        assert_eq!(b.wait_sec(100.0), Some(0.5));
        // Half a second later one token is back, and only one.
        assert!(b.try_take(100.5).is_ok());
        assert!(b.try_take(100.5).is_err());
    }

    #[test]
    fn refill_is_capped_at_burst() {
        let mut b = TokenBucket::new(1.0, 2.0, 0.0);
        b.try_take(0.0).unwrap();
        b.try_take(0.0).unwrap();
        assert!(!b.is_full(0.0));
        assert_eq!(b.available(1000.0), 2.0);
        assert!(b.is_full(1000.0));
        b.try_take(1000.0).unwrap();
        b.try_take(1000.0).unwrap();
        assert!(b.try_take(1000.0).is_err());
    }

    #[test]
    fn a_failed_take_costs_nothing() {
        let mut b = TokenBucket::new(1.0, 1.0, 0.0);
        b.try_take(0.0).unwrap();
        for _ in 0..10 {
            assert!(b.try_take(0.5).is_err());
        }
        assert!(b.try_take(1.0).is_ok());
    }

    #[test]
    fn clock_going_backwards_adds_nothing() {
        let mut b = TokenBucket::new(1.0, 1.0, 50.0);
        b.try_take(50.0).unwrap();
        assert!(b.try_take(10.0).is_err());
        assert!(b.try_take(50.5).is_err());
        assert!(b.try_take(51.0).is_ok());
    }

    #[test]
    fn zero_rate_never_refills() {
        let mut b = TokenBucket::new(0.0, 1.0, 0.0);
        b.try_take(0.0).unwrap();
        assert_eq!(b.try_take(1e9), Err(f64::INFINITY));
        let nan = TokenBucket::new(f64::NAN, f64::NAN, 0.0);
        assert_eq!(nan.rate(), 0.0);
        assert_eq!(nan.burst(), 1.0);
    }

    #[test]
    fn fractional_burst_still_admits_one() {
        let mut b = TokenBucket::new(1.0, 0.2, 0.0);
        assert!(b.try_take(0.0).is_ok());
        assert!(b.try_take(0.0).is_err());
    }
}
