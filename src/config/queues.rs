//! Raw → typed for `[[agents]]` and `[[queues]]`: ids, extensions, ring plans, overflow targets
//! and the no-cycle rule between queue overflows.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::error::Problems;
use super::model::{
    AgentConfig, Extension, Overflow, QueueConfig, QueueOrder, Strategy, WaitMedia, WhenNobodyFree,
};
use super::policies::{card_mode, missed_owner};
use super::raw::{RawAgent, RawOverflow, RawQueue};
use super::routes::forward_parts;
use super::validate::bounded_duration;
use crate::esl::Cause;
use crate::esl::command::VarValue;
use crate::ids::{AgentId, BitrixUserId, QueueName};

/// Hang-up causes a queue may end a caller with (FreeSWITCH names, esl-protocol §12.1).
const CALLER_CAUSES: [&str; 12] = [
    "NORMAL_CLEARING",
    "USER_BUSY",
    "NO_ANSWER",
    "NO_USER_RESPONSE",
    "CALL_REJECTED",
    "SUBSCRIBER_ABSENT",
    "UNALLOCATED_NUMBER",
    "NO_ROUTE_DESTINATION",
    "DESTINATION_OUT_OF_ORDER",
    "NORMAL_TEMPORARY_FAILURE",
    "NORMAL_CIRCUIT_CONGESTION",
    "SERVICE_UNAVAILABLE",
];

/// Whether `name` is safe as a config id (used in keys, logs and references).
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

/// `section.<name>` when the name is clean, else `section[<index>]`.
pub(crate) fn label(section: &str, name: &str, index: usize) -> String {
    if is_name(name) {
        format!("{section}.{name}")
    } else {
        format!("{section}[{index}]")
    }
}

// === Agents ===

pub(crate) fn agents(p: &mut Problems, raw: Vec<RawAgent>) -> Vec<AgentConfig> {
    let mut seen_ids: HashMap<String, usize> = HashMap::new();
    let mut seen_extensions: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, agent) in raw.into_iter().enumerate() {
        let explicit_id = agent.id.is_some();
        let id = agent.id.unwrap_or_else(|| agent.extension.clone());
        let key = label("agents", &id, i);
        if explicit_id && !is_name(&id) {
            p.push(
                format!("{key}.id"),
                format!("{id:?} must be letters, digits, '_', '-' or '.'"),
            );
        }
        let ext = &agent.extension;
        if ext.is_empty() || ext.len() > 32 || !ext.chars().all(|c| c.is_ascii_alphanumeric()) {
            let why = "must be 1-32 ASCII letters or digits (it goes into a dial string)";
            p.push(format!("{key}.extension"), format!("{ext:?} {why}"));
        }
        if let Some(first) = seen_ids.insert(id.clone(), i) {
            p.push(
                key.clone(),
                format!("duplicate agent id {id:?} (first at agents[{first}])"),
            );
        }
        if let Some(first) = seen_extensions.insert(ext.clone(), i) {
            let problem = format!("extension {ext:?} is already used by agents[{first}]");
            p.push(format!("{key}.extension"), problem);
        }
        if agent.bitrix_user == 0 {
            p.push(
                format!("{key}.bitrix_user"),
                "must be a Bitrix24 user id (1 or more)",
            );
        }
        out.push(AgentConfig {
            card: card_mode(p, format!("{key}.card"), agent.card.as_deref()),
            name: agent.name.unwrap_or_else(|| id.clone()),
            id: AgentId::new(id),
            extension: Extension(agent.extension),
            bitrix_user: BitrixUserId(agent.bitrix_user),
        });
    }
    out
}

// === Queues ===

pub(crate) fn queues(
    p: &mut Problems,
    raw: Vec<RawQueue>,
    agents: &[AgentConfig],
) -> Vec<QueueConfig> {
    let names: Vec<String> = raw.iter().map(|q| q.name.clone()).collect();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        let key = label("queues", name, i);
        if !is_name(name) {
            p.push(
                format!("{key}.name"),
                format!("{name:?} must be letters, digits, '_', '-' or '.'"),
            );
        }
        if let Some(first) = seen.insert(name, i) {
            p.push(
                key,
                format!("duplicate queue name {name:?} (first at queues[{first}])"),
            );
        }
    }
    let known = Known {
        agents,
        queues: &names,
    };
    let out: Vec<QueueConfig> = raw
        .into_iter()
        .enumerate()
        .map(|(i, q)| queue(p, i, q, &known))
        .collect();
    check_overflow_cycles(p, &out);
    out
}

/// What a queue may refer to.
pub(crate) struct Known<'a> {
    pub agents: &'a [AgentConfig],
    pub queues: &'a [String],
}

