//! Parsing of Bitrix24 event POSTs (form-encoded, PHP bracket keys, every value a string).

use std::collections::HashMap;

use crate::ids::{BitrixCallId, BitrixUserId, PhoneError, PhoneNumber};

/// Why an event POST was refused.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The body is not `application/x-www-form-urlencoded`.
    #[error("event body is not form-encoded")]
    Form(#[source] serde_urlencoded::de::Error),
    /// `auth[application_token]` is missing or differs from ours.
    #[error("application_token does not match")]
    BadToken,
    /// A field the event must have is absent.
    #[error("event field {0} is missing")]
    Missing(&'static str),
    /// `data[USER_ID]` is not a number.
    #[error("event field data[USER_ID] is not a user id: {0:?}")]
    BadUser(String),
    /// The number to dial failed validation.
    #[error("event phone number refused")]
    BadPhone(#[source] PhoneError),
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

/// A verified event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedEvent {
    /// `ONEXTERNALCALLSTART`.
    ClickToCall(ClickToCall),
    /// Any other event, by name; acknowledged and ignored.
    Other(String),
}

/// Parses and verifies one event body against the portal's `application_token`.
pub fn parse_event(body: &[u8], token: &str) -> Result<ParsedEvent, EventError> {
    let fields: HashMap<String, String> =
        serde_urlencoded::from_bytes(body).map_err(EventError::Form)?;
    let get = |k: &str| fields.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let presented = get("auth[application_token]").ok_or(EventError::BadToken)?;
    if !constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        return Err(EventError::BadToken);
    }
    let name = get("event")
        .ok_or(EventError::Missing("event"))?
        .to_ascii_uppercase();
    if name != "ONEXTERNALCALLSTART" {
        return Ok(ParsedEvent::Other(name));
    }
    let call_id = get("data[CALL_ID]").ok_or(EventError::Missing("data[CALL_ID]"))?;
    let user_raw = get("data[USER_ID]").ok_or(EventError::Missing("data[USER_ID]"))?;
    let user = user_raw
        .trim()
        .parse()
        .map(BitrixUserId)
        .map_err(|_| EventError::BadUser(user_raw.to_owned()))?;
    // Dial the E.164 form when Bitrix24 gives one; the clicked text may carry formatting.
    let phone_raw = get("data[PHONE_NUMBER_INTERNATIONAL]")
        .or_else(|| get("data[PHONE_NUMBER]"))
        .ok_or(EventError::Missing("data[PHONE_NUMBER]"))?;
    let phone = PhoneNumber::parse(phone_raw).map_err(EventError::BadPhone)?;
    Ok(ParsedEvent::ClickToCall(ClickToCall {
        call_id: BitrixCallId::new(call_id),
        user,
        phone,
        line_number: get("data[LINE_NUMBER]").map(str::to_owned),
        call_list_id: get("data[CALL_LIST_ID]")
            .and_then(|v| v.parse().ok())
            .filter(|&id| id != 0),
    }))
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

    #[test]
    fn other_events_are_acknowledged_by_name() {
        let body = "event=onAppUninstall&auth[application_token]=t";
        assert_eq!(
            parse_event(body.as_bytes(), "t").unwrap(),
            ParsedEvent::Other("ONAPPUNINSTALL".into())
        );
    }
}
