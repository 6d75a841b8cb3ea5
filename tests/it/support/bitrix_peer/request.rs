//! Reading a request: the raw parts, merged parameters (query, JSON, form or multipart text
//! parts) and the credentials (auth parameter, bearer header or webhook path).

use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;

use super::auth::AuthKind;
use super::envelope::ApiError;
use super::multipart;
use super::params::Params;
use super::state::Shared;

/// One request as read off the wire.
#[derive(Debug)]
pub struct Incoming {
    /// HTTP verb.
    pub http_method: String,
    /// URI path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// Headers.
    pub headers: HeaderMap,
    /// Raw body.
    pub body: bytes::Bytes,
}

/// The token of an `Authorization: Bearer` header, when the peer accepts it.
pub fn bearer(shared: &Shared, headers: &HeaderMap) -> Option<String> {
    if !shared.opts.accept_bearer_header {
        return None;
    }
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
}

/// The acting user for these credentials, or the 401 the portal answers.
pub fn authenticate(shared: &Shared, auth: &AuthKind) -> Result<u64, ApiError> {
    match auth {
        AuthKind::Webhook { user_id, secret } => match &shared.opts.webhook {
            Some(hook) if hook.user_id == *user_id && hook.secret == *secret => Ok(*user_id),
            _ => Err(ApiError::invalid_credentials()),
        },
        AuthKind::OAuth { token } => {
            let st = shared.lock();
            st.tokens.check(token, st.now())
        }
        AuthKind::None => Err(ApiError::no_auth()),
    }
}

/// Query parameters with the body's on top (JSON, form or multipart text parts).
pub fn read_params(incoming: &Incoming) -> Result<Params, ApiError> {
    let mut params = Params::from_form(&incoming.query);
    let content_type = incoming
        .content_type
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if incoming.body.is_empty() {
        return Ok(params);
    }
    let body = if content_type.starts_with("application/json") {
        match serde_json::from_slice::<Value>(&incoming.body) {
            Ok(Value::Object(map)) => Params(map),
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_REQUEST",
                    "Invalid JSON body",
                ));
            }
        }
    } else if content_type.starts_with("multipart/form-data") {
        multipart_params(incoming)?
    } else {
        Params::from_form(&String::from_utf8_lossy(&incoming.body))
    };
    params.merge(body);
    Ok(params)
}

fn multipart_params(incoming: &Incoming) -> Result<Params, ApiError> {
    let parts = incoming
        .content_type
        .as_deref()
        .and_then(multipart::boundary)
        .and_then(|b| multipart::parse(&incoming.body, &b))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "Malformed multipart body",
            )
        })?;
    let mut params = Params::default();
    for part in parts.into_iter().filter(|p| p.filename.is_none()) {
        params.insert_form_field(&part.name, String::from_utf8_lossy(&part.data).into_owned());
    }
    Ok(params.finish_form())
}
