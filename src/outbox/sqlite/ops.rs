//! The SQL behind [`super::SqliteStore`]: schema and one blocking function per store
//! operation, each a single transaction. Called only from `spawn_blocking`.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::ids::{BitrixCallId, ExternalCallId};
use crate::outbox::audit::WriteCause;
use crate::outbox::op::{BitrixWrite, CallNote, CallWrite};
use crate::outbox::store::{
    CallState, Completion, DeadLetter, DueEntry, EntryId, RegisterResult, StatusReport, StoreError,
    kind_of,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    call       TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    state      INTEGER NOT NULL DEFAULT 0, -- 0 pending, 1 done
    attempts   INTEGER NOT NULL DEFAULT 0,
    not_before INTEGER NOT NULL DEFAULT 0, -- unix ms
    last_error TEXT,
    created_at INTEGER NOT NULL,
    done_at    INTEGER,
    outcome    TEXT
);
CREATE INDEX IF NOT EXISTS entries_pending ON entries(call, seq) WHERE state = 0;
CREATE INDEX IF NOT EXISTS entries_done ON entries(done_at) WHERE state = 1;
CREATE TABLE IF NOT EXISTS calls (
    call         TEXT PRIMARY KEY,
    register     TEXT,
    over         INTEGER NOT NULL DEFAULT 0,
    cards_opened INTEGER NOT NULL DEFAULT 0,
    updated_at   INTEGER NOT NULL
);
-- The audit trail (`fsb24 call show`): why each entry was written, and every attempt.
CREATE TABLE IF NOT EXISTS causes (
    seq   INTEGER PRIMARY KEY,
    at    INTEGER NOT NULL,
    event TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
    seq     INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    outcome TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_seq ON attempts(seq);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq        INTEGER PRIMARY KEY,
    call       TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    attempts   INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    failed_at  INTEGER NOT NULL,
    reason     TEXT    NOT NULL
);
";

pub(super) fn open_blocking(path: &Path) -> Result<Connection, StoreError> {
    let err = |source| StoreError::Open {
        path: path.display().to_string(),
        source,
    };
    make_private(path)?;
    let conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(err)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(err(rusqlite::Error::InvalidParameterName(format!(
            "journal_mode={mode}"
        ))));
    }
    conn.execute_batch("PRAGMA synchronous=FULL;")
        .map_err(err)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.execute_batch(SCHEMA).map_err(err)?;
    conn.execute_batch(super::heads::SCHEMA).map_err(err)?;
    // Notes an older build queued are settled the way notes are stored now (see `insert_entry`).
    conn.execute(
        "UPDATE entries SET state = 1, done_at = created_at, outcome = ?1
         WHERE kind = 'note' AND state = 0",
        params![NOTE_STORED],
    )
    .map_err(err)?;
    super::heads::rebuild(&conn).map_err(err)?;
    Ok(conn)
}

/// Statements kept compiled (rusqlite's default is 16; the store uses about 25 distinct ones).
const STATEMENT_CACHE: usize = 64;

/// How a note is settled: stored beside the call's writes for startup recovery, never queued.
const NOTE_STORED: &str = "stored for recovery (never sent)";

/// The outbox holds callers' numbers (personal data): the database is created mode 0600 before
/// SQLite opens it (SQLite gives its `-wal` and `-shm` the database's mode), and files an older
/// version left world-readable are narrowed to 0600.
fn make_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |file: &Path, source| StoreError::Io {
        op: "open",
        path: file.display().to_string(),
        source,
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| io(path, e))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = Path::new(&name);
        match std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(file, e)),
        }
    }
    Ok(())
}

pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn from_ms(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(v).unwrap_or_default()
}

pub(super) fn count(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    Ok(u64::try_from(row.get::<_, i64>(idx)?).unwrap_or_default())
}

pub(super) fn sql(op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sql { op, source }
}

/// Runs one statement through the connection's statement cache. The hot statements (every push,
/// ack and retry) are compiled once instead of on every call: compiling them, with the `heads`
/// triggers they fire, was about 6 % of fsb24's CPU at 100 calls/s (docs/scaling.md).
pub(super) fn exec(
    conn: &Connection,
    statement: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(statement)?.execute(params)
}

pub(super) fn touch_call(tx: &Connection, call: &str, now: i64) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT INTO calls(call, updated_at) VALUES (?1, ?2)
         ON CONFLICT(call) DO UPDATE SET updated_at = excluded.updated_at",
        params![call, now],
    )
    .map(|_| ())
}

