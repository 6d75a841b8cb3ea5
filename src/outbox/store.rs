//! The outbox's storage seam: a narrow async [`Store`] trait and the data that crosses it.
//! The SQLite implementation lives in `sqlite`, the crash-test wrapper in `fault`; nothing here
//! does IO or talks to Bitrix24.

use std::fmt;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::ids::{BitrixCallId, ExternalCallId};
use crate::outbox::audit::WriteCause;
use crate::outbox::op::{BitrixWrite, CallWrite, CrmBinding};

/// The durable sequence number of one outbox entry; a call's entries are delivered in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EntryId(pub i64);

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What `register` (or an adopted click-to-call) told us about a call; later writes need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResult {
    /// Bitrix24's `CALL_ID`.
    pub call_id: BitrixCallId,
    /// The CRM entity the call is bound to, if any.
    #[serde(default, deserialize_with = "CrmBinding::lenient")]
    pub crm: Option<CrmBinding>,
    /// A lead Bitrix24 created for this call, if any.
    pub created_lead: Option<u64>,
}

/// What the store knows about a call as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallState {
    /// The register result, once `register` (or `Adopt`) has been acknowledged.
    pub registered: Option<RegisterResult>,
    /// A `Finish` has been pushed for this call: it is over on the PBX, whatever Bitrix24 knows.
    pub over: bool,
    /// A card was (or may have been) opened for someone: `register SHOW=1` or a `show` was sent.
    pub cards_opened: bool,
    /// Something was stored for this call (until it is pruned, a week after it was over):
    /// click-to-call drops an event whose `CALL_ID` an earlier run already took.
    pub known: bool,
}

impl CallState {
    /// The `CALL_ID`, once known.
    pub fn call_id(&self) -> Option<&BitrixCallId> {
        self.registered.as_ref().map(|r| &r.call_id)
    }
}

/// An entry that may be dispatched now: the oldest pending entry of its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueEntry {
    /// Its id.
    pub id: EntryId,
    /// Its call.
    pub call: ExternalCallId,
    /// The write, exactly as pushed.
    pub write: BitrixWrite,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The call's state when the entry was read.
    pub state: CallState,
}

/// How an entry ended successfully; recorded by [`Store::ack`] in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Bitrix24 accepted the write.
    Sent {
        /// The write opened a card for someone.
        opened_card: bool,
    },
    /// `register` answered (or `Adopt` supplied the `CALL_ID`): stored with the call.
    Registered {
        /// The result later writes need.
        result: RegisterResult,
        /// `SHOW=1` was sent.
        opened_card: bool,
    },
    /// Deliberately not sent (e.g. a `show` for a call that is already over).
    Skipped {
        /// Why, for `outbox status` and the logs.
        reason: String,
    },
}

/// An entry that failed permanently and waits for an operator (`fsb24 outbox retry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its original id (kept on retry, so per-call order survives).
    pub id: EntryId,
    /// Its call.
    pub call: ExternalCallId,
    /// `register`, `show`, `hide`, `finish`, `attach_record` or `adopt`.
    pub kind: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was given up.
    pub failed_at: DateTime<Utc>,
    /// Why.
    pub reason: String,
}

/// A call a previous run left open (see [`Store::orphans`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    /// The call.
    pub call: ExternalCallId,
    /// Its writes still stored, in push order.
    pub writes: Vec<StoredWrite>,
}

/// One stored write of an [`Orphan`] and when it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWrite {
    /// When the call task stored it (a note's time is when its fact happened, to a few ms).
    pub at: DateTime<Utc>,
    /// The write.
    pub write: BitrixWrite,
}

/// A summary of the outbox for `fsb24 outbox status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusReport {
    /// Entries not yet delivered.
    pub pending: u64,
    /// Pending entries waiting for a retry time.
    pub waiting_retry: u64,
    /// Delivered (or deliberately skipped) entries not yet pruned.
    pub done: u64,
    /// Calls with pending entries.
    pub calls_pending: u64,
    /// When the oldest pending entry was pushed.
    pub oldest_pending: Option<DateTime<Utc>>,
    /// Every dead letter, oldest first.
    pub dead_letters: Vec<DeadLetter>,
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "pending: {} ({} waiting for a retry) in {} calls",
            self.pending, self.waiting_retry, self.calls_pending
        )?;
        if let Some(oldest) = self.oldest_pending {
            writeln!(f, "oldest pending since: {}", oldest.to_rfc3339())?;
        }
        writeln!(f, "done (not yet pruned): {}", self.done)?;
        writeln!(f, "dead letters: {}", self.dead_letters.len())?;
        for d in &self.dead_letters {
            writeln!(
                f,
                "  {} call={} kind={} attempts={} failed_at={} reason={}",
                d.id,
                d.call,
                d.kind,
                d.attempts,
                d.failed_at.to_rfc3339(),
                d.reason
            )?;
        }
        Ok(())
    }
}

