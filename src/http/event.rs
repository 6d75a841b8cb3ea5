//! Parsing of Bitrix24 event POSTs (form-encoded, PHP bracket keys, every value a string).
//!
//! Everything in an event is untrusted until checked here: the body is at most
//! [`MAX_EVENT_BODY`] bytes, every field has a bounded name and value without control
//! characters, and the fields click-to-call uses have their own alphabet (`CALL_ID` is
//! `externalCall.<hex>.<digits>`, at most 128 bytes). Errors name the field, never echo its value.

use std::collections::HashMap;

use crate::bitrix::SecretString;
use crate::bitrix::wire::CrmEntityType;
use crate::ids::{BitrixCallId, BitrixUserId, PhoneError, PhoneNumber};

/// The largest event body accepted (real ones are about 1 KiB).
pub const MAX_EVENT_BODY: usize = 64 * 1024;
/// Most fields an event may have (real ones have about 20).
const MAX_FIELDS: usize = 128;
/// Longest field name (`auth[application_token]` is 23).
const MAX_KEY: usize = 64;
/// Longest value of any field (access tokens are about 70 characters).
const MAX_VALUE: usize = 1024;
/// Longest event name (`ONEXTERNALCALLBACKSTART` is 23).
const MAX_EVENT_NAME: usize = 64;
/// Longest phone number as clicked, formatting included.
const MAX_PHONE: usize = 64;

/// Why an event POST was refused.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The body exceeds [`MAX_EVENT_BODY`].
    #[error("event body of {0} bytes exceeds {MAX_EVENT_BODY}")]
    TooLarge(usize),
    /// The body is not `application/x-www-form-urlencoded`.
    #[error("event body is not form-encoded")]
    Form(#[source] serde_urlencoded::de::Error),
    /// `auth[application_token]` is missing or differs from ours.
    #[error("application_token does not match")]
    BadToken,
    /// A field the event must have is absent.
    #[error("event field {0} is missing")]
    Missing(&'static str),
    /// A field breaks its rule. `field` is the field's name, shortened, or a placeholder.
    #[error("event field {field:?} refused: {reason}")]
    Invalid {
        /// The field's name: at most 64 printable ASCII characters of it.
        field: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The number to dial failed validation.
    #[error("event phone number refused")]
    BadPhone(#[source] PhoneError),
}

impl EventError {
    /// A refusal naming `field`: at most 64 characters of it, and only when it is printable
    /// ASCII (a name is input too; an exotic one is not shown).
    fn invalid(field: &str, reason: &'static str) -> Self {
        let shown: String = field.chars().take(MAX_KEY).collect();
        let field = if shown.chars().all(|c| c.is_ascii_graphic()) {
            shown
        } else {
            "(unprintable name)".to_owned()
        };
        Self::Invalid { field, reason }
    }
}

/// A click in the CRM: Bitrix24 has registered the call already (`CALL_ID`); we dial it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickToCall {
    /// Bitrix24's call id, to finish later.
    pub call_id: BitrixCallId,
    /// The employee who clicked.
    pub user: BitrixUserId,
    /// The number to dial (E.164 form when Bitrix24 supplied one).
    pub phone: PhoneNumber,
    /// The app line the user chose, if any.
    pub line_number: Option<String>,
    /// The call list, if the click came from one.
    pub call_list_id: Option<u64>,
}

/// A callback form (`ONEXTERNALCALLBACKSTART`): call the customer, then hand them to a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRequest {
    /// The number to call back (normalised like a clicked one before it is dialled).
    pub phone: PhoneNumber,
    /// The app line selected in the form, if any.
    pub line_number: Option<String>,
    /// The CRM entity the form created or found, if any.
    pub crm: Option<(CrmEntityType, u64)>,
}

/// The local application was installed (`ONAPPINSTALL`): its first tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppInstall {
    /// `auth[access_token]`.
    pub access_token: SecretString,
    /// `auth[refresh_token]`.
    pub refresh_token: SecretString,
    /// `auth[expires_in]` (seconds).
    pub expires_in: Option<u64>,
    /// `auth[member_id]`: the portal's stable id.
    pub member_id: String,
    /// `auth[client_endpoint]`: the portal's REST base.
    pub client_endpoint: String,
    /// `auth[server_endpoint]`: the authorisation server's REST base.
    pub server_endpoint: String,
}

/// A verified event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedEvent {
    /// `ONAPPINSTALL`.
    Install(AppInstall),
    /// `ONEXTERNALCALLSTART`.
    ClickToCall(ClickToCall),
    /// `ONEXTERNALCALLBACKSTART`.
    Callback(CallbackRequest),
    /// Any other event, by name; acknowledged and ignored.
    Other(String),
}

