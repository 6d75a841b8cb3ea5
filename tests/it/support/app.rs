//! fsb24 under test: started in-process on a listener the test bound first, wired to the
//! FreeSWITCH peer (inbound ESL, phones) and the Bitrix24 peer (webhook), with its outbox and
//! recordings in a temporary directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use fsb24::app::{Listeners, run_with};
use fsb24::config::Config;

use super::bitrix_peer::{BitrixPeer, CallRecord, PeerOptions, SeedUser};
use super::esl_peer::FsPeer;

/// An agent of the test config: extension, Bitrix24 user id.
pub type Agent = (&'static str, u64);

/// Both peers and fsb24 between them.
pub struct World {
    /// The FreeSWITCH peer.
    pub fs: FsPeer,
    /// The Bitrix24 peer.
    pub bx: BitrixPeer,
    /// fsb24.
    pub app: TestApp,
    /// Outbox, recordings and the config live here.
    pub dir: tempfile::TempDir,
}

impl World {
    /// Starts both peers, seeds the agents as Bitrix24 users and starts fsb24 with `body`
    /// (agents, queues and routes in TOML) after the common sections.
    pub async fn start(agents: &[Agent], body: &str) -> Self {
        Self::start_with(agents, body, PeerOptions::default()).await
    }

    /// [`World::start`] with custom Bitrix24 peer options.
    pub async fn start_with(agents: &[Agent], body: &str, opts: PeerOptions) -> Self {
        let fs = FsPeer::start().await.unwrap();
        let bx = BitrixPeer::start(opts).await;
        // The peer defaults to the documented refusal of webhooks for register/finish.
        bx.set_webhook_wrong_auth_type(false);
        for (ext, user) in agents {
            bx.add_user(SeedUser::new(*user, &format!("Agent {ext}"), Some(ext)));
        }
        let dir = tempfile::tempdir().unwrap();
        let text = config_text(&fs, &bx, dir.path(), agents, body);
        let app = TestApp::start(&text, dir.path()).await;
        Self { fs, bx, app, dir }
    }

    /// Where recordings of this world go.
    pub fn recordings(&self) -> PathBuf {
        self.dir.path().join("rec")
    }

    /// The Bitrix24 call of the caller's channel once it is finished (peer failsafe).
    pub async fn finished_call(&self, channel: &str) -> CallRecord {
        let external = format!("fs-{channel}");
        self.bx
            .wait_for_value("the call is finished", |s| {
                s.calls
                    .iter()
                    .find(|c| c.external_call_id.as_deref() == Some(external.as_str()))
                    .filter(|c| c.finished.is_some())
                    .cloned()
            })
            .await
    }
}

/// The common config sections around `body`.
pub fn config_text(
    fs: &FsPeer,
    bx: &BitrixPeer,
    dir: &Path,
    agents: &[Agent],
    body: &str,
) -> String {
    let inbound = fs.inbound_addr();
    let webhook = bx.webhook_url().unwrap();
    let mut text = format!(
        r#"
shutdown_grace = "2s"
[esl]
listen = "127.0.0.1:0"
[esl.inbound]
host = "{host}"
port = {port}
password = "ClueCon"
reconnect_min = "100ms"
reconnect_max = "1s"
[esl.dial]
template = "user/{{extension}}@{{domain}}"
domain = "127.0.0.1"
[bitrix]
batch_window = "5ms"
lookup_timeout = "1500ms"
[bitrix.auth.webhook]
url = "{webhook}"
[bitrix.defaults]
line_number = "74951234567"
missed_call_owner = 1
[recording]
path_template = "{rec}/{{call}}.wav"
wait_after_hangup = "3s"
[outbox]
path = "{outbox}"
retry_min = "100ms"
retry_max = "1s"
"#,
        host = inbound.ip(),
        port = inbound.port(),
        rec = dir.join("rec").display(),
        outbox = dir.join("outbox.db").display(),
    );
    for (ext, user) in agents {
        text.push_str(&format!(
            "[[agents]]\nextension = \"{ext}\"\nbitrix_user = {user}\nname = \"Agent {ext}\"\n"
        ));
    }
    text.push_str(body);
    text
}

/// fsb24 running in-process.
pub struct TestApp {
    /// Where the FreeSWITCH peer must connect (`socket <addr> async full`).
    pub esl_addr: SocketAddr,
    /// The admin listener (metrics, health, status page).
    pub admin_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Parses `text` (it must be valid) and runs fsb24 on a fresh loopback listener.
    pub async fn start(text: &str, dir: &Path) -> Self {
        Self::start_serving(text, dir, None).await
    }

    /// [`TestApp::start`] serving the Bitrix24 event endpoint on `http` too.
    pub async fn start_serving(text: &str, dir: &Path, http: Option<TcpListener>) -> Self {
        let path = dir.join("fsb24.toml");
        std::fs::write(&path, text).unwrap();
        let config = Config::from_toml_str(text).unwrap_or_else(|e| panic!("test config: {e}"));
        let esl = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let esl_addr = esl.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let listeners = Listeners {
            esl,
            http,
            admin: Some(admin),
        };
        let task = tokio::spawn(run_with(config, listeners, async move {
            let _ = stopped.await;
        }));
        Self {
            esl_addr,
            admin_addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops fsb24 and re-raises its error or panic.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let done = tokio::time::timeout(Duration::from_secs(10), task).await;
            done.expect("fsb24 did not stop within 10 s")
                .unwrap()
                .unwrap();
        }
    }
}
