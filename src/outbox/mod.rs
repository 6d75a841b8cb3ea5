//! The durable outbox: every Bitrix24 write a call produces is pushed here first (durable
//! before `Ok`), then delivered in per-call order by [`worker::run`] through a [`Deliver`].
//! The call path never waits for HTTP here, except [`Outbox::register_result`], which the
//! caller bounds with its own timeout.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::ids::{BitrixCallId, ChannelId, ExternalCallId};

pub(crate) mod audit;
mod bitrix;
pub(crate) mod deliver;
mod dispatch;
#[cfg(test)]
pub(crate) mod fault;
pub(crate) mod metrics;
pub mod op;
pub(crate) mod plan;
pub(crate) mod portal;
pub(crate) mod recording;
pub(crate) mod sqlite;
pub mod store;
pub mod worker;

#[cfg(test)]
pub(crate) mod testkit;

pub use deliver::{Deliver, DeliverError, Delivered, RetryBackoff};
pub use metrics::{MetricsSnapshot, OutboxMetrics};
pub use op::{BitrixWrite, CallWrite};
pub use sqlite::SqliteStore;
pub use store::{EntryId, Orphan, RegisterResult, StatusReport, Store, StoreError, StoredWrite};
pub use worker::WorkerConfig;

/// Why an outbox operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The store failed; for `push` this means the write is NOT durable.
    #[error("outbox store failed")]
    Store(#[source] StoreError),
    /// The call's `register` was dead-lettered, so no `CALL_ID` will come.
    #[error("register of call {call} failed: {reason}")]
    RegisterFailed {
        /// The call.
        call: ExternalCallId,
        /// The dead-letter reason.
        reason: String,
    },
}

impl From<StoreError> for OutboxError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// The stable `EXTERNAL_CALL_ID` of a FreeSWITCH call: `fs-<uuid>` for the call itself
/// (`leg == 0`) and `fs-<uuid>-<leg>` for extra Bitrix24 calls made from the same channel.
pub fn external_call_id(channel: &ChannelId, leg: u32) -> ExternalCallId {
    if leg == 0 {
        ExternalCallId::new(format!("fs-{channel}"))
    } else {
        ExternalCallId::new(format!("fs-{channel}-{leg}"))
    }
}

/// The channel of a call keyed by [`external_call_id`] (`None` for other keys, e.g. a
/// click-to-call's `c2c-...`). FreeSWITCH channel ids are 36-character UUIDs; a key with a leg
/// suffix is `fs-<uuid>-<leg>`.
pub fn channel_of(call: &ExternalCallId) -> Option<ChannelId> {
    let rest = call.as_str().strip_prefix("fs-")?;
    let channel = match rest.get(36..) {
        Some(leg)
            if leg.len() > 1
                && leg.starts_with('-')
                && leg[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &rest[..36]
        }
        _ => rest,
    };
    (!channel.is_empty()).then(|| ChannelId::new(channel))
}

/// Wall-clock time that follows tokio's clock, so paused-time tests control it. Stored times
/// (retry deadlines) are wall-clock so they survive a restart.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    wall0: DateTime<Utc>,
    t0: Instant,
}

impl Clock {
    fn start() -> Self {
        Self {
            wall0: Utc::now(),
            t0: Instant::now(),
        }
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.t0.elapsed()).unwrap_or_default();
        self.wall0 + elapsed
    }

    /// The tokio instant at which wall-clock time `at` is reached.
    pub(crate) fn instant_at(&self, at: DateTime<Utc>) -> Instant {
        let ahead = (at - self.now()).to_std().unwrap_or_default();
        Instant::now() + ahead
    }
}

/// What a register waiter sees.
#[derive(Debug, Clone)]
pub(crate) enum RegisterStatus {
    Pending,
    Done(RegisterResult),
    Failed(String),
}

struct Inner {
    store: Arc<dyn Store>,
    wake: Notify,
    waiters: DashMap<ExternalCallId, watch::Sender<RegisterStatus>>,
    metrics: Arc<OutboxMetrics>,
    completions: watch::Sender<u64>,
    clock: Clock,
}

/// Handle to the outbox; cheap to clone and shared by call tasks, the worker and the app.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("metrics", &self.inner.metrics.snapshot())
            .finish()
    }
}

