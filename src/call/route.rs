//! From the validated config and a new channel to what the call machine needs: which route
//! matches, whom it rings (`Target`), and the call's settings. Pure: no IO, no clock.
//!
//! Each call resolves against the config that is current when it arrives, so a SIGHUP reload
//! changes routes and timings for new calls while calls in progress keep theirs.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};

use crate::call::callback;
use crate::call::click::CustomerRoute;
use crate::call::machine::{
    AgentCards, CallSettings, CallbackCard, Caller, CardMode, DirectTarget, ExternalDial,
    ForwardTarget, Input, MissedOwner, Overflow, OwnerStep, QueueRoute, RecordingSettings,
    Strategy, Target, WhenNoneFree,
};
use crate::call::status::{Cause, MissedStatus};
use crate::config::{
    self, Config, LineMatch, QueueConfig, RouteConfig, RouteTarget, WaitMedia, WhenNobodyFree,
};
use crate::ids::{AgentId, BitrixUserId, PhoneNumber};
use crate::queue::AgentInfo;

/// What FreeSWITCH plays while agents ring, unless a queue names music.
pub(crate) const RINGBACK_TONE: &str = "%(2000,4000,440,480)";
/// How long an employee's own number rings when the route does not say.
const DIRECT_RING: Duration = Duration::from_secs(60);
/// How often a waiting call asks the queue again when nobody was free.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// FreeSWITCH's own `leg_timeout` exceeds our ring step by this much: a safety net only.
const LEG_TIMEOUT_MARGIN: Duration = Duration::from_secs(2);
/// Overflow chains are acyclic (validated); this bounds the recursion all the same.
const MAX_OVERFLOW_DEPTH: usize = 16;

/// What is known about a new channel when routing it.
#[derive(Debug, Clone)]
pub(crate) struct Arrival<'a> {
    /// `Caller-Destination-Number`.
    pub destination: &'a str,
    /// The `/path` of `socket host:port/path`, if any.
    pub socket_path: Option<&'a str>,
    /// Channel variables copied from the connect reply.
    pub variables: &'a HashMap<String, String>,
    /// The caller id number as FreeSWITCH reports it.
    pub caller_number: &'a str,
    /// When the channel was created.
    pub created_at: Option<DateTime<Utc>>,
}

/// A resolved call: its settings and first input.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// Per-call settings.
    pub settings: CallSettings,
    /// `Input::Started` for the machine.
    pub start: Input,
    /// Which of `config.routes` took the call; `None` for a callback's customer leg (routed to
    /// `[events] callback_queue`, not by a route).
    pub route: Option<usize>,
}

/// The first route that matches, resolved; `None` when no route matches (the call is handed back
/// to the dialplan).
/// `cards` is [`agent_cards`] of `config`, built once per config version.
pub(crate) fn resolve(
    config: &Config,
    cards: &AgentCards,
    arrival: &Arrival<'_>,
) -> Option<Resolved> {
    let (index, route) = config
        .routes
        .iter()
        .enumerate()
        .find(|(_, r)| matches(r, arrival))?;
    let (target, wait) = target(config, &route.target)?;
    let settings = settings(config, cards, route, wait);
    // Normalised once here: the number Bitrix24 sees (register, CRM search) is the one dialled.
    let caller = match config.numbers.parse(arrival.caller_number) {
        Ok(number) => Caller::Number(number),
        Err(_) => Caller::Anonymous,
    };
    let started_at: DateTime<FixedOffset> =
        arrival.created_at.unwrap_or_else(Utc::now).fixed_offset();
    let line = route
        .line_number
        .clone()
        .or_else(|| config.bitrix.defaults.line_number.clone());
    Some(Resolved {
        settings,
        route: Some(index),
        start: Input::Started {
            target,
            caller,
            line,
            started_at,
        },
    })
}

