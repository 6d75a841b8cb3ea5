//! A small world around one machine: the real queue policy with scripted presence, a switch that
//! starts bridges at once and fails legs as scripted, and a log of every action with its time.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use chrono::DateTime;
use tokio::time::Instant;

use super::super::*;
use crate::call::status::{Cause, MissedStatus, SipStatus};
use crate::ids::{
    AgentId, BitrixUserId, ChannelId, ExecId, IdSequence, LegId, PhoneNumber, QueueName,
};
use crate::outbox::op::{BitrixWrite, FinishCall};
use crate::queue::{AgentInfo, AgentPresence, Order, Policy, QueueSettings, Rules};
use crate::recording::PathTemplate;

pub(crate) const S: Duration = Duration::from_secs(1);

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[derive(Default)]
pub(crate) struct Presence {
    pub unregistered: HashSet<String>,
    pub on_call: HashSet<String>,
}

impl AgentPresence for Presence {
    fn is_registered(&self, extension: &str) -> bool {
        !self.unregistered.contains(extension)
    }
    fn live_channels(&self, extension: &str) -> u32 {
        u32::from(self.on_call.contains(extension))
    }
}

pub(crate) struct World {
    pub call: Call,
    pub t0: Instant,
    pub now: Instant,
    pub policy: Policy,
    pub presence: Presence,
    /// Extensions whose bridge fails at once, with the cause; every other phone rings until
    /// cancelled.
    pub fails_at_once: HashMap<String, &'static str>,
    /// Every action with the time it was emitted (offset from `t0`).
    pub log: Vec<(Duration, Action)>,
    /// Legs of every bridge, to report a killed bridge's end as the switch would.
    bridges: HashMap<ExecId, Vec<LegId>>,
    killed: HashSet<LegId>,
    /// Whether the switch answers Bridge with BridgeStarted (and scripted failures) by itself.
    pub auto_switch: bool,
}

/// Agents a..f: user 1..6, extension 1001..1006.
pub(crate) fn agent(name: &str) -> AgentInfo {
    let n = u64::from(name.as_bytes()[0] - b'a' + 1);
    AgentInfo {
        agent: AgentId::from(name),
        user: BitrixUserId(n),
        extension: format!("100{n}"),
    }
}

pub(crate) fn user(name: &str) -> BitrixUserId {
    agent(name).user
}

pub(crate) const OWNER: BitrixUserId = BitrixUserId(99);

pub(crate) fn settings() -> CallSettings {
    CallSettings {
        ringback: "%(2000,4000,440,480)".into(),
        answer: false,
        lookup_timeout: 2 * S,
        retry_interval: 5 * S,
        leg_timeout_margin: 2 * S,
        crm_create: true,
        add_to_chat: true,
        missed_status: MissedStatus::Missed304,
        anonymous_number: PhoneNumber::parse("0000").unwrap(),
        recording: Some(RecordingSettings {
            path_template: PathTemplate::parse("/rec/{date}/{call}-{caller}-{agent}.wav").unwrap(),
            wait_after_hangup: 10 * S,
        }),
        missed_owner: MissedOwner {
            steps: Vec::new(),
            last_resort: OWNER,
        },
        agent_cards: AgentCards::default(),
        callback: None,
    }
}

pub(crate) fn route(queue: &str, strategy: Strategy, ring: &[u64], max_wait: u64) -> QueueRoute {
    QueueRoute {
        queue: QueueName::from(queue),
        strategy,
        ring: ring.iter().map(|s| secs(*s)).collect(),
        max_wait: secs(max_wait),
        rounds: u32::MAX,
        when_none_free: WhenNoneFree::Wait,
        card: CardMode::Ringing,
        overflow: Overflow::Hangup {
            cause: Cause::parse("NORMAL_CLEARING"),
        },
    }
}

/// A direct call to agent `a`: 20 s of ringing, then the call hangs up with `NO_ANSWER`.
pub(crate) fn direct_to_a() -> DirectTarget {
    DirectTarget {
        agent: agent("a"),
        ring_timeout: 20 * S,
        fallback: Overflow::Hangup {
            cause: Cause::NO_ANSWER,
        },
    }
}

pub(crate) fn finish_of(actions: &[Action]) -> Option<FinishCall> {
    actions.iter().find_map(|a| match a {
        Action::Card(BitrixWrite::Finish(f)) => Some(f.clone()),
        _ => None,
    })
}

pub(crate) fn complete(billsec: u32) -> Input {
    Input::HangupComplete {
        billsec,
        cause: Cause::NORMAL_CLEARING,
        sip_term_status: Some(SipStatus(200)),
    }
}

pub(crate) fn hung_up(cause: Cause) -> Input {
    Input::CallerHungUp {
        cause,
        sip_term_status: None,
    }
}

pub(crate) fn started(target: Target) -> Input {
    Input::Started {
        target,
        caller: Caller::Number(PhoneNumber::parse("+4930123456").unwrap()),
        line: Some("4930555000".into()),
        started_at: DateTime::parse_from_rfc3339("2026-05-04T09:15:02+02:00").unwrap(),
    }
}

