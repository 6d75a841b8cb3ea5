//! Frames below carry the header sets of the real captures in shared/fixtures/esl/real.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use freeswitch_esl_tokio::EslEvent;

use super::*;

const OWN: &str = "78db8cfe-db01-49e6-8b07-cdaf507e4fe4";
const AGENT: &str = "6d981c55-33be-4f44-8677-d8446e0bb028";

fn own() -> ChannelId {
    ChannelId::new(OWN)
}

fn frame(name: &str, headers: &[(&str, &str)]) -> EslEvent {
    let mut e = EslEvent::new();
    e.set_header("Event-Name", name);
    e.set_header("Unique-ID", OWN);
    e.set_header("Channel-Call-State", "ACTIVE");
    for (k, v) in headers {
        e.set_header(*k, *v);
    }
    e
}

fn mapped(e: &EslEvent) -> Mapped {
    map_event(e, &own()).unwrap()
}

fn event_of(e: &EslEvent) -> CallEvent {
    match mapped(e) {
        Mapped::Event(ev) => ev,
        other => panic!("expected an event, got {other:?}"),
    }
}

#[test]
fn answer_bridge_and_unbridge_carry_the_other_leg() {
    assert_eq!(
        event_of(&frame("CHANNEL_ANSWER", &[("Answer-State", "answered")])),
        CallEvent::Answered
    );
    let bridge = frame(
        "CHANNEL_BRIDGE",
        &[
            ("Bridge-A-Unique-ID", OWN),
            ("Bridge-B-Unique-ID", AGENT),
            ("Other-Leg-Unique-ID", AGENT),
        ],
    );
    assert_eq!(
        event_of(&bridge),
        CallEvent::Bridged {
            other: Some(ChannelId::new(AGENT)),
            other_number: None,
        }
    );
    // transfer_of_socket_call.txt run 2: after a blind REFER the UNBRIDGE names no other leg.
    let unbridge = frame(
        "CHANNEL_UNBRIDGE",
        &[
            ("Bridge-B-Unique-ID", AGENT),
            ("Caller-Destination-Number", "1002"),
        ],
    );
    assert_eq!(event_of(&unbridge), CallEvent::Unbridged { other: None });
}

#[test]
fn execute_pairs_are_correlated_by_application_uuid() {
    let start = frame(
        "CHANNEL_EXECUTE",
        &[
            ("Application", "answer"),
            ("Application-UUID", "be1bae88-7992-4e32-9f35-7bcb47322610"),
        ],
    );
    assert_eq!(
        event_of(&start),
        CallEvent::ExecuteStarted {
            exec: Some(ExecId::new("be1bae88-7992-4e32-9f35-7bcb47322610")),
            app: "answer".into()
        }
    );
    let done = frame(
        "CHANNEL_EXECUTE_COMPLETE",
        &[
            ("Application", "playback"),
            ("Application-Response", "FILE PLAYED"),
            ("Application-UUID", "x"),
        ],
    );
    assert_eq!(
        event_of(&done),
        CallEvent::ExecuteCompleted {
            exec: Some(ExecId::new("x")),
            app: "playback".into(),
            response: Some("FILE PLAYED".into()),
            bridge: None
        }
    );
}

#[test]
fn bridge_completion_reports_the_real_outcome_not_application_response() {
    // c_caller_abandon_while_ringing.txt: Application-Response is _none_, the result is in variables.
    let done = frame(
        "CHANNEL_EXECUTE_COMPLETE",
        &[
            ("Application", "bridge"),
            ("Application-Data", "{leg_timeout=20}user/1001@127.0.0.1"),
            ("Application-Response", "_none_"),
            ("Application-UUID", "job-1"),
            ("Hangup-Cause", "NORMAL_CLEARING"),
            ("variable_originate_disposition", "ORIGINATOR_CANCEL"),
            ("variable_DIALSTATUS", "CANCEL"),
            (
                "variable_originate_causes",
                "77092774-5f2d-4b89-be7a-fb0a7799c80f;ORIGINATOR_CANCEL",
            ),
        ],
    );
    let CallEvent::ExecuteCompleted {
        app,
        response,
        bridge: Some(result),
        ..
    } = event_of(&done)
    else {
        panic!("expected a bridge completion");
    };
    assert_eq!(app, "bridge");
    assert_eq!(response, None);
    assert_eq!(
        result.disposition,
        crate::esl::Disposition::Failed(HangupCause::OriginatorCancel)
    );
    assert_eq!(
        result.cause_for(&crate::ids::LegId::new(
            "77092774-5f2d-4b89-be7a-fb0a7799c80f"
        )),
        Some(HangupCause::OriginatorCancel)
    );
}

