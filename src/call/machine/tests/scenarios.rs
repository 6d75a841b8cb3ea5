//! Ringing: employee route, sequential and simultaneous queues, known callers, overflow.

use std::time::Duration;

use super::sim::*;
use crate::call::machine::*;
use crate::call::status::Cause;
use crate::ids::{AgentId, QueueName};
use crate::outbox::op::{BitrixWrite, CallNote, CallType};
use crate::queue::Outcome;

fn interval(from: u64, to: u64) -> (Duration, Option<Duration>) {
    (secs(from), Some(secs(to)))
}

fn release(name: &str, outcome: Outcome) -> Action {
    Action::ReleaseAgent {
        agent: AgentId::from(name),
        outcome,
    }
}

fn hide(names: &[&str]) -> Action {
    Action::Card(BitrixWrite::Hide {
        users: names.iter().map(|n| user(n)).collect(),
    })
}

fn show(names: &[&str]) -> Action {
    Action::Card(BitrixWrite::Show {
        users: names.iter().map(|n| user(n)).collect(),
    })
}

fn request(queue: &str, exclude: &[&str], all: bool) -> Action {
    let exclude = exclude.iter().map(|a| AgentId::from(*a)).collect();
    Action::RequestAgents {
        pick: Pick::Queue {
            queue: QueueName::from(queue),
            exclude,
            all,
        },
    }
}

fn bridged_agents(actions: &[Action]) -> Vec<Vec<String>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Bridge { legs, .. } => Some(legs.iter().map(|l| l.agent.to_string()).collect()),
            _ => None,
        })
        .collect()
}

#[test]
fn employee_route_registers_with_the_card_open_and_bridges_the_extension() {
    let mut w = World::new();
    let direct = direct_to_a();
    let actions = w.feed(started(Target::Agent(direct)));
    // continue_on_fail alone: no other value (the ringback a queue configures) can take it
    // down with a refused multiset.
    assert_eq!(
        actions[0],
        Action::SetCallerVars {
            vars: vec![("continue_on_fail".into(), "true".into())]
        }
    );
    assert!(
        matches!(&actions[1], Action::SetCallerVars { vars } if vars.contains(&("hangup_after_bridge".into(), "false".into()))
        && vars.contains(&("ignore_early_media".into(), "true".into()))
        && !vars.iter().any(|(name, _)| name == "continue_on_fail"))
    );
    let actions = &actions[1..];
    assert_eq!(actions[1], Action::RingReady);
    // The call is noted as accepted before the agent rings (recovery after a kill).
    let Action::Card(BitrixWrite::Note(CallNote::Accepted(accepted))) = &actions[2] else {
        panic!("{actions:?}")
    };
    assert_eq!(accepted.phone.as_str(), "+4930123456");
    let Action::Bridge {
        legs,
        simultaneous: false,
        leg_timeout,
        ..
    } = &actions[3]
    else {
        panic!("{actions:?}")
    };
    assert_eq!(
        (legs.len(), legs[0].extension.as_str(), *leg_timeout),
        (1, "1001", 22 * S)
    );
    let Action::Card(BitrixWrite::Register(register)) = &actions[4] else {
        panic!("{actions:?}")
    };
    assert_eq!(
        (register.user, register.show, register.call_type),
        (user("a"), true, CallType::Incoming)
    );
    assert_eq!(register.line_number.as_deref(), Some("4930555000"));
    assert_eq!(register.phone.as_str(), "+4930123456");

    let answered = w.at(4 * S, Input::LegAnswered { leg: w.leg_of("a") });
    // The answer and the recording are noted for startup recovery before the switch records.
    let path = std::path::PathBuf::from("/rec/2026-05-04/caller-uuid-+4930123456-a.wav");
    assert_eq!(
        answered,
        [
            Action::Card(BitrixWrite::Note(CallNote::Answered {
                user: user("a"),
                at: None
            })),
            Action::Card(BitrixWrite::Note(CallNote::Recording {
                path: path.clone()
            })),
            Action::StartRecording { path }
        ]
    );
    assert_eq!(
        w.call.card_holders(),
        [user("a")],
        "the card stays open while they talk"
    );
}

