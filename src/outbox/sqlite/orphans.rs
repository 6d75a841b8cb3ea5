//! Calls a previous run left open: a `register` (or other writes) stored but no `finish`.

use rusqlite::{Connection, params};

use crate::ids::ExternalCallId;
use crate::outbox::op::BitrixWrite;
use crate::outbox::store::{Orphan, StoreError, StoredWrite};

use super::ops::{from_ms, sql};

/// Every call not marked over, with the writes still stored for it (pending and done, in
/// push order; entries already pruned or dead-lettered are not included).
pub(super) fn orphans_blocking(conn: &mut Connection) -> Result<Vec<Orphan>, StoreError> {
    let e = sql("orphans");
    let mut stmt = conn
        .prepare(
            "SELECT c.call, e.body, e.created_at FROM calls c LEFT JOIN entries e ON e.call = c.call
             WHERE c.over = 0 ORDER BY c.call, e.seq",
        )
        .map_err(&e)?;
    let rows = stmt
        .query_map(params![], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })
        .map_err(&e)?;
    let mut out: Vec<Orphan> = Vec::new();
    for row in rows {
        let (call, body, at) = row.map_err(&e)?;
        if out.last().is_none_or(|o| o.call.as_str() != call) {
            out.push(Orphan {
                call: ExternalCallId::new(call),
                writes: Vec::new(),
            });
        }
        // An undecodable body cannot tell us anything about the call; it is skipped here and
        // dead-letters with its reason when the worker reaches it.
        let write = body.and_then(|b| serde_json::from_str::<BitrixWrite>(&b).ok());
        if let (Some(write), Some(at), Some(last)) = (write, at, out.last_mut()) {
            last.writes.push(StoredWrite {
                at: from_ms(at),
                write,
            });
        }
    }
    Ok(out)
}