impl Known<'_> {
    pub(crate) fn agent(&self, p: &mut Problems, key: String, id: &str) -> AgentId {
        if !self.agents.iter().any(|a| a.id.as_str() == id) {
            let list: Vec<&str> = self.agents.iter().map(|a| a.id.as_str()).collect();
            p.push(
                key,
                format!("unknown agent {id:?}; known agents: {}", listing(&list)),
            );
        }
        AgentId::new(id)
    }

    pub(crate) fn queue(&self, p: &mut Problems, key: String, name: &str) -> QueueName {
        if !self.queues.iter().any(|q| q == name) {
            let list: Vec<&str> = self.queues.iter().map(String::as_str).collect();
            p.push(
                key,
                format!("unknown queue {name:?}; known queues: {}", listing(&list)),
            );
        }
        QueueName::new(name)
    }
}

fn listing(names: &[&str]) -> String {
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}

fn queue(p: &mut Problems, i: usize, raw: RawQueue, known: &Known<'_>) -> QueueConfig {
    let key = label("queues", &raw.name, i);
    let k = |field: &str| format!("{key}.{field}");
    let strategy = match raw.strategy.as_deref() {
        None | Some("sequential") => Strategy::Sequential,
        Some("simultaneous") => Strategy::Simultaneous,
        Some(other) => {
            let hint = if other == "round_robin" {
                " (to rotate who rings first, set order = \"round_robin\")"
            } else {
                ""
            };
            p.push(
                k("strategy"),
                format!("{other:?} is not \"sequential\" or \"simultaneous\"{hint}"),
            );
            Strategy::Sequential
        }
    };
    let order = match raw.order.as_deref() {
        None | Some("list") => QueueOrder::List,
        Some("round_robin") => QueueOrder::RoundRobin,
        Some(other) => {
            p.push(
                k("order"),
                format!("{other:?} is not \"list\" or \"round_robin\""),
            );
            QueueOrder::List
        }
    };
    let members = members(p, &key, &raw.agents, known);
    let ring = ring(p, &key, raw.ring.as_deref(), strategy);
    let rounds = raw.rounds.unwrap_or(3);
    if rounds == 0 {
        p.push(k("rounds"), "must be at least 1");
    }
    let day = Duration::from_secs(86_400);
    let mut timer = |field: &str, raw: &Option<String>, default: &str, min: Duration| {
        bounded_duration(p, &k(field), raw.as_deref(), default, min, day)
    };
    let max_wait = timer("max_wait", &raw.max_wait, "2m", Duration::from_secs(1));
    let wrap_up = timer("wrap_up", &raw.wrap_up, "5s", Duration::ZERO);
    let cooldown_busy = timer("cooldown_busy", &raw.cooldown_busy, "15s", Duration::ZERO);
    let cooldown_reject = timer(
        "cooldown_reject",
        &raw.cooldown_reject,
        "30s",
        Duration::ZERO,
    );
    let cooldown_no_answer = timer(
        "cooldown_no_answer",
        &raw.cooldown_no_answer,
        "5s",
        Duration::ZERO,
    );
    let no_answer_pause = timer(
        "no_answer_pause",
        &raw.no_answer_pause,
        "5m",
        Duration::ZERO,
    );
    QueueConfig {
        card: card_mode(p, k("card"), raw.card.as_deref()).unwrap_or_default(),
        // A queue may be a responsible route's fallback, so `responsible` is allowed here.
        missed_owner: missed_owner(p, &k("missed_owner"), raw.missed_owner, true),
        overflow: overflow(p, &raw.name, k("overflow"), raw.overflow, known),
        wait_media: wait_media(p, k("wait_media"), raw.wait_media),
        when_nobody_free: when_nobody_free(
            p,
            k("when_nobody_free"),
            raw.when_nobody_free.as_deref(),
        ),
        name: QueueName::new(raw.name),
        strategy,
        order,
        agents: members,
        ring,
        rounds,
        max_wait,
        wrap_up,
        cooldown_busy,
        cooldown_reject,
        cooldown_no_answer,
        max_no_answer: raw.max_no_answer.unwrap_or(3),
        no_answer_pause,
        allow_busy_agents: raw.allow_busy_agents.unwrap_or(false),
    }
}

fn members(p: &mut Problems, key: &str, raw: &[String], known: &Known<'_>) -> Vec<AgentId> {
    if raw.is_empty() {
        p.push(format!("{key}.agents"), "list at least one agent");
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, id) in raw.iter().enumerate() {
        let agent = known.agent(p, format!("{key}.agents[{i}]"), id);
        if !seen.insert(id.as_str()) {
            p.push(
                format!("{key}.agents[{i}]"),
                format!("agent {id:?} is listed twice"),
            );
        }
        out.push(agent);
    }
    out
}

