//! The end of one attempt without an answer: failures, ring-step timeouts, `max_wait`, the
//! immediate hand-over to the next agent, and overflow.

use tokio::time::Instant;

use crate::call::status::{Attempt, Cause};
use crate::ids::ExecId;
use crate::queue::Outcome;

use super::ring::Plan;
use super::{Action, BridgeOutcome, Call, Overflow, State, classify};

impl Call {
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
        // Their phone rang (not busy, not unreachable): a missed call may be theirs.
        if ring.started
            && matches!(
                outcome,
                Outcome::NoAnswer | Outcome::Rejected | Outcome::Cancelled
            )
            && let Some(first) = ring.legs.first()
        {
            self.last_rung = Some(first.agent.user);
        }
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
            ..
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
        match target {
            Overflow::Queue(route) => self.enter_queue(now, *route, out),
            Overflow::Agent(direct) => self.ring_direct(now, *direct, out),
            Overflow::Forward(target) => self.ring_forward(now, *target, out),
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