impl Outbox {
    /// Opens the SQLite outbox at `path` (see [`SqliteStore::open`]).
    pub async fn open(path: &Path) -> Result<Self, OutboxError> {
        Ok(Self::with_store(Arc::new(SqliteStore::open(path).await?)))
    }

    /// An outbox over any store (tests inject a fault-injecting one).
    pub fn with_store(store: Arc<dyn Store>) -> Self {
        let inner = Inner {
            store,
            wake: Notify::new(),
            waiters: DashMap::new(),
            metrics: Arc::new(OutboxMetrics::default()),
            completions: watch::channel(0).0,
            clock: Clock::start(),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Stores `write`; when this returns `Ok` the write survives a crash and will be delivered
    /// exactly as given (at least once, in order with the call's other writes). Wakes the worker.
    /// Cancel-safe: a dropped future may or may not have stored the write.
    pub async fn push(&self, write: CallWrite) -> Result<EntryId, OutboxError> {
        let id = self.inner.store.push(write, self.now()).await?;
        OutboxMetrics::inc(&self.inner.metrics.pushed);
        OutboxMetrics::inc(&self.inner.metrics.pending);
        self.inner.wake.notify_one();
        Ok(id)
    }

    /// Stores several writes atomically (all or none survive a crash), in order, then wakes the
    /// worker. Use it for writes produced together, e.g. a call's finish and its attachRecord,
    /// so that a kill between two pushes cannot keep one and lose the other.
    pub async fn push_all(&self, writes: Vec<CallWrite>) -> Result<Vec<EntryId>, OutboxError> {
        let ids = self.inner.store.push_many(writes, self.now()).await?;
        self.pushed(ids.len());
        Ok(ids)
    }

    /// [`Outbox::push_all`] with the event behind each write (audit trail, card latency).
    pub async fn push_all_caused(
        &self,
        writes: Vec<(CallWrite, audit::WriteCause)>,
    ) -> Result<Vec<EntryId>, OutboxError> {
        let seen: Vec<Instant> = writes.iter().map(|(_, c)| c.seen).collect();
        let writes = writes.into_iter().map(|(w, c)| (w, Some(c))).collect();
        let ids = self.inner.store.push_caused(writes, self.now()).await?;
        for (id, seen) in ids.iter().zip(seen) {
            self.inner.metrics.card_clock.caused(*id, seen);
        }
        self.pushed(ids.len());
        Ok(ids)
    }

    /// [`Outbox::push_all`] with one reason for all of them (audit trail only: they follow no
    /// switch event, so the card-latency clock does not time them).
    pub async fn push_all_explained(
        &self,
        writes: Vec<CallWrite>,
        why: &str,
    ) -> Result<Vec<EntryId>, OutboxError> {
        let cause = audit::WriteCause::now(why.to_owned(), Instant::now());
        let writes = writes
            .into_iter()
            .map(|w| (w, Some(cause.clone())))
            .collect();
        let ids = self.inner.store.push_caused(writes, self.now()).await?;
        self.pushed(ids.len());
        Ok(ids)
    }

    /// Counts `n` stored writes and wakes the worker.
    fn pushed(&self, n: usize) {
        for _ in 0..n {
            OutboxMetrics::inc(&self.inner.metrics.pushed);
            OutboxMetrics::inc(&self.inner.metrics.pending);
        }
        self.inner.wake.notify_one();
    }

    /// Records a `CALL_ID` Bitrix24 created itself (click-to-call) and wakes register waiters.
    pub async fn set_call_id(
        &self,
        call: &ExternalCallId,
        id: BitrixCallId,
    ) -> Result<(), OutboxError> {
        self.inner
            .store
            .set_call_id(call.clone(), id.clone(), self.now())
            .await?;
        self.publish(
            call,
            RegisterStatus::Done(RegisterResult {
                call_id: id,
                crm: None,
                created_lead: None,
            }),
        );
        Ok(())
    }

    /// Waits until the call's `register` (or `Adopt`) has been delivered and returns its result
    /// (`CALL_ID`, CRM binding). Waits as long as it takes: wrap it in `tokio::time::timeout`.
    /// Cancel-safe. Errors: the register was dead-lettered, or the store failed.
    pub async fn register_result(
        &self,
        call: &ExternalCallId,
    ) -> Result<RegisterResult, OutboxError> {
        // Subscribe before reading the store, so a result published in between is not missed.
        let mut rx = self
            .inner
            .waiters
            .entry(call.clone())
            .or_insert_with(|| watch::channel(RegisterStatus::Pending).0)
            .subscribe();
        if let Some(done) = self.inner.store.call_state(call.clone()).await?.registered {
            return Ok(done);
        }
        loop {
            match rx.borrow_and_update().clone() {
                RegisterStatus::Done(result) => return Ok(result),
                RegisterStatus::Failed(reason) => {
                    return Err(OutboxError::RegisterFailed {
                        call: call.clone(),
                        reason,
                    });
                }
                RegisterStatus::Pending => {}
            }
            if rx.changed().await.is_err() {
                // The waiter slot was retired (call finished): the store has the answer.
                let state = self.inner.store.call_state(call.clone()).await?;
                return state.registered.ok_or_else(|| OutboxError::RegisterFailed {
                    call: call.clone(),
                    reason: "call ended without a CALL_ID".to_owned(),
                });
            }
        }
    }

    /// Whether anything was ever stored for `call` (and not yet pruned).
    pub async fn knows(&self, call: &ExternalCallId) -> Result<bool, OutboxError> {
        Ok(self.inner.store.call_state(call.clone()).await?.known)
    }

    /// The live counters.
    pub fn metrics(&self) -> Arc<OutboxMetrics> {
        Arc::clone(&self.inner.metrics)
    }

    /// The number of entries this process has completed (delivered, skipped or dead-lettered),
    /// as a watch: await `changed()` / `wait_for(|n| ..)` instead of polling.
    pub fn completions(&self) -> watch::Receiver<u64> {
        self.inner.completions.subscribe()
    }

    /// Counts and dead letters.
    pub async fn status(&self) -> Result<StatusReport, OutboxError> {
        Ok(self.inner.store.status(self.now()).await?)
    }

    /// Whether the store accepts writes now (readiness).
    pub async fn check_writable(&self) -> Result<(), OutboxError> {
        Ok(self.inner.store.check_writable().await?)
    }

    /// Moves dead letters (of one call, or all) back to pending and wakes the worker.
    pub async fn retry_dead_letters(
        &self,
        call: Option<&ExternalCallId>,
    ) -> Result<u64, OutboxError> {
        let n = self.inner.store.retry_dead_letters(call.cloned()).await?;
        self.inner.wake.notify_one();
        Ok(n)
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    pub(crate) fn clock(&self) -> Clock {
        self.inner.clock
    }

    pub(crate) fn wake(&self) -> &Notify {
        &self.inner.wake
    }

    pub(crate) fn completed_one(&self) {
        self.inner.completions.send_modify(|n| *n += 1);
    }

    /// Tells register waiters of `call` what happened.
    pub(crate) fn publish(&self, call: &ExternalCallId, status: RegisterStatus) {
        if let Some(tx) = self.inner.waiters.get(call) {
            tx.send_replace(status);
        }
    }

    /// Drops the waiter slot of a finished call (waiters then read the store).
    pub(crate) fn retire(&self, call: &ExternalCallId) {
        self.inner.waiters.remove(call);
    }
}

/// `fsb24 outbox status`: opens the outbox file (safe while the daemon runs: WAL readers do not
/// block it) and reports counts and every dead letter. `Display` prints it for humans.
pub async fn status_report(path: &Path) -> Result<StatusReport, OutboxError> {
    let store = SqliteStore::open(path).await?;
    Ok(store.status(Utc::now()).await?)
}

/// `fsb24 call show`: the audit trail of every call `query` names (call key, channel uuid,
/// Bitrix24 `CALL_ID` or phone number), read from the outbox file (safe while the daemon runs).
pub async fn call_trails(path: &Path, query: &str) -> Result<Vec<audit::CallTrail>, OutboxError> {
    let store = SqliteStore::open(path).await?;
    Ok(store.trails(query.to_owned()).await?)
}

/// `fsb24 outbox retry`: moves every dead letter back to pending with its original order; a
/// running daemon picks them up at its next idle poll. Returns how many were re-driven.
pub async fn retry_dead_letters(path: &Path) -> Result<u64, OutboxError> {
    let store = SqliteStore::open(path).await?;
    Ok(store.retry_dead_letters(None).await?)
}

#[cfg(test)]
mod tests;
