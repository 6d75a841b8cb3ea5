//! The HTTP endpoint Bitrix24 POSTs its events to (click-to-call: `ONEXTERNALCALLSTART`).
//!
//! It verifies `auth[application_token]`, drops duplicate deliveries, checks the phone number and
//! hands a typed [`ClickToCall`] to the app over a bounded channel; it answers at once and never
//! waits on FreeSWITCH. [`serve`] runs it with the limits a listener on a public address needs: a
//! header-read timeout, a whole-request timeout, a connection cap and a per-connection request cap.

mod event;
mod serve;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};

pub use event::{ClickToCall, EventError, ParsedEvent, parse_event};
pub use serve::{Limits, serve};

use crate::ids::BitrixCallId;

/// How long a `CALL_ID` is remembered to drop duplicate deliveries (Bitrix24 sometimes delivers
/// `ONEXTERNALCALLSTART` twice; asterlink de-duplicates for 30 s).
pub const DEDUP_WINDOW: Duration = Duration::from_secs(30);

/// What the event endpoint needs. Not `Debug`: it holds the application token.
#[derive(Clone)]
pub struct EventEndpoint {
    token: Arc<str>,
    calls: mpsc::Sender<ClickToCall>,
    seen: Arc<Mutex<HashMap<BitrixCallId, Instant>>>,
}

impl EventEndpoint {
    /// `token` is the portal's `application_token`; accepted click-to-call requests go to `calls`.
    pub fn new(token: Arc<str>, calls: mpsc::Sender<ClickToCall>) -> Self {
        Self {
            token,
            calls,
            seen: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The axum router: `POST <path>` (the handler URL given to `event.bind`).
    pub fn router(self, path: &str) -> Router {
        Router::new().route(path, post(handle)).with_state(self)
    }

    /// True the first time a `CALL_ID` is seen within [`DEDUP_WINDOW`].
    fn first_delivery(&self, call: &BitrixCallId, now: Instant) -> bool {
        let mut seen = match self.seen.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        seen.retain(|_, at| now.duration_since(*at) < DEDUP_WINDOW);
        seen.insert(call.clone(), now).is_none()
    }
}

async fn handle(State(endpoint): State<EventEndpoint>, body: Bytes) -> (StatusCode, &'static str) {
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
    let click = match parsed {
        ParsedEvent::ClickToCall(click) => click,
        ParsedEvent::Other(name) => {
            tracing::debug!(event = %name, "bitrix event ignored");
            return (StatusCode::OK, "ignored");
        }
    };
    if !endpoint.first_delivery(&click.call_id, Instant::now()) {
        tracing::info!(call = %click.call_id, "duplicate click-to-call delivery dropped");
        return (StatusCode::OK, "duplicate");
    }
    match endpoint.calls.try_send(click) {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(mpsc::error::TrySendError::Full(click)) => {
            tracing::warn!(call = %click.call_id, "click-to-call queue full");
            (StatusCode::SERVICE_UNAVAILABLE, "busy")
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
        }
    }
}
