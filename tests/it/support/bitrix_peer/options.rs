//! Start-up options and run-time switches of the fake Bitrix24 portal.
//! Defaults follow the [doc] behaviour of the reference; [impl]/[field] variants are switches.

use std::collections::HashMap;
use std::time::Duration;

/// How telephony business errors spell their `error` code (reference §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    /// `"error": "ERROR_CORE"` as the docs list it (default).
    ErrorCore,
    /// `"error": ""` as production portals have answered.
    Empty,
}

impl ErrorStyle {
    /// The wire value of `error` for a business error.
    pub fn code(self) -> &'static str {
        match self {
            Self::ErrorCore => "ERROR_CORE",
            Self::Empty => "",
        }
    }
}

/// An incoming webhook the portal accepts: `/rest/{user_id}/{secret}/{method}`.
#[derive(Debug, Clone)]
pub struct WebhookCredential {
    /// The Bitrix24 user who created the webhook; calls run as this user.
    pub user_id: u64,
    /// The secret path segment.
    pub secret: String,
}

/// The portal's leaky bucket (reference §8.1): every request adds 1, the level drains by
/// `drain_per_sec`, a request that would lift the level above `burst` gets 503.
#[derive(Debug, Clone, Copy)]
pub struct BucketConfig {
    /// Drain rate Y in requests per second (2 for non-Enterprise plans).
    pub drain_per_sec: f64,
    /// Burst X (50 for non-Enterprise plans).
    pub burst: u32,
}

impl Default for BucketConfig {
    fn default() -> Self {
        Self {
            drain_per_sec: 2.0,
            burst: 50,
        }
    }
}

/// Per-method execution-time budget (reference §8.2), simulated: each call of a method is
/// charged `cost` (or its `per_method` entry) instead of real execution time.
#[derive(Debug, Clone)]
pub struct OperatingBudget {
    /// Budget per method over ten one-minute buckets; above it the next call gets 429.
    pub limit: Duration,
    /// Charge for one call of a method without a `per_method` entry.
    pub cost: Duration,
    /// Charges by lower-case method name.
    pub per_method: HashMap<String, Duration>,
}

/// Options for [`super::BitrixPeer::start`].
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// OAuth `client_id` the token endpoint accepts.
    pub client_id: String,
    /// OAuth `client_secret` the token endpoint accepts.
    pub client_secret: String,
    /// Portal id carried in token answers.
    pub member_id: String,
    /// User the initial OAuth token pair belongs to (the installing admin).
    pub installer_user_id: u64,
    /// Incoming webhook accepted by the portal, if any.
    pub webhook: Option<WebhookCredential>,
    /// Whether register/finish/externalLine.* refuse webhooks with 403 WRONG_AUTH_TYPE ([doc]).
    pub webhook_wrong_auth_type: bool,
    /// `ERROR_CORE` vs `""` for telephony business errors.
    pub error_style: ErrorStyle,
    /// The request-rate limit.
    pub bucket: BucketConfig,
    /// Optional per-method operating budget (off by default, as on-prem).
    pub operating: Option<OperatingBudget>,
    /// Access-token lifetime (3600 s).
    pub token_ttl: Duration,
    /// Whether a refresh also revokes the access token issued with the used refresh token ([old-doc]).
    pub revoke_old_access_on_refresh: bool,
    /// Whether `Authorization: Bearer` is accepted besides the `auth` parameter ([impl]).
    pub accept_bearer_header: bool,
    /// Application id reported in finish results (`REST_APP_ID`).
    pub app_id: u64,
    /// Application name reported in finish results (`REST_APP_NAME`).
    pub app_name: String,
    /// The portal server's UTC offset in seconds: used in `date_*` strings and for
    /// `CALL_START_DATE` values without an offset.
    pub utc_offset_secs: i32,
    /// `client_endpoint` and `server_endpoint` of token answers; `None` names the peer itself.
    /// Another value plays a token server that tries to move the client elsewhere.
    pub token_answer_endpoint: Option<String>,
}

impl Default for PeerOptions {
    fn default() -> Self {
        Self {
            client_id: "local.6650ab12cd34ef.56789012".to_owned(),
            client_secret: "peer-client-secret".to_owned(),
            member_id: "0d9f5c3b1a7e4c2f8b6a0e1d3c5b7a90".to_owned(),
            installer_user_id: 1,
            webhook: Some(WebhookCredential {
                user_id: 1,
                secret: "whsecret0123456".to_owned(),
            }),
            webhook_wrong_auth_type: true,
            error_style: ErrorStyle::ErrorCore,
            bucket: BucketConfig::default(),
            operating: None,
            token_ttl: Duration::from_secs(3600),
            revoke_old_access_on_refresh: false,
            accept_bearer_header: true,
            app_id: 5,
            app_name: "FreeSWITCH connector".to_owned(),
            utc_offset_secs: 2 * 3600,
            token_answer_endpoint: None,
        }
    }
}

/// An outage the portal can be put into with [`super::BitrixPeer::go_down`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// The listener is closed: connections are refused until `restore` re-binds the same port.
    Refuse,
    /// Every request is answered `500 INTERNAL_SERVER_ERROR`.
    Http500,
    /// Every request is answered normally, but only after this delay.
    Slow(Duration),
    /// Every request is answered `503 OVERLOAD_LIMIT` (manual block by Bitrix24 staff; not transient).
    Overload,
}

/// A one-shot failure injected for the next calls of one method ([`super::BitrixPeer::fail_next`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The call is not executed and answered with this error.
    Reject {
        /// HTTP status.
        status: u16,
        /// `error` code.
        code: String,
        /// `error_description`.
        description: String,
    },
    /// The call IS executed, but the answer is `500 INTERNAL_SERVER_ERROR` (a lost response).
    LoseResponse,
}
