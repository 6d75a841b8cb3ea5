//! Frames below carry the header sets of presence_register_events.txt and
//! originate_click_to_call.txt.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use freeswitch_esl_tokio::EslEvent;

use super::*;

fn frame(name: &str, headers: &[(&str, &str)]) -> EslEvent {
    let mut e = EslEvent::new();
    e.set_header("Event-Name", name);
    for (k, v) in headers {
        e.set_header(*k, *v);
    }
    e
}

fn event_of(e: &EslEvent) -> SwitchEvent {
    match map_switch_event(e).unwrap() {
        SwitchMapped::Event(ev) => ev,
        other => panic!("expected an event, got {other:?}"),
    }
}

#[test]
fn channel_create_names_the_extension_of_the_phone() {
    let agent_leg = frame(
        "CHANNEL_CREATE",
        &[
            ("Unique-ID", "0bb865ca-9aa3-44c9-bd37-1d6071c48687"),
            ("Channel-Name", "sofia/internal/1011@127.0.0.1:5081"),
            ("Call-Direction", "outbound"),
            ("Channel-Presence-ID", "1011@127.0.0.1"),
        ],
    );
    assert_eq!(
        event_of(&agent_leg),
        SwitchEvent::ChannelCreated {
            channel: ChannelId::new("0bb865ca-9aa3-44c9-bd37-1d6071c48687"),
            extension: Some("1011".into())
        }
    );
    let loopback = frame(
        "CHANNEL_CREATE",
        &[("Unique-ID", "u"), ("Channel-Name", "loopback/9000-a")],
    );
    assert_eq!(
        event_of(&loopback),
        SwitchEvent::ChannelCreated {
            channel: ChannelId::new("u"),
            extension: None
        }
    );
}

#[test]
fn hangup_complete_and_answer_are_mapped_per_leg() {
    // originate_click_to_call.txt, customer busy.
    let hangup = frame(
        "CHANNEL_HANGUP_COMPLETE",
        &[
            ("Unique-ID", "Y"),
            ("Channel-Name", "sofia/internal/5550100@127.0.0.1:5074"),
            ("Hangup-Cause", "USER_BUSY"),
            ("variable_sip_term_status", "486"),
            ("variable_sip_hangup_disposition", "recv_refuse"),
        ],
    );
    assert_eq!(
        event_of(&hangup),
        SwitchEvent::ChannelHangupComplete {
            channel: ChannelId::new("Y"),
            extension: Some("5550100".into()),
            cause: HangupCause::UserBusy,
            sip_term_status: Some(486),
            sip_hangup_disposition: Some(SipHangupDisposition::RecvRefuse),
            end: ChannelEnd::default(),
        }
    );
    let answer = frame(
        "CHANNEL_ANSWER",
        &[
            ("Unique-ID", "X"),
            ("Channel-Name", "sofia/internal/1001@h"),
        ],
    );
    assert_eq!(
        event_of(&answer),
        SwitchEvent::LegAnswered {
            leg: ChannelId::new("X"),
            extension: Some("1001".into())
        }
    );
}

#[test]
fn registration_events_use_their_own_header_sets() {
    let reg = frame(
        "CUSTOM",
        &[
            ("Event-Subclass", "sofia::register"),
            ("profile-name", "internal"),
            ("from-user", "1011"),
            ("status", "Registered(UDP)"),
            ("expires", "3600"),
        ],
    );
    assert_eq!(
        event_of(&reg),
        SwitchEvent::Registered {
            user: "1011".into(),
            expires: Some(3600)
        }
    );
    let unreg = frame(
        "CUSTOM",
        &[
            ("Event-Subclass", "sofia::unregister"),
            ("from-user", "1011"),
            ("expires", "0"),
        ],
    );
    assert_eq!(
        event_of(&unreg),
        SwitchEvent::Unregistered {
            user: "1011".into()
        }
    );
    // sofia::expire: `user` instead of `from-user`, and `expires` is an absolute epoch.
    let expire = frame(
        "CUSTOM",
        &[
            ("Event-Subclass", "sofia::expire"),
            ("user", "1012"),
            ("expires", "1795626549"),
        ],
    );
    assert_eq!(
        event_of(&expire),
        SwitchEvent::Expired {
            user: "1012".into()
        }
    );
    let other = frame("CUSTOM", &[("Event-Subclass", "callcenter::info")]);
    assert!(matches!(
        map_switch_event(&other),
        Ok(SwitchMapped::Ignored(_))
    ));
    let broken = frame("CUSTOM", &[("Event-Subclass", "sofia::register")]);
    assert!(matches!(
        map_switch_event(&broken),
        Err(MapError::MissingHeader {
            header: "from-user",
            ..
        })
    ));
}

