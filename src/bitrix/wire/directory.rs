//! Supporting methods: `user.get`, `crm.*.get`, `event.*`, `batch`, and the OAuth token server.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::lenient::{self, MapOrEmpty};
use super::{ErrorBody, Flag};
use crate::ids::BitrixUserId;

/// Name of the OAuth access-token parameter in a REST body.
pub const AUTH_PARAM: &str = "auth";

/// Page size of every Bitrix24 list method.
pub const PAGE_SIZE: u64 = 50;

/// Most sub-commands one `batch` may carry (`ERROR_BATCH_LENGTH_EXCEEDED` beyond).
pub const BATCH_MAX: usize = 50;

/// One page (offset `start`) of all active users; extensions are filtered client-side because
/// how the portal filters empty `UF_PHONE_INNER` values is not documented.
pub fn active_users_params(start: u64) -> Value {
    json!({
        "FILTER": { "ACTIVE": true },
        "select": ["ID", "ACTIVE", "UF_PHONE_INNER", "NAME", "LAST_NAME"],
        "sort": "ID",
        "order": "ASC",
        "start": start,
    })
}

/// One user of a `user.get` answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    /// `ID` (a string on the wire).
    #[serde(rename = "ID")]
    pub id: BitrixUserId,
    /// `ACTIVE`.
    #[serde(
        rename = "ACTIVE",
        default = "active_default",
        deserialize_with = "lenient::flag"
    )]
    pub active: bool,
    /// `UF_PHONE_INNER`: the extension; absent, `null` or `""` when none.
    #[serde(
        rename = "UF_PHONE_INNER",
        default,
        deserialize_with = "lenient::opt_string"
    )]
    pub inner_number: Option<String>,
    /// `NAME`.
    #[serde(rename = "NAME", default, deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    /// `LAST_NAME`.
    #[serde(
        rename = "LAST_NAME",
        default,
        deserialize_with = "lenient::opt_string"
    )]
    pub last_name: Option<String>,
}

fn active_default() -> bool {
    true
}

/// `crm.{lead,contact,company,deal}.get` parameters.
pub fn crm_get_params(id: u64) -> Value {
    json!({ "id": id })
}

/// The part of a CRM entity fsb24 reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CrmEntity {
    /// `ID`.
    #[serde(rename = "ID", default, deserialize_with = "lenient::opt_u64")]
    pub id: Option<u64>,
    /// `ASSIGNED_BY_ID`: the responsible user (`"0"`/absent when none).
    #[serde(
        rename = "ASSIGNED_BY_ID",
        default,
        deserialize_with = "lenient::opt_u64"
    )]
    pub assigned_by_id: Option<u64>,
}

/// Events fsb24 subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventName {
    /// `ONEXTERNALCALLSTART`: click-to-call.
    ExternalCallStart,
    /// `ONEXTERNALCALLBACKSTART`: CRM callback form.
    ExternalCallBackStart,
}

impl EventName {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExternalCallStart => "ONEXTERNALCALLSTART",
            Self::ExternalCallBackStart => "ONEXTERNALCALLBACKSTART",
        }
    }

    /// Parses an event code case-insensitively.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_uppercase().as_str() {
            "ONEXTERNALCALLSTART" => Some(Self::ExternalCallStart),
            "ONEXTERNALCALLBACKSTART" => Some(Self::ExternalCallBackStart),
            _ => None,
        }
    }
}

/// `event.bind` parameters: online (with our public handler URL) or offline (no handler).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventBindParams {
    /// `event`.
    pub event: &'static str,
    /// `handler`: our public URL; absent for an offline binding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// `event_type`: `online` or `offline`.
    pub event_type: &'static str,
}

/// Description fragment of the `event.bind` error for a handler that is already bound: success.
pub const ALREADY_BOUND: &str = "already binded";

/// One handler from `event.get`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EventHandler {
    /// `event` (upper case).
    #[serde(default, deserialize_with = "lenient::string_or_null")]
    pub event: String,
    /// `handler` URL (absent for offline handlers).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub handler: Option<String>,
    /// `offline`: 1 for offline handlers.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub offline: bool,
}

impl EventHandler {
    /// The event, if it is one fsb24 knows.
    pub fn name(&self) -> Option<EventName> {
        EventName::parse(&self.event)
    }
}

/// `event.offline.get` parameters: up to `limit` events, oldest first, claimed for `process_id`
/// and left queued (`clear=0`) until [`OfflineClearParams`] removes them. Records claimed by the
/// same `process_id` earlier and not cleared come back too: that is what makes fetched but
/// unprocessed events survive a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfflineGetParams {
    /// `process_id`.
    pub process_id: String,
    /// `clear`: always 0; events are cleared after they are processed.
    pub clear: Flag,
    /// `limit`.
    pub limit: u32,
    /// `order`: `{"ID": "ASC"}`, the order the portal queued them in.
    pub order: Value,
}