#[test]
fn socket_app_returning_while_up_means_the_call_was_transferred() {
    let transferred = frame(
        "CHANNEL_EXECUTE_COMPLETE",
        &[
            ("Application", "socket"),
            ("Application-Data", "127.0.0.1:8084 async full"),
            ("Caller-Destination-Number", "1002"),
        ],
    );
    assert_eq!(
        event_of(&transferred),
        CallEvent::Transferred {
            destination: Some("1002".into())
        }
    );
    let on_hangup = frame(
        "CHANNEL_EXECUTE_COMPLETE",
        &[
            ("Application", "socket"),
            ("Hangup-Cause", "NORMAL_CLEARING"),
        ],
    );
    assert_eq!(
        mapped(&on_hangup),
        Mapped::Ignored(IgnoreReason::SocketReturnedOnHangup)
    );
}

#[test]
fn record_events_carry_path_and_precise_length() {
    let path = "/tmp/rec/d4d71ee8-a24f-4726-a5f1-943eb41662a5.wav";
    let start = frame("RECORD_START", &[("Record-File-Path", path)]);
    assert_eq!(
        event_of(&start),
        CallEvent::RecordStarted { path: path.into() }
    );
    // record_stop_paths.txt: record_seconds is truncated (3 for 3940 ms).
    let stop = frame(
        "RECORD_STOP",
        &[
            ("Record-File-Path", path),
            ("Record-Completion-Cause", "success-silence"),
            ("variable_record_seconds", "3"),
            ("variable_record_ms", "3940"),
        ],
    );
    assert_eq!(
        event_of(&stop),
        CallEvent::RecordStopped {
            path: path.into(),
            record_ms: Some(3940)
        }
    );
}

#[test]
fn hangup_and_hangup_complete_carry_cause_sip_status_and_cdr() {
    let hangup = frame(
        "CHANNEL_HANGUP",
        &[
            ("Hangup-Cause", "NORMAL_CLEARING"),
            ("Answer-State", "hangup"),
        ],
    );
    assert_eq!(
        event_of(&hangup),
        CallEvent::Hangup {
            cause: HangupCause::NormalClearing,
            sip_term_status: None,
            sip_hangup_disposition: None
        }
    );
    // c_caller_abandon_while_ringing.txt: answered, never bridged, caller sent BYE.
    let complete = frame(
        "CHANNEL_HANGUP_COMPLETE",
        &[
            ("Hangup-Cause", "NORMAL_CLEARING"),
            ("Caller-Channel-Created-Time", "1795623533960000"),
            ("Caller-Channel-Answered-Time", "1795623534000027"),
            ("Caller-Channel-Bridged-Time", "0"),
            ("variable_sip_term_status", "200"),
            ("variable_sip_hangup_disposition", "recv_bye"),
            ("variable_billsec", "4"),
            ("variable_billmsec", "4020"),
        ],
    );
    assert_eq!(
        event_of(&complete),
        CallEvent::HangupComplete(HangupSummary {
            cause: HangupCause::NormalClearing,
            sip_term_status: Some(200),
            sip_hangup_disposition: Some(SipHangupDisposition::RecvBye),
            billsec: 4,
            billmsec: 4020,
            answered: true,
            bridged: false,
        })
    );
}

#[test]
fn dtmf_digit_is_validated() {
    assert_eq!(
        event_of(&frame("DTMF", &[("DTMF-Digit", "#")])),
        CallEvent::Dtmf { digit: '#' }
    );
    assert!(matches!(
        map_event(&frame("DTMF", &[("DTMF-Digit", "12")]), &own()),
        Err(MapError::BadValue {
            header: "DTMF-Digit",
            ..
        })
    ));
}

