//! Pure translation of one session's [`CallEvent`]s into machine [`Input`]s, plus the bookkeeping
//! the driver needs to finish a call whose session vanished before its hang-up was seen.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::time::Instant;

use crate::call::machine::{BridgeOutcome, Input, Transferee};
use crate::call::status::{Cause, SipStatus};
use crate::esl::HangupCause;
use crate::esl::bridge::{BridgeResult, Disposition};
use crate::esl::event::CallEvent;
use crate::ids::{ChannelId, LegId};

/// The application whose execute events carry our ring attempts.
const BRIDGE_APP: &str = "bridge";
/// A CANCEL answered with 487: ours, not the phone's answer.
const SIP_REQUEST_TERMINATED: u16 = 487;

/// What the mapping needs besides the event: who sits behind each extension.
#[derive(Debug, Clone, Default)]
pub(crate) struct MapCtx {
    /// Extension -> the agent and Bitrix24 user behind it (transfer destinations).
    pub extensions: Arc<HashMap<String, Transferee>>,
}

/// Maps one event; `None` for events the machine does not act on.
///
/// `Disconnected` maps to `None` here: the driver synthesizes the hang-up it implies
/// ([`Seen::on_disconnect`]) because that depends on what was seen before.
pub(crate) fn to_input(event: CallEvent, ctx: &MapCtx) -> Option<Input> {
    match event {
        CallEvent::ExecuteStarted {
            exec: Some(exec),
            app,
        } if app == BRIDGE_APP => Some(Input::BridgeStarted { exec }),
        CallEvent::Bridged {
            other: Some(other), ..
        } => Some(Input::LegAnswered {
            leg: LegId::new(other.as_str()),
        }),
        CallEvent::ExecuteCompleted {
            exec: Some(exec),
            app,
            bridge: Some(result),
            ..
        } if app == BRIDGE_APP => Some(Input::BridgeEnded {
            exec,
            outcome: bridge_outcome(&result),
        }),
        // Regression (call_cases transfer test): a caller that leaves its bridge without a
        // partner was blind-transferred (transfer_of_socket_call.txt run2). Its bridge app
        // returns next, before the socket app names the destination; hanging up then would kill
        // the transferred call.
        CallEvent::Unbridged { other: None } => Some(Input::Transferred { to: None }),
        CallEvent::Unbridged { .. } => Some(Input::Unbridged),
        CallEvent::Transferred { destination } => Some(Input::Transferred {
            to: destination.and_then(|d| ctx.extensions.get(&d).cloned()),
        }),
        CallEvent::RecordStarted { path } => Some(Input::RecordStarted {
            path: PathBuf::from(path),
        }),
        CallEvent::RecordStopped { path, .. } => Some(Input::RecordStopped {
            path: PathBuf::from(path),
        }),
        CallEvent::Hangup {
            cause,
            sip_term_status,
            ..
        } => Some(Input::CallerHungUp {
            cause: cause_of(cause),
            sip_term_status: sip_term_status.map(SipStatus),
        }),
        CallEvent::HangupComplete(summary) => Some(Input::HangupComplete {
            billsec: u32::try_from(summary.talk_secs()).unwrap_or(u32::MAX),
            cause: cause_of(summary.cause),
            sip_term_status: summary.sip_term_status.map(SipStatus),
        }),
        _ => None,
    }
}

/// The wire spelling (`USER_BUSY`) of a FreeSWITCH cause.
fn cause_of(cause: HangupCause) -> Cause {
    Cause::from(cause)
}

/// `originate_disposition` decides; an unknown or transient spelling counts as a temporary
/// failure so the hunt moves on. The SIP status is kept only when it is the phone's own answer.
fn bridge_outcome(result: &BridgeResult) -> BridgeOutcome {
    let cause = match &result.disposition {
        Disposition::Success => return BridgeOutcome::Success,
        Disposition::Failed(cause) => cause_of(*cause),
        Disposition::Unknown(_) => Cause::NORMAL_TEMPORARY_FAILURE,
    };
    let sip_status = result
        .sip_invite_failure_status
        .filter(|s| (300..=699).contains(s) && *s != SIP_REQUEST_TERMINATED)
        .map(SipStatus);
    BridgeOutcome::Failed { cause, sip_status }
}

/// What the driver has fed the machine about the caller leg's end, and whom it talks to.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    answered_at: Option<Instant>,
    hangup_cause: Option<Cause>,
    completed: bool,
    partner: Partner,
}

/// The leg the caller is bridged to, to tell an attended transfer (the switch bridges the caller
/// to a leg fsb24 never dialled) from the end of our own bridge.
#[derive(Debug, Default)]
struct Partner {
    current: Option<ChannelId>,
    /// The caller left its partner for another leg; the next `CHANNEL_BRIDGE` names the new one.
    moving: bool,
}

impl Seen {
    /// Notes what `event` says about the caller leg (answer time, hang-up cause, completion).
    pub(crate) fn note(&mut self, event: &CallEvent, now: Instant) {
        match event {
            CallEvent::Answered => {
                self.answered_at.get_or_insert(now);
            }
            CallEvent::Hangup { cause, .. } => self.hangup_cause = Some(cause_of(*cause)),
            CallEvent::HangupComplete(_) => self.completed = true,
            _ => {}
        }
    }