/// Parses and verifies one event body against the portal's `application_token`.
pub fn parse_event(body: &[u8], token: &str) -> Result<ParsedEvent, EventError> {
    if body.len() > MAX_EVENT_BODY {
        return Err(EventError::TooLarge(body.len()));
    }
    let fields: HashMap<String, String> =
        serde_urlencoded::from_bytes(body).map_err(EventError::Form)?;
    let get = |k: &str| fields.get(k).map(String::as_str).filter(|v| !v.is_empty());
    // The token first: whoever lacks it learns nothing about the other rules.
    let presented = get("auth[application_token]").ok_or(EventError::BadToken)?;
    if !constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        return Err(EventError::BadToken);
    }
    parse_fields(&fields)
}

/// The checks after the token, on the fields of an event: those of a POST, or those of an
/// offline event fsb24 fetched itself with its own credentials (`event.offline.get`, no token).
pub fn parse_fields(fields: &HashMap<String, String>) -> Result<ParsedEvent, EventError> {
    let get = |k: &str| fields.get(k).map(String::as_str).filter(|v| !v.is_empty());
    check_fields(fields)?;
    let name = get("event").ok_or(EventError::Missing("event"))?;
    if name.len() > MAX_EVENT_NAME || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(EventError::invalid("event", "not an event name"));
    }
    let name = name.to_ascii_uppercase();
    if name == "ONEXTERNALCALLBACKSTART" {
        return parse_callback(fields).map(ParsedEvent::Callback);
    }
    if name == "ONAPPINSTALL" {
        return parse_install(fields).map(ParsedEvent::Install);
    }
    if name != "ONEXTERNALCALLSTART" {
        return Ok(ParsedEvent::Other(name));
    }
    let call_id = get("data[CALL_ID]").ok_or(EventError::Missing("data[CALL_ID]"))?;
    let call_id = BitrixCallId::parse(call_id).ok_or_else(|| {
        EventError::invalid(
            "data[CALL_ID]",
            "not externalCall.<hex>.<digits> of at most 128 bytes",
        )
    })?;
    let user = get("data[USER_ID]").ok_or(EventError::Missing("data[USER_ID]"))?;
    let user = digits(user, 20)
        .and_then(|d| d.parse().ok())
        .map(BitrixUserId)
        .ok_or_else(|| EventError::invalid("data[USER_ID]", "not a user id"))?;
    for key in ["data[PHONE_NUMBER]", "data[PHONE_NUMBER_INTERNATIONAL]"] {
        if get(key).is_some_and(|v| v.len() > MAX_PHONE) {
            return Err(EventError::invalid(key, "longer than 64 bytes"));
        }
    }
    // Dial the E.164 form when Bitrix24 gives one; the clicked text may carry formatting.
    let phone_raw = get("data[PHONE_NUMBER_INTERNATIONAL]")
        .or_else(|| get("data[PHONE_NUMBER]"))
        .ok_or(EventError::Missing("data[PHONE_NUMBER]"))?;
    let phone = PhoneNumber::parse(phone_raw).map_err(EventError::BadPhone)?;
    let line_number = line_number(fields)?;
    let call_list_id = match get("data[CALL_LIST_ID]") {
        None => None,
        Some(raw) => digits(raw, 20)
            .and_then(|d| d.parse::<u64>().ok())
            .ok_or_else(|| EventError::invalid("data[CALL_LIST_ID]", "not a number"))
            .map(|id| (id != 0).then_some(id))?,
    };
    Ok(ParsedEvent::ClickToCall(ClickToCall {
        call_id,
        user,
        phone,
        line_number,
        call_list_id,
    }))
}

/// `ONEXTERNALCALLBACKSTART` (no `CALL_ID`): the number to call back, the form's line and its
/// CRM entity (`CRM_ENTITY_ID` 0 or absent: none).
fn parse_callback(fields: &HashMap<String, String>) -> Result<CallbackRequest, EventError> {
    let get = |k: &str| fields.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let raw = get("data[PHONE_NUMBER]").ok_or(EventError::Missing("data[PHONE_NUMBER]"))?;
    if raw.len() > MAX_PHONE {
        return Err(EventError::invalid(
            "data[PHONE_NUMBER]",
            "longer than 64 bytes",
        ));
    }
    let phone = PhoneNumber::parse(raw).map_err(EventError::BadPhone)?;
    let id = match get("data[CRM_ENTITY_ID]") {
        None => 0,
        Some(raw) => digits(raw, 20)
            .and_then(|d| d.parse::<u64>().ok())
            .ok_or_else(|| EventError::invalid("data[CRM_ENTITY_ID]", "not a number"))?,
    };
    let crm = match (get("data[CRM_ENTITY_TYPE]"), id) {
        (_, 0) | (None, _) => None,
        (Some(kind), id) => Some((
            CrmEntityType::parse(kind).ok_or_else(|| {
                EventError::invalid(
                    "data[CRM_ENTITY_TYPE]",
                    "not LEAD, CONTACT, COMPANY or DEAL",
                )
            })?,
            id,
        )),
    };
    Ok(CallbackRequest {
        phone,
        line_number: line_number(fields)?,
        crm,
    })
}