#[test]
fn unused_foreign_and_unknown_events_are_ignored_knowingly() {
    use freeswitch_esl_tokio::EslEventType as T;
    for (name, kind) in [
        ("CHANNEL_STATE", T::ChannelState),
        ("CHANNEL_PARK", T::ChannelPark),
        ("CHANNEL_CALLSTATE", T::ChannelCallstate),
        ("PRIVATE_COMMAND", T::PrivateCommand),
    ] {
        assert_eq!(
            mapped(&frame(name, &[])),
            Mapped::Ignored(IgnoreReason::Unused(kind)),
            "{name}"
        );
    }
    let mut other = frame("CHANNEL_ANSWER", &[]);
    other.set_header("Unique-ID", AGENT);
    assert_eq!(mapped(&other), Mapped::Ignored(IgnoreReason::OtherChannel));
    let mut job = EslEvent::new();
    job.set_header("Event-Name", "BACKGROUND_JOB");
    assert_eq!(
        mapped(&job),
        Mapped::Ignored(IgnoreReason::NotAChannelEvent)
    );
    let unknown = frame("NOT_AN_EVENT", &[]);
    assert_eq!(
        mapped(&unknown),
        Mapped::Ignored(IgnoreReason::UnknownEventName("NOT_AN_EVENT".into()))
    );
}

#[test]
fn malformed_required_headers_are_errors_not_panics() {
    assert_eq!(
        map_event(&EslEvent::new(), &own()),
        Err(MapError::NoEventName)
    );
    let mut no_id = frame("CHANNEL_ANSWER", &[]);
    no_id.remove_header("Unique-ID");
    assert!(matches!(
        map_event(&no_id, &own()),
        Err(MapError::MissingHeader {
            header: "Unique-ID",
            ..
        })
    ));
    let bad_cause = frame("CHANNEL_HANGUP", &[("Hangup-Cause", "SOMETHING_ELSE")]);
    assert!(matches!(
        map_event(&bad_cause, &own()),
        Err(MapError::BadValue {
            header: "Hangup-Cause",
            ..
        })
    ));
    let no_cause = frame("CHANNEL_HANGUP_COMPLETE", &[]);
    assert!(matches!(
        map_event(&no_cause, &own()),
        Err(MapError::MissingHeader {
            header: "Hangup-Cause",
            ..
        })
    ));
    let no_path = frame("RECORD_STOP", &[]);
    assert!(matches!(
        map_event(&no_path, &own()),
        Err(MapError::MissingHeader { .. })
    ));
    let no_app = frame("CHANNEL_EXECUTE", &[]);
    assert!(matches!(
        map_event(&no_app, &own()),
        Err(MapError::MissingHeader {
            header: "Application",
            ..
        })
    ));
}

#[test]
fn talk_time_is_billmsec_rounded_not_the_epoch_second_difference() {
    let summary = |billsec, billmsec| HangupSummary {
        cause: HangupCause::NormalClearing,
        sip_term_status: None,
        sip_hangup_disposition: None,
        billsec,
        billmsec,
        answered: true,
        bridged: true,
    };
    // a_answered_agent.txt: billsec 7 for a 6.16 s talk.
    assert_eq!(summary(7, 6160).talk_secs(), 6);
    // A 0.96 s talk inside one epoch second has billsec 0.
    assert_eq!(summary(0, 960).talk_secs(), 1);
    assert_eq!(summary(0, 300).talk_secs(), 1, "answered: at least 1 s");
    assert_eq!(summary(5, 0).talk_secs(), 5, "no billmsec: billsec");
    assert_eq!(summary(0, 0).talk_secs(), 0);
}

#[test]
fn the_session_unsubscribes_exactly_the_myevents_types_no_call_maps() {
    use EslEventType as T;
    let unused = unused_myevents();
    assert!(unused.iter().all(|kind| !is_mapped_kind(*kind)));
    for kept in [T::ChannelAnswer, T::ChannelHangupComplete, T::Dtmf] {
        assert!(!unused.contains(&kept), "{kept} is used");
    }
    for nixed in [
        T::ChannelState,
        T::ChannelData,
        T::ChannelPark,
        T::ChannelDestroy,
    ] {
        assert!(unused.contains(&nixed), "{nixed} is never used");
    }
    // Every type a call maps and myevents delivers stays subscribed.
    let kept = MYEVENTS
        .iter()
        .filter(|kind| is_mapped_kind(**kind))
        .count();
    assert_eq!(kept + unused.len(), MYEVENTS.len());
}
