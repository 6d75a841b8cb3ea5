//! Outbox counters readable by the app (lock-free atomics) and the backlog-progress arithmetic
//! behind the worker's periodic "outbox progress" log line. Pure apart from the atomics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Live outbox counters. Totals only grow; gauges are set by the worker.
#[derive(Debug, Default)]
pub struct OutboxMetrics {
    /// Gauge: entries not yet delivered (refreshed from the store at each progress tick and
    /// adjusted on push/ack in between).
    pub pending: AtomicU64,
    /// Gauge: deliveries in flight now.
    pub in_flight: AtomicU64,
    /// Total entries pushed by this process.
    pub pushed: AtomicU64,
    /// Total entries delivered to Bitrix24.
    pub delivered: AtomicU64,
    /// Total entries deliberately skipped (cards of over calls, missing recordings).
    pub skipped: AtomicU64,
    /// Total failed attempts rescheduled.
    pub retries: AtomicU64,
    /// Total entries moved to the dead letters.
    pub dead_letters: AtomicU64,
    /// Gauge: completions per minute over the last progress interval.
    pub rate_per_min: AtomicU64,
    /// Gauge: estimated seconds until the backlog is empty (0 when empty or unknown).
    pub eta_secs: AtomicU64,
    /// Gauge: 1 while the worker holds the backlog and probes a portal that does not answer.
    pub portal_down: AtomicU64,
}

/// A plain copy of [`OutboxMetrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsSnapshot {
    /// See [`OutboxMetrics::pending`].
    pub pending: u64,
    /// See [`OutboxMetrics::in_flight`].
    pub in_flight: u64,
    /// See [`OutboxMetrics::pushed`].
    pub pushed: u64,
    /// See [`OutboxMetrics::delivered`].
    pub delivered: u64,
    /// See [`OutboxMetrics::skipped`].
    pub skipped: u64,
    /// See [`OutboxMetrics::retries`].
    pub retries: u64,
    /// See [`OutboxMetrics::dead_letters`].
    pub dead_letters: u64,
    /// See [`OutboxMetrics::rate_per_min`].
    pub rate_per_min: u64,
    /// See [`OutboxMetrics::eta_secs`].
    pub eta_secs: u64,
    /// See [`OutboxMetrics::portal_down`].
    pub portal_down: u64,
}

impl OutboxMetrics {
    /// Reads every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MetricsSnapshot {
            pending: r(&self.pending),
            in_flight: r(&self.in_flight),
            pushed: r(&self.pushed),
            delivered: r(&self.delivered),
            skipped: r(&self.skipped),
            retries: r(&self.retries),
            dead_letters: r(&self.dead_letters),
            rate_per_min: r(&self.rate_per_min),
            eta_secs: r(&self.eta_secs),
            portal_down: r(&self.portal_down),
        }
    }

    /// Entries finished (delivered, skipped or dead-lettered) so far.
    pub fn completed(&self) -> u64 {
        let s = self.snapshot();
        s.delivered + s.skipped + s.dead_letters
    }

    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dec(counter: &AtomicU64) {
        // Saturating: the pending gauge is approximate between refreshes.
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(1))
        });
    }
}

/// One progress figure: how fast the backlog drains and when it will be empty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Entries still pending.
    pub pending: u64,
    /// Entries completed during the interval.
    pub completed: u64,
    /// Completions per second during the interval.
    pub per_sec: f64,
    /// Time to drain `pending` at that rate; `None` when nothing completed.
    pub eta: Option<Duration>,
}

impl Progress {
    /// Computes progress from `completed` entries over `elapsed` with `pending` left.
    pub fn compute(pending: u64, completed: u64, elapsed: Duration) -> Self {
        let secs = elapsed.as_secs_f64();
        let per_sec = if secs > 0.0 {
            completed as f64 / secs
        } else {
            0.0
        };
        let eta = (per_sec > 0.0).then(|| Duration::from_secs_f64(pending as f64 / per_sec));
        Self {
            pending,
            completed,
            per_sec,
            eta,
        }
    }

    /// Publishes the gauges.
    pub fn publish(&self, metrics: &OutboxMetrics) {
        metrics.pending.store(self.pending, Ordering::Relaxed);
        metrics
            .rate_per_min
            .store((self.per_sec * 60.0).round() as u64, Ordering::Relaxed);
        metrics
            .eta_secs
            .store(self.eta.map_or(0, |d| d.as_secs()), Ordering::Relaxed);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn eta_is_pending_divided_by_the_observed_rate() {
        let p = Progress::compute(600, 20, Duration::from_secs(10));
        assert_eq!(p.per_sec, 2.0);
        assert_eq!(p.eta, Some(Duration::from_secs(300)));
        let m = OutboxMetrics::default();
        p.publish(&m);
        assert_eq!(
            (m.snapshot().rate_per_min, m.snapshot().eta_secs),
            (120, 300)
        );
        assert_eq!(Progress::compute(5, 0, Duration::from_secs(10)).eta, None);
    }
}
