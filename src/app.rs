//! Wiring: builds the components from a [`Config`], runs them under one shutdown token and one
//! task tracker, and reloads the config file on SIGHUP. Signals for shutdown arrive as a future
//! from `main` (tests pass a oneshot), so nothing here waits on SIGTERM/SIGINT itself.

pub(crate) mod build;
pub mod online;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::admin::{Admin, Sources};
use crate::bitrix::BitrixClient;
use crate::call;
use crate::call::board::Board;
use crate::call::callback::{self, CallbackDeps};
use crate::call::click::{self, ClickDeps, ClickDial};
use crate::call::effects::{CallServices, Dialer};
use crate::call::recover::{self, live::Recovery};
use crate::call::spawn::{CallConfigs, Services};
use crate::config::{BitrixAuth, Config, ConfigError, ConfigErrors};
use crate::esl::{InboundClient, InboundHandle, IncomingCall, OutboundServer, Presence};
use crate::http::offline::OfflinePoller;
use crate::http::{AppInstall, CallbackRequest, ClickToCall, EventEndpoint};
use crate::ids::BitrixUserId;
use crate::outbox::{self, Outbox};
use crate::queue::QueueHandle;
use crate::setup::install::Installer;

/// Sockets the app serves on, bound before it starts (tests bind `127.0.0.1:0`).
#[derive(Debug)]
pub struct Listeners {
    /// Where FreeSWITCH's `socket` app connects.
    pub esl: TcpListener,
    /// The Bitrix24 event endpoint, when `[http]` is configured.
    pub http: Option<TcpListener>,
    /// The operators' listener (metrics, health, status page), when `[admin]` is configured.
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses of the config.
    pub async fn bind(config: &Config) -> anyhow::Result<Self> {
        let esl = TcpListener::bind(config.esl.listen)
            .await
            .with_context(|| format!("binding esl.listen {}", config.esl.listen))?;
        let http = bind_optional("http.listen", config.http.as_ref().map(|h| h.listen)).await?;
        let admin = bind_optional("admin.listen", config.admin.as_ref().map(|a| a.listen)).await?;
        Ok(Self { esl, http, admin })
    }
}

/// Binds `addr` when its section is configured; `key` names it in the error.
async fn bind_optional(
    key: &str,
    addr: Option<std::net::SocketAddr>,
) -> anyhow::Result<Option<TcpListener>> {
    let Some(addr) = addr else { return Ok(None) };
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {key} {addr}"))?;
    Ok(Some(listener))
}

/// Runs fsb24 until `shutdown` completes, then stops every task within `config.shutdown_grace`.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let listeners = Listeners::bind(&config).await?;
    run_with(config, listeners, shutdown).await
}

