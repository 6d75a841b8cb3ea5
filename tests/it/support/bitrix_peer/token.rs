//! The OAuth token endpoint `/oauth/token/` (reference §3.4): `grant_type=refresh_token`
//! rotates both tokens; a used or unknown refresh token gets 400 `invalid_grant`.

use serde_json::{Value, json};

use super::auth::OAuthError;
use super::request::{Incoming, read_params};
use super::server::Outcome;
use super::state::Shared;

/// Method name under which token requests appear in the request log.
pub const TOKEN_METHOD: &str = "oauth.token";

/// Answers one token request.
pub fn endpoint(shared: &Shared, incoming: &Incoming) -> Outcome {
    let params = read_params(incoming).unwrap_or_default();
    let mut logged = params.0.clone();
    for secret in ["client_secret", "refresh_token"] {
        if logged.contains_key(secret) {
            logged.insert(secret.to_owned(), json!("<redacted>"));
        }
    }
    let (status, body) = match exchange(shared, &params) {
        Ok(body) => (axum::http::StatusCode::OK, body),
        Err(err) => (err.status(), err.body()),
    };
    Outcome::other(status, body, TOKEN_METHOD, Value::Object(logged))
}

fn exchange(shared: &Shared, params: &super::params::Params) -> Result<Value, OAuthError> {
    let opts = &shared.opts;
    if params.str("grant_type").as_deref() != Some("refresh_token") {
        return Err(OAuthError {
            code: "invalid_request",
            description: "Unsupported grant_type",
        });
    }
    if params.str("client_id").as_deref() != Some(opts.client_id.as_str())
        || params.str("client_secret").as_deref() != Some(opts.client_secret.as_str())
    {
        return Err(OAuthError {
            code: "invalid_client",
            description: "Invalid client",
        });
    }
    let refresh = params.str("refresh_token").unwrap_or_default();
    let (pair, user_id, expires) = shared.update(|st| {
        let now = st.now();
        let expires = st.now_unix() as i64 + opts.token_ttl.as_secs() as i64;
        st.tokens
            .refresh(
                &refresh,
                now,
                opts.token_ttl,
                opts.revoke_old_access_on_refresh,
            )
            .map(|(pair, user)| (pair, user, expires))
    })?;
    let endpoint = opts
        .token_answer_endpoint
        .clone()
        .unwrap_or_else(|| format!("{}/rest/", shared.base_url));
    Ok(json!({
        "access_token": pair.access,
        "refresh_token": pair.refresh,
        "expires": expires,
        "expires_in": opts.token_ttl.as_secs(),
        "scope": "telephony,crm,user",
        "domain": shared.base_url.trim_start_matches("http://"),
        "server_endpoint": endpoint,
        "client_endpoint": endpoint,
        "member_id": opts.member_id,
        "status": "L",
        "user_id": user_id,
    }))
}
