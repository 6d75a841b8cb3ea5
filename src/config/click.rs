//! `[click_to_call]` customer routing: how the clicked number leaves the PBX (a sofia gateway, or
//! a profile towards a host), validated to characters that are safe in a dial string.

use std::time::Duration;

use super::error::Problems;
use super::raw::RawClickToCall;
use super::validate::{duration, in_range, token};

/// `max_event_age` (default 15 s: Bitrix24 never retries an online event, so an older click was
/// delayed) and `repeat_window` (default 5 s, `"0s"` dials every click).
pub(crate) fn hygiene(p: &mut Problems, raw: &RawClickToCall) -> (Duration, Duration) {
    let (age_key, repeat_key) = ("click_to_call.max_event_age", "click_to_call.repeat_window");
    let max_age = duration(p, age_key, raw.max_event_age.as_deref(), "15s");
    in_range(
        p,
        age_key,
        max_age,
        Duration::from_secs(1),
        Duration::from_secs(600),
    );
    let repeat = duration(p, repeat_key, raw.repeat_window.as_deref(), "5s");
    in_range(
        p,
        repeat_key,
        repeat,
        Duration::ZERO,
        Duration::from_secs(60),
    );
    (max_age, repeat)
}

/// How the customer's number is dialled once the employee answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerRoute {
    /// `gateway = "gw1"`: `sofia/gateway/gw1/<number>`.
    Gateway(String),
    /// `profile = "external"`, `host = "sip.carrier.net:5060"`: `sofia/external/<number>@<host>`.
    Profile {
        /// Sofia profile.
        profile: String,
        /// Host, optionally with `:port`.
        host: String,
    },
}

/// Reads `gateway` / `profile` + `host`; `None` (no problem) when none is given.
pub(crate) fn customer_route(p: &mut Problems, raw: &RawClickToCall) -> Option<CustomerRoute> {
    route_keys(
        p,
        "click_to_call",
        (
            raw.gateway.as_ref(),
            raw.profile.as_ref(),
            raw.host.as_ref(),
        ),
    )
}

/// `<section>.gateway`, or `<section>.profile` + `<section>.host`, checked for a dial string;
/// `None` (no problem) when none is given. Shared by `[click_to_call]` and `[outgoing]`.
pub(crate) fn route_keys(
    p: &mut Problems,
    section: &str,
    (gateway, profile, host): (Option<&String>, Option<&String>, Option<&String>),
) -> Option<CustomerRoute> {
    match (gateway, profile, host) {
        (None, None, None) => None,
        (Some(gw), None, None) => Some(CustomerRoute::Gateway(token(
            p,
            &format!("{section}.gateway"),
            gw,
        ))),
        (None, Some(profile), Some(host)) => {
            let ok = |c: char| c.is_ascii_alphanumeric() || "_-.:".contains(c);
            if host.is_empty() || !host.chars().all(ok) {
                p.push(
                    format!("{section}.host"),
                    format!("{host:?} must be a host name or address, optionally with :port"),
                );
            }
            Some(CustomerRoute::Profile {
                profile: token(p, &format!("{section}.profile"), profile),
                host: host.clone(),
            })
        }
        (Some(_), _, _) => {
            p.push(
                format!("{section}.gateway"),
                "give either gateway, or profile and host, not both",
            );
            None
        }
        _ => {
            p.push(
                format!("{section}.profile"),
                "profile and host must be given together",
            );
            None
        }
    }
}
