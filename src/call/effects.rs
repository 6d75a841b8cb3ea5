//! The real [`Effects`] of a call: its own outbound ESL session, the queue actor, the durable
//! outbox and (for lookups only) the Bitrix24 client. Every method returns as soon as the switch,
//! the actor or the store has accepted the request; results come back as events.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::bitrix::BitrixClient;
use crate::call::machine::{BridgeLeg, Pick};
use crate::call::status::Cause;
use crate::call::task::{EffectError, Effects};
use crate::config::DialConfig;
use crate::esl::command::{CommandError, whole_secs};
use crate::esl::{
    DialLeg, DialString, DialTarget, Endpoint, EslError, HangupCause, MediaPath, SessionHandle,
    VarSet,
};
use crate::ids::{AgentId, BitrixUserId, ExecId, ExternalCallId, LegId, PhoneNumber};
use crate::outbox::audit::WriteCause;
use crate::outbox::op::{BitrixWrite, CallWrite};
use crate::outbox::{Outbox, OutboxError};
use crate::queue::{AgentInfo, Outcome, QueueHandle};

/// Turns an agent extension into a dial-string endpoint with the configured template.
#[derive(Debug, Clone)]
pub struct Dialer {
    dial: DialConfig,
}

impl Dialer {
    /// From `[esl.dial]`.
    pub fn new(dial: DialConfig) -> Self {
        Self { dial }
    }

    /// The endpoint for `extension` (already validated by the config).
    pub fn endpoint(&self, extension: &str) -> Result<Endpoint, EffectError> {
        self.target(extension).map_err(|e| esl_error("bridge", e))
    }

    /// `esl.dial.template` rendered for `extension`, checked as a dial target.
    pub fn target(&self, extension: &str) -> Result<Endpoint, CommandError> {
        let domain = self.dial.domain.as_deref().unwrap_or_default();
        let rendered = self.dial.template.render(extension, domain);
        DialTarget::parse(&rendered).map(Endpoint::Target)
    }
}

/// Shared, per-process parts of every call's effects.
#[derive(Clone)]
pub struct CallServices {
    /// The queue actor.
    pub queue: QueueHandle,
    /// The durable outbox.
    pub outbox: Outbox,
    /// The Bitrix24 client, for the responsible-manager lookup.
    pub bitrix: BitrixClient,
    /// How agents are dialled.
    pub dialer: Dialer,
}

/// One call's effects.
pub struct CallEffects {
    session: SessionHandle,
    call: ExternalCallId,
    services: CallServices,
    /// Bitrix24 user -> agent of the call's config version (responsible-manager lookup).
    agents_by_user: Arc<HashMap<BitrixUserId, AgentId>>,
}

impl CallEffects {
    /// Effects of the call `call` (its EXTERNAL_CALL_ID) on `session`.
    pub(crate) fn new(
        session: SessionHandle,
        call: ExternalCallId,
        services: CallServices,
        agents_by_user: Arc<HashMap<BitrixUserId, AgentId>>,
    ) -> Self {
        Self {
            session,
            call,
            services,
            agents_by_user,
        }
    }

    async fn crm_owner(&self) -> Result<Option<(BitrixUserId, AgentId)>, EffectError> {
        let registered = self
            .services
            .outbox
            .register_result(&self.call)
            .await
            .map_err(|e| EffectError::Lookup {
                reason: e.to_string(),
            })?;
        let Some(crm) = registered.crm else {
            return Ok(None);
        };
        let owner = self
            .services
            .bitrix
            .crm_entity(crm.entity_type, crm.entity_id)
            .await
            .map_err(|e| EffectError::Lookup {
                reason: e.to_string(),
            })?;
        Ok(owner.and_then(|user| self.agents_by_user.get(&user).map(|a| (user, a.clone()))))
    }
}

fn esl_error(command: &'static str, err: impl std::fmt::Display) -> EffectError {
    EffectError::Esl {
        command,
        reason: err.to_string(),
    }
}

fn cause(command: &'static str, cause: &Cause) -> Result<HangupCause, EffectError> {
    cause
        .known()
        .ok_or_else(|| esl_error(command, format!("unknown cause {cause}")))
}

/// A write of `method` that could not be stored.
fn outbox_error(method: &'static str) -> impl Fn(OutboxError) -> EffectError {
    move |e| EffectError::Outbox {
        method,
        reason: e.to_string(),
    }
}

fn done<T>(command: &'static str, result: Result<T, EslError>) -> Result<(), EffectError> {
    result.map(drop).map_err(|e| esl_error(command, e))
}

impl Effects for CallEffects {
    async fn set_vars(&self, vars: Vec<(String, String)>) -> Result<(), EffectError> {
        let mut set = VarSet::new();
        for (name, value) in &vars {
            set = set
                .with(name, value)
                .map_err(|e| esl_error("multiset", e))?;
        }
        done("multiset", self.session.set_vars(&set).await)
    }

    async fn answer(&self) -> Result<(), EffectError> {
        done("answer", self.session.answer().await)
    }

