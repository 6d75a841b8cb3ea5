//! Pure agent selection: which agent a queue offers next (list order or round-robin), who counts as
//! free (registered, idle, not resting, not paused, not already ringing for another call), and what
//! an attempt's outcome costs the agent (wrap-up, cool-down, pause). Takes `now`; never reads a clock.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::ids::{AgentId, BitrixUserId, QueueName};

/// What the switch knows about an agent's phone, read lock-free by the queue (esl::presence
/// implements it). Keyed by extension.
pub trait AgentPresence {
    /// Whether the extension has a live SIP registration.
    fn is_registered(&self, extension: &str) -> bool;
    /// How many channels the extension has up right now (ringing or talking).
    fn live_channels(&self, extension: &str) -> u32;
}

/// An agent as the config names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    /// The agent's config name.
    pub agent: AgentId,
    /// The Bitrix24 user who sees the card while this agent's phone rings.
    pub user: BitrixUserId,
    /// The SIP extension to dial (digits; validated by the config).
    pub extension: String,
}

/// In which order a queue offers its agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Always from the top of the list.
    #[default]
    ListOrder,
    /// Each offer starts after the agent offered last, so work spreads evenly.
    RoundRobin,
}

/// What an attempt costs an agent (per queue; the queue that reserved the agent decides).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rules {
    /// Offer agents who already have a live channel (call waiting).
    pub allow_busy_agents: bool,
    /// Rest after a conversation.
    pub wrap_up: Duration,
    /// Rest after the phone answered busy (or could not be reached).
    pub busy_cooldown: Duration,
    /// Rest after the agent rejected the call.
    pub reject_cooldown: Duration,
    /// Rest after the agent let it ring out.
    pub no_answer_cooldown: Duration,
    /// After this many no-answers in a row the agent is paused; 0 never pauses.
    pub max_no_answer: u32,
    /// How long such a pause lasts.
    pub no_answer_pause: Duration,
}

/// One queue's membership and rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// The queue's name.
    pub name: QueueName,
    /// Its agents, in list order.
    pub agents: Vec<AgentId>,
    /// Offer order.
    pub order: Order,
    /// Costs of outcomes for agents this queue reserved.
    pub rules: Rules,
}

/// How an agent's attempt ended, as reported by the call that had reserved them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// They talked; wrap-up follows.
    Answered,
    /// It rang out (our step timer, or their leg timeout).
    NoAnswer,
    /// Their phone said busy.
    Busy,
    /// They declined.
    Rejected,
    /// Not registered, unknown, or the network failed.
    Unreachable,
    /// The attempt was called off without fault of theirs (caller gave up, another agent won,
    /// shutdown): no cost.
    Cancelled,
}

/// Why an agent is or is not offered now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Can be offered.
    Free,
    /// Not in the config.
    Unknown,
    /// Ringing or talking for a call that reserved them.
    Reserved,
    /// Paused after too many no-answers.
    Paused {
        /// End of the pause.
        until: Instant,
    },
    /// In wrap-up or cool-down.
    Resting {
        /// End of the rest.
        until: Instant,
    },
    /// No registration.
    Unregistered,
    /// Has a live channel (and the queue does not allow busy agents).
    OnCall,
}

/// A configuration the policy cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A queue lists an agent that is not defined.
    #[error("queue {queue} lists unknown agent {agent}")]
    UnknownAgent {
        /// The queue.
        queue: QueueName,
        /// The agent it names.
        agent: AgentId,
    },
    /// Two agents or two queues share a name.
    #[error("{what} {name} is defined twice")]
    Duplicate {
        /// `agent` or `queue`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// An offer was asked for a queue that is not defined.
    #[error("unknown queue {queue}")]
    UnknownQueue {
        /// The queue asked for.
        queue: QueueName,
    },
}