fn ring(p: &mut Problems, key: &str, raw: Option<&[String]>, strategy: Strategy) -> Vec<Duration> {
    let default = ["20s".to_owned()];
    let raw = raw.unwrap_or(&default);
    if raw.is_empty() {
        p.push(
            format!("{key}.ring"),
            "list at least one ring time, e.g. [\"3s\", \"5s\", \"7s\"]",
        );
    }
    if strategy == Strategy::Simultaneous && raw.len() > 1 {
        let why = "a simultaneous queue rings everyone at once; give exactly one ring time";
        p.push(format!("{key}.ring"), why);
    }
    let step = |(i, text): (usize, &String)| {
        let k = format!("{key}.ring[{i}]");
        bounded_duration(
            p,
            &k,
            Some(text),
            "20s",
            Duration::from_secs(1),
            Duration::from_secs(600),
        )
    };
    raw.iter().enumerate().map(step).collect()
}

fn overflow(
    p: &mut Problems,
    own: &str,
    key: String,
    raw: Option<RawOverflow>,
    known: &Known<'_>,
) -> Overflow {
    match raw {
        None => Overflow::Hangup(Cause::NORMAL_CLEARING),
        Some(RawOverflow::Agent(id)) => {
            Overflow::Agent(known.agent(p, format!("{key}.agent"), &id))
        }
        Some(RawOverflow::Queue(name)) if name == own => {
            p.push(
                format!("{key}.queue"),
                "a queue cannot overflow into itself",
            );
            Overflow::Queue(QueueName::new(name))
        }
        Some(RawOverflow::Queue(name)) => {
            Overflow::Queue(known.queue(p, format!("{key}.queue"), &name))
        }
        Some(RawOverflow::Forward(raw)) => {
            match forward_parts(p, &format!("{key}.forward"), raw, known) {
                Ok((number, agent, ring)) => Overflow::Forward {
                    number,
                    agent,
                    ring,
                },
                // The config is refused with the problem; the stand-in is never used.
                Err(agent) => Overflow::Agent(agent),
            }
        }
        Some(RawOverflow::Hangup(cause)) => match CALLER_CAUSES.iter().find(|c| **c == cause) {
            Some(c) => Overflow::Hangup(Cause::parse(c)),
            None => {
                let problem = format!("{cause:?} is not one of {}", CALLER_CAUSES.join(", "));
                p.push(format!("{key}.hangup"), problem);
                Overflow::Hangup(Cause::NORMAL_CLEARING)
            }
        },
    }
}

fn wait_media(p: &mut Problems, key: String, raw: Option<String>) -> WaitMedia {
    match raw.as_deref() {
        None | Some("ringback") => WaitMedia::Ringback,
        Some(music) => {
            let source = music.starts_with('/') || music.starts_with("local_stream://");
            if !source || music.chars().any(|c| c.is_control() || "'{}".contains(c)) {
                let why = "must be \"ringback\", an absolute file path or a local_stream:// source";
                p.push(key, format!("{music:?} {why}"));
            } else if VarValue::parse(music).is_err() {
                // The run-time rule: it is set as a channel variable (`transfer_ringback`).
                let why = "cannot be set on a FreeSWITCH channel: use printable ASCII without \
                           spaces, '|' or quotes (at most 512 characters)";
                p.push(key, format!("{music:?} {why}"));
            }
            WaitMedia::Music(music.to_owned())
        }
    }
}

fn when_nobody_free(p: &mut Problems, key: String, raw: Option<&str>) -> WhenNobodyFree {
    match raw {
        None | Some("wait") => WhenNobodyFree::Wait,
        Some("overflow") => WhenNobodyFree::Overflow,
        Some(other) => {
            p.push(key, format!("{other:?} is not \"wait\" or \"overflow\""));
            WhenNobodyFree::Wait
        }
    }
}

/// Follows each queue's overflow chain; a chain that comes back is reported once, at the first
/// queue (in file order) on the cycle.
fn check_overflow_cycles(p: &mut Problems, queues: &[QueueConfig]) {
    let next: HashMap<&str, &str> = queues
        .iter()
        .filter_map(|q| match &q.overflow {
            Overflow::Queue(to) if to != &q.name => Some((q.name.as_str(), to.as_str())),
            _ => None,
        })
        .collect();
    let mut reported: HashSet<&str> = HashSet::new();
    for (i, q) in queues.iter().enumerate() {
        let start = q.name.as_str();
        let mut path = vec![start];
        let mut at = start;
        while let Some(&to) = next.get(at) {
            if to == start && !reported.contains(start) {
                path.push(to);
                reported.extend(path.iter().copied());
                let key = format!("{}.overflow.queue", label("queues", start, i));
                p.push(key, format!("overflow cycle: {}", path.join(" -> ")));
                break;
            }
            if path.contains(&to) {
                break;
            }
            path.push(to);
            at = to;
        }
    }
}
