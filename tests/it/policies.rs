//! Issue-16 policies end to end: who a missed call is finished for (`USER_ID` of the finish the
//! Bitrix24 peer received) and when each agent's card opens (the peer's card timeline, against
//! the phones of the FreeSWITCH peer).

use std::time::Duration;

use crate::support::app::World;
use crate::support::bitrix_peer::{CrmEntity, SeedUser};
use crate::support::esl_peer::caller::CallSpec;

/// `bitrix.defaults.missed_call_owner` of the test config: the end of every chain.
const DEFAULT_OWNER: u64 = 1;
/// The fixed owner some routes name.
const FIXED_OWNER: u64 = 42;

fn spec(caller: &str, destination: &str) -> CallSpec {
    CallSpec {
        caller: caller.into(),
        destination: destination.into(),
        ..CallSpec::default()
    }
}

/// One queue per case (its own agents, so the cases run side by side); every phone rings 1 s.
const MISSED: &str = r#"
[[agents]]
extension = "1007"
bitrix_user = 17
[[queues]]
name = "last"
agents = ["1001", "1002"]
ring = ["1s"]
rounds = 1
missed_owner = ["last_rung"]
[[queues]]
name = "first"
strategy = "simultaneous"
agents = ["1003", "1004"]
ring = ["1s"]
rounds = 1
[[queues]]
name = "fixed"
agents = ["1005"]
ring = ["1s"]
rounds = 1
[[queues]]
name = "crm"
agents = ["1006"]
ring = ["1s"]
rounds = 1
[[queues]]
name = "busy"
agents = ["1008"]
ring = ["1s"]
rounds = 1
[[routes]]
destination = "7001"
target = { queue = "last" }
[[routes]]
destination = "7002"
target = { queue = "first" }
missed_owner = ["first_agent"]
[[routes]]
destination = "7003"
target = { queue = "fixed" }
missed_owner = [{ user = 42 }, "last_rung"]
[[routes]]
destination = "7004"
target = { responsible = { fallback_queue = "crm", ring = "1s" } }
missed_owner = ["responsible", "last_rung"]
[[routes]]
destination = "7005"
target = { responsible = { fallback_queue = "busy", ring = "1s" } }
missed_owner = ["responsible", "last_rung"]
[[queues]]
name = "plain"
agents = ["1009"]
ring = ["1s"]
rounds = 1
[[routes]]
destination = "7006"
target = { queue = "plain" }
"#;

#[tokio::test]
async fn each_missed_call_policy_finishes_the_call_for_its_owner_down_to_the_fallbacks() {
    let agents = [
        ("1001", 11),
        ("1002", 12),
        ("1003", 13),
        ("1004", 14),
        ("1005", 15),
        ("1006", 16),
        ("1008", 18),
        ("1009", 19),
    ];
    let w = World::start(&agents, MISSED).await;
    for (user, name) in [
        (DEFAULT_OWNER, "Default owner"),
        (FIXED_OWNER, "Fixed owner"),
    ] {
        w.bx.add_user(SeedUser::new(user, name, None));
    }
    w.bx.add_user(SeedUser::new(17, "Manager", Some("1007")));
    let (known, unknown) = ("+79990000004", "+79990000005");
    w.bx.add_entity(CrmEntity::contact(601, "Known Client", known, 17));
    for ext in [
        "1001", "1002", "1003", "1004", "1005", "1006", "1007", "1009",
    ] {
        w.fs.phone(ext).rings_forever();
    }
    w.fs.phone("1008").busy();
    // (destination, caller, expected USER_ID of the finish, what decides it)
    let cases = [
        (
            "7001",
            "+79990000001",
            12,
            "last_rung: 1002 rang after 1001",
        ),
        (
            "7002",
            "+79990000002",
            13,
            "first_agent of the route's queue",
        ),
        (
            "7003",
            "+79990000003",
            FIXED_OWNER,
            "{ user = 42 } comes first",
        ),
        (
            "7004",
            known,
            17,
            "responsible: the CRM manager the lookup found",
        ),
        (
            "7005",
            unknown,
            DEFAULT_OWNER,
            "no manager, no phone rang (busy): missed_call_owner",
        ),
        (
            "7006",
            "+79990000006",
            DEFAULT_OWNER,
            "nothing configured: as before",
        ),
    ];
    let mut calls = Vec::new();
    for (destination, caller, _, _) in cases {
        let call = w.fs.offer_call(w.app.esl_addr, spec(caller, destination));
        calls.push(call.await.unwrap());
    }
    for ((destination, _, owner, why), caller) in cases.iter().zip(&calls) {
        let call = w.finished_call(&caller.uuid).await;
        let finish = call.finished.clone().unwrap();
        eprintln!("{destination}: USER_ID {} ({why})", finish.user_id);
        assert_eq!(
            (finish.user_id, finish.status_code.as_str()),
            (*owner, "304"),
            "{destination}: {why}"
        );
    }
    // The manager's phone really rang before the fallback queue's.
    let manager = w.fs.ring_ended("1007", 0).await.expect("the manager rang");
    let queue = w.fs.ring_ended("1006", 0).await.expect("the queue rang");
    assert!(manager.started < queue.started);
    w.app.shutdown().await;
}

