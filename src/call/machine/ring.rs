//! Hunting for an agent: asking the queue, bridging, timing ring steps, handing over to the next
//! agent in the same step, rounds, `max_wait` and overflow. Cards follow each ringing phone.

use std::time::Duration;

use tokio::time::Instant;

use crate::ids::{AgentId, BitrixUserId, ExecId, LegId};
use crate::outbox::op::{BitrixWrite, CallNote};
use crate::queue::{AgentInfo, Outcome};

use super::WhenNoneFree;
use super::{
    Action, BridgeLeg, Call, CardMode, DirectTarget, Overflow, Pick, QueueRoute, State, Strategy,
    Talk,
};

/// Ring time used if a route came without any (the config forbids that).
const DEFAULT_RING: Duration = Duration::from_secs(20);

/// How the current target is being rung.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Plan {
    /// One extension (employee, responsible manager, overflow agent); `reserved` when the queue
    /// actor reserved it.
    Direct {
        ring_timeout: Duration,
        fallback: Overflow,
        reserved: bool,
    },
    /// A queue.
    Queue(Hunt),
}

/// Progress through a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Hunt {
    pub(super) route: QueueRoute,
    /// Agents tried in this round.
    pub(super) tried: Vec<AgentId>,
    /// Attempts whose phone actually rang (they pick the ring step).
    pub(super) rung: usize,
    pub(super) give_up_at: Instant,
    /// Whether the outstanding request excluded nobody (a "nobody free" then means really nobody).
    pub(super) fresh: bool,
    /// Whether a phone actually rang this round. A round of only busy or unreachable phones does
    /// not start the next one at once (that would spin); the queue waits or overflows instead.
    pub(super) rang_in_round: bool,
    /// Rounds started so far (the first is 1).
    pub(super) round: u32,
}

impl Plan {
    pub(super) fn give_up_at(&self) -> Option<Instant> {
        match self {
            Plan::Queue(hunt) => Some(hunt.give_up_at),
            Plan::Direct { .. } => None,
        }
    }
}

/// The bridge in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Ring {
    pub(super) exec: ExecId,
    pub(super) legs: Vec<RingLeg>,
    pub(super) step: Duration,
    pub(super) started: bool,
    /// End of the ring step (provisional until the switch reports the bridge started).
    pub(super) until: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RingLeg {
    pub(super) agent: AgentInfo,
    pub(super) leg: LegId,
    pub(super) reserved: bool,
    /// When this agent's card opens.
    pub(super) card: CardMode,
}

impl Ring {
    pub(super) fn users(&self) -> Vec<BitrixUserId> {
        self.legs.iter().map(|l| l.agent.user).collect()
    }
}

impl Call {
    pub(super) fn ring_direct(
        &mut self,
        now: Instant,
        direct: DirectTarget,
        out: &mut Vec<Action>,
    ) {
        let plan = Plan::Direct {
            ring_timeout: direct.ring_timeout,
            fallback: direct.fallback,
            reserved: false,
        };
        self.state = State::Hunting {
            plan,
            ring: None,
            retry_at: None,
            awaiting_offer: false,
        };
        let ring = (direct.ring_timeout, false, CardMode::Ringing);
        self.bridge(now, vec![direct.agent], ring, out);
    }

    pub(super) fn enter_queue(&mut self, now: Instant, route: QueueRoute, out: &mut Vec<Action>) {
        let give_up_at = now + route.max_wait;
        let hunt = Hunt {
            route,
            tried: Vec::new(),
            rung: 0,
            give_up_at,
            fresh: true,
            rang_in_round: false,
            round: 1,
        };
        self.state = State::Hunting {
            plan: Plan::Queue(hunt),
            ring: None,
            retry_at: None,
            awaiting_offer: false,
        };
        self.request(out);
    }

