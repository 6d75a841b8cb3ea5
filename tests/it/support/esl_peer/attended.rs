//! Attended transfer: the agent talking to a socket-controlled caller consults a colleague on a
//! second call from their phone, then sends SIP REFER with `Replaces` naming that second call.
//! There is no capture of it; the peer follows FreeSWITCH 1.10's source:
//! * mod_sofia `sofia.c`, `sofia_handle_sip_i_refer`, the branch where both the REFER's leg and
//!   the replaced leg are bridged (`br_a && br_b`): `switch_ivr_uuid_bridge(br_a, br_b)` bridges
//!   the caller (`br_a`, partner of the REFER's leg) to the consulted leg (`br_b`, partner of the
//!   replaced leg); the replaced leg is parked (`park_timeout=2:attended_transfer`), and the
//!   transferor's phone ends its dialogs after the NOTIFY 200;
//! * `switch_ivr_bridge.c`, `switch_ivr_uuid_bridge`: sets `uuid_bridge`, `bridge_uuid` and
//!   `signal_bond` on both legs, steps the caller's profile (its originatee is now the new leg),
//!   sets CF_TRANSFER/CF_REDIRECT and moves both legs to CS_HIBERNATE. The caller's running
//!   `bridge` returns: `switch_ivr_multi_threaded_bridge` fires CHANNEL_UNBRIDGE with the
//!   stepped profile (Other-Leg = the new leg), then the app's EXECUTE_COMPLETE; the socket app
//!   leaves its park (CHANNEL_UNPARK, its EXECUTE_COMPLETE) as for any transfer
//!   (esl-protocol.md §9.3); `uuid_bridge_on_soft_execute` fires CHANNEL_EXECUTE `uuid_bridge`
//!   (Application-Data = the new leg) and bridges (CHANNEL_BRIDGE). When that bridge ends the
//!   caller goes back to CS_EXECUTE: the dialplan continues after `socket`.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::FsPeer;
use super::exec::Exec;
use super::switch::{LegStatus, Switch};

impl FsPeer {
    /// The agent bridged to socket-controlled `caller` completes an attended transfer to the
    /// call `consult` (their phone's second call, bridged to the colleague): REFER with
    /// `Replaces`. False if either call is not bridged.
    pub fn attended_transfer(&self, caller: &str, consult: &str) -> bool {
        let sw = &self.sw;
        let agent = sw.with_channel(caller, |c| c.other_leg.clone()).flatten();
        let target = sw.with_channel(consult, |c| c.other_leg.clone()).flatten();
        let (Some(agent), Some(target)) = (agent, target) else {
            return false;
        };
        {
            let mut st = sw.lock();
            st.rebridges.insert(caller.to_owned(), target.clone());
            st.moved.insert(target.clone());
        }
        let source = format!(
            "{}:{caller}:uuid_br:{target}",
            chrono::Utc::now().timestamp()
        );
        sw.with_channel(caller, |c| {
            let destination = c.destination.clone();
            for (k, v) in [
                ("uuid_bridge", target.as_str()),
                ("bridge_uuid", target.as_str()),
                ("signal_bond", target.as_str()),
                ("original_destination_number", destination.as_str()),
                ("transfer_source", source.as_str()),
            ] {
                c.set_var(k, v);
            }
            c.other_leg = Some(target.clone());
            c.originatee = Some(target.clone());
        });
        sw.with_channel(&target, |c| {
            c.other_leg = Some(caller.to_owned());
            c.set_var("bridge_uuid", caller);
            c.set_var("signal_bond", caller);
            c.set_var("transfer_disposition", "bridge");
        });
        // The transferor's phone ends both of its dialogs once the switch reports 200 (NOTIFY),
        // a tick after the caller left its bridge.
        let (sw, consult) = (Arc::clone(sw), consult.to_owned());
        self.sw.tracker.spawn(async move {
            sw.tick().await;
            sw.hangup(&agent, "NORMAL_CLEARING");
            sw.hangup(&consult, "NORMAL_CLEARING");
        });
        true
    }
}

/// Returns on the first tick at which `uuid` is being moved by an attended transfer.
pub async fn moved_away(sw: &Switch, uuid: &str) {
    while !sw.lock().rebridges.contains_key(uuid) {
        sw.tick().await;
    }
}

/// The caller `uuid` in its uuid_bridge to `to` until either side ends (the app's own
/// `sendmsg hangup` still works); then the UNBRIDGE. The caller's end is left to its dialplan.
pub async fn uuid_bridged(sw: &Arc<Switch>, uuid: &str, to: &str, rx: &mut mpsc::Receiver<Exec>) {
    sw.fire_channel(
        uuid,
        "CHANNEL_EXECUTE",
        &[("Application", "uuid_bridge"), ("Application-Data", to)],
    );
    sw.with_channel(uuid, |c| c.set_var("last_bridge_to", to));
    let pair = [("Bridge-A-Unique-ID", uuid), ("Bridge-B-Unique-ID", to)];
    sw.fire_channel(uuid, "CHANNEL_BRIDGE", &pair);
    let (Some(mut mine), Some(mut theirs)) = (sw.watch(uuid), sw.watch(to)) else {
        return;
    };
    let ended = |s: &LegStatus| matches!(s, LegStatus::Ended(_));
    loop {
        tokio::select! {
            _ = theirs.wait_for(ended) => break,
            r = mine.wait_for(ended) => {
                let cause = match r.map(|s| s.clone()) {
                    Ok(LegStatus::Ended(c)) => c,
                    _ => "NORMAL_CLEARING".into(),
                };
                sw.hangup(to, &cause);
                break;
            }
            m = rx.recv() => match m {
                Some(Exec::Hangup(cause)) => {
                    sw.hangup(uuid, &cause);
                }
                Some(Exec::App { name, arg, .. }) if name == "hangup" => {
                    let cause = arg.filter(|a| !a.is_empty());
                    sw.hangup(uuid, cause.as_deref().unwrap_or("NORMAL_CLEARING"));
                }
                Some(Exec::App { .. }) => {}
                // The app closed its socket: the bridge goes on without it.
                None => break,
            },
            () = sw.cancel.cancelled() => return,
        }
    }
    let _ = theirs.wait_for(ended).await;
    sw.fire_channel(uuid, "CHANNEL_UNBRIDGE", &pair);
    sw.with_channel(uuid, |c| c.other_leg = None);
}
