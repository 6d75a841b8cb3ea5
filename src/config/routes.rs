//! Raw → typed for `[[routes]]`: matchers, targets, per-route Bitrix24 overrides, and the rule
//! that every route can match some call an earlier route does not already take.

use std::time::Duration;

use super::error::Problems;
use super::model::{LineMatch, Overflow, QueueConfig, RouteConfig, RouteTarget};
use super::policies::missed_owner;
use super::queues::{Known, label};
use super::raw::{RawForward, RawLine, RawRoute, RawTarget};
use super::validate::{bounded_duration, line_number, token};
use crate::ids::{AgentId, PhoneNumber};

pub(crate) fn routes(p: &mut Problems, raw: Vec<RawRoute>, known: &Known<'_>) -> Vec<RouteConfig> {
    let out: Vec<RouteConfig> = raw
        .into_iter()
        .enumerate()
        .map(|(i, r)| route(p, i, r, known))
        .collect();
    for (j, later) in out.iter().enumerate() {
        if let Some(i) = out[..j].iter().position(|earlier| covers(earlier, later)) {
            let problem =
                format!("never used: routes[{i}] already matches every call this one would");
            p.push(format!("routes[{j}]"), problem);
        }
    }
    out
}

/// Whether every call `later` matches is already taken by `earlier`.
fn covers(earlier: &RouteConfig, later: &RouteConfig) -> bool {
    let dest = earlier.destination.is_none() || earlier.destination == later.destination;
    let line = earlier.line.is_none() || earlier.line == later.line;
    dest && line
}

fn route(p: &mut Problems, i: usize, raw: RawRoute, known: &Known<'_>) -> RouteConfig {
    let key = format!("routes[{i}]");
    let destination = raw.destination.map(|d| {
        let ok = |c: char| c.is_ascii_alphanumeric() || "+*#_-.".contains(c);
        if d.is_empty() || !d.chars().all(ok) {
            let why =
                "must be the exact dialled number (digits, letters, '+', '*', '#', '_', '-', '.')";
            p.push(format!("{key}.destination"), format!("{d:?} {why}"));
        }
        d
    });
    let target = target(p, &key, raw.target, known);
    let looks_up = matches!(target, RouteTarget::Responsible { .. });
    RouteConfig {
        missed_owner: missed_owner(
            p,
            &format!("{key}.missed_owner"),
            raw.missed_owner,
            looks_up,
        ),
        destination,
        line: raw.line.and_then(|l| line(p, &key, l)),
        target,
        line_number: raw
            .line_number
            .map(|l| line_number(p, &format!("{key}.line_number"), l)),
        crm_create: raw.crm_create,
    }
}

fn line(p: &mut Problems, key: &str, raw: RawLine) -> Option<LineMatch> {
    let key = format!("{key}.line");
    match (raw.socket_path, raw.variable, raw.value) {
        (Some(path), None, None) => {
            // FreeSWITCH sets `socket_path` to what follows the port in `socket host:port/path`.
            let path = path.trim_start_matches('/').to_owned();
            Some(LineMatch::SocketPath(token(
                p,
                &format!("{key}.socket_path"),
                &path,
            )))
        }
        (None, Some(name), Some(value)) => {
            let name = token(p, &format!("{key}.variable"), &name);
            if value.is_empty() || value.chars().any(char::is_control) {
                p.push(
                    format!("{key}.value"),
                    format!("{value:?} must be non-empty printable text"),
                );
            }
            Some(LineMatch::Variable { name, value })
        }
        (None, Some(_), None) => {
            p.push(
                format!("{key}.value"),
                "missing; a variable match needs the value to compare",
            );
            None
        }
        _ => {
            let how =
                "give either socket_path = \"...\" or variable = \"...\" with value = \"...\"";
            p.push(key, how);
            None
        }
    }
}

fn target(p: &mut Problems, key: &str, raw: RawTarget, known: &Known<'_>) -> RouteTarget {
    let key = format!("{key}.target");
    match raw {
        RawTarget::Agent(id) => RouteTarget::Agent(known.agent(p, format!("{key}.agent"), &id)),
        RawTarget::Queue(name) => RouteTarget::Queue(known.queue(p, format!("{key}.queue"), &name)),
        RawTarget::Responsible(r) => {
            let fallback_queue = known.queue(
                p,
                format!("{key}.responsible.fallback_queue"),
                &r.fallback_queue,
            );
            let ring_key = format!("{key}.responsible.ring");
            let ring = bounded_duration(
                p,
                &ring_key,
                r.ring.as_deref(),
                "20s",
                Duration::from_secs(1),
                Duration::from_secs(600),
            );
            RouteTarget::Responsible {
                fallback_queue,
                ring,
            }
        }
        RawTarget::Forward(f) => forward(p, &format!("{key}.forward"), f, known),
    }
}

/// `{ forward = { number, agent, ring } }`: the number passes the dial-string gate here; that a
/// gateway exists to dial it is checked with `[outgoing]` (`check_forwards`).
fn forward(p: &mut Problems, key: &str, raw: RawForward, known: &Known<'_>) -> RouteTarget {
    match forward_parts(p, key, raw, known) {
        Ok((number, agent, ring)) => RouteTarget::Forward {
            number,
            agent,
            ring,
        },
        // The config is refused with the problem; the stand-in target is never used.
        Err(agent) => RouteTarget::Agent(agent),
    }
}

/// The checked parts of a `forward` table (a route's target or a queue's overflow): the number,
/// the employee and the ring time; `Err(agent)` when the number is refused (a problem is pushed).
pub(crate) fn forward_parts(
    p: &mut Problems,
    key: &str,
    raw: RawForward,
    known: &Known<'_>,
) -> Result<(PhoneNumber, AgentId, Duration), AgentId> {
    let agent = known.agent(p, format!("{key}.agent"), &raw.agent);
    let number = match PhoneNumber::parse(&raw.number) {
        Ok(number) => number,
        Err(e) => {
            p.push(format!("{key}.number"), e);
            return Err(agent);
        }
    };
    let ring = bounded_duration(
        p,
        &format!("{key}.ring"),
        raw.ring.as_deref(),
        "30s",
        Duration::from_secs(1),
        Duration::from_secs(600),
    );
    Ok((number, agent, ring))
}

/// Every route that forwards needs a way out of the PBX: `[outgoing]` (or `[click_to_call]`)
/// gateway, or profile and host.
pub(crate) fn check_forwards(p: &mut Problems, routes: &[RouteConfig], has_route: bool) {
    for (i, route) in routes.iter().enumerate() {
        if matches!(route.target, RouteTarget::Forward { .. }) && !has_route {
            p.push(
                format!("routes[{i}].target.forward"),
                "forwarding needs [outgoing] gateway, or profile and host (or [click_to_call]'s)",
            );
        }
    }
}

/// Every queue that overflows to an external number needs the same way out.
pub(crate) fn check_queue_forwards(p: &mut Problems, queues: &[QueueConfig], has_route: bool) {
    for (i, queue) in queues.iter().enumerate() {
        if matches!(queue.overflow, Overflow::Forward { .. }) && !has_route {
            p.push(
                format!(
                    "{}.overflow.forward",
                    label("queues", queue.name.as_str(), i)
                ),
                "forwarding needs [outgoing] gateway, or profile and host (or [click_to_call]'s)",
            );
        }
    }
}