/// [`run`] on listeners bound by the caller.
///
/// Shutdown, all within `shutdown_grace`, in three steps:
/// 1. The call side stops: listeners stop accepting, and every call gets its shutdown input
///    (a conversation goes on in the switch, a waiting caller goes to the dialplan fallback, a
///    call that is ending finishes). The services stay up meanwhile.
/// 2. The outbox worker delivers what is due now (the cards those calls closed), then stops.
/// 3. Everything else stops; what the worker did not send stays durable for the next start.
pub async fn run_with(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let grace = config.shutdown_grace;
    let source = config.source.clone();
    let drain = CancellationToken::new();
    let started = tokio::time::Instant::now();
    let (services, inbound, presence, worker) =
        start_services(&config, &tracker, &token, &drain).await?;
    let (config_tx, config_updates) = watch::channel(Arc::new(config));
    let board = Board::default();
    if let Some(listener) = listeners.admin {
        let admin = Admin::new(Sources {
            board: board.clone(),
            queue: services.queue.clone(),
            presence,
            inbound: inbound.clone(),
            outbox: services.outbox.clone(),
            bitrix: services.bitrix.clone(),
            started,
        });
        tracker.spawn(admin.serve(listener, token.child_token()));
    }

    // The call side: its own token and tracker, stopped first.
    let (calls_token, calls) = (CancellationToken::new(), TaskTracker::new());
    let (calls_tx, calls_rx) = mpsc::channel(256);
    let esl_addr = listeners.esl.local_addr().ok();
    let outbound = OutboundServer::new(listeners.esl, build::outbound(&config_updates.borrow()));
    calls.spawn(outbound.run(calls_tx, calls_token.child_token(), calls.clone()));
    let spawn_with = Services {
        calls: services.clone(),
        board,
        resyncs: inbound.resyncs(),
        token: calls_token.child_token(),
        tracker: calls.clone(),
    };
    let call_configs = CallConfigs::new(config_updates.clone());
    calls.spawn(dispatch_calls(calls_rx, call_configs.clone(), spawn_with));
    if listeners.http.is_some() || config_updates.borrow().portal.delivery.offline() {
        let clicks = ClickDeps {
            agents: call_configs,
            inbound,
            outbox: services.outbox.clone(),
            dial: ClickDial::from_config(&config_updates.borrow())?,
        };
        let callbacks = callback_deps(&config_updates.borrow(), &clicks, esl_addr);
        let bitrix = services.bitrix.clone();
        serve_events(
            listeners.http,
            &config_updates.borrow(),
            (clicks, callbacks, bitrix),
            &calls,
            &calls_token,
        )?;
    }
    if let Some(path) = source {
        tracker.spawn(reload_on_sighup(path, config_tx, token.child_token()));
        tracker.spawn(follow_reloads(
            config_updates.clone(),
            services.queue.clone(),
            token.child_token(),
        ));
    }
    info!("fsb24 running");
    notify_systemd(sd_notify::NotifyState::Ready);
    shutdown.await;
    info!("shutting down");
    notify_systemd(sd_notify::NotifyState::Stopping);
    let deadline = tokio::time::Instant::now() + grace;
    calls_token.cancel();
    calls.close();
    if tokio::time::timeout_at(deadline, calls.wait())
        .await
        .is_err()
    {
        warn!(
            calls = calls.len(),
            "shutdown grace period elapsed with calls still ending; the next start finishes them"
        );
    }
    drain.cancel();
    if tokio::time::timeout_at(deadline, worker).await.is_err() {
        warn!("shutdown grace period elapsed while the outbox delivered; the rest stays queued");
    }
    token.cancel();
    tracker.close();
    if tokio::time::timeout_at(deadline, tracker.wait())
        .await
        .is_err()
    {
        warn!(
            tasks = tracker.len(),
            "shutdown grace period elapsed; abandoning tasks"
        );
    }
    info!("stopped");
    Ok(())
}

/// Tells systemd (`Type=notify`) where the daemon stands; nothing without `NOTIFY_SOCKET`.
/// Ready means the listeners are bound and the services started: calls are taken from then on,
/// even with the portal down (the outbox holds their writes).
fn notify_systemd(state: sd_notify::NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        warn!(
            error = &e as &dyn std::error::Error,
            "systemd notification failed"
        );
    }
}

/// The started services: what calls use, the inbound connection (click-to-call originates
/// through it), presence and the outbox worker.
type Started = (
    CallServices,
    InboundHandle,
    Presence,
    tokio::task::JoinHandle<()>,
);

/// Outbox + worker, Bitrix24 client, ESL inbound + presence, queue actor.
async fn start_services(
    config: &Config,
    tracker: &TaskTracker,
    token: &CancellationToken,
    drain: &CancellationToken,
) -> anyhow::Result<Started> {
    let outbox = Outbox::open(&config.outbox.path)
        .await
        .with_context(|| format!("opening the outbox {}", config.outbox.path.display()))?;
    let presence = Presence::new(
        config
            .agents
            .iter()
            .map(|a| a.extension.as_str().to_owned()),
    );
    let inbound = InboundClient::spawn(
        build::inbound(config)?,
        presence.clone(),
        token.child_token(),
        tracker,
    );
    // Route calls only once presence is known, unless the switch's inbound side stays silent:
    // then calls still flow (queues see every agent as unregistered until it connects).
    let mut resyncs = inbound.resyncs();
    let first = resyncs.wait_for(|n| *n > 0);
    let switch_up = tokio::time::timeout(config.esl.handshake_timeout, first)
        .await
        .is_ok();
    if !switch_up {
        warn!("no presence snapshot from FreeSWITCH yet; taking calls anyway");
    }
    // Before the worker sends anything: calls a killed previous run left open are finished (or
    // followed while the switch still has them), so a call already over never shows a card.
    let recovery = Recovery {
        outbox: outbox.clone(),
        inbound: inbound.clone(),
        agents: build::users_by_extension(config),
        fallback: config
            .bitrix
            .defaults
            .missed_call_owner
            .unwrap_or(BitrixUserId(1)),
    };
    let live = recover::live::start(recovery, switch_up)
        .await
        .context("recovering calls left open by a previous run")?;
    if !live.is_empty() {
        tracker.spawn(live.run(token.child_token()));
    }
    let settings = build::bitrix(config)?;
    settings
        .metrics
        .watch_wire(outbox.metrics().card_clock.clone());
    let bitrix = BitrixClient::start(settings, tracker, token.child_token())
        .await
        .context("starting the Bitrix24 client")?;
    tracker.spawn(crate::setup::agents::warn_at_start(
        bitrix.clone(),
        config.agents.clone(),
        token.child_token(),
    ));
    let worker = tracker.spawn(outbox::worker::run_draining(
        outbox.clone(),
        Arc::new(bitrix.clone()),
        build::worker(config),
        drain.clone(),
        token.child_token(),
    ));
    let queue = QueueHandle::spawn(
        build::policy(config)?,
        Arc::new(presence.clone()),
        tracker,
        token.child_token(),
    );
    let services = CallServices {
        queue,
        outbox,
        bitrix,
        dialer: Dialer::new(config.esl.dial.clone()),
    };
    Ok((services, inbound, presence, worker))
}

