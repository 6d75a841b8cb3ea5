//! The pure decision logic of one click-to-call: which leg did what, when the Bitrix24 call is
//! over and with which `finish`. No IO; every input carries `now` so tests drive time by hand.

use std::time::Duration;

use tokio::time::Instant;

use crate::call::status::{Attempt, Cause, SipStatus, attempt_status};
use crate::ids::{BitrixUserId, LegId};
use crate::outbox::op::FinishCall;

/// `STATUS_CODE` when the customer was never reached because of our side (agent phone failed,
/// agent hung up first, no extension for the user): Bitrix24's "cancelled" (bitrix24-telephony.md
/// §6.9, §9 outbound column "caller gave up").
pub(crate) const CANCELLED: &str = "603-S";

/// The two legs of a click-to-call: X rings the employee, Y (inside X's `&bridge`) the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Legs {
    /// The agent leg's `origination_uuid` (X).
    pub agent: LegId,
    /// The customer leg's `origination_uuid` (Y).
    pub customer: LegId,
}

/// Time limits of one click-to-call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The call is finished at `start + max_duration` whatever was (not) heard.
    pub max_duration: Duration,
    /// How long to wait for the customer leg's end after the agent leg ended.
    pub settle: Duration,
}

/// What happened, as the driver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The originate job answered `+OK`: the agent picked up (the customer is dialled next).
    OriginateAnswered,
    /// The job answered `-ERR <CAUSE>`: the agent's phone never answered.
    OriginateFailed {
        /// The cause text (`USER_BUSY`, `NO_ANSWER`, ...).
        cause: Cause,
    },
    /// The originate could not even be sent (no connection): nothing rings.
    OriginateNotSent {
        /// Why.
        reason: String,
    },
    /// A channel was created.
    LegCreated {
        /// Its `Unique-ID`.
        leg: String,
    },
    /// A channel was answered.
    LegAnswered {
        /// Its `Unique-ID`.
        leg: String,
    },
    /// A channel finished hanging up.
    LegEnded {
        /// Its `Unique-ID`.
        leg: String,
        /// `Hangup-Cause`.
        cause: Cause,
        /// `sip_term_status`, if any.
        sip_term_status: Option<u16>,
    },
    /// The time returned by [`ClickCall::wake_at`] has come.
    Timer,
    /// Stop following the legs now (shutdown, event stream gone): finish with what is known.
    GiveUp,
}

/// One click-to-call's state. Finishes exactly once; after that every input is ignored.
#[derive(Debug, Clone)]
pub struct ClickCall {
    user: BitrixUserId,
    legs: Legs,
    add_to_chat: bool,
    deadline: Instant,
    settle: Duration,
    agent_answered: bool,
    agent_ended: Option<(Instant, Cause)>,
    agent_failed: Option<Cause>,
    customer_created: bool,
    customer_answered: Option<Instant>,
    finished: bool,
}

impl ClickCall {
    /// A click-to-call whose originate is sent at `now`.
    pub fn new(
        now: Instant,
        user: BitrixUserId,
        legs: Legs,
        limits: Limits,
        add_to_chat: bool,
    ) -> Self {
        Self {
            user,
            legs,
            add_to_chat,
            deadline: now + limits.max_duration,
            settle: limits.settle,
            agent_answered: false,
            agent_ended: None,
            agent_failed: None,
            customer_created: false,
            customer_answered: None,
            finished: false,
        }
    }

    /// Whether the call has been finished.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// When to feed [`Input::Timer`]; `None` once finished.
    pub fn wake_at(&self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        Some(match &self.agent_ended {
            Some((at, _)) => self.deadline.min(*at + self.settle),
            None => self.deadline,
        })
    }

    /// Feeds one input; `Some` exactly once: the `finish` to write.
    pub fn handle(&mut self, now: Instant, input: Input) -> Option<FinishCall> {
        if self.finished {
            return None;
        }
        let finish = match input {
            Input::OriginateAnswered => {
                self.agent_answered = true;
                None
            }
            Input::OriginateFailed { cause } => {
                self.agent_failed = Some(cause.clone());
                Some(self.cancelled(format!("agent phone: {cause}")))
            }
            Input::OriginateNotSent { reason } => {
                Some(self.cancelled(format!("originate not sent: {reason}")))
            }
            Input::LegCreated { leg } => {
                self.customer_created |= self.is_customer(&leg);
                None
            }
            Input::LegAnswered { leg } => self.answered(now, &leg),
            Input::LegEnded {
                leg,
                cause,
                sip_term_status,
            } => self.ended(now, &leg, cause, sip_term_status),
            Input::Timer if self.wake_at().is_some_and(|at| now >= at) => {
                Some(self.timed_out(now, "deadline"))
            }
            Input::Timer => None,
            Input::GiveUp => Some(self.timed_out(now, "stopped following the legs")),
        };
        self.finished = finish.is_some();
        finish
    }

