//! What a call is configured to do: per-call settings and the route's target (plain data the lead
//! maps from the config).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::call::status::{Cause, MissedStatus};
use crate::ids::{AgentId, BitrixUserId, ChannelId, IdSequence, PhoneNumber, QueueName};
use crate::queue::AgentInfo;
use crate::recording::PathTemplate;

/// Each agent's own [`CardMode`], for the agents that set one. Built once per config version and
/// shared by its calls: a copy per call was O(agents) of memory and work for every call.
pub(crate) type AgentCards = Arc<HashMap<AgentId, CardMode>>;

/// Per-call behaviour, mapped from the config by the lead. Plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallSettings {
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
    /// Who a call nobody answered is finished for.
    pub missed_owner: MissedOwner,
    /// Agents whose card opens differently from their queue's [`QueueRoute::card`] (or, outside
    /// a queue, from [`CardMode::Ringing`]).
    pub agent_cards: AgentCards,
    /// Set when the call is a callback fsb24 dialled (`ONEXTERNALCALLBACKSTART`): registered as
    /// `TYPE=4`, bound to the form's CRM entity.
    pub callback: Option<CallbackCard>,
}

/// How a callback's card differs from an inbound call's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallbackCard {
    /// The CRM entity of the callback form (`CRM_ENTITY_TYPE` / `CRM_ENTITY_ID`), if any.
    pub crm: Option<crate::outbox::op::CrmBinding>,
}

/// When an agent's Bitrix24 card opens. Whatever the mode, the call is registered and finished
/// for whoever talked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum CardMode {
    /// While their phone rings, and on while they talk.
    #[default]
    Ringing,
    /// Only once they answer.
    Answered,
    /// Never (`SHOW=0`).
    Never,
}

/// Who owns a missed call: the first step that names somebody, else `last_resort`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MissedOwner {
    /// Tried in order.
    pub steps: Vec<OwnerStep>,
    /// When no step names anybody.
    pub last_resort: BitrixUserId,
}

impl MissedOwner {
    /// The owner known before anything happened: the first fixed user, else the last resort
    /// (used for a register sent before any phone rings).
    pub(crate) fn fixed(&self) -> BitrixUserId {
        self.steps
            .iter()
            .find_map(|s| match s {
                OwnerStep::User(user) => Some(*user),
                _ => None,
            })
            .unwrap_or(self.last_resort)
    }
}

/// One step of a [`MissedOwner`] chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnerStep {
    /// The caller's CRM-responsible manager, if the route's lookup found them among the agents.
    Responsible,
    /// The agent whose phone rang last (the first of a ring-all round).
    LastRung,
    /// This user.
    User(BitrixUserId),
}

/// Recording of answered calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordingSettings {
    /// The file path; see [`PathTemplate`] for its placeholders and how values are made safe.
    pub path_template: PathTemplate,
    /// How long after the hang-up we wait for the file to be closed before finishing without it.
    pub wait_after_hangup: Duration,
}

/// Who a call is for, as the route resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// An employee's own number (scenario 1): ring that extension.
    Agent(DirectTarget),
    /// A queue (scenario 2).
    Queue(QueueRoute),
    /// A known client (scenario 3): register without a card, look up the responsible manager and
    /// ring them; anything short of their answer goes to `fallback`.
    Responsible {
        /// How long the manager's phone rings.
        ring_timeout: Duration,
        /// Where the call goes otherwise.
        fallback: QueueRoute,
    },
}

/// One extension rung directly (not through a queue, so not reserved there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirectTarget {
    /// The agent (extension, Bitrix24 user).
    pub agent: AgentInfo,
    /// How long it rings.
    pub ring_timeout: Duration,
    /// Where the call goes when it is not answered.
    pub fallback: Overflow,
}

/// A queue as a call hunts through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueueRoute {
    /// The queue (its agents and their rules live in the queue actor).
    pub queue: QueueName,
    /// One by one, or all at once.
    pub strategy: Strategy,
    /// Ring time per attempt (sequential: the k-th agent rings `ring[k]`, the last value repeats;
    /// simultaneous: per round). Never empty (validated by the config).
    pub ring: Vec<Duration>,
    /// Longest time a caller spends in this queue before `overflow`.
    pub max_wait: Duration,
    /// Passes over the agent list before `overflow` (at least 1).
    pub rounds: u32,
    /// What to do when nobody is free.
    pub when_none_free: WhenNoneFree,
    /// When the cards of this queue's agents open (an agent's own mode wins).
    pub card: CardMode,
    /// Where the call goes after `max_wait`.
    pub overflow: Overflow,
}

/// How a queue rings its agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// One free agent at a time, for one ring step each.
    Sequential,
    /// Every free agent at once; the first to answer wins.
    Simultaneous,
}

/// What a queue does when no agent is free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhenNoneFree {
    /// Keep the caller and ask again every `retry_interval` (until `max_wait`).
    Wait,
    /// Go to the overflow target at once.
    Overflow,
}

/// Where a call goes when a queue or a direct target gives up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// Another queue.
    Queue(Box<QueueRoute>),
    /// One extension.
    Agent(Box<DirectTarget>),
    /// Hang the caller up with this cause.
    Hangup {
        /// The cause sent to the caller.
        cause: Cause,
    },
    /// An employee's mobile or landline, through the PBX's gateway.
    Forward(Box<super::ForwardTarget>),
}

/// Facts about the call known when its session opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallInfo {
    /// The caller's channel (`Unique-ID`), used in recording paths.
    pub channel: ChannelId,
    /// Where the call's leg and execute ids come from.
    pub ids: IdSequence,
}