/// A callback's customer leg (fsb24 dialled it and handed it to its own socket, marked with
/// [`callback::vars`]): routed to `[events] callback_queue`, registered as `TYPE=4` with the
/// form's line and CRM entity. `None` for any other call, or when no callback queue is set.
/// [`Resolved::route`] is `None`: no `[[routes]]` entry took it.
pub(crate) fn resolve_callback(
    config: &Config,
    cards: &AgentCards,
    arrival: &Arrival<'_>,
) -> Option<Resolved> {
    let vars = arrival.variables;
    if !callback::vars::is_marked(vars) {
        return None;
    }
    let queue = config.portal.callback_queue.clone()?;
    let crm = callback::vars::crm(vars);
    let route = RouteConfig {
        destination: None,
        line: None,
        target: RouteTarget::Queue(queue),
        line_number: vars.get(callback::vars::LINE).cloned(),
        // The form already made its lead; an unknown number makes none of its own.
        crm_create: Some(crm.is_none() && config.bitrix.defaults.crm_create),
        missed_owner: None,
    };
    let (target, wait) = target(config, &route.target)?;
    let mut settings = settings(config, cards, &route, wait);
    settings.callback = Some(CallbackCard { crm });
    // The customer is the number dialled (checked again: a channel variable is input too).
    let caller = vars
        .get(callback::vars::NUMBER)
        .and_then(|n| PhoneNumber::parse(n).ok())
        .map_or(Caller::Anonymous, Caller::Number);
    let started_at: DateTime<FixedOffset> =
        arrival.created_at.unwrap_or_else(Utc::now).fixed_offset();
    let line = route
        .line_number
        .or_else(|| config.bitrix.defaults.line_number.clone());
    Some(Resolved {
        settings,
        route: None,
        start: Input::Started {
            target,
            caller,
            line,
            started_at,
        },
    })
}

/// Which of `config.routes` takes the call: the first that matches.
pub(crate) fn matching(config: &Config, arrival: &Arrival<'_>) -> Option<usize> {
    config.routes.iter().position(|r| matches(r, arrival))
}

fn matches(route: &RouteConfig, arrival: &Arrival<'_>) -> bool {
    let destination_ok = route
        .destination
        .as_deref()
        .is_none_or(|d| d == arrival.destination);
    let line_ok = match &route.line {
        None => true,
        Some(LineMatch::SocketPath(path)) => {
            arrival.socket_path.map(|p| p.trim_start_matches('/'))
                == Some(path.trim_start_matches('/'))
        }
        Some(LineMatch::Variable { name, value }) => arrival.variables.get(name) == Some(value),
    };
    destination_ok && line_ok
}

/// The variable names routes match on (the outbound session must copy them).
pub(crate) fn matched_variables(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = config
        .routes
        .iter()
        .filter_map(|r| match &r.line {
            Some(LineMatch::Variable { name, .. }) => Some(name.clone()),
            _ => None,
        })
        .collect();
    names.extend(callback::vars::ALL.iter().map(|v| (*v).to_owned()));
    names.sort();
    names.dedup();
    names
}

fn target(config: &Config, target: &RouteTarget) -> Option<(Target, WaitMedia)> {
    match target {
        // Forwarded calls never reach the queue machine: `call::forward` takes them first.
        RouteTarget::Forward { .. } => None,
        RouteTarget::Agent(id) => Some((Target::Agent(direct(config, id)?), WaitMedia::Ringback)),
        RouteTarget::Queue(name) => {
            let queue = config.queue(name)?;
            Some((
                Target::Queue(queue_route(config, queue, 0)?),
                queue.wait_media.clone(),
            ))
        }
        RouteTarget::Responsible {
            fallback_queue,
            ring,
        } => {
            let queue = config.queue(fallback_queue)?;
            let fallback = queue_route(config, queue, 0)?;
            Some((
                Target::Responsible {
                    ring_timeout: *ring,
                    fallback,
                },
                queue.wait_media.clone(),
            ))
        }
    }
}