/// Writes that commit without the WAL fsync: card moves, which only matter while the call is
/// live and must reach the portal within milliseconds of the ring they mirror, and the answer,
/// recording and channel notes, which only make a recovered call's finish more exact. Without
/// the fsync a commit still survives kill -9 (the page cache outlives the process); a power cut
/// may lose it, which costs a re-sent card move or an "outcome unknown". The accepted note is
/// the call's only record until its register: it waits for the fsync, like every other write,
/// and a later fsync makes the earlier relaxed commits durable too.
pub(super) fn ephemeral(write: &BitrixWrite) -> bool {
    matches!(
        write,
        BitrixWrite::Show { .. }
            | BitrixWrite::Hide { .. }
            | BitrixWrite::Note(
                CallNote::Answered { .. } | CallNote::Recording { .. } | CallNote::Channel { .. }
            )
    )
}

/// Runs `f` with `synchronous=NORMAL` when `relaxed` (else `FULL`), then puts the connection
/// back to `FULL` whatever `f` returned, so a failed relaxed write never relaxes the next one.
pub(super) fn with_sync<T>(
    conn: &mut Connection,
    op: &'static str,
    relaxed: bool,
    f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // The connection is FULL outside this function, so a FULL write changes nothing.
    if !relaxed {
        return f(conn);
    }
    // Not through the statement cache: SQLite applies `synchronous` while compiling the
    // pragma, so a cached one would change nothing when run again.
    let e = sql(op);
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(&e)?;
    let result = f(conn);
    let restored = conn.pragma_update(None, "synchronous", "FULL").map_err(&e);
    let value = result?;
    restored?;
    Ok(value)
}

/// Inserts one entry inside `tx` (touching its call; a finish marks the call over). A note is
/// stored settled: recovery reads it with the call's writes, the worker never sees it, so the
/// worker's per-call order is over the writes it sends and nothing else.
pub(super) fn insert_entry(
    tx: &Connection,
    op: &'static str,
    write: &CallWrite,
    now: i64,
) -> Result<EntryId, StoreError> {
    let e = sql(op);
    let body =
        serde_json::to_string(&write.write).map_err(|source| StoreError::Encode { op, source })?;
    let call = write.call.as_str();
    let kind = kind_of(&write.write);
    let seq = if matches!(write.write, BitrixWrite::Note(_)) {
        // Settled as it is inserted: no `heads` trigger fires for it (it never heads its call).
        exec(
            tx,
            "INSERT INTO entries(call, kind, body, created_at, state, done_at, outcome)
             VALUES (?1, ?2, ?3, ?4, 1, ?4, ?5)",
            params![call, kind, body, now, NOTE_STORED],
        )
        .map_err(&e)?;
        let seq = tx.last_insert_rowid();
        note_attempt(tx, EntryId(seq), now, NOTE_STORED).map_err(&e)?;
        seq
    } else {
        exec(
            tx,
            "INSERT INTO entries(call, kind, body, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![call, kind, body, now],
        )
        .map_err(&e)?;
        tx.last_insert_rowid()
    };
    touch_call(tx, call, now).map_err(&e)?;
    if matches!(write.write, BitrixWrite::Finish(_)) {
        exec(
            tx,
            "UPDATE calls SET over = 1 WHERE call = ?1",
            params![call],
        )
        .map_err(&e)?;
    }
    Ok(EntryId(seq))
}

/// [`insert_entry`] and, when given, why the write was made (same transaction).
pub(super) fn insert_caused(
    tx: &Connection,
    op: &'static str,
    write: &CallWrite,
    cause: Option<&WriteCause>,
    now: i64,
) -> Result<EntryId, StoreError> {
    let id = insert_entry(tx, op, write, now)?;
    if let Some(cause) = cause {
        exec(
            tx,
            "INSERT OR REPLACE INTO causes(seq, at, event) VALUES (?1, ?2, ?3)",
            params![id.0, ms(cause.at), cause.event],
        )
        .map_err(sql(op))?;
    }
    Ok(id)
}

/// Notes one attempt (or settlement) of `entry` inside the caller's transaction.
fn note_attempt(tx: &Connection, entry: EntryId, at: i64, outcome: &str) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT INTO attempts(seq, at, outcome) VALUES (?1, ?2, ?3)",
        params![entry.0, at, outcome],
    )
    .map(drop)
}

