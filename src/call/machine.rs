//! One inbound call's lifecycle as a pure state machine: `handle(now, Input) -> Vec<Action>`.
//! It decides whom to ring and when, mirrors every leg change onto the Bitrix24 card and builds the
//! final `finish`. No IO, no clock reads, no spawning: the call task executes the actions and
//! feeds back what happened. Ids for new legs and executes come from the call's [`crate::ids::IdSequence`]
//! (in [`CallInfo`]), so the same inputs give the same outputs.

mod cards;
mod end;
mod forward;
mod hand_over;
mod ring;
mod settings;
mod vocabulary;

use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use tokio::time::Instant;

use crate::call::status::{Attempt, Cause};
use crate::esl::HangupCause as H;
use crate::ids::{AgentId, BitrixUserId, ExecId, PhoneNumber};
use crate::outbox::op::{BitrixWrite, CallNote};
use crate::queue::Outcome;

use cards::Cards;

pub(crate) use forward::{ExternalDial, ForwardTarget};
pub(crate) use settings::{
    AgentCards, CallInfo, CallSettings, CallbackCard, CardMode, DirectTarget, MissedOwner,
    Overflow, OwnerStep, QueueRoute, RecordingSettings, Strategy, Target, WhenNoneFree,
};
pub(crate) use vocabulary::{Action, BridgeLeg, BridgeOutcome, Caller, Input, Pick, Transferee};

// === Call ===

/// Where a call stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Idle,
    LookingUp {
        until: Instant,
        ring_timeout: Duration,
        fallback: QueueRoute,
    },
    Hunting {
        plan: ring::Plan,
        ring: Option<ring::Ring>,
        retry_at: Option<Instant>,
        /// We asked the queue for agents and wait for its answer.
        awaiting_offer: bool,
    },
    Talking,
    /// We asked the switch to hang the caller up; waiting for it.
    Closing,
    /// The caller is gone; waiting for `HangupComplete`, then perhaps for the recording.
    HungUp {
        finish: Option<end::PendingFinish>,
        /// When to hide every card if the recording has not closed by then.
        hide_at: Option<Instant>,
        /// How the caller left.
        caller: end::CallerLeft,
    },
    Finished,
}

/// Who talks with the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Talk {
    /// `None` after a transfer to somebody who is not one of our agents.
    agent: Option<AgentId>,
    user: BitrixUserId,
    reserved: bool,
    exec: ExecId,
    since: Instant,
    /// The switch moved the conversation on (a transfer): only the caller's hang-up ends it.
    transferred: bool,
}

/// What `Started` told us.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    caller: Caller,
    line: Option<String>,
    started_at: DateTime<FixedOffset>,
}

/// One call's state machine.
///
/// Beside `state` live only facts of the call's history, each valid in every state once known
/// (none of them can contradict a state): the finish, the recording path and the missed-call
/// owner read them from whichever state the call ends in.
#[derive(Debug)]
pub(crate) struct Call {
    settings: CallSettings,
    info: CallInfo,
    state: State,
    /// What `Started` told us; `None` until then. Not folded into the states: `HungUp` and
    /// `Finished` are reached both with it and without it (a caller who hangs up, or a
    /// shutdown, before `Started`), the register, recording path and finish read it in several
    /// states, and it never changes once set.
    meta: Option<Meta>,
    cards: Cards,
    talk: Option<Talk>,
    recording: end::RecordingState,
    /// How the last agent attempt failed, whatever the call did afterwards (overflow, a later
    /// conversation, hang-up): the finish's status when nobody answered.
    last_attempt: Option<Attempt>,
    /// The CRM-responsible manager the lookup found: a fact of the call from the lookup on,
    /// read by the missed-call owner chain in any state the call ends in.
    responsible: Option<BitrixUserId>,
    /// The agent whose phone rang last: history, like `last_attempt` (the owner chain's
    /// `last_rung` step), valid in every state after the first ring.
    last_rung: Option<BitrixUserId>,
}

impl Call {
    /// A call whose session just opened; it acts on [`Input::Started`] (and takes the time
    /// with each input: nothing is decided at construction).
    pub(crate) fn new(settings: CallSettings, info: CallInfo) -> Self {
        Self {
            settings,
            info,
            state: State::Idle,
            meta: None,
            cards: Cards::default(),
            talk: None,
            recording: end::RecordingState::Off,
            last_attempt: None,
            responsible: None,
            last_rung: None,
        }
    }

