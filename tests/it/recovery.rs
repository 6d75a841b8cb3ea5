//! A restart never cuts a conversation (issue 9), on the real binary: fsb24 is killed (SIGKILL)
//! or stopped (SIGTERM) in the middle of a call and restarted, the portal stays up. The switch
//! peer behaves like FreeSWITCH when the socket closes (esl-protocol.md §5.6,
//! k_socket_close_during_bridge.txt): with `resume` a running bridge breaks at once, without it
//! the bridge goes on and the call ends when the conversation does; a caller not in a bridge
//! continues the dialplan (its fallback group). fsb24 sends no `resume`, so these tests fail if
//! it ever does. What the Bitrix24 peer receives must be what a user expects of the call: the
//! agent who talked, the real talk time, the recording, and the talker's card open for the
//! whole conversation.

use std::time::Duration;

use tokio::time::{Instant, timeout};

use crate::support::app::{Agent, config_text};
use crate::support::audio::mp3_beside;
use crate::support::bitrix_peer::{BitrixPeer, CallRecord, PeerOptions, SeedUser};
use crate::support::daemon::{Daemon, free_port};
use crate::support::esl_peer::caller::CallerHandle;
use crate::support::esl_peer::{CallSpec, FAILSAFE, FsPeer};

const AGENT: Agent = ("1001", 11);
/// Rung by the dialplan's fallback group (dialplan/fsb24.xml) when fsb24 hands a caller back.
const FALLBACK: Agent = ("1002", 12);

/// How fsb24 goes away.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// SIGKILL (a crash, an OOM kill).
    Kill,
    /// SIGTERM (`systemctl stop` / `restart`, an upgrade).
    Term,
}

struct Rig {
    fs: FsPeer,
    bx: BitrixPeer,
    dir: tempfile::TempDir,
    daemon: Daemon,
    port: u16,
}

async fn rig() -> Rig {
    let body = "[[routes]]\ndestination = \"9001\"\ntarget = { agent = \"1001\" }\n";
    rig_with(body, |_| {}).await
}

/// A rig whose config has `body` ([[queues]] and [[routes]]) for destination 9001; `phones`
/// scripts the switch's phones before fsb24 starts (so its presence snapshot has them).
async fn rig_with(body: &str, phones: impl FnOnce(&FsPeer)) -> Rig {
    let fs = FsPeer::start().await.unwrap();
    phones(&fs);
    let bx = BitrixPeer::start(PeerOptions::default()).await;
    bx.set_webhook_wrong_auth_type(false);
    bx.add_user(SeedUser::new(AGENT.1, "Agent 1001", Some(AGENT.0)));
    bx.add_user(SeedUser::new(FALLBACK.1, "Agent 1002", Some(FALLBACK.0)));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = config_text(&fs, &bx, dir.path(), &[AGENT, FALLBACK], body).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    let config = dir.path().join("fsb24.toml");
    std::fs::write(&config, text).unwrap();
    let mut daemon = Daemon::new(config, dir.path().join("fsb24.log"));
    daemon.start().await;
    Rig {
        fs,
        bx,
        dir,
        daemon,
        port,
    }
}

impl Rig {
    /// Stops fsb24 as `how` says; a SIGTERM must end in a clean exit.
    async fn stop(&mut self, how: Stop) {
        match how {
            Stop::Kill => self.daemon.kill().await,
            Stop::Term => {
                let status = self.daemon.terminate().await;
                assert!(status.success(), "fsb24 exited with {status} after SIGTERM");
            }
        }
    }

    async fn offer(&self) -> String {
        self.offer_caller().await.uuid.clone()
    }

    async fn offer_caller(&self) -> CallerHandle {
        let spec = CallSpec {
            caller: "+79991234567".into(),
            destination: "9001".into(),
            ..CallSpec::default()
        };
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        self.fs.offer_call(addr, spec).await.unwrap()
    }

    /// Waits until the switch fired `name` for channel `uuid` (5 s failsafe).
    async fn switch_event(&self, uuid: &str, name: &str) {
        let mut events = self.fs.events();
        let seen = |ev: &crate::support::esl_peer::EventRef| {
            ev.name() == name && ev.header("Unique-ID") == Some(uuid)
        };
        let found = timeout(FAILSAFE, async {
            loop {
                match events.recv().await {
                    Ok(ev) if seen(&ev) => return,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => std::future::pending().await,
                }
            }
        })
        .await;
        assert!(
            found.is_ok(),
            "no {name} for {uuid}; commands: {:#?}",
            self.fs
                .commands()
                .iter()
                .map(|c| c.text.lines().take(3).collect::<Vec<_>>().join(" | "))
                .collect::<Vec<_>>()
        );
    }

