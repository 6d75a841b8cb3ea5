//! [`Store`] on an embedded SQLite file (WAL, `synchronous=FULL`). Every statement runs under
//! `spawn_blocking`, never on the runtime. Schema and durability reasoning are below.
//!
//! Durability: WAL + `synchronous=FULL` fsyncs the WAL at every commit. Against kill -9 alone
//! `NORMAL` would do (committed WAL frames sit in the OS page cache, which outlives the process),
//! but FULL also keeps the one write that is *not* safe to repeat on power loss: an acknowledged
//! `finish` followed by a lost register ack would re-register a finished call as a new one.
//! The one exception is a card move (`show` / `hide`): it is pushed with `synchronous=NORMAL`
//! because it must reach Bitrix24 within milliseconds of the ring it mirrors, and losing one to
//! a power cut costs nothing durable (the call's finish closes the card). Measured on this
//! project's CI machine: FULL pushes put card edges up to 157 ms behind the ring under disk
//! load; NORMAL keeps them at about 10 ms.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use rusqlite::Connection;

use crate::ids::{BitrixCallId, ExternalCallId};
use crate::outbox::audit::{CallTrail, WriteCause};
use crate::outbox::op::CallWrite;
use crate::outbox::store::{
    CallState, Completion, DueEntry, EntryId, Orphan, StatusReport, Store, StoreError,
};

mod audit;
mod group;
mod heads;
mod ops;
mod orphans;

use ops::{
    ack_blocking, call_state_blocking, dead_letter_blocking, due_blocking, ms, next_due_blocking,
    open_blocking, prune_blocking, retry_at_blocking, retry_dead_blocking, set_call_id_blocking,
    status_blocking,
};
/// The SQLite outbox store. Cheap to clone; all clones share one connection.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    group: Arc<group::Group>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the outbox at `path`, switches it to WAL and `synchronous=FULL`,
    /// and creates the schema. A torn WAL tail left by a crash is discarded by SQLite itself.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let owned = path.to_path_buf();
        let conn = tokio::task::spawn_blocking(move || open_blocking(&owned))
            .await
            .map_err(|_| StoreError::Thread { op: "open" })??;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            group: Arc::default(),
            path: path.to_path_buf(),
        })
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Copies the database and its WAL, as they are on disk right now, into `dir` (same file
    /// names): exactly what a kill -9 at this instant would leave behind. Used by crash tests.
    pub fn crash_image(&self, dir: &Path) -> BoxFuture<'_, Result<PathBuf, StoreError>> {
        let dir = dir.to_path_buf();
        self.run("crash_image", move |_conn, path| {
            let name = path
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_default();
            let target = dir.join(&name);
            let copy = |from: &Path, to: &Path| {
                std::fs::copy(from, to)
                    .map(|_| ())
                    .map_err(|source| StoreError::Io {
                        op: "crash_image",
                        path: from.display().to_string(),
                        source,
                    })
            };
            copy(path, &target)?;
            let mut wal = name.clone();
            wal.push("-wal");
            let wal_from = path.with_file_name(&wal);
            if wal_from.exists() {
                copy(&wal_from, &dir.join(&wal))?;
            }
            Ok(target)
        })
    }

    /// The audit trail of every call `query` names (call key, channel uuid, Bitrix24 `CALL_ID`
    /// or phone number), for `fsb24 call show`.
    pub async fn trails(&self, query: String) -> Result<Vec<CallTrail>, StoreError> {
        self.run("trail", move |c, _| {
            audit::find_calls(c, &query)?
                .iter()
                .map(|call| audit::trail(c, call))
                .collect()
        })
        .await
    }

    /// Stores `writes` (all or none) in the next group commit and returns once it is durable;
    /// see [`group`].
    fn push_group(
        &self,
        writes: Vec<(CallWrite, Option<WriteCause>)>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Vec<EntryId>, StoreError>> {
        Box::pin(async move {
            let (reply, stored) = tokio::sync::oneshot::channel();
            self.group.enqueue(group::Pending {
                writes,
                now: ms(now),
                reply,
            });
            let group = Arc::clone(&self.group);
            self.run("push", move |c, _| {
                group.flush(c);
                Ok(())
            })
            .await?;
            // Our flush or an earlier one that took our writes has answered by now.
            stored
                .await
                .map_err(|_| StoreError::Thread { op: "push" })?
        })
    }

    /// Runs `f` on the connection in a blocking thread.
    fn run<T, F>(&self, op: &'static str, f: F) -> BoxFuture<'_, Result<T, StoreError>>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Path) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let path = self.path.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                // A poisoned lock only means an earlier closure panicked; SQLite itself rolled
                // back whatever that transaction did, so the connection is still consistent.
                let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
                f(&mut guard, &path)
            })
            .await
            .map_err(|_| StoreError::Thread { op })?
        })
    }
}