#[test]
fn background_job_bodies_become_ok_or_failed() {
    let mut ok = frame(
        "BACKGROUND_JOB",
        &[("Job-UUID", "j1"), ("Job-Command", "originate")],
    );
    ok.set_body("+OK 0b7f3b5e-1e7c-4a55-a0a4-3a1d2b3c4d5e\n");
    assert_eq!(
        event_of(&ok),
        SwitchEvent::BackgroundJob {
            job: JobId::new("j1"),
            result: JobOutcome::Ok("0b7f3b5e-1e7c-4a55-a0a4-3a1d2b3c4d5e".into())
        }
    );
    let mut busy = frame("BACKGROUND_JOB", &[("Job-UUID", "j2")]);
    busy.set_body("-ERR USER_BUSY\n");
    assert_eq!(
        event_of(&busy),
        SwitchEvent::BackgroundJob {
            job: JobId::new("j2"),
            result: JobOutcome::Failed("USER_BUSY".into())
        }
    );
    let no_job = frame("BACKGROUND_JOB", &[]);
    assert!(map_switch_event(&no_job).is_err());
    assert_eq!(event_of(&frame("HEARTBEAT", &[])), SwitchEvent::Heartbeat);
}

#[test]
fn a_bridged_caller_leg_hangup_complete_carries_its_timetable_and_the_agent_it_talked_to() {
    // Values from the real a_answered_agent.txt capture (A leg bridged to user 1001).
    let hangup = frame(
        "CHANNEL_HANGUP_COMPLETE",
        &[
            ("Unique-ID", "81a271ba-85e0-4606-b7a4-b4c236bbaabd"),
            ("Channel-Name", "sofia/internal/5551000@127.0.0.1:5060"),
            ("Hangup-Cause", "NORMAL_CLEARING"),
            ("Caller-Channel-Created-Time", "1795623507900027"),
            ("Caller-Channel-Answered-Time", "1795623507920049"),
            ("Caller-Channel-Hangup-Time", "1795623514080060"),
            ("Caller-Channel-Bridged-Time", "1795623509020063"),
            ("Other-Type", "originatee"),
            (
                "Other-Leg-Channel-Name",
                "sofia/internal/1001@127.0.0.1:5071",
            ),
        ],
    );
    let SwitchEvent::ChannelHangupComplete { end, .. } = event_of(&hangup) else {
        panic!("not a hangup");
    };
    let at = |us| chrono::DateTime::from_timestamp_micros(us).unwrap();
    assert_eq!(
        end,
        ChannelEnd {
            answered_at: Some(at(1_795_623_507_920_049)),
            bridged_at: Some(at(1_795_623_509_020_063)),
            hungup_at: Some(at(1_795_623_514_080_060)),
            bridged_to: Some("1001".into()),
        }
    );
}

#[test]
fn a_hangup_complete_with_zero_or_garbage_times_has_an_unknown_timetable() {
    let hangup = frame(
        "CHANNEL_HANGUP_COMPLETE",
        &[
            ("Unique-ID", "Z"),
            ("Hangup-Cause", "NORMAL_CLEARING"),
            ("Caller-Channel-Answered-Time", "0"),
            ("Caller-Channel-Bridged-Time", "soon"),
            ("Other-Type", "originator"),
            ("Other-Leg-Channel-Name", "sofia/internal/1001@h"),
        ],
    );
    let SwitchEvent::ChannelHangupComplete { end, .. } = event_of(&hangup) else {
        panic!("not a hangup");
    };
    assert_eq!(end.answered_at, None);
    assert_eq!(
        end.bridged_to, None,
        "an originator is not the leg we bridged to"
    );
}
