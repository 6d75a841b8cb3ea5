//! Issue-15 outgoing calls end to end: an employee dials an external number on a desk phone, the
//! dialplan hands the call to fsb24 (`fsb24_call=outgoing`, `socket ... async full`), fsb24
//! bridges it through the configured gateway and Bitrix24 gets `register TYPE=1` for the
//! employee and one `finish` with the SIP outcome; with fsb24 down the dialplan's fallback
//! places the call itself. Asserted on the commands the FreeSWITCH peer received and the calls
//! and card timeline of the Bitrix24 peer.

use std::time::Duration;

use crate::support::admin;
use crate::support::app::World;
use crate::support::bitrix_peer::CallRecord;
use crate::support::esl_peer::caller::CallSpec;

/// The employee dialling: extension 1001, Bitrix24 user 17.
const EMPLOYEE: (&str, u64) = ("1001", 17);
/// A colleague (internal calls).
const COLLEAGUE: (&str, u64) = ("1002", 18);
/// A valid German number (libphonenumber metadata), dialled through gateway `provider`.
const CUSTOMER: &str = "+49301234567";

const OUTGOING: &str = r#"
[numbers]
default_country = "DE"
[outgoing]
enabled = true
gateway = "provider"
line_number = "out-1"
ring_timeout = "2s"
"#;

fn dialled(number: &str) -> CallSpec {
    CallSpec {
        caller: EMPLOYEE.0.into(),
        destination: number.into(),
        vars: vec![("fsb24_call".into(), "outgoing".into())],
        ..CallSpec::default()
    }
}

async fn world() -> World {
    World::start(&[EMPLOYEE, COLLEAGUE], OUTGOING).await
}

/// Places one call to `number`, waits for its finish and checks what every outcome shares:
/// TYPE=1, the employee's USER_ID on register and finish, the line, the number as E.164.
async fn finished(w: &World, number: &str) -> (String, CallRecord) {
    let caller =
        w.fs.offer_call(w.app.esl_addr, dialled(number))
            .await
            .unwrap();
    let call = w.finished_call(&caller.uuid).await;
    let finish = call.finished.clone().unwrap();
    assert_eq!(call.call_type, 1, "TYPE");
    assert_eq!((call.user_id, finish.user_id), (EMPLOYEE.1, EMPLOYEE.1));
    assert_eq!(call.line.as_deref(), Some("out-1"));
    (caller.uuid.clone(), call)
}

/// The bridge fsb24 sent for `uuid`: the gateway endpoint with a fixed leg and a leg timeout.
fn bridge_of(w: &World, uuid: &str) -> String {
    let bridges: Vec<String> =
        w.fs.commands()
            .into_iter()
            .filter(|c| c.text.contains("Execute-App-Name: bridge"))
            .map(|c| c.text)
            .collect();
    assert_eq!(bridges.len(), 1, "one bridge for {uuid}: {bridges:?}");
    bridges[0].clone()
}

#[tokio::test]
async fn an_answered_outgoing_call_is_registered_for_the_employee_and_finished_200_with_its_recording()
 {
    let w = world().await;
    w.fs.phone(CUSTOMER)
        .answers_then_hangs_up(Duration::from_millis(200), Duration::from_secs(2));
    let (uuid, call) = finished(&w, "030 1234567").await;
    let finish = call.finished.clone().unwrap();
    assert_eq!(call.phone, CUSTOMER, "the number as E.164");
    // Talk time as fsb24 saw it between CHANNEL_BRIDGE and the end (the peer talks 2 s).
    finish.assert_talked(2);
    let bridge = bridge_of(&w, &uuid);
    assert!(
        bridge.contains("sofia/gateway/provider/+49301234567"),
        "{bridge}"
    );
    assert!(bridge.contains("leg_timeout=2"), "{bridge}");
    assert!(
        w.fs.wait_command("fsb24_placed").await.is_some(),
        "the call is marked placed before it is dialled"
    );
    // The card: opened for the employee by the register, closed by the finish.
    let timeline = w.bx.timeline(&call.call_id);
    assert_eq!(timeline.len(), 1, "{timeline:?}");
    assert_eq!(timeline[0].user, EMPLOYEE.1);
    assert_eq!(timeline[0].from, call.registered_at);
    assert_eq!(timeline[0].to, Some(finish.at));
    let ring = w.fs.ring_ended(CUSTOMER, 0).await.unwrap();
    assert!(
        call.registered_at <= ring.started,
        "the card is open while it rings"
    );
    // The recording is attached (`finished_call` waits for it).
    w.bx.finished_call(&format!("fs-{uuid}"), true).await;
    // Operators count it: fsb24_calls_total{route="outgoing",outcome="answered"}.
    let labels = [("route", "outgoing"), ("outcome", "answered")];
    admin::scrape_until(w.app.admin_addr, "the outgoing call counted", |s| {
        s.sum("fsb24_calls_total", &labels) == 1.0
    })
    .await;
    w.app.shutdown().await;
}