    pub(super) fn lookup_done(
        &mut self,
        now: Instant,
        responsible: Option<(BitrixUserId, AgentId)>,
        out: &mut Vec<Action>,
    ) {
        let State::LookingUp {
            ring_timeout,
            fallback,
            ..
        } = &self.state
        else {
            tracing::debug!("lookup result outside lookup; ignored");
            return;
        };
        let (ring_timeout, fallback) = (*ring_timeout, fallback.clone());
        match responsible {
            Some((user, agent)) => {
                self.responsible = Some(user);
                let fallback = Overflow::Queue(Box::new(fallback));
                let plan = Plan::Direct {
                    ring_timeout,
                    fallback,
                    reserved: true,
                };
                self.state = State::Hunting {
                    plan,
                    ring: None,
                    retry_at: None,
                    awaiting_offer: true,
                };
                out.push(Action::RequestAgents {
                    pick: Pick::Agent(agent),
                });
            }
            None => self.enter_queue(now, fallback, out),
        }
    }

    /// Asks the queue for the next agent(s) of the current round.
    pub(super) fn request(&mut self, out: &mut Vec<Action>) {
        let State::Hunting {
            plan: Plan::Queue(hunt),
            awaiting_offer,
            ..
        } = &mut self.state
        else {
            return;
        };
        *awaiting_offer = true;
        hunt.fresh = hunt.tried.is_empty();
        let all = hunt.route.strategy == Strategy::Simultaneous;
        let pick = Pick::Queue {
            queue: hunt.route.queue.clone(),
            exclude: hunt.tried.clone(),
            all,
        };
        out.push(Action::RequestAgents { pick });
    }

    pub(super) fn offered(
        &mut self,
        now: Instant,
        mut agents: Vec<AgentInfo>,
        out: &mut Vec<Action>,
    ) {
        if agents.is_empty() {
            return self.none_free(now, out);
        }
        let waiting = matches!(
            self.state,
            State::Hunting {
                ring: None,
                awaiting_offer: true,
                ..
            }
        );
        if !waiting {
            // A late answer (the caller left, or we moved on): give the agents back untouched.
            for agent in agents {
                out.push(Action::ReleaseAgent {
                    agent: agent.agent,
                    outcome: Outcome::Cancelled,
                });
            }
            return;
        }
        let State::Hunting {
            plan,
            awaiting_offer,
            ..
        } = &mut self.state
        else {
            return;
        };
        *awaiting_offer = false;
        let ring = match plan {
            Plan::Direct { ring_timeout, .. } => (*ring_timeout, false, CardMode::Ringing),
            Plan::Queue(hunt) => {
                let index = hunt.rung.min(hunt.route.ring.len().saturating_sub(1));
                let step = hunt.route.ring.get(index).copied().unwrap_or(DEFAULT_RING);
                let simultaneous = hunt.route.strategy == Strategy::Simultaneous;
                if !simultaneous {
                    for extra in agents.split_off(1) {
                        out.push(Action::ReleaseAgent {
                            agent: extra.agent,
                            outcome: Outcome::Cancelled,
                        });
                    }
                }
                hunt.tried.extend(agents.iter().map(|a| a.agent.clone()));
                (step, simultaneous, hunt.route.card)
            }
        };
        self.bridge(now, agents, ring, out);
        if let State::Hunting {
            ring: Some(ring), ..
        } = &mut self.state
        {
            ring.legs.iter_mut().for_each(|l| l.reserved = true);
        }
    }

    pub(super) fn none_free(&mut self, now: Instant, out: &mut Vec<Action>) {
        let retry_interval = self.settings.retry_interval;
        let State::Hunting {
            plan,
            retry_at,
            ring: None,
            awaiting_offer,
        } = &mut self.state
        else {
            return;
        };
        if !std::mem::take(awaiting_offer) {
            return;
        }
        match plan {
            Plan::Direct { fallback, .. } => {
                let fallback = fallback.clone();
                self.overflow(now, fallback, out);
            }
            // The last round ended: overflow (this once ignored `rounds` and hunted until
            // max_wait; pinned by call_queue::a_sequential_queue_*).
            Plan::Queue(hunt) if !hunt.fresh && hunt.round >= hunt.route.rounds => {
                let overflow = hunt.route.overflow.clone();
                self.overflow(now, overflow, out);
            }
            // A round ended: start the next one through the whole list at once.
            Plan::Queue(hunt) if !hunt.fresh && hunt.rang_in_round => {
                hunt.round += 1;
                hunt.tried.clear();
                hunt.rang_in_round = false;
                self.request(out);
            }
            Plan::Queue(hunt) => match hunt.route.when_none_free {
                WhenNoneFree::Wait => *retry_at = Some(now + retry_interval),
                WhenNoneFree::Overflow => {
                    let overflow = hunt.route.overflow.clone();
                    self.overflow(now, overflow, out);
                }
            },
        }
    }

