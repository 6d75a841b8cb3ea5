//! Tests of the Outbox handle and the CLI-facing functions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::*;
use crate::outbox::store::Completion;
use crate::outbox::testkit::{call, cw, finish, register, result, t};

#[test]
fn external_call_ids_are_derived_from_the_channel_uuid_and_leg() {
    let channel = ChannelId::new("0b8e6c1a-2f4d-4e8a-9c1b-7d6e5f4a3b21");
    assert_eq!(
        external_call_id(&channel, 0).as_str(),
        "fs-0b8e6c1a-2f4d-4e8a-9c1b-7d6e5f4a3b21"
    );
    assert_eq!(
        external_call_id(&channel, 2).as_str(),
        "fs-0b8e6c1a-2f4d-4e8a-9c1b-7d6e5f4a3b21-2"
    );
    // Recovery reads the channel back from either form.
    for leg in [0, 2, 17] {
        assert_eq!(
            channel_of(&external_call_id(&channel, leg)),
            Some(channel.clone())
        );
    }
    let custom = ChannelId::new("my-own-uuid");
    assert_eq!(channel_of(&external_call_id(&custom, 0)), Some(custom));
    assert_eq!(channel_of(&ExternalCallId::new("c2c-externalCall.1")), None);
    assert_eq!(channel_of(&ExternalCallId::new("fs-")), None);
}

#[tokio::test]
async fn cli_status_and_retry_work_on_the_file_of_a_running_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let outbox = Outbox::open(&path).await.unwrap();
    let reg = outbox.push(cw(1, register(false))).await.unwrap();
    outbox.push(cw(1, finish())).await.unwrap();
    outbox
        .store()
        .dead_letter(reg, "User is not found or is not active".into(), t(1))
        .await
        .unwrap();

    let report = status_report(&path).await.unwrap();
    assert_eq!((report.pending, report.dead_letters.len()), (1, 1));
    let text = report.to_string();
    assert!(
        text.contains("dead letters: 1") && text.contains("kind=register"),
        "{text}"
    );

    assert_eq!(retry_dead_letters(&path).await.unwrap(), 1);
    // The daemon's handle sees the re-driven entry first again, in its original place.
    let due = outbox.store().due(Utc::now(), 10).await.unwrap();
    assert_eq!(due[0].id, reg);
}

#[tokio::test]
async fn register_result_answers_at_once_for_a_call_already_registered_or_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(&dir.path().join("outbox.db")).await.unwrap();
    let reg = outbox.push(cw(1, register(true))).await.unwrap();
    let done = Completion::Registered {
        result: result(1),
        opened_card: true,
    };
    outbox.store().ack(reg, done, t(1)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), outbox.register_result(&call(1)))
        .await
        .unwrap();
    assert_eq!(got.unwrap(), result(1));

    let waiter = {
        let outbox = outbox.clone();
        tokio::spawn(async move { outbox.register_result(&call(2)).await })
    };
    tokio::task::yield_now().await;
    outbox
        .set_call_id(&call(2), result(2).call_id)
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.unwrap().call_id, result(2).call_id);
}
