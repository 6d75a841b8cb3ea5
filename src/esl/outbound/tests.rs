//! Wire-level tests against the crate's scripted FreeSWITCH peer (real sockets, real time).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use freeswitch_esl_tokio::mock::MockConnection;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use super::*;
use crate::esl::HangupCause;
use crate::ids::LegId;

const OWN: &str = "78db8cfe-db01-49e6-8b07-cdaf507e4fe4";
const WAIT: Duration = Duration::from_secs(5);

struct Rig {
    addr: SocketAddr,
    calls: mpsc::Receiver<IncomingCall>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

async fn rig(handshake_timeout: Duration) -> Rig {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = OutboundOptions {
        handshake_timeout,
        command_timeout: Duration::from_millis(500),
        variables: vec!["sip_call_id".into()],
        hangup_grace: Duration::from_millis(300),
        ..OutboundOptions::default()
    };
    let (tx, calls) = mpsc::channel(4);
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let server = OutboundServer::new(listener, options);
    tracker.spawn(server.run(tx, shutdown.clone(), tracker.clone()));
    Rig {
        addr,
        calls,
        shutdown,
        tracker,
    }
}

async fn dial(addr: SocketAddr) -> MockConnection {
    MockConnection::from_stream(TcpStream::connect(addr).await.unwrap())
}

async fn expect(fs: &mut MockConnection, prefix: &str) -> String {
    let cmd = timeout(WAIT, fs.read_command()).await.unwrap().unwrap();
    assert!(cmd.starts_with(prefix), "expected {prefix:?}, got {cmd:?}");
    cmd
}

async fn connect_reply(fs: &mut MockConnection, uuid: &str) {
    expect(fs, "connect\n").await;
    fs.send_connect_response([
        ("Event-Name", "CHANNEL_DATA"),
        ("Unique-ID", uuid),
        ("Caller-Caller-ID-Number", "+79990001122"),
        ("Caller-Caller-ID-Name", "sipp caller"),
        ("Caller-Destination-Number", "9002"),
        ("Caller-Channel-Created-Time", "1795623533960000"),
        ("Caller-Channel-Answered-Time", "0"),
        ("variable_socket_path", "/queue/sales"),
        ("variable_sip_call_id", "1-1@127.0.0.1"),
    ])
    .await
    .unwrap();
}

/// Plays FreeSWITCH through the whole setup of an `async full` session.
async fn handshake(fs: &mut MockConnection, uuid: &str) {
    connect_reply(fs, uuid).await;
    expect(fs, "linger\n").await;
    fs.reply_ok_text("will linger").await.unwrap();
    expect(fs, "myevents plain\n").await;
    fs.reply_ok_text("Events Enabled").await.unwrap();
    let event = expect(fs, "event plain").await;
    assert!(
        event.contains("RECORD_START") && event.contains("RECORD_STOP"),
        "{event:?}"
    );
    fs.reply_ok_text("event listener enabled plain")
        .await
        .unwrap();
    let nix = expect(fs, "nixevent").await;
    assert!(
        nix.contains("CHANNEL_STATE") && !nix.contains("CHANNEL_HANGUP"),
        "{nix:?}"
    );
    fs.reply_ok_text("events nixed").await.unwrap();
    // No `resume`: every test's next `expect` would see it.
}

async fn next_call(rig: &mut Rig) -> IncomingCall {
    timeout(WAIT, rig.calls.recv()).await.unwrap().unwrap()
}

async fn next_event(call: &mut IncomingCall) -> CallEvent {
    timeout(WAIT, call.events.recv()).await.unwrap().unwrap()
}

#[tokio::test]
async fn session_hands_over_channel_info_forwards_events_and_exits_after_hangup_complete() {
    let mut rig = rig(Duration::from_secs(2)).await;
    let mut fs = dial(rig.addr).await;
    handshake(&mut fs, OWN).await;
    let mut call = next_call(&mut rig).await;
    assert_eq!(call.info.channel, ChannelId::new(OWN));
    assert_eq!(call.info.caller_id_number.as_deref(), Some("+79990001122"));
    assert_eq!(call.info.destination_number.as_deref(), Some("9002"));
    assert_eq!(call.info.socket_path.as_deref(), Some("/queue/sales"));
    assert!(!call.info.answered);
    assert_eq!(
        call.info.created_at.map(|t| t.timestamp_micros()),
        Some(1_795_623_533_960_000)
    );
    assert_eq!(
        call.info.variables.get("sip_call_id").map(String::as_str),
        Some("1-1@127.0.0.1")
    );

    let session = call.session.clone();
    let (exec, cmd) = tokio::join!(session.answer(), async {
        let cmd = expect(&mut fs, "sendmsg").await.to_ascii_lowercase();
        fs.reply_ok().await.unwrap();
        cmd
    });
    let exec = exec.unwrap();
    assert!(cmd.contains("execute-app-name: answer"), "{cmd}");
    assert!(cmd.contains("event-lock: true"), "{cmd}");
    assert!(
        cmd.contains(&format!(
            "event-uuid: {}",
            exec.as_str().to_ascii_lowercase()
        )),
        "{cmd}"
    );

    fs.send_event_plain("CHANNEL_ANSWER", [("Unique-ID", OWN)])
        .await
        .unwrap();
    fs.send_event_plain("CHANNEL_STATE", [("Unique-ID", OWN)])
        .await
        .unwrap();
    assert_eq!(next_event(&mut call).await, CallEvent::Answered);
    fs.send_event_plain(
        "CHANNEL_HANGUP_COMPLETE",
        [
            ("Unique-ID", OWN),
            ("Hangup-Cause", "NORMAL_CLEARING"),
            ("variable_billsec", "3"),
        ],
    )
    .await
    .unwrap();
    assert!(matches!(next_event(&mut call).await, CallEvent::HangupComplete(s) if s.billsec == 3));
    expect(&mut fs, "exit\n").await;
    fs.reply_ok_text("bye").await.unwrap();
    fs.send_raw("Content-Type: text/disconnect-notice\nControlled-Session-UUID: x\nContent-Disposition: disconnect\nContent-Length: 0\n\n")
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut call).await,
        CallEvent::Disconnected {
            reason: DisconnectCause::ServerNotice
        }
    );
    rig.shutdown.cancel();
    rig.tracker.close();
    timeout(WAIT, rig.tracker.wait()).await.unwrap();
}