/// Hands each reloaded config's queues and agents to the queue actor. Routes and timings need
/// nothing: every new call resolves against the current config.
async fn follow_reloads(
    mut config: watch::Receiver<Arc<Config>>,
    queue: QueueHandle,
    token: CancellationToken,
) {
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            changed = config.changed() => if changed.is_err() { return },
        }
        let current = Arc::clone(&config.borrow_and_update());
        match build::policy(&current) {
            Ok(policy) => {
                if let Err(e) = queue.reconfigure(policy).await {
                    warn!(error = &e as &dyn std::error::Error, "queue reload failed");
                }
            }
            Err(e) => error!(error = %e, "reloaded queues refused; keeping the running ones"),
        }
    }
}

/// Hands every call FreeSWITCH passes over to [`call::spawn`], with the lookups of the config
/// current at its arrival (built once per config version). Never waits on a call.
async fn dispatch_calls(
    mut calls: mpsc::Receiver<IncomingCall>,
    configs: CallConfigs,
    services: Services,
) {
    loop {
        let incoming = tokio::select! {
            () = services.token.cancelled() => return,
            incoming = calls.recv() => match incoming { Some(c) => c, None => return },
        };
        // A reload changes new calls only.
        call::spawn::spawn(incoming, &configs.current(), &services);
    }
}

/// The Bitrix24 event endpoint (when `[http]` is served), the offline poller (when
/// `[events] delivery` is `offline` or `both`) and the click-to-call flow behind both.
fn serve_events(
    listener: Option<TcpListener>,
    config: &Config,
    (clicks, callbacks, bitrix): (ClickDeps, Option<CallbackDeps>, BitrixClient),
    tracker: &TaskTracker,
    token: &CancellationToken,
) -> anyhow::Result<()> {
    let (click_tx, click_rx) = mpsc::channel::<ClickToCall>(64);
    let callback_tx = callbacks.map(|deps| {
        let (tx, rx) = mpsc::channel::<CallbackRequest>(64);
        tracker.spawn(callback::run_callbacks(
            rx,
            deps,
            token.child_token(),
            tracker.clone(),
        ));
        tx
    });
    let online = match (listener, &config.http, &config.bitrix.application_token) {
        (Some(listener), Some(http), Some(app_token)) => Some((listener, http, app_token)),
        _ => None,
    };
    let offline = config.portal.delivery.offline();
    if online.is_none() && !offline {
        return Ok(());
    }
    if let Some((listener, http, app_token)) = online {
        let mut endpoint = EventEndpoint::new(Arc::from(app_token.expose()), click_tx.clone())
            .with_numbering(config.numbers);
        if let Some(tx) = &callback_tx {
            endpoint = endpoint.with_callbacks(tx.clone());
        }
        if matches!(config.bitrix.auth, BitrixAuth::OAuth(_)) {
            let (tx, rx) = mpsc::channel::<AppInstall>(4);
            let installer = Installer {
                client: bitrix.clone(),
                portal: config.portal.clone(),
                agents: config.agents.clone(),
            };
            tracker.spawn(installer.run(rx, token.child_token()));
            endpoint = endpoint.with_installs(tx);
        }
        tracker.spawn(crate::http::serve(
            listener,
            endpoint.router(&http.path),
            build::http_limits(http),
            token.child_token(),
            tracker.clone(),
        ));
    }
    if offline {
        let poller = OfflinePoller {
            client: bitrix,
            clicks: click_tx,
            callbacks: callback_tx,
            outbox: clicks.outbox.clone(),
            numbering: config.numbers,
            interval: config.portal.poll_interval,
        };
        tracker.spawn(poller.run(token.child_token()));
    }
    tracker.spawn(click::run_click_to_call(
        click_rx,
        clicks,
        token.child_token(),
        tracker.clone(),
    ));
    Ok(())
}

