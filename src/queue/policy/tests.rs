//! Unit tests of `queue::policy`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};

use super::*;

/// Presence as a table: registered extensions and their live channel counts.
#[derive(Default)]
struct Phones {
    unregistered: HashSet<String>,
    live: HashMap<String, u32>,
}

impl AgentPresence for Phones {
    fn is_registered(&self, extension: &str) -> bool {
        !self.unregistered.contains(extension)
    }
    fn live_channels(&self, extension: &str) -> u32 {
        self.live.get(extension).copied().unwrap_or(0)
    }
}

const S: Duration = Duration::from_secs(1);

fn info(name: &str, user: u64) -> AgentInfo {
    AgentInfo {
        agent: AgentId::from(name),
        user: BitrixUserId(user),
        extension: format!("10{user:02}"),
    }
}

fn rules() -> Rules {
    Rules {
        allow_busy_agents: false,
        wrap_up: 10 * S,
        busy_cooldown: 5 * S,
        reject_cooldown: 7 * S,
        no_answer_cooldown: 2 * S,
        max_no_answer: 3,
        no_answer_pause: 60 * S,
    }
}

fn policy(order: Order, rules: Rules) -> Policy {
    let agents = vec![info("a", 1), info("b", 2), info("c", 3), info("d", 4)];
    let queue = QueueSettings {
        name: QueueName::from("sales"),
        agents: ["a", "b", "c", "d"]
            .into_iter()
            .map(AgentId::from)
            .collect(),
        order,
        rules: rules.clone(),
    };
    // Agents reserved by name follow the same rules here.
    Policy::new(agents, vec![queue], rules).unwrap()
}

/// The list-order policy with `rules()`, a start time, and every phone registered and idle.
fn list_order() -> (Policy, Instant, Phones) {
    (
        policy(Order::ListOrder, rules()),
        Instant::now(),
        Phones::default(),
    )
}

/// Names of up to `limit` agents picked from `sales` with no exclude list.
fn picked(p: &mut Policy, now: Instant, limit: usize, phones: &Phones) -> Vec<String> {
    let agents = p.pick(now, &sales(), &[], limit, phones).unwrap();
    names(&agents).into_iter().map(str::to_owned).collect()
}

fn names(picked: &[AgentInfo]) -> Vec<&str> {
    picked.iter().map(|a| a.agent.as_str()).collect()
}

fn sales() -> QueueName {
    QueueName::from("sales")
}

#[test]
fn list_order_offers_the_first_free_agent_and_skips_excluded_ones() {
    let (mut p, now, phones) = list_order();
    assert_eq!(picked(&mut p, now, 1, &phones), ["a"]);
    // a is reserved now; b comes next even without an exclude list.
    assert_eq!(
        names(
            &p.pick(now, &sales(), &[AgentId::from("c")], 1, &phones)
                .unwrap()
        ),
        ["b"]
    );
    assert_eq!(picked(&mut p, now, 5, &phones), ["c", "d"]);
    assert!(p.pick(now, &sales(), &[], 1, &phones).unwrap().is_empty());
}

#[test]
fn unregistered_and_busy_agents_are_not_free_unless_busy_agents_are_allowed() {
    let phones = Phones {
        unregistered: HashSet::from(["1002".to_owned()]),
        live: HashMap::from([("1003".to_owned(), 1)]),
    };
    let now = Instant::now();
    let mut p = policy(Order::ListOrder, rules());
    assert_eq!(
        p.availability(now, &AgentId::from("b"), false, &phones),
        Availability::Unregistered
    );
    assert_eq!(
        p.availability(now, &AgentId::from("c"), false, &phones),
        Availability::OnCall
    );
    assert_eq!(picked(&mut p, now, 4, &phones), ["a", "d"]);
    let mut lenient = policy(
        Order::ListOrder,
        Rules {
            allow_busy_agents: true,
            ..rules()
        },
    );
    assert_eq!(picked(&mut lenient, now, 4, &phones), ["a", "c", "d"]);
}

#[test]
fn an_agent_is_never_offered_to_two_calls_at_once() {
    let (mut p, now, phones) = list_order();
    let first = p.pick(now, &sales(), &[], 4, &phones).unwrap();
    assert_eq!(first.len(), 4);
    assert!(p.pick(now, &sales(), &[], 4, &phones).unwrap().is_empty());
    assert_eq!(p.pick_agent(now, &AgentId::from("a"), &phones), None);
    assert_eq!(
        p.availability(now, &AgentId::from("a"), false, &phones),
        Availability::Reserved
    );
}

#[test]
fn round_robin_starts_after_the_agent_offered_last() {
    let mut p = policy(Order::RoundRobin, Rules::default());
    let now = Instant::now();
    let phones = Phones::default();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let picked = p.pick(now, &sales(), &[], 1, &phones).unwrap();
        seen.push(picked[0].agent.to_string());
        p.release(now, &picked[0].agent, Outcome::Cancelled);
    }
    assert_eq!(seen, ["a", "b", "c", "d", "a"]);
}

