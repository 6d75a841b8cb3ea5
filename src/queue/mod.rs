//! The queue actor: owns agent availability ([`policy::Policy`]) so that concurrent calls never get
//! the same agent. Calls talk to it through a cloneable [`QueueHandle`] (bounded mpsc + oneshot,
//! "Actors with Tokio"). It reads presence through [`AgentPresence`] and does no other IO.

pub(crate) mod policy;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ids::{AgentId, QueueName};

pub(crate) use policy::{
    AgentInfo, AgentPresence, AgentStatus, Availability, Order, Outcome, Policy, PolicyError,
    QueueSettings, Rules,
};

/// How many requests may wait for the actor before senders wait for room.
const INBOX: usize = 256;

/// Why a queue request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The actor has stopped (shutdown); no agent can be offered.
    #[error("queue actor stopped while handling {request}")]
    Stopped {
        /// `next_agents`, `reserve` or `release`.
        request: &'static str,
    },
    /// The queue is not configured.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

enum Msg {
    Next {
        queue: QueueName,
        exclude: Vec<AgentId>,
        limit: usize,
        reply: oneshot::Sender<Result<Vec<AgentInfo>, PolicyError>>,
    },
    Reserve {
        agent: AgentId,
        reply: oneshot::Sender<Option<AgentInfo>>,
    },
    Release {
        agent: AgentId,
        outcome: Outcome,
        reply: oneshot::Sender<bool>,
    },
    Availability {
        agent: AgentId,
        reply: oneshot::Sender<Availability>,
    },
    Reconfigure {
        policy: Box<Policy>,
        reply: oneshot::Sender<()>,
    },
    Snapshot {
        reply: oneshot::Sender<Vec<AgentStatus>>,
    },
}

/// A cheap, cloneable address of the queue actor.
#[derive(Debug, Clone)]
pub struct QueueHandle {
    tx: mpsc::Sender<Msg>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Next { .. } => "Next",
            Msg::Reserve { .. } => "Reserve",
            Msg::Release { .. } => "Release",
            Msg::Availability { .. } => "Availability",
            Msg::Reconfigure { .. } => "Reconfigure",
            Msg::Snapshot { .. } => "Snapshot",
        })
    }
}

