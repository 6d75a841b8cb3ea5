//! Click-to-call dial settings from the config and the `originate` request they produce: the
//! employee through `esl.dial.template` (as for queue calls), then `&bridge` to the customer via
//! gateway or profile.

use std::collections::HashMap;
use std::time::Duration;

use tracing::error;

use super::hygiene::Hygiene;
use super::machine::{Legs, Limits};
use crate::call::effects::Dialer;
use crate::config::{AgentConfig, Config, CustomerRoute as ConfigRoute};
use crate::esl::command::{
    CommandError, DialLeg, DialString, Domain, Endpoint, Extension, Name, OriginateRequest,
    OriginateThen, whole_secs,
};
use crate::ids::{BitrixUserId, PhoneNumber};

/// Why click-to-call could not be set up from the config.
#[derive(Debug, thiserror::Error)]
pub enum ClickError {
    /// A config value does not fit a dial string.
    #[error("click-to-call {key}: {source}")]
    Dial {
        /// The config key.
        key: &'static str,
        /// What was wrong.
        #[source]
        source: CommandError,
    },
    /// A required setting is absent.
    #[error("click-to-call needs {key}")]
    Missing {
        /// The config key.
        key: &'static str,
    },
}

/// How the customer's number is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerRoute {
    /// `sofia/gateway/<gateway>/<number>`.
    Gateway(Name),
    /// `sofia/<profile>/<number>@<host>`.
    Profile {
        /// Sofia profile.
        profile: Name,
        /// Host (and port).
        host: Domain,
    },
}

impl CustomerRoute {
    /// The configured route as dial-string parts (`[click_to_call]` and `[outgoing]` share it).
    pub fn from_config(route: &ConfigRoute) -> Result<Self, ClickError> {
        Ok(match route {
            ConfigRoute::Gateway(gw) => Self::Gateway(dial("gateway", Name::parse(gw))?),
            ConfigRoute::Profile { profile, host } => Self::Profile {
                profile: dial("profile", Name::parse(profile))?,
                host: dial("host", Domain::parse(host))?,
            },
        })
    }

    /// The leg that dials `phone` this way: `origination_uuid`, `leg_timeout` (whole seconds,
    /// at least 1) and the caller id shown, if any. Only checked parts reach the dial string.
    pub fn leg(
        &self,
        leg: crate::ids::LegId,
        phone: &PhoneNumber,
        ring: Duration,
        caller_id: Option<&PhoneNumber>,
    ) -> Result<DialLeg, CommandError> {
        let endpoint = match self {
            Self::Gateway(gateway) => Endpoint::Gateway {
                gateway: gateway.clone(),
                number: phone.clone(),
            },
            Self::Profile { profile, host } => Endpoint::Profile {
                profile: profile.clone(),
                number: phone.clone(),
                host: host.clone(),
            },
        };
        let mut dial = DialLeg::new(leg, endpoint)?.leg_timeout(whole_secs(ring));
        if let Some(cid) = caller_id {
            dial = dial.caller_id_number(cid.clone());
        }
        Ok(dial)
    }
}

/// Dial and timing settings of click-to-call.
#[derive(Debug, Clone)]
pub struct ClickDial {
    /// How the employee's phone is dialled (`esl.dial`, the same as for queue calls).
    pub agent: Dialer,
    /// Where the customer number goes.
    pub customer: CustomerRoute,
    /// Caller id shown to the customer; `None` leaves FreeSWITCH's default.
    pub caller_id_number: Option<PhoneNumber>,
    /// How long the employee's phone rings.
    pub agent_ring: Duration,
    /// How long the customer's phone rings.
    pub customer_ring: Duration,
    /// Overall deadline and settle time.
    pub limits: Limits,
    /// `ADD_TO_CHAT` of the finish.
    pub add_to_chat: bool,
    /// Which clicks are dialled (age, repeats).
    pub hygiene: Hygiene,
}

impl ClickDial {
    /// Settings from the validated config (`[click_to_call]`, `[esl.dial]`,
    /// `[bitrix.defaults] add_to_chat`).
    pub fn from_config(config: &Config) -> Result<Self, ClickError> {
        let c2c = &config.click_to_call;
        let customer =
            CustomerRoute::from_config(c2c.customer.as_ref().ok_or(ClickError::Missing {
                key: "click_to_call.gateway or click_to_call.profile + host",
            })?)?;
        Ok(Self {
            agent: Dialer::new(config.esl.dial.clone()),
            customer,
            caller_id_number: c2c.caller_id_number.clone(),
            agent_ring: c2c.originate_timeout,
            customer_ring: c2c.customer_ring_timeout,
            limits: Limits {
                max_duration: c2c.max_duration,
                settle: Duration::from_secs(5),
            },
            add_to_chat: config.bitrix.defaults.add_to_chat,
            hygiene: Hygiene {
                max_age: c2c.max_event_age,
                repeat_window: c2c.repeat_window,
            },
        })
    }
}

fn dial<T>(key: &'static str, value: Result<T, CommandError>) -> Result<T, ClickError> {
    value.map_err(|source| ClickError::Dial { key, source })
}

/// The agents map from `[[agents]]`: the first agent of each Bitrix24 user wins. An extension
/// that does not fit a dial string is left out and logged (config validation already refuses it:
/// 1-32 ASCII letters or digits).
pub fn agents_by_user(agents: &[AgentConfig]) -> HashMap<BitrixUserId, Extension> {
    let mut map = HashMap::new();
    for agent in agents {
        match Extension::parse(agent.extension.as_str()) {
            Ok(ext) => {
                map.entry(agent.bitrix_user).or_insert(ext);
            }
            Err(e) => {
                error!(agent = %agent.id, error = %e, "agent extension unfit for click-to-call");
            }
        }
    }
    map
}

/// `originate {X: <agent endpoint>} &bridge({Y: customer})`: the agent first, then the customer.
pub fn originate_request(
    dial: &ClickDial,
    ext: &Extension,
    phone: &PhoneNumber,
    legs: &Legs,
) -> Result<OriginateRequest, CommandError> {
    let agent_ring = whole_secs(dial.agent_ring);
    let agent = dial.agent.target(ext.as_str())?;
    // The employee's phone shows whom they are about to call.
    let agent = DialLeg::new(legs.agent.clone(), agent)?
        .leg_timeout(agent_ring)
        .caller_id_number(phone.clone());
    let customer = dial.customer.leg(
        legs.customer.clone(),
        phone,
        dial.customer_ring,
        dial.caller_id_number.as_ref(),
    )?;
    Ok(OriginateRequest {
        leg: agent,
        then: OriginateThen::Bridge(DialString::single(customer)),
        timeout_secs: agent_ring,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
