//! Hangup causes and Bitrix24 `STATUS_CODE`s: the table from esl-protocol.md §12.5 (project policy)
//! and bitrix24-telephony.md §9. Pure data and lookups; no IO, no knowledge of the ESL wire format.

use std::borrow::Cow;
use std::fmt;

/// A FreeSWITCH hangup cause by name (`USER_BUSY`, `ORIGINATOR_CANCEL`, ...). String-typed so that a
/// cause this build does not know still travels intact; the lead maps the ESL crate's cause to it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Cause(Cow<'static, str>);

impl Cause {
    /// `NORMAL_CLEARING` (16).
    pub const NORMAL_CLEARING: Cause = Cause::from_static("NORMAL_CLEARING");
    /// `NO_ANSWER` (19): the cause we kill a ringing agent leg with at the end of its step.
    pub const NO_ANSWER: Cause = Cause::from_static("NO_ANSWER");
    /// `USER_BUSY` (17).
    pub const USER_BUSY: Cause = Cause::from_static("USER_BUSY");
    /// `ORIGINATOR_CANCEL` (487): the caller gave up; also what we cancel agent legs with then.
    pub const ORIGINATOR_CANCEL: Cause = Cause::from_static("ORIGINATOR_CANCEL");
    /// `LOSE_RACE` (702): another leg of a ring-all bridge answered.
    pub const LOSE_RACE: Cause = Cause::from_static("LOSE_RACE");
    /// `NORMAL_TEMPORARY_FAILURE` (41): a session ended with an unknown disposition (SIP 503).
    pub const NORMAL_TEMPORARY_FAILURE: Cause = Cause::from_static("NORMAL_TEMPORARY_FAILURE");

    /// A cause known at compile time.
    pub const fn from_static(name: &'static str) -> Self {
        Self(Cow::Borrowed(name))
    }

    /// A cause as FreeSWITCH reported it (`Hangup-Cause`, `originate_disposition`, ...).
    pub fn new(name: impl Into<String>) -> Self {
        Self(Cow::Owned(name.into()))
    }

    /// The cause name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cause({})", self.0)
    }
}

/// A SIP response status received from the far end (`sip_term_status`,
/// `sip_invite_failure_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SipStatus(pub u16);

/// Which way the call went, as Bitrix24's `TYPE` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// A client called us (`TYPE` 2/3).
    Inbound,
    /// We called a client (`TYPE` 1/4).
    Outbound,
}

/// What `STATUS_CODE` an unanswered inbound call gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum MissedStatus {
    /// Always `304`: the only code that makes Bitrix24 count a missed call and fire its CRM
    /// triggers (bitrix24-telephony.md §6.9).
    #[default]
    Missed304,
    /// The last agent attempt's outcome (`486`, `603`, `480`, ...), as for outbound calls; the call
    /// is then not counted as missed by Bitrix24. `304` still when no attempt was made or the caller
    /// gave up.
    #[allow(
        dead_code,
        reason = "no config key selects it yet; the status table and the machine tests cover it"
    )]
    LastAttempt,
}

/// How an attempt to reach somebody (an agent leg, or the client on an outbound call) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attempt {
    /// The leg's hangup cause (or the bridge's `originate_disposition`).
    pub cause: Cause,
    /// A real SIP status received from the far end, if any.
    pub sip: Option<SipStatus>,
}

/// The `STATUS_CODE` codes Bitrix24 labels (bitrix24-telephony.md §6.9); any other code is sent as
/// `OTHER` (§9: prefer `OTHER` to an unlabelled code).
const LABELLED: &[u16] = &[200, 304, 402, 403, 404, 423, 480, 484, 486, 503, 603];