    fn is_customer(&self, leg: &str) -> bool {
        leg == self.legs.customer.as_str()
    }

    fn is_agent(&self, leg: &str) -> bool {
        leg == self.legs.agent.as_str()
    }

    fn answered(&mut self, now: Instant, leg: &str) -> Option<FinishCall> {
        if self.is_agent(leg) {
            self.agent_answered = true;
        } else if self.is_customer(leg) {
            self.customer_created = true;
            self.customer_answered.get_or_insert(now);
        }
        None
    }

    fn ended(
        &mut self,
        now: Instant,
        leg: &str,
        cause: Cause,
        sip: Option<u16>,
    ) -> Option<FinishCall> {
        if self.is_customer(leg) {
            // The customer leg's end decides the call.
            return Some(match self.customer_answered {
                Some(at) => self.talked(now.saturating_duration_since(at)),
                None => self.customer_failed(&Attempt {
                    cause,
                    sip: sip.map(SipStatus),
                }),
            });
        }
        if !self.is_agent(leg) {
            return None;
        }
        self.agent_ended = Some((now, cause.clone()));
        if self.customer_created {
            // Wait (bounded by `settle`) for the customer leg's own end.
            return None;
        }
        Some(self.agent_only(cause))
    }

    /// The agent leg ended and no customer leg was ever seen.
    fn agent_only(&mut self, cause: Cause) -> FinishCall {
        if let Some(failed) = self.agent_failed.clone() {
            return self.cancelled(format!("agent phone: {failed}"));
        }
        if !self.agent_answered {
            return self.cancelled(format!("agent phone: {cause}"));
        }
        // FreeSWITCH hangs the agent up with the customer's cause when the bridge fails
        // (originate_click_to_call.txt run3); NORMAL_CLEARING means the agent hung up first.
        if cause == Cause::NORMAL_CLEARING {
            return self.cancelled("agent hung up before the customer was dialled".to_owned());
        }
        self.customer_failed(&Attempt { cause, sip: None })
    }

    fn timed_out(&mut self, now: Instant, why: &str) -> FinishCall {
        if let Some(at) = self.customer_answered {
            let end = self.agent_ended.as_ref().map_or(now, |(t, _)| *t);
            return self.talked(end.saturating_duration_since(at));
        }
        match self.agent_ended.clone() {
            Some((_, cause)) if self.agent_answered && cause != Cause::NORMAL_CLEARING => {
                self.customer_failed(&Attempt { cause, sip: None })
            }
            _ if self.agent_answered => {
                let mut finish = self.finish(0, "480".to_owned());
                finish.failed_reason = Some(format!("no customer leg result: {why}"));
                finish
            }
            _ => self.cancelled(format!("no agent leg result: {why}")),
        }
    }

    fn talked(&self, talk: Duration) -> FinishCall {
        self.finish(whole_seconds(talk), "200".to_owned())
    }

    fn customer_failed(&self, attempt: &Attempt) -> FinishCall {
        let mut finish = self.finish(0, attempt_status(attempt));
        finish.failed_reason = Some(format!("customer: {}", attempt.cause));
        finish
    }

    fn cancelled(&self, reason: String) -> FinishCall {
        let mut finish = self.finish(0, CANCELLED.to_owned());
        finish.failed_reason = Some(reason);
        finish
    }

    fn finish(&self, duration_secs: u32, status_code: String) -> FinishCall {
        FinishCall {
            user: self.user,
            duration_secs,
            status_code,
            add_to_chat: self.add_to_chat,
            failed_reason: None,
        }
    }
}

/// The `finish` for a click by a Bitrix24 user who has no agent (no extension to ring): the call
/// Bitrix24 opened is closed at once as cancelled, so it never stays open.
pub fn unknown_user_finish(user: BitrixUserId, add_to_chat: bool) -> FinishCall {
    let reason = format!("no extension configured for Bitrix24 user {user}");
    not_dialled_finish(user, add_to_chat, reason)
}

/// The finish of a click-to-call nothing was dialled for: cancelled (`603-S`), with `reason`.
pub fn not_dialled_finish(user: BitrixUserId, add_to_chat: bool, reason: String) -> FinishCall {
    FinishCall {
        user,
        duration_secs: 0,
        status_code: CANCELLED.to_owned(),
        add_to_chat,
        failed_reason: Some(reason),
    }
}

/// Talk time like FreeSWITCH's `billsec`, rounded to the nearest second; at least 1 s once the
/// customer answered, so Bitrix24 counts the call as answered (`CALL_STATUS` follows `DURATION`).
pub(crate) fn whole_seconds(talk: Duration) -> u32 {
    let secs = (talk.as_millis().saturating_add(500) / 1000).max(1);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