    /// Applies one fact and returns what to do, in order.
    pub(crate) fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Started {
                target,
                caller,
                line,
                started_at,
            } => self.start(
                now,
                target,
                Meta {
                    caller,
                    line,
                    started_at,
                },
                &mut out,
            ),
            Input::LookupFinished { responsible } => self.lookup_done(now, responsible, &mut out),
            Input::LookupTimedOut => self.lookup_done(now, None, &mut out),
            Input::AgentsOffered { agents } => self.offered(now, agents, &mut out),
            Input::NoAgentFree => self.none_free(now, &mut out),
            Input::BridgeStarted { exec } => self.bridge_started(now, &exec, &mut out),
            Input::LegAnswered { leg } => self.leg_answered(now, &leg, &mut out),
            Input::BridgeEnded { exec, outcome } => {
                self.bridge_ended(now, &exec, outcome, &mut out)
            }
            Input::Unbridged => tracing::debug!("caller unbridged"),
            Input::Transferred { to } => self.transferred(to, &mut out),
            Input::RecordStarted { path } => self.recording = end::RecordingState::Started(path),
            Input::RecordStopped { path } => self.record_stopped(path, &mut out),
            Input::CallerHungUp { cause, .. } => self.caller_hung_up(now, cause, &mut out),
            Input::HangupComplete { billsec, cause, .. } => {
                self.hangup_complete(now, billsec, cause, &mut out)
            }
            Input::DeadlinePassed => self.deadline_passed(now, &mut out),
            Input::Shutdown => self.shutdown(&mut out),
        }
        out
    }

    /// When the driver must deliver [`Input::DeadlinePassed`], if ever.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::LookingUp { until, .. } => Some(*until),
            State::Hunting {
                plan,
                ring,
                retry_at,
                ..
            } => [plan.give_up_at(), ring.as_ref().map(|r| r.until), *retry_at]
                .into_iter()
                .flatten()
                .min(),
            State::HungUp {
                finish: Some(pending),
                ..
            } => Some(pending.until),
            State::HungUp {
                finish: None,
                hide_at,
                ..
            } => *hide_at,
            _ => None,
        }
    }

    /// How long the driver lets a responsible-manager lookup run ([`CallSettings::lookup_timeout`]).
    pub(crate) fn lookup_timeout(&self) -> Duration {
        self.settings.lookup_timeout
    }

    /// Whether the call is over for us (its last card write and `Exit` were emitted).
    pub(crate) fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// The Bitrix24 users whose card is open now (for logs and tests).
    pub(crate) fn card_holders(&self) -> &[BitrixUserId] {
        self.cards.open()
    }

    fn start(&mut self, now: Instant, target: Target, meta: Meta, out: &mut Vec<Action>) {
        if self.state != State::Idle {
            tracing::debug!("call started twice; ignored");
            return;
        }
        // continue_on_fail in a command of its own: a `multiset` is refused as a whole when one
        // value is, and without this variable the first failed bridge hangs the caller up
        // (b2_bridge_unregistered_and_unknown_user.txt).
        out.push(Action::SetCallerVars {
            vars: vec![("continue_on_fail".to_owned(), "true".to_owned())],
        });
        let ringback = self.settings.ringback.clone();
        let vars = [
            ("hangup_after_bridge", "false"),
            ("ignore_early_media", "true"),
            ("ringback", ringback.as_str()),
            ("transfer_ringback", ringback.as_str()),
        ];
        out.push(Action::SetCallerVars {
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        });
        out.push(if self.settings.answer {
            Action::Answer
        } else {
            Action::RingReady
        });
        self.meta = Some(meta);
        // Durable before any agent rings (the driver flushes card writes before the first
        // bridge): a run killed before the first card still leaves the call to recover.
        if let Some(accepted) = self.accepted() {
            out.push(Action::Card(BitrixWrite::Note(CallNote::Accepted(
                accepted,
            ))));
        }
        match target {
            Target::Agent(direct) => self.ring_direct(now, direct, out),
            Target::Queue(route) => self.enter_queue(now, route, out),
            Target::Responsible {
                ring_timeout,
                fallback,
            } => {
                self.register(self.settings.missed_owner.fixed(), false, out);
                out.push(Action::Lookup {
                    phone: self.phone(),
                });
                let until = now + self.settings.lookup_timeout;
                self.state = State::LookingUp {
                    until,
                    ring_timeout,
                    fallback,
                };
            }
        }
    }

    fn phone(&self) -> PhoneNumber {
        match self.meta.as_ref().map(|m| &m.caller) {
            Some(Caller::Number(number)) => number.clone(),
            _ => self.settings.anonymous_number.clone(),
        }
    }
}

/// What an agent attempt's failure cause says about the agent.
fn classify(cause: &Cause) -> Outcome {
    match cause.known() {
        Some(H::UserBusy | H::BusyEverywhere) => Outcome::Busy,
        Some(H::CallRejected | H::Decline | H::RejectAll | H::Unwanted) => Outcome::Rejected,
        Some(
            H::NoAnswer
            | H::AllottedTimeout
            | H::NoUserResponse
            | H::ProgressTimeout
            | H::RecoveryOnTimerExpire,
        ) => Outcome::NoAnswer,
        Some(H::OriginatorCancel | H::LoseRace | H::PickedOff) => Outcome::Cancelled,
        _ => Outcome::Unreachable,
    }
}

#[cfg(test)]
pub(crate) mod tests;
