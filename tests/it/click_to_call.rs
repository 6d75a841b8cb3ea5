//! Click-to-call end to end: fsb24's click task against the FreeSWITCH test peer (inbound ESL,
//! scripted phones, `bgapi originate ... &bridge(...)`) and the real SQLite outbox + worker with a
//! recording `Deliver`: card shown while the agent's phone rings, one finish, never a register.

use std::sync::Arc;
use std::time::Duration;

use fsb24::bitrix::BitrixClient;
use fsb24::call::CallConfigs;
use fsb24::call::click::{ClickDeps, ClickDial, CustomerRoute, Hygiene, Limits, run_click_to_call};
use fsb24::call::effects::Dialer;
use fsb24::config::{Config, DialConfig, DialTemplate};
use fsb24::esl::command::{Domain, Name};
use fsb24::esl::{InboundClient, InboundHandle, InboundOptions, Presence, ReconnectBackoff};
use fsb24::http::{ClickToCall, EventEndpoint};
use fsb24::ids::{BitrixCallId, BitrixUserId, ExternalCallId, PhoneNumber};
use fsb24::outbox::op::{BitrixWrite, FinishCall};
use fsb24::outbox::{Deliver, DeliverError, Delivered, Outbox, WorkerConfig, worker};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::support::bitrix_peer::{
    BitrixPeer, ClickToCall as PortalClick, PeerOptions, PeerState, SeedUser,
};
use crate::support::esl_peer::{FAILSAFE, FsPeer, PASSWORD};

const AGENT_USER: BitrixUserId = BitrixUserId(17);
const CUSTOMER: &str = "5550100";

/// One write the worker delivered, with its `CALL_ID` and when.
#[derive(Debug, Clone)]
struct Sent {
    call_id: Option<BitrixCallId>,
    write: BitrixWrite,
    at: Instant,
}

struct Recorder(mpsc::Sender<Sent>);

impl Deliver for Recorder {
    async fn deliver(
        &self,
        _call: &ExternalCallId,
        call_id: Option<&BitrixCallId>,
        write: &BitrixWrite,
    ) -> Result<Delivered, DeliverError> {
        let sent = Sent {
            call_id: call_id.cloned(),
            write: write.clone(),
            at: Instant::now(),
        };
        let _ = self.0.send(sent).await;
        Ok(Delivered::Done)
    }
}

struct Rig {
    fs: FsPeer,
    clicks: mpsc::Sender<ClickToCall>,
    sent: mpsc::Receiver<Sent>,
    /// Stops the click task only (the outbox worker keeps delivering).
    click_stop: CancellationToken,
    /// The config versions the click task follows (a SIGHUP sends a new one).
    config: watch::Sender<Arc<Config>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    _dir: tempfile::TempDir,
}