#[tokio::test]
async fn a_stalled_handshake_times_out_alone_while_other_calls_proceed() {
    let mut rig = rig(Duration::from_millis(300)).await;
    let mut stalled = dial(rig.addr).await;
    expect(&mut stalled, "connect\n").await; // never answered
    let mut healthy = dial(rig.addr).await;
    handshake(&mut healthy, "11111111-2222-3333-4444-555555555555").await;
    let call = next_call(&mut rig).await;
    assert_eq!(
        call.info.channel.as_str(),
        "11111111-2222-3333-4444-555555555555"
    );
    // The stalled session gives up and releases its channel with exit.
    expect(&mut stalled, "exit\n").await;
    assert!(rig.calls.try_recv().is_err());
}

#[tokio::test]
async fn refused_setup_command_closes_the_session_without_a_call() {
    let mut rig = rig(Duration::from_secs(2)).await;
    let mut fs = dial(rig.addr).await;
    connect_reply(&mut fs, OWN).await;
    expect(&mut fs, "linger\n").await;
    fs.reply_err("command not found").await.unwrap();
    expect(&mut fs, "exit\n").await;
    assert!(rig.calls.try_recv().is_err());
}

#[tokio::test]
async fn a_socket_without_async_full_is_refused_loudly() {
    let mut rig = rig(Duration::from_secs(2)).await;
    let mut fs = dial(rig.addr).await;
    expect(&mut fs, "connect\n").await;
    fs.send_raw(&format!(
        "Event-Name: CHANNEL_DATA\nUnique-ID: {OWN}\nContent-Type: command/reply\nReply-Text: %2BOK%0A\nSocket-Mode: static\nControl: single-channel\n\n"
    ))
    .await
    .unwrap();
    expect(&mut fs, "exit\n").await;
    assert!(rig.calls.try_recv().is_err());
}

