//! Store tests on real SQLite files in temp dirs: reopen, per-call order, dead letters, prune.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::outbox::op::BitrixWrite;
use crate::outbox::plan::{Decision, decide};
use crate::outbox::testkit::{call, cw, finish, hide, register, result, show, t};

async fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("outbox.db"))
        .await
        .unwrap()
}

fn ids(due: &[DueEntry]) -> Vec<i64> {
    due.iter().map(|e| e.id.0).collect()
}

#[tokio::test]
async fn pushed_entries_survive_closing_and_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let a = store.push(cw(1, register(true)), t(0)).await.unwrap();
    store.push(cw(1, show(2)), t(1)).await.unwrap();
    drop(store);
    let store = open(&dir).await;
    let due = store.due(t(2), 10).await.unwrap();
    assert_eq!(ids(&due), [a.0]);
    assert_eq!(due[0].write, register(true));
    assert_eq!(due[0].call, call(1));
    assert_eq!(store.status(t(2)).await.unwrap().pending, 2);
}

#[tokio::test]
async fn due_offers_only_the_oldest_pending_entry_of_each_call() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let a1 = store.push(cw(1, register(false)), t(0)).await.unwrap();
    let a2 = store.push(cw(1, show(2)), t(0)).await.unwrap();
    let b1 = store.push(cw(2, register(false)), t(0)).await.unwrap();
    assert_eq!(ids(&store.due(t(0), 10).await.unwrap()), [a1.0, b1.0]);
    store
        .ack(
            a1,
            Completion::Registered {
                result: result(1),
                opened_card: false,
            },
            t(1),
        )
        .await
        .unwrap();
    let due = store.due(t(1), 10).await.unwrap();
    assert_eq!(ids(&due), [a2.0, b1.0]);
    // The register result travels with the call to the entries after it.
    assert_eq!(due[0].state.call_id(), Some(&result(1).call_id));
    assert_eq!(
        store.call_state(call(1)).await.unwrap().registered,
        Some(result(1))
    );
}

#[tokio::test]
async fn a_retrying_entry_holds_back_the_rest_of_its_call_until_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let a1 = store.push(cw(1, register(false)), t(0)).await.unwrap();
    store.push(cw(1, finish()), t(0)).await.unwrap();
    store
        .retry_at(a1, t(30), "rate limited".into(), t(0))
        .await
        .unwrap();
    assert!(store.due(t(29), 10).await.unwrap().is_empty());
    assert_eq!(store.next_due_at(t(0)).await.unwrap(), Some(t(30)));
    let due = store.due(t(30), 10).await.unwrap();
    assert_eq!((ids(&due), due[0].attempts), (vec![a1.0], 1));
    assert_eq!(store.status(t(0)).await.unwrap().waiting_retry, 1);
}

#[tokio::test]
async fn live_calls_are_offered_before_calls_that_are_already_over() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let over = store.push(cw(1, register(true)), t(0)).await.unwrap();
    store.push(cw(1, finish()), t(0)).await.unwrap();
    let live = store.push(cw(2, register(true)), t(5)).await.unwrap();
    let due = store.due(t(6), 10).await.unwrap();
    assert_eq!(ids(&due), [live.0, over.0]);
    assert!(!due[0].state.over && due[1].state.over);
}

#[tokio::test]
async fn dead_letters_keep_the_reason_and_retry_restores_the_original_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let reg = store.push(cw(1, register(false)), t(0)).await.unwrap();
    let fin = store.push(cw(1, finish()), t(0)).await.unwrap();
    store
        .dead_letter(reg, "User is not found or is not active".into(), t(1))
        .await
        .unwrap();
    store
        .dead_letter(fin, "no CALL_ID".into(), t(2))
        .await
        .unwrap();
    let report = store.status(t(3)).await.unwrap();
    assert_eq!(report.pending, 0);
    let dead: Vec<_> = report
        .dead_letters
        .iter()
        .map(|d| (d.id, d.kind.as_str(), d.attempts))
        .collect();
    assert_eq!(dead, [(reg, "register", 1), (fin, "finish", 1)]);
    assert!(report.to_string().contains("User is not found"), "{report}");
    assert!(matches!(
        store
            .ack(reg, Completion::Sent { opened_card: false }, t(3))
            .await,
        Err(StoreError::NotPending { .. })
    ));

    assert_eq!(store.retry_dead_letters(None).await.unwrap(), 2);
    let due = store.due(t(4), 10).await.unwrap();
    assert_eq!((ids(&due), due[0].attempts), (vec![reg.0], 0));
    assert!(store.status(t(4)).await.unwrap().dead_letters.is_empty());
}

