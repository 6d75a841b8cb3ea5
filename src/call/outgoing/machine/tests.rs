//! The outgoing call machine on a hand-driven clock: each SIP outcome and its STATUS_CODE, the talk
//! time, the recording wait, shutdown, and a forwarded call nobody answers.

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::call::status::SipStatus;
use crate::ids::LegId;

const USER: BitrixUserId = BitrixUserId(17);
const S: Duration = Duration::from_secs(1);

fn call(record: bool) -> (OutgoingCall, ExecId, Instant) {
    let exec = ExecId::new("bridge-1");
    let settings = OutgoingSettings {
        user: USER,
        add_to_chat: true,
        record: record.then(|| PathBuf::from("/rec/a.wav")),
        record_wait: 3 * S,
        direction: Direction::Outbound,
    };
    (
        OutgoingCall::new(settings, exec.clone()),
        exec,
        Instant::now(),
    )
}

fn hung_up(cause: &str) -> Input {
    Input::CallerHungUp {
        cause: Cause::parse(cause),
        sip_term_status: None,
    }
}

fn complete() -> Input {
    Input::HangupComplete {
        billsec: 0,
        cause: Cause::NORMAL_CLEARING,
        sip_term_status: None,
    }
}

fn finish_of(actions: &[Action]) -> FinishCall {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Cards(writes) => writes.iter().find_map(|w| match w {
                BitrixWrite::Finish(f) => Some(f.clone()),
                _ => None,
            }),
            _ => None,
        })
        .expect("a finish")
}

#[test]
fn an_answered_call_is_recorded_from_the_answer_and_finished_200_with_the_talk_time() {
    let (mut c, exec, t0) = call(true);
    let answered = c.handle(
        t0 + 2 * S,
        Input::LegAnswered {
            leg: LegId::new("b"),
        },
    );
    assert_eq!(
        answered,
        [
            Action::Cards(vec![
                BitrixWrite::Note(CallNote::Answered {
                    user: USER,
                    at: None
                }),
                BitrixWrite::Note(CallNote::Recording {
                    path: "/rec/a.wav".into()
                }),
            ]),
            Action::StartRecording("/rec/a.wav".into()),
        ]
    );
    let ended = Input::BridgeEnded {
        exec,
        outcome: BridgeOutcome::Success,
    };
    assert_eq!(
        c.handle(t0 + 9 * S, ended),
        [Action::HangupAgent(Cause::NORMAL_CLEARING)]
    );
    assert_eq!(c.handle(t0 + 9 * S, hung_up("NORMAL_CLEARING")), []);
    assert_eq!(
        c.handle(
            t0 + 9 * S,
            Input::RecordStopped {
                path: "/rec/a.wav".into()
            }
        ),
        []
    );
    let done = c.handle(t0 + 9 * S, complete());
    let finish = finish_of(&done);
    assert_eq!(
        (finish.status_code.as_str(), finish.duration_secs),
        ("200", 7)
    );
    assert_eq!(finish.user, USER);
    assert!(
        matches!(&done[0], Action::Cards(w) if w.contains(&BitrixWrite::AttachRecord { path: "/rec/a.wav".into() }))
    );
    assert_eq!(done.last(), Some(&Action::Exit));
    assert!(c.is_done());
    assert_eq!(c.handle(t0 + 10 * S, complete()), []);
}