/// One head row before decoding.
struct RawHead {
    seq: i64,
    call: String,
    body: String,
    attempts: u32,
    register: Option<String>,
    over: bool,
    cards_opened: bool,
}

pub(super) fn due_blocking(
    conn: &mut Connection,
    now: i64,
    limit: usize,
) -> Result<Vec<DueEntry>, StoreError> {
    let e = sql("due");
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let raw: Vec<RawHead> = {
        let mut stmt = conn.prepare_cached(super::heads::DUE).map_err(&e)?;
        let rows = stmt
            .query_map(params![now, limit], |r| {
                Ok(RawHead {
                    seq: r.get(0)?,
                    call: r.get(1)?,
                    body: r.get(2)?,
                    attempts: r.get(3)?,
                    register: r.get(4)?,
                    over: r.get(5)?,
                    cards_opened: r.get(6)?,
                })
            })
            .map_err(&e)?;
        rows.collect::<Result<_, _>>().map_err(&e)?
    };
    let mut out = Vec::with_capacity(raw.len());
    for head in raw {
        match decode_head(&head) {
            Ok(entry) => out.push(entry),
            // An entry we cannot read back (hand-edited file, older format) would block its call
            // forever: it goes to the dead letters where `outbox status` shows it.
            Err(reason) => dead_letter_blocking(conn, EntryId(head.seq), &reason, now)?,
        }
    }
    Ok(out)
}

fn decode_head(head: &RawHead) -> Result<DueEntry, String> {
    let write: BitrixWrite =
        serde_json::from_str(&head.body).map_err(|err| format!("undecodable entry: {err}"))?;
    let registered = match &head.register {
        Some(text) => Some(
            serde_json::from_str::<RegisterResult>(text)
                .map_err(|err| format!("undecodable register result: {err}"))?,
        ),
        None => None,
    };
    Ok(DueEntry {
        id: EntryId(head.seq),
        call: ExternalCallId::new(head.call.clone()),
        write,
        attempts: head.attempts,
        state: CallState {
            registered,
            over: head.over,
            cards_opened: head.cards_opened,
            known: true,
        },
    })
}

pub(super) fn ack_blocking(
    conn: &mut Connection,
    entry: EntryId,
    done: &Completion,
    now: i64,
) -> Result<(), StoreError> {
    let e = sql("ack");
    // The ack of a card move needs no fsync either: losing it to a power cut re-sends a show or
    // hide, which is harmless. Waiting for it held the call's next card move back by up to
    // 230 ms under disk load (pinned by call_queue's sequential ring-step test).
    let kind = entry_text(conn, "SELECT kind FROM entries WHERE seq = ?1", entry).map_err(&e)?;
    let relaxed = matches!(kind.as_deref(), Some("show" | "hide"));
    with_sync(conn, "ack", relaxed, |conn| {
        ack_in_tx(conn, entry, done, now)
    })
}

/// The one text column `query` selects for `entry` (bound as `?1`); `None` when no row matches.
fn entry_text(conn: &Connection, query: &str, entry: EntryId) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached(query)?
        .query_row(params![entry.0], |r| r.get(0))
        .optional()
}

fn ack_in_tx(
    conn: &mut Connection,
    entry: EntryId,
    done: &Completion,
    now: i64,
) -> Result<(), StoreError> {
    let e = sql("ack");
    let tx = conn.transaction().map_err(&e)?;
    let call = entry_text(
        &tx,
        "SELECT call FROM entries WHERE seq = ?1 AND state = 0",
        entry,
    )
    .map_err(&e)?;
    let Some(call) = call else {
        return Err(StoreError::NotPending { op: "ack", entry });
    };
    let (outcome, opened, register) = match done {
        Completion::Sent { opened_card } => ("sent".to_owned(), *opened_card, None),
        Completion::Registered {
            result,
            opened_card,
        } => {
            let text = serde_json::to_string(result)
                .map_err(|source| StoreError::Encode { op: "ack", source })?;
            (
                format!("registered {}", result.call_id),
                *opened_card,
                Some(text),
            )
        }
        Completion::Skipped { reason } => (format!("skipped: {reason}"), false, None),
    };
    exec(
        &tx,
        "UPDATE entries SET state = 1, done_at = ?2, outcome = ?3 WHERE seq = ?1",
        params![entry.0, now, outcome],
    )
    .map_err(&e)?;
    note_attempt(&tx, entry, now, &outcome).map_err(&e)?;
    touch_call(&tx, &call, now).map_err(&e)?;
    if let Some(text) = register {
        exec(
            &tx,
            "UPDATE calls SET register = ?2 WHERE call = ?1",
            params![call, text],
        )
        .map_err(&e)?;
    }
    if opened {
        exec(
            &tx,
            "UPDATE calls SET cards_opened = 1 WHERE call = ?1",
            params![call],
        )
        .map_err(&e)?;
    }
    tx.commit().map_err(&e)
}