/// `STATUS_CODE` for `telephony.externalcall.finish`.
///
/// * answered (an agent leg was bridged, or `billsec > 0` on an outbound call) → `200`;
/// * unanswered inbound → `304` (or the last attempt's code with [`MissedStatus::LastAttempt`]);
/// * unanswered outbound → `603-S` when our side gave up, else the attempt's code.
pub(crate) fn finish_status(
    direction: Direction,
    answered: bool,
    caller_gave_up: bool,
    missed: MissedStatus,
    last_attempt: Option<&Attempt>,
) -> String {
    if answered {
        return "200".to_owned();
    }
    match direction {
        Direction::Inbound => match (missed, last_attempt) {
            (MissedStatus::LastAttempt, Some(attempt)) if !caller_gave_up => {
                attempt_status(attempt)
            }
            _ => "304".to_owned(),
        },
        Direction::Outbound if caller_gave_up => "603-S".to_owned(),
        Direction::Outbound => last_attempt.map_or_else(|| "OTHER".to_owned(), attempt_status),
    }
}

/// The Bitrix24 status for one failed attempt: a real SIP code first (never 487, which only says
/// somebody cancelled), else the cause per esl-protocol.md §12.5; `603-S` for a cancel; `OTHER` for
/// a code Bitrix24 has no label for.
pub(crate) fn attempt_status(attempt: &Attempt) -> String {
    if attempt.cause == Cause::ORIGINATOR_CANCEL {
        return "603-S".to_owned();
    }
    let code = match attempt.sip {
        Some(SipStatus(code)) if code >= 300 && code != 487 => code,
        _ => sip_code_for_cause(&attempt.cause),
    };
    if LABELLED.contains(&code) {
        code.to_string()
    } else {
        "OTHER".to_owned()
    }
}

/// The SIP-like code of a cause: §12.5's explicit choices, then mod_sofia's table (§12.2), whose
/// default for an unlisted cause is 480.
pub(crate) fn sip_code_for_cause(cause: &Cause) -> u16 {
    match cause.as_str() {
        // §12.5 explicit choices (they differ from §12.2 for NO_USER_RESPONSE and BUSY_EVERYWHERE).
        "USER_BUSY" | "BUSY_EVERYWHERE" => 486,
        "CALL_REJECTED" | "DECLINE" | "REJECT_ALL" => 603,
        "NO_ANSWER" | "ALLOTTED_TIMEOUT" | "NO_USER_RESPONSE" | "PROGRESS_TIMEOUT" => 480,
        "USER_NOT_REGISTERED" | "SUBSCRIBER_ABSENT" => 480,
        "UNALLOCATED_NUMBER" | "NO_ROUTE_DESTINATION" | "NO_ROUTE_TRANSIT_NET" => 404,
        "NORMAL_TEMPORARY_FAILURE"
        | "GATEWAY_DOWN"
        | "SWITCH_CONGESTION"
        | "NORMAL_CIRCUIT_CONGESTION"
        | "REQUESTED_CHAN_UNAVAIL"
        | "NETWORK_OUT_OF_ORDER"
        | "BEARERCAPABILITY_NOTAVAIL" => 503,
        "RECOVERY_ON_TIMER_EXPIRE" => 408,
        // mod_sofia (§12.2).
        "NUMBER_CHANGED" | "REDIRECTION_TO_NEW_DESTINATION" => 410,
        "DESTINATION_OUT_OF_ORDER" | "INVALID_PROFILE" => 502,
        "INVALID_NUMBER_FORMAT" | "INVALID_URL" | "INVALID_GATEWAY" => 484,
        "FACILITY_REJECTED" | "FACILITY_NOT_IMPLEMENTED" | "SERVICE_NOT_IMPLEMENTED" => 501,
        "OUTGOING_CALL_BARRED"
        | "INCOMING_CALL_BARRED"
        | "BEARERCAPABILITY_NOTAUTH"
        | "STALE_DATE" => 403,
        "BEARERCAPABILITY_NOTIMPL" | "INCOMPATIBLE_DESTINATION" => 488,
        "ORIGINATOR_CANCEL" => 487,
        "EXCHANGE_ROUTING_ERROR" => 483,
        "DOES_NOT_EXIST_ANYWHERE" => 604,
        "NOT_ACCEPTABLE" => 606,
        "UNWANTED" => 607,
        "NO_IDENTITY" => 428,
        "BAD_IDENTITY_INFO" => 429,
        "UNSUPPORTED_CERTIFICATE" => 437,
        "INVALID_IDENTITY" => 438,
        _ => 480,
    }
}

#[cfg(test)]
mod tests;