    async fn ring_ready(&self) -> Result<(), EffectError> {
        done("ring_ready", self.session.ring_ready().await)
    }

    async fn bridge(
        &self,
        exec: ExecId,
        legs: Vec<BridgeLeg>,
        simultaneous: bool,
        leg_timeout: Duration,
    ) -> Result<(), EffectError> {
        let mut dial_legs = Vec::with_capacity(legs.len());
        for leg in legs {
            if let Some(external) = &leg.external {
                // Out of the PBX: the same checked dial-string rules as outgoing calls.
                let dial = external
                    .route
                    .leg(leg.leg, &external.number, leg_timeout, None)
                    .map_err(|e| esl_error("bridge", e))?;
                dial_legs.push(dial);
                continue;
            }
            let endpoint = self.services.dialer.endpoint(&leg.extension)?;
            let dial = DialLeg::new(leg.leg, endpoint).map_err(|e| esl_error("bridge", e))?;
            dial_legs.push(dial.leg_timeout(whole_secs(leg_timeout)));
        }
        let dial = if simultaneous {
            DialString::simultaneous(dial_legs).map_err(|e| esl_error("bridge", e))?
        } else {
            let first = dial_legs
                .into_iter()
                .next()
                .ok_or_else(|| esl_error("bridge", "no leg"))?;
            DialString::single(first)
        };
        done("bridge", self.session.bridge(exec, &dial).await)
    }

    async fn kill_leg(&self, leg: LegId, why: Cause) -> Result<(), EffectError> {
        let why = cause("uuid_kill", &why)?;
        done("uuid_kill", self.session.kill_leg(&leg, why).await)
    }

    async fn record(&self, path: PathBuf) -> Result<(), EffectError> {
        let text = path.to_string_lossy();
        let media = MediaPath::parse(&text).map_err(|e| esl_error("uuid_record", e))?;
        if let Some(dir) = path.parent() {
            // FreeSWITCH does not create directories; a missing one loses the recording.
            if let Err(e) = tokio::fs::create_dir_all(dir).await {
                tracing::warn!(
                    error = &e as &dyn std::error::Error,
                    "cannot create recording directory"
                );
            }
        }
        done("uuid_record", self.session.record_start(&media).await)
    }

    async fn hangup(&self, why: Cause) -> Result<(), EffectError> {
        let why = cause("hangup", &why)?;
        done("hangup", self.session.hangup(why).await)
    }

    async fn exit(&self) -> Result<(), EffectError> {
        done("exit", self.session.exit().await)
    }

    async fn request_agents(&self, pick: Pick) -> Result<Vec<AgentInfo>, EffectError> {
        let queue = &self.services.queue;
        let answer = match pick {
            Pick::Queue {
                queue: name,
                exclude,
                all,
            } => {
                queue
                    .next_agents(&name, &exclude, if all { usize::MAX } else { 1 })
                    .await
            }
            Pick::Agent(agent) => queue.reserve(&agent).await.map(|a| a.into_iter().collect()),
        };
        answer.map_err(|e| EffectError::Queue {
            request: "next_agents",
            reason: e.to_string(),
        })
    }

    async fn release_agent(&self, agent: AgentId, outcome: Outcome) -> Result<(), EffectError> {
        self.services
            .queue
            .release(&agent, outcome)
            .await
            .map(drop)
            .map_err(|e| EffectError::Queue {
                request: "release",
                reason: e.to_string(),
            })
    }

    async fn card(&self, write: BitrixWrite) -> Result<(), EffectError> {
        let method = crate::outbox::store::kind_of(&write);
        self.services
            .outbox
            .push(CallWrite {
                call: self.call.clone(),
                write,
            })
            .await
            .map(drop)
            .map_err(|e| EffectError::Outbox {
                method,
                reason: e.to_string(),
            })
    }

    async fn cards(&self, writes: Vec<BitrixWrite>) -> Result<(), EffectError> {
        let method = writes.first().map_or("card", crate::outbox::store::kind_of);
        let writes = CallWrite::all(&self.call, writes);
        let pushed = self.services.outbox.push_all(writes).await;
        pushed.map(drop).map_err(outbox_error(method))
    }

    async fn cards_caused(
        &self,
        writes: Vec<(BitrixWrite, WriteCause)>,
    ) -> Result<(), EffectError> {
        let method = writes
            .first()
            .map_or("card", |(w, _)| crate::outbox::store::kind_of(w));
        let writes = writes
            .into_iter()
            .map(|(write, cause)| {
                let write = CallWrite {
                    call: self.call.clone(),
                    write,
                };
                (write, cause)
            })
            .collect();
        let pushed = self.services.outbox.push_all_caused(writes).await;
        pushed.map(drop).map_err(outbox_error(method))
    }

    async fn lookup(
        &self,
        _phone: PhoneNumber,
    ) -> Result<Option<(BitrixUserId, AgentId)>, EffectError> {
        // The register (SHOW=0) already searched the CRM by this number; its binding names the
        // entity whose responsible user we ring.
        self.crm_owner().await
    }
}