#[tokio::test]
async fn busy_unanswered_and_rejected_numbers_finish_with_their_sip_outcome() {
    let w = world().await;
    let cases = [
        ("+493012345671", "486"),
        ("+493012345672", "480"),
        ("+493012345673", "603"),
    ];
    w.fs.phone(cases[0].0).busy();
    w.fs.phone(cases[1].0).rings_forever();
    w.fs.phone(cases[2].0).rejects();
    for (number, status) in cases {
        let (uuid, call) = finished(&w, number).await;
        let finish = call.finished.clone().unwrap();
        assert_eq!(
            (finish.status_code.as_str(), finish.duration),
            (status, 0),
            "{number}"
        );
        assert!(!w.fs.channel_exists(&uuid) || w.fs.channel_gone(&uuid).await);
        let timeline = w.bx.timeline(&call.call_id);
        assert_eq!(timeline.len(), 1, "{timeline:?}");
        assert_eq!(
            timeline[0].to,
            Some(finish.at),
            "the card closes with the finish"
        );
    }
    w.app.shutdown().await;
}

#[tokio::test]
async fn an_implausible_number_is_never_dialled_and_is_finished_484() {
    let w = world().await;
    let (uuid, call) = finished(&w, "+4930").await;
    let finish = call.finished.clone().unwrap();
    assert_eq!((finish.status_code.as_str(), finish.duration), ("484", 0));
    assert!(
        !call.show,
        "no card flashes for a number that is not dialled"
    );
    assert!(
        w.fs.commands()
            .iter()
            .all(|c| !c.text.contains("Execute-App-Name: bridge")),
        "nothing dialled"
    );
    let hangup = w.fs.wait_command("INVALID_NUMBER_FORMAT").await;
    assert!(hangup.is_some(), "the employee's phone is told why");
    assert!(w.fs.channel_gone(&uuid).await);
    w.app.shutdown().await;
}

#[tokio::test]
async fn with_fsb24_down_the_dialplan_fallback_places_the_call_unreported() {
    let w = world().await;
    w.fs.set_outgoing_fallback("provider");
    w.fs.phone(CUSTOMER)
        .answers_then_hangs_up(Duration::from_millis(200), Duration::from_millis(300));
    // Nothing listens here: the socket app's connect is refused.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let uuid = w.fs.offer_call_while_down(down, dialled(CUSTOMER)).await;
    let ring = w.fs.ring_ended(CUSTOMER, 0).await.unwrap();
    assert_eq!(
        ring.why.as_deref(),
        Some("ANSWERED"),
        "the fallback reached the number"
    );
    assert!(w.fs.channel_gone(&uuid).await);
    assert!(w.bx.calls().is_empty(), "fsb24 was down: nothing reported");
    w.app.shutdown().await;
}

#[tokio::test]
async fn an_outgoing_call_fsb24_placed_is_not_dialled_again_by_the_fallback() {
    // fsb24 marks the channel `fsb24_placed` before it dials: when its socket goes away the
    // dialplan's fallback hangs up instead of dialling the number a second time.
    let w = world().await;
    w.fs.set_outgoing_fallback("provider");
    w.fs.phone(CUSTOMER).busy();
    let (uuid, _call) = finished(&w, CUSTOMER).await;
    assert!(w.fs.socket_closed(&uuid).await);
    let rings: Vec<_> =
        w.fs.ring_log()
            .into_iter()
            .filter(|r| r.user == CUSTOMER)
            .collect();
    assert_eq!(rings.len(), 1, "dialled once: {rings:?}");
    w.app.shutdown().await;
}