    /// The transfer `event` implies when the caller is moved to another party without a dialplan
    /// transfer: an attended transfer (SIP REFER with Replaces), which FreeSWITCH carries out as
    /// `switch_ivr_uuid_bridge(caller, consulted leg)` (mod_sofia sofia.c,
    /// `sofia_handle_sip_i_refer`). The caller's UNBRIDGE then already names the new leg (its
    /// caller profile was stepped: switch_ivr_bridge.c), and its next CHANNEL_BRIDGE names that
    /// leg's number. Check it before [`to_input`]; `None` leaves the event to it.
    pub(crate) fn partner_change(&mut self, event: &CallEvent, ctx: &MapCtx) -> Option<Input> {
        let partner = &mut self.partner;
        match event {
            CallEvent::Bridged {
                other: Some(other),
                other_number,
            } => {
                partner.current = Some(other.clone());
                if !std::mem::take(&mut partner.moving) {
                    return None;
                }
                let to = other_number
                    .as_ref()
                    .and_then(|n| ctx.extensions.get(n).cloned());
                Some(Input::Transferred { to })
            }
            CallEvent::Unbridged { other: Some(other) }
                if partner.current.as_ref().is_some_and(|p| p != other) =>
            {
                // Our bridge is about to return: it must not end the call (nor hang it up).
                partner.current = Some(other.clone());
                partner.moving = true;
                Some(Input::Transferred { to: None })
            }
            _ => None,
        }
    }

    /// The inputs a lost session implies: the switch closed it or the connection broke, and
    /// whatever the switch does with the call now (a bridge goes on, a caller not in one
    /// continues the dialplan), fsb24 no longer sees it, so for us the call ended now. The cause is the one the
    /// switch reported, else `NORMAL_CLEARING`; `billsec` counts from the caller's answer.
    pub(crate) fn on_disconnect(&mut self, now: Instant) -> Vec<Input> {
        if self.completed {
            return Vec::new();
        }
        self.completed = true;
        let mut out = Vec::new();
        let cause = match &self.hangup_cause {
            Some(cause) => cause.clone(),
            None => {
                out.push(Input::CallerHungUp {
                    cause: Cause::NORMAL_CLEARING,
                    sip_term_status: None,
                });
                Cause::NORMAL_CLEARING
            }
        };
        let billsec = self.answered_at.map_or(0, |at| {
            u32::try_from(now.saturating_duration_since(at).as_secs()).unwrap_or(u32::MAX)
        });
        out.push(Input::HangupComplete {
            billsec,
            cause,
            sip_term_status: None,
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Regression (tests/it/call_cases.rs, blind transfer): the bridge returning after a REFER
    // hung up the transferred caller.
    #[test]
    fn an_unbridge_without_a_partner_is_a_transfer_and_one_with_a_partner_is_not() {
        let ctx = MapCtx::default();
        assert_eq!(
            to_input(CallEvent::Unbridged { other: None }, &ctx),
            Some(Input::Transferred { to: None })
        );
        let other = Some(ChannelId::new("b-leg"));
        assert_eq!(
            to_input(CallEvent::Unbridged { other }, &ctx),
            Some(Input::Unbridged)
        );
    }

    // An attended transfer as FreeSWITCH's uuid_bridge performs it: the caller's UNBRIDGE names
    // the consulted leg (not the agent it talked to), the next BRIDGE names its extension.
    #[test]
    fn a_caller_rebridged_to_another_leg_is_transferred_to_that_legs_agent() {
        let who = Transferee {
            agent: Some(crate::ids::AgentId::new("b")),
            user: crate::ids::BitrixUserId(12),
        };
        let ctx = MapCtx {
            extensions: Arc::new(HashMap::from([("1002".to_owned(), who.clone())])),
        };
        let mut seen = Seen::default();
        let bridged = |leg: &str, number: &str| CallEvent::Bridged {
            other: Some(ChannelId::new(leg)),
            other_number: Some(number.to_owned()),
        };
        assert_eq!(seen.partner_change(&bridged("agent-1", "1001"), &ctx), None);
        let own_end = CallEvent::Unbridged {
            other: Some(ChannelId::new("agent-1")),
        };
        let moved = CallEvent::Unbridged {
            other: Some(ChannelId::new("consulted")),
        };
        assert_eq!(
            seen.partner_change(&moved, &ctx),
            Some(Input::Transferred { to: None })
        );
        assert_eq!(
            seen.partner_change(&bridged("consulted", "1002"), &ctx),
            Some(Input::Transferred { to: Some(who) })
        );
        // The end of the new conversation is an ordinary unbridge.
        let end = CallEvent::Unbridged {
            other: Some(ChannelId::new("consulted")),
        };
        assert_eq!(seen.partner_change(&end, &ctx), None);
        // A plain hunt: the unbridge of our own agent is no transfer.
        let mut plain = Seen::default();
        plain.partner_change(&bridged("agent-1", "1001"), &ctx);
        assert_eq!(plain.partner_change(&own_end, &ctx), None);
    }
}