/// `ONAPPINSTALL`: the installation's first tokens (reference §3.2). Endpoints are kept as
/// sent; the installer accepts only the configured ones.
fn parse_install(fields: &HashMap<String, String>) -> Result<AppInstall, EventError> {
    let get = |k: &'static str| {
        fields
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or(EventError::Missing(k))
    };
    let token = |k: &'static str| {
        let v = get(k)?;
        if v.len() > 256 || !v.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(EventError::invalid(k, "not a token"));
        }
        Ok(SecretString::new(v))
    };
    let member_id = get("auth[member_id]")?;
    if member_id.len() > 64 || !member_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(EventError::invalid("auth[member_id]", "not a portal id"));
    }
    let expires_in = match fields.get("auth[expires_in]") {
        None => None,
        Some(raw) => Some(
            digits(raw, 10)
                .and_then(|d| d.parse::<u64>().ok())
                .ok_or_else(|| EventError::invalid("auth[expires_in]", "not a number"))?,
        ),
    };
    Ok(AppInstall {
        access_token: token("auth[access_token]")?,
        refresh_token: token("auth[refresh_token]")?,
        expires_in,
        member_id: member_id.to_owned(),
        client_endpoint: get("auth[client_endpoint]")?.to_owned(),
        server_endpoint: get("auth[server_endpoint]")?.to_owned(),
    })
}

/// `data[LINE_NUMBER]`: 1-64 characters, or absent.
fn line_number(fields: &HashMap<String, String>) -> Result<Option<String>, EventError> {
    match fields.get("data[LINE_NUMBER]").map(String::as_str) {
        None | Some("") => Ok(None),
        Some(line) if line.len() > 64 || line.trim().is_empty() => Err(EventError::invalid(
            "data[LINE_NUMBER]",
            "not 1-64 printable characters",
        )),
        Some(line) => Ok(Some(line.to_owned())),
    }
}

/// The rule every field follows, whether fsb24 uses it or not: a bounded name and value, and no
/// control characters (nothing in an event can forge a log line or a header).
fn check_fields(fields: &HashMap<String, String>) -> Result<(), EventError> {
    if fields.len() > MAX_FIELDS {
        return Err(EventError::invalid("(event)", "more than 128 fields"));
    }
    for (key, value) in fields {
        if key.is_empty() || key.len() > MAX_KEY || key.chars().any(char::is_control) {
            return Err(EventError::invalid(
                key,
                "field name is empty, too long or unprintable",
            ));
        }
        if value.len() > MAX_VALUE {
            return Err(EventError::invalid(key, "value longer than 1024 bytes"));
        }
        if value.chars().any(char::is_control) {
            return Err(EventError::invalid(
                key,
                "value contains a control character",
            ));
        }
    }
    Ok(())
}