#[derive(Debug)]
struct AgentState {
    info: AgentInfo,
    /// Rules of the queue that reserved the agent; `Some` while reserved.
    reserved: Option<Rules>,
    rest_until: Option<Instant>,
    paused_until: Option<Instant>,
    no_answers: u32,
    /// How the agent's last attempt ended (tells wrap-up from cool-down on the status page).
    last_outcome: Option<Outcome>,
}

#[derive(Debug)]
struct QueueState {
    settings: QueueSettings,
    cursor: usize,
}

/// Every agent's availability bookkeeping and every queue's offer order.
#[derive(Debug)]
pub struct Policy {
    agents: HashMap<AgentId, AgentState>,
    queues: HashMap<QueueName, QueueState>,
    /// Rules for agents reserved by name (not through a queue), e.g. a client's responsible manager.
    direct_rules: Rules,
}

impl Policy {
    /// Builds the policy; fails on duplicate names or a queue naming an undefined agent.
    pub fn new(
        agents: Vec<AgentInfo>,
        queues: Vec<QueueSettings>,
        direct_rules: Rules,
    ) -> Result<Self, PolicyError> {
        let mut by_id = HashMap::new();
        for info in agents {
            let id = info.agent.clone();
            let state = AgentState {
                info,
                reserved: None,
                rest_until: None,
                paused_until: None,
                no_answers: 0,
                last_outcome: None,
            };
            if by_id.insert(id.clone(), state).is_some() {
                return Err(PolicyError::Duplicate {
                    what: "agent",
                    name: id.to_string(),
                });
            }
        }
        let mut by_name = HashMap::new();
        for settings in queues {
            if let Some(agent) = settings.agents.iter().find(|a| !by_id.contains_key(*a)) {
                return Err(PolicyError::UnknownAgent {
                    queue: settings.name.clone(),
                    agent: agent.clone(),
                });
            }
            let name = settings.name.clone();
            if by_name
                .insert(
                    name.clone(),
                    QueueState {
                        settings,
                        cursor: 0,
                    },
                )
                .is_some()
            {
                return Err(PolicyError::Duplicate {
                    what: "queue",
                    name: name.to_string(),
                });
            }
        }
        Ok(Self {
            agents: by_id,
            queues: by_name,
            direct_rules,
        })
    }

    /// Takes the queues, rules and agent list of `next` (a reloaded config) while keeping what
    /// is happening now: agents that stay keep their reservation, rest, pause and no-answer count;
    /// queues that stay keep their rotation cursor. Agents that left are dropped once free: a
    /// reserved one stays until its call releases it.
    pub fn reconfigure(&mut self, next: Policy) {
        let Policy {
            mut agents,
            mut queues,
            direct_rules,
        } = next;
        for (id, state) in &mut agents {
            if let Some(old) = self.agents.remove(id) {
                state.reserved = old.reserved;
                state.rest_until = old.rest_until;
                state.paused_until = old.paused_until;
                state.no_answers = old.no_answers;
                state.last_outcome = old.last_outcome;
            }
        }
        for (id, old) in self.agents.drain() {
            if old.reserved.is_some() {
                agents.insert(id, old);
            }
        }
        for (name, state) in &mut queues {
            if let Some(old) = self.queues.get(name) {
                state.cursor = old.cursor;
            }
        }
        self.agents = agents;
        self.queues = queues;
        self.direct_rules = direct_rules;
    }

    /// Why `agent` is or is not offerable at `now` (for a queue with `allow_busy` set or not).
    pub fn availability(
        &self,
        now: Instant,
        agent: &AgentId,
        allow_busy: bool,
        presence: &impl AgentPresence,
    ) -> Availability {
        let Some(state) = self.agents.get(agent) else {
            return Availability::Unknown;
        };
        if state.reserved.is_some() {
            return Availability::Reserved;
        }
        if let Some(until) = state.paused_until.filter(|until| *until > now) {
            return Availability::Paused { until };
        }
        if let Some(until) = state.rest_until.filter(|until| *until > now) {
            return Availability::Resting { until };
        }
        if !presence.is_registered(&state.info.extension) {
            return Availability::Unregistered;
        }
        if !allow_busy && presence.live_channels(&state.info.extension) > 0 {
            return Availability::OnCall;
        }
        Availability::Free
    }

