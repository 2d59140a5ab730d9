//! The per-member rate limit: a token bucket, pure arithmetic over instants the
//! caller passes in, so it is tested without clocks.

use std::time::Duration;

use tokio::time::Instant;

/// Lines a member may say: `burst` at once, then one every `1 / per_second`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Tokens the bucket holds when full.
    burst: f64,
    /// Tokens added per second.
    per_second: f64,
    /// Tokens now (fractional between refills).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket. A zero `per_second` or `burst` is raised to a minimum so
    /// a member can always say something eventually.
    pub fn new(per_second: f64, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            burst,
            per_second: per_second.max(0.001),
            tokens: burst,
            updated: now,
        }
    }

    /// Takes one token if there is one: `Ok` to say the line, or `Err` with how
    /// long until the next token.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TokenBucket;
    use proptest::prelude::*;
    use std::time::Duration;
    use tokio::time::Instant;

    #[test]
    fn burst_then_refill_at_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(2.0, 3, start);
        for _ in 0..3 {
            assert!(bucket.try_take(start).is_ok());
        }
        let wait = bucket.try_take(start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(bucket.try_take(start + Duration::from_millis(499)).is_err());
        assert!(bucket.try_take(start + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn an_idle_bucket_never_holds_more_than_the_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100.0, 2, start);
        let later = start + Duration::from_secs(3600);
        assert!(bucket.try_take(later).is_ok());
        assert!(bucket.try_take(later).is_ok());
        assert!(bucket.try_take(later).is_err());
    }

    proptest! {
        /// Over any schedule, accepted lines never exceed burst + rate * elapsed.
        #[test]
        fn accepted_lines_stay_within_the_budget(
            per_second in 0.5f64..50.0,
            burst in 1u32..20,
            gaps_ms in proptest::collection::vec(0u64..200, 1..300),
        ) {
            let start = Instant::now();
            let mut bucket = TokenBucket::new(per_second, burst, start);
            let mut now = start;
            let mut accepted = 0u32;
            for gap in gaps_ms {
                now += Duration::from_millis(gap);
                if bucket.try_take(now).is_ok() {
                    accepted += 1;
                }
            }
            let elapsed = now.duration_since(start).as_secs_f64();
            let budget = f64::from(burst) + per_second * elapsed;
            prop_assert!(f64::from(accepted) <= budget + 1e-9, "{} > {}", accepted, budget);
        }
    }
}