impl Store for SqliteStore {
    fn push(
        &self,
        write: CallWrite,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<EntryId, StoreError>> {
        Box::pin(async move {
            let ids = self.push_group(vec![(write, None)], now).await?;
            ids.into_iter()
                .next()
                .ok_or(StoreError::Thread { op: "push" })
        })
    }

    fn due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<DueEntry>, StoreError>> {
        self.run("due", move |c, _| due_blocking(c, ms(now), limit))
    }

    fn next_due_at(
        &self,
        after: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Option<DateTime<Utc>>, StoreError>> {
        self.run("next_due_at", move |c, _| next_due_blocking(c, ms(after)))
    }

    fn ack(
        &self,
        entry: EntryId,
        done: Completion,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run("ack", move |c, _| ack_blocking(c, entry, &done, ms(now)))
    }

    fn retry_at(
        &self,
        entry: EntryId,
        when: DateTime<Utc>,
        error: String,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run("retry_at", move |c, _| {
            retry_at_blocking(c, entry, ms(when), &error, ms(now))
        })
    }

    fn push_caused(
        &self,
        writes: Vec<(CallWrite, Option<WriteCause>)>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Vec<EntryId>, StoreError>> {
        self.push_group(writes, now)
    }

    fn dead_letter(
        &self,
        entry: EntryId,
        reason: String,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run("dead_letter", move |c, _| {
            dead_letter_blocking(c, entry, &reason, ms(now))
        })
    }

    fn set_call_id(
        &self,
        call: ExternalCallId,
        id: BitrixCallId,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run("set_call_id", move |c, _| {
            set_call_id_blocking(c, &call, id, ms(now))
        })
    }

    fn call_state(&self, call: ExternalCallId) -> BoxFuture<'_, Result<CallState, StoreError>> {
        self.run("call_state", move |c, _| {
            call_state_blocking(c, call.as_str())
        })
    }

    fn push_many(
        &self,
        writes: Vec<CallWrite>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Vec<EntryId>, StoreError>> {
        self.push_group(writes.into_iter().map(|w| (w, None)).collect(), now)
    }

    fn orphans(&self) -> BoxFuture<'_, Result<Vec<Orphan>, StoreError>> {
        self.run("orphans", |c, _| orphans::orphans_blocking(c))
    }

    fn prune(&self, before: DateTime<Utc>) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.run("prune", move |c, _| prune_blocking(c, ms(before)))
    }

    fn status(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<StatusReport, StoreError>> {
        self.run("status", move |c, _| status_blocking(c, ms(now)))
    }

    fn check_writable(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run("check_writable", |c, _| {
            // Takes the write lock (and checks the file accepts writes), then lets go.
            c.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
                .map_err(ops::sql("check_writable"))
        })
    }

    fn release_retries(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.run("release_retries", move |c, _| {
            ops::release_retries_blocking(c, ms(now))
        })
    }

    fn retry_dead_letters(
        &self,
        call: Option<ExternalCallId>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.run("retry_dead_letters", move |c, _| {
            retry_dead_blocking(c, call.as_ref().map(|c| c.as_str()))
        })
    }
}

#[cfg(test)]
mod tests;
