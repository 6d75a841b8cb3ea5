//! Per-route, per-queue and per-agent policies: who owns a missed call, when cards open.

use super::sim::*;
use crate::call::machine::*;
use crate::call::status::Cause;
use crate::ids::{AgentId, BitrixUserId};
use crate::outbox::op::BitrixWrite;

fn chain(steps: &[OwnerStep]) -> CallSettings {
    let mut s = settings();
    s.missed_owner = MissedOwner {
        steps: steps.to_vec(),
        last_resort: OWNER,
    };
    s
}

/// A sequential `sales` call whose caller hangs up at `hang_up_at` (a rings 0-5 s, b from 5 s).
fn missed_in_sales(s: CallSettings, hang_up_at: u64) -> BitrixUserId {
    let mut w = World::new().with_settings(s);
    w.enter_queue("sales", Strategy::Sequential, &[5], 60);
    w.at(secs(hang_up_at), hung_up(Cause::ORIGINATOR_CANCEL));
    let done = w.feed(complete(0));
    finish_of(&done).expect("a finish").user
}

#[test]
fn the_missed_call_owner_is_the_first_step_of_the_chain_that_names_somebody() {
    let cases: [(&[OwnerStep], u64, BitrixUserId); 6] = [
        (&[], 7, OWNER),
        (&[OwnerStep::LastRung], 2, user("a")),
        (&[OwnerStep::LastRung], 7, user("b")),
        (&[OwnerStep::User(BitrixUserId(42))], 7, BitrixUserId(42)),
        // No lookup ran: `responsible` names nobody, the next step does.
        (&[OwnerStep::Responsible, OwnerStep::LastRung], 7, user("b")),
        (&[OwnerStep::Responsible], 7, OWNER),
    ];
    for (steps, at, owner) in cases {
        assert_eq!(
            missed_in_sales(chain(steps), at),
            owner,
            "{steps:?} at {at} s"
        );
    }
}

#[test]
fn a_busy_phone_is_not_the_last_rung_and_a_found_responsible_manager_owns_the_miss() {
    let steps = [OwnerStep::Responsible, OwnerStep::LastRung];
    // Every support phone is busy: nobody rang, so the chain falls through to the last resort.
    let mut w = World::new().with_settings(chain(&steps[1..]));
    w.fails_at_once.insert("1005".into(), "USER_BUSY");
    w.fails_at_once.insert("1006".into(), "USER_BUSY");
    let mut r = route("support", Strategy::Sequential, &[5], 60);
    r.when_none_free = WhenNoneFree::Overflow;
    w.feed(started(Target::Queue(r)));
    assert_eq!(finish_of(&w.feed(complete(0))).unwrap().user, OWNER);
    // The lookup found d as the client's manager; d does not answer, nor does the queue.
    let mut w = World::new().with_settings(chain(&steps));
    let target = Target::Responsible {
        ring_timeout: 8 * S,
        fallback: route("support", Strategy::Sequential, &[5], 60),
    };
    w.feed(started(target));
    w.feed(Input::LookupFinished {
        responsible: Some((user("d"), AgentId::from("d"))),
    });
    w.at(10 * S, hung_up(Cause::ORIGINATOR_CANCEL));
    assert_eq!(finish_of(&w.feed(complete(0))).unwrap().user, user("d"));
}

fn moded(modes: &[(&str, CardMode)]) -> CallSettings {
    let mut s = settings();
    s.agent_cards =
        std::sync::Arc::new(modes.iter().map(|(a, m)| (AgentId::from(*a), *m)).collect());
    s
}

/// A ring-all `sales` round (a, b, c, d) from 0 s; `who` answers at 2 s, hangs up at 10 s.
fn answered_by(s: CallSettings, queue_card: CardMode, who: &str) -> World {
    let mut w = World::new().with_settings(s);
    let mut r = route("sales", Strategy::Simultaneous, &[20], 60);
    r.card = queue_card;
    w.feed(started(Target::Queue(r)));
    w.at(2 * S, Input::LegAnswered { leg: w.leg_of(who) });
    w.at(10 * S, hung_up(Cause::NORMAL_CLEARING));
    w.feed(complete(8));
    w
}

#[test]
fn each_card_mode_opens_the_card_while_ringing_at_the_answer_or_never() {
    use CardMode::*;
    let modes = [("b", Answered), ("c", Never), ("d", Never)];
    // b answers: a saw the card while ringing, b only from the answer, c and d never.
    let w = answered_by(moded(&modes), Ringing, "b");
    let cards = w.card_intervals();
    assert_eq!(cards[&user("a")], [(secs(0), Some(2 * S))]);
    assert_eq!(cards[&user("b")], [(2 * S, Some(10 * S))]);
    assert!(!cards.contains_key(&user("c")) && !cards.contains_key(&user("d")));
    // c answers: no card for c, yet the finish is c's.
    let w = answered_by(moded(&modes), Ringing, "c");
    let cards = w.card_intervals();
    assert_eq!(cards.keys().collect::<Vec<_>>(), [&user("a")]);
    let finish = w.cards().into_iter().find_map(|c| match c {
        BitrixWrite::Finish(f) => Some(f),
        _ => None,
    });
    assert_eq!(
        finish.map(|f| (f.user, f.status_code)),
        Some((user("c"), "200".into()))
    );
}

#[test]
fn a_queue_that_never_shows_cards_still_registers_and_finishes_for_the_talker() {
    // The queue says never; a's own mode says ringing and wins.
    let w = answered_by(moded(&[("a", CardMode::Ringing)]), CardMode::Never, "c");
    assert_eq!(
        w.card_intervals().keys().collect::<Vec<_>>(),
        [&user("a")],
        "only a, while ringing"
    );
    let w = answered_by(settings(), CardMode::Never, "c");
    let cards = w.cards();
    assert!(
        matches!(&cards[..], [BitrixWrite::Register(r), BitrixWrite::Finish(f)]
            if !r.show && r.user == user("c") && f.user == user("c")),
        "{cards:?}"
    );
}
