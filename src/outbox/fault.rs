//! A fault-injecting [`Store`] for crash tests: wraps a [`SqliteStore`] and, at a chosen
//! operation, "kills the process" just before or just after the commit, saving the files a
//! kill -9 would leave behind (a crash image) and failing every later call.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use crate::ids::{BitrixCallId, ExternalCallId};
use crate::outbox::op::CallWrite;
use crate::outbox::sqlite::SqliteStore;
use crate::outbox::store::{
    CallState, Completion, DueEntry, EntryId, StatusReport, Store, StoreError,
};

/// Which side of the commit the crash hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CrashPoint {
    /// The operation never reaches the disk.
    BeforeCommit,
    /// The operation committed, but the caller never hears back.
    AfterCommit,
}

/// A crash to inject: at the `nth` (0-based) call of operation `op` (`push`, `ack`, ...).
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    /// The store operation name.
    pub op: &'static str,
    /// Which call of it.
    pub nth: usize,
    /// Before or after the commit.
    pub point: CrashPoint,
    /// Where the crash image (database + WAL) is written.
    pub image_dir: PathBuf,
}

/// The wrapper. After the crash every operation fails with [`StoreError::Crashed`].
#[derive(Debug)]
pub(crate) struct FaultyStore {
    inner: SqliteStore,
    fault: Mutex<Option<(Fault, usize)>>,
    crashed: AtomicBool,
    crash_seen: tokio::sync::watch::Sender<bool>,
}

impl FaultyStore {
    /// Wraps `inner`, crashing as `fault` says.
    pub(crate) fn new(inner: SqliteStore, fault: Fault) -> Self {
        Self {
            inner,
            fault: Mutex::new(Some((fault, 0))),
            crashed: AtomicBool::new(false),
            crash_seen: tokio::sync::watch::channel(false).0,
        }
    }

    /// Whether the crash has happened.
    pub(crate) fn crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    /// Resolves once the crash has happened (and its image is written).
    pub(crate) async fn wait_crashed(&self) {
        let mut rx = self.crash_seen.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|crashed| *crashed).await;
    }

    /// Counts a call of `op`; returns the fault if this is the one.
    fn arm(&self, op: &'static str) -> Option<Fault> {
        let mut guard = self.fault.lock().unwrap_or_else(|p| p.into_inner());
        let (fault, seen) = guard.as_mut()?;
        if fault.op != op {
            return None;
        }
        *seen += 1;
        if *seen - 1 == fault.nth {
            guard.take().map(|(f, _)| f)
        } else {
            None
        }
    }

    fn guarded<'a, T: Send + 'a>(
        &'a self,
        op: &'static str,
        fut: BoxFuture<'a, Result<T, StoreError>>,
    ) -> BoxFuture<'a, Result<T, StoreError>> {
        Box::pin(async move {
            if self.crashed() {
                return Err(StoreError::Crashed { op });
            }
            let Some(fault) = self.arm(op) else {
                return fut.await;
            };
            if fault.point == CrashPoint::AfterCommit {
                // The result is lost with the process.
                let _ = fut.await;
            }
            self.crashed.store(true, Ordering::SeqCst);
            let image = self.inner.crash_image(&fault.image_dir).await;
            self.crash_seen.send_replace(true);
            image?;
            Err(StoreError::Crashed { op })
        })
    }
}

impl Store for FaultyStore {
    fn push(
        &self,
        write: CallWrite,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<EntryId, StoreError>> {
        self.guarded("push", self.inner.push(write, now))
    }
    fn due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<DueEntry>, StoreError>> {
        self.guarded("due", self.inner.due(now, limit))
    }
    fn next_due_at(
        &self,
        after: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Option<DateTime<Utc>>, StoreError>> {
        self.guarded("next_due_at", self.inner.next_due_at(after))
    }
    fn ack(
        &self,
        entry: EntryId,
        done: Completion,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.guarded("ack", self.inner.ack(entry, done, now))
    }
    fn retry_at(
        &self,
        entry: EntryId,
        when: DateTime<Utc>,
        error: String,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.guarded("retry_at", self.inner.retry_at(entry, when, error, now))
    }
    fn dead_letter(
        &self,
        entry: EntryId,
        reason: String,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.guarded("dead_letter", self.inner.dead_letter(entry, reason, now))
    }
    fn set_call_id(
        &self,
        call: ExternalCallId,
        id: BitrixCallId,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.guarded("set_call_id", self.inner.set_call_id(call, id, now))
    }
    fn call_state(&self, call: ExternalCallId) -> BoxFuture<'_, Result<CallState, StoreError>> {
        self.guarded("call_state", self.inner.call_state(call))
    }
    fn prune(&self, before: DateTime<Utc>) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.guarded("prune", self.inner.prune(before))
    }
    fn status(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<StatusReport, StoreError>> {
        self.guarded("status", self.inner.status(now))
    }
    fn check_writable(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        self.guarded("check_writable", self.inner.check_writable())
    }
    fn release_retries(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.guarded("release_retries", self.inner.release_retries(now))
    }
    fn retry_dead_letters(
        &self,
        call: Option<ExternalCallId>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.guarded("retry_dead_letters", self.inner.retry_dead_letters(call))
    }
}

#[cfg(test)]
mod tests;
