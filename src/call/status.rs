//! Hangup causes and Bitrix24 `STATUS_CODE`s: the table from esl-protocol.md §12.5 (project policy)
//! and bitrix24-telephony.md §9. Pure data and lookups; no IO, no knowledge of the ESL wire format.

pub(crate) use crate::esl::Cause;
use crate::esl::HangupCause as H;

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
    match cause.known() {
        // §12.5 explicit choices (they differ from §12.2 for NO_USER_RESPONSE and BUSY_EVERYWHERE).
        Some(H::UserBusy | H::BusyEverywhere) => 486,
        Some(H::CallRejected | H::Decline | H::RejectAll) => 603,
        Some(H::NoAnswer | H::AllottedTimeout | H::NoUserResponse | H::ProgressTimeout) => 480,
        Some(H::UserNotRegistered | H::SubscriberAbsent) => 480,
        Some(H::UnallocatedNumber | H::NoRouteDestination | H::NoRouteTransitNet) => 404,
        Some(
            H::NormalTemporaryFailure
            | H::GatewayDown
            | H::SwitchCongestion
            | H::NormalCircuitCongestion
            | H::RequestedChanUnavail
            | H::NetworkOutOfOrder
            | H::BearercapabilityNotavail,
        ) => 503,
        Some(H::RecoveryOnTimerExpire) => 408,
        // mod_sofia (§12.2).
        Some(H::NumberChanged | H::RedirectionToNewDestination) => 410,
        Some(H::DestinationOutOfOrder | H::InvalidProfile) => 502,
        Some(H::InvalidNumberFormat | H::InvalidUrl | H::InvalidGateway) => 484,
        Some(H::FacilityRejected | H::FacilityNotImplemented | H::ServiceNotImplemented) => 501,
        Some(
            H::OutgoingCallBarred
            | H::IncomingCallBarred
            | H::BearercapabilityNotauth
            | H::StaleDate,
        ) => 403,
        Some(H::BearercapabilityNotimpl | H::IncompatibleDestination) => 488,
        Some(H::OriginatorCancel) => 487,
        Some(H::ExchangeRoutingError) => 483,
        Some(H::DoesNotExistAnywhere) => 604,
        Some(H::NotAcceptable) => 606,
        Some(H::Unwanted) => 607,
        Some(H::NoIdentity) => 428,
        Some(H::BadIdentityInfo) => 429,
        Some(H::UnsupportedCertificate) => 437,
        Some(H::InvalidIdentity) => 438,
        _ => 480,
    }
}

#[cfg(test)]
mod tests;
