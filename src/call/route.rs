//! From the validated config and a new channel to what the call machine needs: which route
//! matches, whom it rings (`Target`), and the call's settings. Pure: no IO, no clock.
//!
//! Each call resolves against the config that is current when it arrives, so a SIGHUP reload
//! changes routes and timings for new calls while calls in progress keep theirs.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};

use crate::call::machine::{
    CallSettings, Caller, DirectTarget, Input, Overflow, QueueRoute, RecordingSettings, Strategy,
    Target, WhenNoneFree,
};
use crate::call::status::{Cause, MissedStatus};
use crate::config::{
    self, Config, LineMatch, QueueConfig, RouteConfig, RouteTarget, WaitMedia, WhenNobodyFree,
};
use crate::ids::{AgentId, BitrixUserId};
use crate::queue::AgentInfo;

/// What FreeSWITCH plays while agents ring, unless a queue names music.
pub const RINGBACK_TONE: &str = "%(2000,4000,440,480)";
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
pub struct Arrival<'a> {
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
pub struct Resolved {
    /// Per-call settings.
    pub settings: CallSettings,
    /// `Input::Started` for the machine.
    pub start: Input,
}

/// The first route that matches, resolved; `None` when no route matches (the call is handed back
/// to the dialplan).
pub fn resolve(config: &Config, arrival: &Arrival<'_>) -> Option<Resolved> {
    let route = config.routes.iter().find(|r| matches(r, arrival))?;
    let (target, wait) = target(config, &route.target)?;
    let settings = settings(config, route, wait);
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
        start: Input::Started {
            target,
            caller,
            line,
            started_at,
        },
    })
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
pub fn matched_variables(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = config
        .routes
        .iter()
        .filter_map(|r| match &r.line {
            Some(LineMatch::Variable { name, .. }) => Some(name.clone()),
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

fn target(config: &Config, target: &RouteTarget) -> Option<(Target, WaitMedia)> {
    match target {
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
pub fn agent_info(agent: &config::AgentConfig) -> AgentInfo {
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
            cause: Cause::new(cause.as_str()),
        },
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
        owner: queue_owner(config, queue),
        overflow,
    })
}

/// Who owns a queue call's register and missed-call record until an agent's phone rings: the
/// configured missed-call owner, else the queue's first agent.
fn queue_owner(config: &Config, queue: &QueueConfig) -> BitrixUserId {
    config.bitrix.defaults.missed_call_owner.unwrap_or_else(|| {
        queue
            .agents
            .first()
            .and_then(|id| config.agent(id))
            .map_or(BitrixUserId(1), |a| a.bitrix_user)
    })
}

fn settings(config: &Config, route: &RouteConfig, wait: WaitMedia) -> CallSettings {
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
        let direct = resolve(&config, &arrival("100", &vars)).unwrap();
        assert!(
            matches!(direct.start, Input::Started { target: Target::Agent(ref d), .. } if d.agent.user == BitrixUserId(11))
        );
        let known = resolve(&config, &arrival("200", &vars)).unwrap();
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
        let other = resolve(&config, &arrival("999", &vars)).unwrap();
        assert!(
            matches!(other.start, Input::Started { target: Target::Queue(ref q), .. } if q.owner == BitrixUserId(11))
        );
    }

    #[test]
    fn an_unusable_caller_number_becomes_anonymous() {
        let config = Config::from_toml_str(CONFIG).unwrap();
        let vars = HashMap::new();
        let mut a = arrival("100", &vars);
        a.caller_number = "anonymous";
        let resolved = resolve(&config, &a).unwrap();
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
}