/// The queue agent view of a configured agent.
pub(crate) fn agent_info(agent: &config::AgentConfig) -> AgentInfo {
    AgentInfo {
        agent: agent.id.clone(),
        user: agent.bitrix_user,
        extension: agent.extension.as_str().to_owned(),
    }
}

fn direct(config: &Config, id: &AgentId) -> Option<DirectTarget> {
    let agent = config.agent(id)?;
    Some(DirectTarget {
        agent: agent_info(agent),
        ring_timeout: DIRECT_RING,
        fallback: Overflow::Hangup {
            cause: Cause::NO_ANSWER,
        },
    })
}

/// A queue's overflow to an employee's external number. A way out the dial string refuses
/// (the config checks that one is configured) hangs the caller up rather than losing the route.
fn forward(
    config: &Config,
    number: &PhoneNumber,
    agent: &AgentId,
    ring: Duration,
) -> Option<Overflow> {
    let agent = agent_info(config.agent(agent)?);
    let route = config
        .outgoing
        .customer
        .as_ref()
        .map(CustomerRoute::from_config);
    let Some(Ok(route)) = route else {
        tracing::warn!(agent = %agent.agent, "no usable gateway or profile to forward through; the caller is hung up");
        return Some(Overflow::Hangup {
            cause: Cause::NORMAL_TEMPORARY_FAILURE,
        });
    };
    let dial = ExternalDial {
        route,
        number: config.numbers.normalise(number),
    };
    Some(Overflow::Forward(Box::new(ForwardTarget {
        agent,
        dial,
        ring_timeout: ring,
    })))
}

fn queue_route(config: &Config, queue: &QueueConfig, depth: usize) -> Option<QueueRoute> {
    if depth > MAX_OVERFLOW_DEPTH {
        return None;
    }
    let overflow = match &queue.overflow {
        config::Overflow::Queue(name) => Overflow::Queue(Box::new(queue_route(
            config,
            config.queue(name)?,
            depth + 1,
        )?)),
        config::Overflow::Agent(id) => Overflow::Agent(Box::new(direct(config, id)?)),
        config::Overflow::Hangup(cause) => Overflow::Hangup {
            cause: cause.clone(),
        },
        config::Overflow::Forward {
            number,
            agent,
            ring,
        } => forward(config, number, agent, *ring)?,
    };
    Some(QueueRoute {
        queue: queue.name.clone(),
        strategy: match queue.strategy {
            config::Strategy::Sequential => Strategy::Sequential,
            config::Strategy::Simultaneous => Strategy::Simultaneous,
        },
        ring: queue.ring.clone(),
        max_wait: queue.max_wait,
        rounds: queue.rounds,
        when_none_free: match queue.when_nobody_free {
            WhenNobodyFree::Wait => WhenNoneFree::Wait,
            WhenNobodyFree::Overflow => WhenNoneFree::Overflow,
        },
        card: card_mode(queue.card),
        overflow,
    })
}

fn card_mode(mode: config::CardMode) -> CardMode {
    match mode {
        config::CardMode::Ringing => CardMode::Ringing,
        config::CardMode::Answered => CardMode::Answered,
        config::CardMode::Never => CardMode::Never,
    }
}

