//! The REST envelope (reference §2): `result` + `time` on success, `error` +
//! `error_description` on failure, with the HTTP statuses of the status table.

use axum::http::StatusCode;
use chrono::{FixedOffset, TimeZone};
use serde_json::{Value, json};

use super::options::ErrorStyle;

/// A method failure as the portal reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status of the answer.
    pub status: StatusCode,
    /// The `error` code (may be empty).
    pub code: String,
    /// The `error_description` text.
    pub description: String,
}

impl ApiError {
    /// Any error.
    pub fn new(status: StatusCode, code: &str, description: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            description: description.into(),
        }
    }

    /// A telephony business error: 400 with `ERROR_CORE` or `""` depending on the switch.
    pub fn core(style: ErrorStyle, description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, style.code(), description)
    }

    /// 400 `ERROR_ARGUMENT`.
    pub fn argument(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ERROR_ARGUMENT", description)
    }

    /// 403 `WRONG_AUTH_TYPE` for methods that need the application context.
    pub fn wrong_auth_type() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "WRONG_AUTH_TYPE",
            "Current authorization type is denied for this method",
        )
    }

    /// 404 `ERROR_METHOD_NOT_FOUND`.
    pub fn method_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ERROR_METHOD_NOT_FOUND",
            "Method not found!",
        )
    }

    /// 503 `QUERY_LIMIT_EXCEEDED`.
    pub fn query_limit() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "QUERY_LIMIT_EXCEEDED",
            "Too many requests",
        )
    }

    /// 429 `OPERATION_TIME_LIMIT`.
    pub fn operation_time_limit() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "OPERATION_TIME_LIMIT",
            "Method is blocked due to operation time limit.",
        )
    }

    /// 500 `INTERNAL_SERVER_ERROR` (outage mode).
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_SERVER_ERROR",
            "Internal server error",
        )
    }

    /// 401 `expired_token`.
    pub fn expired_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "expired_token",
            "The access token provided has expired",
        )
    }

    /// 401 `invalid_token`.
    pub fn invalid_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "The access token provided is invalid",
        )
    }

    /// 401 `NO_AUTH_FOUND`.
    pub fn no_auth() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "NO_AUTH_FOUND",
            "Wrong authorization data",
        )
    }

    /// 401 `INVALID_CREDENTIALS` (bad webhook secret).
    pub fn invalid_credentials() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_CREDENTIALS",
            "Invalid request credentials",
        )
    }

    /// The error body.
    pub fn body(&self) -> Value {
        json!({ "error": self.code, "error_description": self.description })
    }
}

/// A successful method result plus the list-method extras.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodOk {
    /// The `result` value.
    pub result: Value,
    /// Top-level `total` of list methods.
    pub total: Option<u64>,
    /// Top-level `next` of list methods.
    pub next: Option<u64>,
}

impl MethodOk {
    /// A plain result.
    pub fn of(result: Value) -> Self {
        Self {
            result,
            total: None,
            next: None,
        }
    }
}

/// Operating figures of one method for the `time` object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Operating {
    /// Seconds accumulated over the last ten minutes.
    pub operating: f64,
    /// Unix seconds when the oldest bucket drops out.
    pub reset_at: i64,
}

/// The `time` object (reference §2.1); `start`/`finish` are unix seconds on the peer clock.
pub fn time_object(
    start: f64,
    finish: f64,
    offset_secs: i32,
    operating: Option<Operating>,
) -> Value {
    let mut time = json!({
        "start": start,
        "finish": finish,
        "duration": finish - start,
        "processing": finish - start,
        "date_start": iso_date(start, offset_secs),
        "date_finish": iso_date(finish, offset_secs),
    });
    if let (Some(op), Some(map)) = (operating, time.as_object_mut()) {
        map.insert("operating".to_owned(), json!(op.operating));
        map.insert("operating_reset_at".to_owned(), json!(op.reset_at));
    }
    time
}

/// ISO 8601 with the server's offset, e.g. `2026-05-04T09:16:40+02:00`.
pub fn iso_date(unix: f64, offset_secs: i32) -> String {
    let offset = FixedOffset::east_opt(offset_secs)
        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("invariant: zero offset"));
    match offset.timestamp_opt(unix.floor() as i64, 0).single() {
        Some(date) => date.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        None => String::new(),
    }
}
