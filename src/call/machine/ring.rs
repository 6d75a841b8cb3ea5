//! Hunting for an agent: asking the queue, bridging, timing ring steps, handing over to the next
//! agent in the same step, rounds, `max_wait` and overflow. Cards follow each ringing phone.

use std::time::Duration;

use tokio::time::Instant;

use crate::call::status::{Attempt, Cause};
use crate::ids::{AgentId, BitrixUserId, ExecId, LegId};
use crate::queue::{AgentInfo, Outcome};

use super::{
    Action, BridgeLeg, BridgeOutcome, Call, DirectTarget, Overflow, Pick, QueueRoute, State,
    Strategy, Talk,
};
use super::{WhenNoneFree, classify};

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
    route: QueueRoute,
    /// Agents tried in this round.
    tried: Vec<AgentId>,
    /// Attempts whose phone actually rang (they pick the ring step).
    rung: usize,
    give_up_at: Instant,
    /// Whether the outstanding request excluded nobody (a "nobody free" then means really nobody).
    fresh: bool,
    /// Whether a phone actually rang this round. A round of only busy or unreachable phones does
    /// not start the next one at once (that would spin); the queue waits or overflows instead.
    rang_in_round: bool,
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
    exec: ExecId,
    legs: Vec<RingLeg>,
    step: Duration,
    started: bool,
    /// End of the ring step (provisional until the switch reports the bridge started).
    pub(super) until: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RingLeg {
    agent: AgentInfo,
    leg: LegId,
    reserved: bool,
}

impl Ring {
    fn users(&self) -> Vec<BitrixUserId> {
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
        self.cards.set_owner(direct.agent.user);
        let plan = Plan::Direct {
            ring_timeout: direct.ring_timeout,
            fallback: direct.fallback,
            reserved: false,
        };
        self.state = State::Hunting {
            plan,
            ring: None,
            retry_at: None,
        };
        self.bridge(now, vec![direct.agent], direct.ring_timeout, false, out);
    }

