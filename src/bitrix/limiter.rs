//! Client-side leaky bucket matching the portal's request-rate limit, so fsb24 itself never
//! triggers `QUERY_LIMIT_EXCEEDED`. Pure: no IO, no clock reads; every call takes `now`.

use std::time::Duration;

use tokio::time::Instant;

/// A portal's request-rate limit: the bucket drains `per_second`; at most `burst` requests fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Drain rate (Bitrix24: 2/s, Enterprise 5/s).
    pub per_second: f64,
    /// Bucket size (Bitrix24: 50, Enterprise 250).
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: 2.0,
            burst: 50,
        }
    }
}

/// Longest back-off after repeated `QUERY_LIMIT_EXCEEDED` answers.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The bucket. Its level counts requests sent and drains continuously. A tenth of `burst` (at
/// least one request) is kept as headroom: the portal measures arrival times, and connection
/// setup or network jitter can bunch requests up there that left here evenly spaced.
#[derive(Debug, Clone)]
pub(crate) struct Limiter {
    limit: RateLimit,
    level: f64,
    at: Instant,
    blocked_until: Option<Instant>,
    rejections: u32,
}

impl Limiter {
    /// An empty bucket at `now`. A non-positive or non-finite rate is treated as 0.1/s and a
    /// burst below 2 as 2, so the limiter always makes progress.
    pub(crate) fn new(limit: RateLimit, now: Instant) -> Self {
        let per_second = if limit.per_second.is_finite() && limit.per_second > 0.0 {
            limit.per_second
        } else {
            0.1
        };
        let limit = RateLimit {
            per_second,
            burst: limit.burst.max(2),
        };
        Self {
            limit,
            level: 0.0,
            at: now,
            blocked_until: None,
            rejections: 0,
        }
    }

    fn capacity(&self) -> f64 {
        f64::from(self.limit.burst - (self.limit.burst / 10).max(1))
    }

    fn drain(&mut self, now: Instant) {
        if now > self.at {
            let secs = now.duration_since(self.at).as_secs_f64();
            self.level = (self.level - secs * self.limit.per_second).max(0.0);
            self.at = now;
        }
    }

    #[cfg(test)]
    /// The bucket level at `now` (requests not yet drained).
    pub(crate) fn level(&mut self, now: Instant) -> f64 {
        self.drain(now);
        self.level
    }

    /// Takes room for one request at `now`, or says how long to wait before asking again.
    pub(crate) fn try_acquire(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(until) = self.blocked_until {
            if now < until {
                return Err(until - now);
            }
            self.blocked_until = None;
        }
        self.drain(now);
        let over = self.level + 1.0 - self.capacity();
        if over <= 1e-9 {
            self.level += 1.0;
            Ok(())
        } else {
            // Round up so the next attempt finds room.
            let wait = over / self.limit.per_second;
            Err(Duration::from_secs_f64(wait) + Duration::from_micros(1))
        }
    }

    /// The portal said `QUERY_LIMIT_EXCEEDED` anyway (another app shares the bucket): treat the
    /// bucket as full and hold every request for an exponentially growing pause (one drain
    /// period, doubling per consecutive rejection, capped at 30 s). Returns the pause.
    pub(crate) fn on_rejected(&mut self, now: Instant) -> Duration {
        self.drain(now);
        self.level = self.capacity();
        let period = 1.0 / self.limit.per_second;
        let factor = f64::from(1u32 << self.rejections.min(16));
        self.rejections = self.rejections.saturating_add(1);
        let pause = Duration::from_secs_f64(period * factor).min(MAX_BACKOFF);
        self.blocked_until = Some(now + pause);
        pause
    }

    /// A request was accepted: the back-off schedule starts over.
    pub(crate) fn on_accepted(&mut self) {
        self.rejections = 0;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn limiter(per_second: f64, burst: u32) -> (Limiter, Instant) {
        let t0 = Instant::now();
        (Limiter::new(RateLimit { per_second, burst }, t0), t0)
    }

    #[test]
    fn burst_minus_headroom_passes_at_once_then_the_rate_applies() {
        let (mut l, t0) = limiter(2.0, 50);
        for _ in 0..45 {
            assert_eq!(l.try_acquire(t0), Ok(()));
        }
        let wait = l.try_acquire(t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(499) && wait < Duration::from_millis(501),
            "{wait:?}"
        );
        assert!(l.try_acquire(t0 + Duration::from_millis(499)).is_err());
        assert_eq!(l.try_acquire(t0 + wait), Ok(()));
    }

    #[test]
    fn sustained_admissions_never_exceed_the_rate_over_any_window() {
        let (mut l, t0) = limiter(20.0, 50);
        let mut now = t0;
        let mut admitted = Vec::new();
        while admitted.len() < 500 {
            match l.try_acquire(now) {
                Ok(()) => admitted.push(now),
                Err(wait) => now += wait,
            }
        }
        // Replay the admissions through an exact model of the portal's bucket (size 50).
        let mut level: f64 = 0.0;
        let mut last = t0;
        for at in admitted {
            level = (level - at.duration_since(last).as_secs_f64() * 20.0).max(0.0) + 1.0;
            last = at;
            assert!(level <= 45.0 + 1e-6, "portal bucket would hold {level}");
        }
    }

    #[test]
    fn level_drains_with_time() {
        let (mut l, t0) = limiter(2.0, 50);
        for _ in 0..10 {
            l.try_acquire(t0).unwrap();
        }
        assert!((l.level(t0 + Duration::from_secs(2)) - 6.0).abs() < 1e-9);
        assert_eq!(l.level(t0 + Duration::from_secs(60)), 0.0);
    }

    #[test]
    fn rejection_blocks_and_backs_off_exponentially_until_accepted() {
        let (mut l, t0) = limiter(2.0, 50);
        assert_eq!(l.on_rejected(t0), Duration::from_millis(500));
        assert!(l.try_acquire(t0 + Duration::from_millis(499)).is_err());
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(l.on_rejected(t1), Duration::from_secs(1));
        assert_eq!(l.on_rejected(t1), Duration::from_secs(2));
        l.on_accepted();
        assert_eq!(l.on_rejected(t1), Duration::from_millis(500));
        for _ in 0..40 {
            l.on_rejected(t1);
        }
        assert_eq!(l.on_rejected(t1), MAX_BACKOFF);
    }

    #[test]
    fn nonsense_limits_still_make_progress() {
        let (mut l, t0) = limiter(f64::NAN, 0);
        assert_eq!(l.try_acquire(t0), Ok(()));
        let wait = l.try_acquire(t0).unwrap_err();
        assert_eq!(l.try_acquire(t0 + wait), Ok(()));
    }
}
