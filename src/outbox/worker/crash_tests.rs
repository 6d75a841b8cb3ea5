//! Kill -9 at every store commit of a small workload, restart from what was on disk, and check
//! that the portal ends up with exactly one call and one finish per physical call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Mutex;

use super::*;
use crate::ids::BitrixCallId;
use crate::outbox::deliver::{DeliverError, Delivered};
use crate::outbox::fault::CrashPoint;
use crate::outbox::op::BitrixWrite;
use crate::outbox::store::{RegisterResult, Store};
use crate::outbox::testkit::{crashing, cw, finish, register};

/// Bitrix24's behaviour that makes retries safe: register de-dups an unfinished call by
/// `EXTERNAL_CALL_ID`; finish of a finished call is "Call is not found".
#[derive(Default)]
struct Portal {
    calls: Mutex<HashMap<ExternalCallId, (BitrixCallId, bool)>>,
    created: Mutex<u32>,
    finished: Mutex<u32>,
}

impl Deliver for Portal {
    async fn deliver(
        &self,
        call: &ExternalCallId,
        call_id: Option<&BitrixCallId>,
        write: &BitrixWrite,
    ) -> Result<Delivered, DeliverError> {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let mut calls = self.calls.lock().unwrap();
        match write {
            BitrixWrite::Register(_) => {
                let entry = calls.get(call).filter(|(_, finished)| !finished).cloned();
                let id = match entry {
                    Some((id, _)) => id,
                    None => {
                        let mut created = self.created.lock().unwrap();
                        *created += 1;
                        let id = BitrixCallId::new(format!("externalCall.{:032x}.1", *created));
                        calls.insert(call.clone(), (id.clone(), false));
                        id
                    }
                };
                Ok(Delivered::Registered(RegisterResult {
                    call_id: id,
                    crm: None,
                    created_lead: None,
                }))
            }
            BitrixWrite::Finish(_) => {
                let live = calls
                    .get_mut(call)
                    .filter(|(id, finished)| Some(id) == call_id && !*finished);
                let Some(state) = live else {
                    return Err(DeliverError::CallNotFound {
                        reason: "Call is not found".into(),
                    });
                };
                state.1 = true;
                *self.finished.lock().unwrap() += 1;
                Ok(Delivered::Done)
            }
            _ => Ok(Delivered::Done),
        }
    }
}

const CALLS: u32 = 4;

async fn drain(outbox: &Outbox) {
    let mut done = outbox.completions();
    loop {
        if outbox.status().await.unwrap().pending == 0 {
            return;
        }
        tokio::time::timeout(Duration::from_secs(600), done.changed())
            .await
            .unwrap()
            .unwrap();
    }
}

async fn crash_and_restart(op: &'static str, nth: usize, point: CrashPoint) -> Arc<Portal> {
    let crash = crashing(op, nth, point).await;
    let faulty = Arc::new(crash.store);
    let portal = Arc::new(Portal::default());
    let config = WorkerConfig {
        backoff: RetryBackoff {
            jitter: 0.0,
            ..RetryBackoff::default()
        },
        ..WorkerConfig::default()
    };

    let outbox = Outbox::with_store(Arc::clone(&faulty) as Arc<dyn Store>);
    for n in 0..CALLS {
        outbox.push(cw(n, register(true))).await.unwrap();
        outbox.push(cw(n, finish())).await.unwrap();
    }
    let stop = CancellationToken::new();
    let first = tokio::spawn(run(
        outbox,
        Arc::clone(&portal),
        config.clone(),
        stop.clone(),
    ));
    tokio::time::timeout(Duration::from_secs(600), faulty.wait_crashed())
        .await
        .expect("crash point reached");
    stop.cancel();
    first.await.unwrap();

    // "Restart": a new process opens what the killed one left on disk.
    let outbox = Outbox::open(&crash.image.join("outbox.db")).await.unwrap();
    let stop = CancellationToken::new();
    let second = tokio::spawn(run(
        outbox.clone(),
        Arc::clone(&portal),
        config,
        stop.clone(),
    ));
    drain(&outbox).await;
    stop.cancel();
    second.await.unwrap();
    assert!(outbox.status().await.unwrap().dead_letters.is_empty());
    portal
}

#[tokio::test(start_paused = true)]
async fn a_kill_at_any_store_commit_never_duplicates_or_loses_a_call_or_a_finish() {
    let mut points = 0;
    for op in ["ack", "due"] {
        let commits = if op == "ack" { 2 * CALLS as usize } else { 3 };
        for nth in 0..commits {
            for point in [CrashPoint::BeforeCommit, CrashPoint::AfterCommit] {
                let portal = crash_and_restart(op, nth, point).await;
                let what = format!("crash at {op} #{nth} {point:?}");
                assert_eq!(
                    *portal.created.lock().unwrap(),
                    CALLS,
                    "{what}: one Bitrix24 call per call"
                );
                assert_eq!(
                    *portal.finished.lock().unwrap(),
                    CALLS,
                    "{what}: one finish per call"
                );
                points += 1;
            }
        }
    }
    assert!(points >= 20);
}
