//! Raw → typed for the per-agent, per-queue and per-route policies: when cards open (`card`)
//! and who owns a missed call (`missed_owner`).

use super::error::Problems;
use super::model::{CardMode, MissedOwner};
use super::raw::RawOwner;
use crate::ids::BitrixUserId;

const OWNER_NAMES: &str = "\"responsible\", \"last_rung\", \"first_agent\" or { user = <id> }";

/// `card = "ringing" | "answered" | "never"`.
pub(crate) fn card_mode(p: &mut Problems, key: String, raw: Option<&str>) -> Option<CardMode> {
    Some(match raw? {
        "ringing" => CardMode::Ringing,
        "answered" => CardMode::Answered,
        "never" => CardMode::Never,
        other => {
            let why = format!("{other:?} is not \"ringing\", \"answered\" or \"never\"");
            p.push(key, why);
            CardMode::Ringing
        }
    })
}

/// `missed_owner = [...]`; `looks_up` tells whether the route looks the caller's CRM
/// responsible manager up (only then can `responsible` name anybody).
pub(crate) fn missed_owner(
    p: &mut Problems,
    key: &str,
    raw: Option<Vec<RawOwner>>,
    looks_up: bool,
) -> Option<Vec<MissedOwner>> {
    let raw = raw?;
    if raw.is_empty() {
        p.push(
            key,
            format!("list at least one of {OWNER_NAMES}, or leave the key out"),
        );
    }
    let steps = raw.into_iter().enumerate().map(|(i, step)| {
        let key = format!("{key}[{i}]");
        match step {
            RawOwner::Name(name) => match name.as_str() {
                "responsible" if !looks_up => {
                    let why = "only a route with target = { responsible = ... } looks up the CRM";
                    p.push(key, why);
                    MissedOwner::Responsible
                }
                "responsible" => MissedOwner::Responsible,
                "last_rung" => MissedOwner::LastRung,
                "first_agent" => MissedOwner::FirstAgent,
                other => {
                    p.push(key, format!("{other:?} is not {OWNER_NAMES}"));
                    MissedOwner::LastRung
                }
            },
            RawOwner::User(u) => {
                if u.user == 0 {
                    p.push(key, "must be a Bitrix24 user id (1 or more)");
                }
                MissedOwner::User(BitrixUserId(u.user))
            }
        }
    });
    Some(steps.collect())
}