/// The machine every world runs: one caller channel, ids from a fixed seed.
fn machine(settings: CallSettings) -> Call {
    Call::new(
        settings,
        CallInfo {
            channel: ChannelId::from("caller-uuid"),
            ids: IdSequence::new(1),
        },
    )
}

impl World {
    /// A world whose queues `sales` (a, b, c, d) and `support` (e, f) have no cool-downs.
    pub(crate) fn new() -> Self {
        let agents = ["a", "b", "c", "d", "e", "f"].map(agent).to_vec();
        let queue = |name: &str, members: &[&str]| QueueSettings {
            name: QueueName::from(name),
            agents: members.iter().map(|m| AgentId::from(*m)).collect(),
            order: Order::ListOrder,
            rules: Rules::default(),
        };
        let queues = vec![
            queue("sales", &["a", "b", "c", "d"]),
            queue("support", &["e", "f"]),
        ];
        let t0 = Instant::now();
        Self {
            call: machine(settings()),
            t0,
            now: t0,
            policy: Policy::new(agents, queues, Rules::default()).unwrap(),
            presence: Presence::default(),
            fails_at_once: HashMap::new(),
            log: Vec::new(),
            bridges: HashMap::new(),
            killed: HashSet::new(),
            auto_switch: true,
        }
    }

    /// The same world with both `support` agents (e: 1005, f: 1006) on another call.
    pub(crate) fn with_support_on_call(mut self) -> Self {
        self.presence
            .on_call
            .extend(["1005".to_owned(), "1006".to_owned()]);
        self
    }

    /// The same world around a call with `settings`.
    pub(crate) fn with_settings(mut self, settings: CallSettings) -> Self {
        self.call = machine(settings);
        self
    }

    /// Starts the call in a queue [`route`] (`ring` and `max_wait` in seconds); returns every
    /// action up to where the world waits.
    pub(crate) fn enter_queue(
        &mut self,
        queue: &str,
        strategy: Strategy,
        ring: &[u64],
        max_wait: u64,
    ) -> Vec<Action> {
        self.feed(started(Target::Queue(route(
            queue, strategy, ring, max_wait,
        ))))
    }

    /// Starts the call in a sequential `sales` queue (`ring` in seconds, 60 s max wait) with the
    /// test playing the switch: only the start is handled; returns its actions.
    pub(crate) fn enter_sales_by_hand(&mut self, ring: &[u64]) -> Vec<Action> {
        self.auto_switch = false;
        self.handle(started(Target::Queue(route(
            "sales",
            Strategy::Sequential,
            ring,
            60,
        ))))
    }

    /// Every action emitted exactly at `t0 + at`, in order.
    pub(crate) fn actions_at(&self, at: Duration) -> Vec<Action> {
        self.log
            .iter()
            .filter(|(t, _)| *t == at)
            .map(|(_, a)| a.clone())
            .collect()
    }

    /// Feeds one input and everything the world answers to its actions; returns all actions.
    pub(crate) fn feed(&mut self, input: Input) -> Vec<Action> {
        let mut queue = VecDeque::from([input]);
        let mut all = Vec::new();
        let mut steps = 0;
        while let Some(input) = queue.pop_front() {
            steps += 1;
            assert!(
                steps < 500,
                "the machine spins: {:?}",
                &all[all.len().saturating_sub(10)..]
            );
            let actions = self.call.handle(self.now, input);
            for action in actions {
                self.react(&action, &mut queue);
                self.log.push((self.now - self.t0, action.clone()));
                all.push(action);
            }
        }
        all
    }

    /// Feeds one input without the world answering (the test plays the switch).
    pub(crate) fn handle(&mut self, input: Input) -> Vec<Action> {
        let actions = self.call.handle(self.now, input);
        for action in &actions {
            self.log.push((self.now - self.t0, action.clone()));
        }
        actions
    }

    /// Moves time to `t0 + at`, delivering every deadline that falls due on the way.
    pub(crate) fn run_until(&mut self, at: Duration) {
        let mut steps = 0;
        while let Some(deadline) = self.call.deadline().filter(|d| *d <= self.t0 + at) {
            steps += 1;
            assert!(steps < 500, "deadlines do not advance");
            self.now = deadline.max(self.now);
            self.feed(Input::DeadlinePassed);
        }
        self.now = self.t0 + at;
    }

    /// Moves time to `t0 + at` and feeds `input` there.
    pub(crate) fn at(&mut self, at: Duration, input: Input) -> Vec<Action> {
        self.run_until(at);
        self.feed(input)
    }

