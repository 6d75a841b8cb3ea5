//! Outbox counters readable by the app (lock-free atomics) and the backlog-progress arithmetic
//! behind the worker's periodic "outbox progress" log line. Pure apart from the atomics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::time::Instant;

use crate::bitrix::WireWatch;
use crate::ids::ExternalCallId;
use crate::outbox::store::EntryId;

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
    /// Total recordings attached.
    pub recordings_attached: AtomicU64,
    /// Total recordings skipped because the file never appeared.
    pub recordings_missing: AtomicU64,
    /// Total recordings given up (dead letters).
    pub recordings_failed: AtomicU64,
    /// Total attachRecord attempts rescheduled.
    pub recordings_retried: AtomicU64,
    /// Card-write latency, from the event behind a write to its request on the wire.
    pub card_clock: CardClock,
}

/// Card-write latency: the time from the event that made a call emit a card write (register,
/// show, hide, finish) to the moment the request carrying it leaves for the portal. The call
/// side notes the event per entry; the worker moves it to the call when it dispatches the
/// entry (one delivery in flight per call); the Bitrix24 client reports the call when the
/// request goes on the wire. Only first attempts count. Lock-free maps, no IO.
#[derive(Debug, Clone)]
pub struct CardClock {
    inner: Arc<ClockInner>,
}

#[derive(Debug)]
struct ClockInner {
    caused: DashMap<EntryId, Instant>,
    pending: DashMap<ExternalCallId, Instant>,
    latency: Histogram,
}

impl Default for CardClock {
    fn default() -> Self {
        Self {
            inner: Arc::new(ClockInner {
                caused: DashMap::new(),
                pending: DashMap::new(),
                // 1 ms .. ~16 s.
                latency: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            }),
        }
    }
}

impl CardClock {
    /// Entry `id` was caused by an event seen at `seen`.
    pub(crate) fn caused(&self, id: EntryId, seen: Instant) {
        self.inner.caused.insert(id, seen);
    }

    /// The worker starts delivering entry `id` of `call`; `card`: it is a card write.
    pub(crate) fn dispatching(&self, id: EntryId, call: &ExternalCallId, card: bool) {
        if let Some((_, seen)) = self.inner.caused.remove(&id)
            && card
        {
            self.inner.pending.insert(call.clone(), seen);
        }
    }

    /// The delivery of `call`'s entry is over (sent or not).
    pub(crate) fn settled(&self, call: &ExternalCallId) {
        self.inner.pending.remove(call);
    }

    /// The histogram, for registration.
    pub fn histogram(&self) -> Histogram {
        self.inner.latency.clone()
    }
}

impl WireWatch for CardClock {
    fn on_wire(&self, call: &ExternalCallId) {
        if let Some((_, seen)) = self.inner.pending.remove(call) {
            let latency = Instant::now().saturating_duration_since(seen);
            self.inner.latency.observe(latency.as_secs_f64());
        }
    }
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
    /// See [`OutboxMetrics::recordings_attached`].
    pub recordings_attached: u64,
    /// See [`OutboxMetrics::recordings_missing`].
    pub recordings_missing: u64,
    /// See [`OutboxMetrics::recordings_failed`].
    pub recordings_failed: u64,
    /// See [`OutboxMetrics::recordings_retried`].
    pub recordings_retried: u64,
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
            recordings_attached: r(&self.recordings_attached),
            recordings_missing: r(&self.recordings_missing),
            recordings_failed: r(&self.recordings_failed),
            recordings_retried: r(&self.recordings_retried),
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
pub(crate) struct Progress {
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
    pub(crate) fn compute(pending: u64, completed: u64, elapsed: Duration) -> Self {
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
    pub(crate) fn publish(&self, metrics: &OutboxMetrics) {
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