/// Runs `statement`, which changes `entry` only while it is pending: no row changed means the
/// entry is not pending (already acked, dead-lettered or unknown).
fn change_pending(
    tx: &rusqlite::Transaction<'_>,
    op: &'static str,
    entry: EntryId,
    statement: &str,
    params: impl rusqlite::Params,
) -> Result<(), StoreError> {
    let changed = exec(tx, statement, params).map_err(sql(op))?;
    if changed == 0 {
        return Err(StoreError::NotPending { op, entry });
    }
    Ok(())
}

pub(super) fn dead_letter_blocking(
    conn: &mut Connection,
    entry: EntryId,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    let e = sql("dead_letter");
    let tx = conn.transaction().map_err(&e)?;
    change_pending(
        &tx,
        "dead_letter",
        entry,
        "INSERT INTO dead_letters(seq, call, kind, body, attempts, created_at, failed_at, reason)
         SELECT seq, call, kind, body, attempts + 1, created_at, ?2, ?3
         FROM entries WHERE seq = ?1 AND state = 0",
        params![entry.0, now, reason],
    )?;
    tx.execute("DELETE FROM entries WHERE seq = ?1", params![entry.0])
        .map_err(&e)?;
    note_attempt(&tx, entry, now, &format!("dead letter: {reason}")).map_err(&e)?;
    tx.commit().map_err(&e)
}

pub(super) fn status_blocking(conn: &mut Connection, now: i64) -> Result<StatusReport, StoreError> {
    let e = sql("status");
    let (pending, waiting_retry, calls_pending, oldest): (u64, u64, u64, Option<i64>) = conn
        .query_row(
            "SELECT COUNT(*), COALESCE(SUM(not_before > ?1), 0), COUNT(DISTINCT call), MIN(created_at)
             FROM entries WHERE state = 0",
            params![now],
            |r| Ok((count(r, 0)?, count(r, 1)?, count(r, 2)?, r.get(3)?)),
        )
        .map_err(&e)?;
    let done: u64 = conn
        .query_row("SELECT COUNT(*) FROM entries WHERE state = 1", [], |r| {
            count(r, 0)
        })
        .map_err(&e)?;
    let mut stmt = conn
        .prepare(
            "SELECT seq, call, kind, attempts, failed_at, reason FROM dead_letters ORDER BY seq",
        )
        .map_err(&e)?;
    let dead_letters = stmt
        .query_map([], |r| {
            Ok(DeadLetter {
                id: EntryId(r.get(0)?),
                call: ExternalCallId::new(r.get::<_, String>(1)?),
                kind: r.get(2)?,
                attempts: r.get(3)?,
                failed_at: from_ms(r.get(4)?),
                reason: r.get(5)?,
            })
        })
        .map_err(&e)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(&e)?;
    Ok(StatusReport {
        pending,
        waiting_retry,
        done,
        calls_pending,
        oldest_pending: oldest.map(from_ms),
        dead_letters,
    })
}

pub(super) fn retry_dead_blocking(
    conn: &mut Connection,
    call: Option<&str>,
) -> Result<u64, StoreError> {
    let e = sql("retry_dead_letters");
    let tx = conn.transaction().map_err(&e)?;
    // Original seq numbers go back in, so the call's order is what it was.
    let moved = tx
        .execute(
            "INSERT INTO entries(seq, call, kind, body, attempts, not_before, last_error, created_at)
             SELECT seq, call, kind, body, 0, 0, 'retried after: ' || reason, created_at
             FROM dead_letters WHERE ?1 IS NULL OR call = ?1",
            params![call],
        )
        .map_err(&e)?;
    tx.execute(
        "DELETE FROM dead_letters WHERE ?1 IS NULL OR call = ?1",
        params![call],
    )
    .map_err(&e)?;
    tx.commit().map_err(&e)?;
    Ok(moved as u64)
}