#[test]
fn employee_who_does_not_answer_is_cancelled_at_the_ring_timeout_and_the_fallback_runs() {
    let mut w = World::new();
    let fallback = Overflow::Queue(Box::new(route("support", Strategy::Sequential, &[5], 60)));
    w.feed(started(Target::Agent(DirectTarget {
        agent: agent("a"),
        ring_timeout: 10 * S,
        fallback,
    })));
    let leg = w.leg_of("a");
    w.run_until(10 * S);
    let at_10 = w.actions_at(10 * S);
    assert_eq!(
        at_10[0],
        Action::KillLeg {
            leg,
            cause: Cause::NO_ANSWER
        }
    );
    assert_eq!(at_10[1], hide(&["a"]));
    assert_eq!(at_10[2], request("support", &[], false));
    assert_eq!(bridged_agents(&at_10), [["e"]]);
    assert_eq!(
        at_10.last(),
        Some(&show(&["e"])),
        "the call was registered already: a show, not a register"
    );
}

#[test]
fn sequential_queue_moves_the_card_along_the_ring_steps_then_overflows() {
    let mut w = World::new();
    w.policy = crate::queue::Policy::new(
        ["a", "b", "c"].map(agent).to_vec(),
        vec![crate::queue::QueueSettings {
            name: QueueName::from("sales"),
            agents: ["a", "b", "c"].map(AgentId::from).to_vec(),
            order: crate::queue::Order::ListOrder,
            rules: crate::queue::Rules::default(),
        }],
        crate::queue::Rules::default(),
    )
    .unwrap();
    w.enter_queue("sales", Strategy::Sequential, &[3, 5, 7], 15);
    w.run_until(20 * S);
    let cards = w.card_intervals();
    assert_eq!(cards[&user("a")], [interval(0, 3)]);
    assert_eq!(cards[&user("b")], [interval(3, 8)]);
    assert_eq!(cards[&user("c")], [interval(8, 15)]);
    let at_15 = w.actions_at(15 * S);
    assert!(matches!(at_15[0], Action::KillLeg { .. }));
    assert_eq!(at_15[1], release("c", Outcome::NoAnswer));
    assert_eq!(at_15[2], hide(&["c"]));
    assert_eq!(
        at_15[3],
        Action::HangupCaller {
            cause: Cause::parse("NORMAL_CLEARING")
        },
        "the overflow target"
    );
    let bridges: Vec<_> = w
        .log
        .iter()
        .filter(|(_, a)| matches!(a, Action::Bridge { .. }))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(
        bridges,
        [Duration::ZERO, 3 * S, 8 * S],
        "each hand-over is immediate"
    );
    let timeouts: Vec<_> = w
        .log
        .iter()
        .filter_map(|(_, a)| match a {
            Action::Bridge { leg_timeout, .. } => Some(*leg_timeout),
            _ => None,
        })
        .collect();
    assert_eq!(
        timeouts,
        [5 * S, 7 * S, 9 * S],
        "leg_timeout is the step plus the safety margin"
    );
}

#[test]
fn at_a_step_deadline_kill_release_hide_and_request_come_together() {
    let mut w = World::new();
    w.enter_queue("sales", Strategy::Sequential, &[3], 60);
    let leg = w.leg_of("a");
    w.run_until(3 * S - Duration::from_millis(1));
    w.now = w.t0 + 3 * S;
    w.auto_switch = false;
    let actions = w.handle(Input::DeadlinePassed);
    assert_eq!(
        actions,
        [
            Action::KillLeg {
                leg,
                cause: Cause::NO_ANSWER
            },
            release("a", Outcome::NoAnswer),
            hide(&["a"]),
            request("sales", &["a"], false),
        ]
    );
}

