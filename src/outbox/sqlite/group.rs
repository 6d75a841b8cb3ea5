//! Group commit for pushes: the writes of every call that pushes while the connection is busy
//! go into the next transaction together, one commit and one fsync for all of them, and each
//! caller is answered only after that commit, so "stored before acknowledged" holds for each.
//!
//! Measured before this (docs/scaling.md): one transaction and one WAL fsync per push put the
//! call path behind the disk at 100 calls/s and more. Each push is its own savepoint inside the
//! shared transaction: a push that fails (an encoding error) is rolled back alone and only its
//! caller sees the error; a failed commit fails every push in it, none is half-stored.
//!
//! No timer: a group is whatever queued while the previous one held the connection, so a push
//! on an idle store commits at once, as before.

use std::sync::Mutex;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::ops::{ephemeral, insert_caused, sql, with_sync};
use crate::outbox::audit::WriteCause;
use crate::outbox::op::CallWrite;
use crate::outbox::store::{EntryId, StoreError};

/// What one caller's push returns.
pub(super) type Stored = Result<Vec<EntryId>, StoreError>;

/// One caller's writes (stored together or not at all) and where its answer goes.
pub(super) struct Pending {
    pub(super) writes: Vec<(CallWrite, Option<WriteCause>)>,
    pub(super) now: i64,
    pub(super) reply: oneshot::Sender<Stored>,
}

/// Pushes waiting for the next group commit.
#[derive(Default)]
pub(super) struct Group {
    queue: Mutex<Vec<Pending>>,
}

impl Group {
    /// Queues a push; the next [`Group::flush`] stores it.
    pub(super) fn enqueue(&self, pending: Pending) {
        self.lock().push(pending);
    }

    /// With the connection held: stores everything queued in one transaction and answers each
    /// caller after the commit. Nothing queued (an earlier flush took it): returns at once.
    pub(super) fn flush(&self, conn: &mut Connection) {
        let batch = std::mem::take(&mut *self.lock());
        if batch.is_empty() {
            return;
        }
        // The group waits for the fsync unless every write in it may skip it (card moves and
        // notes, see `ephemeral`); a FULL commit makes relaxed writes in it durable too.
        let relaxed = batch
            .iter()
            .all(|p| p.writes.iter().all(|(w, _)| ephemeral(&w.write)));
        let stored = with_sync(conn, "push", relaxed, |conn| store_all(conn, &batch));
        match stored {
            Ok(results) => {
                for (pending, result) in batch.into_iter().zip(results) {
                    // A caller that stopped waiting has nothing to be told.
                    let _ = pending.reply.send(result);
                }
            }
            Err(err) => {
                for pending in batch {
                    let _ = pending.reply.send(Err(copy_error(&err)));
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        // A poisoned queue only means a flush panicked after taking its batch; the queue itself
        // is a plain Vec and still whole.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One transaction, one savepoint per caller; the per-caller results count only if the commit
/// succeeds (an `Err` here fails them all).
fn store_all(conn: &mut Connection, batch: &[Pending]) -> Result<Vec<Stored>, StoreError> {
    let e = sql("push");
    let mut tx = conn.transaction().map_err(&e)?;
    let mut results = Vec::with_capacity(batch.len());
    for pending in batch {
        let sp = tx.savepoint().map_err(&e)?;
        let mut ids = Vec::with_capacity(pending.writes.len());
        let mut failed = None;
        for (write, cause) in &pending.writes {
            match insert_caused(&sp, "push", write, cause.as_ref(), pending.now) {
                Ok(id) => ids.push(id),
                Err(err) => {
                    failed = Some(err);
                    break;
                }
            }
        }
        match failed {
            // Dropping the savepoint rolls this caller's writes back, the others stay.
            Some(err) => results.push(Err(err)),
            None => {
                sp.commit().map_err(&e)?;
                results.push(Ok(ids));
            }
        }
    }
    tx.commit().map_err(&e)?;
    Ok(results)
}

/// The same failure for every caller of a failed group (`rusqlite::Error` is not `Clone`).
fn copy_error(err: &StoreError) -> StoreError {
    match err {
        StoreError::Sql { op, source } => StoreError::Sql {
            op,
            source: match source {
                rusqlite::Error::SqliteFailure(code, msg) => {
                    rusqlite::Error::SqliteFailure(*code, msg.clone())
                }
                other => rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                    Some(other.to_string()),
                ),
            },
        },
        _ => StoreError::Thread { op: "push" },
    }
}