const CARDS: &str = r#"
[[agents]]
extension = "2001"
bitrix_user = 21
[[agents]]
extension = "2002"
bitrix_user = 22
card = "answered"
[[agents]]
extension = "2003"
bitrix_user = 23
card = "never"
[[agents]]
extension = "2004"
bitrix_user = 24
[[queues]]
name = "mixed"
strategy = "simultaneous"
agents = ["2001", "2002", "2003"]
ring = ["20s"]
[[queues]]
name = "quiet"
agents = ["2004"]
card = "never"
[[routes]]
destination = "8001"
target = { queue = "mixed" }
[[routes]]
destination = "8002"
target = { queue = "quiet" }
"#;

#[tokio::test]
async fn each_card_mode_gives_its_card_timeline_and_the_talker_still_gets_the_finish() {
    let w = World::start(&[], CARDS).await;
    for (user, ext) in [(21, "2001"), (22, "2002"), (23, "2003"), (24, "2004")] {
        w.bx.add_user(SeedUser::new(user, &format!("Agent {ext}"), Some(ext)));
    }
    w.fs.phone("2001").rings_forever();
    w.fs.phone("2002")
        .answers_then_hangs_up(Duration::from_millis(500), Duration::from_secs(1));
    w.fs.phone("2003").rings_forever();
    w.fs.phone("2004")
        .answers_then_hangs_up(Duration::from_millis(300), Duration::from_secs(1));
    let mixed =
        w.fs.offer_call(w.app.esl_addr, spec("+79990000011", "8001"));
    let mixed = mixed.await.unwrap();
    let quiet =
        w.fs.offer_call(w.app.esl_addr, spec("+79990000012", "8002"));
    let quiet = quiet.await.unwrap();

    // "mixed" rings all three; 2002 ("answered") picks up.
    let call = w.finished_call(&mixed.uuid).await;
    let finish = call.finished.clone().unwrap();
    assert_eq!((finish.user_id, finish.status_code.as_str()), (22, "200"));
    let answered = w.fs.ring_ended("2002", 0).await.unwrap().ended.unwrap();
    let timeline = w.bx.timeline(&call.call_id);
    let users: Vec<u64> = timeline.iter().map(|i| i.user).collect();
    assert_eq!(users, [21, 22], "2003 (never) has no card: {timeline:?}");
    let (ringing, at_answer) = (timeline[0], timeline[1]);
    assert!(
        ringing.from < answered && ringing.to.is_some_and(|to| to >= answered),
        "2001 (ringing): open while the phones rang, closed at the answer: {timeline:?}"
    );
    assert!(
        at_answer.from >= answered && at_answer.to == Some(finish.at),
        "2002 (answered): open from its answer to the finish: {timeline:?}"
    );
    assert_eq!(
        (call.user_id, call.show),
        (21, true),
        "registered with 2001's card"
    );

    // "quiet" never shows a card: registered without one, finished for the talker.
    let call = w.finished_call(&quiet.uuid).await;
    let finish = call.finished.clone().unwrap();
    assert_eq!((finish.user_id, finish.status_code.as_str()), (24, "200"));
    assert_eq!((call.user_id, call.show), (24, false));
    assert!(w.bx.timeline(&call.call_id).is_empty());
    assert!(
        w.bx.method_calls("telephony.externalcall.show")
            .iter()
            .all(|m| m.params["CALL_ID"] != call.call_id.as_str()),
        "no show for the quiet queue"
    );
    w.app.shutdown().await;
}
