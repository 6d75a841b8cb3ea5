//! The `heads` table: each call's oldest pending entry, kept by triggers on `entries` and
//! `calls`, so the worker's `due()` reads an index ordered the way it delivers (live calls
//! first, then by sequence) and stops at its limit, instead of scanning every pending entry of
//! the backlog for its call's minimum (measured: the scan put over 30 % of fsb24's CPU in SQLite
//! once a backlog built, see docs/scaling.md).
//!
//! Triggers, not code at every call site, keep it right: every statement that changes which
//! entry heads a call (insert, ack, dead letter, retry time, re-queued dead letters, prune)
//! goes through `entries`, and the finish's `over` flag through `calls`. A file written by an
//! older build has no heads: [`rebuild`] recomputes them all when the store opens.

use rusqlite::Connection;

/// Table, order index and triggers; idempotent.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS heads (
    call       TEXT    PRIMARY KEY,
    seq        INTEGER NOT NULL,
    not_before INTEGER NOT NULL,
    over       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS heads_order ON heads(over, seq);
CREATE INDEX IF NOT EXISTS heads_not_before ON heads(not_before);
-- A new pending entry heads its call unless an older one is pending (re-queued dead letters
-- come back with their old, smaller seq).
CREATE TRIGGER IF NOT EXISTS heads_insert AFTER INSERT ON entries WHEN NEW.state = 0 BEGIN
    INSERT INTO heads(call, seq, not_before, over)
    VALUES (NEW.call, NEW.seq, NEW.not_before,
            COALESCE((SELECT over FROM calls WHERE call = NEW.call), 0))
    ON CONFLICT(call) DO UPDATE SET seq = excluded.seq, not_before = excluded.not_before
    WHERE excluded.seq < heads.seq;
END;
-- Acked or settled, or its retry time moved: the call's head is recomputed from the partial
-- index entries_pending(call, seq), one seek.
CREATE TRIGGER IF NOT EXISTS heads_update AFTER UPDATE OF state, not_before ON entries BEGIN
    DELETE FROM heads WHERE call = NEW.call;
    INSERT INTO heads(call, seq, not_before, over)
    SELECT e.call, e.seq, e.not_before, COALESCE((SELECT over FROM calls WHERE call = e.call), 0)
    FROM entries e WHERE e.call = NEW.call AND e.state = 0 ORDER BY e.seq LIMIT 1;
END;
CREATE TRIGGER IF NOT EXISTS heads_delete AFTER DELETE ON entries WHEN OLD.state = 0 BEGIN
    DELETE FROM heads WHERE call = OLD.call;
    INSERT INTO heads(call, seq, not_before, over)
    SELECT e.call, e.seq, e.not_before, COALESCE((SELECT over FROM calls WHERE call = e.call), 0)
    FROM entries e WHERE e.call = OLD.call AND e.state = 0 ORDER BY e.seq LIMIT 1;
END;
CREATE TRIGGER IF NOT EXISTS heads_over AFTER UPDATE OF over ON calls BEGIN
    UPDATE heads SET over = NEW.over WHERE call = NEW.call;
END;
";

/// The head of every call, read from `heads`; `?1` = now (ms). Same columns and order as the
/// scan it replaces: live calls before finished ones, then by sequence.
pub(super) const DUE: &str = "
SELECT e.seq, e.call, e.body, e.attempts, c.register, h.over, COALESCE(c.cards_opened, 0)
FROM heads h JOIN entries e ON e.seq = h.seq LEFT JOIN calls c ON c.call = h.call
WHERE h.not_before <= ?1
ORDER BY h.over, h.seq LIMIT ?2";

/// The earliest retry time after `?1` among the heads.
pub(super) const NEXT_DUE: &str = "SELECT MIN(not_before) FROM heads WHERE not_before > ?1";

/// Recomputes every head from `entries` (one scan, at open): a file from a build without the
/// table, or any drift, is repaired before the worker reads it.
pub(super) fn rebuild(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         DELETE FROM heads;
         INSERT INTO heads(call, seq, not_before, over)
         SELECT e.call, e.seq, e.not_before, COALESCE(c.over, 0)
         FROM entries e LEFT JOIN calls c ON c.call = e.call
         WHERE e.state = 0
           AND e.seq = (SELECT MIN(p.seq) FROM entries p WHERE p.call = e.call AND p.state = 0);
         COMMIT;",
    )
}
