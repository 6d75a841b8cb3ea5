//! Hang-up, finish, recordings, transfers, abandon and shutdown.

use std::time::Duration;

use super::sim::*;
use crate::call::machine::*;
use crate::call::status::Cause;
use crate::ids::AgentId;
use crate::outbox::op::{BitrixWrite, CallNote, FinishCall};
use crate::queue::Outcome;

/// [`talking`] until the caller hangs up normally at `at`; the recording then stops.
fn hung_up_after_talking(at: Duration) -> World {
    let mut w = talking();
    w.at(at, hung_up(Cause::NORMAL_CLEARING));
    w.feed(Input::RecordStopped {
        path: "/rec/x.wav".into(),
    });
    w
}

/// The call is finished, and a second shutdown does nothing.
fn assert_finished_for_good(w: &mut World) {
    assert!(w.call.is_finished());
    assert_eq!(
        w.feed(Input::Shutdown),
        [],
        "a second shutdown does nothing"
    );
}

/// A sales call (ring all) answered by `c` at 2 s, recording started.
fn talking() -> World {
    let mut w = World::new();
    w.enter_queue("sales", Strategy::Simultaneous, &[15], 60);
    w.at(2 * S, Input::LegAnswered { leg: w.leg_of("c") });
    w.feed(Input::RecordStarted {
        path: "/rec/x.wav".into(),
    });
    w
}

#[test]
fn a_finished_conversation_hides_nobody_else_finishes_and_attaches_the_complete_recording() {
    let mut w = hung_up_after_talking(40 * S);
    let done = w.feed(complete(38));
    let expected_finish = FinishCall {
        user: user("c"),
        duration_secs: 38,
        status_code: "200".into(),
        add_to_chat: true,
        failed_reason: None,
    };
    assert_eq!(
        done,
        [
            Action::Card(BitrixWrite::Finish(expected_finish)),
            Action::Card(BitrixWrite::AttachRecord {
                path: "/rec/x.wav".into()
            }),
            Action::Exit,
        ]
    );
    assert!(w.call.is_finished());
    assert!(w.log.iter().any(|(_, a)| *a
        == Action::ReleaseAgent {
            agent: AgentId::from("c"),
            outcome: Outcome::Answered
        }));
}

#[test]
fn a_late_recording_hides_every_card_first_and_finishes_when_the_file_is_complete() {
    let mut w = talking();
    w.at(40 * S, hung_up(Cause::NORMAL_CLEARING));
    let at_hangup = w.feed(complete(38));
    assert_eq!(
        at_hangup,
        [Action::Card(BitrixWrite::Hide {
            users: vec![user("c")]
        })],
        "the talker too"
    );
    assert_eq!(w.call.deadline(), Some(w.t0 + 50 * S));
    let later = w.at(
        43 * S,
        Input::RecordStopped {
            path: "/rec/x.wav".into(),
        },
    );
    assert_eq!(
        finish_of(&later).map(|f| (f.user, f.duration_secs)),
        Some((user("c"), 38))
    );
    assert_eq!(
        later[1..],
        [
            Action::Card(BitrixWrite::AttachRecord {
                path: "/rec/x.wav".into()
            }),
            Action::Exit
        ]
    );
    assert_eq!(later.len(), 3, "no hide after the finish: {later:?}");
}

#[test]
fn a_recording_that_never_completes_is_given_up_after_the_wait() {
    let mut w = talking();
    w.at(40 * S, complete(38));
    w.run_until(50 * S);
    let at_50 = w.actions_at(50 * S);
    assert_eq!(finish_of(&at_50).map(|f| f.status_code), Some("200".into()));
    assert_eq!(at_50.last(), Some(&Action::Exit));
    assert!(
        !at_50
            .iter()
            .any(|a| matches!(a, Action::Card(BitrixWrite::AttachRecord { .. })))
    );
    assert!(w.call.is_finished());
}

