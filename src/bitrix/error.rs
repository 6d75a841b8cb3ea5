//! Bitrix24 failures in the caller's terms: which method, which Bitrix24 code, and whether the
//! outbox should try again. Classification goes by HTTP status + code + a few known description
//! texts, never by `ERROR_CORE` alone (production portals send `"error": ""`).

use std::path::PathBuf;
use std::sync::Arc;

/// What kind of failure an API answer is; decides retries and special handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `QUERY_LIMIT_EXCEEDED` (503): the portal's leaky bucket overflowed. Transient.
    QueryLimit,
    /// `OVERLOAD_LIMIT` (503): blocked by Bitrix24 staff. Needs a human.
    Overload,
    /// `OPERATION_TIME_LIMIT` (429): this method's time budget is spent for a few minutes.
    OperationTimeLimit,
    /// `expired_token` (401): refresh and retry.
    ExpiredToken,
    /// `invalid_token` (401): refresh; if that fails the app must be re-authorised.
    InvalidToken,
    /// Credentials, scopes or auth type rejected (`NO_AUTH_FOUND`, `INVALID_CREDENTIALS`,
    /// `insufficient_scope`, `WRONG_AUTH_TYPE`, `ACCESS_DENIED`, ...). Configuration error.
    Auth,
    /// The app or the portal is gone (`APPLICATION_NOT_FOUND`, `PORTAL_DELETED`).
    Gone,
    /// "Call is not found": on a retried `finish` it means "already finished".
    CallNotFound,
    /// `event.bind` of a handler that is already bound: success in disguise.
    AlreadyBound,
    /// `ERROR_METHOD_NOT_FOUND` or an unknown batch method.
    MethodNotFound,
    /// A 5xx server fault (`INTERNAL_SERVER_ERROR`, `ERROR_UNEXPECTED_ANSWER`). Transient.
    Server,
    /// Any other refusal (validation, `ERROR_ARGUMENT`, `ERROR_CORE`, "Not found"...). Final.
    Rejected,
}

