//! One inbound call's lifecycle as a pure state machine: `handle(now, Input) -> Vec<Action>`.
//! It decides whom to ring and when, mirrors every leg change onto the Bitrix24 card and builds the
//! final `finish`. No IO, no clock reads, no spawning: the call task executes the actions and
//! feeds back what happened. Ids for new legs and executes are random v4 UUIDs made here.

mod cards;
mod end;
mod ring;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use tokio::time::Instant;

use crate::call::status::{Attempt, Cause, MissedStatus, SipStatus};
use crate::ids::{AgentId, BitrixUserId, ChannelId, ExecId, LegId, PhoneNumber, QueueName};
use crate::outbox::op::BitrixWrite;
use crate::queue::{AgentInfo, Outcome};

use cards::Cards;

// === Settings ===

/// Per-call behaviour, mapped from the config by the lead. Plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSettings {
    /// What the caller hears while agents ring: a tone spec (`%(2000,4000,440,480)`) or a sound
    /// URI, set as both `ringback` and `transfer_ringback`.
    pub ringback: String,
    /// Answer the caller before ringing anybody (the route plays something first). When false we
    /// only signal ringing (`ring_ready`) and the caller is answered by the agent's answer.
    pub answer: bool,
    /// How long a client's responsible manager may take to be found (register result + lookup)
    /// before the call goes to the fallback queue.
    pub lookup_timeout: Duration,
    /// How often a call asks again when nobody is free and the queue says wait.
    pub retry_interval: Duration,
    /// Added to each ring step for the switch's own `leg_timeout` (a safety net; we end legs
    /// ourselves on time).
    pub leg_timeout_margin: Duration,
    /// `CRM_CREATE` of the register.
    pub crm_create: bool,
    /// `ADD_TO_CHAT` of the finish.
    pub add_to_chat: bool,
    /// `STATUS_CODE` policy for unanswered calls.
    pub missed_status: MissedStatus,
    /// The number registered for callers without one (Bitrix24 refuses `anonymous`).
    pub anonymous_number: PhoneNumber,
    /// Record answered calls.
    pub recording: Option<RecordingSettings>,
}

/// Recording of answered calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSettings {
    /// File path with placeholders `{uuid}` (caller channel), `{date}` (`YYYY-MM-DD`), `{time}`
    /// (`HHMMSS`), `{caller}` and `{agent}`. Substituted values are reduced to `[A-Za-z0-9+_.-]`
    /// because `record_session` splits its argument on spaces.
    pub path_template: String,
    /// How long after the hang-up we wait for the file to be closed before finishing without it.
    pub wait_after_hangup: Duration,
}

/// Who a call is for, as the route resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An employee's own number (scenario 1): ring that extension.
    Agent(DirectTarget),
    /// A queue (scenario 2).
    Queue(QueueRoute),
    /// A known client (scenario 3): register without a card, look up the responsible manager and
    /// ring them; anything short of their answer goes to `fallback`.
    Responsible {
        /// How long the manager's phone rings.
        ring_timeout: Duration,
        /// Where the call goes otherwise; its owner owns the register.
        fallback: QueueRoute,
    },
}

/// One extension rung directly (not through a queue, so not reserved there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectTarget {
    /// The agent (extension, Bitrix24 user).
    pub agent: AgentInfo,
    /// How long it rings.
    pub ring_timeout: Duration,
    /// Where the call goes when it is not answered.
    pub fallback: Overflow,
}

/// A queue as a call hunts through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRoute {
    /// The queue (its agents and their rules live in the queue actor).
    pub queue: QueueName,
    /// One by one, or all at once.
    pub strategy: Strategy,
    /// Ring time per attempt (sequential: the k-th agent rings `ring[k]`, the last value repeats;
    /// simultaneous: per round). Never empty (validated by the config).
    pub ring: Vec<Duration>,
    /// Longest time a caller spends in this queue before `overflow`.
    pub max_wait: Duration,
    /// What to do when nobody is free.
    pub when_none_free: WhenNoneFree,
    /// Who owns the call's register and its missed-call record until an agent's phone rings.
    pub owner: BitrixUserId,
    /// Where the call goes after `max_wait`.
    pub overflow: Overflow,
}

/// How a queue rings its agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// One free agent at a time, for one ring step each.
    Sequential,
    /// Every free agent at once; the first to answer wins.
    Simultaneous,
}

/// What a queue does when no agent is free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenNoneFree {
    /// Keep the caller and ask again every `retry_interval` (until `max_wait`).
    Wait,
    /// Go to the overflow target at once.
    Overflow,
}

/// Where a call goes when a queue or a direct target gives up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overflow {
    /// Another queue.
    Queue(Box<QueueRoute>),
    /// One extension.
    Agent(Box<DirectTarget>),
    /// Hang the caller up with this cause.
    Hangup {
        /// The cause sent to the caller.
        cause: Cause,
    },
}

/// Facts about the call known when its session opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    /// The caller's channel (`Unique-ID`), used in recording paths.
    pub channel: ChannelId,
}

// === Inputs and actions ===