#[test]
fn a_caller_who_gives_up_while_agents_ring_cancels_every_leg_and_card_and_is_a_missed_call() {
    let mut w = World::new();
    w.enter_queue("sales", Strategy::Simultaneous, &[15], 60);
    let legs: Vec<_> = w.last_bridge().1.into_iter().map(|l| l.leg).collect();
    w.auto_switch = false;
    let gone = w.at(4 * S, hung_up(Cause::ORIGINATOR_CANCEL));
    for leg in legs {
        assert!(gone.contains(&Action::KillLeg {
            leg,
            cause: Cause::ORIGINATOR_CANCEL
        }));
    }
    for name in ["a", "b", "c", "d"] {
        assert!(gone.contains(&Action::ReleaseAgent {
            agent: AgentId::from(name),
            outcome: Outcome::Cancelled
        }));
    }
    let everyone = ["a", "b", "c", "d"].map(user).to_vec();
    assert!(gone.contains(&Action::Card(BitrixWrite::Hide { users: everyone })));
    assert!(w.call.card_holders().is_empty());
    let done = w.feed(complete(0));
    let finish = finish_of(&done).unwrap();
    assert_eq!(
        (
            finish.user,
            finish.duration_secs,
            finish.status_code.as_str()
        ),
        (OWNER, 0, "304")
    );
    assert_eq!(finish.failed_reason.as_deref(), Some("ORIGINATOR_CANCEL"));
    assert_eq!(done.last(), Some(&Action::Exit));
}

#[test]
fn a_caller_who_gives_up_before_any_agent_rang_is_still_registered_and_finished_as_missed() {
    let mut w = World::new().with_support_on_call();
    w.enter_queue("support", Strategy::Sequential, &[5], 60);
    let done = w.at(3 * S, complete(0));
    let cards = w.cards();
    assert!(
        matches!(&cards[..], [BitrixWrite::Register(r), BitrixWrite::Finish(f)]
        if !r.show && r.user == OWNER && f.user == OWNER && f.status_code == "304")
    );
    assert_eq!(done.last(), Some(&Action::Exit));
}

#[test]
fn an_agent_offered_after_the_caller_left_is_given_back() {
    let mut w = World::new();
    w.enter_sales_by_hand(&[5]);
    w.handle(hung_up(Cause::ORIGINATOR_CANCEL));
    let late = w.handle(Input::AgentsOffered {
        agents: vec![agent("a")],
    });
    assert_eq!(
        late,
        [Action::ReleaseAgent {
            agent: AgentId::from("a"),
            outcome: Outcome::Cancelled
        }]
    );
}

#[test]
fn a_transfer_moves_the_card_to_the_new_user_and_finish_names_them() {
    let mut w = talking();
    let moved = w.at(
        10 * S,
        Input::Transferred {
            to: Some(Transferee {
                agent: Some(AgentId::from("e")),
                user: user("e"),
            }),
        },
    );
    assert_eq!(
        moved,
        [
            Action::ReleaseAgent {
                agent: AgentId::from("c"),
                outcome: Outcome::Answered
            },
            Action::Card(BitrixWrite::Hide {
                users: vec![user("c")]
            }),
            Action::Card(BitrixWrite::Show {
                users: vec![user("e")]
            }),
            Action::Card(BitrixWrite::Note(CallNote::Answered {
                user: user("e"),
                at: None
            })),
        ]
    );
    // The original bridge returns once the transfer took the caller away: nothing to do.
    let (exec, _) = w.last_bridge();
    assert_eq!(
        w.feed(Input::BridgeEnded {
            exec,
            outcome: BridgeOutcome::Success
        }),
        []
    );
    w.at(
        50 * S,
        Input::RecordStopped {
            path: "/rec/x.wav".into(),
        },
    );
    let done = w.feed(complete(48));
    assert_eq!(finish_of(&done).map(|f| f.user), Some(user("e")));
    assert!(
        !done
            .iter()
            .any(|a| matches!(a, Action::ReleaseAgent { .. })),
        "c was released at the transfer"
    );
    // What a restart after a kill would have known at each point: taken, c talking and
    // recorded, then e talking.
    let notes: Vec<String> = w
        .notes()
        .iter()
        .map(|n| match n {
            CallNote::Accepted(a) => format!("accepted {}", a.phone),
            CallNote::Answered { user, .. } => format!("answered {user}"),
            CallNote::Recording { .. } => "recording".to_owned(),
            CallNote::Channel { channel } => format!("channel {channel}"),
        })
        .collect();
    assert_eq!(
        notes,
        [
            "accepted +4930123456".to_owned(),
            format!("answered {}", user("c")),
            "recording".to_owned(),
            format!("answered {}", user("e")),
        ]
    );
}