/// A failed Bitrix24 operation. Cheap to clone (sources are shared) so that one failed `batch`
/// can be reported to each of its callers. Never contains a secret: reqwest errors are stripped
/// of their URL (a webhook URL or `uploadUrl` carries credentials).
#[derive(Debug, Clone, thiserror::Error)]
pub enum BitrixError {
    /// The portal answered with an error envelope.
    #[error("{method}: {}: {description}", if code.is_empty() { "(no code)" } else { code.as_str() })]
    Api {
        /// The method called.
        method: &'static str,
        /// HTTP status (0 for a sub-command of a batch).
        status: u16,
        /// The Bitrix24 code, possibly empty.
        code: String,
        /// `error_description`.
        description: String,
        /// Classification.
        kind: ErrorKind,
    },
    /// No answer: connect failure, timeout, broken connection.
    #[error("{method}: request failed")]
    Transport {
        /// The method called.
        method: &'static str,
        /// The cause, without its URL.
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// An HTTP status without a Bitrix24 error envelope (a proxy's 502 page, ...).
    #[error("{method}: unexpected HTTP status {status}")]
    Status {
        /// The method called.
        method: &'static str,
        /// HTTP status.
        status: u16,
    },
    /// The answer was not the JSON we expect.
    #[error("{method}: unexpected response body")]
    Decode {
        /// The method called.
        method: &'static str,
        /// Why it did not decode.
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// A redirect fsb24 will not follow (a second hop, no usable `Location`, or 303).
    #[error("{method}: unusable redirect (HTTP {status})")]
    Redirect {
        /// The method called.
        method: &'static str,
        /// HTTP status of the redirect.
        status: u16,
    },
    /// The refresh token was refused (`invalid_grant`, `invalid_client`, ...): a human must
    /// re-authorise the application.
    #[error("{method}: re-authorisation needed: {code}: {description}")]
    Reauthorise {
        /// The method that needed a token.
        method: &'static str,
        /// The token server's code.
        code: String,
        /// Its description.
        description: String,
    },
    /// Reading or durably writing the OAuth token file failed.
    #[error("token file {}: {action} failed", path.display())]
    TokenStore {
        /// The token file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The IO error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The token file is not valid JSON of the expected shape.
    #[error("token file {}: not a valid token file", path.display())]
    TokenFile {
        /// The token file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// A recording could not be read.
    #[error("{method}: recording {}: {reason}", path.display())]
    Recording {
        /// The method called.
        method: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A URL from configuration or from the portal is unusable.
    #[error("{what}: invalid URL")]
    Url {
        /// Which URL (never the URL itself: it may carry a secret).
        what: &'static str,
    },
    /// The OAuth token file or a token answer names another portal or token server than the
    /// config: nothing is sent there (a human must check which is right).
    #[error("{what} {found:?} is not the configured {expected}")]
    EndpointMismatch {
        /// Which value disagrees (`client_endpoint of the token file`, ...).
        what: &'static str,
        /// What the file or answer said (at most 200 characters).
        found: String,
        /// The configured REST base.
        expected: String,
    },
    /// A URL that would carry a credential is not https (plain http only to this machine).
    #[error("{what}: must be an https:// URL (plain http only to this machine)")]
    Insecure {
        /// Which URL (never the URL itself: it may carry a secret).
        what: &'static str,
    },
    /// The client is shutting down; the command was not sent.
    #[error("{method}: client shut down before the request was sent")]
    Shutdown {
        /// The method called.
        method: &'static str,
    },
}

impl BitrixError {
    /// Builds an API error, classifying it by status, code and description.
    pub fn api(method: &'static str, status: u16, code: &str, description: &str) -> Self {
        Self::Api {
            method,
            status,
            code: code.to_owned(),
            description: description.to_owned(),
            kind: classify(status, code, description),
        }
    }

    /// `OPERATION_TIME_LIMIT` answered by fsb24 itself: `method` is held until `until` (unix
    /// seconds) after the portal refused it, so no request is spent on it meanwhile.
    pub fn held(method: &'static str, until: i64) -> Self {
        Self::Api {
            method,
            status: 429,
            code: "OPERATION_TIME_LIMIT".to_owned(),
            description: format!(
                "method held until unix {until}: its operating budget is exhausted (not sent)"
            ),
            kind: ErrorKind::OperationTimeLimit,
        }
    }

    /// A transport error with the URL removed (it may carry a webhook secret or a token).
    pub fn transport(method: &'static str, source: reqwest::Error) -> Self {
        Self::Transport {
            method,
            source: Arc::new(source.without_url()),
        }
    }

    /// A decode error.
    pub fn decode(method: &'static str, source: serde_json::Error) -> Self {
        Self::Decode {
            method,
            source: Arc::new(source),
        }
    }

    /// The classification of an API answer, if this is one.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Self::Api { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// Whether the credentials lack the method's scope (`insufficient_scope`).
    pub fn is_missing_scope(&self) -> bool {
        matches!(self, Self::Api { code, .. } if code.eq_ignore_ascii_case("insufficient_scope"))
    }

    /// The method the error belongs to, if any.
    pub fn method(&self) -> Option<&'static str> {
        match self {
            Self::Api { method, .. }
            | Self::Transport { method, .. }
            | Self::Status { method, .. }
            | Self::Decode { method, .. }
            | Self::Redirect { method, .. }
            | Self::Reauthorise { method, .. }
            | Self::Recording { method, .. }
            | Self::Shutdown { method } => Some(method),
            Self::TokenStore { .. }
            | Self::TokenFile { .. }
            | Self::Url { .. }
            | Self::EndpointMismatch { .. }
            | Self::Insecure { .. } => None,
        }
    }

    /// `WRONG_AUTH_TYPE`: the portal allows this method only in an application context
    /// ([`WRONG_AUTH_TYPE_ADVICE`] says what to change).
    pub fn is_wrong_auth_type(&self) -> bool {
        matches!(self, Self::Api { code, .. } if code == "WRONG_AUTH_TYPE")
    }

    /// "Call is not found": the outbox treats it as "already finished" on a retried `finish`.
    pub fn is_call_not_found(&self) -> bool {
        self.kind() == Some(ErrorKind::CallNotFound)
    }

    /// Whether the outbox should try this entry again later. `QUERY_LIMIT_EXCEEDED`,
    /// `OPERATION_TIME_LIMIT`, 5xx, timeouts and connect errors are transient; `OVERLOAD_LIMIT`
    /// (also a 503) is not: it needs a support ticket.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api { kind, .. } => matches!(
                kind,
                ErrorKind::QueryLimit | ErrorKind::OperationTimeLimit | ErrorKind::Server
            ),
            // Any failure to get an answer: the request may not have reached the portal.
            Self::Transport { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            Self::TokenStore { .. } | Self::Shutdown { .. } => true,
            Self::Decode { .. }
            | Self::Redirect { .. }
            | Self::Reauthorise { .. }
            | Self::TokenFile { .. }
            | Self::Recording { .. }
            | Self::Url { .. }
            | Self::EndpointMismatch { .. }
            | Self::Insecure { .. } => false,
        }
    }
}

/// What to change when a portal answers `WRONG_AUTH_TYPE` (bitrix24-telephony.md §3.1: the
/// documentation allows `register`/`finish` only to applications, whatever portals did so far).
pub(crate) const WRONG_AUTH_TYPE_ADVICE: &str = "this portal accepts telephony.externalcall.register \
    and finish only from an application: replace [bitrix.auth.webhook] with [bitrix.auth.oauth] \
    (a local application with the telephony, crm and user scopes; see README, Bitrix24 \
    application), restart fsb24, then run `fsb24 outbox retry` to send the refused calls";

/// Classifies an API answer. The code wins when known; otherwise known description texts;
/// otherwise the HTTP status.
pub(crate) fn classify(status: u16, code: &str, description: &str) -> ErrorKind {
    if let Some(kind) = classify_code(code) {
        return kind;
    }
    let lower = description.to_ascii_lowercase();
    // attachRecord's "Call is not found in the statistic table" means "not finished yet".
    if lower.contains("call is not found") && !lower.contains("statistic") {
        return ErrorKind::CallNotFound;
    }
    if lower.contains(crate::bitrix::wire::ALREADY_BOUND) {
        return ErrorKind::AlreadyBound;
    }
    match status {
        429 => ErrorKind::OperationTimeLimit,
        401 | 403 => ErrorKind::Auth,
        404 => ErrorKind::MethodNotFound,
        500..=599 => ErrorKind::Server,
        _ => ErrorKind::Rejected,
    }
}

fn classify_code(code: &str) -> Option<ErrorKind> {
    let kind = match code {
        "QUERY_LIMIT_EXCEEDED" => ErrorKind::QueryLimit,
        "OVERLOAD_LIMIT" => ErrorKind::Overload,
        "OPERATION_TIME_LIMIT" => ErrorKind::OperationTimeLimit,
        "expired_token" => ErrorKind::ExpiredToken,
        "invalid_token" => ErrorKind::InvalidToken,
        "NO_AUTH_FOUND"
        | "INVALID_CREDENTIALS"
        | "insufficient_scope"
        | "WRONG_AUTH_TYPE"
        | "ACCESS_DENIED"
        | "user_access_error"
        | "authorization_error"
        | "INVALID_REQUEST" => ErrorKind::Auth,
        "APPLICATION_NOT_FOUND" | "PORTAL_DELETED" => ErrorKind::Gone,
        "ERROR_METHOD_NOT_FOUND" => ErrorKind::MethodNotFound,
        "INTERNAL_SERVER_ERROR" | "ERROR_UNEXPECTED_ANSWER" => ErrorKind::Server,
        _ => return None,
    };
    Some(kind)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_status_code_and_description() {
        let cases = [
            (
                503,
                "QUERY_LIMIT_EXCEEDED",
                "Too many requests",
                ErrorKind::QueryLimit,
                true,
            ),
            (503, "OVERLOAD_LIMIT", "", ErrorKind::Overload, false),
            (
                429,
                "OPERATION_TIME_LIMIT",
                "",
                ErrorKind::OperationTimeLimit,
                true,
            ),
            (429, "", "", ErrorKind::OperationTimeLimit, true),
            (500, "INTERNAL_SERVER_ERROR", "", ErrorKind::Server, true),
            (502, "", "", ErrorKind::Server, true),
            (
                401,
                "expired_token",
                "The access token provided has expired",
                ErrorKind::ExpiredToken,
                false,
            ),
            (401, "invalid_token", "", ErrorKind::InvalidToken, false),
            (401, "NO_AUTH_FOUND", "", ErrorKind::Auth, false),
            (403, "WRONG_AUTH_TYPE", "", ErrorKind::Auth, false),
            (403, "PORTAL_DELETED", "", ErrorKind::Gone, false),
            (
                404,
                "ERROR_METHOD_NOT_FOUND",
                "Method not found!",
                ErrorKind::MethodNotFound,
                false,
            ),
            (
                400,
                "",
                "Call is not found (call should be registered prior to finishing",
                ErrorKind::CallNotFound,
                false,
            ),
            (
                400,
                "ERROR_CORE",
                "Call is not found (call should be registered prior to finishing)",
                ErrorKind::CallNotFound,
                false,
            ),
            (
                400,
                "",
                "Call is not found in the statistic table. Finish it first",
                ErrorKind::Rejected,
                false,
            ),
            (
                400,
                "ERROR_CORE",
                "Unable to set event handler: Handler already binded",
                ErrorKind::AlreadyBound,
                false,
            ),
            (400, "ERROR_ARGUMENT", "bad", ErrorKind::Rejected, false),
        ];
        for (status, code, desc, kind, retry) in cases {
            let err = BitrixError::api("m", status, code, desc);
            assert_eq!(err.kind(), Some(kind), "{status} {code:?} {desc:?}");
            assert_eq!(err.is_retryable(), retry, "{status} {code:?}");
        }
    }

    #[test]
    fn display_names_method_code_and_description() {
        let e = BitrixError::api(
            "telephony.externalcall.finish",
            400,
            "",
            "Call is not found",
        );
        assert_eq!(
            e.to_string(),
            "telephony.externalcall.finish: (no code): Call is not found"
        );
        assert!(e.is_call_not_found());
        let q = BitrixError::api("batch", 503, "QUERY_LIMIT_EXCEEDED", "Too many requests");
        assert_eq!(
            q.to_string(),
            "batch: QUERY_LIMIT_EXCEEDED: Too many requests"
        );
    }
}
