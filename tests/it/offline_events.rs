//! Offline events through both peers (`[events] delivery = "offline"` / `"both"`): `fsb24 setup`
//! binds the events offline, the daemon polls `event.offline.get` and dials a queued
//! `ONEXTERNALCALLSTART` once, clearing it only after; an event claimed by a killed run comes
//! back to the next one; an event delivered online and offline, with a restart between the
//! two deliveries, is dialled once.

use std::path::Path;
use std::time::Duration;

use fsb24::bitrix::BitrixClient;
use fsb24::config::Config;
use fsb24::http::offline::PROCESS_ID;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::support::app::{TestApp, config_text};
use crate::support::bitrix_peer::{BitrixPeer, ClickToCall, PeerOptions, PeerState};
use crate::support::esl_peer::FsPeer;

pub(crate) const TOKEN: &str = "2c6e0b9f4d1a8e7c3b5f9a0d2e4c6b81";
pub(crate) const CUSTOMER: &str = "+4930123456789";

/// Both peers, the OAuth application installed, and fsb24's config (not started yet).
pub(crate) struct Rig {
    pub(crate) fs: FsPeer,
    pub(crate) bx: BitrixPeer,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) text: String,
}

impl Rig {
    async fn new(delivery: &str, http_port: Option<u16>) -> Self {
        Self::with(delivery, http_port, "", "").await
    }

    /// Agent 1001 is Bitrix24 user 17; `events` is added to `[events]`, `extra` to the config.
    pub(crate) async fn with(
        delivery: &str,
        http_port: Option<u16>,
        events: &str,
        extra: &str,
    ) -> Self {
        let fs = FsPeer::start().await.unwrap();
        let bx = BitrixPeer::start(PeerOptions::default()).await;
        bx.add_user(crate::support::bitrix_peer::SeedUser::new(
            17,
            "Erika",
            Some("1001"),
        ));
        let dir = tempfile::tempdir().unwrap();
        let (_, token_file) = bx.install_app(dir.path()).await;
        let mut body = format!(
            "[events]\ndelivery = \"{delivery}\"\npoll_interval = \"500ms\"\n{events}\
             [click_to_call]\ngateway = \"carrier\"\n{extra}"
        );
        if let Some(port) = http_port {
            body.push_str(&format!(
                "[http]\nlisten = \"127.0.0.1:{port}\"\npath = \"/bitrix24/event\"\n"
            ));
        }
        let webhook = format!(
            "[bitrix.auth.webhook]\nurl = \"{}\"\n",
            bx.webhook_url().unwrap()
        );
        let oauth = format!(
            "[bitrix.auth.oauth]\nportal = \"{rest}\"\nserver_endpoint = \"{rest}\"\n\
             client_id = \"{id}\"\nclient_secret = \"{secret}\"\ntoken_file = \"{file}\"\n",
            rest = bx.rest_url(),
            id = bx.options().client_id,
            secret = bx.options().client_secret,
            file = token_file.display(),
        );
        let text = config_text(&fs, &bx, dir.path(), &[("1001", 17)], &body)
            .replace(&webhook, &oauth)
            .replace(
                "[bitrix]\n",
                &format!("[bitrix]\napplication_token = \"{TOKEN}\"\n"),
            );
        fs.phone("1001").answers_after(Duration::from_millis(200));
        fs.phone(CUSTOMER)
            .answers_then_hangs_up(Duration::from_millis(200), Duration::from_millis(1200));
        Self { fs, bx, dir, text }
    }

    fn config(&self) -> Config {
        Config::from_toml_str(&self.text).unwrap()
    }

    /// `fsb24 setup` with this config: binds the events as `[events] delivery` says.
    pub(crate) async fn setup(&self) {
        let report = fsb24::setup::setup(&self.config()).await.unwrap();
        assert!(!report.scope_missing(), "{report}");
    }

    pub(crate) async fn start(&self, http: Option<tokio::net::TcpListener>) -> TestApp {
        TestApp::start_serving(&self.text, self.dir.path(), http).await
    }

    fn click() -> ClickToCall {
        ClickToCall {
            user_id: 17,
            phone: "+49 30 123456789".into(),
            line_number: String::new(),
            crm: None,
            queued_for: Duration::ZERO,
        }
    }

    pub(crate) fn originates(&self) -> usize {
        self.fs
            .commands()
            .iter()
            .filter(|c| c.text.contains("originate"))
            .count()
    }

    async fn finished(&self, call_id: &str) -> String {
        let id = call_id.to_owned();
        self.bx
            .wait_for_value("the clicked call is finished", move |s: &PeerState| {
                let call = s.calls.iter().find(|c| c.call_id == id)?;
                call.finished.as_ref().map(|f| f.status_code.clone())
            })
            .await
    }

    pub(crate) fn offline_gets(&self) -> usize {
        self.bx.method_calls("event.offline.get").len()
    }

    /// Waits until the queue is empty (every record cleared or flagged).
    pub(crate) async fn queue_drained(&self) {
        self.bx
            .wait_for("the offline queue is cleared", |s| {
                s.offline.records.iter().all(|r| r.error)
            })
            .await;
    }
}