    pub(super) fn enter_queue(&mut self, now: Instant, route: QueueRoute, out: &mut Vec<Action>) {
        self.cards.set_owner(route.owner);
        let give_up_at = now + route.max_wait;
        let hunt = Hunt {
            route,
            tried: Vec::new(),
            rung: 0,
            give_up_at,
            fresh: true,
            rang_in_round: false,
        };
        self.state = State::Hunting {
            plan: Plan::Queue(hunt),
            ring: None,
            retry_at: None,
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
            Some((_user, agent)) => {
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
                };
                self.awaiting_offer = true;
                out.push(Action::RequestAgents {
                    pick: Pick::Agent(agent),
                });
            }
            None => self.enter_queue(now, fallback, out),
        }
    }

    /// Asks the queue for the next agent(s) of the current round.
    fn request(&mut self, out: &mut Vec<Action>) {
        let State::Hunting {
            plan: Plan::Queue(hunt),
            ..
        } = &mut self.state
        else {
            return;
        };
        hunt.fresh = hunt.tried.is_empty();
        let all = hunt.route.strategy == Strategy::Simultaneous;
        let pick = Pick::Queue {
            queue: hunt.route.queue.clone(),
            exclude: hunt.tried.clone(),
            all,
        };
        self.awaiting_offer = true;
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
        let waiting = matches!(self.state, State::Hunting { ring: None, .. });
        if !self.awaiting_offer || !waiting {
            // A late answer (the caller left, or we moved on): give the agents back untouched.
            for agent in agents {
                out.push(Action::ReleaseAgent {
                    agent: agent.agent,
                    outcome: Outcome::Cancelled,
                });
            }
            return;
        }
        self.awaiting_offer = false;
        let State::Hunting { plan, .. } = &mut self.state else {
            return;
        };
        let (step, simultaneous) = match plan {
            Plan::Direct { ring_timeout, .. } => (*ring_timeout, false),
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
                (step, simultaneous)
            }
        };
        self.bridge(now, agents, step, simultaneous, out);
        if let State::Hunting {
            ring: Some(ring), ..
        } = &mut self.state
        {
            ring.legs.iter_mut().for_each(|l| l.reserved = true);
        }
    }

    pub(super) fn none_free(&mut self, now: Instant, out: &mut Vec<Action>) {
        if !std::mem::take(&mut self.awaiting_offer) {
            return;
        }
        let retry_interval = self.settings.retry_interval;
        let State::Hunting {
            plan,
            retry_at,
            ring: None,
        } = &mut self.state
        else {
            return;
        };
        match plan {
            Plan::Direct { fallback, .. } => {
                let fallback = fallback.clone();
                self.overflow(now, fallback, out);
            }
            // A round ended: start the next one through the whole list at once.
            Plan::Queue(hunt) if !hunt.fresh && hunt.rang_in_round => {
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

    fn bridge(
        &mut self,
        now: Instant,
        agents: Vec<AgentInfo>,
        step: Duration,
        simultaneous: bool,
        out: &mut Vec<Action>,
    ) {
        let exec = ExecId::random();
        let legs: Vec<RingLeg> = agents
            .into_iter()
            .map(|agent| RingLeg {
                agent,
                leg: LegId::random(),
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
        let users = ring.users();
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
        self.open_cards(&[won.agent.user], out);
        tracing::info!(agent = %won.agent.agent, leg = %won.leg, "agent answered");
        let (agent, user) = (Some(won.agent.agent), won.agent.user);
        self.talk = Some(Talk {
            agent,
            user,
            reserved: won.reserved,
            exec,
            since: now,
        });
        self.state = State::Talking;
        self.start_recording(out);
    }

    pub(super) fn bridge_ended(
        &mut self,
        now: Instant,
        exec: &ExecId,
        outcome: BridgeOutcome,
        out: &mut Vec<Action>,
    ) {
        if self.state == State::Talking {
            return self.talk_ended(exec, out);
        }
        let State::Hunting { ring, .. } = &mut self.state else {
            return;
        };
        if ring.as_ref().is_none_or(|r| r.exec != *exec) {
            // The bridge of a leg we already killed and handed over from.
            tracing::debug!(exec = %exec, "stale bridge result; ignored");
            return;
        }
        let BridgeOutcome::Failed { cause, sip_status } = outcome else {
            tracing::debug!("bridge succeeded without an answer; treated as no answer");
            return self.bridge_ended(now, exec, failed(Cause::NO_ANSWER), out);
        };
        let agent_outcome = classify(&cause);
        self.last_attempt = Some(Attempt {
            cause,
            sip: sip_status,
        });
        self.stop_ringing(None, agent_outcome, out);
        self.next_attempt(now, out);
    }

    /// Ends the current ring: kills the legs (when `kill` names a cause), releases the agents with
    /// `outcome`, closes their cards, and counts the attempt if the phones rang.
    pub(super) fn stop_ringing(
        &mut self,
        kill: Option<Cause>,
        outcome: Outcome,
        out: &mut Vec<Action>,
    ) {
        let State::Hunting { ring, plan, .. } = &mut self.state else {
            return;
        };
        let Some(ring) = ring.take() else { return };
        if let Plan::Queue(hunt) = plan
            && matches!(outcome, Outcome::NoAnswer | Outcome::Rejected)
        {
            hunt.rung += 1;
            hunt.rang_in_round = true;
        }
        for l in &ring.legs {
            if let Some(cause) = &kill {
                out.push(Action::KillLeg {
                    leg: l.leg.clone(),
                    cause: cause.clone(),
                });
            }
            if l.reserved {
                out.push(Action::ReleaseAgent {
                    agent: l.agent.agent.clone(),
                    outcome,
                });
            }
        }
        self.cards.close(&ring.users(), out);
    }

    /// After an attempt ended without an answer: the next agent, or the direct target's fallback.
    fn next_attempt(&mut self, now: Instant, out: &mut Vec<Action>) {
        match &self.state {
            State::Hunting {
                plan: Plan::Direct { fallback, .. },
                ..
            } => {
                let fallback = fallback.clone();
                self.overflow(now, fallback, out);
            }
            State::Hunting {
                plan: Plan::Queue(_),
                ..
            } => self.request(out),
            _ => {}
        }
    }

    pub(super) fn hunting_deadline(&mut self, now: Instant, out: &mut Vec<Action>) {
        let State::Hunting {
            plan,
            ring,
            retry_at,
        } = &mut self.state
        else {
            return;
        };
        if let Plan::Queue(hunt) = plan
            && hunt.give_up_at <= now
        {
            let overflow = hunt.route.overflow.clone();
            tracing::info!(queue = %hunt.route.queue, "queue wait exceeded; overflowing");
            self.last_attempt.get_or_insert(Attempt {
                cause: Cause::NO_ANSWER,
                sip: None,
            });
            self.stop_ringing(Some(Cause::NO_ANSWER), Outcome::NoAnswer, out);
            return self.overflow(now, overflow, out);
        }
        if ring.as_ref().is_some_and(|r| r.until <= now) {
            self.last_attempt = Some(Attempt {
                cause: Cause::NO_ANSWER,
                sip: None,
            });
            self.stop_ringing(Some(Cause::NO_ANSWER), Outcome::NoAnswer, out);
            return self.next_attempt(now, out);
        }
        if retry_at.is_some_and(|at| at <= now) {
            *retry_at = None;
            if let Plan::Queue(hunt) = plan {
                hunt.tried.clear();
                hunt.rang_in_round = false;
            }
            self.request(out);
        }
    }

    pub(super) fn overflow(&mut self, now: Instant, target: Overflow, out: &mut Vec<Action>) {
        self.awaiting_offer = false;
        match target {
            Overflow::Queue(route) => self.enter_queue(now, *route, out),
            Overflow::Agent(direct) => self.ring_direct(now, *direct, out),
            Overflow::Hangup { cause } => {
                out.push(Action::HangupCaller { cause });
                self.state = State::Closing;
            }
        }
    }

    /// Kills every ringing leg because the call is going away.
    pub(super) fn cancel_ringing(&mut self, out: &mut Vec<Action>) {
        self.stop_ringing(Some(Cause::ORIGINATOR_CANCEL), Outcome::Cancelled, out);
    }
}

fn failed(cause: Cause) -> BridgeOutcome {
    BridgeOutcome::Failed {
        cause,
        sip_status: None,
    }
}
