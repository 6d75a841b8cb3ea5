//! Test fixtures shared by the outbox's unit tests: sample writes, times and a crashing store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use chrono::{DateTime, TimeZone as _, Utc};

use crate::ids::{BitrixCallId, BitrixUserId, ExternalCallId, PhoneNumber};
use crate::outbox::fault::{CrashPoint, Fault, FaultyStore};
use crate::outbox::op::{BitrixWrite, CallType, CallWrite, FinishCall, RegisterCall};
use crate::outbox::sqlite::SqliteStore;
use crate::outbox::store::RegisterResult;

pub(crate) fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_777_000_000 + secs, 0)
        .single()
        .unwrap_or_default()
}

pub(crate) fn call(n: u32) -> ExternalCallId {
    ExternalCallId::new(format!("fs-0000-{n}"))
}

pub(crate) fn register(show: bool) -> BitrixWrite {
    BitrixWrite::Register(RegisterCall {
        user: BitrixUserId(1),
        phone: PhoneNumber::parse("+4930123456").unwrap(),
        call_type: CallType::Incoming,
        line_number: Some("4930555000".into()),
        started_at: chrono::DateTime::parse_from_rfc3339("2026-05-04T09:15:02+02:00").unwrap(),
        crm_create: true,
        show,
        crm: None,
    })
}

pub(crate) fn show(user: u64) -> BitrixWrite {
    BitrixWrite::Show {
        users: vec![BitrixUserId(user)],
    }
}

pub(crate) fn hide(user: u64) -> BitrixWrite {
    BitrixWrite::Hide {
        users: vec![BitrixUserId(user)],
    }
}

pub(crate) fn finish() -> BitrixWrite {
    BitrixWrite::Finish(FinishCall {
        user: BitrixUserId(1),
        duration_secs: 42,
        status_code: "200".into(),
        add_to_chat: false,
        failed_reason: None,
    })
}

pub(crate) fn cw(n: u32, write: BitrixWrite) -> CallWrite {
    CallWrite {
        call: call(n),
        write,
    }
}

pub(crate) fn result(n: u32) -> RegisterResult {
    RegisterResult {
        call_id: BitrixCallId::new(format!("externalCall.{n:032x}.1777879000")),
        crm: None,
        created_lead: None,
    }
}

/// A store that "crashes" at one commit, copying the database into `image` as a kill -9 would
/// leave it; `_dir` keeps both on disk for the test's lifetime.
pub(crate) struct Crash {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) store: FaultyStore,
    pub(crate) image: PathBuf,
}

/// Opens a fresh SQLite store that crashes at the `nth` `op`, at `point`.
pub(crate) async fn crashing(op: &'static str, nth: usize, point: CrashPoint) -> Crash {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image");
    std::fs::create_dir(&image).unwrap();
    let inner = SqliteStore::open(&dir.path().join("outbox.db"))
        .await
        .unwrap();
    let store = FaultyStore::new(
        inner,
        Fault {
            op,
            nth,
            point,
            image_dir: image.clone(),
        },
    );
    Crash {
        _dir: dir,
        store,
        image,
    }
}
