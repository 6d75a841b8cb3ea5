//! The HTTP endpoint Bitrix24 POSTs its events to (click-to-call: `ONEXTERNALCALLSTART`), and
//! the [`offline`] poller that fetches the same events when the portal cannot reach fsb24.
//!
//! It verifies `auth[application_token]`, checks every field ([`event`]), drops duplicate
//! deliveries, and hands a typed [`ClickToCall`] to the app over a bounded channel; it answers at
//! once and never waits on FreeSWITCH. [`serve`] runs it with the limits a listener on a public
//! address needs: a header-read timeout, a whole-request timeout, a connection cap and a
//! per-connection request cap; bodies over [`MAX_EVENT_BODY`] get 413.

mod event;
pub mod offline;
mod serve;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::post;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};

pub use event::{
    AppInstall, CallbackRequest, ClickToCall, EventError, MAX_EVENT_BODY, ParsedEvent, parse_event,
    parse_fields,
};
pub use serve::{Limits, serve};

use crate::ids::BitrixCallId;
use crate::phone::Numbering;

/// How long a `CALL_ID` is remembered to drop duplicate deliveries (Bitrix24 sometimes delivers
/// `ONEXTERNALCALLSTART` twice; asterlink de-duplicates for 30 s).
pub const DEDUP_WINDOW: Duration = Duration::from_secs(30);

/// What the event endpoint needs. Not `Debug`: it holds the application token.
#[derive(Clone)]
pub struct EventEndpoint {
    token: Arc<str>,
    calls: mpsc::Sender<ClickToCall>,
    callbacks: Option<mpsc::Sender<CallbackRequest>>,
    installs: Option<mpsc::Sender<AppInstall>>,
    numbering: Numbering,
    seen: Arc<Mutex<HashMap<BitrixCallId, Instant>>>,
}

/// What became of a click handed to the app.
enum HandOff {
    Accepted,
    Duplicate,
    Full,
    Closed,
}

impl EventEndpoint {
    /// `token` is the portal's `application_token`; accepted click-to-call requests go to `calls`.
    pub fn new(token: Arc<str>, calls: mpsc::Sender<ClickToCall>) -> Self {
        Self {
            token,
            calls,
            callbacks: None,
            installs: None,
            numbering: Numbering::international_only(),
            seen: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Clicked numbers are normalised with `numbering` (`[numbers]`) before they are dialled.
    #[must_use]
    pub fn with_numbering(mut self, numbering: Numbering) -> Self {
        self.numbering = numbering;
        self
    }

    /// Callback forms (`ONEXTERNALCALLBACKSTART`) go to `callbacks`; without it they are
    /// acknowledged and ignored.
    #[must_use]
    pub fn with_callbacks(mut self, callbacks: mpsc::Sender<CallbackRequest>) -> Self {
        self.callbacks = Some(callbacks);
        self
    }

    /// Installations (`ONAPPINSTALL`) go to `installs` (the local application); without it
    /// they are acknowledged and ignored.
    #[must_use]
    pub fn with_installs(mut self, installs: mpsc::Sender<AppInstall>) -> Self {
        self.installs = Some(installs);
        self
    }

    /// The axum router: `POST <path>` (the handler URL given to `event.bind`).
    pub fn router(self, path: &str) -> Router {
        Router::new()
            .route(path, post(handle))
            .layer(DefaultBodyLimit::max(MAX_EVENT_BODY))
            .with_state(self)
    }

    /// Hands `click` to the app unless its `CALL_ID` was accepted within [`DEDUP_WINDOW`]. The
    /// `CALL_ID` is remembered only once the app took the click, so a delivery refused as busy
    /// can be redelivered. Check, send and record happen under one lock (no await inside).
    fn hand_off(&self, click: ClickToCall, now: Instant) -> HandOff {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, at| now.duration_since(*at) < DEDUP_WINDOW);
        if seen.contains_key(&click.call_id) {
            return HandOff::Duplicate;
        }
        let call_id = click.call_id.clone();
        match self.calls.try_send(click) {
            Ok(()) => {
                seen.insert(call_id, now);
                HandOff::Accepted
            }
            Err(mpsc::error::TrySendError::Full(_)) => HandOff::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => HandOff::Closed,
        }
    }
}

impl EventEndpoint {
    /// Hands an installation to the installer (it verifies, stores and sets up).
    fn install(&self, install: AppInstall) -> (StatusCode, &'static str) {
        let Some(installs) = &self.installs else {
            tracing::info!("ONAPPINSTALL ignored: fsb24 does not run as a local application");
            return (StatusCode::OK, "ignored");
        };
        match installs.try_send(install) {
            Ok(()) => (StatusCode::OK, "ok"),
            Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
        }
    }

    /// Hands a callback form to the callback task (its number normalised as a click's is).
    fn callback(&self, mut callback: CallbackRequest) -> (StatusCode, &'static str) {
        let Some(callbacks) = &self.callbacks else {
            tracing::info!("callback form ignored: no [events] callback_queue");
            return (StatusCode::OK, "ignored");
        };
        callback.phone = self.numbering.normalise(&callback.phone);
        match callbacks.try_send(callback) {
            Ok(()) => (StatusCode::OK, "ok"),
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!("callback queue full");
                (StatusCode::SERVICE_UNAVAILABLE, "busy")
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
            }
        }
    }
}

async fn handle(
    State(endpoint): State<EventEndpoint>,
    body: Result<Bytes, BytesRejection>,
) -> (StatusCode, &'static str) {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            tracing::warn!(
                status = status.as_u16(),
                limit = MAX_EVENT_BODY,
                "bitrix event body not read"
            );
            return (status, "bad request body");
        }
    };
    let parsed = match parse_event(&body, &endpoint.token) {
        Ok(parsed) => parsed,
        Err(EventError::BadToken) => {
            tracing::warn!("bitrix event with a wrong application_token rejected");
            return (StatusCode::FORBIDDEN, "forbidden");
        }
        Err(err) => {
            tracing::warn!(
                error = &err as &dyn std::error::Error,
                "malformed bitrix event"
            );
            return (StatusCode::BAD_REQUEST, "bad request");
        }
    };
    let mut click = match parsed {
        ParsedEvent::ClickToCall(click) => click,
        ParsedEvent::Callback(callback) => return endpoint.callback(callback),
        ParsedEvent::Install(install) => return endpoint.install(install),
        ParsedEvent::Other(name) => {
            tracing::debug!(event = ?name, "bitrix event ignored");
            return (StatusCode::OK, "ignored");
        }
    };
    // Bitrix24's E.164 form uses the portal's country, the clicked text may have none.
    click.phone = endpoint.numbering.normalise(&click.phone);
    let call_id = click.call_id.clone();
    match endpoint.hand_off(click, Instant::now()) {
        HandOff::Accepted => (StatusCode::OK, "ok"),
        HandOff::Duplicate => {
            tracing::info!(
                call_id = call_id.as_str(),
                "duplicate click-to-call delivery dropped"
            );
            (StatusCode::OK, "duplicate")
        }
        HandOff::Full => {
            tracing::warn!(call_id = call_id.as_str(), "click-to-call queue full");
            (StatusCode::SERVICE_UNAVAILABLE, "busy")
        }
        HandOff::Closed => (StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    }
}
