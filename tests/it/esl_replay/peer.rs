//! The peer's inbound side (auth bytes, bgapi, presence, restart) and its switch behaviour
//! (whole-second leg_timeout, scripted phone causes, late recording), driven over raw sockets,
//! on tokio's paused clock (the peer's timers pass at once; see `real.rs`).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

use super::transcript::{Frame, event_headers, split_frames};
use crate::support::esl_peer::{CallSpec, FsPeer, wire};

/// A raw inbound ESL client for checking the peer's inbound side frame by frame.
struct RawClient {
    rd: tokio::net::tcp::OwnedReadHalf,
    wr: tokio::net::tcp::OwnedWriteHalf,
    buf: Vec<u8>,
    frames: std::collections::VecDeque<Frame>,
}

impl RawClient {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        Self::from_stream(tokio::net::TcpStream::connect(addr).await.unwrap())
    }

    fn from_stream(s: tokio::net::TcpStream) -> Self {
        // Each command leaves at once (no Nagle wait for the peer's delayed ACK): the tests run
        // on the paused clock, which jumps ahead whenever no socket has anything to read.
        s.set_nodelay(true).unwrap();
        let (rd, wr) = s.into_split();
        Self {
            rd,
            wr,
            buf: Vec::new(),
            frames: Default::default(),
        }
    }

    async fn send(&mut self, text: &str) {
        self.wr.write_all(text.as_bytes()).await.unwrap();
    }

    /// Next frame, or None at EOF (5 s failsafe).
    async fn next(&mut self) -> Option<Frame> {
        let mut tmp = vec![0u8; 65536];
        loop {
            if let Some(f) = self.frames.pop_front() {
                return Some(f);
            }
            let n = timeout(Duration::from_secs(5), self.rd.read(&mut tmp))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&tmp[..n]);
            let (frames, used) = split_frames(&self.buf);
            self.buf.drain(..used);
            self.frames.extend(frames);
        }
    }

    /// Next event frame whose Event-Name is `name` (skipping others).
    async fn event(&mut self, name: &str) -> Vec<(String, String)> {
        loop {
            let f = self
                .next()
                .await
                .unwrap_or_else(|| panic!("EOF before {name}"));
            if f.header("Content-Type") == Some("text/event-plain") {
                let h = event_headers(&f.body);
                if h.iter().any(|(k, v)| k == "Event-Name" && v == name) {
                    return h;
                }
            }
        }
    }

    async fn authed(addr: std::net::SocketAddr) -> Self {
        let mut c = Self::connect(addr).await;
        assert_eq!(
            c.next().await.unwrap().header("Content-Type"),
            Some("auth/request")
        );
        c.send("auth ClueCon\n\n").await;
        assert_eq!(
            c.next().await.unwrap().header("Reply-Text"),
            Some("+OK accepted")
        );
        c
    }
}