/// The caller's number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A usable number.
    Number(PhoneNumber),
    /// Withheld or unparseable.
    Anonymous,
}

/// How an agent bridge ended (`CHANNEL_EXECUTE_COMPLETE` of our `bridge`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeOutcome {
    /// The bridge was up and has ended (the agent side hung up or was transferred away).
    Success,
    /// Nobody answered: `originate_disposition` and any SIP status received.
    Failed {
        /// The failure cause.
        cause: Cause,
        /// `sip_invite_failure_status` (or `last_bridge_proto_specific_hangup_cause`), if real.
        sip_status: Option<SipStatus>,
    },
}

/// The new party of a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transferee {
    /// The agent now talking, if the destination is one of ours.
    pub agent: Option<AgentId>,
    /// The Bitrix24 user who gets the card.
    pub user: BitrixUserId,
}

/// What happened (past tense). The lead maps ESL events and actor answers to these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The route was resolved; the call begins.
    Started {
        /// Whom to ring.
        target: Target,
        /// Who is calling.
        caller: Caller,
        /// The DID (`LINE_NUMBER`).
        line: Option<String>,
        /// When the channel was created (wall clock, with offset).
        started_at: DateTime<FixedOffset>,
    },
    /// The queue reserved these agents for us (answer to [`Action::RequestAgents`]; never empty).
    AgentsOffered {
        /// The agents, in offer order.
        agents: Vec<AgentInfo>,
    },
    /// The queue had nobody free (answer to [`Action::RequestAgents`]).
    NoAgentFree,
    /// The switch started our bridge (`CHANNEL_EXECUTE` with our `Application-UUID`): phones ring.
    BridgeStarted {
        /// The bridge's execute id.
        exec: ExecId,
    },
    /// An agent leg answered and was bridged to the caller (`CHANNEL_BRIDGE`).
    LegAnswered {
        /// The answering leg.
        leg: LegId,
    },
    /// Our bridge returned (`CHANNEL_EXECUTE_COMPLETE`).
    BridgeEnded {
        /// The bridge's execute id.
        exec: ExecId,
        /// How.
        outcome: BridgeOutcome,
    },
    /// The caller was unbridged (`CHANNEL_UNBRIDGE`).
    Unbridged,
    /// `RECORD_START`.
    RecordStarted {
        /// The file.
        path: PathBuf,
    },
    /// `RECORD_STOP`: the file is complete.
    RecordStopped {
        /// The file.
        path: PathBuf,
    },
    /// The caller leg hung up (`CHANNEL_HANGUP`).
    CallerHungUp {
        /// Its cause.
        cause: Cause,
        /// `sip_term_status`, if the far end sent one.
        sip_term_status: Option<SipStatus>,
    },
    /// `CHANNEL_HANGUP_COMPLETE` of the caller leg.
    HangupComplete {
        /// `billsec`: seconds since the caller leg was answered.
        billsec: u32,
        /// Its cause.
        cause: Cause,
        /// `sip_term_status`, if any.
        sip_term_status: Option<SipStatus>,
    },
    /// The conversation moved to another party (blind, attended or `uuid_transfer`); `None` when
    /// the destination is nobody we know (the card stays with the current user).
    Transferred {
        /// The new party.
        to: Option<Transferee>,
    },
    /// The responsible manager lookup ended: their user and agent, if found and mapped.
    LookupFinished {
        /// `(user, agent)`.
        responsible: Option<(BitrixUserId, AgentId)>,
    },
    /// The driver gave up on the lookup.
    LookupTimedOut,
    /// [`Call::deadline`] has passed.
    DeadlinePassed,
    /// The daemon is stopping.
    Shutdown,
}

/// Which agents to ask the queue actor for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// From a queue, skipping `exclude`; one agent, or every free one (`all`).
    Queue {
        /// The queue.
        queue: QueueName,
        /// Agents already tried this round.
        exclude: Vec<AgentId>,
        /// Ring-all round.
        all: bool,
    },
    /// This agent, if free.
    Agent(AgentId),
}

/// One agent leg of a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeLeg {
    /// The agent.
    pub agent: AgentId,
    /// Its pre-assigned `origination_uuid`.
    pub leg: LegId,
    /// The extension to dial.
    pub extension: String,
}