    /// The Bitrix24 call of channel `uuid` once it is finished (and its recording attached
    /// when `with_record`).
    async fn finished(&self, uuid: &str, with_record: bool) -> CallRecord {
        self.bx
            .finished_call(&format!("fs-{uuid}"), with_record)
            .await
    }

    /// Waits until the portal has the call (registered with the agent's card).
    async fn registered(&self, uuid: &str) {
        let key = format!("fs-{uuid}");
        self.bx
            .wait_for(&format!("{key} registered"), |s| {
                s.calls
                    .iter()
                    .any(|c| c.external_call_id.as_deref() == Some(key.as_str()))
            })
            .await;
    }

    /// The MP3 fsb24 made of the WAV the switch wrote (what it attaches).
    fn recording(&self, uuid: &str) -> Vec<u8> {
        let wav = self.dir.path().join("rec").join(format!("{uuid}.wav"));
        std::fs::read(mp3_beside(&wav)).unwrap()
    }

    /// How many successful `finish` requests the portal got for `call_id`, once it logged one
    /// (the peer applies a request before it logs it).
    async fn finishes(&self, call_id: &str) -> usize {
        const FINISH: &str = "telephony.externalcall.finish";
        let ours = |method: &str, params: &serde_json::Value, ok: bool| {
            ok && method == FINISH && params["CALL_ID"].as_str() == Some(call_id)
        };
        self.bx
            .wait_for("the finish request logged", |s| {
                s.requests.iter().any(|r| {
                    ours(&r.method, &r.params, r.status == 200)
                        || r.sub_calls.iter().any(|c| ours(&c.method, &c.params, c.ok))
                })
            })
            .await;
        self.bx
            .method_calls("telephony.externalcall.finish")
            .iter()
            .filter(|m| m.ok && m.params["CALL_ID"].as_str() == Some(call_id))
            .count()
    }

    async fn log_mentions(&self, text: &str) -> bool {
        self.daemon.wait_log(text).await
    }
}