    fn react(&mut self, action: &Action, queue: &mut VecDeque<Input>) {
        match action {
            Action::RequestAgents {
                pick:
                    Pick::Queue {
                        queue: name,
                        exclude,
                        all,
                    },
            } => {
                let limit = if *all { usize::MAX } else { 1 };
                let agents = self
                    .policy
                    .pick(self.now, name, exclude, limit, &self.presence)
                    .unwrap();
                queue.push_back(if agents.is_empty() {
                    Input::NoAgentFree
                } else {
                    Input::AgentsOffered { agents }
                });
            }
            Action::RequestAgents {
                pick: Pick::Agent(agent),
            } => {
                let input = match self.policy.pick_agent(self.now, agent, &self.presence) {
                    Some(info) => Input::AgentsOffered { agents: vec![info] },
                    None => Input::NoAgentFree,
                };
                queue.push_back(input);
            }
            Action::ReleaseAgent { agent, outcome } => {
                self.policy.release(self.now, agent, *outcome);
            }
            Action::Bridge { exec, legs, .. } => {
                self.bridges
                    .insert(exec.clone(), legs.iter().map(|l| l.leg.clone()).collect());
                if !self.auto_switch {
                    return;
                }
                queue.push_back(Input::BridgeStarted { exec: exec.clone() });
                let failures: Vec<_> = legs
                    .iter()
                    .filter_map(|l| self.fails_at_once.get(&l.extension).copied())
                    .collect();
                if failures.len() == legs.len()
                    && let Some(cause) = failures.last()
                {
                    let outcome = BridgeOutcome::Failed {
                        cause: Cause::parse(cause),
                        sip_status: None,
                    };
                    queue.push_back(Input::BridgeEnded {
                        exec: exec.clone(),
                        outcome,
                    });
                }
            }
            Action::KillLeg { leg, cause } => {
                self.killed.insert(leg.clone());
                // The switch reports the bridge's end once its last leg is gone (stale by then).
                let done = self.bridges.iter().find(|(_, legs)| {
                    legs.contains(leg) && legs.iter().all(|l| self.killed.contains(l))
                });
                if let Some((exec, _)) = done {
                    let outcome = BridgeOutcome::Failed {
                        cause: cause.clone(),
                        sip_status: None,
                    };
                    queue.push_back(Input::BridgeEnded {
                        exec: exec.clone(),
                        outcome,
                    });
                }
            }
            _ => {}
        }
    }

    /// The last bridge: its exec and legs.
    pub(crate) fn last_bridge(&self) -> (ExecId, Vec<BridgeLeg>) {
        self.log
            .iter()
            .rev()
            .find_map(|(_, a)| match a {
                Action::Bridge { exec, legs, .. } => Some((exec.clone(), legs.clone())),
                _ => None,
            })
            .expect("a bridge")
    }

    /// The leg of `name` in the last bridge.
    pub(crate) fn leg_of(&self, name: &str) -> LegId {
        let (_, legs) = self.last_bridge();
        legs.into_iter()
            .find(|l| l.agent.as_str() == name)
            .map(|l| l.leg)
            .expect("agent in last bridge")
    }

    /// Per user, the intervals (offsets from `t0`) during which their card was open; an interval
    /// still open ends at `None`.
    pub(crate) fn card_intervals(
        &self,
    ) -> HashMap<BitrixUserId, Vec<(Duration, Option<Duration>)>> {
        let mut map: HashMap<BitrixUserId, Vec<(Duration, Option<Duration>)>> = HashMap::new();
        let open = |map: &mut HashMap<_, Vec<_>>, u: BitrixUserId, at| {
            map.entry(u).or_default().push((at, None))
        };
        let close = |map: &mut HashMap<BitrixUserId, Vec<(Duration, Option<Duration>)>>,
                     u: BitrixUserId,
                     at| {
            if let Some(last) = map
                .get_mut(&u)
                .and_then(|v| v.last_mut())
                .filter(|l| l.1.is_none())
            {
                last.1 = Some(at);
            }
        };
        for (at, action) in &self.log {
            match action {
                Action::Card(BitrixWrite::Register(r)) if r.show => open(&mut map, r.user, *at),
                Action::Card(BitrixWrite::Show { users }) => {
                    users.iter().for_each(|u| open(&mut map, *u, *at))
                }
                Action::Card(BitrixWrite::Hide { users }) => {
                    users.iter().for_each(|u| close(&mut map, *u, *at))
                }
                Action::Card(BitrixWrite::Finish(f)) => close(&mut map, f.user, *at),
                _ => {}
            }
        }
        map
    }

    /// Only the card writes Bitrix24 receives, in order (no recovery notes).
    pub(crate) fn cards(&self) -> Vec<BitrixWrite> {
        self.log
            .iter()
            .filter_map(|(_, a)| match a {
                Action::Card(BitrixWrite::Note(_)) => None,
                Action::Card(w) => Some(w.clone()),
                _ => None,
            })
            .collect()
    }

    /// The recovery notes, in order.
    pub(crate) fn notes(&self) -> Vec<crate::outbox::op::CallNote> {
        self.log
            .iter()
            .filter_map(|(_, a)| match a {
                Action::Card(BitrixWrite::Note(n)) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }
}
