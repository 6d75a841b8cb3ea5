//! `[outgoing]`: calls an employee dials from a desk phone to an external number, handed to fsb24
//! by the dialplan and reported to Bitrix24 as `TYPE=1`. Validated here; no IO.

use std::time::Duration;

use serde::Deserialize;

use super::CustomerRoute;
use super::click::route_keys;
use super::error::Problems;
use super::validate::{bounded_duration, line_number, secs};
use crate::ids::PhoneNumber;

/// `[outgoing]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingConfig {
    /// Whether fsb24 places and reports outgoing calls; when off, it hands them back to the
    /// dialplan (whose fallback bridges them directly).
    pub enabled: bool,
    /// Whether the employee's card opens when they dial (`SHOW`); it closes with the finish.
    pub show_card: bool,
    /// How the number leaves the PBX; `[click_to_call]`'s route when not given here.
    pub customer: Option<CustomerRoute>,
    /// `LINE_NUMBER` of outgoing calls; `[bitrix.defaults] line_number` when not given.
    pub line_number: Option<String>,
    /// Whether calls from one agent extension to another are placed and reported too (as
    /// `TYPE=1` for the caller); by default they are handed back to the dialplan unreported.
    pub report_internal: bool,
    /// How long the called number rings before the attempt ends with `NO_ANSWER`.
    pub ring_timeout: Duration,
    /// Caller id presented to the called party; `None` keeps the dialplan's.
    pub caller_id_number: Option<PhoneNumber>,
}

impl Default for OutgoingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            show_card: true,
            customer: None,
            line_number: None,
            report_internal: false,
            ring_timeout: Duration::from_secs(60),
            caller_id_number: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutgoing {
    pub enabled: Option<bool>,
    pub show_card: Option<bool>,
    pub gateway: Option<String>,
    pub profile: Option<String>,
    pub host: Option<String>,
    pub line_number: Option<String>,
    pub internal_calls: Option<bool>,
    pub ring_timeout: Option<String>,
    pub caller_id_number: Option<String>,
}

/// Validates `[outgoing]`; `fallback_route` is `[click_to_call]`'s route, used when this section
/// names none. Enabled without any route is an error (the number could not be dialled).
pub(crate) fn outgoing(
    p: &mut Problems,
    raw: RawOutgoing,
    fallback_route: Option<&CustomerRoute>,
) -> OutgoingConfig {
    let defaults = OutgoingConfig::default();
    let own = route_keys(
        p,
        "outgoing",
        (
            raw.gateway.as_ref(),
            raw.profile.as_ref(),
            raw.host.as_ref(),
        ),
    );
    let customer = own.or_else(|| fallback_route.cloned());
    let enabled = raw.enabled.unwrap_or(defaults.enabled);
    if enabled && customer.is_none() {
        p.push(
            "outgoing.gateway",
            "outgoing calls need a route: gateway, or profile and host (here or in [click_to_call])",
        );
    }
    let ring_timeout = bounded_duration(
        p,
        "outgoing.ring_timeout",
        raw.ring_timeout.as_deref(),
        "60s",
        secs(1),
        secs(600),
    );
    let caller_id_number = raw.caller_id_number.as_deref().and_then(|n| {
        PhoneNumber::parse(n)
            .map_err(|e| p.push("outgoing.caller_id_number", e))
            .ok()
    });
    OutgoingConfig {
        enabled,
        show_card: raw.show_card.unwrap_or(defaults.show_card),
        customer,
        line_number: raw
            .line_number
            .map(|l| line_number(p, "outgoing.line_number", l)),
        report_internal: raw.internal_calls.unwrap_or(defaults.report_internal),
        ring_timeout,
        caller_id_number,
    }
}