/// The callback task's needs when `[events] callback_queue` is set. FreeSWITCH reaches the
/// socket at `[events] callback_socket`, else where the `socket` listener is bound (loopback
/// for an unspecified address).
fn callback_deps(
    config: &Config,
    clicks: &ClickDeps,
    esl: Option<std::net::SocketAddr>,
) -> Option<CallbackDeps> {
    config.portal.callback_queue.as_ref()?;
    let socket = config.portal.callback_socket.or_else(|| {
        esl.map(|mut addr| {
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            addr
        })
    })?;
    Some(CallbackDeps {
        inbound: clicks.inbound.clone(),
        outbox: clicks.outbox.clone(),
        customer: clicks.dial.customer.clone(),
        caller_id_number: clicks.dial.caller_id_number.clone(),
        ring: clicks.dial.customer_ring,
        socket,
        owner: config
            .bitrix
            .defaults
            .missed_call_owner
            .unwrap_or(BitrixUserId(1)),
        add_to_chat: config.bitrix.defaults.add_to_chat,
        default_line: config.bitrix.defaults.line_number.clone(),
    })
}

/// Reads and validates the config file at `path` without blocking the runtime.
pub async fn read_config(path: &Path) -> Result<Config, ConfigErrors> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Config::from_toml_str_at(&text, path),
        Err(e) => {
            let error = ConfigError::new("(file)", format!("cannot read the config file: {e}"));
            Err(ConfigErrors::new(path.display().to_string(), vec![error]))
        }
    }
}

/// On every SIGHUP re-reads `path`; a valid config is published to `updates`, an invalid one is
/// logged key by key and the running config stays.
async fn reload_on_sighup(
    path: PathBuf,
    updates: watch::Sender<Arc<Config>>,
    token: CancellationToken,
) {
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(stream) => stream,
        Err(e) => {
            warn!(
                error = &e as &dyn std::error::Error,
                "cannot watch SIGHUP; config reload disabled"
            );
            return;
        }
    };
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            got = hangups.recv() => if got.is_none() { return },
        }
        let path_text = path.display().to_string();
        info!(signal = "SIGHUP", path = %path_text, "reloading config");
        match read_config(&path).await {
            Ok(config) => {
                updates.send_replace(Arc::new(config));
                info!(path = %path_text, "config reloaded");
            }
            Err(errors) => {
                for e in &errors.errors {
                    error!(key = %e.key, problem = %e.problem, "config error");
                }
                error!(path = %path_text, errors = errors.errors.len(), "config reload refused; keeping the running config");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A config that binds nothing fixed and keeps its outbox in `dir`.
    fn minimal(dir: &Path) -> String {
        format!(
            r#"
        shutdown_grace = "1s"
        [esl]
        listen = "127.0.0.1:0"
        handshake_timeout = "500ms"
        [esl.inbound]
        host = "127.0.0.1"
        port = 1
        password = "pw"
        [esl.dial]
        template = "user/{{extension}}"
        [bitrix.auth.webhook]
        url = "https://example.bitrix24.de/rest/1/abc/"
        [outbox]
        path = "{}"
    "#,
            dir.join("outbox.db").display()
        )
    }

    #[tokio::test]
    async fn run_returns_once_the_shutdown_future_completes() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::from_toml_str(&minimal(dir.path())).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = tokio::spawn(run(config, async move {
            let _ = rx.await;
        }));
        tx.send(()).unwrap();
        let done = tokio::time::timeout(std::time::Duration::from_secs(5), app).await;
        done.unwrap().unwrap().unwrap();
    }

    #[tokio::test]
    async fn run_with_a_config_file_stops_its_reload_watcher_on_shutdown() {
        // The SIGHUP watcher is a tracked task; run() only returns early if it saw the token.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fsb24.toml");
        tokio::fs::write(&path, minimal(dir.path()).replace("\"1s\"", "\"30s\""))
            .await
            .unwrap();
        let config = read_config(&path).await.unwrap();
        let app = tokio::spawn(run(config, async {}));
        let done = tokio::time::timeout(std::time::Duration::from_secs(5), app).await;
        done.unwrap().unwrap().unwrap();
    }

    #[tokio::test]
    async fn read_config_reports_a_missing_file_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.toml");
        let errors = read_config(&path).await.unwrap_err();
        assert!(errors.has_key("(file)"));
        assert!(errors.to_string().contains("absent.toml"));
    }

    #[tokio::test]
    async fn read_config_remembers_where_the_config_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fsb24.toml");
        tokio::fs::write(&path, minimal(dir.path())).await.unwrap();
        let config = read_config(&path).await.unwrap();
        assert_eq!(config.source.as_deref(), Some(path.as_path()));
    }
}
