//! An event flood larger than any queue between FreeSWITCH and a call (the ESL crate's event
//! queue, the session's channel to the call task) loses no hang-up: the call is still finished
//! correctly, for the agent who talked.

use std::time::Duration;

use crate::support::app::World;
use crate::support::esl_peer::caller::CallSpec;

const ROUTE: &str = r#"
[[routes]]
destination = "9001"
target = { agent = "1001" }
"#;

/// More events than the crate's queue (1,000) and the call's channel (256) hold together.
const FLOOD: usize = 5_000;

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
