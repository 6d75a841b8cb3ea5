//! `telephony.call.attachTranscription` (reference §6.11): utterances for a finished call,
//! validated message by message in the documented order.

use serde_json::{Value, json};

use super::envelope::{ApiError, MethodOk};
use super::options::ErrorStyle;
use super::params::{Params, intval, scalar_string};
use super::state::PeerState;

/// A transcript the portal accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// The call.
    pub call_id: String,
    /// `TRANSCRIPT_ID` answered.
    pub id: u64,
    /// `MESSAGES` as received.
    pub messages: Value,
}

/// `telephony.call.attachtranscription`.
pub fn attach(st: &mut PeerState, p: &Params) -> Result<MethodOk, ApiError> {
    let style = st.switches.error_style;
    let call_id = p
        .non_empty("CALL_ID")
        .ok_or_else(|| ApiError::core(style, "CALL_ID should be set"))?;
    let Some(Value::Array(messages)) = p.raw("MESSAGES") else {
        return Err(ApiError::core(style, "MESSAGES should be an array"));
    };
    for (n, message) in messages.iter().enumerate() {
        check_message(style, n, message)?;
    }
    if st.call(&call_id).is_none_or(|c| c.finished.is_none()) {
        return Err(ApiError::core(
            style,
            format!("Call {call_id} is not found. Is it finished?"),
        ));
    }
    let id = st.next_id();
    let messages = Value::Array(messages.clone());
    st.transcripts.push(Transcript {
        call_id,
        id,
        messages,
    });
    Ok(MethodOk::of(json!({"TRANSCRIPT_ID": id})))
}

fn check_message(style: ErrorStyle, n: usize, message: &Value) -> Result<(), ApiError> {
    let get = |key: &str| message.get(key);
    let side = get("SIDE").and_then(scalar_string).unwrap_or_default();
    if side != "Client" && side != "User" {
        return Err(ApiError::core(
            style,
            format!("MESSAGES[{n}][SIDE] should be either Client or User"),
        ));
    }
    if get("START_TIME").is_none_or(|v| intval(v) < 0) {
        return Err(ApiError::core(
            style,
            format!("MESSAGES[{n}][START_TIME] should be greater or equal to zero"),
        ));
    }
    if get("STOP_TIME").is_none_or(|v| intval(v) <= 0) {
        return Err(ApiError::core(
            style,
            format!("MESSAGES[{n}][STOP_TIME] should be greater than zero"),
        ));
    }
    if get("MESSAGE")
        .and_then(scalar_string)
        .is_none_or(|m| m.trim().is_empty())
    {
        return Err(ApiError::core(
            style,
            format!("MESSAGES[{n}][MESSAGE] is empty"),
        ));
    }
    Ok(())
}
