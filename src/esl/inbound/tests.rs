//! Backoff schedule, job correlation, and the connection against the crate's scripted peer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use freeswitch_esl_tokio::mock::{MockBackgroundJob, MockConnection, MockEslServer};
use tokio::time::timeout;

use super::*;
use crate::esl::command::{DialLeg, Endpoint, OriginateThen};
use crate::ids::LegId;

const WAIT: Duration = Duration::from_secs(5);
const PASSWORD: &str = "ClueCon";

#[test]
fn backoff_doubles_up_to_the_cap_and_jitter_only_shortens() {
    let b = ReconnectBackoff {
        initial: Duration::from_millis(500),
        max: Duration::from_secs(4),
        jitter: 0.0,
    };
    let schedule: Vec<_> = (0..6).map(|n| b.delay(n, 0.9)).collect();
    let ms = |v: u64| Duration::from_millis(v);
    assert_eq!(
        schedule,
        [ms(500), ms(1000), ms(2000), ms(4000), ms(4000), ms(4000)]
    );
    assert_eq!(b.delay(u32::MAX, 0.5), ms(4000));
    let jittered = ReconnectBackoff {
        jitter: 0.5,
        ..b.clone()
    };
    assert_eq!(jittered.delay(1, 0.0), ms(1000));
    assert_eq!(jittered.delay(1, 1.0), ms(500));
    let now = Instant::now();
    assert_eq!(b.next_attempt_at(now, 2, 0.3), now + ms(2000));
}

#[test]
fn job_results_reach_their_waiter_even_when_the_event_beats_the_reply() {
    let now = Instant::now();
    let mut jobs = Jobs::default();
    jobs.complete(JobId::new("early"), JobOutcome::Ok("x".into()), now);
    let mut rx = jobs.register(JobId::new("early"));
    assert_eq!(rx.try_recv().unwrap(), JobOutcome::Ok("x".into()));
    let mut rx = jobs.register(JobId::new("late"));
    jobs.complete(
        JobId::new("late"),
        JobOutcome::Failed("USER_BUSY".into()),
        now,
    );
    assert_eq!(
        rx.try_recv().unwrap(),
        JobOutcome::Failed("USER_BUSY".into())
    );
    // Someone else's job (an operator's fs_cli) is parked, then swept after the TTL.
    jobs.complete(JobId::new("foreign"), JobOutcome::Ok(String::new()), now);
    jobs.complete(
        JobId::new("other"),
        JobOutcome::Ok(String::new()),
        now + EARLY_JOB_TTL,
    );
    assert!(!jobs.early.contains_key(&JobId::new("foreign")));
}

fn options(port: u16) -> InboundOptions {
    InboundOptions {
        host: "127.0.0.1".into(),
        port,
        password: PASSWORD.into(),
        connect_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(2),
        job_timeout: Duration::from_secs(2),
        backoff: ReconnectBackoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(100),
            jitter: 0.0,
        },
        liveness_timeout: Duration::from_secs(60),
        domain: Domain::parse("127.0.0.1").unwrap(),
        event_capacity: 16,
    }
}

async fn expect(fs: &mut MockConnection, prefix: &str) -> String {
    let cmd = timeout(WAIT, fs.read_command()).await.unwrap().unwrap();
    assert!(cmd.starts_with(prefix), "expected {prefix:?}, got {cmd:?}");
    cmd
}

/// Subscription plus the presence resync FreeSWITCH sees after every connect.
async fn setup(fs: &mut MockConnection, registered: bool) {
    let event = expect(fs, "event plain").await;
    for needed in [
        "CHANNEL_CREATE",
        "CHANNEL_HANGUP_COMPLETE",
        "BACKGROUND_JOB",
        "HEARTBEAT",
        "CUSTOM sofia::register",
    ] {
        assert!(event.contains(needed), "{needed} missing in {event:?}");
    }
    fs.reply_ok_text("event listener enabled plain")
        .await
        .unwrap();
    expect(fs, "api show channels as json").await;
    fs.reply_api(
        r#"{"row_count":1,"rows":[{"uuid":"c1","name":"sofia/internal/1011@127.0.0.1:5081"}]}"#,
    )
    .await
    .unwrap();
    expect(fs, "api sofia_contact 1011@127.0.0.1").await;
    let contact = if registered {
        "sofia/internal/sip:1011@127.0.0.1:5081"
    } else {
        "error/user_not_registered"
    };
    fs.reply_api(contact).await.unwrap();
}

