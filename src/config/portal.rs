//! `[events]` and `[[lines]]`: what `fsb24 setup` makes the portal look like (event bindings and
//! external lines) and how events reach fsb24 (online POSTs; offline polling is not there yet).

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
    /// Queued by the portal for `event.offline.get` (fsb24 behind NAT). `fsb24 setup` can bind
    /// it; the config refuses it until fsb24 polls offline events.
    Offline,
    /// Both (refused by the config for the same reason).
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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortalConfig {
    /// `[events] delivery`.
    pub delivery: EventDelivery,
    /// `[events] handler_url`: the public URL Bitrix24 POSTs to (online delivery).
    pub handler_url: Option<Url>,
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
        // `fsb24 setup` can bind offline, but nothing fetches offline events yet: accepting the
        // setting would queue clicks in the portal that are never dialled.
        Some(other @ ("offline" | "both")) => {
            p.push(
                "events.delivery",
                format!("{other:?} is not supported yet: offline events are not polled"),
            );
            EventDelivery::Online
        }
        Some(other) => {
            p.push("events.delivery", format!("{other:?} is not \"online\""));
            EventDelivery::Online
        }
    };
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
    PortalConfig {
        delivery,
        handler_url,
        lines,
    }
}
