//! Credentials (reference §3): OAuth access tokens with a lifetime on the peer clock,
//! single-use rotating refresh tokens, and incoming-webhook path secrets.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::envelope::ApiError;

/// An access/refresh token pair as issued at install or by a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPair {
    /// Access token (`auth=` parameter).
    pub access: String,
    /// Refresh token for `/oauth/token/`.
    pub refresh: String,
}

/// How a request authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthKind {
    /// OAuth access token (parameter or bearer header).
    OAuth {
        /// The token as sent.
        token: String,
    },
    /// Incoming webhook path credentials.
    Webhook {
        /// User id from the path.
        user_id: u64,
        /// Secret from the path.
        secret: String,
    },
    /// No credentials.
    None,
}

impl AuthKind {
    /// Whether the request came through an incoming webhook.
    pub fn is_webhook(&self) -> bool {
        matches!(self, Self::Webhook { .. })
    }
}

#[derive(Debug)]
struct AccessToken {
    user_id: u64,
    expires_at: Instant,
    revoked: bool,
}

#[derive(Debug)]
struct RefreshToken {
    user_id: u64,
    access: String,
}

/// Why the token endpoint refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// `error` code (`invalid_grant` ...).
    pub code: &'static str,
    /// Human text.
    pub description: &'static str,
}

impl OAuthError {
    /// The JSON body (HTTP 400).
    pub fn body(&self) -> Value {
        json!({"error": self.code, "error_description": self.description})
    }

    /// HTTP status of the auth server's errors.
    pub fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }
}

/// All tokens the portal has issued.
#[derive(Debug, Default)]
pub struct Tokens {
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    refreshes: u64,
    latest: Option<TokenPair>,
}

impl Tokens {
    /// Issues a fresh pair for `user_id`, valid for `ttl` from `now` (peer clock).
    pub fn issue(&mut self, user_id: u64, now: Instant, ttl: Duration) -> TokenPair {
        let pair = TokenPair {
            access: random_token(),
            refresh: random_token(),
        };
        self.access.insert(
            pair.access.clone(),
            AccessToken {
                user_id,
                expires_at: now + ttl,
                revoked: false,
            },
        );
        self.refresh.insert(
            pair.refresh.clone(),
            RefreshToken {
                user_id,
                access: pair.access.clone(),
            },
        );
        self.latest = Some(pair.clone());
        pair
    }

    /// The user behind a valid access token at `now`.
    pub fn check(&self, token: &str, now: Instant) -> Result<u64, ApiError> {
        match self.access.get(token) {
            Some(t) if t.revoked => Err(ApiError::invalid_token()),
            Some(t) if now >= t.expires_at => Err(ApiError::expired_token()),
            Some(t) => Ok(t.user_id),
            None => Err(ApiError::invalid_token()),
        }
    }

    /// Exchanges a refresh token: both tokens rotate and the used refresh token dies.
    pub fn refresh(
        &mut self,
        refresh: &str,
        now: Instant,
        ttl: Duration,
        revoke_old_access: bool,
    ) -> Result<(TokenPair, u64), OAuthError> {
        let Some(old) = self.refresh.remove(refresh) else {
            return Err(OAuthError {
                code: "invalid_grant",
                description: "Invalid refresh token",
            });
        };
        if revoke_old_access && let Some(t) = self.access.get_mut(&old.access) {
            t.revoked = true;
        }
        self.refreshes += 1;
        Ok((self.issue(old.user_id, now, ttl), old.user_id))
    }

    /// Makes every issued access token expired as of `now`.
    pub fn expire_all(&mut self, now: Instant) {
        for token in self.access.values_mut() {
            token.expires_at = token.expires_at.min(now);
        }
    }

    /// Revokes one access token (it then answers `invalid_token`).
    pub fn revoke(&mut self, access: &str) {
        if let Some(t) = self.access.get_mut(access) {
            t.revoked = true;
        }
    }

    /// Successful refreshes so far.
    pub fn refresh_count(&self) -> u64 {
        self.refreshes
    }

    /// The most recently issued pair.
    pub fn latest(&self) -> Option<TokenPair> {
        self.latest.clone()
    }
}

/// A random 32-hex token.
pub fn random_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
