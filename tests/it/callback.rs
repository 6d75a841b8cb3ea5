//! `ONEXTERNALCALLBACKSTART` through both peers: fsb24 calls the customer first; once they
//! answer, the call comes back through fsb24's socket and runs as an inbound call of
//! `[events] callback_queue`: the ringing agent's card, the hand-over, one finish with the
//! `CALL_ID` that fsb24's `register` (TYPE=4, the form's line and CRM entity) returned. A customer
//! who does not answer rings no agent, and the callback is finished with the attempt's status.

use crate::offline_events::{CUSTOMER, Rig, TOKEN};
use crate::support::bitrix_peer::{CallRecord, EntityKind, SeedUser};

const QUEUE: &str = r#"
[[queues]]
name = "callbacks"
strategy = "simultaneous"
agents = ["1001"]
ring = ["20s"]
rounds = 1
"#;

async fn rig() -> (Rig, u16) {
    let port = crate::support::daemon::free_port();
    let rig = Rig::with(
        "online",
        Some(port),
        "callback_queue = \"callbacks\"\n",
        QUEUE,
    )
    .await;
    (rig, port)
}

async fn callback_call(rig: &Rig) -> CallRecord {
    rig.bx
        .wait_for_value("the callback is finished", |s| {
            s.calls
                .iter()
                .find(|c| c.call_type == 4 && c.finished.is_some())
                .cloned()
        })
        .await
}

#[tokio::test]
async fn a_callback_calls_the_customer_then_a_queue_agent_and_finishes_its_registered_call() {
    let (rig, port) = rig().await;
    let http = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let app = rig.start(Some(http)).await;
    let handler = format!("http://127.0.0.1:{port}/bitrix24/event");
    let form = Some((EntityKind::Lead, 77));
    let status = rig
        .bx
        .callback_start(&handler, TOKEN, "+49 30 123456789", "4930555000", form)
        .await;
    assert_eq!(status, Some(200));

    let call = callback_call(&rig).await;
    assert_eq!(call.line.as_deref(), Some("4930555000"));
    assert_eq!(call.crm, Some((EntityKind::Lead, 77)));
    assert_eq!(call.phone, CUSTOMER);
    let finished = call.finished.clone().unwrap();
    assert_eq!(finished.user_id, 17, "the agent who talked");
    assert_eq!(finished.status_code, "200");
    assert!(finished.duration >= 1, "{finished:?}");
    // The customer first, then the agent of the queue.
    let customer = rig.fs.ring_ended(CUSTOMER, 0).await.expect("customer rang");
    let agent = rig.fs.ring_ended("1001", 0).await.expect("agent rang");
    assert!(
        customer.ended.unwrap() <= agent.started,
        "customer answered first"
    );
    // The card followed the agent's phone, as for an inbound call: open while it rang.
    let cards = rig.bx.timeline(&call.call_id);
    assert_eq!(cards.len(), 1, "{cards:?}");
    assert_eq!(cards[0].user, 17);
    assert!(cards[0].from < agent.ended.unwrap());
    assert!(cards[0].to.is_some(), "closed by the finish");
    let registers = rig.bx.method_calls("telephony.externalcall.register");
    assert_eq!(registers.len(), 1, "{registers:?}");
    let originate = rig
        .fs
        .commands()
        .into_iter()
        .find(|c| c.text.contains("originate"))
        .unwrap();
    assert!(
        originate.text.contains("'&socket(127.0.0.1:"),
        "{}",
        originate.text
    );
    assert_eq!(rig.originates(), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn a_customer_who_does_not_answer_rings_no_agent_and_the_callback_is_finished_busy() {
    let (rig, port) = rig().await;
    rig.fs.phone(CUSTOMER).busy();
    // `bitrix.defaults.missed_call_owner`: the portal's administrator.
    rig.bx.add_user(SeedUser::new(1, "Admin", None));
    let http = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let app = rig.start(Some(http)).await;
    let handler = format!("http://127.0.0.1:{port}/bitrix24/event");
    let status = rig
        .bx
        .callback_start(&handler, TOKEN, "+4930123456789", "", None)
        .await;
    assert_eq!(status, Some(200));
    let call = callback_call(&rig).await;
    let finished = call.finished.clone().unwrap();
    assert_eq!(finished.status_code, "486");
    assert_eq!(finished.duration, 0);
    assert!(rig.bx.timeline(&call.call_id).is_empty(), "no card");
    let agent_dialled = rig
        .fs
        .commands()
        .iter()
        .any(|c| c.text.contains("user/1001"));
    assert!(!agent_dialled, "no agent rang");
    assert_eq!(finished.user_id, 1);
    assert!(finished.failed_reason.contains("USER_BUSY"), "{finished:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn an_offline_callback_form_is_fetched_called_back_once_and_cleared() {
    let rig = Rig::with("offline", None, "callback_queue = \"callbacks\"\n", QUEUE).await;
    rig.setup().await;
    let app = rig.start(None).await;
    let form = Some((EntityKind::Contact, 311));
    rig.bx
        .callback_offline("+49 30 123456789", "4930555000", form, TOKEN);
    let call = callback_call(&rig).await;
    assert_eq!(call.crm, Some((EntityKind::Contact, 311)));
    assert_eq!(call.finished.unwrap().status_code, "200");
    rig.queue_drained().await;
    assert!(rig.bx.offline_records().is_empty(), "cleared, not flagged");
    // The same form again within a minute (e.g. also delivered online): called once.
    rig.bx
        .callback_offline("+49 30 123456789", "4930555000", form, TOKEN);
    rig.queue_drained().await;
    assert_eq!(rig.originates(), 1);
    app.shutdown().await;
}
