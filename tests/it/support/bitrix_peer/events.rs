//! `event.bind/get/unbind` (reference §5): application context only. The offline queue is in
//! `offline.rs`.

use serde_json::{Value, json};

use super::envelope::{ApiError, MethodOk};
use super::methods::Ctx;
use super::params::Params;
use super::state::{EventBinding, PeerState};

const KNOWN_EVENTS: [&str; 6] = [
    "ONEXTERNALCALLSTART",
    "ONEXTERNALCALLBACKSTART",
    "ONAPPINSTALL",
    "ONAPPUNINSTALL",
    "ONAPPUPDATE",
    "ONOFFLINEEVENT",
];

fn guard(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.auth.is_webhook() {
        Err(ApiError::wrong_auth_type())
    } else {
        Ok(())
    }
}

struct Target {
    event: String,
    handler: String,
    auth_type: u64,
    offline: bool,
}

fn target(p: &Params, need_handler: bool) -> Result<Target, ApiError> {
    let event = p
        .non_empty("event")
        .or_else(|| p.non_empty("EVENT"))
        .map(|e| e.to_ascii_uppercase());
    let event = event.ok_or_else(|| ApiError::argument("Argument 'event' is null or empty"))?;
    let offline = match p.str("event_type").map(|t| t.to_ascii_lowercase()) {
        None => false,
        Some(t) if t == "online" => false,
        Some(t) if t == "offline" => true,
        Some(_) => {
            return Err(ApiError::argument(
                "Value of argument 'event_type' is not supported",
            ));
        }
    };
    let handler = p
        .non_empty("handler")
        .or_else(|| p.non_empty("HANDLER"))
        .unwrap_or_default();
    if need_handler && !offline && handler.is_empty() {
        return Err(ApiError::argument("Argument 'handler' is null or empty"));
    }
    let auth_type = p.int("auth_type").unwrap_or(0).max(0) as u64;
    Ok(Target {
        event,
        handler,
        auth_type,
        offline,
    })
}

fn valid_handler(handler: &str) -> Result<(), ApiError> {
    let Ok(url) = url::Url::parse(handler) else {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "ERROR_WRONG_HANDLER_URL",
            "Wrong handler URL",
        ));
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "ERROR_UNSUPPORTED_PROTOCOL",
            "Unsupported event handler protocol",
        ));
    }
    if !url.host_str().is_some_and(|h| h.contains('.')) {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "ERROR_WRONG_HANDLER_URL",
            "Wrong handler URL",
        ));
    }
    Ok(())
}

/// `event.bind`.
pub fn bind(st: &mut PeerState, ctx: &Ctx, p: &Params) -> Result<MethodOk, ApiError> {
    guard(ctx)?;
    let t = target(p, true)?;
    if !KNOWN_EVENTS.contains(&t.event.as_str()) {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "ERROR_EVENT_NOT_FOUND",
            "Event not found",
        ));
    }
    if !t.offline {
        valid_handler(&t.handler)?;
    }
    let binding = EventBinding {
        event: t.event,
        handler: t.handler,
        auth_type: t.auth_type,
        offline: t.offline,
    };
    if st.events.contains(&binding) {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "ERROR_CORE",
            "Unable to set event handler: Handler already binded",
        ));
    }
    st.events.push(binding);
    Ok(MethodOk::of(json!(true)))
}

/// `event.unbind`: removes matching bindings, answers their count.
pub fn unbind(st: &mut PeerState, ctx: &Ctx, p: &Params) -> Result<MethodOk, ApiError> {
    guard(ctx)?;
    let t = target(p, true)?;
    let auth_given = p.raw("auth_type").is_some();
    let before = st.events.len();
    st.events.retain(|b| {
        !(b.event == t.event
            && b.handler == t.handler
            && b.offline == t.offline
            && (!auth_given || b.auth_type == t.auth_type))
    });
    Ok(MethodOk::of(json!({"count": before - st.events.len()})))
}

/// `event.get`.
pub fn get(st: &PeerState, ctx: &Ctx) -> Result<MethodOk, ApiError> {
    guard(ctx)?;
    let items: Vec<Value> = st
        .events
        .iter()
        .map(|b| {
            if b.offline {
                json!({"event": b.event, "connector_id": "", "offline": 1})
            } else {
                json!({"event": b.event, "handler": b.handler, "auth_type": b.auth_type.to_string(), "offline": 0})
            }
        })
        .collect();
    Ok(MethodOk::of(Value::Array(items)))
}
