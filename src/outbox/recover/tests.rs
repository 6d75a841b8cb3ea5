//! Recovery of calls left open: which hides and which finish, and that it is idempotent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::outbox::SqliteStore;
use crate::outbox::store::Store as _;
use crate::outbox::testkit::{call, cw, finish, hide, register, show, t};

fn finish_of(writes: &[BitrixWrite]) -> &FinishCall {
    match writes.last() {
        Some(BitrixWrite::Finish(f)) => f,
        other => panic!("last write is not a finish: {other:?}"),
    }
}

#[test]
fn a_call_killed_while_its_owner_saw_the_card_is_finished_by_the_owner_without_a_hide() {
    let out = closing_writes(&[register(true)], BitrixUserId(99));
    assert_eq!(out.len(), 1, "{out:?}");
    let f = finish_of(&out);
    assert_eq!((f.user, f.duration_secs), (BitrixUserId(1), 0));
    assert_eq!(f.status_code, RECOVERED_STATUS);
    assert_eq!(f.failed_reason.as_deref(), Some(RECOVERED_REASON));
}

#[test]
fn the_user_shown_last_finishes_and_every_other_open_card_is_hidden_first() {
    let writes = [register(true), show(2), show(3), hide(2)];
    let out = closing_writes(&writes, BitrixUserId(99));
    assert_eq!(
        out[0],
        BitrixWrite::Hide {
            users: vec![BitrixUserId(1)]
        }
    );
    assert_eq!(finish_of(&out).user, BitrixUserId(3));
}

#[test]
fn without_any_register_the_fallback_user_finishes() {
    let out = closing_writes(&[], BitrixUserId(99));
    assert_eq!(finish_of(&out).user, BitrixUserId(99));
}

#[tokio::test]
async fn finish_orphans_finishes_open_calls_once_and_leaves_finished_calls_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    {
        let store = SqliteStore::open(&path).await.unwrap();
        for w in [register(true), show(2)] {
            store.push(cw(1, w), t(0)).await.unwrap();
        }
        for w in [register(false), finish()] {
            store.push(cw(2, w), t(1)).await.unwrap();
        }
    }
    // "Restart": a fresh outbox on the same file.
    let outbox = Outbox::open(&path).await.unwrap();
    assert_eq!(finish_orphans(&outbox, BitrixUserId(99)).await.unwrap(), 1);
    let state = outbox.store().call_state(call(1)).await.unwrap();
    assert!(state.over, "the orphan is marked over by its finish");
    assert_eq!(finish_orphans(&outbox, BitrixUserId(99)).await.unwrap(), 0);
    let writes = outbox.store().orphans().await.unwrap();
    assert!(writes.is_empty(), "{writes:?}");
}

#[tokio::test]
async fn push_all_stores_a_finish_and_its_recording_together_so_recovery_leaves_the_call_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let outbox = Outbox::open(&path).await.unwrap();
    outbox.push(cw(3, register(false))).await.unwrap();
    let attach = BitrixWrite::AttachRecord {
        path: "/var/rec/3.wav".into(),
    };
    let ids = outbox
        .push_all(vec![cw(3, finish()), cw(3, attach.clone())])
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids[0].0 < ids[1].0, "stored in the given order");
    assert!(outbox.store().orphans().await.unwrap().is_empty());
    assert_eq!(finish_orphans(&outbox, BitrixUserId(99)).await.unwrap(), 0);
}