/// Who owns a missed call of `route`: its own chain, else its queue's, else the default one
/// (an agent route: that agent; a queue: nobody before the tail), then
/// `bitrix.defaults.missed_call_owner`, then the route's first agent. With nothing configured
/// this is what fsb24 always did: the missed-call owner, else the queue's first agent; the agent
/// of an agent route.
fn missed_owner(config: &Config, route: &RouteConfig) -> MissedOwner {
    let (queue, first) = match &route.target {
        RouteTarget::Agent(id) | RouteTarget::Forward { agent: id, .. } => {
            (None, config.agent(id).map(|a| a.bitrix_user))
        }
        RouteTarget::Queue(name)
        | RouteTarget::Responsible {
            fallback_queue: name,
            ..
        } => {
            let queue = config.queue(name);
            let first = queue
                .and_then(|q| q.agents.first())
                .and_then(|id| config.agent(id))
                .map(|a| a.bitrix_user);
            (queue, first)
        }
    };
    let default: &[config::MissedOwner] = match route.target {
        RouteTarget::Agent(_) => &[config::MissedOwner::FirstAgent],
        _ => &[],
    };
    let chain = route
        .missed_owner
        .as_deref()
        .or_else(|| queue.and_then(|q| q.missed_owner.as_deref()))
        .unwrap_or(default);
    let mut steps: Vec<OwnerStep> = chain
        .iter()
        .filter_map(|step| match step {
            config::MissedOwner::Responsible => Some(OwnerStep::Responsible),
            config::MissedOwner::LastRung => Some(OwnerStep::LastRung),
            config::MissedOwner::FirstAgent => first.map(OwnerStep::User),
            config::MissedOwner::User(user) => Some(OwnerStep::User(*user)),
        })
        .collect();
    steps.extend(
        config
            .bitrix
            .defaults
            .missed_call_owner
            .map(OwnerStep::User),
    );
    MissedOwner {
        steps,
        last_resort: first.unwrap_or(BitrixUserId(1)),
    }
}

/// Each agent's own card mode, for the agents that set one (shared by the calls of a version).
pub(crate) fn agent_cards(config: &Config) -> AgentCards {
    AgentCards::new(
        config
            .agents
            .iter()
            .filter_map(|a| Some((a.id.clone(), card_mode(a.card?))))
            .collect(),
    )
}