pub(super) fn prune_blocking(conn: &mut Connection, before: i64) -> Result<u64, StoreError> {
    let e = sql("prune");
    let tx = conn.transaction().map_err(&e)?;
    let n = tx
        .execute(
            "DELETE FROM entries WHERE state = 1 AND done_at < ?1",
            params![before],
        )
        .map_err(&e)?;
    for table in ["causes", "attempts"] {
        tx.execute(
            &format!(
                "DELETE FROM {table} WHERE seq NOT IN (SELECT seq FROM entries)
                   AND seq NOT IN (SELECT seq FROM dead_letters)"
            ),
            [],
        )
        .map_err(&e)?;
    }
    // Only calls that are over lose their CALL_ID, and only once nothing of theirs is left.
    tx.execute(
        "DELETE FROM calls WHERE over = 1 AND updated_at < ?1
           AND NOT EXISTS (SELECT 1 FROM entries x WHERE x.call = calls.call)
           AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.call = calls.call)",
        params![before],
    )
    .map_err(&e)?;
    tx.commit().map_err(&e)?;
    Ok(n as u64)
}

pub(super) fn call_state_blocking(
    conn: &mut Connection,
    call: &str,
) -> Result<CallState, StoreError> {
    let e = sql("call_state");
    let row: Option<(Option<String>, bool, bool)> = conn
        .query_row(
            "SELECT register, over, cards_opened FROM calls WHERE call = ?1",
            params![call],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(&e)?;
    let Some((register, over, cards_opened)) = row else {
        return Ok(CallState::default());
    };
    // An unreadable register result is treated as absent: the entries needing it dead-letter
    // with a clear reason instead of the whole worker failing.
    let registered = register.and_then(|t| serde_json::from_str(&t).ok());
    Ok(CallState {
        registered,
        over,
        cards_opened,
        known: true,
    })
}

pub(super) fn next_due_blocking(
    conn: &mut Connection,
    after: i64,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let at: Option<i64> = conn
        .prepare_cached(super::heads::NEXT_DUE)
        .and_then(|mut stmt| stmt.query_row(params![after], |r| r.get(0)))
        .map_err(sql("next_due_at"))?;
    Ok(at.map(from_ms))
}

pub(super) fn retry_at_blocking(
    conn: &mut Connection,
    entry: EntryId,
    when: i64,
    error: &str,
    now: i64,
) -> Result<(), StoreError> {
    let e = sql("retry_at");
    let tx = conn.transaction().map_err(&e)?;
    change_pending(
        &tx,
        "retry_at",
        entry,
        "UPDATE entries SET attempts = attempts + 1, not_before = ?2, last_error = ?3
         WHERE seq = ?1 AND state = 0",
        params![entry.0, when, error],
    )?;
    let next = from_ms(when).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    note_attempt(&tx, entry, now, &format!("retry at {next}: {error}")).map_err(&e)?;
    tx.commit().map_err(&e)
}

/// Pending entries waiting for a retry time become due at `now`; their order is unchanged.
pub(super) fn release_retries_blocking(conn: &mut Connection, now: i64) -> Result<u64, StoreError> {
    let n = conn
        .execute(
            "UPDATE entries SET not_before = ?1 WHERE state = 0 AND not_before > ?1",
            params![now],
        )
        .map_err(sql("release_retries"))?;
    Ok(n as u64)
}

pub(super) fn set_call_id_blocking(
    conn: &mut Connection,
    call: &ExternalCallId,
    id: BitrixCallId,
    now: i64,
) -> Result<(), StoreError> {
    let e = sql("set_call_id");
    let result = RegisterResult {
        call_id: id,
        crm: None,
        created_lead: None,
    };
    let text = serde_json::to_string(&result).map_err(|source| StoreError::Encode {
        op: "set_call_id",
        source,
    })?;
    let tx = conn.transaction().map_err(&e)?;
    touch_call(&tx, call.as_str(), now).map_err(&e)?;
    tx.execute(
        "UPDATE calls SET register = ?2 WHERE call = ?1",
        params![call.as_str(), text],
    )
    .map_err(&e)?;
    tx.commit().map_err(&e)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn synchronous(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_failed_relaxed_write_leaves_the_connection_fully_synchronous() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_blocking(&dir.path().join("outbox.db")).unwrap();
        let failed: Result<(), StoreError> = with_sync(&mut conn, "push", true, |conn| {
            assert_eq!(synchronous(conn), 1, "NORMAL inside");
            Err(StoreError::NotPending {
                op: "push",
                entry: EntryId(1),
            })
        });
        assert!(failed.is_err());
        assert_eq!(synchronous(&conn), 2, "FULL again after the failure");
    }
}
