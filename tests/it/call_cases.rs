//! Issue-4 acceptance cases end to end: responsible-manager routing, busy fallback, an abandoned
//! call, a transfer and a late recording, asserted on the Bitrix24 card timeline and on what the
//! FreeSWITCH peer received.

use std::time::Duration;

use crate::support::app::World;
use crate::support::audio::mp3_beside;
use crate::support::bitrix_peer::{CallRecord, CrmEntity, PeerState, SeedUser};
use crate::support::esl_peer::caller::CallSpec;

/// The caller of every case (seeded as a CRM contact where the case needs a known caller).
const CALLER: &str = "+79991234567";
/// `bitrix.defaults.missed_call_owner` of the test config.
const MISSED_OWNER: u64 = 1;

const RESPONSIBLE_ROUTE: &str = r#"
[[queues]]
name = "sales"
strategy = "sequential"
agents = ["1001"]
ring = ["5s"]
rounds = 1
max_wait = "30s"
wrap_up = "0s"

[[routes]]
destination = "9100"
target = { responsible = { fallback_queue = "sales", ring = "5s" } }
"#;

const SIMULTANEOUS_ROUTE: &str = r#"
[[queues]]
name = "all"
strategy = "simultaneous"
agents = ["1001", "1002"]
ring = ["20s"]
rounds = 1
max_wait = "1m"

[[routes]]
destination = "9200"
target = { queue = "all" }
"#;

const EMPLOYEE_ROUTE: &str = r#"
[[routes]]
destination = "9300"
target = { agent = "1001" }
"#;

fn spec(destination: &str) -> CallSpec {
    CallSpec {
        caller: CALLER.into(),
        destination: destination.into(),
        ..CallSpec::default()
    }
}

/// The Bitrix24 call registered for the FreeSWITCH channel `uuid`.
fn call_of<'a>(s: &'a PeerState, uuid: &str) -> Option<&'a CallRecord> {
    let external = format!("fs-{uuid}");
    s.calls
        .iter()
        .find(|c| c.external_call_id.as_deref() == Some(external.as_str()))
}

/// Waits (peer failsafe) until the call of `uuid` is finished and returns it.
async fn finished_call(w: &World, uuid: &str) -> CallRecord {
    w.bx.wait_for_value("the call is finished", |s| {
        call_of(s, uuid).filter(|c| c.finished.is_some()).cloned()
    })
    .await
}

/// The users every `telephony.externalcall.<method>` named for `call_id`, in order.
fn card_writes(w: &World, method: &str, call_id: &str) -> Vec<serde_json::Value> {
    w.bx.method_calls(&format!("telephony.externalcall.{method}"))
        .into_iter()
        .filter(|m| m.params["CALL_ID"] == call_id)
        .flat_map(|m| match &m.params["USER_ID"] {
            serde_json::Value::Array(users) => users.clone(),
            user => vec![user.clone()],
        })
        .collect()
}

#[tokio::test]
async fn a_known_caller_is_registered_without_a_card_then_only_the_manager_rings_and_sees_it() {
    let w = World::start(&[("1001", 11), ("1002", 12)], RESPONSIBLE_ROUTE).await;
    w.bx.add_user(SeedUser::new(MISSED_OWNER, "Missed-call owner", None));
    w.bx.add_entity(CrmEntity::contact(501, "Known Client", CALLER, 12));
    w.fs.phone("1001").rings_forever();
    w.fs.phone("1002")
        .answers_then_hangs_up(Duration::from_millis(500), Duration::from_secs(1));
    let caller = w.fs.offer_call(w.app.esl_addr, spec("9100")).await.unwrap();

    let call = finished_call(&w, &caller.uuid).await;
    assert!(!call.show, "the register opens no card: {call:?}");
    assert_eq!(call.crm.map(|(_, id)| id), Some(501));
    let timeline = w.bx.timeline(&call.call_id);
    assert_eq!(
        timeline.len(),
        1,
        "only the manager saw the card: {timeline:?}"
    );
    assert_eq!(timeline[0].user, 12);
    assert!(
        call.registered_at <= timeline[0].from,
        "register first, then show"
    );
    let finish = call.finished.clone().unwrap();
    assert_eq!((finish.user_id, finish.status_code.as_str()), (12, "200"));
    // billsec counts whole epoch seconds, as FreeSWITCH does: 1 s of talk reads 1 or 2.
    assert!((1..=2).contains(&finish.duration), "{finish:?}");
    assert_eq!(
        timeline[0].to,
        Some(finish.at),
        "the card stays open until the finish"
    );

    let rung: Vec<String> = w.fs.ring_log().into_iter().map(|r| r.user).collect();
    assert_eq!(rung, ["1002"], "only the manager's extension rang");
    w.app.shutdown().await;
}