fn settings(
    config: &Config,
    cards: &AgentCards,
    route: &RouteConfig,
    wait: WaitMedia,
) -> CallSettings {
    let defaults = &config.bitrix.defaults;
    // Music needs an answered caller (transfer_ringback); a ringback tone works before answer,
    // so the caller is not billed until an agent picks up.
    let (ringback, answer) = match wait {
        WaitMedia::Ringback => (RINGBACK_TONE.to_owned(), false),
        WaitMedia::Music(source) => (source, true),
    };
    CallSettings {
        ringback,
        answer,
        lookup_timeout: config.bitrix.lookup_timeout,
        retry_interval: RETRY_INTERVAL,
        leg_timeout_margin: LEG_TIMEOUT_MARGIN,
        crm_create: route.crm_create.unwrap_or(defaults.crm_create),
        add_to_chat: defaults.add_to_chat,
        missed_status: MissedStatus::Missed304,
        anonymous_number: defaults.anonymous_number.clone(),
        recording: config.recording.enabled.then(|| RecordingSettings {
            path_template: config.recording.path_template.clone(),
            wait_after_hangup: config.recording.wait_after_hangup,
        }),
        missed_owner: missed_owner(config, route),
        agent_cards: AgentCards::clone(cards),
        callback: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
        [esl.inbound]
        password = "pw"
        [esl.dial]
        template = "user/{extension}"
        [bitrix.auth.webhook]
        url = "https://example.bitrix24.de/rest/1/abc/"
        [[agents]]
        extension = "1001"
        bitrix_user = 11
        name = "A"
        [[agents]]
        extension = "1002"
        bitrix_user = 12
        name = "B"
        [[queues]]
        name = "sales"
        strategy = "sequential"
        agents = ["1001", "1002"]
        ring = ["3s", "5s"]
        overflow = { agent = "1002" }
        [[routes]]
        destination = "100"
        target = { agent = "1001" }
        [[routes]]
        destination = "200"
        line_number = "74951234567"
        target = { responsible = { fallback_queue = "sales", ring = "20s" } }
        [[routes]]
        target = { queue = "sales" }
    "#;

    fn arrival<'a>(destination: &'a str, vars: &'a HashMap<String, String>) -> Arrival<'a> {
        Arrival {
            destination,
            socket_path: None,
            variables: vars,
            caller_number: "+79991234567",
            created_at: None,
        }
    }

    #[test]
    fn routes_match_in_order_and_the_catch_all_takes_the_rest() {
        let config = Config::from_toml_str(CONFIG).unwrap();
        let vars = HashMap::new();
        let direct = resolve(&config, &agent_cards(&config), &arrival("100", &vars)).unwrap();
        assert!(
            matches!(direct.start, Input::Started { target: Target::Agent(ref d), .. } if d.agent.user == BitrixUserId(11))
        );
        let known = resolve(&config, &agent_cards(&config), &arrival("200", &vars)).unwrap();
        let Input::Started {
            target:
                Target::Responsible {
                    ring_timeout,
                    fallback,
                },
            line,
            ..
        } = known.start
        else {
            panic!("responsible route expected");
        };
        assert_eq!(ring_timeout, Duration::from_secs(20));
        assert_eq!(line.as_deref(), Some("74951234567"));
        assert_eq!(
            fallback.ring,
            [Duration::from_secs(3), Duration::from_secs(5)]
        );
        assert!(
            matches!(fallback.overflow, Overflow::Agent(ref d) if d.agent.agent == AgentId::new("1002"))
        );
        let other = resolve(&config, &agent_cards(&config), &arrival("999", &vars)).unwrap();
        assert!(
            matches!(other.start, Input::Started { target: Target::Queue(ref q), .. } if q.queue.as_str() == "sales")
        );
        assert_eq!(other.settings.missed_owner.fixed(), BitrixUserId(11));
    }

    #[test]
    fn an_unusable_caller_number_becomes_anonymous() {
        let config = Config::from_toml_str(CONFIG).unwrap();
        let vars = HashMap::new();
        let mut a = arrival("100", &vars);
        a.caller_number = "anonymous";
        let resolved = resolve(&config, &agent_cards(&config), &a).unwrap();
        assert!(matches!(
            resolved.start,
            Input::Started {
                caller: Caller::Anonymous,
                ..
            }
        ));
        assert!(
            !resolved.settings.answer,
            "ringback tone rings without answering the caller"
        );
    }

    #[test]
    fn missed_call_owner_chains_come_from_the_route_else_the_queue_else_todays_default() {
        let owners = |extra: &str, destination: &str| {
            let text = CONFIG.replace("[[routes]]\n        destination = \"100\"", extra);
            let config = Config::from_toml_str(&text).unwrap();
            let vars = HashMap::new();
            resolve(&config, &agent_cards(&config), &arrival(destination, &vars))
                .unwrap()
                .settings
                .missed_owner
        };
        let user = |n| OwnerStep::User(BitrixUserId(n));
        // Nothing configured: the agent of an agent route; the queue's first agent otherwise.
        let plain = "[[routes]]\n        destination = \"100\"";
        assert_eq!(owners(plain, "100").steps, [user(11)]);
        let queue = owners(plain, "999");
        assert_eq!(
            (queue.steps.len(), queue.last_resort),
            (0, BitrixUserId(11))
        );
        // bitrix.defaults.missed_call_owner ends every chain.
        let with_default = format!("[bitrix.defaults]\nmissed_call_owner = 5\n{plain}");
        assert_eq!(owners(&with_default, "999").steps, [user(5)]);
        // The queue's chain, with first_agent resolved; the route's own chain wins over it.
        let queue_chain = "[[queues]]\nname = \"q2\"\nagents = [\"1002\"]\n\
            missed_owner = [\"last_rung\", \"first_agent\"]\n\
            [[routes]]\ndestination = \"300\"\ntarget = { queue = \"q2\" }\n\
            [[routes]]\ndestination = \"301\"\ntarget = { queue = \"q2\" }\n\
            missed_owner = [{ user = 42 }]\n[[routes]]\n        destination = \"100\"";
        assert_eq!(
            owners(queue_chain, "300").steps,
            [OwnerStep::LastRung, user(12)]
        );
        assert_eq!(owners(queue_chain, "301").steps, [user(42)]);
    }
}