#[tokio::test]
async fn an_internal_call_is_handed_back_unreported() {
    let w = world().await;
    let caller =
        w.fs.offer_call(w.app.esl_addr, dialled(COLLEAGUE.0))
            .await
            .unwrap();
    assert!(
        w.fs.socket_closed(&caller.uuid).await,
        "handed back to the dialplan"
    );
    assert!(
        w.fs.commands()
            .iter()
            .all(|c| !c.text.contains("Execute-App-Name: bridge")),
        "fsb24 dials nothing"
    );
    assert!(w.bx.calls().is_empty(), "internal calls are not reported");
    w.app.shutdown().await;
}

/// A route that forwards 9400 to the employee's mobile (issue 15: forwarding, TYPE=3).
const FORWARD: &str = r#"
[numbers]
default_country = "DE"
[outgoing]
gateway = "provider"
[[routes]]
destination = "9400"
target = { forward = { number = "0170 1234567", agent = "1001", ring = "2s" } }
"#;
const MOBILE: &str = "+491701234567";
const CLIENT: &str = "+79991234567";

async fn forwarded(w: &World) -> CallRecord {
    let spec = CallSpec {
        caller: CLIENT.into(),
        destination: "9400".into(),
        ..CallSpec::default()
    };
    let caller = w.fs.offer_call(w.app.esl_addr, spec).await.unwrap();
    let call = w.finished_call(&caller.uuid).await;
    assert_eq!(call.call_type, 3, "TYPE: incoming, redirected");
    assert_eq!(call.phone, CLIENT, "the client's number");
    let finish = call.finished.clone().unwrap();
    assert_eq!((call.user_id, finish.user_id), (EMPLOYEE.1, EMPLOYEE.1));
    let timeline = w.bx.timeline(&call.call_id);
    assert_eq!(timeline.len(), 1, "{timeline:?}");
    assert_eq!(
        timeline[0].user, EMPLOYEE.1,
        "the card of the employee forwarded for"
    );
    assert_eq!(timeline[0].to, Some(finish.at));
    call
}

#[tokio::test]
async fn a_forwarded_call_is_registered_as_redirected_for_the_employee_and_finished_with_the_talk_time()
 {
    let w = World::start(&[EMPLOYEE], FORWARD).await;
    w.fs.phone(MOBILE)
        .answers_then_hangs_up(Duration::from_millis(200), Duration::from_secs(2));
    let call = forwarded(&w).await;
    let finish = call.finished.clone().unwrap();
    finish.assert_talked(2);
    let bridge =
        w.fs.wait_command("sofia/gateway/provider/+491701234567")
            .await;
    assert!(bridge.is_some(), "dialled through the gateway, in E.164");
    let ring = w.fs.ring_ended(MOBILE, 0).await.unwrap();
    assert!(
        call.registered_at <= ring.ended.unwrap(),
        "the card opened while the mobile rang"
    );
    w.app.shutdown().await;
}

#[tokio::test]
async fn a_forwarded_call_nobody_answers_is_a_missed_call_of_the_employee() {
    let w = World::start(&[EMPLOYEE], FORWARD).await;
    w.fs.phone(MOBILE).rings_forever();
    let call = forwarded(&w).await;
    let finish = call.finished.clone().unwrap();
    assert_eq!((finish.status_code.as_str(), finish.duration), ("304", 0));
    w.app.shutdown().await;
}

#[tokio::test]
async fn with_internal_calls_reported_a_call_to_a_colleague_is_placed_and_registered_for_the_caller()
 {
    let body = format!("{OUTGOING}internal_calls = true\nshow_card = false\n");
    let w = World::start(&[EMPLOYEE, COLLEAGUE], &body).await;
    w.fs.phone(COLLEAGUE.0)
        .answers_then_hangs_up(Duration::from_millis(200), Duration::from_secs(1));
    let (uuid, call) = finished(&w, COLLEAGUE.0).await;
    assert_eq!(call.phone, COLLEAGUE.0);
    assert!(call.internal, "Bitrix24 sees a colleague's inner number");
    assert_eq!(call.finished.clone().unwrap().status_code, "200");
    let bridge = bridge_of(&w, &uuid);
    assert!(bridge.contains("user/1002@127.0.0.1"), "{bridge}");
    assert!(!call.show, "show_card = false");
    assert!(w.bx.timeline(&call.call_id).is_empty(), "no card opened");
    w.app.shutdown().await;
}