fn inbound_options(fs: &FsPeer) -> InboundOptions {
    InboundOptions {
        host: "127.0.0.1".into(),
        port: fs.inbound_addr().port(),
        password: PASSWORD.into(),
        connect_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(2),
        job_timeout: Duration::from_secs(10),
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

fn dial() -> ClickDial {
    ClickDial {
        agent: Dialer::new(DialConfig {
            domain: Some("127.0.0.1".into()),
            template: DialTemplate::parse("user/{extension}@{domain}").unwrap(),
        }),
        customer: CustomerRoute::Profile {
            profile: Name::parse("internal").unwrap(),
            host: Domain::parse("127.0.0.1:5074").unwrap(),
        },
        caller_id_number: Some(PhoneNumber::parse("+4930555000").unwrap()),
        agent_ring: Duration::from_secs(5),
        customer_ring: Duration::from_secs(5),
        limits: Limits {
            max_duration: Duration::from_secs(30),
            settle: Duration::from_secs(2),
        },
        add_to_chat: true,
        hygiene: Hygiene {
            max_age: Duration::from_secs(15),
            repeat_window: Duration::from_secs(5),
        },
    }
}

/// A config whose one agent, Bitrix24 user 17, is at `extension`.
fn agents_config(extension: &str) -> Config {
    let text = format!(
        "[esl.inbound]\npassword = \"pw\"\n[esl.dial]\ndomain = \"127.0.0.1\"\n[bitrix.auth.webhook]\n\
         url = \"https://example.bitrix24.de/rest/1/key/\"\n\
         [[agents]]\nextension = \"{extension}\"\nbitrix_user = {}\n",
        AGENT_USER.0
    );
    Config::from_toml_str(&text).unwrap()
}

async fn connected(inbound: &InboundHandle) {
    let mut resyncs = inbound.resyncs();
    timeout(FAILSAFE, resyncs.wait_for(|n| *n > 0))
        .await
        .expect("inbound never connected")
        .unwrap();
}

impl Rig {
    async fn start() -> Self {
        Self::start_with(Recorder).await
    }

    async fn start_with<D: Deliver>(make: impl FnOnce(mpsc::Sender<Sent>) -> D) -> Self {
        Self::start_custom(dial(), make).await
    }

    async fn start_custom<D: Deliver>(
        dial: ClickDial,
        make: impl FnOnce(mpsc::Sender<Sent>) -> D,
    ) -> Self {
        let fs = FsPeer::start().await.unwrap();
        let (shutdown, tracker) = (CancellationToken::new(), TaskTracker::new());
        let inbound = InboundClient::spawn(
            inbound_options(&fs),
            Presence::default(),
            shutdown.clone(),
            &tracker,
        );
        connected(&inbound).await;
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(&dir.path().join("outbox.db")).await.unwrap();
        let (sent_tx, sent) = mpsc::channel(64);
        tracker.spawn(worker::run(
            outbox.clone(),
            Arc::new(make(sent_tx)),
            WorkerConfig::default(),
            shutdown.clone(),
        ));
        let (config, versions) = watch::channel(Arc::new(agents_config("1001")));
        let deps = ClickDeps {
            agents: CallConfigs::new(versions),
            inbound,
            outbox,
            dial,
        };
        let (clicks, rx) = mpsc::channel(8);
        let click_stop = shutdown.child_token();
        tracker.spawn(run_click_to_call(
            rx,
            deps,
            click_stop.clone(),
            tracker.clone(),
        ));
        Self {
            fs,
            clicks,
            sent,
            click_stop,
            config,
            shutdown,
            tracker,
            _dir: dir,
        }
    }

    async fn click(&self, call_id: &str, user: BitrixUserId) {
        let click = ClickToCall {
            call_id: BitrixCallId::new(call_id),
            user,
            phone: PhoneNumber::parse(CUSTOMER).unwrap(),
            line_number: None,
            call_list_id: None,
        };
        self.clicks.send(click).await.unwrap();
    }

    /// Deliveries up to and including the first finish.
    async fn until_finish(&mut self) -> Vec<Sent> {
        let mut out = Vec::new();
        loop {
            let sent = timeout(Duration::from_secs(15), self.sent.recv())
                .await
                .expect("no finish was delivered")
                .unwrap();
            let done = matches!(sent.write, BitrixWrite::Finish(_));
            out.push(sent);
            if done {
                return out;
            }
        }
    }

    /// Stops everything; returns whatever was delivered after the finish (must be nothing).
    async fn stop(mut self) -> Vec<Sent> {
        self.shutdown.cancel();
        self.tracker.close();
        let _ = timeout(FAILSAFE, self.tracker.wait()).await;
        self.fs.shutdown().await;
        let mut late = Vec::new();
        while let Ok(sent) = self.sent.try_recv() {
            late.push(sent);
        }
        late
    }
}

fn finish_of(sent: &[Sent]) -> FinishCall {
    match &sent.last().unwrap().write {
        BitrixWrite::Finish(f) => f.clone(),
        other => panic!("last write is not a finish: {other:?}"),
    }
}

fn assert_no_register(sent: &[Sent]) {
    assert!(
        sent.iter()
            .all(|s| !matches!(s.write, BitrixWrite::Register(_))),
        "click-to-call never registers: {sent:?}"
    );
}

fn assert_show_then_finish(sent: &[Sent], call_id: &str) {
    let kinds: Vec<_> = sent
        .iter()
        .map(|s| match &s.write {
            BitrixWrite::Show { users } => format!("show{users:?}"),
            BitrixWrite::Finish(_) => "finish".to_owned(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["show[user#17]", "finish"]);
    assert!(
        sent.iter()
            .all(|s| s.call_id == Some(BitrixCallId::new(call_id))),
        "every write goes to Bitrix24's own CALL_ID"
    );
}

#[tokio::test]
async fn click_to_call_shows_the_card_while_the_agent_rings_and_finishes_200_with_talk_time() {
    let mut rig = Rig::start().await;
    rig.fs
        .phone("1001")
        .answers_after(Duration::from_millis(400));
    rig.fs
        .phone(CUSTOMER)
        .answers_then_hangs_up(Duration::from_millis(300), Duration::from_millis(1200));
    rig.click("externalCall.c2c.1", AGENT_USER).await;
    let sent = rig.until_finish().await;
    assert_show_then_finish(&sent, "externalCall.c2c.1");
    let agent_ring = rig.fs.ring_ended("1001", 0).await.expect("agent rang");
    assert!(
        sent[0].at < agent_ring.ended.unwrap(),
        "the card opened while the agent's phone rang"
    );
    let originate = rig.fs.wait_command("originate").await.unwrap();
    assert!(originate.text.contains("user/1001@127.0.0.1"));
    assert!(
        originate.text.contains("&bridge([origination_uuid="),
        "{}",
        originate.text
    );
    assert!(
        originate
            .text
            .contains("sofia/internal/5550100@127.0.0.1:5074")
    );
    let f = finish_of(&sent);
    assert_eq!(f.user, AGENT_USER);
    assert_eq!(f.status_code, "200");
    assert_eq!(f.duration_secs, 1, "the customer's talk time (1.2 s)");
    assert!(f.add_to_chat);
    assert_no_register(&sent);
    let late = rig.stop().await;
    assert!(late.is_empty(), "nothing after the finish: {late:?}");
}

#[tokio::test]
async fn click_to_call_to_a_busy_agent_phone_finishes_cancelled() {
    let mut rig = Rig::start().await;
    rig.fs.phone("1001").busy();
    rig.click("externalCall.c2c.2", AGENT_USER).await;
    let sent = rig.until_finish().await;
    // The busy phone ends the call within a switch tick: when its finish is stored before the
    // outbox reaches the show, the show is skipped (no card opens for a call already over).
    if sent.len() == 1 {
        assert!(matches!(sent[0].write, BitrixWrite::Finish(_)), "{sent:?}");
    } else {
        assert_show_then_finish(&sent, "externalCall.c2c.2");
    }
    let f = finish_of(&sent);
    assert_eq!((f.status_code.as_str(), f.duration_secs), ("603-S", 0));
    assert!(
        rig.fs.ring_log().iter().all(|r| r.user != CUSTOMER),
        "customer never dialled"
    );
    assert_no_register(&sent);
    assert!(rig.stop().await.is_empty());
}

#[tokio::test]
async fn click_to_call_to_a_busy_customer_finishes_486() {
    let mut rig = Rig::start().await;
    rig.fs
        .phone("1001")
        .answers_after(Duration::from_millis(200));
    rig.fs.phone(CUSTOMER).busy();
    rig.click("externalCall.c2c.3", AGENT_USER).await;
    let sent = rig.until_finish().await;
    assert_show_then_finish(&sent, "externalCall.c2c.3");
    let f = finish_of(&sent);
    assert_eq!((f.status_code.as_str(), f.duration_secs), ("486", 0));
    assert_no_register(&sent);
    assert!(rig.stop().await.is_empty());
}

#[tokio::test]
async fn click_by_an_unknown_user_is_finished_at_once_without_ringing_anyone() {
    let mut rig = Rig::start().await;
    rig.click("externalCall.c2c.4", BitrixUserId(99)).await;
    let sent = rig.until_finish().await;
    assert_eq!(
        sent.len(),
        1,
        "no card for a user without a phone: {sent:?}"
    );
    let f = finish_of(&sent);
    assert_eq!(
        (f.user, f.status_code.as_str()),
        (BitrixUserId(99), "603-S")
    );
    assert!(
        rig.fs
            .commands()
            .iter()
            .all(|c| !c.text.contains("originate")),
        "nothing was dialled"
    );
    assert!(rig.stop().await.is_empty());
}

// Regression: the user -> extension map was built once at start, so after a SIGHUP moved an
// employee to another phone, click-to-call still rang the old one.
#[tokio::test]
async fn a_click_after_a_reload_rings_the_extension_of_the_new_config() {
    let mut rig = Rig::start().await;
    rig.fs.phone("1005").busy();
    rig.config.send(Arc::new(agents_config("1005"))).unwrap();
    rig.click("externalCall.c2c.reload", AGENT_USER).await;
    let sent = rig.until_finish().await;
    let originate = rig.fs.wait_command("originate").await.unwrap();
    assert!(
        originate.text.contains("user/1005@127.0.0.1"),
        "{}",
        originate.text
    );
    let rung: Vec<_> = rig.fs.ring_log().into_iter().map(|r| r.user).collect();
    assert!(rung.iter().all(|u| u == "1005"), "{rung:?}");
    assert_eq!(finish_of(&sent).status_code, "603-S");
    assert!(rig.stop().await.is_empty());
}

#[tokio::test]
async fn a_redelivered_click_is_dialled_once() {
    let mut rig = Rig::start().await;
    // The agent's phone rings a while: a busy one ends the call within a switch tick, and the
    // outbox may then skip the show (see the busy-agent test), which is not what this checks.
    rig.fs
        .phone("1001")
        .answers_after(Duration::from_millis(200));
    rig.fs.phone(CUSTOMER).busy();
    rig.click("externalCall.c2c.5", AGENT_USER).await;
    rig.click("externalCall.c2c.5", AGENT_USER).await;
    let sent = rig.until_finish().await;
    assert_show_then_finish(&sent, "externalCall.c2c.5");
    let originates = rig
        .fs
        .commands()
        .iter()
        .filter(|c| c.text.contains("originate"))
        .count();
    assert_eq!(originates, 1);
    let late = rig.stop().await;
    assert!(late.is_empty(), "one finish only: {late:?}");
}

#[tokio::test]
async fn a_call_still_ringing_at_the_deadline_is_finished_once() {
    let mut quick = dial();
    quick.limits.max_duration = Duration::from_millis(800);
    let mut rig = Rig::start_custom(quick, Recorder).await;
    rig.fs.phone("1001").rings_forever();
    rig.click("externalCall.c2c.6", AGENT_USER).await;
    let sent = rig.until_finish().await;
    assert_show_then_finish(&sent, "externalCall.c2c.6");
    let f = finish_of(&sent);
    assert_eq!((f.status_code.as_str(), f.duration_secs), ("603-S", 0));
    assert!(
        f.failed_reason.as_deref().unwrap().contains("deadline"),
        "{f:?}"
    );
    // The agent's phone keeps ringing until FreeSWITCH's own limit; nothing more is written.
    let ring = rig.fs.ring_ended("1001", 0).await;
    assert!(ring.is_none_or(|r| r.why.as_deref() != Some("ANSWERED")));
    assert!(rig.stop().await.is_empty());
}

/// A stop (SIGTERM) while the customer rings: fsb24 stops following, but the switch goes on
/// with both legs, so the call is not finished now; it stays open in the outbox with the
/// employee's leg, for the next start to follow to its real end (`call::recover`).
#[tokio::test]
async fn stopping_the_click_task_mid_call_leaves_the_call_open_for_the_next_run() {
    let mut rig = Rig::start().await;
    rig.fs
        .phone("1001")
        .answers_after(Duration::from_millis(100));
    rig.fs.phone(CUSTOMER).rings_forever();
    rig.click("externalCall.c2c.7", AGENT_USER).await;
    rig.fs
        .ring_started(CUSTOMER, 0)
        .await
        .expect("the customer is being rung");
    let show = timeout(FAILSAFE, rig.sent.recv()).await.unwrap().unwrap();
    assert!(matches!(show.write, BitrixWrite::Show { .. }), "{show:?}");
    rig.click_stop.cancel();
    let key = "c2c-externalCall.c2c.7";
    let open = |orphans: &[fsb24::outbox::Orphan]| {
        orphans.iter().find(|o| o.call.as_str() == key).map(|o| {
            o.writes
                .iter()
                .map(|w| fsb24::outbox::store::kind_of(&w.write))
                .collect::<Vec<_>>()
        })
    };
    // Everything stops (the click task, the worker): nothing is finished.
    rig.shutdown.cancel();
    rig.tracker.close();
    timeout(FAILSAFE, rig.tracker.wait()).await.unwrap();
    while let Ok(sent) = rig.sent.try_recv() {
        assert!(!matches!(sent.write, BitrixWrite::Finish(_)), "{sent:?}");
    }
    let store = fsb24::outbox::SqliteStore::open(&rig._dir.path().join("outbox.db"))
        .await
        .unwrap();
    let orphans = fsb24::outbox::Store::orphans(&store).await.unwrap();
    let writes = open(&orphans).expect("the call stays open for the next start");
    assert!(
        writes.contains(&"note"),
        "the employee's leg is noted: {writes:?}"
    );
    rig.fs.shutdown().await;
}

// === Through Bitrix24: the portal's click, the event endpoint, the REST client ===

/// The production `Deliver` of the Bitrix REST client, logging each delivered write.
struct ToBitrix {
    client: BitrixClient,
    log: mpsc::Sender<Sent>,
}

impl Deliver for ToBitrix {
    async fn deliver(
        &self,
        call: &ExternalCallId,
        call_id: Option<&BitrixCallId>,
        write: &BitrixWrite,
    ) -> Result<Delivered, DeliverError> {
        // Click-to-call calls are registered by Bitrix24 itself: a register here is a bug.
        if let BitrixWrite::Register(_) = write {
            return Err(DeliverError::Permanent {
                reason: "click-to-call must not register".into(),
            });
        }
        let delivered = self.client.deliver(call, call_id, write).await?;
        let sent = Sent {
            call_id: call_id.cloned(),
            write: write.clone(),
            at: Instant::now(),
        };
        let _ = self.log.send(sent).await;
        Ok(delivered)
    }
}

/// An OAuth client of the peer (telephony methods need an application context).
async fn portal_client(
    peer: &BitrixPeer,
    dir: &std::path::Path,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> BitrixClient {
    let (mut settings, _) = peer.install_app(dir).await;
    settings.batch_window = None;
    BitrixClient::start(settings, tracker, shutdown.clone())
        .await
        .unwrap()
}

/// Serves fsb24's event endpoint on 127.0.0.1:0; returns the handler URL.
async fn event_endpoint(
    token: &str,
    clicks: mpsc::Sender<ClickToCall>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/bitrix/event", listener.local_addr().unwrap());
    let app = EventEndpoint::new(Arc::from(token), clicks).router("/bitrix/event");
    let stop = shutdown.clone();
    tracker.spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });
    url
}

/// The portal, its OAuth client delivering fsb24's writes, and fsb24's event endpoint.
struct Portal {
    peer: BitrixPeer,
    rig: Rig,
    handler: String,
    client_stop: CancellationToken,
    client_tasks: TaskTracker,
    _dir: tempfile::TempDir,
}

impl Portal {
    async fn start() -> Self {
        let peer = BitrixPeer::start(PeerOptions::default()).await;
        peer.add_user(SeedUser::new(17, "Erika", Some("1001")));
        let dir = tempfile::tempdir().unwrap();
        let (client_stop, client_tasks) = (CancellationToken::new(), TaskTracker::new());
        let client = portal_client(&peer, dir.path(), &client_stop, &client_tasks).await;
        let rig = Rig::start_with(|log| ToBitrix { client, log }).await;
        let handler = event_endpoint(
            "app-token-1",
            rig.clicks.clone(),
            &rig.tracker,
            &rig.shutdown,
        )
        .await;
        // Erika answers, then the client, who talks 1.2 s.
        rig.fs
            .phone("1001")
            .answers_after(Duration::from_millis(300));
        rig.fs
            .phone("+4930123456789")
            .answers_then_hangs_up(Duration::from_millis(300), Duration::from_millis(1200));
        Self {
            peer,
            rig,
            handler,
            client_stop,
            client_tasks,
            _dir: dir,
        }
    }

    /// Erika clicks `phone` in the CRM; the event waits `queued_for` in Bitrix24's queue.
    async fn click(&self, phone: &str, line: &str, queued_for: Duration) -> String {
        let click = PortalClick {
            user_id: 17,
            phone: phone.to_owned(),
            line_number: line.to_owned(),
            crm: None,
            queued_for,
        };
        let (call_id, status) = self
            .peer
            .click_to_call(&self.handler, "app-token-1", &click)
            .await;
        assert_eq!(status, Some(200));
        call_id
    }

    async fn stop(self) -> Vec<Sent> {
        let late = self.rig.stop().await;
        self.client_stop.cancel();
        self.client_tasks.close();
        let _ = timeout(FAILSAFE, self.client_tasks.wait()).await;
        late
    }
}

#[tokio::test]
async fn crm_click_rings_the_agent_then_the_client_and_finishes_bitrix24s_own_call_once() {
    let mut p = Portal::start().await;
    let call_id = p.click("+49 30 123456789", "", Duration::ZERO).await;
    let (peer, rig) = (&p.peer, &mut p.rig);
    let sent = rig.until_finish().await;
    assert_show_then_finish(&sent, &call_id);
    let agent_ring = rig.fs.ring_ended("1001", 0).await.expect("agent rang");
    let customer_ring = rig
        .fs
        .ring_ended("+4930123456789", 0)
        .await
        .expect("client rang");
    assert!(
        agent_ring.started < customer_ring.started,
        "the agent first, then the client"
    );
    let call = peer.call(&call_id).unwrap();
    let finished = call.finished.expect("the call is finished");
    assert_eq!(finished.user_id, 17);
    assert_eq!(finished.duration, 1, "the client's talk time (1.2 s)");
    assert_eq!(finished.status_code, "200");
    assert_eq!(finished.add_to_chat, Some(true));
    let cards = peer.timeline(&call_id);
    assert_eq!(cards.len(), 1, "{cards:?}");
    assert_eq!(cards[0].user, 17);
    assert!(
        cards[0].from < agent_ring.ended.unwrap(),
        "card open while the phone rang"
    );
    assert!(cards[0].to.is_some(), "finish closed the card");
    assert!(
        peer.method_calls("telephony.externalcall.register")
            .is_empty(),
        "Bitrix24 registered the call itself"
    );
    let late = p.stop().await;
    assert!(late.is_empty(), "one finish only: {late:?}");
}

#[tokio::test]
async fn a_stale_click_and_a_repeated_click_dial_nothing_extra_and_are_finished_cancelled() {
    let p = Portal::start().await;
    // Held 40 s in Bitrix24's queue (online events are never retried: it was delayed).
    let stale = p
        .click("+49 30 123456789", "", Duration::from_secs(40))
        .await;
    let finished = |id: &str| {
        let id = id.to_owned();
        move |s: &PeerState| s.calls.iter().find(|c| c.call_id == id)?.finished.clone()
    };
    // Finished at once, so the next click on this line gets a CALL_ID of its own.
    p.peer
        .wait_for_value("the stale click finished", finished(&stale))
        .await;
    let fresh = p.click("+49 30 123456789", "", Duration::ZERO).await;
    // A second click on the same number right after (another line: Bitrix24 gives it its own
    // CALL_ID, so the CALL_ID de-duplication cannot catch it).
    let again = p
        .click("+49 30 123456789", "4930555000", Duration::ZERO)
        .await;
    assert!(stale != fresh && fresh != again);
    let finishes = p
        .peer
        .wait_for_value("all three calls finished", |s| {
            Some((
                finished(&stale)(s)?,
                finished(&fresh)(s)?,
                finished(&again)(s)?,
            ))
        })
        .await;
    let (stale_f, fresh_f, again_f) = finishes;
    assert_eq!((fresh_f.status_code.as_str(), fresh_f.duration), ("200", 1));
    for (f, why) in [(&stale_f, "after it was made"), (&again_f, "clicked again")] {
        assert_eq!(
            (f.status_code.as_str(), f.duration, f.user_id),
            ("603-S", 0, 17)
        );
        assert!(f.failed_reason.contains(why), "{}", f.failed_reason);
    }
    let originates = p
        .rig
        .fs
        .commands()
        .iter()
        .filter(|c| c.text.contains("originate"))
        .count();
    assert_eq!(originates, 1, "only the fresh click was dialled");
    assert!(p.peer.timeline(&stale).is_empty() && p.peer.timeline(&again).is_empty());
    p.stop().await;
}