#[test]
fn the_old_bridges_end_after_a_hand_over_is_ignored() {
    let mut w = World::new();
    w.enter_sales_by_hand(&[3]);
    w.handle(Input::AgentsOffered {
        agents: vec![agent("a")],
    });
    let (old, _) = w.last_bridge();
    w.handle(Input::BridgeStarted { exec: old.clone() });
    w.now = w.t0 + 3 * S;
    w.handle(Input::DeadlinePassed);
    let next = w.handle(Input::AgentsOffered {
        agents: vec![agent("b")],
    });
    assert_eq!(
        bridged_agents(&next),
        [["b"]],
        "B is bridged before A's bridge has returned"
    );
    let failed = BridgeOutcome::Failed {
        cause: Cause::NO_ANSWER,
        sip_status: None,
    };
    assert_eq!(
        w.handle(Input::BridgeEnded {
            exec: old,
            outcome: failed
        }),
        []
    );
    let (new, _) = w.last_bridge();
    w.now += Duration::from_millis(80);
    assert_eq!(w.handle(Input::BridgeStarted { exec: new }), [show(&["b"])]);
    assert_eq!(
        w.call.deadline(),
        Some(w.now + 3 * S),
        "B's step counts from its BridgeStarted"
    );
}

#[test]
fn unregistered_and_busy_agents_are_skipped_so_the_next_free_one_rings_at_once() {
    let mut w = World::new();
    w.presence.unregistered.insert("1002".into());
    w.presence.on_call.insert("1003".into());
    w.enter_queue("sales", Strategy::Sequential, &[3, 5], 60);
    w.run_until(4 * S);
    let cards = w.card_intervals();
    assert_eq!(cards[&user("a")], [interval(0, 3)]);
    assert_eq!(cards[&user("d")], [(3 * S, None)]);
    assert!(!cards.contains_key(&user("b")) && !cards.contains_key(&user("c")));
    assert_eq!(
        w.call.deadline(),
        Some(w.t0 + 8 * S),
        "D rings the second step"
    );
}

#[test]
fn an_agent_whose_bridge_fails_at_once_is_released_with_that_outcome_and_the_next_rings_without_delay()
 {
    let mut w = World::new();
    w.fails_at_once.insert("1001".into(), "USER_BUSY");
    w.fails_at_once.insert("1002".into(), "USER_NOT_REGISTERED");
    w.fails_at_once.insert("1003".into(), "CALL_REJECTED");
    let actions = w.enter_queue("sales", Strategy::Sequential, &[3, 5], 60);
    assert_eq!(bridged_agents(&actions), [["a"], ["b"], ["c"], ["d"]]);
    assert!(actions.contains(&release("a", Outcome::Busy)));
    assert!(actions.contains(&release("b", Outcome::Unreachable)));
    assert!(actions.contains(&release("c", Outcome::Rejected)));
    // Busy and unreachable phones never rang; the rejection counted as a ring: D gets step 2.
    assert_eq!(w.call.deadline(), Some(w.t0 + 5 * S));
}

#[test]
fn a_sequential_queue_starts_a_new_round_when_everyone_was_tried() {
    let mut w = World::new();
    w.enter_queue("support", Strategy::Sequential, &[2], 60);
    w.run_until(5 * S);
    let order: Vec<_> =
        bridged_agents(&w.log.iter().map(|(_, a)| a.clone()).collect::<Vec<_>>()).concat();
    assert_eq!(order, ["e", "f", "e"]);
}

#[test]
fn a_round_of_only_busy_phones_waits_for_the_retry_instead_of_spinning() {
    // Regression: with no cool-downs, instantly failing phones were re-offered in an endless loop.
    let mut w = World::new();
    w.fails_at_once.insert("1005".into(), "USER_BUSY");
    w.fails_at_once.insert("1006".into(), "USER_NOT_REGISTERED");
    let actions = w.enter_queue("support", Strategy::Sequential, &[2], 60);
    assert_eq!(bridged_agents(&actions), [["e"], ["f"]]);
    assert_eq!(w.call.deadline(), Some(w.t0 + 5 * S), "retry timer");
    w.fails_at_once.clear();
    w.run_until(5 * S);
    assert_eq!(w.card_intervals()[&user("e")].last(), Some(&(5 * S, None)));
}

#[test]
fn nobody_free_waits_and_asks_again_or_overflows_per_settings() {
    let mut w = World::new().with_support_on_call();
    w.enter_queue("support", Strategy::Sequential, &[2], 60);
    assert_eq!(w.call.deadline(), Some(w.t0 + 5 * S), "retry timer");
    w.presence.on_call.clear();
    let actions = w.at(5 * S, Input::NoAgentFree);
    assert_eq!(actions, [], "an unrequested answer is ignored");
    w.run_until(5 * S);
    assert_eq!(w.card_intervals()[&user("e")], [(5 * S, None)]);

    let mut w = World::new().with_support_on_call();
    let mut r = route("support", Strategy::Sequential, &[2], 60);
    r.when_none_free = WhenNoneFree::Overflow;
    r.overflow = Overflow::Queue(Box::new(route("sales", Strategy::Sequential, &[2], 60)));
    let actions = w.feed(started(Target::Queue(r)));
    assert_eq!(bridged_agents(&actions), [["a"]]);
}