#[test]
fn a_transfer_to_somebody_unknown_keeps_the_card_with_the_last_user() {
    let mut w = talking();
    assert_eq!(w.at(10 * S, Input::Transferred { to: None }), []);
    let done = w.at(20 * S, complete(18));
    assert_eq!(w.call.card_holders(), [] as [crate::ids::BitrixUserId; 0]);
    assert!(
        done.is_empty() || finish_of(&done).is_none(),
        "recording still open: finish waits"
    );
    let done = w.feed(Input::RecordStopped {
        path: "/rec/x.wav".into(),
    });
    assert_eq!(finish_of(&done).map(|f| f.user), Some(user("c")));
}

#[test]
fn when_the_agent_hangs_up_first_the_caller_is_hung_up() {
    let mut w = talking();
    let (exec, _) = w.last_bridge();
    w.feed(Input::Unbridged);
    let ended = w.at(
        30 * S,
        Input::BridgeEnded {
            exec,
            outcome: BridgeOutcome::Success,
        },
    );
    assert_eq!(
        ended,
        [Action::HangupCaller {
            cause: Cause::NORMAL_CLEARING
        }]
    );
}

#[test]
fn a_route_that_answered_first_reports_talk_time_not_billsec() {
    let mut s = settings();
    s.answer = true;
    s.recording = None;
    let mut w = World::new().with_settings(s);
    let first = w.enter_queue("sales", Strategy::Sequential, &[15], 60);
    assert!(first.contains(&Action::Answer), "{first:?}");
    w.at(10 * S, Input::LegAnswered { leg: w.leg_of("a") });
    let done = w.at(40 * S, complete(40));
    assert_eq!(finish_of(&done).map(|f| f.duration_secs), Some(30));
}

#[test]
fn shutdown_while_ringing_hands_the_caller_to_the_dialplan_fallback_and_leaves_the_call_open() {
    let mut w = World::new();
    w.enter_queue("sales", Strategy::Sequential, &[15], 60);
    let leg = w.leg_of("a");
    w.auto_switch = false;
    let actions = w.at(3 * S, Input::Shutdown);
    assert_eq!(
        actions,
        [
            Action::KillLeg {
                leg,
                cause: Cause::ORIGINATOR_CANCEL
            },
            Action::ReleaseAgent {
                agent: AgentId::from("a"),
                outcome: Outcome::Cancelled
            },
            Action::Card(BitrixWrite::Hide {
                users: vec![user("a")]
            }),
            // Closing the socket (no `resume`) lets the dialplan continue after `socket`: the
            // caller is neither hung up nor finished; the next run finishes the call.
            Action::Exit,
        ]
    );
    assert_finished_for_good(&mut w);
}

#[test]
fn shutdown_during_a_conversation_lets_it_go_on_with_the_talkers_card_open() {
    let mut w = talking();
    let actions = w.at(12 * S, Input::Shutdown);
    assert_eq!(finish_of(&actions), None, "the next run finishes it");
    assert!(
        !actions.iter().any(|a| matches!(
            a,
            Action::HangupCaller { .. } | Action::KillLeg { .. } | Action::Card(_)
        )),
        "{actions:?}"
    );
    assert_eq!(actions.last(), Some(&Action::Exit));
    assert_finished_for_good(&mut w);
}

#[test]
fn shutdown_after_the_caller_hung_up_still_finishes_the_call() {
    let mut w = hung_up_after_talking(12 * S);
    assert_eq!(
        w.at(12 * S, Input::Shutdown),
        [],
        "the finish is on its way"
    );
    assert!(!w.call.is_finished());
    let done = w.at(12 * S, complete(10));
    assert_eq!(
        finish_of(&done).map(|f| (f.user, f.status_code)),
        Some((user("c"), "200".into()))
    );
    assert!(w.call.is_finished());
}