/// The call was finished as answered by the agent, after a talk of `talk` seconds (+1 for a
/// loaded machine), with no failure reason.
fn answered_by_the_agent(call: &CallRecord, talk: i64) {
    let f = call.finished.clone().unwrap();
    assert_eq!(
        (f.user_id, f.status_code.as_str(), f.failed_reason.as_str()),
        (AGENT.1, "200", "")
    );
    assert!(
        (talk..=talk + 1).contains(&f.duration),
        "DURATION {} for a {talk} s talk",
        f.duration
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_cut_by_a_kill_keeps_the_agents_card_and_is_finished_with_its_talk_time_and_recording()
 {
    conversation_through_a_restart(Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_during_a_sigterm_goes_on_and_the_next_run_finishes_it_with_its_talk_time_and_recording()
 {
    conversation_through_a_restart(Stop::Term).await;
}

/// The agent talks 3 s in all; fsb24 goes away 0-1 tick after the recording started and comes
/// back at once: the conversation goes on, one finish with the whole talk time and recording.
async fn conversation_through_a_restart(how: Stop) {
    let mut r = rig().await;
    // The agent talks until the caller hangs up.
    r.fs.phone(AGENT.0)
        .answers_after(Duration::from_millis(300));
    let caller = r.offer_caller().await;
    let uuid = caller.uuid.clone();
    // The agent talks and the recording runs: fsb24 dies mid-conversation and comes back.
    r.switch_event(&uuid, "RECORD_START").await;
    let talk_began = Instant::now();
    r.registered(&uuid).await;
    r.stop(how).await;
    r.daemon.start().await;
    // The restarted fsb24 follows the call; the caller talks on for 3 s in all, then hangs up.
    tokio::time::sleep_until(talk_began + Duration::from_secs(3)).await;
    caller.hang_up();
    let call = r.finished(&uuid, true).await;
    answered_by_the_agent(&call, 3);
    let record = r.bx.record_of(&call.call_id).unwrap();
    assert_eq!(record.bytes, r.recording(&uuid), "the whole conversation");
    // The agent's card: opened when the phone rang, open through the restart, closed by the
    // finish after the hang-up (one interval, never reopened).
    let cards = r.bx.timeline(&call.call_id);
    assert_eq!(cards.len(), 1, "{cards:?}");
    assert_eq!(cards[0].user, AGENT.1);
    let open_for = cards[0].to.unwrap().duration_since(cards[0].from);
    assert!(
        open_for >= Duration::from_secs(3),
        "card open only {open_for:?} of a 3 s talk"
    );
    assert!(r.log_mentions("hung up after the restart").await);
    assert_eq!(r.finishes(&call.call_id).await, 1, "exactly one finish");
    r.daemon.kill().await;
}

/// SIGTERM while the agent's phone rings: fsb24 cancels the ring, closes the agent's card and
/// hands the caller back; the dialplan after `socket` rings its fallback group, whose agent
/// answers. The caller is never dropped, and the restarted fsb24 finishes the call with the
/// agent the fallback reached and their talk time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_still_ringing_at_a_sigterm_reaches_the_dialplan_fallback_and_is_finished_by_the_next_run()
 {
    let mut r = rig().await;
    r.fs.set_fallback(&[FALLBACK.0]);
    r.fs.phone(FALLBACK.0)
        .answers_then_hangs_up(Duration::from_millis(300), Duration::from_secs(2));
    // The agent's phone rings until fsb24 stops.
    r.fs.phone(AGENT.0).rings_forever();
    let uuid = r.offer().await;
    assert!(r.fs.ring_started(AGENT.0, 0).await.is_some());
    r.registered(&uuid).await;
    r.stop(Stop::Term).await;
    let stopped = Instant::now();
    let ring = r.fs.ring_ended(AGENT.0, 0).await.unwrap();
    assert_eq!(
        ring.why.as_deref(),
        Some("ORIGINATOR_CANCEL"),
        "ring cancelled"
    );
    let fallback = r.fs.ring_ended(FALLBACK.0, 0).await.unwrap();
    assert_eq!(
        fallback.why.as_deref(),
        Some("ANSWERED"),
        "fallback reached"
    );
    assert!(!r.fs.resumed(&uuid));
    r.daemon.start().await;
    let call = r.finished(&uuid, false).await;
    let f = call.finished.clone().unwrap();
    assert_eq!((f.user_id, f.status_code.as_str()), (FALLBACK.1, "200"));
    assert!((2..=3).contains(&f.duration), "DURATION {}", f.duration);
    assert_eq!(r.finishes(&call.call_id).await, 1, "exactly one finish");
    // The ringing agent's card: open while the phone rang, closed by the stopping fsb24 itself
    // (its outbox delivers what is due before it exits), not left open until the next start.
    let cards = r.bx.timeline(&call.call_id);
    assert_eq!(cards.len(), 1, "{cards:?}");
    assert_eq!(cards[0].user, AGENT.1);
    assert!(cards[0].to.is_some_and(|to| to <= stopped), "{cards:?}");
    assert!(
        r.log_mentions("caller handed to the dialplan fallback")
            .await
    );
    r.daemon.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_ringing_at_the_kill_and_answered_meanwhile_is_finished_by_the_agent_the_switch_bridged()
 {
    let mut r = rig().await;
    r.fs.phone(AGENT.0)
        .answers_then_hangs_up(Duration::from_millis(1500), Duration::from_secs(2));
    let uuid = r.offer().await;
    assert!(r.fs.ring_started(AGENT.0, 0).await.is_some());
    // The agent's phone rings and their card is open: fsb24 dies now.
    r.registered(&uuid).await;
    r.daemon.kill().await;
    r.daemon.start().await;
    let call = r.finished(&uuid, false).await;
    answered_by_the_agent(&call, 2);
    // fsb24 never started a recording: nothing to attach, nothing on disk.
    assert!(r.bx.record_of(&call.call_id).is_none());
    assert!(
        !r.dir
            .path()
            .join("rec")
            .join(format!("{uuid}.wav"))
            .exists()
    );
    // The ringing agent's card stays through the restart and closes with the finish.
    let cards = r.bx.timeline(&call.call_id);
    assert_eq!(cards.len(), 1, "{cards:?}");
    assert!(cards[0].to.is_some());
    r.daemon.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_over_before_the_restart_is_finished_from_its_notes_and_its_recording() {
    let mut r = rig().await;
    r.fs.phone(AGENT.0)
        .answers_then_hangs_up(Duration::from_millis(300), Duration::from_secs(2));
    let uuid = r.offer().await;
    r.switch_event(&uuid, "RECORD_START").await;
    r.registered(&uuid).await;
    r.daemon.kill().await;
    // fsb24 stays down until the call is over on the switch.
    assert!(r.fs.channel_gone(&uuid).await);
    r.daemon.start().await;
    let call = r.finished(&uuid, true).await;
    // Talk time: the recording's last write minus the stored answer, rounded.
    answered_by_the_agent(&call, 2);
    let record = r.bx.record_of(&call.call_id).unwrap();
    assert_eq!(record.bytes, r.recording(&uuid));
    assert!(r.log_mentions("gone before the restart").await);
    r.daemon.kill().await;
}

/// SIGKILL while the agent's phone rings and nobody answers: the switch goes on ringing until
/// fsb24's leg_timeout net (the 2 s step + 2 s margin, whole seconds), the bridge fails, and
/// the dialplan after `socket` rings the fallback group. The caller is never stuck, and the
/// restarted fsb24 finishes the call with the fallback's agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_ringing_at_a_kill_reaches_the_fallback_after_the_leg_timeout_net() {
    let body = "[[queues]]\nname = \"q\"\nstrategy = \"sequential\"\nagents = [\"1001\"]\n\
                ring = [\"2s\"]\nrounds = 1\noverflow = { hangup = \"NO_ANSWER\" }\n\
                [[routes]]\ndestination = \"9001\"\ntarget = { queue = \"q\" }\n";
    let mut r = rig_with(body, |fs| {
        fs.set_fallback(&[FALLBACK.0]);
        fs.phone(AGENT.0).rings_forever();
        fs.phone(FALLBACK.0)
            .answers_then_hangs_up(Duration::from_millis(300), Duration::from_secs(2));
    })
    .await;
    let uuid = r.offer().await;
    assert!(r.fs.ring_started(AGENT.0, 0).await.is_some());
    r.registered(&uuid).await;
    r.stop(Stop::Kill).await;
    r.daemon.start().await;
    let long = Duration::from_secs(10);
    let ring = tokio::time::timeout(long, async {
        loop {
            if let Some(ring) = r.fs.ring_ended(AGENT.0, 0).await {
                return ring;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(
        ring.why.as_deref(),
        Some("NO_ANSWER"),
        "the net ended the ring"
    );
    let fallback = r.fs.ring_ended(FALLBACK.0, 0).await.unwrap();
    assert_eq!(
        fallback.why.as_deref(),
        Some("ANSWERED"),
        "fallback reached"
    );
    let call = r.finished(&uuid, false).await;
    let f = call.finished.clone().unwrap();
    assert_eq!((f.user_id, f.status_code.as_str()), (FALLBACK.1, "200"));
    assert!((2..=3).contains(&f.duration), "DURATION {}", f.duration);
    assert_eq!(r.finishes(&call.call_id).await, 1, "exactly one finish");
    r.daemon.kill().await;
}

/// An outgoing call (issue 15): employee 1001 dials a customer through the gateway; fsb24 is
/// killed while they talk and the recording runs, and comes back at once. The conversation goes
/// on in the switch (no `resume`: the bridge stays up), and the next run finishes the call once,
/// `TYPE=1` for the employee who dialled, with the whole talk time and the recording.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outgoing_call_cut_by_a_kill_is_finished_once_for_the_employee_with_its_talk_time() {
    const CUSTOMER: &str = "+49301234567";
    let body = "[numbers]\ndefault_country = \"DE\"\n\
                [outgoing]\nenabled = true\ngateway = \"provider\"\nline_number = \"out-1\"\n";
    let mut r = rig_with(body, |fs| {
        fs.phone(CUSTOMER).answers_after(Duration::from_millis(300));
    })
    .await;
    let spec = CallSpec {
        caller: AGENT.0.into(),
        destination: CUSTOMER.into(),
        vars: vec![("fsb24_call".into(), "outgoing".into())],
        ..CallSpec::default()
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], r.port));
    let caller = r.fs.offer_call(addr, spec).await.unwrap();
    let uuid = caller.uuid.clone();
    r.switch_event(&uuid, "RECORD_START").await;
    let talk_began = Instant::now();
    r.registered(&uuid).await;
    r.stop(Stop::Kill).await;
    r.daemon.start().await;
    // The employee talks on for 3 s in all, then hangs up.
    tokio::time::sleep_until(talk_began + Duration::from_secs(3)).await;
    assert!(!r.fs.resumed(&uuid), "the bridge was never broken");
    caller.hang_up();
    let call = r.finished(&uuid, true).await;
    assert_eq!(
        (call.call_type, call.user_id),
        (1, AGENT.1),
        "TYPE=1 for the dialler"
    );
    assert_eq!(call.phone, CUSTOMER);
    answered_by_the_agent(&call, 3);
    let record = r.bx.record_of(&call.call_id).unwrap();
    assert_eq!(record.bytes, r.recording(&uuid), "the whole conversation");
    assert_eq!(r.finishes(&call.call_id).await, 1, "exactly one finish");
    let ring = r.fs.ring_ended(CUSTOMER, 0).await.unwrap();
    assert_eq!(
        ring.why.as_deref(),
        Some("ANSWERED"),
        "dialled once, answered"
    );
    let dialled =
        r.fs.ring_log()
            .iter()
            .filter(|x| x.user == CUSTOMER)
            .count();
    assert_eq!(dialled, 1, "never dialled twice");
    r.daemon.kill().await;
}
