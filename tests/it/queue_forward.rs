//! Issue 15: a queue that gives up forwards the caller to an employee's mobile through
//! `[outgoing]`'s gateway, checked on the FreeSWITCH peer's command and ring log and on the
//! Bitrix24 peer's calls and card timeline.
//!
//! Bitrix24 semantics (bitrix24-telephony.md §6.6, §6.9): the call was registered `TYPE=2` when it
//! arrived and `register` cannot change a call's `TYPE`; a second register would be a second call
//! in the CRM and the statistics. So the call stays `TYPE=2` (an admin sees one incoming call on
//! the queue's line); what `TYPE=3` stands for, "answered on a mobile for that employee", is
//! carried by the card and the finish: the employee forwarded for gets the card while their
//! mobile rings and while they talk, and the one `finish` is theirs (`200` with the talk time,
//! else `304`, which on an incoming call is Bitrix24's missed call with its CRM triggers).

use std::time::Duration;

use tokio::time::Instant;

use crate::support::app::World;
use crate::support::bitrix_peer::CallRecord;
use crate::support::esl_peer::caller::CallSpec;

/// Queue member A (rung first) and the employee B the queue forwards to.
const AGENTS: &[(&str, u64)] = &[("1001", 11), ("1002", 12)];
/// B's mobile as fsb24 dials it (E.164 from the config's `0170 7654321`, `DE`).
const MOBILE: &str = "+491707654321";
/// The loosest bound on an edge: a broken product is off by a whole ring step (1 s or more); a loaded
/// machine by tens of ms.
const SANITY: Duration = Duration::from_secs(1);

const QUEUE: &str = r#"
[numbers]
default_country = "DE"
[outgoing]
gateway = "provider"
[[queues]]
name = "sales"
agents = ["1001"]
ring = ["1s"]
rounds = 1
overflow = { forward = { number = "0170 7654321", agent = "1002", ring = "2s" } }
[[routes]]
destination = "9100"
target = { queue = "sales" }
"#;

/// Offers a call to the queue with A's phone ringing unanswered; returns the finished call
/// after checking what every outcome shares: `TYPE=2`, one finish for B, A's card while A rang,
/// then B's from their mobile's ring to the finish.
async fn overflowed(w: &World) -> CallRecord {
    w.fs.phone("1001").register(3600);
    w.fs.phone("1001").rings_forever();
    let spec = CallSpec {
        caller: "+79991234567".into(),
        destination: "9100".into(),
        ..CallSpec::default()
    };
    let caller = w.fs.offer_call(w.app.esl_addr, spec).await.unwrap();
    let call = w.finished_call(&caller.uuid).await;
    assert_eq!(
        call.call_type, 2,
        "registered incoming; register cannot change TYPE"
    );
    let finishes = w.bx.method_calls("telephony.externalcall.finish");
    assert_eq!(finishes.len(), 1, "exactly one finish: {finishes:?}");
    let finish = call.finished.clone().unwrap();
    assert_eq!(
        finish.user_id, 12,
        "the finish is the employee's forwarded for"
    );

    let a = w.fs.ring_ended("1001", 0).await.unwrap();
    let b = w.fs.ring_ended(MOBILE, 0).await.unwrap();
    assert_eq!(a.why.as_deref(), Some("NO_ANSWER"), "{a:?}");
    let timeline = w.bx.timeline(&call.call_id);
    assert_eq!(timeline.len(), 2, "{timeline:#?}");
    let (card_a, card_b) = (&timeline[0], &timeline[1]);
    assert_eq!((card_a.user, card_b.user), (11, 12), "{timeline:#?}");
    let a_closed = card_a.to.expect("A's card closed");
    assert!(a_closed <= card_b.from, "one card at a time: {timeline:#?}");
    assert!(
        card_b.from < b.ended.unwrap(),
        "B's card opened while the mobile rang"
    );
    let opened = ms(card_b.from, b.started);
    eprintln!("card 12: opened {opened:+.1} ms from the mobile's ring");
    assert!(
        opened.abs() <= SANITY.as_secs_f64() * 1000.0,
        "{opened:.1} ms"
    );

    // The leg went out through the gateway, never to B's desk phone.
    let commands = w.fs.commands();
    let bridge = commands
        .iter()
        .find(|c| c.text.contains(&format!("origination_uuid={}", b.leg)))
        .expect("a bridge to the mobile");
    assert!(
        bridge.text.contains("sofia/gateway/provider/+491707654321"),
        "{}",
        bridge.text
    );
    assert!(
        w.fs.ring_ended("1002", 0).await.is_none(),
        "B's desk phone never rang"
    );
    call
}

#[tokio::test]
async fn a_queue_that_gives_up_forwards_to_the_employees_mobile_and_finishes_for_them() {
    let w = World::start(AGENTS, QUEUE).await;
    w.fs.phone(MOBILE)
        .answers_then_hangs_up(Duration::from_millis(300), Duration::from_secs(2));
    let call = overflowed(&w).await;
    let finish = call.finished.clone().unwrap();
    finish.assert_talked(2);
    let timeline = w.bx.timeline(&call.call_id);
    assert_eq!(
        timeline[1].to,
        Some(finish.at),
        "B's card is on until the finish"
    );
    w.app.shutdown().await;
}

#[tokio::test]
async fn a_forward_the_employee_does_not_answer_is_their_missed_call() {
    let w = World::start(AGENTS, QUEUE).await;
    w.fs.phone(MOBILE).rings_forever();
    let call = overflowed(&w).await;
    let finish = call.finished.clone().unwrap();
    assert_eq!((finish.status_code.as_str(), finish.duration), ("304", 0));
    let mobile = w.fs.ring_ended(MOBILE, 0).await.unwrap();
    assert_eq!(
        mobile.why.as_deref(),
        Some("NO_ANSWER"),
        "fsb24 ended the 2 s ring"
    );
    // B's card closes as their mobile stops ringing; the finish (theirs) follows.
    let timeline = w.bx.timeline(&call.call_id);
    let closed = ms(timeline[1].to.unwrap(), mobile.ended.unwrap());
    eprintln!("card 12: closed {closed:+.1} ms from the mobile's ring end");
    assert!(
        closed.abs() <= SANITY.as_secs_f64() * 1000.0,
        "{closed:.1} ms"
    );
    assert!(timeline[1].to.unwrap() <= finish.at);
    w.app.shutdown().await;
}

/// Signed distance `a - b` in milliseconds.
fn ms(a: Instant, b: Instant) -> f64 {
    if a >= b {
        (a - b).as_secs_f64() * 1000.0
    } else {
        -((b - a).as_secs_f64() * 1000.0)
    }
}
