//! An event flood larger than any queue between FreeSWITCH and a call (the ESL crate's event
//! queue, the session's channel to the call task) loses no hang-up: the call is still finished
//! correctly and `fsb24_esl_events_dropped_total` stays 0.
//!
//! The first test floods a call whose task keeps up, which even a session that waited on its
//! call task survives; the second holds the call task (the test locks the outbox database, so
//! the call's first write waits) while the flood and the hang-up arrive. Checked: with the
//! session awaiting the call's channel (the code before `esl/outbound/forward.rs`), the second
//! test fails (the crate drops the hang-up and the call is not finished in time). With the
//! crate's default overflow (drop when its queue is full, before `esl/overflow.rs` made the
//! reader wait), the reader can parse more than a queue's worth of events from the socket before
//! the pump runs: the second test then saw 190 dropped events in 2 of 15 runs; with the reader
//! waiting, 0 in 12.

use std::time::Duration;

use crate::support::admin;
use crate::support::app::World;
use crate::support::esl_peer::caller::CallSpec;

const ROUTE: &str = r#"
[[routes]]
destination = "9001"
target = { agent = "1001" }
"#;

/// Many more events than the crate's queue (1,000) and the call's channel (256) hold together
/// (the peer's event bus keeps 8,192).
const FLOOD: usize = 6_000;

#[tokio::test]
async fn an_event_flood_larger_than_any_queue_loses_no_hangup() {
    let w = World::start(&[("1001", 11)], ROUTE).await;
    w.fs.phone("1001")
        .answers_then_hangs_up(Duration::from_millis(300), Duration::from_millis(700));
    let spec = CallSpec {
        caller: "+79991234567".into(),
        destination: "9001".into(),
        ..CallSpec::default()
    };
    let caller = w.fs.offer_call(w.app.esl_addr, spec).await.unwrap();
    w.fs.ring_started("1001", 0).await.expect("the agent rings");
    // The whole flood is on the caller's socket before the answer and the hang-up follow it.
    w.fs.flood_dtmf(&caller.uuid, FLOOD);

    let call =
        w.bx.finished_call(&format!("fs-{}", caller.uuid), false)
            .await;
    let finish = call.finished.clone().expect("finished");
    assert_eq!((finish.user_id, finish.status_code.as_str()), (11, "200"));
    assert!(w.fs.socket_closed(&caller.uuid).await, "the session ended");
}

/// The real flood: the call task is held (its first outbox write waits for the database, which
/// the test keeps locked) while 6,000 events and the caller's hang-up arrive, so nothing drains
/// the call's channel (256) or the ESL crate's queue (1,000) until the flood is over. A session
/// that waited on its call task would make the crate drop events, the hang-up among them.
const HELD_FLOOD: usize = 6_000;

#[tokio::test]
async fn a_flood_while_the_call_task_is_held_loses_no_event_and_the_hangup_finishes_the_call() {
    let w = World::start(&[("1001", 11)], ROUTE).await;
    let db = rusqlite::Connection::open(w.dir.path().join("outbox.db")).unwrap();
    let spec = CallSpec {
        caller: "+79991234567".into(),
        destination: "9001".into(),
        ..CallSpec::default()
    };
    let mut caller = w.fs.offer_call(w.app.esl_addr, spec).await.unwrap();
    // The session is set up (the reply to its last setup command, `nixevent`): the call task
    // starts now, and its first outbox write waits for the lock.
    loop {
        let label = caller.next_sent().await.expect("the session is set up");
        if label.starts_with("+OK events nixed") {
            break;
        }
    }
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    w.fs.flood_dtmf(&caller.uuid, HELD_FLOOD);
    caller.hang_up();
    // fsb24's reader has taken the whole flood and the hang-up off the socket...
    let mut flood = 0;
    loop {
        match caller
            .next_sent()
            .await
            .expect("the peer writes the flood")
            .as_str()
        {
            "DTMF" => flood += 1,
            "CHANNEL_HANGUP_COMPLETE" => break,
            _ => {}
        }
    }
    assert_eq!(flood, HELD_FLOOD);
    // ...while the call task was held; now it runs again.
    db.execute_batch("ROLLBACK").unwrap();

    let call =
        w.bx.finished_call(&format!("fs-{}", caller.uuid), false)
            .await;
    let finish = call.finished.clone().expect("finished");
    assert_ne!(finish.status_code.as_str(), "200", "nobody talked");
    let metrics = admin::scrape(w.app.admin_addr).await;
    assert_eq!(
        metrics.get("fsb24_esl_events_dropped_total", &[]),
        Some(0.0),
        "no switch event was dropped"
    );
    assert!(w.fs.socket_closed(&caller.uuid).await, "the session ended");
}