impl QueueHandle {
    /// Starts the actor on `tracker`; it stops when `shutdown` fires or every handle is dropped.
    pub fn spawn<P>(
        policy: Policy,
        presence: Arc<P>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Self
    where
        P: AgentPresence + Send + Sync + 'static,
    {
        let (tx, rx) = mpsc::channel(INBOX);
        tracker.spawn(run(policy, presence, rx, shutdown));
        Self { tx }
    }

    /// Reserves the next free agent of `queue` not in `exclude`; `None` when nobody is free.
    /// Cancel-safe only in the sense that a dropped request may still reserve an agent: callers
    /// must not cancel it (the call task awaits it inline).
    pub async fn next_agent(
        &self,
        queue: &QueueName,
        exclude: &[AgentId],
    ) -> Result<Option<AgentInfo>, QueueError> {
        Ok(self
            .next_agents(queue, exclude, 1)
            .await?
            .into_iter()
            .next())
    }

    /// Reserves up to `limit` free agents of `queue` not in `exclude` (a ring-all round).
    pub async fn next_agents(
        &self,
        queue: &QueueName,
        exclude: &[AgentId],
        limit: usize,
    ) -> Result<Vec<AgentInfo>, QueueError> {
        let (reply, rx) = oneshot::channel();
        let msg = Msg::Next {
            queue: queue.clone(),
            exclude: exclude.to_vec(),
            limit,
            reply,
        };
        Ok(self.ask("next_agents", msg, rx).await??)
    }

    /// Reserves one agent by name if free (a client's responsible manager).
    pub async fn reserve(&self, agent: &AgentId) -> Result<Option<AgentInfo>, QueueError> {
        let (reply, rx) = oneshot::channel();
        self.ask(
            "reserve",
            Msg::Reserve {
                agent: agent.clone(),
                reply,
            },
            rx,
        )
        .await
    }

    /// Ends an agent's reservation with the attempt's outcome; returns whether one was held.
    pub async fn release(&self, agent: &AgentId, outcome: Outcome) -> Result<bool, QueueError> {
        let (reply, rx) = oneshot::channel();
        self.ask(
            "release",
            Msg::Release {
                agent: agent.clone(),
                outcome,
                reply,
            },
            rx,
        )
        .await
    }

    /// Why an agent is or is not offerable now (for status pages and tests).
    pub async fn availability(&self, agent: &AgentId) -> Result<Availability, QueueError> {
        let (reply, rx) = oneshot::channel();
        self.ask(
            "availability",
            Msg::Availability {
                agent: agent.clone(),
                reply,
            },
            rx,
        )
        .await
    }

    /// Every agent with its availability now (status page, agent gauges).
    pub async fn snapshot(&self) -> Result<Vec<AgentStatus>, QueueError> {
        let (reply, rx) = oneshot::channel();
        self.ask("snapshot", Msg::Snapshot { reply }, rx).await
    }

    /// Adopts the queues and agents of a reloaded config (see [`Policy::reconfigure`]): calls
    /// already hunting keep their reservations; new requests see the new membership and rules.
    pub async fn reconfigure(&self, policy: Policy) -> Result<(), QueueError> {
        let (reply, rx) = oneshot::channel();
        let msg = Msg::Reconfigure {
            policy: Box::new(policy),
            reply,
        };
        self.ask("reconfigure", msg, rx).await
    }

    async fn ask<T>(
        &self,
        request: &'static str,
        msg: Msg,
        rx: oneshot::Receiver<T>,
    ) -> Result<T, QueueError> {
        self.tx
            .send(msg)
            .await
            .map_err(|_| QueueError::Stopped { request })?;
        rx.await.map_err(|_| QueueError::Stopped { request })
    }
}

async fn run<P: AgentPresence>(
    mut policy: Policy,
    presence: Arc<P>,
    mut rx: mpsc::Receiver<Msg>,
    shutdown: CancellationToken,
) {
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            msg = rx.recv() => match msg {
                Some(msg) => msg,
                None => break,
            },
        };
        handle(&mut policy, presence.as_ref(), Instant::now(), msg);
    }
    tracing::debug!("queue actor stopped");
}

fn handle(policy: &mut Policy, presence: &impl AgentPresence, now: Instant, msg: Msg) {
    // A requester that went away is no error; the reply is simply dropped.
    match msg {
        Msg::Next {
            queue,
            exclude,
            limit,
            reply,
        } => {
            let picked = policy.pick(now, &queue, &exclude, limit, presence);
            if let Ok(agents) = &picked {
                for agent in agents {
                    tracing::debug!(queue = %queue, agent = %agent.agent, "agent reserved");
                }
            }
            if let Err(Ok(agents)) = reply.send(picked) {
                // The call gave up waiting: do not leave its agents reserved forever.
                for agent in agents {
                    policy.release(now, &agent.agent, Outcome::Cancelled);
                }
            }
        }
        Msg::Reserve { agent, reply } => {
            if let Err(Some(info)) = reply.send(policy.pick_agent(now, &agent, presence)) {
                policy.release(now, &info.agent, Outcome::Cancelled);
            }
        }
        Msg::Release {
            agent,
            outcome,
            reply,
        } => {
            let held = policy.release(now, &agent, outcome);
            tracing::debug!(agent = %agent, ?outcome, held, "agent released");
            let _ = reply.send(held);
        }
        Msg::Availability { agent, reply } => {
            let allow_busy = false;
            let _ = reply.send(policy.availability(now, &agent, allow_busy, presence));
        }
        Msg::Snapshot { reply } => {
            let _ = reply.send(policy.snapshot(now, presence));
        }
        Msg::Reconfigure {
            policy: next,
            reply,
        } => {
            policy.reconfigure(*next);
            tracing::info!("queue settings reloaded");
            let _ = reply.send(());
        }
    }
}

/// The switch's view of agent phones, kept by the ESL inbound connection.
impl AgentPresence for crate::esl::Presence {
    fn is_registered(&self, extension: &str) -> bool {
        crate::esl::Presence::is_registered(self, extension)
    }

    fn live_channels(&self, extension: &str) -> u32 {
        u32::try_from(crate::esl::Presence::live_channels(self, extension)).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests;