/// An OAuth client of the peer, as a run that was killed had it.
async fn client(bx: &BitrixPeer, dir: &Path, stop: &CancellationToken) -> BitrixClient {
    let (mut settings, _) = bx.install_app(dir).await;
    settings.batch_window = None;
    BitrixClient::start(settings, &TaskTracker::new(), stop.clone())
        .await
        .unwrap()
}

#[tokio::test]
async fn an_offline_click_is_fetched_by_the_next_poll_dialled_once_and_then_cleared() {
    let rig = Rig::new("offline", None).await;
    rig.setup().await;
    let offline: Vec<String> = rig
        .bx
        .event_bindings()
        .into_iter()
        .filter(|b| b.offline)
        .map(|b| b.event)
        .collect();
    assert_eq!(offline, ["ONEXTERNALCALLSTART", "ONEXTERNALCALLBACKSTART"]);
    let app = rig.start(None).await;
    rig.bx
        .wait_for("a first poll", |s| {
            s.requests.iter().any(|r| r.method == "event.offline.get")
        })
        .await;
    let polls_before = rig.offline_gets();
    let call_id = rig.bx.click_to_call_offline(&Rig::click(), TOKEN);
    assert_eq!(rig.finished(&call_id).await, "200");
    rig.queue_drained().await;

    // The first poll after the event was queued returned it (a poll in flight while it was
    // queued may have missed it): it was picked up within one poll interval.
    let gets: Vec<_> = rig
        .bx
        .requests()
        .into_iter()
        .filter(|r| r.method == "event.offline.get")
        .collect();
    let fetched_by = gets
        .iter()
        .position(|r| carries(&r.response, &call_id))
        .expect("a poll returned the event");
    assert!(
        fetched_by <= polls_before + 1,
        "fetched by poll #{fetched_by}, the event was queued after poll #{polls_before}"
    );
    for get in &gets {
        assert_eq!(get.params["process_id"], PROCESS_ID);
        assert_eq!(get.params["clear"].to_string(), "0", "{:?}", get.params);
    }
    // Process, then clear: the clear came after the originate, for the record's ID.
    let clears = rig.bx.method_calls("event.offline.clear");
    assert_eq!(clears.len(), 1, "{clears:?}");
    assert_eq!(clears[0].params["process_id"], PROCESS_ID);
    let originate_at = rig
        .fs
        .commands()
        .into_iter()
        .find(|c| c.text.contains("originate"))
        .map(|c| c.at)
        .unwrap();
    assert!(originate_at <= clears[0].at);
    assert_eq!(rig.originates(), 1);
    app.shutdown().await;
}

/// Whether an `event.offline.get` answer carried the event of `call_id`.
fn carries(response: &serde_json::Value, call_id: &str) -> bool {
    response["result"]["events"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["EVENT_DATA"]["CALL_ID"] == call_id)
}

#[tokio::test]
async fn an_event_claimed_by_a_killed_run_comes_back_to_the_next_one_and_is_dialled_once() {
    let rig = Rig::new("offline", None).await;
    rig.setup().await;
    let call_id = rig.bx.click_to_call_offline(&Rig::click(), TOKEN);
    // A run fetched it (claimed, not cleared) and was killed before dialling.
    let stop = CancellationToken::new();
    let killed = client(&rig.bx, rig.dir.path(), &stop).await;
    let claimed = killed.event_offline_get(PROCESS_ID, 50).await.unwrap();
    assert_eq!(claimed.events.len(), 1);
    stop.cancel();
    assert!(
        rig.bx
            .offline_records()
            .iter()
            .all(|r| r.process_id == PROCESS_ID)
    );

    let app = rig.start(None).await;
    assert_eq!(rig.finished(&call_id).await, "200");
    rig.queue_drained().await;
    assert_eq!(rig.originates(), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn the_same_click_online_then_offline_across_a_restart_is_dialled_once() {
    let port = crate::support::daemon::free_port();
    let rig = Rig::new("both", Some(port)).await;
    rig.setup().await;
    let http = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let app = rig.start(Some(http)).await;
    let handler = format!("http://127.0.0.1:{port}/bitrix24/event");
    let (call_id, status) = rig.bx.click_to_call(&handler, TOKEN, &Rig::click()).await;
    assert_eq!(status, Some(200));
    assert_eq!(rig.finished(&call_id).await, "200");
    app.shutdown().await;

    // The portal queued the same event offline as well; a restarted fsb24 fetches it.
    let form = rig.bx.deliveries()[0].form.clone();
    rig.bx
        .queue_offline("ONEXTERNALCALLSTART", &form)
        .expect("bound offline");
    let http = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let app = rig.start(Some(http)).await;
    rig.queue_drained().await;
    assert_eq!(rig.originates(), 1, "dialled once");
    let finishes = rig.bx.method_calls("telephony.externalcall.finish");
    assert_eq!(finishes.len(), 1, "{finishes:?}");
    assert_eq!(rig.bx.method_calls("event.offline.error").len(), 0);
    app.shutdown().await;
}