/// Why a store operation failed. The entry concerned is named so the caller can act on it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or prepared.
    #[error("outbox {path}: cannot open")]
    Open {
        /// The database path.
        path: String,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// A statement failed.
    #[error("outbox {op}: database error")]
    Sql {
        /// The store operation (`push`, `due`, ...).
        op: &'static str,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// A write could not be encoded for storage.
    #[error("outbox {op}: cannot encode write")]
    Encode {
        /// The store operation.
        op: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The entry is not pending (already acknowledged, dead-lettered or pruned).
    #[error("outbox {op}: entry {entry} is not pending")]
    NotPending {
        /// The store operation.
        op: &'static str,
        /// The entry.
        entry: EntryId,
    },
    /// The blocking worker running SQLite panicked or was cancelled.
    #[error("outbox {op}: storage thread failed")]
    Thread {
        /// The store operation.
        op: &'static str,
    },
    /// Fault injection: the process "died" at this point (crash tests only).
    #[error("outbox {op}: simulated crash")]
    Crashed {
        /// The store operation.
        op: &'static str,
    },
    /// Crash-image or other file IO failed.
    #[error("outbox {op}: io error on {path}")]
    Io {
        /// The store operation.
        op: &'static str,
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Durable storage of outbox entries. Every method is cancel-safe in the sense that the
/// operation either committed or did not; a cancelled future may still commit.
pub trait Store: Send + Sync + 'static {
    /// Appends a write; when this returns `Ok` the entry survives a crash (kill -9).
    fn push(
        &self,
        write: CallWrite,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<EntryId, StoreError>>;
    /// Appends several writes atomically: after a crash all of them are stored or none (a
    /// call's finish and its attachRecord must not be split by a kill). Stores without
    /// transactions push one by one.
    fn push_many(
        &self,
        writes: Vec<CallWrite>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Vec<EntryId>, StoreError>> {
        Box::pin(async move {
            let mut ids = Vec::with_capacity(writes.len());
            for write in writes {
                ids.push(self.push(write, now).await?);
            }
            Ok(ids)
        })
    }
    /// [`Store::push_many`] that also keeps why each write was made, for the audit trail.
    /// Stores without one drop the causes.
    fn push_caused(
        &self,
        writes: Vec<(CallWrite, Option<WriteCause>)>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Vec<EntryId>, StoreError>> {
        self.push_many(writes.into_iter().map(|(w, _)| w).collect(), now)
    }
    /// Up to `limit` entries that are the oldest pending entry of their call and whose retry
    /// time has come; calls not yet over come first, then by id.
    fn due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<DueEntry>, StoreError>>;
    /// The earliest retry time later than `after` among the heads of the calls (what `due`
    /// will return once that time comes), if any.
    fn next_due_at(
        &self,
        after: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Option<DateTime<Utc>>, StoreError>>;
    /// Marks a pending entry done, storing a register result with its call atomically.
    fn ack(
        &self,
        entry: EntryId,
        done: Completion,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Records a failed attempt made at `now`; the entry becomes due again at `when`.
    fn retry_at(
        &self,
        entry: EntryId,
        when: DateTime<Utc>,
        error: String,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Moves a pending entry to the dead-letter table with the reason.
    fn dead_letter(
        &self,
        entry: EntryId,
        reason: String,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Stores a `CALL_ID` learnt outside the outbox (click-to-call).
    fn set_call_id(
        &self,
        call: ExternalCallId,
        id: BitrixCallId,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    /// What is known about a call (default state when nothing is).
    fn call_state(&self, call: ExternalCallId) -> BoxFuture<'_, Result<CallState, StoreError>>;
    /// Calls not marked over (no `finish` stored), with their stored writes: at startup these
    /// are the calls a killed previous run left behind. Stores without crash recovery
    /// report none.
    fn orphans(&self) -> BoxFuture<'_, Result<Vec<Orphan>, StoreError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    /// Deletes entries done before `before` and finished calls with nothing left; returns the
    /// number of entries deleted. Pending entries and dead letters are never pruned.
    fn prune(&self, before: DateTime<Utc>) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// Counts and dead letters for `fsb24 outbox status`.
    fn status(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<StatusReport, StoreError>>;
    /// Whether a write transaction can start now (readiness: disk full, read-only file, a lock
    /// held elsewhere). Stores without transactions are always writable.
    fn check_writable(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
    /// Makes every pending entry that waits for a retry time due at `now` (the portal answers
    /// again after an outage); returns how many. Stores without retry times release nothing.
    fn release_retries(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<u64, StoreError>> {
        let _ = now;
        Box::pin(async { Ok(0) })
    }
    /// Moves dead letters (of one call, or all) back to pending with their original ids; returns
    /// how many.
    fn retry_dead_letters(
        &self,
        call: Option<ExternalCallId>,
    ) -> BoxFuture<'_, Result<u64, StoreError>>;
}

/// The short name of a write, as stored and shown by `outbox status`.
pub fn kind_of(write: &BitrixWrite) -> &'static str {
    match write {
        BitrixWrite::Register(_) => "register",
        BitrixWrite::Adopt { .. } => "adopt",
        BitrixWrite::Show { .. } => "show",
        BitrixWrite::Hide { .. } => "hide",
        BitrixWrite::Finish(_) => "finish",
        BitrixWrite::AttachRecord { .. } => "attach_record",
        BitrixWrite::Note(_) => "note",
    }
}