#[test]
fn a_failed_attempt_hangs_the_employee_up_with_its_cause_and_maps_the_status() {
    for (cause, sip, status) in [
        ("USER_BUSY", Some(486), "486"),
        ("NO_ANSWER", None, "480"),
        ("CALL_REJECTED", Some(603), "603"),
        ("UNALLOCATED_NUMBER", Some(404), "404"),
        ("INVALID_NUMBER_FORMAT", None, "484"),
    ] {
        let (mut c, exec, t0) = call(true);
        let outcome = BridgeOutcome::Failed {
            cause: Cause::parse(cause),
            sip_status: sip.map(SipStatus),
        };
        assert_eq!(
            c.handle(t0 + S, Input::BridgeEnded { exec, outcome }),
            [Action::HangupAgent(Cause::parse(cause))]
        );
        c.handle(t0 + S, hung_up(cause));
        let done = c.handle(t0 + S, complete());
        let finish = finish_of(&done);
        assert_eq!(finish.status_code, status, "{cause}");
        assert_eq!(finish.duration_secs, 0);
        assert_eq!(
            finish.failed_reason.as_deref(),
            Some(format!("customer: {cause}").as_str())
        );
        // Nothing was recorded: no attachRecord, no wait.
        assert!(matches!(&done[0], Action::Cards(w) if w.len() == 1));
    }
}

#[test]
fn the_employee_hanging_up_while_it_rings_is_cancelled() {
    let (mut c, exec, t0) = call(true);
    assert_eq!(c.handle(t0 + S, hung_up("NORMAL_CLEARING")), []);
    let outcome = BridgeOutcome::Failed {
        cause: Cause::ORIGINATOR_CANCEL,
        sip_status: None,
    };
    // Already hung up: no second hang-up.
    assert_eq!(c.handle(t0 + S, Input::BridgeEnded { exec, outcome }), []);
    let finish = finish_of(&c.handle(t0 + S, complete()));
    assert_eq!(finish.status_code, "603-S");
}

#[test]
fn a_late_recording_is_waited_for_then_the_call_is_finished_without_it() {
    let (mut c, exec, t0) = call(true);
    c.handle(
        t0,
        Input::LegAnswered {
            leg: LegId::new("b"),
        },
    );
    c.handle(
        t0 + 4 * S,
        Input::BridgeEnded {
            exec,
            outcome: BridgeOutcome::Success,
        },
    );
    assert_eq!(c.handle(t0 + 4 * S, complete()), []);
    assert_eq!(c.deadline(), Some(t0 + 7 * S));
    assert_eq!(c.handle(t0 + 5 * S, Input::DeadlinePassed), []);
    let done = c.handle(t0 + 7 * S, Input::DeadlinePassed);
    let finish = finish_of(&done);
    assert_eq!(
        (finish.status_code.as_str(), finish.duration_secs),
        ("200", 4)
    );
    assert!(matches!(&done[0], Action::Cards(w) if w.len() == 1));
}

#[test]
fn a_shutdown_lets_the_call_go_without_a_finish() {
    let (mut c, _exec, t0) = call(false);
    c.handle(
        t0,
        Input::LegAnswered {
            leg: LegId::new("b"),
        },
    );
    assert_eq!(c.handle(t0 + S, Input::Shutdown), [Action::Exit]);
    assert!(c.is_done());
    assert_eq!(c.handle(t0 + 2 * S, complete()), []);
}

#[test]
fn a_bridge_of_another_exec_is_ignored() {
    let (mut c, _exec, t0) = call(false);
    let other = Input::BridgeEnded {
        exec: ExecId::new("someone-else"),
        outcome: BridgeOutcome::Success,
    };
    assert_eq!(c.handle(t0, other), []);
}

#[test]
fn a_forwarded_call_nobody_answers_is_a_missed_call() {
    let exec = ExecId::new("bridge-1");
    let settings = OutgoingSettings {
        user: USER,
        add_to_chat: true,
        record: None,
        record_wait: 3 * S,
        direction: Direction::Inbound,
    };
    let mut c = OutgoingCall::new(settings, exec.clone());
    let t0 = Instant::now();
    let outcome = BridgeOutcome::Failed {
        cause: Cause::NO_ANSWER,
        sip_status: None,
    };
    c.handle(t0 + 30 * S, Input::BridgeEnded { exec, outcome });
    let finish = finish_of(&c.handle(t0 + 30 * S, complete()));
    assert_eq!((finish.status_code.as_str(), finish.user), ("304", USER));
    assert_eq!(
        finish.failed_reason.as_deref(),
        Some("forwarded number: NO_ANSWER")
    );
}