/// One inbound client under test, with the token and tracker that stop it.
struct Running {
    handle: InboundHandle,
    /// Subscribed before the client connects, so it sees every event.
    events: broadcast::Receiver<SwitchEvent>,
    presence: Presence,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Running {
    fn spawn(port: u16, presence: Presence) -> Self {
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let handle =
            InboundClient::spawn(options(port), presence.clone(), shutdown.clone(), &tracker);
        Self {
            events: handle.subscribe(),
            handle,
            presence,
            shutdown,
            tracker,
        }
    }

    /// A client for agent 1011 connected to a scripted peer, through its first resync with 1011
    /// `registered` or not; the server is returned so that the client can dial it again.
    async fn connected(registered: bool) -> (MockEslServer, Self, MockConnection) {
        let server = MockEslServer::bind("127.0.0.1:0", PASSWORD).await.unwrap();
        let client = Self::spawn(server.port(), Presence::new(["1011".to_owned()]));
        let mut fs = timeout(WAIT, server.accept()).await.unwrap().unwrap();
        setup(&mut fs, registered).await;
        until_resynced(&client.handle, 1).await;
        (server, client, fs)
    }

    /// Cancels the client and waits until its task has ended.
    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        timeout(WAIT, self.tracker.wait()).await.unwrap();
    }
}

async fn until_resynced(handle: &InboundHandle, count: u64) {
    let mut rx = handle.resyncs();
    timeout(WAIT, rx.wait_for(|n| *n >= count))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn commands_fail_at_once_while_disconnected() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener); // nothing listens: every connect is refused
    let client = Running::spawn(port, Presence::default());
    let handle = &client.handle;
    let err = handle
        .uuid_kill(&ChannelId::new("x"), HangupCause::NoAnswer)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EslError::NotConnected {
                command: "uuid_kill"
            }
        ),
        "{err:?}"
    );
    client.stop().await;
}

#[tokio::test]
async fn originate_waits_for_its_background_job_and_reports_the_cause() {
    let (_server, client, mut fs) = Running::connected(true).await;
    let (handle, presence) = (&client.handle, &client.presence);
    assert!(presence.is_registered("1011"));
    assert_eq!(presence.live_channels("1011"), 1);

    let leg = LegId::random();
    let agent = Endpoint::User {
        ext: Extension::parse("1011").unwrap(),
        domain: Domain::parse("127.0.0.1").unwrap(),
    };
    let request = OriginateRequest {
        leg: DialLeg::new(leg.clone(), agent).unwrap(),
        then: OriginateThen::Park,
        timeout_secs: 20,
    };
    let (result, ()) = tokio::join!(handle.originate(&request), async {
        let cmd = expect(&mut fs, "bgapi originate ").await;
        assert!(cmd.contains(&format!("origination_uuid={leg}")), "{cmd}");
        fs.reply_bgapi("job-1").await.unwrap();
        fs.send_background_job(
            &MockBackgroundJob::new("job-1", "originate"),
            &format!("+OK {leg}\n"),
        )
        .await
        .unwrap();
    });
    assert_eq!(result.unwrap(), ChannelId::from(leg));

    let (result, ()) = tokio::join!(handle.originate(&request), async {
        expect(&mut fs, "bgapi originate ").await;
        fs.reply_bgapi("job-2").await.unwrap();
        fs.send_background_job(
            &MockBackgroundJob::new("job-2", "originate"),
            "-ERR USER_BUSY\n",
        )
        .await
        .unwrap();
    });
    assert!(matches!(
        result,
        Err(EslError::OriginateFailed {
            cause: crate::esl::Cause::Known(HangupCause::UserBusy),
        })
    ));
    client.stop().await;
}

#[tokio::test]
async fn lost_connection_is_redialled_resubscribed_and_resynced() {
    let (server, mut client, mut fs) = Running::connected(false).await;
    let (handle, presence) = (&client.handle, &client.presence);
    fs.send_event_plain(
        "CUSTOM",
        [
            ("Event-Subclass", "sofia::register"),
            ("from-user", "1011"),
            ("expires", "60"),
        ],
    )
    .await
    .unwrap();
    let ev = timeout(WAIT, client.events.recv()).await.unwrap().unwrap();
    assert_eq!(
        ev,
        SwitchEvent::Registered {
            user: "1011".into(),
            expires: Some(60)
        }
    );
    assert!(presence.is_registered("1011"));

    fs.drop_connection().await;
    let mut fs = timeout(WAIT, server.accept()).await.unwrap().unwrap();
    setup(&mut fs, false).await; // the snapshot wins over the stale event state
    until_resynced(handle, 2).await;
    let c1 = ChannelId::new("c1");
    let (kill, ()) = tokio::join!(handle.uuid_kill(&c1, HangupCause::NoAnswer), async {
        expect(&mut fs, "api uuid_kill c1 NO_ANSWER").await;
        fs.reply_api("+OK\n").await.unwrap();
    });
    kill.unwrap();
    assert!(!presence.is_registered("1011"));
    client.stop().await;
}
