//! The outcome of one `bridge` application, read from the caller leg's result variables.
//!
//! These variables are sticky and accumulate across bridges on the same caller leg
//! (esl-protocol.md §10.1, §10.5): only `originate_disposition` is rewritten by every bridge, and
//! `originate_causes` must be searched for the leg we dialled.

use freeswitch_esl_tokio::{EslArray, EslEvent};

use super::HangupCause;
use super::event::lenient_number;
use crate::ids::LegId;

const VAR_ORIGINATE_DISPOSITION: &str = "originate_disposition";
const VAR_LAST_BRIDGE_HANGUP_CAUSE: &str = "last_bridge_hangup_cause";
const VAR_SIP_INVITE_FAILURE_STATUS: &str = "sip_invite_failure_status";
const VAR_ORIGINATE_CAUSES: &str = "originate_causes";

/// `originate_disposition` after a bridge: success or the failure cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// A leg answered and was bridged.
    Success,
    /// No leg was bridged; the cause FreeSWITCH reported.
    Failed(HangupCause),
    /// Absent, or a transient/unknown spelling (`failure`, `call accepted`).
    Unknown(Option<String>),
}

/// What a finished `bridge` reports, as FreeSWITCH left it on the caller leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeResult {
    /// `originate_disposition`: the authoritative outcome of *this* bridge.
    pub disposition: Disposition,
    /// `last_bridge_hangup_cause`: the most recent other leg to hang up. May be stale (an earlier
    /// bridge) or come from a loser of a simultaneous ring (`LOSE_RACE`); never judge success by it.
    pub last_bridge_hangup_cause: Option<HangupCause>,
    /// `sip_invite_failure_status`: the SIP status of the last failed INVITE on this caller leg,
    /// possibly from an earlier attempt. 487 means a CANCEL, not an answer from the phone.
    pub sip_invite_failure_status: Option<u16>,
    /// Every `originate_causes` entry (`<leg uuid>;<CAUSE>`), oldest first, duplicates kept.
    pub leg_causes: Vec<(LegId, Option<HangupCause>)>,
}

impl BridgeResult {
    /// Reads the result variables from a `CHANNEL_EXECUTE_COMPLETE` of `bridge`.
    pub fn from_event(event: &EslEvent) -> Self {
        let disposition = match event.variable_str(VAR_ORIGINATE_DISPOSITION) {
            Some("SUCCESS" | "success") => Disposition::Success,
            Some(raw) => match raw.parse::<HangupCause>() {
                Ok(cause) => Disposition::Failed(cause),
                Err(_) => Disposition::Unknown(Some(raw.to_owned())),
            },
            None => Disposition::Unknown(None),
        };
        Self {
            disposition,
            last_bridge_hangup_cause: event
                .variable_str(VAR_LAST_BRIDGE_HANGUP_CAUSE)
                .and_then(|v| v.parse().ok()),
            sip_invite_failure_status: lenient_number(
                event.variable_str(VAR_SIP_INVITE_FAILURE_STATUS),
            ),
            leg_causes: event
                .variable_str(VAR_ORIGINATE_CAUSES)
                .map(parse_causes)
                .unwrap_or_default(),
        }
    }

    /// Whether this bridge connected a leg.
    pub fn succeeded(&self) -> bool {
        self.disposition == Disposition::Success
    }

    /// The cause recorded for `leg` (the latest entry for it), or `None` if FreeSWITCH never
    /// tried it. `Some(HangupCause::None)` marks the winner of a bridge.
    pub fn cause_for(&self, leg: &LegId) -> Option<HangupCause> {
        self.leg_causes
            .iter()
            .rev()
            .find(|(l, _)| l == leg)
            .and_then(|(_, cause)| *cause)
    }

    /// Whether `leg` appears in `originate_causes` at all.
    pub fn tried(&self, leg: &LegId) -> bool {
        self.leg_causes.iter().any(|(l, _)| l == leg)
    }
}

