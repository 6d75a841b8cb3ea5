//! One HTTP exchange with the portal and its recoveries: waits for the rate limiter, adds the
//! credential, re-POSTs a redirect once (remembering the new address), refreshes an expired
//! OAuth token once, and backs off on `QUERY_LIMIT_EXCEEDED`. Never logs a URL.

use std::path::PathBuf;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::time::Instant;
use tracing::warn;
use url::Url;

use super::auth::{Auth, SecretString, secure_or_loopback};
use super::error::{BitrixError, ErrorKind};
use super::limiter::Limiter;
use super::metrics::BitrixMetrics;
use super::operating::OperatingHolds;
use super::record;
use super::wire::{AUTH_PARAM, Envelope, Method};

/// How often a `QUERY_LIMIT_EXCEEDED` answer is retried here before it goes to the caller.
const RATE_RETRIES: u32 = 3;

/// A successful answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    /// `result`.
    pub result: Value,
    /// `next` (list methods).
    pub next: Option<u64>,
}

/// What to send.
pub(crate) enum Body {
    /// A JSON object of parameters (the OAuth token is added as `auth`).
    Json(Value),
    /// `attachRecord` mode A, streamed from disk.
    InlineRecord(record::Inline),
    /// The multipart upload of mode C, streamed from disk, to an absolute `uploadUrl`.
    Upload {
        url: Url,
        field: String,
        path: PathBuf,
        filename: String,
    },
}

/// The shared HTTP side of a client.
pub(crate) struct Transport {
    pub(crate) http: reqwest::Client,
    base: RwLock<Url>,
    pub(crate) auth: Auth,
    pub(crate) limiter: Mutex<Limiter>,
    /// Methods whose execution-time budget is exhausted.
    pub(crate) operating: OperatingHolds,
    /// Requests, limit hits, portal state.
    pub(crate) metrics: BitrixMetrics,
}

/// Now in unix seconds (the portal's `operating_reset_at` is wall-clock).
pub(crate) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

struct Raw {
    status: StatusCode,
    location: Option<String>,
    bytes: Bytes,
}

impl Transport {
    pub(crate) fn new(
        http: reqwest::Client,
        base: Url,
        auth: Auth,
        limiter: Limiter,
        metrics: BitrixMetrics,
    ) -> Self {
        Self {
            http,
            base: RwLock::new(base),
            auth,
            limiter: Mutex::new(limiter),
            operating: OperatingHolds::default(),
            metrics,
        }
    }

    /// Fails at once (no request) while `method`'s operating budget is exhausted.
    pub(crate) fn check_held(&self, method: Method) -> Result<(), BitrixError> {
        match self.operating.held(method.name(), unix_now()) {
            Some(until) => Err(BitrixError::held(method.name(), until)),
            None => Ok(()),
        }
    }

    /// Holds `method` after the portal answered `OPERATION_TIME_LIMIT` for it.
    pub(crate) fn hold(&self, method: &'static str) {
        self.metrics.operating_limited(method);
        let until = self.operating.hold(method, unix_now());
        warn!(
            method,
            held_for_s = until - unix_now(),
            "operating budget of the method exhausted; holding it until its reset"
        );
    }