#[test]
fn a_call_that_never_started_just_exits() {
    let mut w = World::new();
    assert_eq!(w.feed(complete(0)), [Action::Exit]);
    assert!(w.call.is_finished());
}

#[test]
fn a_missed_call_may_report_the_last_attempt_instead_of_304() {
    let mut s = settings();
    s.missed_status = crate::call::status::MissedStatus::LastAttempt;
    let mut w = World::new().with_settings(s);
    w.fails_at_once.insert("1005".into(), "USER_BUSY");
    w.fails_at_once.insert("1006".into(), "USER_BUSY");
    let mut r = route("support", Strategy::Sequential, &[5], 60);
    r.when_none_free = WhenNoneFree::Overflow;
    w.feed(started(Target::Queue(r)));
    let done = w.feed(complete(0));
    assert_eq!(finish_of(&done).map(|f| f.status_code), Some("486".into()));
}

#[test]
fn a_caller_who_leaves_during_the_lookup_is_finished_as_missed_for_the_fallback_owner() {
    let mut w = World::new();
    let target = Target::Responsible {
        ring_timeout: 8 * S,
        fallback: route("support", Strategy::Sequential, &[5], 60),
    };
    w.feed(started(target));
    w.at(S, hung_up(Cause::ORIGINATOR_CANCEL));
    assert_eq!(
        w.feed(Input::LookupTimedOut),
        [],
        "the lookup result no longer matters"
    );
    let done = w.feed(complete(0));
    let cards = w.cards();
    assert!(
        matches!(&cards[..], [BitrixWrite::Register(r), BitrixWrite::Finish(f)]
        if !r.show && f.user == OWNER && f.status_code == "304")
    );
    assert_eq!(done.last(), Some(&Action::Exit));
}

#[test]
fn an_anonymous_caller_is_registered_with_the_placeholder_number() {
    let mut w = World::new();
    let direct = direct_to_a();
    let started_at = chrono::DateTime::parse_from_rfc3339("2026-05-04T09:15:02+02:00").unwrap();
    w.feed(Input::Started {
        target: Target::Agent(direct),
        caller: Caller::Anonymous,
        line: None,
        started_at,
    });
    let cards = w.cards();
    assert!(
        matches!(&cards[..], [BitrixWrite::Register(r)] if r.phone.as_str() == "0000" && r.started_at == started_at)
    );
    w.at(S, Input::LegAnswered { leg: w.leg_of("a") });
    let recording = w.log.iter().find_map(|(_, a)| match a {
        Action::StartRecording { path } => Some(path.clone()),
        _ => None,
    });
    assert_eq!(
        recording,
        Some("/rec/2026-05-04/caller-uuid-anonymous-a.wav".into())
    );
}

// Regression (tests/it/call_cases.rs, late recording): FreeSWITCH reports the hang-up complete
// only after the file is closed, so a slow file kept every card open until it was ready.
#[test]
fn a_recording_still_open_shortly_after_the_hang_up_hides_every_card_before_the_finish() {
    let mut w = talking();
    w.at(40 * S, hung_up(Cause::NORMAL_CLEARING));
    let grace = w
        .call
        .deadline()
        .expect("a grace deadline after the hang-up");
    assert!(grace > w.t0 + 40 * S && grace <= w.t0 + 41 * S, "{grace:?}");
    w.run_until(41 * S);
    assert_eq!(
        w.cards().last(),
        Some(&BitrixWrite::Hide {
            users: vec![user("c")]
        }),
        "the talker's card closes while the file is written"
    );
    assert!(!w.call.is_finished());

    w.feed(Input::RecordStopped {
        path: "/rec/x.wav".into(),
    });
    let done = w.at(44 * S, complete(38));
    assert_eq!(
        finish_of(&done).map(|f| (f.user, f.duration_secs)),
        Some((user("c"), 38))
    );
    assert!(
        !done
            .iter()
            .any(|a| matches!(a, Action::Card(BitrixWrite::Hide { .. }))),
        "nobody is hidden twice: {done:?}"
    );
    assert!(done.contains(&Action::Card(BitrixWrite::AttachRecord {
        path: "/rec/x.wav".into()
    })));
}
