//! The SQL behind `fsb24 call show`: finds calls by their key, Bitrix24 `CALL_ID`, channel
//! uuid or phone number, then reads each call's entries, dead letters, causes and attempts.

use rusqlite::{Connection, OptionalExtension, params};

use super::ops::{from_ms, sql};
use crate::ids::ExternalCallId;
use crate::outbox::audit::{Attempt, CallTrail, TrailEntry};
use crate::outbox::store::{EntryId, RegisterResult, StoreError};

/// Keys of the calls `query` names: a call key (`fs-<uuid>`), a channel uuid, a Bitrix24
/// `CALL_ID`, or the client's phone number (as sent, with or without its `+`).
pub(super) fn find_calls(conn: &Connection, query: &str) -> Result<Vec<String>, StoreError> {
    let e = sql("find_calls");
    let quoted = format!("%\"{query}\"%");
    let plus = format!("%\"+{}\"%", query.trim_start_matches('+'));
    let matches = "(call = ?1 OR call = 'fs-' || ?1 OR call LIKE 'fs-' || ?1 || '-%'
          OR (kind IN ('register', 'note') AND (body LIKE ?2 OR body LIKE ?3)))";
    let q = format!(
        "SELECT call FROM entries WHERE {matches}
         UNION SELECT call FROM dead_letters WHERE {matches}
         UNION SELECT call FROM calls WHERE call = ?1 OR register LIKE ?2
         ORDER BY call"
    );
    let mut stmt = conn.prepare(&q).map_err(&e)?;
    let rows = stmt
        .query_map(params![query, quoted, plus], |r| r.get::<_, String>(0))
        .map_err(&e)?;
    rows.collect::<Result<_, _>>().map_err(&e)
}

/// Everything stored about `call`.
pub(super) fn trail(conn: &Connection, call: &str) -> Result<CallTrail, StoreError> {
    let e = sql("trail");
    let register: Option<Option<String>> = conn
        .query_row(
            "SELECT register FROM calls WHERE call = ?1",
            params![call],
            |r| r.get(0),
        )
        .optional()
        .map_err(&e)?;
    let call_id = register
        .flatten()
        .and_then(|t| serde_json::from_str::<RegisterResult>(&t).ok())
        .map(|r| r.call_id.to_string());
    let mut stmt = conn
        .prepare(
            "SELECT seq, kind, body, created_at,
                    CASE state WHEN 0 THEN 'pending' ELSE 'done' END
             FROM entries WHERE call = ?1
             UNION ALL
             SELECT seq, kind, body, created_at, 'dead letter' FROM dead_letters WHERE call = ?1
             ORDER BY 1",
        )
        .map_err(&e)?;
    let mut entries: Vec<TrailEntry> = stmt
        .query_map(params![call], |r| {
            Ok(TrailEntry {
                id: EntryId(r.get(0)?),
                kind: r.get(1)?,
                request: r.get(2)?,
                stored_at: from_ms(r.get(3)?),
                state: r.get(4)?,
                cause: None,
                attempts: Vec::new(),
            })
        })
        .map_err(&e)?
        .collect::<Result<_, _>>()
        .map_err(&e)?;
    for entry in &mut entries {
        entry.cause = conn
            .query_row(
                "SELECT at, event FROM causes WHERE seq = ?1",
                params![entry.id.0],
                |r| Ok((from_ms(r.get(0)?), r.get(1)?)),
            )
            .optional()
            .map_err(&e)?;
        let mut stmt = conn
            .prepare_cached("SELECT at, outcome FROM attempts WHERE seq = ?1 ORDER BY rowid")
            .map_err(&e)?;
        entry.attempts = stmt
            .query_map(params![entry.id.0], |r| {
                Ok(Attempt {
                    at: from_ms(r.get(0)?),
                    outcome: r.get(1)?,
                })
            })
            .map_err(&e)?
            .collect::<Result<_, _>>()
            .map_err(&e)?;
    }
    Ok(CallTrail {
        call: ExternalCallId::new(call),
        call_id,
        entries,
    })
}
