//! What the bench measures: calls and their concurrency, the switch-side decision latency, the
//! card latency, the portal's requests, and fsb24's CPU and memory read from `/proc`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

/// Counters and samples shared by the switch, the portal and the driver.
#[derive(Default)]
pub(crate) struct Stats {
    pub started: AtomicU64,
    pub ended: AtomicU64,
    live: AtomicU64,
    pub max_live: AtomicU64,
    pub connect_failed: AtomicU64,
    pub finished_by_exit: AtomicU64,
    pub events_out: AtomicU64,
    /// Calls that reached their first `bridge` (routed: a setup).
    pub setups: AtomicU64,
    decisions: Mutex<Vec<u32>>,
    cards: Mutex<Vec<u32>>,
    /// First bridge of each call (the phones start ringing).
    ringing: DashMap<String, Instant>,
    /// Calls whose card already opened.
    carded: DashMap<String, ()>,
    pub requests: AtomicU64,
    pub rate_limited: AtomicU64,
    pub commands: AtomicU64,
    pub max_batch: AtomicU64,
    pub finishes: AtomicU64,
    pub registers: AtomicU64,
    /// Request arrival times (for the budget used while a backlog waits).
    pub request_times: Mutex<Vec<Instant>>,
}

impl Stats {
    pub(crate) fn call_started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
        let now = self.live.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_live.fetch_max(now, Ordering::Relaxed);
    }

    pub(crate) fn call_ended(&self) {
        self.ended.fetch_add(1, Ordering::Relaxed);
        self.live.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }

    pub(crate) fn decision(&self, d: Duration) {
        let us = u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        lock(&self.decisions).push(us);
    }

    pub(crate) fn bridge_started(&self, uuid: &str) {
        if !self.ringing.contains_key(uuid) {
            self.ringing.insert(uuid.to_owned(), Instant::now());
            self.setups.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request opened the card of the call on channel `uuid`.
    pub(crate) fn card_opened(&self, uuid: &str) {
        if self.carded.insert(uuid.to_owned(), ()).is_some() {
            return;
        }
        if let Some(at) = self.ringing.get(uuid) {
            let us = u32::try_from(at.elapsed().as_micros()).unwrap_or(u32::MAX);
            lock(&self.cards).push(us);
        }
    }

    pub(crate) fn decisions(&self) -> Vec<u32> {
        lock(&self.decisions).clone()
    }

    pub(crate) fn cards(&self) -> Vec<u32> {
        lock(&self.cards).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `(p50, p99, max)` of microsecond samples.
pub(crate) fn percentiles(mut v: Vec<u32>) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    v.sort_unstable();
    let at = |q: f64| {
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        f64::from(v[i]) / 1000.0
    };
    (at(0.5), at(0.99), at(1.0))
}

/// CPU seconds (user + system) and resident set of a process, from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcSample {
    pub cpu_s: f64,
    pub rss_kib: u64,
}

pub(crate) fn sample(pid: u32) -> ProcSample {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the name.
    let cpu_s = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    ProcSample { cpu_s, rss_kib }
}

/// Pushes onto a shared list.
pub(crate) fn lock_push<T>(m: &Mutex<Vec<T>>, v: T) {
    lock(m).push(v);
}
