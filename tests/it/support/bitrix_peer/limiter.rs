//! The portal's request-rate limit (reference §8.1, a leaky bucket) and the simulated
//! per-method operating budget (§8.2), plus the arrival log tests assert on.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::envelope::Operating;
use super::options::{BucketConfig, OperatingBudget};

/// Leaky bucket state and the history of every request it judged.
#[derive(Debug)]
pub struct Limiter {
    config: BucketConfig,
    level: f64,
    last: Option<Instant>,
    arrivals: Vec<Arrival>,
}

/// One request the bucket judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// When it arrived.
    pub at: Instant,
    /// Whether it was let through (false: answered 503).
    pub admitted: bool,
}

impl Limiter {
    /// An empty bucket.
    pub fn new(config: BucketConfig) -> Self {
        Self {
            config,
            level: 0.0,
            last: None,
            arrivals: Vec::new(),
        }
    }

    /// Judges one request arriving at `now`; rejected requests do not fill the bucket.
    pub fn admit(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let drained =
                now.saturating_duration_since(last).as_secs_f64() * self.config.drain_per_sec;
            self.level = (self.level - drained).max(0.0);
        }
        self.last = Some(now.max(self.last.unwrap_or(now)));
        let admitted = self.level + 1.0 <= f64::from(self.config.burst) + 1e-9;
        if admitted {
            self.level += 1.0;
        }
        self.arrivals.push(Arrival { at: now, admitted });
        admitted
    }

    /// Replaces the bucket parameters (level kept).
    pub fn reconfigure(&mut self, config: BucketConfig) {
        self.config = config;
    }

    /// Every judged request, in arrival order.
    pub fn arrivals(&self) -> &[Arrival] {
        &self.arrivals
    }

    /// The largest number of requests (admitted or not) that arrived within any `window`.
    pub fn max_in_window(&self, window: Duration) -> usize {
        let mut times: Vec<Instant> = self.arrivals.iter().map(|a| a.at).collect();
        times.sort();
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..times.len() {
            while times[hi].duration_since(times[lo]) >= window {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }
}

/// Simulated execution time per method over ten one-minute buckets (unix seconds on the peer clock).
#[derive(Debug, Default)]
pub struct OperatingLedger {
    charges: HashMap<String, Vec<(f64, f64)>>,
}

const WINDOW_SECS: f64 = 600.0;

impl OperatingLedger {
    /// Whether `method` is currently blocked by `budget`.
    pub fn blocked(&mut self, budget: &OperatingBudget, method: &str, now_unix: f64) -> bool {
        self.figures(method, now_unix).operating > budget.limit.as_secs_f64()
    }

    /// Charges one call of `method`.
    pub fn charge(&mut self, budget: &OperatingBudget, method: &str, now_unix: f64) {
        let cost = budget
            .per_method
            .get(method)
            .copied()
            .unwrap_or(budget.cost);
        self.charges
            .entry(method.to_owned())
            .or_default()
            .push((now_unix, cost.as_secs_f64()));
    }

    /// The `operating` / `operating_reset_at` figures of `method` now.
    pub fn figures(&mut self, method: &str, now_unix: f64) -> Operating {
        let charges = self.charges.entry(method.to_owned()).or_default();
        charges.retain(|(at, _)| now_unix - at < WINDOW_SECS);
        let operating = charges.iter().map(|(_, cost)| cost).sum();
        let oldest = charges.first().map_or(now_unix, |(at, _)| *at);
        Operating {
            operating,
            reset_at: (oldest + WINDOW_SECS).ceil() as i64,
        }
    }
}
