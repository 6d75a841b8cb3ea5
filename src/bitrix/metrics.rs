//! What the Bitrix24 client counts: requests by method and HTTP status, rate-limit and
//! operating-limit hits, whether the portal answers, and its last errors (for the status
//! page). Updated by the transport after each exchange: atomics and one short mutex, no IO.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::error::{BitrixError, ErrorKind};
use crate::ids::ExternalCallId;

/// Told when a request carrying a call's write leaves for the portal (the outbox's card-write
/// clock listens; the client does not know what it measures).
pub trait WireWatch: Send + Sync + std::fmt::Debug {
    /// A request carrying `call`'s write leaves now.
    fn on_wire(&self, call: &ExternalCallId);
}

/// How many recent errors the status page shows.
const LAST_ERRORS: usize = 10;

/// Whether the portal answers, as the last exchange told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortalState {
    /// No exchange yet since the start.
    Unknown,
    /// The last exchange got an answer (success or a refusal).
    Up,
    /// The last exchange got no answer, or "not now" (5xx, rate limit).
    Down,
}

/// One recent failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    /// When.
    pub at: DateTime<Utc>,
    /// The method.
    pub method: &'static str,
    /// What happened (never a URL or a secret).
    pub error: String,
}

#[derive(Debug)]
struct Inner {
    requests: Family<[(&'static str, String); 2], Counter>,
    rate_limited: Counter,
    operating_limited: Family<[(&'static str, String); 1], Counter>,
    portal: AtomicU8,
    last_errors: Mutex<VecDeque<LastError>>,
    wire_watch: Mutex<Option<Arc<dyn WireWatch>>>,
}

/// The client's metrics; clones share them.
#[derive(Debug, Clone)]
pub struct BitrixMetrics {
    inner: Arc<Inner>,
}

impl Default for BitrixMetrics {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                requests: Family::default(),
                rate_limited: Counter::default(),
                operating_limited: Family::default(),
                portal: AtomicU8::new(0),
                last_errors: Mutex::new(VecDeque::new()),
                wire_watch: Mutex::new(None),
            }),
        }
    }
}

impl BitrixMetrics {
    /// Adds the client's metrics to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "fsb24_bitrix_requests",
            "HTTP requests to the portal by method and HTTP status (error: no answer)",
            self.inner.requests.clone(),
        );
        registry.register(
            "fsb24_bitrix_rate_limit_hits",
            "Answers QUERY_LIMIT_EXCEEDED (the portal's request bucket was full)",
            self.inner.rate_limited.clone(),
        );
        registry.register(
            "fsb24_bitrix_operating_limit_hits",
            "Answers OPERATION_TIME_LIMIT by method (its execution-time budget was spent)",
            self.inner.operating_limited.clone(),
        );
    }

    /// Tells `watch` when requests carrying a call's write go on the wire.
    pub fn watch_wire(&self, watch: impl WireWatch + 'static) {
        *lock(&self.inner.wire_watch) = Some(Arc::new(watch));
    }

    /// Whether the portal answers.
    pub fn portal(&self) -> PortalState {
        match self.inner.portal.load(Ordering::Relaxed) {
            1 => PortalState::Up,
            2 => PortalState::Down,
            _ => PortalState::Unknown,
        }
    }

    /// The most recent failures, newest first.
    pub fn last_errors(&self) -> Vec<LastError> {
        lock(&self.inner.last_errors)
            .iter()
            .rev()
            .cloned()
            .collect()
    }

    /// Notes one exchange's result.
    pub(crate) fn observe<T>(&self, method: &'static str, result: &Result<T, BitrixError>) {
        let (status, up) = match result {
            Ok(_) => ("200".to_owned(), true),
            Err(e) => (status_label(e), answered(e)),
        };
        self.inner
            .requests
            .get_or_create(&[("method", method.to_owned()), ("status", status)])
            .inc();
        self.inner
            .portal
            .store(if up { 1 } else { 2 }, Ordering::Relaxed);
        if let Err(e) = result {
            let mut last = lock(&self.inner.last_errors);
            if last.len() == LAST_ERRORS {
                last.pop_front();
            }
            last.push_back(LastError {
                at: Utc::now(),
                method,
                error: e.to_string(),
            });
        }
    }

    /// The portal answered QUERY_LIMIT_EXCEEDED.
    pub(crate) fn rate_limited(&self) {
        self.inner.rate_limited.inc();
    }

    /// `method` answered OPERATION_TIME_LIMIT.
    pub(crate) fn operating_limited(&self, method: &'static str) {
        self.inner
            .operating_limited
            .get_or_create(&[("method", method.to_owned())])
            .inc();
    }

    /// A request carrying `call`'s write leaves now.
    pub(crate) fn on_wire(&self, call: &ExternalCallId) {
        if let Some(watch) = lock(&self.inner.wire_watch).as_ref() {
            watch.on_wire(call);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn status_label(e: &BitrixError) -> String {
    match e {
        BitrixError::Api { status, .. } | BitrixError::Status { status, .. } => status.to_string(),
        BitrixError::Redirect { status, .. } => status.to_string(),
        BitrixError::Decode { .. } => "200".to_owned(),
        _ => "error".to_owned(),
    }
}

/// Whether an error still means the portal is there and serving.
fn answered(e: &BitrixError) -> bool {
    match e {
        BitrixError::Api { kind, .. } => !matches!(
            kind,
            ErrorKind::Server | ErrorKind::QueryLimit | ErrorKind::Overload
        ),
        BitrixError::Status { status, .. } => *status < 500,
        BitrixError::Transport { .. } | BitrixError::Shutdown { .. } => false,
        _ => true,
    }
}
