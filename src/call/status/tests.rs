//! Unit tests of `call::status`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// Every cause of esl-protocol.md §12.1 with its number and the status of a failed attempt with that
/// cause (used for outbound calls and for [`MissedStatus::LastAttempt`]).
const CAUSES: &[(&str, u16, &str)] = &[
    ("NONE", 0, "480"),
    ("UNALLOCATED_NUMBER", 1, "404"),
    ("NO_ROUTE_TRANSIT_NET", 2, "404"),
    ("NO_ROUTE_DESTINATION", 3, "404"),
    ("CHANNEL_UNACCEPTABLE", 6, "480"),
    ("CALL_AWARDED_DELIVERED", 7, "480"),
    ("NORMAL_CLEARING", 16, "480"),
    ("USER_BUSY", 17, "486"),
    ("NO_USER_RESPONSE", 18, "480"),
    ("NO_ANSWER", 19, "480"),
    ("SUBSCRIBER_ABSENT", 20, "480"),
    ("CALL_REJECTED", 21, "603"),
    ("NUMBER_CHANGED", 22, "OTHER"),
    ("REDIRECTION_TO_NEW_DESTINATION", 23, "OTHER"),
    ("EXCHANGE_ROUTING_ERROR", 25, "OTHER"),
    ("DESTINATION_OUT_OF_ORDER", 27, "OTHER"),
    ("INVALID_NUMBER_FORMAT", 28, "484"),
    ("FACILITY_REJECTED", 29, "OTHER"),
    ("RESPONSE_TO_STATUS_ENQUIRY", 30, "480"),
    ("NORMAL_UNSPECIFIED", 31, "480"),
    ("NORMAL_CIRCUIT_CONGESTION", 34, "503"),
    ("NETWORK_OUT_OF_ORDER", 38, "503"),
    ("NORMAL_TEMPORARY_FAILURE", 41, "503"),
    ("SWITCH_CONGESTION", 42, "503"),
    ("ACCESS_INFO_DISCARDED", 43, "480"),
    ("REQUESTED_CHAN_UNAVAIL", 44, "503"),
    ("PRE_EMPTED", 45, "480"),
    ("FACILITY_NOT_SUBSCRIBED", 50, "480"),
    ("OUTGOING_CALL_BARRED", 52, "403"),
    ("INCOMING_CALL_BARRED", 54, "403"),
    ("BEARERCAPABILITY_NOTAUTH", 57, "403"),
    ("BEARERCAPABILITY_NOTAVAIL", 58, "503"),
    ("SERVICE_UNAVAILABLE", 63, "480"),
    ("BEARERCAPABILITY_NOTIMPL", 65, "OTHER"),
    ("CHAN_NOT_IMPLEMENTED", 66, "480"),
    ("FACILITY_NOT_IMPLEMENTED", 69, "OTHER"),
    ("SERVICE_NOT_IMPLEMENTED", 79, "OTHER"),
    ("INVALID_CALL_REFERENCE", 81, "480"),
    ("INCOMPATIBLE_DESTINATION", 88, "OTHER"),
    ("INVALID_MSG_UNSPECIFIED", 95, "480"),
    ("MANDATORY_IE_MISSING", 96, "480"),
    ("MESSAGE_TYPE_NONEXIST", 97, "480"),
    ("WRONG_MESSAGE", 98, "480"),
    ("IE_NONEXIST", 99, "480"),
    ("INVALID_IE_CONTENTS", 100, "480"),
    ("WRONG_CALL_STATE", 101, "480"),
    ("RECOVERY_ON_TIMER_EXPIRE", 102, "OTHER"),
    ("MANDATORY_IE_LENGTH_ERROR", 103, "480"),
    ("PROTOCOL_ERROR", 111, "480"),
    ("INTERWORKING", 127, "480"),
    ("SUCCESS", 142, "480"),
    ("ORIGINATOR_CANCEL", 487, "603-S"),
    ("CRASH", 700, "480"),
    ("SYSTEM_SHUTDOWN", 701, "480"),
    ("LOSE_RACE", 702, "480"),
    ("MANAGER_REQUEST", 703, "480"),
    ("BLIND_TRANSFER", 800, "480"),
    ("ATTENDED_TRANSFER", 801, "480"),
    ("ALLOTTED_TIMEOUT", 802, "480"),
    ("USER_CHALLENGE", 803, "480"),
    ("MEDIA_TIMEOUT", 804, "480"),
    ("PICKED_OFF", 805, "480"),
    ("USER_NOT_REGISTERED", 806, "480"),
    ("PROGRESS_TIMEOUT", 807, "480"),
    ("INVALID_GATEWAY", 808, "484"),
    ("GATEWAY_DOWN", 809, "503"),
    ("INVALID_URL", 810, "484"),
    ("INVALID_PROFILE", 811, "OTHER"),
    ("NO_PICKUP", 812, "480"),
    ("SRTP_READ_ERROR", 813, "480"),
    ("BOWOUT", 814, "480"),
    ("BUSY_EVERYWHERE", 815, "486"),
    ("DECLINE", 816, "603"),
    ("DOES_NOT_EXIST_ANYWHERE", 817, "OTHER"),
    ("NOT_ACCEPTABLE", 818, "OTHER"),
    ("UNWANTED", 819, "OTHER"),
    ("NO_IDENTITY", 820, "OTHER"),
    ("BAD_IDENTITY_INFO", 821, "OTHER"),
    ("UNSUPPORTED_CERTIFICATE", 822, "OTHER"),
    ("INVALID_IDENTITY", 823, "OTHER"),
    ("STALE_DATE", 824, "403"),
    ("REJECT_ALL", 825, "603"),
];