#[test]
fn simultaneous_queue_shows_everyone_at_once_and_hides_the_others_on_answer() {
    let mut w = World::new();
    let actions = w.enter_queue("sales", Strategy::Simultaneous, &[15], 60);
    assert!(actions.contains(&request("sales", &[], true)));
    let bridge = actions
        .iter()
        .find(|a| matches!(a, Action::Bridge { .. }))
        .unwrap();
    assert!(
        matches!(bridge, Action::Bridge { legs, simultaneous: true, leg_timeout, .. } if legs.len() == 4 && *leg_timeout == 17 * S)
    );
    let cards = w.cards();
    assert_eq!(cards.len(), 2, "one register and one show: {cards:?}");
    assert!(matches!(&cards[0], BitrixWrite::Register(r) if r.show && r.user == user("a")));
    assert_eq!(
        cards[1],
        BitrixWrite::Show {
            users: vec![user("b"), user("c"), user("d")]
        }
    );

    let answered = w.at(2 * S, Input::LegAnswered { leg: w.leg_of("c") });
    let hides: Vec<_> = answered
        .iter()
        .filter(|a| matches!(a, Action::Card(BitrixWrite::Hide { .. })))
        .collect();
    assert_eq!(hides, [&hide(&["a", "b", "d"])]);
    for loser in ["a", "b", "d"] {
        assert!(answered.contains(&release(loser, Outcome::Cancelled)));
    }
    assert!(
        !answered.iter().any(|a| matches!(a, Action::KillLeg { .. })),
        "the switch cancels losers itself"
    );
    assert_eq!(w.call.card_holders(), [user("c")]);
}

#[test]
fn a_simultaneous_round_that_rings_out_is_killed_whole_and_the_next_round_starts() {
    let mut w = World::new();
    w.enter_queue("support", Strategy::Simultaneous, &[10], 60);
    w.run_until(10 * S);
    let at_10 = w.actions_at(10 * S);
    assert_eq!(
        at_10
            .iter()
            .filter(|a| matches!(a, Action::KillLeg { cause, .. } if *cause == Cause::NO_ANSWER))
            .count(),
        2
    );
    assert_eq!(
        at_10
            .iter()
            .filter(|a| matches!(a, Action::Card(BitrixWrite::Hide { .. })))
            .count(),
        1
    );
    assert!(at_10.contains(&hide(&["e", "f"])));
    assert_eq!(bridged_agents(&at_10), [["e", "f"]], "next round");
    assert!(at_10.contains(&show(&["e", "f"])));
}

#[test]
fn queue_wait_limit_overflows_to_another_queue() {
    let mut w = World::new();
    let mut r = route("sales", Strategy::Sequential, &[4], 6);
    r.overflow = Overflow::Queue(Box::new(route("support", Strategy::Sequential, &[4], 60)));
    w.feed(started(Target::Queue(r)));
    w.run_until(7 * S);
    let cards = w.card_intervals();
    assert_eq!(cards[&user("a")], [interval(0, 4)]);
    assert_eq!(cards[&user("b")], [interval(4, 6)]);
    assert_eq!(cards[&user("e")], [(6 * S, None)]);
}

fn responsible(ring: u64) -> Target {
    Target::Responsible {
        ring_timeout: secs(ring),
        fallback: route("support", Strategy::Sequential, &[5], 60),
    }
}