    /// Reserves and returns up to `limit` free agents of `queue` that are not in `exclude`, in the
    /// queue's order. Reserved agents are not offered again until [`Policy::release`].
    pub fn pick(
        &mut self,
        now: Instant,
        queue: &QueueName,
        exclude: &[AgentId],
        limit: usize,
        presence: &impl AgentPresence,
    ) -> Result<Vec<AgentInfo>, PolicyError> {
        let state = self
            .queues
            .get(queue)
            .ok_or_else(|| PolicyError::UnknownQueue {
                queue: queue.clone(),
            })?;
        let list = &state.settings.agents;
        let start = match state.settings.order {
            Order::ListOrder => 0,
            Order::RoundRobin => state.cursor,
        };
        let allow_busy = state.settings.rules.allow_busy_agents;
        let mut picked = Vec::new();
        let mut first_index = None;
        for offset in 0..list.len() {
            if picked.len() >= limit {
                break;
            }
            let index = (start + offset) % list.len();
            let agent = &list[index];
            if exclude.contains(agent)
                || self.availability(now, agent, allow_busy, presence) != Availability::Free
            {
                continue;
            }
            first_index.get_or_insert(index);
            picked.push(agent.clone());
        }
        let rules = state.settings.rules.clone();
        if let (Some(index), Some(state)) = (first_index, self.queues.get_mut(queue)) {
            state.cursor = (index + 1) % state.settings.agents.len().max(1);
        }
        Ok(picked
            .iter()
            .filter_map(|agent| self.reserve(agent, rules.clone()))
            .collect())
    }

    /// Reserves one agent by name (a client's responsible manager) if they are free.
    pub fn pick_agent(
        &mut self,
        now: Instant,
        agent: &AgentId,
        presence: &impl AgentPresence,
    ) -> Option<AgentInfo> {
        let rules = self.direct_rules.clone();
        match self.availability(now, agent, rules.allow_busy_agents, presence) {
            Availability::Free => self.reserve(agent, rules),
            _ => None,
        }
    }

    /// Ends a reservation and applies the outcome's cost. Unknown or unreserved agents are ignored
    /// (a release may arrive twice after a race); returns whether a reservation ended.
    pub fn release(&mut self, now: Instant, agent: &AgentId, outcome: Outcome) -> bool {
        let Some(state) = self.agents.get_mut(agent) else {
            return false;
        };
        let Some(rules) = state.reserved.take() else {
            return false;
        };
        state.last_outcome = Some(outcome);
        match outcome {
            Outcome::Answered => {
                state.no_answers = 0;
                state.rest_until = Some(now + rules.wrap_up);
            }
            Outcome::NoAnswer => {
                state.no_answers += 1;
                if rules.max_no_answer > 0 && state.no_answers >= rules.max_no_answer {
                    state.no_answers = 0;
                    state.paused_until = Some(now + rules.no_answer_pause);
                } else {
                    state.rest_until = Some(now + rules.no_answer_cooldown);
                }
            }
            Outcome::Busy | Outcome::Unreachable => {
                state.rest_until = Some(now + rules.busy_cooldown)
            }
            Outcome::Rejected => state.rest_until = Some(now + rules.reject_cooldown),
            Outcome::Cancelled => {}
        }
        true
    }

    fn reserve(&mut self, agent: &AgentId, rules: Rules) -> Option<AgentInfo> {
        let state = self.agents.get_mut(agent)?;
        state.reserved = Some(rules);
        Some(state.info.clone())
    }
}

mod snapshot;

pub(crate) use snapshot::AgentStatus;

#[cfg(test)]
mod tests;
