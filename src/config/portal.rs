//! `[events]` and `[[lines]]`: what `fsb24 setup` makes the portal look like (event bindings and
//! external lines) and how events reach fsb24 (online POSTs, offline polling, or both).

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::error::Problems;
use super::validate::line_number;

/// How Bitrix24 events reach fsb24.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventDelivery {
    /// POSTed to `[events] handler_url` (fsb24's `[http]` endpoint must be reachable).
    #[default]
    Online,
    /// Queued by the portal and fetched with `event.offline.get` every `poll_interval` (fsb24
    /// behind NAT; needs the local application, webhooks have no offline events).
    Offline,
    /// Both: whichever delivery comes first is dialled, the other is dropped by its `CALL_ID`.
    Both,
}

impl EventDelivery {
    /// Whether events are bound online.
    pub fn online(self) -> bool {
        matches!(self, Self::Online | Self::Both)
    }

    /// Whether events are bound offline and polled.
    pub fn offline(self) -> bool {
        matches!(self, Self::Offline | Self::Both)
    }
}

/// `[events]` and `[[lines]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalConfig {
    /// `[events] delivery`.
    pub delivery: EventDelivery,
    /// `[events] handler_url`: the public URL Bitrix24 POSTs to (online delivery).
    pub handler_url: Option<Url>,
    /// `[events] poll_interval`: how often `event.offline.get` is called (offline delivery).
    pub poll_interval: Duration,
    /// `[events] callback_queue`: the queue a callback's customer is handed to once they answer;
    /// without it callback forms are not handled.
    pub callback_queue: Option<crate::ids::QueueName>,
    /// `[events] callback_socket`: where FreeSWITCH reaches fsb24's `socket` listener for a
    /// callback's customer leg (default: `esl.listen`, `127.0.0.1` for an unspecified address).
    pub callback_socket: Option<std::net::SocketAddr>,
    /// `[[lines]]`: the external lines `fsb24 setup` registers.
    pub lines: Vec<LineConfig>,
}

/// One `[[lines]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineConfig {
    /// `number`: the line's `NUMBER` (what routes send as `LINE_NUMBER`).
    pub number: String,
    /// `name`: shown on the call card instead of the number.
    pub name: Option<String>,
    /// `crm_auto_create`: a lead for click-to-call calls to unknown numbers on this line.
    pub crm_auto_create: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEvents {
    pub delivery: Option<String>,
    pub handler_url: Option<String>,
    pub poll_interval: Option<String>,
    pub callback_queue: Option<String>,
    pub callback_socket: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLine {
    pub number: String,
    pub name: Option<String>,
    pub crm_auto_create: Option<bool>,
}

pub(crate) fn portal(p: &mut Problems, events: RawEvents, lines: Vec<RawLine>) -> PortalConfig {
    let delivery = match events.delivery.as_deref() {
        None | Some("online") => EventDelivery::Online,
        Some("offline") => EventDelivery::Offline,
        Some("both") => EventDelivery::Both,
        Some(other) => {
            p.push(
                "events.delivery",
                format!("{other:?} is not \"online\", \"offline\" or \"both\""),
            );
            EventDelivery::Online
        }
    };
    let poll_interval = super::validate::duration(
        p,
        "events.poll_interval",
        events.poll_interval.as_deref(),
        DEFAULT_POLL_INTERVAL,
    );
    // Each poll is a request under the portal's 2/s budget; a click waits at most one interval.
    super::validate::in_range(
        p,
        "events.poll_interval",
        poll_interval,
        Duration::from_millis(500),
        Duration::from_secs(60),
    );
    let handler_url = events.handler_url.as_deref().and_then(|raw| {
        // Bitrix24 refuses handlers that are not http(s) or whose host has no dot.
        match Url::parse(raw) {
            Ok(url)
                if matches!(url.scheme(), "http" | "https")
                    && url.host_str().is_some_and(|h| h.contains('.')) =>
            {
                Some(url)
            }
            _ => {
                p.push(
                    "events.handler_url",
                    format!("{raw:?} is not a public http(s) URL with a dotted host name"),
                );
                None
            }
        }
    });
    let mut seen = std::collections::HashSet::new();
    let lines = lines
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let number = line_number(p, &format!("lines[{i}].number"), raw.number);
            if !seen.insert(number.clone()) {
                p.push(
                    format!("lines[{i}].number"),
                    format!("{number:?} is listed twice"),
                );
            }
            let name = raw
                .name
                .map(|n| line_number(p, &format!("lines[{i}].name"), n));
            LineConfig {
                number,
                name,
                crm_auto_create: raw.crm_auto_create.unwrap_or(true),
            }
        })
        .collect();
    let callback_socket = events.callback_socket.as_deref().and_then(|raw| {
        raw.parse()
            .map_err(|e| {
                p.push(
                    "events.callback_socket",
                    format!("{raw:?} is not host:port ({e})"),
                );
            })
            .ok()
    });
    PortalConfig {
        delivery,
        handler_url,
        poll_interval,
        callback_queue: events.callback_queue.map(crate::ids::QueueName::new),
        callback_socket,
        lines,
    }
}

/// `[events] poll_interval` when absent.
pub(super) const DEFAULT_POLL_INTERVAL: &str = "2s";

impl Default for PortalConfig {
    fn default() -> Self {
        Self {
            delivery: EventDelivery::Online,
            handler_url: None,
            poll_interval: Duration::from_secs(2),
            callback_queue: None,
            callback_socket: None,
            lines: Vec::new(),
        }
    }
}