/// `originate_causes` is `ARRAY::a;C1|:b;C2` with several entries, or a bare `a;C1` with one. On a
/// JSON-format socket the crate hands array values over as JSON text (`["a;C1","b;C2"]`).
fn parse_causes(raw: &str) -> Vec<(LegId, Option<HangupCause>)> {
    let items = if raw.starts_with(EslArray::PREFIX) {
        EslArray::parse(raw)
            .map(|a| a.items().to_vec())
            .unwrap_or_default()
    } else if raw.starts_with('[') {
        serde_json::from_str::<Vec<String>>(raw).unwrap_or_default()
    } else {
        vec![raw.to_owned()]
    };
    items
        .iter()
        .filter_map(|item| item.split_once(';'))
        .filter(|(leg, _)| !leg.is_empty())
        .map(|(leg, cause)| (LegId::new(leg), cause.parse().ok()))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn event(vars: &[(&str, &str)]) -> EslEvent {
        let mut e = EslEvent::new();
        e.set_header("Event-Name", "CHANNEL_EXECUTE_COMPLETE");
        for (k, v) in vars {
            e.set_header(format!("variable_{k}"), *v);
        }
        e
    }

    #[test]
    fn failed_bridge_reports_the_cause_of_the_dialled_leg_among_accumulated_entries() {
        // Real shape from uuid_kill_agent_leg.txt / simultaneous_bridge.txt: entries pile up.
        let r = BridgeResult::from_event(&event(&[
            ("originate_disposition", "NO_ANSWER"),
            ("last_bridge_hangup_cause", "LOSE_RACE"),
            ("sip_invite_failure_status", "487"),
            (
                "originate_causes",
                "ARRAY::old;USER_BUSY|:new;NO_ANSWER|:new;NO_ANSWER",
            ),
        ]));
        assert_eq!(r.disposition, Disposition::Failed(HangupCause::NoAnswer));
        assert!(!r.succeeded());
        assert_eq!(r.cause_for(&LegId::new("new")), Some(HangupCause::NoAnswer));
        assert_eq!(r.cause_for(&LegId::new("old")), Some(HangupCause::UserBusy));
        assert_eq!(r.cause_for(&LegId::new("never")), None);
        assert_eq!(r.sip_invite_failure_status, Some(487));
        assert_eq!(r.last_bridge_hangup_cause, Some(HangupCause::LoseRace));
    }

    #[test]
    fn json_sockets_deliver_originate_causes_as_json_text() {
        // f_answered_agent_json.txt
        let r = BridgeResult::from_event(&event(&[
            ("originate_disposition", "SUCCESS"),
            ("originate_causes", r#"["a5b7;NONE","a5b7;NONE"]"#),
        ]));
        assert_eq!(r.cause_for(&LegId::new("a5b7")), Some(HangupCause::None));
        assert_eq!(r.leg_causes.len(), 2);
    }

    #[test]
    fn single_originate_cause_has_no_array_prefix() {
        let r = BridgeResult::from_event(&event(&[
            ("originate_disposition", "USER_BUSY"),
            ("originate_causes", "711fd972;USER_BUSY"),
        ]));
        assert_eq!(
            r.leg_causes,
            vec![(LegId::new("711fd972"), Some(HangupCause::UserBusy))]
        );
    }

    #[test]
    fn success_and_transient_dispositions_are_distinguished() {
        let ok = BridgeResult::from_event(&event(&[
            ("originate_disposition", "SUCCESS"),
            ("originate_causes", "ARRAY::w;NONE|:w;NONE"),
        ]));
        assert!(ok.succeeded());
        assert_eq!(ok.cause_for(&LegId::new("w")), Some(HangupCause::None));
        let transient = BridgeResult::from_event(&event(&[("originate_disposition", "failure")]));
        assert_eq!(
            transient.disposition,
            Disposition::Unknown(Some("failure".into()))
        );
        assert_eq!(
            BridgeResult::from_event(&event(&[])).disposition,
            Disposition::Unknown(None)
        );
    }
}