/// `raw` (trimmed) when it is 1 to `max` ASCII digits.
fn digits(raw: &str, max: usize) -> Option<&str> {
    let d = raw.trim();
    (!d.is_empty() && d.len() <= max && d.bytes().all(|b| b.is_ascii_digit())).then_some(d)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SAMPLE: &str = "event=ONEXTERNALCALLSTART&event_handler_id=88&ts=1777879100\
        &data[PHONE_NUMBER]=%2B49%2030%20123456789&data[PHONE_NUMBER_INTERNATIONAL]=%2B4930123456789\
        &data[EXTENSION]=&data[USER_ID]=17&data[CALL_LIST_ID]=0&data[LINE_NUMBER]=4930555000\
        &data[IS_MOBILE]=0&data[CALL_ID]=externalCall.7d1e9a.1777879099\
        &data[CRM_ENTITY_TYPE]=CONTACT&data[CRM_ENTITY_ID]=311\
        &auth[domain]=acme.bitrix24.de&auth[member_id]=0d9f90&auth[application_token]=2c6e81";

    #[test]
    fn the_documented_click_to_call_event_parses() {
        let parsed = parse_event(SAMPLE.as_bytes(), "2c6e81").unwrap();
        assert_eq!(
            parsed,
            ParsedEvent::ClickToCall(ClickToCall {
                call_id: BitrixCallId::new("externalCall.7d1e9a.1777879099"),
                user: BitrixUserId(17),
                phone: PhoneNumber::parse("+4930123456789").unwrap(),
                line_number: Some("4930555000".into()),
                call_list_id: None,
            })
        );
    }

    #[test]
    fn a_wrong_or_missing_token_is_refused() {
        assert!(matches!(
            parse_event(SAMPLE.as_bytes(), "other"),
            Err(EventError::BadToken)
        ));
        assert!(matches!(
            parse_event(b"event=ONEXTERNALCALLSTART", "x"),
            Err(EventError::BadToken)
        ));
    }

    #[test]
    fn a_number_that_could_reach_a_dial_string_is_refused() {
        let body = SAMPLE.replace("%2B4930123456789", "123%2Cuser%2F1001");
        assert!(matches!(
            parse_event(body.as_bytes(), "2c6e81"),
            Err(EventError::BadPhone(_))
        ));
    }

    fn refusal(body: &str) -> EventError {
        parse_event(body.as_bytes(), "2c6e81").unwrap_err()
    }

    #[test]
    fn every_field_is_bounded_and_checked_and_errors_never_echo_the_value() {
        let huge = "f".repeat(5000);
        let cases = [
            (
                SAMPLE.replace("7d1e9a.1777879099", &format!("{huge}.1")),
                "data[CALL_ID]",
            ),
            (
                SAMPLE.replace("7d1e9a.1777879099", "7d1e9a.1777879099%0AFORGED"),
                "data[CALL_ID]",
            ),
            (
                SAMPLE.replace("externalCall.7d1e9a", "other.7d1e9a"),
                "data[CALL_ID]",
            ),
            (
                SAMPLE.replace("USER_ID]=17", &format!("USER_ID]=1{huge}")),
                "data[USER_ID]",
            ),
            (
                SAMPLE.replace("LINE_NUMBER]=4930555000", &format!("LINE_NUMBER]={huge}")),
                "data[LINE_NUMBER]",
            ),
            (
                SAMPLE.replace(
                    "LINE_NUMBER]=4930555000",
                    &format!("LINE_NUMBER]={}", "7".repeat(65)),
                ),
                "data[LINE_NUMBER]",
            ),
            (
                SAMPLE.replace("CALL_LIST_ID]=0", "CALL_LIST_ID]=x"),
                "data[CALL_LIST_ID]",
            ),
            (
                SAMPLE.replace(
                    "PHONE_NUMBER]=%2B49",
                    &format!("PHONE_NUMBER]={}%2B49", " ".repeat(100)),
                ),
                "data[PHONE_NUMBER]",
            ),
            (
                format!("{SAMPLE}&data[CRM_CREATED_LEAD]={huge}"),
                "data[CRM_CREATED_LEAD]",
            ),
            (format!("{SAMPLE}&data[NOTE]=a%1B%5B31mred"), "data[NOTE]"),
            (format!("{SAMPLE}&data[{}]=1", "K".repeat(70)), "data[KKKK"),
            (
                SAMPLE.replace("event=ONEXTERNALCALLSTART", "event=ON%0AX"),
                "event",
            ),
        ];
        for (body, field) in cases {
            let err = refusal(&body);
            let shown = err.to_string();
            assert!(
                matches!(&err, EventError::Invalid { field: f, .. } if f.starts_with(field)),
                "{field}: {err:?}"
            );
            assert!(shown.len() < 200, "{field}: error too long: {shown}");
            for echoed in ["fff", "FORGED", "red", "777777"] {
                assert!(!shown.contains(echoed), "{field}: value echoed in {shown}");
            }
        }
        let many: String = (0..200).map(|i| format!("&x{i}=1")).collect();
        assert!(matches!(
            refusal(&format!("{SAMPLE}{many}")),
            EventError::Invalid { .. }
        ));
        let body = format!("{SAMPLE}&pad={}", "p".repeat(MAX_EVENT_BODY));
        assert!(matches!(refusal(&body), EventError::TooLarge(_)));
    }

    #[test]
    fn field_checks_come_after_the_token_check() {
        let body = format!("{SAMPLE}&data[NOTE]={}", "x".repeat(5000));
        assert!(matches!(
            parse_event(body.as_bytes(), "wrong"),
            Err(EventError::BadToken)
        ));
    }

    #[test]
    fn other_events_are_acknowledged_by_name() {
        let body = "event=onAppUninstall&auth[application_token]=t";
        assert_eq!(
            parse_event(body.as_bytes(), "t").unwrap(),
            ParsedEvent::Other("ONAPPUNINSTALL".into())
        );
    }
}
