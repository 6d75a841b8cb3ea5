//! A read-only picture of every agent for the status page and the agent gauges. Pure.

use std::collections::HashMap;

use tokio::time::Instant;

use crate::ids::AgentId;

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
        // One pass over the memberships, not every queue's list per agent: that was
        // agents x queues comparisons on the queue actor (about 6 million for the load bench's
        // 2,864 agents in 1,100 queues, most of fsb24's CPU while `/metrics` was scraped).
        let mut member_of: HashMap<&AgentId, Vec<String>> = HashMap::new();
        for q in self.queues.values() {
            for agent in &q.settings.agents {
                member_of
                    .entry(agent)
                    .or_default()
                    .push(q.settings.name.to_string());
            }
        }
        let mut all: Vec<AgentStatus> = self
            .agents
            .iter()
            .map(|(id, state)| {
                let mut queues = member_of.remove(id).unwrap_or_default();
                queues.sort();
                // An agent listed twice in one queue still belongs to it once.
                queues.dedup();
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