fn attempt(cause: &str, sip: Option<u16>) -> Attempt {
    Attempt {
        cause: Cause::parse(cause),
        sip: sip.map(SipStatus),
    }
}

#[test]
fn the_table_lists_every_cause_of_section_12_1_once() {
    assert_eq!(CAUSES.len(), 82);
    let mut names: Vec<_> = CAUSES.iter().map(|(n, _, _)| *n).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CAUSES.len());
}

#[test]
fn every_cause_gives_200_when_answered_and_304_when_an_inbound_call_was_missed() {
    for (name, _, _) in CAUSES {
        let last = attempt(name, None);
        for missed in [MissedStatus::Missed304, MissedStatus::LastAttempt] {
            let answered = finish_status(Direction::Inbound, true, false, missed, Some(&last));
            assert_eq!(answered, "200", "{name} answered");
        }
        let missed = finish_status(
            Direction::Inbound,
            false,
            false,
            MissedStatus::Missed304,
            Some(&last),
        );
        assert_eq!(missed, "304", "{name} missed inbound");
        let gave_up = finish_status(
            Direction::Inbound,
            false,
            true,
            MissedStatus::LastAttempt,
            Some(&last),
        );
        assert_eq!(
            gave_up, "304",
            "{name}: a caller who gave up is a missed call"
        );
    }
}

#[test]
fn every_cause_maps_to_its_attempt_status_for_outbound_and_last_attempt_policy() {
    for (name, _, expected) in CAUSES {
        let last = attempt(name, None);
        assert_eq!(attempt_status(&last), *expected, "{name}");
        let outbound = finish_status(
            Direction::Outbound,
            false,
            false,
            MissedStatus::default(),
            Some(&last),
        );
        assert_eq!(outbound, *expected, "{name} outbound");
        let inbound = finish_status(
            Direction::Inbound,
            false,
            false,
            MissedStatus::LastAttempt,
            Some(&last),
        );
        assert_eq!(
            inbound, *expected,
            "{name} inbound with last-attempt policy"
        );
    }
}

#[test]
fn a_received_sip_status_wins_over_the_cause() {
    assert_eq!(
        attempt_status(&attempt("NORMAL_UNSPECIFIED", Some(486))),
        "486"
    );
    assert_eq!(attempt_status(&attempt("CALL_REJECTED", Some(403))), "403");
    // An unlabelled SIP code is sent as OTHER rather than a code Bitrix24 cannot render.
    assert_eq!(attempt_status(&attempt("USER_BUSY", Some(600))), "OTHER");
}

#[test]
fn a_487_or_a_provisional_status_is_not_a_result_and_the_cause_decides() {
    assert_eq!(attempt_status(&attempt("NO_ANSWER", Some(487))), "480");
    assert_eq!(attempt_status(&attempt("USER_BUSY", Some(180))), "486");
}

#[test]
fn outbound_calls_our_side_gave_up_on_are_cancelled_and_unknown_outcomes_are_other() {
    let last = attempt("NO_ANSWER", None);
    let cancelled = finish_status(
        Direction::Outbound,
        false,
        true,
        MissedStatus::default(),
        Some(&last),
    );
    assert_eq!(cancelled, "603-S");
    assert_eq!(
        finish_status(
            Direction::Outbound,
            false,
            false,
            MissedStatus::default(),
            None
        ),
        "OTHER"
    );
    assert_eq!(
        finish_status(
            Direction::Outbound,
            true,
            false,
            MissedStatus::default(),
            None
        ),
        "200"
    );
}

#[test]
fn an_unknown_cause_falls_back_to_sofias_default() {
    assert_eq!(sip_code_for_cause(&Cause::parse("SOMETHING_NEW")), 480);
}
