//! A read-only picture of every agent for the status page and the agent gauges. Pure.

use tokio::time::Instant;

use super::{AgentInfo, AgentPresence, Availability, Outcome, Policy};

/// One agent as the queue sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    /// Name, Bitrix24 user and extension.
    pub info: AgentInfo,
    /// Why the agent is or is not offerable.
    pub availability: Availability,
    /// How the agent's last attempt ended: a rest after `Answered` is wrap-up, after anything
    /// else a cool-down.
    pub last_outcome: Option<Outcome>,
    /// The queues the agent belongs to.
    pub queues: Vec<String>,
}

impl Policy {
    /// Every agent, sorted by name, as of `now`.
    pub fn snapshot(&self, now: Instant, presence: &impl AgentPresence) -> Vec<AgentStatus> {
        let mut all: Vec<AgentStatus> = self
            .agents
            .iter()
            .map(|(id, state)| {
                let mut queues: Vec<String> = self
                    .queues
                    .values()
                    .filter(|q| q.settings.agents.contains(id))
                    .map(|q| q.settings.name.to_string())
                    .collect();
                queues.sort();
                AgentStatus {
                    info: state.info.clone(),
                    availability: self.availability(now, id, false, presence),
                    last_outcome: state.last_outcome,
                    queues,
                }
            })
            .collect();
        all.sort_by(|a, b| a.info.agent.as_str().cmp(b.info.agent.as_str()));
        all
    }
}