#[tokio::test]
async fn prune_removes_old_done_entries_but_never_pending_or_dead_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let old = store.push(cw(1, register(false)), t(0)).await.unwrap();
    let fin = store.push(cw(1, finish()), t(0)).await.unwrap();
    let dead = store.push(cw(2, register(false)), t(0)).await.unwrap();
    let pending = store.push(cw(3, register(false)), t(0)).await.unwrap();
    store
        .ack(
            old,
            Completion::Registered {
                result: result(1),
                opened_card: false,
            },
            t(10),
        )
        .await
        .unwrap();
    store
        .ack(fin, Completion::Sent { opened_card: false }, t(100))
        .await
        .unwrap();
    store.dead_letter(dead, "bad".into(), t(10)).await.unwrap();

    assert_eq!(store.prune(t(50)).await.unwrap(), 1);
    // The call still has a done entry, so its CALL_ID stays.
    assert!(
        store
            .call_state(call(1))
            .await
            .unwrap()
            .registered
            .is_some()
    );
    assert_eq!(store.prune(t(200)).await.unwrap(), 1);
    assert_eq!(
        store.call_state(call(1)).await.unwrap(),
        CallState::default()
    );
    let report = store.status(t(200)).await.unwrap();
    assert_eq!(
        (report.pending, report.done, report.dead_letters.len()),
        (1, 0, 1)
    );
    assert_eq!(ids(&store.due(t(200), 10).await.unwrap()), [pending.0]);
}

/// Walks one call's queue the way the worker does, acknowledging what the plan says.
async fn replay(store: &SqliteStore) -> Vec<Decision> {
    let mut seen = Vec::new();
    loop {
        let due = store.due(t(1000), 10).await.unwrap();
        let Some(entry) = due.into_iter().next() else {
            return seen;
        };
        let decision = decide(&entry.write, &entry.state);
        let done = match &decision {
            Decision::Send {
                write: BitrixWrite::Register(_),
                opens_card,
            } => Completion::Registered {
                result: result(1),
                opened_card: *opens_card,
            },
            Decision::Send { opens_card, .. } => Completion::Sent {
                opened_card: *opens_card,
            },
            _ => Completion::Skipped {
                reason: "skipped".into(),
            },
        };
        store.ack(entry.id, done, t(1000)).await.unwrap();
        seen.push(decision);
    }
}

#[tokio::test]
async fn a_call_that_ended_during_an_outage_is_recorded_without_ever_opening_a_card() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    for w in [register(true), show(2), hide(2), show(3), hide(3), finish()] {
        store.push(cw(1, w), t(0)).await.unwrap();
    }
    let seen = replay(&store).await;
    assert_eq!(seen.len(), 6);
    assert_eq!(
        seen[0],
        Decision::Send {
            write: register(false),
            opens_card: false
        }
    );
    assert!(
        seen[1..5]
            .iter()
            .all(|d| matches!(d, Decision::Skip { .. })),
        "{seen:?}"
    );
    assert_eq!(
        seen[5],
        Decision::Send {
            write: finish(),
            opens_card: false
        }
    );
    assert!(!store.call_state(call(1)).await.unwrap().cards_opened);
}