#[test]
fn outcomes_cost_wrap_up_and_cool_downs() {
    let cases = [
        (Outcome::Answered, Some(10 * S)),
        (Outcome::Busy, Some(5 * S)),
        (Outcome::Unreachable, Some(5 * S)),
        (Outcome::Rejected, Some(7 * S)),
        (Outcome::NoAnswer, Some(2 * S)),
        (Outcome::Cancelled, None),
    ];
    let phones = Phones::default();
    for (outcome, rest) in cases {
        let mut p = policy(Order::ListOrder, rules());
        let t0 = Instant::now();
        let a = AgentId::from("a");
        assert_eq!(
            p.pick_agent(t0, &a, &phones).map(|i| i.agent),
            Some(a.clone())
        );
        assert!(p.release(t0, &a, outcome));
        let expected = rest.map_or(Availability::Free, |d| Availability::Resting {
            until: t0 + d,
        });
        assert_eq!(
            p.availability(t0, &a, false, &phones),
            expected,
            "{outcome:?}"
        );
        let later = t0 + rest.unwrap_or_default();
        assert_eq!(
            p.availability(later, &a, false, &phones),
            Availability::Free,
            "{outcome:?} ends"
        );
    }
}

#[test]
fn consecutive_no_answers_pause_the_agent_and_an_answer_resets_the_count() {
    let mut p = policy(Order::ListOrder, rules());
    let phones = Phones::default();
    let a = AgentId::from("a");
    let mut now = Instant::now();
    for _ in 0..2 {
        p.pick_agent(now, &a, &phones).unwrap();
        p.release(now, &a, Outcome::NoAnswer);
        now += 2 * S;
    }
    p.pick_agent(now, &a, &phones).unwrap();
    p.release(now, &a, Outcome::Answered);
    now += 10 * S;
    for _ in 0..2 {
        p.pick_agent(now, &a, &phones).unwrap();
        p.release(now, &a, Outcome::NoAnswer);
        now += 2 * S;
    }
    assert_eq!(
        p.availability(now, &a, false, &phones),
        Availability::Free,
        "count was reset by the answer"
    );
    p.pick_agent(now, &a, &phones).unwrap();
    p.release(now, &a, Outcome::NoAnswer);
    assert_eq!(
        p.availability(now, &a, false, &phones),
        Availability::Paused {
            until: now + 60 * S
        }
    );
    assert_eq!(
        p.availability(now + 60 * S, &a, false, &phones),
        Availability::Free
    );
}

#[test]
fn releasing_an_unreserved_or_unknown_agent_changes_nothing() {
    let mut p = policy(Order::ListOrder, rules());
    let now = Instant::now();
    assert!(!p.release(now, &AgentId::from("a"), Outcome::Busy));
    assert!(!p.release(now, &AgentId::from("zz"), Outcome::Busy));
    assert_eq!(
        p.availability(now, &AgentId::from("a"), false, &Phones::default()),
        Availability::Free
    );
}

#[test]
fn bad_configuration_is_a_typed_error() {
    let queue = |agents: &[&str]| QueueSettings {
        name: sales(),
        agents: agents.iter().map(|a| AgentId::from(*a)).collect(),
        order: Order::ListOrder,
        rules: Rules::default(),
    };
    let unknown = Policy::new(
        vec![info("a", 1)],
        vec![queue(&["a", "x"])],
        Rules::default(),
    );
    assert!(
        matches!(unknown, Err(PolicyError::UnknownAgent { agent, .. }) if agent.as_str() == "x")
    );
    let dup_agent = Policy::new(vec![info("a", 1), info("a", 2)], vec![], Rules::default());
    assert!(matches!(
        dup_agent,
        Err(PolicyError::Duplicate { what: "agent", .. })
    ));
    let dup_queue = Policy::new(
        vec![info("a", 1)],
        vec![queue(&["a"]), queue(&["a"])],
        Rules::default(),
    );
    assert!(matches!(
        dup_queue,
        Err(PolicyError::Duplicate { what: "queue", .. })
    ));
    let mut ok = Policy::new(vec![info("a", 1)], vec![queue(&["a"])], Rules::default()).unwrap();
    let missing = ok.pick(
        Instant::now(),
        &QueueName::from("nope"),
        &[],
        1,
        &Phones::default(),
    );
    assert!(matches!(missing, Err(PolicyError::UnknownQueue { .. })));
}

#[test]
fn a_reload_changes_membership_but_keeps_reservations_and_rests() {
    let (mut p, now, phones) = list_order();
    assert_eq!(picked(&mut p, now, 1, &phones), ["a"]);
    p.release(now, &AgentId::from("a"), Outcome::NoAnswer); // a rests 2 s
    assert_eq!(picked(&mut p, now, 1, &phones), ["b"]);

    // The new config drops b and d and puts c first.
    let queue = QueueSettings {
        name: sales(),
        agents: ["c", "a"].into_iter().map(AgentId::from).collect(),
        order: Order::ListOrder,
        rules: rules(),
    };
    let next = Policy::new(vec![info("a", 1), info("c", 3)], vec![queue], rules()).unwrap();
    p.reconfigure(next);

    assert_eq!(picked(&mut p, now, 4, &phones), ["c"], "a still rests");
    assert_eq!(
        p.availability(now, &AgentId::from("b"), false, &phones),
        Availability::Reserved
    );
    assert!(
        p.release(now, &AgentId::from("b"), Outcome::Answered),
        "b's call can still release b"
    );
    assert_eq!(
        p.availability(now + 3 * S, &AgentId::from("a"), false, &phones),
        Availability::Free
    );
}