    fn base(&self) -> Url {
        self.base.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes room in the rate limiter without waiting; `Err(wait)` when there is none.
    pub(crate) fn try_acquire(&self) -> Result<(), Duration> {
        self.limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_acquire(Instant::now())
    }

    /// Waits until the rate limiter has room for one request and takes it.
    pub(crate) async fn acquire(&self) {
        while let Err(wait) = self.try_acquire() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Sends `body` to `method`, with every recovery. `prepaid`: the caller already took room
    /// in the limiter for the first attempt. Cancel-safe (nothing is left half-done except a
    /// token refresh, which completes for the next caller).
    pub(crate) async fn exchange(
        &self,
        method: Method,
        body: &Body,
        prepaid: bool,
    ) -> Result<Answer, BitrixError> {
        let mut paid = prepaid;
        let mut refreshed = false;
        let mut rate_retries = 0;
        if !matches!(body, Body::Upload { .. }) {
            self.check_held(method)?;
        }
        loop {
            if !paid {
                self.acquire().await;
            }
            paid = false;
            if let Auth::OAuth(oauth) = &self.auth {
                oauth.ensure_tokens().await?;
            }
            let (token, generation) = self.auth.access();
            let result = self
                .send_following_redirect(method, body, token.as_ref())
                .await;
            self.metrics.observe(method.name(), &result);
            let err = match result {
                Ok(answer) => {
                    self.limiter
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .on_accepted();
                    return Ok(answer);
                }
                Err(err) => err,
            };
            match err.kind() {
                Some(ErrorKind::ExpiredToken | ErrorKind::InvalidToken) if !refreshed => {
                    if let Auth::OAuth(oauth) = &self.auth {
                        refreshed = true;
                        oauth.refresh(&self.http, generation, method).await?;
                        continue;
                    }
                }
                Some(ErrorKind::OperationTimeLimit) => self.hold(method.name()),
                Some(ErrorKind::QueryLimit) if rate_retries < RATE_RETRIES => {
                    self.metrics.rate_limited();
                    rate_retries += 1;
                    let pause = self
                        .limiter
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .on_rejected(Instant::now());
                    warn!(
                        method = method.name(),
                        attempt = rate_retries,
                        pause_ms = pause.as_millis() as u64,
                        "portal rate limit hit; backing off"
                    );
                    continue;
                }
                _ => {}
            }
            return Err(err);
        }
    }

    /// One attempt of `method` with `token` instead of the client's own credentials (a token
    /// just received, checked before it is trusted): no refresh, no retry.
    pub(crate) async fn once_with(
        &self,
        method: Method,
        body: &Body,
        token: &SecretString,
    ) -> Result<Answer, BitrixError> {
        self.acquire().await;
        let result = self
            .send_following_redirect(method, body, Some(token))
            .await;
        self.metrics.observe(method.name(), &result);
        result
    }

    async fn send_following_redirect(
        &self,
        method: Method,
        body: &Body,
        token: Option<&SecretString>,
    ) -> Result<Answer, BitrixError> {
        let url = match body {
            Body::Upload { url, .. } => url.clone(),
            _ => self
                .base()
                .join(method.name())
                .map_err(|_| BitrixError::Url {
                    what: "REST base URL",
                })?,
        };
        let raw = self.send(method, url.clone(), body, token).await?;
        let Some(status) = redirect_status(raw.status) else {
            return self.decode(method, raw);
        };
        let target = raw
            .location
            .as_deref()
            .and_then(|loc| url.join(loc).ok())
            .ok_or(BitrixError::Redirect {
                method: method.name(),
                status,
            })?;
        if !matches!(body, Body::Upload { .. }) {
            self.remember_base(method, &target);
        }
        let again = self.send(method, target, body, token).await?;
        if redirect_status(again.status).is_some() {
            return Err(BitrixError::Redirect {
                method: method.name(),
                status: again.status.as_u16(),
            });
        }
        self.decode(method, again)
    }

    /// Decodes an answer, noting the method's `operating_reset_at`.
    fn decode(&self, method: Method, raw: Raw) -> Result<Answer, BitrixError> {
        let envelope = serde_json::from_slice::<Envelope>(&raw.bytes);
        if let Some(at) = envelope
            .as_ref()
            .ok()
            .and_then(Envelope::operating_reset_at)
        {
            self.operating.observe(method.name(), at);
        }
        decode(method, raw.status, envelope)
    }

    /// A renamed portal answers with a redirect: keep POSTing to the new address from now on.
    fn remember_base(&self, method: Method, target: &Url) {
        let mut base = target.clone();
        let path = target.path();
        let new_path = path
            .strip_suffix(method.name())
            .or_else(|| path.strip_suffix(&format!("{}.json", method.name())))
            .map(str::to_owned);
        match new_path {
            Some(p) => base.set_path(&p),
            None => {
                base = self.base();
                let _ = base.set_scheme(target.scheme());
                let _ = base.set_host(target.host_str());
                let _ = base.set_port(target.port());
            }
        }
        base.set_query(None);
        warn!(
            method = method.name(),
            host = base.host_str().unwrap_or("?"),
            "portal moved; using its new address"
        );
        *self.base.write().unwrap_or_else(|p| p.into_inner()) = base;
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: &Body,
        token: Option<&SecretString>,
    ) -> Result<Raw, BitrixError> {
        // Every request carries a credential (webhook path, access token, signed upload URL):
        // never in plain http to another host, whatever a redirect or an answer said.
        if !secure_or_loopback(&url) {
            let what = match body {
                Body::Upload { .. } => "uploadUrl",
                _ => "portal REST URL",
            };
            return Err(BitrixError::Insecure { what });
        }
        let req = self
            .http
            .post(url)
            .header(reqwest::header::ACCEPT, "application/json");
        let req = match body {
            Body::Json(params) => req.json(&with_auth(params, token)),
            Body::InlineRecord(inline) => {
                inline.request(req, token.map(SecretString::expose)).await?
            }
            Body::Upload {
                field,
                path,
                filename,
                ..
            } => record::upload_request(req, method, field, path, filename).await?,
        };
        let resp = req
            .send()
            .await
            .map_err(|e| BitrixError::transport(method.name(), e))?;
        let status = resp.status();
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| BitrixError::transport(method.name(), e))?;
        Ok(Raw {
            status,
            location,
            bytes,
        })
    }
}

fn with_auth(params: &Value, token: Option<&SecretString>) -> Value {
    let mut body = params.clone();
    if let (Some(token), Some(obj)) = (token, body.as_object_mut()) {
        obj.insert(
            AUTH_PARAM.to_owned(),
            Value::String(token.expose().to_owned()),
        );
    }
    body
}

/// Redirects that fsb24 re-POSTs (303 asks for a GET, which would drop the body).
fn redirect_status(status: StatusCode) -> Option<u16> {
    matches!(status.as_u16(), 301 | 302 | 307 | 308).then_some(status.as_u16())
}

fn decode(
    method: Method,
    http: StatusCode,
    envelope: serde_json::Result<Envelope>,
) -> Result<Answer, BitrixError> {
    let status = http.as_u16();
    match envelope {
        Ok(env) if env.error.is_some() => Err(BitrixError::api(
            method.name(),
            status,
            env.error.as_deref().unwrap_or_default(),
            env.error_description.as_deref().unwrap_or_default(),
        )),
        Ok(env) if http.is_success() => match env.result {
            Some(result) => Ok(Answer {
                result,
                next: env.next,
            }),
            None => Err(BitrixError::decode(
                method.name(),
                serde::de::Error::missing_field("result"),
            )),
        },
        Ok(_) => Err(BitrixError::Status {
            method: method.name(),
            status,
        }),
        Err(_) if !http.is_success() => Err(BitrixError::Status {
            method: method.name(),
            status,
        }),
        Err(e) => Err(BitrixError::decode(method.name(), e)),
    }
}