#[tokio::test]
async fn undecodable_entries_go_to_the_dead_letters_instead_of_blocking_their_call() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store.push(cw(1, register(false)), t(0)).await.unwrap();
    let good = store.push(cw(2, register(false)), t(0)).await.unwrap();
    {
        let conn = Connection::open(dir.path().join("outbox.db")).unwrap();
        conn.execute(
            "UPDATE entries SET body = '{\"Bogus\":1}' WHERE call = ?1",
            [call(1).as_str()],
        )
        .unwrap();
    }
    assert_eq!(ids(&store.due(t(1), 10).await.unwrap()), [good.0]);
    let report = store.status(t(1)).await.unwrap();
    assert_eq!(report.dead_letters.len(), 1);
    assert!(
        report.dead_letters[0]
            .reason
            .starts_with("undecodable entry")
    );
}

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn outbox_files(dir: &tempfile::TempDir) -> Vec<std::path::PathBuf> {
    ["outbox.db", "outbox.db-wal", "outbox.db-shm"]
        .iter()
        .map(|name| dir.path().join(name))
        .collect()
}

#[tokio::test]
async fn the_outbox_and_its_wal_and_shm_are_readable_by_their_owner_only() {
    // Entries hold callers' numbers (personal data).
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store.push(cw(1, register(true)), t(0)).await.unwrap();
    for path in outbox_files(&dir) {
        assert_eq!(mode_of(&path), 0o600, "{}", path.display());
    }
}

#[tokio::test]
async fn an_existing_world_readable_outbox_is_made_private_when_opened() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store.push(cw(1, register(true)), t(0)).await.unwrap();
    drop(store);
    // As an older fsb24 left them.
    for path in outbox_files(&dir).iter().filter(|p| p.exists()) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let store = open(&dir).await;
    store.push(cw(2, register(true)), t(1)).await.unwrap();
    for path in outbox_files(&dir) {
        assert_eq!(mode_of(&path), 0o600, "{}", path.display());
    }
}

// Notes used to be queued with the writes and skipped by the worker: they held a call's next
// write back for a store round trip and doubled the per-call ordering. Now they are stored
// settled, beside the queue, and recovery still reads them.
#[tokio::test]
async fn a_note_is_stored_for_recovery_and_never_comes_due() {
    use crate::outbox::op::CallNote;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let note = BitrixWrite::Note(CallNote::Recording {
        path: "/rec/a.wav".into(),
    });
    store.push(cw(1, note.clone()), t(0)).await.unwrap();
    let reg = store.push(cw(1, register(false)), t(1)).await.unwrap();
    assert_eq!(ids(&store.due(t(2), 10).await.unwrap()), [reg.0]);
    assert_eq!(store.status(t(2)).await.unwrap().pending, 1);
    let orphans = store.orphans().await.unwrap();
    let writes: Vec<_> = orphans[0].writes.iter().map(|w| &w.write).collect();
    assert_eq!(writes, [&note, &register(false)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_that_arrive_together_share_a_commit_and_each_caller_gets_its_own_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let pushes = (1..=200u32).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let ids = store
                .push_many(vec![cw(n, register(true)), cw(n, finish())], t(0))
                .await
                .unwrap();
            (n, ids)
        })
    });
    let mut heads = Vec::new();
    for push in pushes {
        let (n, ids) = push.await.unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[1].0, ids[0].0 + 1, "call {n}: its writes stay together");
        heads.push(ids[0].0);
    }
    heads.sort_unstable();
    drop(store);
    // Acknowledged means stored: every call's first write is due after reopening the file.
    let store = open(&dir).await;
    assert_eq!(ids(&store.due(t(1), 500).await.unwrap()), heads);
    assert_eq!(store.status(t(1)).await.unwrap().pending, 400);
}

#[tokio::test]
async fn a_file_without_the_heads_table_gets_its_heads_back_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let a1 = store.push(cw(1, register(true)), t(0)).await.unwrap();
    store.push(cw(1, finish()), t(0)).await.unwrap();
    let b1 = store.push(cw(2, register(true)), t(0)).await.unwrap();
    drop(store);
    {
        // What a build before the heads table left behind.
        let conn = Connection::open(dir.path().join("outbox.db")).unwrap();
        conn.execute_batch("DROP TABLE heads").unwrap();
    }
    let store = open(&dir).await;
    assert_eq!(ids(&store.due(t(1), 10).await.unwrap()), [b1.0, a1.0]);
}
