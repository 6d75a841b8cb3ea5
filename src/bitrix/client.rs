//! `BitrixClient`: typed Bitrix24 methods over the transport, with batchable commands routed
//! through the batcher. Cheap to clone; one per portal.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::auth::{Auth, AuthSettings, OAuth};
use super::batch::Command;
use super::batcher::{self, BatcherSettings, Queued};
use super::error::{BitrixError, WRONG_AUTH_TYPE_ADVICE};
use super::limiter::{Limiter, RateLimit};
use super::metrics::BitrixMetrics;
use super::transport::{Answer, Body, Transport};
use super::wire::Method;

/// Everything a [`BitrixClient`] needs; the lead maps configuration into it.
#[derive(Debug, Clone)]
pub struct BitrixSettings {
    /// Credentials; the REST base URL is the webhook URL or the configured OAuth `portal`.
    pub auth: AuthSettings,
    /// The portal's request-rate limit to stay under (default 2/s, burst 50).
    pub rate: RateLimit,
    /// How long a command may wait to be coalesced with others into one `batch`; `None` sends
    /// every command as its own request.
    pub batch_window: Option<Duration>,
    /// Timeout of one HTTP request (Bitrix24 kills requests after 60 s).
    pub request_timeout: Duration,
    /// Batches in flight at once.
    pub max_in_flight: usize,
    /// Recordings up to this size go inline (`FILE_CONTENT`), larger ones by two-step upload.
    pub inline_record_max: u64,
    /// Where the client counts its requests (the app registers them for `/metrics`).
    pub metrics: BitrixMetrics,
}

impl BitrixSettings {
    /// Defaults around the given credentials, the same as the config's (`conf/fsb24.toml`):
    /// 2/s burst 50, 10 ms batch window, 10 s request timeout, recordings up to 4 MiB inline.
    pub fn new(auth: AuthSettings) -> Self {
        Self {
            auth,
            rate: RateLimit::default(),
            batch_window: Some(Duration::from_millis(10)),
            request_timeout: Duration::from_secs(10),
            max_in_flight: 4,
            inline_record_max: 4 * 1024 * 1024,
            metrics: BitrixMetrics::default(),
        }
    }
}

struct Inner {
    transport: Arc<Transport>,
    queue: Option<mpsc::Sender<Queued>>,
    inline_record_max: u64,
    /// Whether the portal's `WRONG_AUTH_TYPE` advice was logged (once per client).
    wrong_auth_told: AtomicBool,
}

/// A Bitrix24 REST client for one portal. Clone it freely: clones share the rate limiter,
/// the token state and the batching batcher.
#[derive(Clone)]
pub struct BitrixClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BitrixClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BitrixClient").finish_non_exhaustive()
    }
}

impl BitrixClient {
    /// How long `method` is still held for its exhausted operating budget, if it is.
    pub fn held_for(&self, method: &str) -> Option<Duration> {
        let now = super::transport::unix_now();
        let until = self.inner.transport.operating.held(method, now)?;
        Some(Duration::from_secs(u64::try_from(until - now).unwrap_or(0)))
    }

    /// Builds the client (reading the OAuth token file if needed) and starts its batcher on
    /// `tracker`; the batcher stops on `shutdown` or when the last clone is dropped.
    pub async fn start(
        settings: BitrixSettings,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<Self, BitrixError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("fsb24/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BitrixError::transport("client", e))?;
        let (base, auth) = match &settings.auth {
            AuthSettings::Webhook(url) => (url.expose().clone(), Auth::Webhook),
            AuthSettings::OAuth(o) => {
                // The configured portal, never the token file's: load checked they agree.
                let oauth = OAuth::load(o).await?;
                (o.portal.clone(), Auth::OAuth(Arc::new(oauth)))
            }
        };
        let limiter = Limiter::new(settings.rate, Instant::now());
        let metrics = settings.metrics.clone();
        let transport = Arc::new(Transport::new(http, base, auth, limiter, metrics));
        let queue = settings.batch_window.map(|window| {
            let (tx, rx) = mpsc::channel(1024);
            let dispatch = BatcherSettings {
                window,
                max_in_flight: settings.max_in_flight.max(1),
            };
            tracker.spawn(batcher::run(Arc::clone(&transport), rx, dispatch, shutdown));
            tx
        });
        Ok(Self {
            inner: Arc::new(Inner {
                transport,
                queue,
                inline_record_max: settings.inline_record_max,
                wrong_auth_told: AtomicBool::new(false),
            }),
        })
    }

    /// Requests, limit hits, portal state and recent errors.
    pub fn metrics(&self) -> &BitrixMetrics {
        &self.inner.transport.metrics
    }

    /// How many OAuth refreshes this client performed (0 under webhook auth).
    pub fn refresh_count(&self) -> u64 {
        match &self.inner.transport.auth {
            Auth::OAuth(o) => o.refresh_count(),
            Auth::Webhook => 0,
        }
    }

    /// Runs one command: batchable ones through the batcher (when batching is on), others
    /// directly. Cancel-safe: dropping the future abandons only this caller's interest.
    pub(crate) async fn command(
        &self,
        method: Method,
        params: impl Serialize,
        key: Option<&crate::ids::ExternalCallId>,
    ) -> Result<Value, BitrixError> {
        let params =
            serde_json::to_value(params).map_err(|e| BitrixError::decode(method.name(), e))?;
        match &self.inner.queue {
            Some(queue) if method.batchable() => {
                let (reply, rx) = oneshot::channel();
                let command = Command {
                    method,
                    params,
                    key: key.cloned(),
                };
                queue
                    .send(Queued { command, reply })
                    .await
                    .map_err(|_| BitrixError::Shutdown {
                        method: method.name(),
                    })?;
                rx.await.map_err(|_| BitrixError::Shutdown {
                    method: method.name(),
                })?
            }
            _ => {
                // Wait for the limiter here, so the card clock stops when the request leaves.
                self.inner.transport.acquire().await;
                if let Some(key) = key {
                    self.inner.transport.metrics.on_wire(key);
                }
                let body = Body::Json(params);
                let answer = self.inner.transport.exchange(method, &body, true).await;
                answer.map(|a| a.result)
            }
        }
    }

    /// Sends one request outside any batch.
    pub(crate) async fn direct(&self, method: Method, body: Body) -> Result<Answer, BitrixError> {
        self.inner.transport.exchange(method, &body, false).await
    }

    /// Runs a command and decodes its result.
    pub(crate) async fn typed<T: DeserializeOwned>(
        &self,
        method: Method,
        params: impl Serialize,
        key: Option<&crate::ids::ExternalCallId>,
    ) -> Result<T, BitrixError> {
        let value = self.command(method, params, key).await?;
        serde_json::from_value(value).map_err(|e| BitrixError::decode(method.name(), e))
    }

    pub(crate) fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    pub(crate) fn inline_record_max(&self) -> u64 {
        self.inner.inline_record_max
    }

    /// Logs what to change the first time this client meets `WRONG_AUTH_TYPE` (once per client).
    pub(crate) fn advise_once(&self, err: &BitrixError) {
        if err.is_wrong_auth_type() && !self.inner.wrong_auth_told.swap(true, Ordering::Relaxed) {
            tracing::error!(
                method = err.method().unwrap_or_default(),
                "Bitrix24 refused webhook auth (WRONG_AUTH_TYPE): {WRONG_AUTH_TYPE_ADVICE}"
            );
        }
    }

    pub(crate) fn check_recording(path: &Path) -> Result<String, BitrixError> {
        super::record::recording_name(Method::AttachRecord, path)
    }
}