#[test]
fn known_caller_is_registered_without_a_card_and_their_manager_rings_with_a_show() {
    let mut w = World::new();
    let actions = w.feed(started(responsible(8)));
    let cards = w.cards();
    assert!(matches!(&cards[..], [BitrixWrite::Register(r)] if !r.show && r.user == OWNER));
    assert!(actions.contains(&Action::Lookup {
        phone: crate::ids::PhoneNumber::parse("+4930123456").unwrap()
    }));
    assert_eq!(
        w.call.deadline(),
        Some(w.t0 + 2 * S),
        "the lookup is bounded"
    );

    let actions = w.at(
        S,
        Input::LookupFinished {
            responsible: Some((user("c"), AgentId::from("c"))),
        },
    );
    assert_eq!(
        actions[0],
        Action::RequestAgents {
            pick: Pick::Agent(AgentId::from("c"))
        }
    );
    assert_eq!(bridged_agents(&actions), [["c"]]);
    assert_eq!(actions.last(), Some(&show(&["c"])));
    assert_eq!(
        w.call.deadline(),
        Some(w.t0 + 9 * S),
        "the manager's own ring timeout"
    );

    w.at(3 * S, Input::LegAnswered { leg: w.leg_of("c") });
    let done = w.at(
        30 * S,
        Input::HangupComplete {
            billsec: 27,
            cause: Cause::NORMAL_CLEARING,
            sip_term_status: None,
        },
    );
    assert!(done.contains(&release("c", Outcome::Answered)));
    let finish = done.iter().find_map(|a| match a {
        Action::Card(BitrixWrite::Finish(f)) => Some(f.clone()),
        _ => None,
    });
    let finish = finish.unwrap();
    assert_eq!(
        (
            finish.user,
            finish.duration_secs,
            finish.status_code.as_str()
        ),
        (user("c"), 27, "200")
    );
}

#[test]
fn known_caller_whose_manager_is_busy_goes_to_the_queue_at_once() {
    let mut w = World::new();
    w.presence.on_call.insert("1003".into());
    w.feed(started(responsible(8)));
    let actions = w.at(
        S,
        Input::LookupFinished {
            responsible: Some((user("c"), AgentId::from("c"))),
        },
    );
    assert_eq!(actions[1], request("support", &[], false));
    assert_eq!(bridged_agents(&actions), [["e"]]);
    assert_eq!(actions.last(), Some(&show(&["e"])));
}

#[test]
fn known_caller_whose_manager_rejects_or_does_not_answer_goes_to_the_queue() {
    let mut w = World::new();
    w.fails_at_once.insert("1003".into(), "USER_BUSY");
    w.feed(started(responsible(8)));
    let actions = w.at(
        S,
        Input::LookupFinished {
            responsible: Some((user("c"), AgentId::from("c"))),
        },
    );
    assert!(actions.contains(&release("c", Outcome::Busy)));
    assert_eq!(bridged_agents(&actions), [["c"], ["e"]]);

    let mut w = World::new();
    w.feed(started(responsible(8)));
    w.at(
        S,
        Input::LookupFinished {
            responsible: Some((user("c"), AgentId::from("c"))),
        },
    );
    w.run_until(9 * S);
    assert_eq!(w.card_intervals()[&user("c")], [interval(1, 9)]);
    assert_eq!(w.card_intervals()[&user("e")], [(9 * S, None)]);
}

#[test]
fn a_slow_lookup_times_out_to_the_queue_and_its_late_answer_is_ignored() {
    let mut w = World::new();
    w.feed(started(responsible(8)));
    w.run_until(2 * S);
    assert_eq!(w.card_intervals()[&user("e")], [(2 * S, None)]);
    let late = w.feed(Input::LookupFinished {
        responsible: Some((user("c"), AgentId::from("c"))),
    });
    assert_eq!(late, []);

    let mut w = World::new();
    w.feed(started(responsible(8)));
    let actions = w.at(S, Input::LookupFinished { responsible: None });
    assert_eq!(
        bridged_agents(&actions),
        [["e"]],
        "an unknown manager goes to the queue too"
    );
}

// The machine drew its leg and execute ids at random, so two runs of one script differed in
// every bridge and kill. Ids now come from the call's IdSequence: same inputs, same outputs.
#[test]
fn a_run_is_a_pure_function_of_its_inputs() {
    let run = || {
        let mut w = World::new();
        w.enter_queue("sales", Strategy::Sequential, &[3, 5], 12);
        w.run_until(20 * S);
        w.log
    };
    let (first, second) = (run(), run());
    assert!(
        first
            .iter()
            .any(|(_, a)| matches!(a, Action::Bridge { .. }))
    );
    assert_eq!(first, second);
}