#[tokio::test]
async fn command_errors_name_the_command_and_timeouts_are_bounded() {
    let mut rig = rig(Duration::from_secs(2)).await;
    let mut fs = dial(rig.addr).await;
    handshake(&mut fs, OWN).await;
    let call = next_call(&mut rig).await;
    let (refused, ()) = tokio::join!(call.session.answer(), async {
        expect(&mut fs, "sendmsg").await;
        fs.reply_err("invalid session id [x]").await.unwrap();
    });
    assert!(
        matches!(refused, Err(EslError::Rejected { command: "answer", ref reply }) if reply.contains("invalid session id")),
        "{refused:?}"
    );
    let (silent, ()) = tokio::join!(call.session.hangup(HangupCause::NormalClearing), async {
        let cmd = expect(&mut fs, "sendmsg").await.to_ascii_lowercase();
        assert!(cmd.contains("execute-app-arg: normal_clearing"), "{cmd}");
        // no reply: the command timeout (500 ms) must fire
    });
    assert!(
        matches!(
            silent,
            Err(EslError::Timeout {
                command: "hangup",
                ..
            })
        ),
        "{silent:?}"
    );
}

#[tokio::test]
async fn shutdown_leaves_the_session_to_the_call_task_which_exits_after_handing_the_caller_on() {
    let mut rig = rig(Duration::from_secs(2)).await;
    let mut fs = dial(rig.addr).await;
    handshake(&mut fs, OWN).await;
    let mut call = next_call(&mut rig).await;
    rig.shutdown.cancel();
    // The session stays usable: the call task cancels a ringing agent leg on it first.
    let leg = LegId::new("5f1a3f6e-0000-4000-8000-000000000001");
    let kill = tokio::spawn({
        let session = call.session.clone();
        async move { session.kill_leg(&leg, HangupCause::OriginatorCancel).await }
    });
    let cmd = expect(&mut fs, "api uuid_kill 5f1a3f6e").await;
    assert!(cmd.contains("ORIGINATOR_CANCEL"), "{cmd:?}");
    fs.reply_api("+OK\n").await.unwrap();
    kill.await.unwrap().unwrap();
    // Then it lets go: `exit` (never `resume`, which would cut a running bridge).
    let exit = tokio::spawn({
        let session = call.session.clone();
        async move { session.exit().await }
    });
    expect(&mut fs, "exit\n").await;
    fs.reply_ok_text("bye").await.unwrap();
    exit.await.unwrap().unwrap();
    fs.drop_connection().await;
    assert_eq!(
        next_event(&mut call).await,
        CallEvent::Disconnected {
            reason: DisconnectCause::ConnectionClosed
        }
    );
    rig.tracker.close();
    timeout(WAIT, rig.tracker.wait()).await.unwrap();
}

#[tokio::test]
async fn a_lost_hangup_complete_still_ends_the_session_after_the_grace() {
    // Regression guard: with `linger` forever, a missing CHANNEL_HANGUP_COMPLETE would leak the
    // channel (FreeSWITCH keeps it until we exit).
    let mut rig = rig(Duration::from_secs(2)).await;
    let mut fs = dial(rig.addr).await;
    handshake(&mut fs, OWN).await;
    let mut call = next_call(&mut rig).await;
    fs.send_event_plain(
        "CHANNEL_HANGUP",
        [("Unique-ID", OWN), ("Hangup-Cause", "NORMAL_CLEARING")],
    )
    .await
    .unwrap();
    assert!(matches!(
        next_event(&mut call).await,
        CallEvent::Hangup { .. }
    ));
    expect(&mut fs, "exit\n").await;
}

#[tokio::test]
async fn past_max_calls_a_call_is_closed_before_connect_and_calls_are_taken_again_once_one_ends() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = OutboundOptions {
        max_calls: 1,
        ..OutboundOptions::default()
    };
    let (tx, _calls) = mpsc::channel(4);
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let server = OutboundServer::new(listener, options);
    tracker.spawn(server.run(tx, shutdown.clone(), tracker.clone()));

    let mut first = dial(addr).await;
    expect(&mut first, "connect\n").await; // holds the only slot
    let before = CALLS_REFUSED.load(Ordering::Relaxed);
    let mut second = dial(addr).await;
    // Closed without a single command: FreeSWITCH's `socket` app returns to the dialplan.
    let refused = timeout(WAIT, second.read_command()).await.unwrap();
    assert_eq!(
        refused.unwrap_err().kind(),
        std::io::ErrorKind::UnexpectedEof
    );
    assert!(CALLS_REFUSED.load(Ordering::Relaxed) > before);

    // The first session fails its handshake (the switch hung up) and frees the slot.
    first.drop_connection().await;
    let taken = timeout(WAIT, async {
        loop {
            let mut next = dial(addr).await;
            if next.read_command().await.is_ok() {
                break;
            }
        }
    })
    .await;
    assert!(taken.is_ok(), "a call is taken again below the limit");
    shutdown.cancel();
}