impl OfflineGetParams {
    /// Claim up to `limit` events for `process_id`.
    pub fn new(process_id: &str, limit: u32) -> Self {
        Self {
            process_id: process_id.to_owned(),
            clear: Flag(false),
            limit,
            order: json!({"ID": "ASC"}),
        }
    }
}

/// `event.offline.clear` parameters: the records `id` of `process_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfflineClearParams {
    /// `process_id`.
    pub process_id: String,
    /// `id`: the records' `ID`s.
    pub id: Vec<u64>,
}

/// `event.offline.error` parameters: the records `message_id` of `process_id` are flagged as
/// erroneous (kept by the portal, returned only with `error=1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfflineErrorParams {
    /// `process_id`.
    pub process_id: String,
    /// `message_id`: the records' `MESSAGE_ID`s.
    pub message_id: Vec<String>,
}

/// `event.offline.get` result.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OfflineEvents {
    /// `process_id` the events were claimed for (null when they were cleared at once).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub process_id: Option<String>,
    /// `events`.
    #[serde(default, deserialize_with = "lenient::list")]
    pub events: Vec<OfflineEvent>,
}

/// One queued offline event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OfflineEvent {
    /// `ID`.
    #[serde(rename = "ID", default, deserialize_with = "lenient::opt_u64")]
    pub id: Option<u64>,
    /// `EVENT_NAME`.
    #[serde(
        rename = "EVENT_NAME",
        default,
        deserialize_with = "lenient::string_or_null"
    )]
    pub name: String,
    /// `EVENT_DATA`, as sent.
    #[serde(rename = "EVENT_DATA", default)]
    pub data: Value,
    /// `MESSAGE_ID`.
    #[serde(
        rename = "MESSAGE_ID",
        default,
        deserialize_with = "lenient::opt_string"
    )]
    pub message_id: Option<String>,
}

impl OfflineEvent {
    /// The event as the fields of an online POST (`event`, `data[KEY]`), so that both deliveries
    /// go through the same checks. Scalars become strings, as on the wire; nested values (none
    /// of the fields fsb24 reads) are left out.
    pub fn form_fields(&self) -> std::collections::HashMap<String, String> {
        let mut fields = std::collections::HashMap::new();
        fields.insert("event".to_owned(), self.name.clone());
        if let Value::Object(data) = &self.data {
            for (key, value) in data {
                let text = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
                    _ => continue,
                };
                fields.insert(format!("data[{key}]"), text);
            }
        }
        fields
    }
}

/// `batch` parameters: `cmd` maps a name to `method?query`. Names must not be numeric, or PHP
/// would turn the map into a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchParams {
    /// `halt`: 0, so one failing sub-command never cancels other calls' commands.
    pub halt: Flag,
    /// `cmd`.
    pub cmd: BTreeMap<String, String>,
}

/// The `result` of a `batch` answer. Every map may arrive as `[]` when empty.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct BatchResult {
    /// Results of the sub-commands that succeeded.
    #[serde(default)]
    pub result: MapOrEmpty<Value>,
    /// Errors of the sub-commands that failed.
    #[serde(default)]
    pub result_error: MapOrEmpty<ErrorBody>,
    /// `total` of list sub-commands.
    #[serde(default)]
    pub result_total: MapOrEmpty<Value>,
    /// `next` of list sub-commands.
    #[serde(default)]
    pub result_next: MapOrEmpty<Value>,
}

/// An OAuth token-server answer (refresh); any field may be missing on error.
#[derive(Clone, Deserialize)]
pub struct TokenAnswer {
    /// `access_token`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub access_token: Option<String>,
    /// `refresh_token`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub refresh_token: Option<String>,
    /// `expires` (unix seconds).
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub expires: Option<u64>,
    /// `client_endpoint`: the portal's REST base.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub client_endpoint: Option<String>,
    /// `server_endpoint`: the authorisation server's REST base.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub server_endpoint: Option<String>,
    /// `member_id`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub member_id: Option<String>,
    /// `error` when the refresh failed (`invalid_grant`, ...).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub error: Option<String>,
    /// `error_description`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub error_description: Option<String>,
}

impl std::fmt::Debug for TokenAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAnswer")
            .field("expires", &self.expires)
            .field("member_id", &self.member_id)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// Query parameters of a refresh request to `{server}/oauth/token/`.
pub fn refresh_query<'a>(
    client_id: &'a str,
    client_secret: &'a str,
    refresh_token: &'a str,
) -> [(&'static str, &'a str); 4] {
    [
        ("grant_type", "refresh_token"),
        ("client_id", client_id),
        ("client_secret", client_secret),
        ("refresh_token", refresh_token),
    ]
}
