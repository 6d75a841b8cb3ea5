//! The machine's vocabulary: inputs (past-tense facts) and actions (imperatives).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};

use crate::call::status::{Cause, SipStatus};
use crate::ids::{AgentId, BitrixUserId, ExecId, LegId, PhoneNumber, QueueName};
use crate::outbox::op::BitrixWrite;
use crate::queue::{AgentInfo, Outcome};

use super::Target;

/// The caller's number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// A usable number.
    Number(PhoneNumber),
    /// Withheld or unparseable.
    Anonymous,
}

/// How an agent bridge ended (`CHANNEL_EXECUTE_COMPLETE` of our `bridge`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BridgeOutcome {
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
pub(crate) struct Transferee {
    /// The agent now talking, if the destination is one of ours.
    pub agent: Option<AgentId>,
    /// The Bitrix24 user who gets the card.
    pub user: BitrixUserId,
}

/// What happened (past tense). The lead maps ESL events and actor answers to these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
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
        /// Seconds since the caller leg was answered, rounded (`HangupSummary::talk_secs`).
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
pub(crate) enum Pick {
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
pub(crate) struct BridgeLeg {
    /// The agent.
    pub agent: AgentId,
    /// Its pre-assigned `origination_uuid`.
    pub leg: LegId,
    /// The extension to dial.
    pub extension: String,
    /// Set when the leg goes out of the PBX instead (a queue forwarding to a mobile): the
    /// extension is then only the employee's, never dialled.
    pub external: Option<super::ExternalDial>,
}

/// What to do (imperative). The call task executes them in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Set these channel variables on the caller leg (before any bridge; one `multiset` each).
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
    /// Start recording the caller leg to `path` (`uuid_record ... start`).
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