#[tokio::test]
async fn a_known_caller_whose_manager_is_busy_rings_the_fallback_queue_and_the_card_follows() {
    let w = World::start(&[("1001", 11), ("1002", 12)], RESPONSIBLE_ROUTE).await;
    w.bx.add_user(SeedUser::new(MISSED_OWNER, "Missed-call owner", None));
    w.bx.add_entity(CrmEntity::contact(502, "Busy Manager's Client", CALLER, 12));
    w.fs.phone("1002").busy();
    w.fs.phone("1001")
        .answers_then_hangs_up(Duration::from_millis(500), Duration::from_secs(1));
    let caller = w.fs.offer_call(w.app.esl_addr, spec("9100")).await.unwrap();

    let call = finished_call(&w, &caller.uuid).await;
    let finish = call.finished.clone().unwrap();
    assert_eq!((finish.user_id, finish.status_code.as_str()), (11, "200"));

    // FreeSWITCH: the manager's phone answered busy, then the queue's agent rang and answered.
    let rings = w.fs.ring_log();
    let summary: Vec<(&str, Option<&str>)> = rings
        .iter()
        .map(|r| (r.user.as_str(), r.why.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [("1002", Some("USER_BUSY")), ("1001", Some("ANSWERED"))]
    );

    // Bitrix24: the manager's card was open only while their phone was tried, then the card
    // moved to the queue agent and stayed until the finish.
    let timeline = w.bx.timeline(&call.call_id);
    let users: Vec<u64> = timeline.iter().map(|i| i.user).collect();
    assert_eq!(users, [12, 11], "{timeline:?}");
    let (manager, agent) = (timeline[0], timeline[1]);
    assert!(
        manager.to.is_some_and(|to| to <= agent.from),
        "{timeline:?}"
    );
    assert_eq!(agent.to, Some(finish.at));
    assert_eq!(
        card_writes(&w, "hide", &call.call_id),
        [serde_json::json!(12)]
    );
    w.app.shutdown().await;
}

#[tokio::test]
async fn a_caller_who_hangs_up_while_agents_ring_cancels_every_leg_and_card_and_is_missed() {
    let w = World::start(&[("1001", 11), ("1002", 12)], SIMULTANEOUS_ROUTE).await;
    w.bx.add_user(SeedUser::new(MISSED_OWNER, "Missed-call owner", None));
    w.fs.phone("1001").rings_forever();
    w.fs.phone("1002").rings_forever();
    let caller = w.fs.offer_call(w.app.esl_addr, spec("9200")).await.unwrap();

    // Both phones ring and both cards are open before the caller gives up.
    let first = w.fs.ring_started("1001", 0).await.expect("1001 rings");
    let second = w.fs.ring_started("1002", 0).await.expect("1002 rings");
    w.bx.wait_for("both agents see the card", |s| {
        call_of(s, &caller.uuid).is_some_and(|c| s.timeline.shown(&c.call_id).len() == 2)
    })
    .await;
    caller.hang_up();

    let call = finished_call(&w, &caller.uuid).await;
    let finish = call.finished.clone().unwrap();
    assert_eq!(
        (finish.user_id, finish.status_code.as_str(), finish.duration),
        (MISSED_OWNER, "304", 0)
    );
    assert!(finish.missed, "{finish:?}");
    let timeline = w.bx.timeline(&call.call_id);
    assert_eq!(timeline.len(), 2, "{timeline:?}");
    let mut hidden = card_writes(&w, "hide", &call.call_id);
    hidden.sort_by_key(|u| u.as_u64());
    assert_eq!(hidden, [serde_json::json!(11), serde_json::json!(12)]);
    for card in &timeline {
        let closed = card.to.expect("every card is closed");
        assert!(
            closed <= finish.at,
            "hidden before (or with) the finish: {timeline:?}"
        );
    }

    // FreeSWITCH: each ringing leg was ended by fsb24 or cancelled with the caller.
    for leg in [&first, &second] {
        let ended = w.fs.ring_ended(&leg.user, 0).await.expect("the ring ended");
        assert_ne!(ended.why.as_deref(), Some("ANSWERED"));
        let killed =
            w.fs.commands()
                .iter()
                .any(|c| c.text.contains("uuid_kill") && c.text.contains(&leg.leg));
        let cancelled = ended.why.as_deref() == Some("ORIGINATOR_CANCEL");
        assert!(killed || cancelled, "{} not cancelled: {ended:?}", leg.user);
    }
    w.app.shutdown().await;
}

#[tokio::test]
async fn a_late_recording_hides_every_card_at_hang_up_and_finishes_when_the_file_is_ready() {
    let delay = Duration::from_millis(1500);
    let w = World::start(&[("1001", 11)], EMPLOYEE_ROUTE).await;
    w.fs.set_record_delay(delay);
    w.fs.phone("1001")
        .answers_then_hangs_up(Duration::from_millis(300), Duration::from_secs(1));
    let caller = w.fs.offer_call(w.app.esl_addr, spec("9300")).await.unwrap();

    // The talker's card closes at hang-up, while the recording is still being written.
    let hidden =
        w.bx.wait_for_value("the talker's card is hidden", |s| {
            let call = call_of(s, &caller.uuid)?;
            let cards = s.timeline.intervals(&call.call_id);
            let talker = cards.iter().find(|i| i.user == 11)?;
            talker.to.map(|to| (call.clone(), to))
        })
        .await;
    let (call, hidden_at) = hidden;
    assert!(
        call.finished.is_none(),
        "no finish before the file: {call:?}"
    );
    assert_eq!(card_writes(&w, "hide", &call.call_id).len(), 1);

    let call =
        w.bx.wait_for_value("finished with the recording", |s| {
            let c = call_of(s, &caller.uuid)?;
            c.finished.as_ref()?;
            s.records
                .iter()
                .any(|r| r.call_id == c.call_id)
                .then(|| c.clone())
        })
        .await;
    let finish = call.finished.clone().unwrap();
    assert_eq!((finish.user_id, finish.status_code.as_str()), (11, "200"));
    assert!(
        finish.at.duration_since(hidden_at) >= delay / 2,
        "the finish waited for the file: hidden {hidden_at:?}, finish {:?}",
        finish.at
    );
    let stored = w.bx.record_of(&call.call_id).unwrap();
    let wav = w.recordings().join(format!("{}.wav", caller.uuid));
    assert_eq!(stored.bytes, std::fs::read(mp3_beside(&wav)).unwrap());
    w.app.shutdown().await;
}

#[tokio::test]
async fn a_blind_transfer_moves_the_card_to_the_new_agent_and_the_finish_names_them() {
    let w = World::start(&[("1001", 11), ("1002", 12)], EMPLOYEE_ROUTE).await;
    w.fs.phone("1001").answers_after(Duration::from_millis(300));
    w.fs.phone("1002")
        .answers_then_hangs_up(Duration::from_millis(300), Duration::from_secs(1));
    let mut events = w.fs.events();
    let caller = w.fs.offer_call(w.app.esl_addr, spec("9300")).await.unwrap();

    let bridged = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(ev) = events.recv().await {
            if ev.name() == "CHANNEL_BRIDGE" && ev.header("Unique-ID") == Some(&caller.uuid) {
                return;
            }
        }
    })
    .await;
    assert!(bridged.is_ok(), "the caller is bridged to 1001");
    assert!(
        caller.blind_transfer("1002"),
        "1001 transfers the caller to 1002"
    );

    let call = finished_call(&w, &caller.uuid).await;
    let finish = call.finished.clone().unwrap();
    assert_eq!((finish.user_id, finish.status_code.as_str()), (12, "200"));

    // The card moved: 1001's closed when 1002's opened, and 1002's stays until the finish.
    let timeline = w.bx.timeline(&call.call_id);
    let users: Vec<u64> = timeline.iter().map(|i| i.user).collect();
    assert_eq!(users, [11, 12], "{timeline:?}");
    let (old, new) = (timeline[0], timeline[1]);
    assert!(old.to.is_some_and(|to| to <= new.from), "{timeline:?}");
    assert_eq!(new.to, Some(finish.at));
    assert_eq!(
        card_writes(&w, "hide", &call.call_id),
        [serde_json::json!(11)]
    );

    // FreeSWITCH: both agents answered, and fsb24 never hung the transferred caller up.
    let rings: Vec<(String, Option<String>)> =
        w.fs.ring_log()
            .into_iter()
            .map(|r| (r.user, r.why))
            .collect();
    assert_eq!(
        rings,
        [
            ("1001".to_owned(), Some("ANSWERED".to_owned())),
            ("1002".to_owned(), Some("ANSWERED".to_owned()))
        ]
    );
    let hangups: Vec<_> =
        w.fs.commands()
            .into_iter()
            .filter(|c| {
                let text = c.text.to_ascii_lowercase();
                text.contains("call-command: hangup") || text.contains("execute-app-name: hangup")
            })
            .collect();
    assert!(hangups.is_empty(), "{hangups:?}");
    w.app.shutdown().await;
}