#[tokio::test(start_paused = true)]
async fn inbound_auth_accepts_and_rejects_with_the_real_bytes() {
    let fs = FsPeer::start().await.unwrap();
    let mut c = RawClient::connect(fs.inbound_addr()).await;
    let mut first = vec![0u8; 64];
    let n = c.rd.read(&mut first).await.unwrap();
    assert_eq!(&first[..n], b"Content-Type: auth/request\n\n");
    c.send("auth wrong\n\n").await;
    let mut rest = Vec::new();
    timeout(Duration::from_secs(5), c.rd.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    let want = "Content-Type: command/reply\nReply-Text: -ERR invalid\n\n\
                Content-Type: text/disconnect-notice\nContent-Length: 67\n\n\
                Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n";
    assert_eq!(String::from_utf8_lossy(&rest), want);
    let mut ok = RawClient::authed(fs.inbound_addr()).await;
    ok.send("api no_such_command arg1\n\n").await;
    assert_eq!(
        ok.next().await.unwrap().body,
        b"-ERR no_such_command Command not found!\n"
    );
    ok.send("exit\n\n").await;
    assert_eq!(
        ok.next().await.unwrap().header("Reply-Text"),
        Some("+OK bye")
    );
    assert_eq!(
        ok.next().await.unwrap().header("Content-Type"),
        Some("text/disconnect-notice")
    );
    assert!(ok.next().await.is_none());
    fs.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn inbound_bgapi_originate_reports_background_job_then_bridges() {
    let fs = FsPeer::start().await.unwrap();
    fs.phone("1001").answers_after(Duration::from_millis(200));
    fs.phone("5550100")
        .answers_then_hangs_up(Duration::from_millis(300), Duration::from_millis(300));
    fs.phone("1002").busy();
    let mut c = RawClient::authed(fs.inbound_addr()).await;
    c.send("event plain BACKGROUND_JOB CHANNEL_ANSWER CHANNEL_BRIDGE CHANNEL_HANGUP_COMPLETE\n\n")
        .await;
    assert_eq!(
        c.next().await.unwrap().header("Reply-Text"),
        Some("+OK event listener enabled plain")
    );
    let (x, y) = (
        "c6a2adba-c0fb-44d0-a600-4cf2716d72b6",
        "f78cf26b-659c-4b7e-b506-d394d0799be4",
    );
    c.send(&format!(
        "bgapi originate {{origination_uuid={x},origination_caller_id_number=5550100}}user/1001@127.0.0.1 \
         &bridge({{origination_uuid={y},ignore_early_media=true}}sofia/internal/5550100@127.0.0.1:5074)\nJob-UUID: job-1\n\n"
    ))
    .await;
    let reply = c.next().await.unwrap();
    assert_eq!(reply.header("Reply-Text"), Some("+OK Job-UUID: job-1"));
    assert_eq!(reply.header("Job-UUID"), Some("job-1"));
    let answer = c.event("CHANNEL_ANSWER").await;
    assert!(answer.contains(&("Unique-ID".into(), x.into())));
    let job = c.next().await.unwrap();
    let jh = event_headers(&job.body);
    assert!(
        jh.contains(&("Event-Name".into(), "BACKGROUND_JOB".into()))
            && jh.contains(&("Job-Command".into(), "originate".into()))
    );
    assert!(
        String::from_utf8_lossy(&job.body)
            .ends_with(&format!("Content-Length: {}\n\n+OK {x}\n", x.len() + 5))
    );
    let bridge = c.event("CHANNEL_BRIDGE").await;
    assert!(bridge.contains(&("Other-Leg-Unique-ID".into(), y.into())));
    c.send("api originate user/1002@127.0.0.1 &park()\n\n")
        .await;
    let busy = loop {
        let f = c.next().await.unwrap();
        if f.header("Content-Type") == Some("api/response") {
            break f;
        }
    };
    assert_eq!(busy.body, b"-ERR USER_BUSY\n");
    fs.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn inbound_presence_events_and_contacts_are_shaped_like_sofia() {
    let fs = FsPeer::start().await.unwrap();
    let mut c = RawClient::authed(fs.inbound_addr()).await;
    c.send("event plain CHANNEL_CREATE CHANNEL_HANGUP_COMPLETE CUSTOM sofia::register sofia::unregister sofia::expire\n\n").await;
    assert_eq!(
        c.next().await.unwrap().header("Reply-Text"),
        Some("+OK event listener enabled plain")
    );
    c.send("api sofia_contact 1011@127.0.0.1\n\n").await;
    assert_eq!(c.next().await.unwrap().body, b"error/user_not_registered");
    c.send("api show channels as json\n\n").await;
    assert_eq!(c.next().await.unwrap().body, b"{\"row_count\": 0}");
    fs.phone("1011").register(3600);
    let reg = c.event("CUSTOM").await;
    assert_eq!(reg[0], ("Event-Subclass".into(), "sofia::register".into()));
    assert_eq!(reg[1], ("Event-Name".into(), "CUSTOM".into()));
    assert!(
        reg.contains(&("from-user".into(), "1011".into()))
            && reg.contains(&("expires".into(), "3600".into()))
    );
    let ev = freeswitch_esl_tokio::parse_channel_dump(&wire_event(&reg)).unwrap();
    assert!(matches!(
        fsb24::esl::map_switch_event(&ev).unwrap(),
        fsb24::esl::SwitchMapped::Event(fsb24::esl::SwitchEvent::Registered { .. })
    ));
    c.send("api sofia_contact */1011@127.0.0.1\n\n").await;
    let contact = c.next().await.unwrap().body;
    assert!(String::from_utf8_lossy(&contact).starts_with("sofia/internal/sip:1011@127.0.0.1:"));
    fs.phone("1011").answers_after(Duration::from_millis(100));
    let call = fs.internal_call("5550001", "1011", Duration::from_millis(300));
    let created = c.event("CHANNEL_CREATE").await;
    assert!(created.contains(&("Unique-ID".into(), call.clone())));
    c.event("CHANNEL_HANGUP_COMPLETE").await;
    fs.phone("1011").unregister();
    let unreg = c.event("CUSTOM").await;
    assert_eq!(unreg[0].1, "sofia::unregister");
    fs.phone("1012").expire();
    assert_eq!(c.event("CUSTOM").await[0].1, "sofia::expire");
    fs.shutdown().await;
}

fn wire_event(h: &[(String, String)]) -> String {
    h.iter()
        .map(|(k, v)| format!("{k}: {}\n", wire::encode(v)))
        .collect::<String>()
        + "\n"
}

#[tokio::test(start_paused = true)]
async fn inbound_server_can_be_killed_and_restarted_on_the_same_port() {
    let fs = FsPeer::start().await.unwrap();
    let mut c = RawClient::authed(fs.inbound_addr()).await;
    fs.kill_inbound();
    assert!(c.next().await.is_none(), "killed connection ends");
    assert!(
        tokio::net::TcpStream::connect(fs.inbound_addr())
            .await
            .is_err(),
        "nobody listens while down"
    );
    fs.restart_inbound().await.unwrap();
    let _again = RawClient::authed(fs.inbound_addr()).await;
    fs.shutdown().await;
}

/// Plays the app side of an outbound call: the peer dials us, we connect and subscribe.
async fn app_session(fs: &FsPeer, spec: CallSpec) -> (RawClient, String) {
    let setup = ["myevents", "linger", "event plain RECORD_START RECORD_STOP"];
    let (app, uuid, _) = app_session_with(fs, spec, &setup).await;
    (app, uuid)
}

/// Like [`app_session`], with the setup commands after `connect` given; returns each one's
/// Reply-Text too.
async fn app_session_with(
    fs: &FsPeer,
    spec: CallSpec,
    setup: &[&str],
) -> (RawClient, String, Vec<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let caller = fs
        .offer_call(listener.local_addr().unwrap(), spec)
        .await
        .unwrap();
    let (sock, _) = timeout(Duration::from_secs(5), listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut app = RawClient::from_stream(sock);
    app.send("connect\n\n").await;
    let reply = app.next().await.unwrap();
    let names: Vec<&str> = reply
        .headers
        .iter()
        .rev()
        .take(4)
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        names,
        ["Control", "Socket-Mode", "Reply-Text", "Content-Type"],
        "command/reply headers come last"
    );
    assert!(
        reply.header("Content-Length").is_none() && reply.header("Reply-Text") == Some("%2BOK%0A")
    );
    let mut replies = Vec::new();
    for cmd in setup {
        app.send(&format!("{cmd}\n\n")).await;
        let reply = app.next().await.unwrap();
        replies.push(reply.header("Reply-Text").unwrap_or_default().to_owned());
    }
    (app, caller.uuid.clone(), replies)
}

fn execute(app: &str, arg: &str) -> String {
    format!("sendmsg\ncall-command: execute\nexecute-app-name: {app}\nexecute-app-arg: {arg}\n\n")
}

fn get<'a>(h: &'a [(String, String)], k: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[tokio::test(start_paused = true)]
async fn leg_timeout_counts_whole_seconds_on_the_switch_tick() {
    let fs = FsPeer::start().await.unwrap();
    fs.phone("1001").rings_forever();
    let (mut app, _) = app_session(
        &fs,
        CallSpec {
            caller: "+79991234567".into(),
            destination: "9000".into(),
            ..CallSpec::default()
        },
    )
    .await;
    app.send(&execute("bridge", "{leg_timeout=3}user/1001@127.0.0.1"))
        .await;
    let first = fs.next_command().await.unwrap();
    assert_eq!(first.text, "connect\n\n");
    assert!(matches!(
        first.conn,
        crate::support::esl_peer::ConnKind::Outbound(_)
    ));
    assert_eq!(fs.next_command().await.unwrap().text, "myevents\n\n");
    let started = fs.ring_started("1001", 0).await.unwrap();
    assert!(
        started.why.is_none(),
        "still ringing right after the INVITE"
    );
    let done = app.event("CHANNEL_EXECUTE_COMPLETE").await;
    assert_eq!(
        get(&done, "variable_originate_disposition"),
        Some("NO_ANSWER")
    );
    assert_eq!(get(&done, "variable_DIALSTATUS"), Some("NOANSWER"));
    let ring = fs.ring_ended("1001", 0).await.unwrap();
    let rang = ring.ended.unwrap() - ring.started;
    // Whole epoch seconds: a 3 s leg_timeout ends the leg on the first 20 ms tick after the
    // third epoch-second boundary, 2.0..3.02 s after the INVITE (the paused clock makes this
    // exact on any machine; the rule itself: the unit test below).
    assert!(
        rang > Duration::from_secs(2) && rang <= Duration::from_millis(3020),
        "rang {rang:?}"
    );
    assert_eq!(ring.why.as_deref(), Some("NO_ANSWER"));
    fs.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn scripted_phones_fail_with_their_causes_and_continue_on_fail_decides_the_caller() {
    let fs = FsPeer::start().await.unwrap();
    fs.phone("1001").busy();
    fs.phone("1002").rejects();
    fs.phone("1003").unregistered();
    let (mut app, _) = app_session(
        &fs,
        CallSpec {
            caller: "+79991234567".into(),
            destination: "9000".into(),
            ..CallSpec::default()
        },
    )
    .await;
    app.send(&execute("set", "continue_on_fail=true")).await;
    let cases = [
        ("1001", "USER_BUSY", "BUSY"),
        ("1002", "CALL_REJECTED", "DONTCALL"),
        ("1003", "USER_NOT_REGISTERED", "USER_NOT_REGISTERED"),
        ("1999", "SUBSCRIBER_ABSENT", "SUBSCRIBER_ABSENT"),
    ];
    for (user, cause, dial) in cases {
        app.send(&execute("bridge", &format!("user/{user}@127.0.0.1")))
            .await;
        let done = loop {
            let h = app.event("CHANNEL_EXECUTE_COMPLETE").await;
            if get(&h, "Application") == Some("bridge") {
                break h;
            }
        };
        assert_eq!(
            get(&done, "variable_originate_disposition"),
            Some(cause),
            "{user}"
        );
        assert_eq!(get(&done, "variable_DIALSTATUS"), Some(dial), "{user}");
        assert_eq!(
            get(&done, "Answer-State"),
            Some("ringing"),
            "caller stays up with continue_on_fail"
        );
    }
    let rings: Vec<_> = fs.ring_log().into_iter().map(|r| (r.user, r.why)).collect();
    assert_eq!(
        rings,
        [
            ("1001".to_owned(), Some("USER_BUSY".to_owned())),
            ("1002".to_owned(), Some("CALL_REJECTED".to_owned()))
        ]
    );
    app.send(&execute("unset", "continue_on_fail")).await;
    app.send(&execute("bridge", "user/1001@127.0.0.1")).await;
    let hangup = app.event("CHANNEL_HANGUP").await;
    assert_eq!(
        get(&hangup, "Hangup-Cause"),
        Some("USER_BUSY"),
        "USER_BUSY without continue_on_fail hangs the caller up"
    );
    fs.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn late_recording_delays_record_stop_and_the_file_after_the_hangup() {
    let fs = FsPeer::start().await.unwrap();
    fs.set_record_delay(Duration::from_millis(600));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late.wav");
    let (mut app, _) = app_session(
        &fs,
        CallSpec {
            caller: "+79991234567".into(),
            destination: "9000".into(),
            ..CallSpec::default()
        },
    )
    .await;
    app.send(&execute("answer", "")).await;
    app.send(&execute("record_session", path.to_str().unwrap()))
        .await;
    app.event("RECORD_START").await;
    app.send("sendmsg\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING\n\n")
        .await;
    app.event("CHANNEL_HANGUP").await;
    let hung_up = tokio::time::Instant::now();
    assert!(!path.exists(), "the file is late");
    let stop = app.event("RECORD_STOP").await;
    assert!(hung_up.elapsed() >= Duration::from_millis(500));
    assert_eq!(get(&stop, "Record-File-Path"), path.to_str());
    assert_eq!(&std::fs::read(&path).unwrap()[..4], b"RIFF");
    app.event("CHANNEL_HANGUP_COMPLETE").await;
    fs.shutdown().await;
}

/// The three socket-close cases measured on a real FreeSWITCH 1.10.12 (esl-protocol.md §5.6):
/// with `resume` a running bridge breaks at the close (agent hung up NORMAL_CLEARING, caller on
/// to the dialplan); without it the bridge goes on until the conversation ends; before any
/// bridge the dialplan continues after `socket` either way (here: the fallback group rings).
#[tokio::test(start_paused = true)]
async fn closing_the_socket_breaks_a_bridge_only_with_resume() {
    let spec = || CallSpec {
        caller: "+79991234567".into(),
        destination: "9000".into(),
        ..CallSpec::default()
    };
    let agent_leg = |fs: &FsPeer| fs.ring_log().last().unwrap().leg.clone();
    for resume in [true, false] {
        let fs = FsPeer::start().await.unwrap();
        fs.phone("1001").answers_after(Duration::from_millis(100));
        let mut bus = fs.events();
        let (mut app, caller) = app_session(&fs, spec()).await;
        if resume {
            app.send("resume\n\n").await;
            assert_eq!(app.next().await.unwrap().header("Reply-Text"), Some("+OK"));
        }
        app.send(&execute("bridge", "user/1001@127.0.0.1")).await;
        app.event("CHANNEL_BRIDGE").await;
        let b = agent_leg(&fs);
        assert_eq!(fs.resumed(&caller), resume);
        drop(app);
        assert!(fs.socket_closed(&caller).await);
        if resume {
            // Cut at the close: the agent is hung up, the caller is not (the dialplan goes on).
            let first = first_of(&mut bus, &caller, &b).await;
            assert_eq!(first, ("CHANNEL_HANGUP".to_owned(), b.clone()));
        } else {
            // The conversation goes on: both legs are up until the caller hangs up.
            assert!(fs.channel_exists(&b) && fs.channel_exists(&caller));
            fs.hang_up(&caller);
            let first = first_of(&mut bus, &caller, &b).await;
            assert_eq!(first, ("CHANNEL_HANGUP".to_owned(), caller.clone()));
        }
        assert!(fs.channel_gone(&caller).await && fs.channel_gone(&b).await);
        fs.shutdown().await;
    }
    // Before any bridge: the dialplan after `socket` runs (the fallback group), resume or not.
    for resume in [true, false] {
        let fs = FsPeer::start().await.unwrap();
        fs.set_fallback(&["1002"]);
        fs.phone("1002")
            .answers_then_hangs_up(Duration::from_millis(100), Duration::from_millis(200));
        let (mut app, caller) = app_session(&fs, spec()).await;
        if resume {
            app.send("resume\n\n").await;
            app.next().await.unwrap();
        }
        drop(app);
        assert!(fs.socket_closed(&caller).await);
        let ring = fs.ring_ended("1002", 0).await.unwrap();
        assert_eq!(ring.why.as_deref(), Some("ANSWERED"), "resume {resume}");
        assert!(fs.channel_gone(&caller).await);
        fs.shutdown().await;
    }
}

/// The first CHANNEL_HANGUP of `a` or `b` on the bus: (event, leg).
async fn first_of(
    bus: &mut tokio::sync::broadcast::Receiver<crate::support::esl_peer::EventRef>,
    a: &str,
    b: &str,
) -> (String, String) {
    timeout(Duration::from_secs(5), async {
        loop {
            let ev = bus.recv().await.unwrap();
            let id = ev.header("Unique-ID").unwrap_or_default().to_owned();
            if ev.name() == "CHANNEL_HANGUP" && (id == a || id == b) {
                return (ev.name().to_owned(), id);
            }
        }
    })
    .await
    .unwrap()
}

/// FreeSWITCH's leg_timeout rule on the peer's clock: a timer of N whole seconds fires on the
/// first 20 ms tick at which the epoch second has advanced by N, so it lasts (N-1, N] seconds
/// (up to a tick), wherever in a second it started.
#[test]
fn whole_second_timers_last_between_n_minus_one_and_n_seconds() {
    use crate::support::esl_peer::switch::{Switch, TICK};
    let sw = Switch::new();
    let t0 = tokio::time::Instant::now();
    for k in 0..200u64 {
        let start = t0 + Duration::from_millis(k * 7);
        for secs in [1, 3, 5] {
            let lasted = sw.whole_second_deadline(start, secs) - start;
            assert!(
                lasted > Duration::from_secs(secs - 1)
                    && lasted <= Duration::from_secs(secs) + TICK,
                "{secs} s timer from +{} ms lasted {lasted:?}",
                k * 7
            );
        }
    }
}

/// `nixevent` after `myevents` (what fsb24's handshake does) takes those types off the event
/// list while own-channel filtering stays, as in mod_event_socket.
#[tokio::test(start_paused = true)]
async fn nixevent_after_myevents_stops_those_types_only() {
    let fs = FsPeer::start().await.unwrap();
    let spec = CallSpec {
        caller: "+79991234567".into(),
        destination: "9000".into(),
        ..CallSpec::default()
    };
    let setup = [
        "myevents",
        "nixevent CHANNEL_STATE CHANNEL_EXECUTE",
        "nixevent",
    ];
    let (mut app, _, replies) = app_session_with(&fs, spec, &setup).await;
    assert_eq!(
        replies,
        [
            "+OK Events Enabled",
            "+OK events nixed",
            "-ERR no keywords supplied"
        ]
    );
    app.send(&execute("answer", "")).await;
    app.send(&execute("hangup", "NORMAL_CLEARING")).await;
    let mut seen = Vec::new();
    while let Some(f) = app.next().await {
        if f.header("Content-Type") == Some("text/event-plain") {
            let h = event_headers(&f.body);
            seen.push(get(&h, "Event-Name").unwrap_or_default().to_owned());
        }
    }
    for kept in [
        "CHANNEL_ANSWER",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_HANGUP",
    ] {
        assert!(seen.iter().any(|n| n == kept), "{kept} missing: {seen:?}");
    }
    for nixed in ["CHANNEL_STATE", "CHANNEL_EXECUTE"] {
        assert!(!seen.iter().any(|n| n == nixed), "{nixed} sent: {seen:?}");
    }
    fs.shutdown().await;
}
