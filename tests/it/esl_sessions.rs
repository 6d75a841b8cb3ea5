//! fsb24's ESL connections against the FreeSWITCH test peer: many concurrent outbound
//! handshakes with one stuck peer, and the inbound client's reconnect after the switch restarts.

use std::time::Duration;

use fsb24::esl::command::Domain;
use fsb24::esl::{
    EslError, InboundClient, InboundOptions, OutboundOptions, OutboundServer, Presence,
    ReconnectBackoff, SwitchEvent,
};
use fsb24::ids::ChannelId;
use futures_util::future::join_all;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::support::esl_peer::{CallSpec, FAILSAFE, FsPeer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_server_completes_199_handshakes_while_one_peer_never_answers_connect() {
    // 200 sessions load both cores: keep the real-time edge tests away meanwhile.
    let _exclusive = crate::support::EXCLUSIVE.lock().await;
    let fs = FsPeer::start().await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = OutboundOptions {
        handshake_timeout: Duration::from_secs(3),
        ..OutboundOptions::default()
    };
    let (shutdown, tracker) = (CancellationToken::new(), TaskTracker::new());
    let (calls_tx, mut calls) = mpsc::channel(256);
    tracker.spawn(OutboundServer::new(listener, options).run(
        calls_tx,
        shutdown.clone(),
        tracker.clone(),
    ));

    let offers = (0..200).map(|i| {
        let spec = CallSpec {
            caller: format!("+7999123{i:04}"),
            destination: "9000".into(),
            stall_connect: i == 137,
            ..CallSpec::default()
        };
        fs.offer_call(addr, spec)
    });
    let mut handles: Vec<_> = join_all(offers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let stuck = handles.remove(137);

    let mut connected = Vec::new();
    for _ in 0..199 {
        let call = timeout(FAILSAFE, calls.recv())
            .await
            .expect("a handshake stalled")
            .unwrap();
        connected.push(call);
    }
    let stuck_id = ChannelId::new(stuck.uuid.clone());
    assert!(
        connected.iter().all(|c| c.info.channel != stuck_id),
        "the silent peer never became a call"
    );
    let mut ids: Vec<_> = connected.iter().map(|c| c.info.channel.clone()).collect();
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    ids.dedup();
    assert_eq!(ids.len(), 199);
    assert!(
        connected
            .iter()
            .all(|c| c.info.destination_number.as_deref() == Some("9000"))
    );

    let mut stuck = stuck;
    assert!(
        stuck.finished().await,
        "fsb24 closed the connection whose connect never got a reply"
    );
    let stuck_cmds: Vec<_> = fs
        .commands()
        .into_iter()
        .filter(|c| c.text.starts_with("connect"))
        .collect();
    assert_eq!(
        stuck_cmds.len(),
        200,
        "every peer, the silent one included, was sent connect"
    );
    assert!(calls.try_recv().is_err(), "no 200th call");

    shutdown.cancel();
    tracker.close();
    drop(connected);
    let _ = timeout(FAILSAFE, tracker.wait()).await;
    fs.shutdown().await;
}

fn inbound_options(fs: &FsPeer) -> InboundOptions {
    InboundOptions {
        host: "127.0.0.1".into(),
        port: fs.inbound_addr().port(),
        password: "ClueCon".into(),
        connect_timeout: Duration::from_secs(2),
        // long on purpose: a command during the outage must fail at once, not by timing out
        command_timeout: Duration::from_secs(30),
        job_timeout: Duration::from_secs(5),
        backoff: ReconnectBackoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(200),
            jitter: 0.0,
        },
        liveness_timeout: Duration::from_secs(60),
        domain: Domain::parse("127.0.0.1").unwrap(),
        event_capacity: 256,
    }
}

/// Waits until the client notices the lost connection (bounded by the failsafe).
async fn until_disconnected(handle: &fsb24::esl::InboundHandle) {
    let noticed = timeout(FAILSAFE, handle.disconnected()).await;
    assert!(
        noticed.is_ok(),
        "client never noticed the switch going away"
    );
}

#[tokio::test]
async fn inbound_client_reconnects_resubscribes_and_resyncs_after_the_switch_restarts() {
    let fs = FsPeer::start().await.unwrap();
    fs.phone("1001").register(3600);
    fs.phone("1002").unregistered();
    let presence = Presence::new(["1001".to_owned(), "1002".to_owned()]);
    let (shutdown, tracker) = (CancellationToken::new(), TaskTracker::new());
    let handle = InboundClient::spawn(
        inbound_options(&fs),
        presence.clone(),
        shutdown.clone(),
        &tracker,
    );
    let mut resyncs = handle.resyncs();
    timeout(FAILSAFE, resyncs.wait_for(|n| *n >= 1))
        .await
        .unwrap()
        .unwrap();
    assert!(presence.is_registered("1001") && !presence.is_registered("1002"));

    fs.kill_inbound();
    until_disconnected(&handle).await;
    let during = timeout(
        FAILSAFE,
        handle.uuid_kill(
            &ChannelId::new("no-such"),
            fsb24::esl::HangupCause::NoAnswer,
        ),
    )
    .await;
    assert!(
        matches!(during, Ok(Err(EslError::NotConnected { .. }))),
        "fails fast: {during:?}"
    );
    // presence changes while fsb24 cannot see events
    fs.phone("1001").unregister();
    fs.phone("1002").register(3600);

    fs.restart_inbound().await.unwrap();
    timeout(FAILSAFE, resyncs.wait_for(|n| *n >= 2))
        .await
        .unwrap()
        .unwrap();
    assert!(
        !presence.is_registered("1001") && presence.is_registered("1002"),
        "snapshot re-taken"
    );
    let cmds = fs.commands();
    assert_eq!(
        cmds.iter().filter(|c| c.text.starts_with("auth ")).count(),
        2
    );
    assert_eq!(
        cmds.iter().filter(|c| c.text.starts_with("event ")).count(),
        2,
        "re-subscribed"
    );

    let mut events = handle.subscribe();
    fs.phone("1001").register(3600);
    let seen = timeout(FAILSAFE, async {
        loop {
            if let Ok(SwitchEvent::Registered { .. }) = events.recv().await {
                break;
            }
        }
    })
    .await;
    assert!(seen.is_ok(), "events flow on the new connection");
    assert!(
        timeout(
            FAILSAFE,
            handle.sofia_contact("1001", &Domain::parse("127.0.0.1").unwrap())
        )
        .await
        .unwrap()
        .unwrap()
        .is_some()
    );

    shutdown.cancel();
    tracker.close();
    let _ = timeout(FAILSAFE, tracker.wait()).await;
    fs.shutdown().await;
}