/// What to do (imperative). The call task executes them in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Set these channel variables on the caller leg (once, before any bridge).
    SetCallerVars {
        /// `(name, value)` pairs.
        vars: Vec<(String, String)>,
    },
    /// Answer the caller leg.
    Answer,
    /// Tell the caller it is ringing (`ring_ready`, SIP 180).
    RingReady,
    /// Ask the queue actor; answer with [`Input::AgentsOffered`] or [`Input::NoAgentFree`].
    RequestAgents {
        /// Whom.
        pick: Pick,
    },
    /// `sendmsg execute bridge` on the caller leg with `Event-UUID = exec`.
    Bridge {
        /// The execute id.
        exec: ExecId,
        /// The agent legs (`,`-joined when simultaneous).
        legs: Vec<BridgeLeg>,
        /// Ring all legs at once.
        simultaneous: bool,
        /// The switch's own `leg_timeout` (safety net).
        leg_timeout: Duration,
    },
    /// `uuid_kill <leg> <cause>`.
    KillLeg {
        /// The leg.
        leg: LegId,
        /// The cause (`NO_ANSWER` at our step end, `ORIGINATOR_CANCEL` when the caller left).
        cause: Cause,
    },
    /// `record_session <path>` on the caller leg.
    StartRecording {
        /// The file.
        path: PathBuf,
    },
    /// Give an agent back to the queue actor with the attempt's outcome.
    ReleaseAgent {
        /// The agent.
        agent: AgentId,
        /// How it went.
        outcome: Outcome,
    },
    /// Hang the caller leg up.
    HangupCaller {
        /// With this cause.
        cause: Cause,
    },
    /// A Bitrix24 write for this call, in order, through the outbox.
    Card(BitrixWrite),
    /// Wait for the register's CRM result and look up the client's responsible manager; answer
    /// with [`Input::LookupFinished`] (or [`Input::LookupTimedOut`]).
    Lookup {
        /// The client's number.
        phone: PhoneNumber,
    },
    /// Close the session (`exit`); the call is over for us.
    Exit,
}

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
    },
    Talking,
    /// We asked the switch to hang the caller up; waiting for it.
    Closing,
    /// The caller is gone; waiting for `HangupComplete`, then perhaps for the recording.
    HungUp {
        finish: Option<end::PendingFinish>,
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
}

/// What `Started` told us.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    caller: Caller,
    line: Option<String>,
    started_at: DateTime<FixedOffset>,
}

/// One call's state machine.
#[derive(Debug)]
pub struct Call {
    settings: CallSettings,
    info: CallInfo,
    state: State,
    meta: Option<Meta>,
    cards: Cards,
    awaiting_offer: bool,
    talk: Option<Talk>,
    transferred: bool,
    recording: end::Recording,
    last_attempt: Option<Attempt>,
    caller_cause: Option<Cause>,
    caller_gave_up: bool,
}

impl Call {
    /// A call whose session just opened; it acts on [`Input::Started`].
    pub fn new(settings: CallSettings, info: CallInfo, _now: Instant) -> Self {
        Self {
            settings,
            info,
            state: State::Idle,
            meta: None,
            cards: Cards::default(),
            awaiting_offer: false,
            talk: None,
            transferred: false,
            recording: end::Recording::Off,
            last_attempt: None,
            caller_cause: None,
            caller_gave_up: false,
        }
    }

    /// Applies one fact and returns what to do, in order.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
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
            Input::RecordStarted { path } => self.recording = end::Recording::Started(path),
            Input::RecordStopped { path } => self.record_stopped(path, &mut out),
            Input::CallerHungUp { cause, .. } => self.caller_hung_up(now, cause, &mut out),
            Input::HangupComplete { billsec, cause, .. } => {
                self.hangup_complete(now, billsec, cause, &mut out)
            }
            Input::DeadlinePassed => self.deadline_passed(now, &mut out),
            Input::Shutdown => self.shutdown(now, &mut out),
        }
        out
    }

    /// When the driver must deliver [`Input::DeadlinePassed`], if ever.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::LookingUp { until, .. } => Some(*until),
            State::Hunting {
                plan,
                ring,
                retry_at,
            } => [plan.give_up_at(), ring.as_ref().map(|r| r.until), *retry_at]
                .into_iter()
                .flatten()
                .min(),
            State::HungUp {
                finish: Some(pending),
            } => Some(pending.until),
            _ => None,
        }
    }

    /// Whether the call is over for us (its last card write and `Exit` were emitted).
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// The Bitrix24 users whose card is open now (for logs and tests).
    pub fn card_holders(&self) -> &[BitrixUserId] {
        self.cards.open()
    }

    fn start(&mut self, now: Instant, target: Target, meta: Meta, out: &mut Vec<Action>) {
        if self.state != State::Idle {
            tracing::debug!("call started twice; ignored");
            return;
        }
        let ringback = self.settings.ringback.clone();
        let vars = [
            ("continue_on_fail", "true"),
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
        match target {
            Target::Agent(direct) => self.ring_direct(now, direct, out),
            Target::Queue(route) => self.enter_queue(now, route, out),
            Target::Responsible {
                ring_timeout,
                fallback,
            } => {
                self.cards.set_owner(fallback.owner);
                self.register(fallback.owner, false, out);
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
    match cause.as_str() {
        "USER_BUSY" | "BUSY_EVERYWHERE" => Outcome::Busy,
        "CALL_REJECTED" | "DECLINE" | "REJECT_ALL" | "UNWANTED" => Outcome::Rejected,
        "NO_ANSWER"
        | "ALLOTTED_TIMEOUT"
        | "NO_USER_RESPONSE"
        | "PROGRESS_TIMEOUT"
        | "RECOVERY_ON_TIMER_EXPIRE" => Outcome::NoAnswer,
        "ORIGINATOR_CANCEL" | "LOSE_RACE" | "PICKED_OFF" => Outcome::Cancelled,
        _ => Outcome::Unreachable,
    }
}

#[cfg(test)]
mod tests;
