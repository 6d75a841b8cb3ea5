//! Crash tests: push/ack with a simulated kill -9 before and after the commit, then reopen the image.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::Path;

use super::*;
use crate::outbox::store::RegisterResult;
use crate::outbox::testkit::{Crash, call, crashing, cw, finish, register, result, t};

async fn reopen(image: &Path) -> SqliteStore {
    SqliteStore::open(&image.join("outbox.db")).await.unwrap()
}

/// Pushes a register and a finish for call 1, "crashes" while acking the register at `point`,
/// and returns the register's id with what is due after reopening.
async fn register_ack_crash(point: CrashPoint) -> (EntryId, Vec<DueEntry>) {
    let crash = crashing("ack", 0, point).await;
    let id = crash
        .store
        .push(cw(1, register(false)), t(0))
        .await
        .unwrap();
    crash.store.push(cw(1, finish()), t(0)).await.unwrap();
    let done = Completion::Registered {
        result: result(1),
        opened_card: false,
    };
    assert!(crash.store.ack(id, done, t(1)).await.is_err());
    let reopened = reopen(&crash.image).await;
    let due = reopened.due(t(2), 10).await.unwrap();
    (id, due)
}

/// Pushes five writes; the third "crashes". Returns which pushes returned Ok.
async fn push_five(store: &FaultyStore) -> Vec<bool> {
    let mut oks = Vec::new();
    for n in 0..5 {
        oks.push(store.push(cw(n, register(false)), t(0)).await.is_ok());
    }
    oks
}

/// Pushes five writes, the third "crashing" at `point`, checks that only the first two returned
/// Ok, and reopens the image.
async fn crash_at_third_push(point: CrashPoint) -> (Crash, SqliteStore) {
    let crash = crashing("push", 2, point).await;
    assert_eq!(
        push_five(&crash.store).await,
        [true, true, false, false, false]
    );
    let reopened = reopen(&crash.image).await;
    (crash, reopened)
}

async fn calls_present(store: &SqliteStore) -> Vec<ExternalCallId> {
    store
        .due(t(0), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.call)
        .collect()
}

#[tokio::test]
async fn a_crash_before_the_commit_loses_only_the_push_that_never_returned_ok() {
    let (crash, reopened) = crash_at_third_push(CrashPoint::BeforeCommit).await;
    assert!(crash.store.crashed());
    assert_eq!(calls_present(&reopened).await, [call(0), call(1)]);
}

#[tokio::test]
async fn a_crash_after_the_commit_keeps_the_entry_exactly_once() {
    let (_crash, reopened) = crash_at_third_push(CrashPoint::AfterCommit).await;
    // The third push committed although its caller never heard Ok; nothing is duplicated.
    assert_eq!(calls_present(&reopened).await, [call(0), call(1), call(2)]);
    assert_eq!(reopened.status(t(0)).await.unwrap().pending, 3);
}

#[tokio::test]
async fn every_push_that_returned_ok_survives_a_crash_at_any_later_point() {
    for nth in 0..4 {
        for point in [CrashPoint::BeforeCommit, CrashPoint::AfterCommit] {
            let crash = crashing("push", nth, point).await;
            let oks = push_five(&crash.store).await;
            let present = calls_present(&reopen(&crash.image).await).await;
            for (n, ok) in oks.iter().enumerate() {
                let n = u32::try_from(n).unwrap();
                if *ok {
                    assert!(
                        present.contains(&call(n)),
                        "push {n} returned Ok but is gone ({nth}, {point:?})"
                    );
                }
            }
            let committed = nth + usize::from(point == CrashPoint::AfterCommit);
            assert_eq!(present.len(), committed, "crash at push {nth} {point:?}");
        }
    }
}

#[tokio::test]
async fn a_register_ack_lost_in_a_crash_leaves_the_register_pending_for_a_safe_resend() {
    let (id, due) = register_ack_crash(CrashPoint::BeforeCommit).await;
    assert_eq!(
        (due.len(), due[0].id, &due[0].write),
        (1, id, &register(false))
    );
    assert_eq!(due[0].state.registered, None);
}

#[tokio::test]
async fn a_committed_register_ack_carries_the_call_id_across_the_crash() {
    let (_, due) = register_ack_crash(CrashPoint::AfterCommit).await;
    assert_eq!(due[0].write, finish());
    let expected: Option<RegisterResult> = Some(result(1));
    assert_eq!(due[0].state.registered, expected);
}

#[tokio::test]
async fn a_torn_tail_in_the_wal_is_discarded_not_fatal() {
    let crash = crashing("push", 3, CrashPoint::BeforeCommit).await;
    push_five(&crash.store).await;
    let wal = crash.image.join("outbox.db-wal");
    let mut f = std::fs::OpenOptions::new().append(true).open(&wal).unwrap();
    f.write_all(&[0xA5; 3000]).unwrap();
    drop(f);
    let reopened = reopen(&crash.image).await;
    assert_eq!(calls_present(&reopened).await, [call(0), call(1), call(2)]);
    // And it keeps working.
    reopened.push(cw(9, register(false)), t(1)).await.unwrap();
}