    /// Rings `agents` for `step` (all at once when `simultaneous`); `card` is the mode of agents
    /// without their own.
    fn bridge(
        &mut self,
        now: Instant,
        agents: Vec<AgentInfo>,
        (step, simultaneous, card): (Duration, bool, CardMode),
        out: &mut Vec<Action>,
    ) {
        let exec = self.info.ids.exec();
        let legs: Vec<RingLeg> = agents
            .into_iter()
            .map(|agent| RingLeg {
                card: self.card_mode(Some(&agent.agent), card),
                agent,
                leg: self.info.ids.leg(),
                reserved: false,
            })
            .collect();
        let leg_timeout = step + self.settings.leg_timeout_margin;
        out.push(Action::Bridge {
            exec: exec.clone(),
            legs: legs
                .iter()
                .map(|l| BridgeLeg {
                    agent: l.agent.agent.clone(),
                    leg: l.leg.clone(),
                    extension: l.agent.extension.clone(),
                    external: None,
                })
                .collect(),
            simultaneous,
            leg_timeout,
        });
        for l in &legs {
            tracing::debug!(agent = %l.agent.agent, leg = %l.leg, ring_ms = step.as_millis() as u64, "ringing agent");
        }
        if let State::Hunting { ring, .. } = &mut self.state {
            // Until the switch reports the bridge running, the safety-net timeout bounds the wait.
            *ring = Some(Ring {
                exec,
                legs,
                step,
                started: false,
                until: now + leg_timeout,
            });
        }
    }

    pub(super) fn bridge_started(&mut self, now: Instant, exec: &ExecId, out: &mut Vec<Action>) {
        let State::Hunting {
            ring: Some(ring), ..
        } = &mut self.state
        else {
            return;
        };
        if ring.exec != *exec || ring.started {
            return;
        }
        ring.started = true;
        // The step counts from here, in step with the switch's own ringing.
        ring.until = now + ring.step;
        let users: Vec<_> = ring
            .legs
            .iter()
            .filter(|l| l.card == CardMode::Ringing)
            .map(|l| l.agent.user)
            .collect();
        self.open_cards(&users, out);
    }

    pub(super) fn leg_answered(&mut self, now: Instant, leg: &LegId, out: &mut Vec<Action>) {
        let State::Hunting {
            ring: Some(ring), ..
        } = &mut self.state
        else {
            tracing::debug!(leg = %leg, "answer outside ringing; ignored");
            return;
        };
        let Some(winner) = ring.legs.iter().position(|l| l.leg == *leg) else {
            tracing::debug!(leg = %leg, "answer from a leg we no longer ring; ignored");
            return;
        };
        let mut legs = std::mem::take(&mut ring.legs);
        let exec = ring.exec.clone();
        let won = legs.remove(winner);
        // The switch cancels the other legs itself (LOSE_RACE); they cost their agents nothing.
        let losers: Vec<_> = legs
            .iter()
            .map(|l| l.agent.user)
            .filter(|u| *u != won.agent.user)
            .collect();
        for l in legs.into_iter().filter(|l| l.reserved) {
            out.push(Action::ReleaseAgent {
                agent: l.agent.agent,
                outcome: Outcome::Cancelled,
            });
        }
        self.cards.close(&losers, out);
        self.card_for_talker(won.agent.user, won.card, out);
        out.push(Action::Card(BitrixWrite::Note(CallNote::Answered {
            user: won.agent.user,
            at: None,
        })));
        tracing::info!(agent = %won.agent.agent, leg = %won.leg, "agent answered");
        let (agent, user) = (Some(won.agent.agent), won.agent.user);
        self.talk = Some(Talk {
            agent,
            user,
            reserved: won.reserved,
            exec,
            since: now,
            transferred: false,
        });
        self.state = State::Talking;
        self.start_recording(out);
    }
}
