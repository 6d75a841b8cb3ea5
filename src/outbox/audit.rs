//! The audit trail of a call's Bitrix24 writes: why each write was made (the event behind it),
//! when it was stored, every attempt with its answer, and how it ended. Written by the store in
//! the same transactions as the entries; read by `fsb24 call show`. No IO here.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::time::Instant;

use crate::ids::ExternalCallId;
use crate::outbox::store::EntryId;

/// The event that made a call emit a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteCause {
    /// What happened, e.g. `CHANNEL_EXECUTE bridge: phones ring`.
    pub event: String,
    /// When the call handled it (wall clock).
    pub at: DateTime<Utc>,
    /// The same moment on the runtime clock (card-latency metric; not stored).
    pub seen: Instant,
}

impl WriteCause {
    /// `event`, handled now (`seen` on the runtime clock).
    pub fn now(event: String, seen: Instant) -> Self {
        Self {
            event,
            at: Utc::now(),
            seen,
        }
    }
}

/// One attempt to deliver an entry, or how it was settled without one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// When it ended.
    pub at: DateTime<Utc>,
    /// `sent`, `registered <CALL_ID>`, `skipped: ...`, `retry: <error>`, `dead: <reason>`.
    pub outcome: String,
}

/// One write of a call, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailEntry {
    /// Its id (delivery order within the call).
    pub id: EntryId,
    /// `register`, `show`, `hide`, `finish`, `attach_record`, `adopt` or `note`.
    pub kind: String,
    /// The write as stored (JSON): exactly what is sent, or noted.
    pub request: String,
    /// When it was stored.
    pub stored_at: DateTime<Utc>,
    /// Why, when the call or the recovery said so (entries of older versions have none).
    pub cause: Option<(DateTime<Utc>, String)>,
    /// Every attempt, oldest first.
    pub attempts: Vec<Attempt>,
    /// `pending`, `done` or `dead letter`.
    pub state: String,
}

/// Everything the outbox holds about one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallTrail {
    /// The call's key (`EXTERNAL_CALL_ID`).
    pub call: ExternalCallId,
    /// Bitrix24's `CALL_ID`, once registered.
    pub call_id: Option<String>,
    /// Its writes in order.
    pub entries: Vec<TrailEntry>,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl fmt::Display for CallTrail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.call_id.as_deref().unwrap_or("not registered");
        writeln!(f, "call {} (CALL_ID {id})", self.call)?;
        for e in &self.entries {
            writeln!(
                f,
                "  {} {} {:<13} {}",
                e.id,
                time(e.stored_at),
                e.kind,
                e.state
            )?;
            match &e.cause {
                Some((at, event)) => writeln!(f, "      why:     {event} (at {})", time(*at))?,
                None => writeln!(f, "      why:     (not recorded)")?,
            }
            writeln!(f, "      request: {}", e.request)?;
            for a in &e.attempts {
                writeln!(f, "      answer:  {} {}", time(a.at), a.outcome)?;
            }
            if e.attempts.is_empty() {
                writeln!(f, "      answer:  (none yet)")?;
            }
        }
        Ok(())
    }
}
