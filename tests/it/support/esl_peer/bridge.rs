//! Ringing dial strings like switch_ivr_originate: simultaneous and sequential groups,
//! leg_timeout / call_timeout in whole seconds on the 20 ms tick, LOSE_RACE for losers,
//! the result variables of §10.5 and the continue_on_fail rule of §10.4.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use super::dialstring::{self, DialString};
use super::event::dialstatus;
use super::phones::{Dialled, dial};
use super::switch::{LegStatus, Switch};

/// How ringing ended.
#[derive(Debug, Clone)]
pub enum RingResult {
    /// This leg answered (uuid and its lifecycle watcher).
    Won(String, watch::Receiver<LegStatus>),
    /// Every leg failed; the cause of the originate.
    Failed(String),
}

struct Live {
    uuid: String,
    rx: watch::Receiver<LegStatus>,
    deadline: Option<Instant>,
}

/// With `resume`, a closed outbound socket moves the caller leg CS_EXECUTE -> CS_RESET, which
/// breaks its running bridge at once ("by request from write function"): measured on a real
/// FreeSWITCH 1.10.12, esl-protocol.md §5.6. Without `resume` the bridge goes on untouched.
pub fn socket_resumed_away(sw: &Switch, a: &str) -> bool {
    let st = sw.lock();
    st.resume.contains(a) && st.socket_closed.contains(a)
}

fn a_alive(sw: &Switch, a: Option<&str>) -> bool {
    a.is_none_or(|a| {
        sw.with_channel(a, |c| c.hangup_cause.is_none())
            .unwrap_or(false)
    })
}

fn record(sw: &Switch, a: Option<&str>, leg: &str, cause: &str) {
    record_as(sw, a, leg, cause, cause != "NONE");
}

/// Pushes `originate_causes`; `partner_cause` also sets `last_bridge_hangup_cause`.
fn record_as(sw: &Switch, a: Option<&str>, leg: &str, cause: &str, partner_cause: bool) {
    if let Some(a) = a {
        sw.with_channel(a, |c| {
            c.push_var("originate_causes", &format!("{leg};{cause}"));
            if partner_cause {
                c.set_var("last_bridge_hangup_cause", cause);
            }
        });
    }
}

/// Rings the groups of `dial` in turn for A-leg `a` (None for the originate API).
pub async fn ring(
    sw: &Arc<Switch>,
    a: Option<&str>,
    dial_str: &DialString,
    call_timeout: u64,
) -> RingResult {
    let a_ch = a.and_then(|a| sw.lock().channels.get(a).cloned());
    let mut cause = "NO_ROUTE_DESTINATION".to_owned();
    for group in dial_str {
        let start = Instant::now();
        let overall = sw.whole_second_deadline(start, call_timeout);
        let mut live = Vec::new();
        for leg in group {
            match dial(sw, &leg.user, a_ch.as_ref(), &leg.vars) {
                Dialled::Failed(c) => cause = c.to_owned(),
                Dialled::Leg(uuid, rx) => {
                    let secs = leg.var("leg_timeout").and_then(|v| v.parse::<u64>().ok());
                    if let Some(a) = a {
                        let entry = format!("{uuid};Outbound Call;{}", leg.user);
                        sw.with_channel(a, |c| {
                            c.push_var("originated_legs", &entry);
                            c.push_var("originated_legs", &entry);
                        });
                    }
                    live.push(Live {
                        uuid,
                        rx,
                        deadline: secs.map(|s| sw.whole_second_deadline(start, s)),
                    });
                }
            }
        }
        if let Some(done) = ring_group(sw, a, live, overall, &mut cause).await {
            return done;
        }
        if !a_alive(sw, a) {
            return RingResult::Failed("ORIGINATOR_CANCEL".into());
        }
    }
    RingResult::Failed(cause)
}

/// Polls a group every tick; `Some` ends the whole originate, `None` tries the next group.
async fn ring_group(
    sw: &Arc<Switch>,
    a: Option<&str>,
    mut live: Vec<Live>,
    overall: Instant,
    cause: &mut String,
) -> Option<RingResult> {
    while !live.is_empty() {
        sw.tick().await;
        if sw.cancel.is_cancelled() {
            return Some(RingResult::Failed("SYSTEM_SHUTDOWN".into()));
        }
        if !a_alive(sw, a) || a.is_some_and(|a| socket_resumed_away(sw, a)) {
            for l in &live {
                sw.hangup(&l.uuid, "ORIGINATOR_CANCEL");
                record_as(sw, a, &l.uuid, "ORIGINATOR_CANCEL", false);
            }
            return Some(RingResult::Failed("ORIGINATOR_CANCEL".into()));
        }
        let now = Instant::now();
        let mut winner = None;
        live.retain(|l| {
            let status = l.rx.borrow().clone();
            match status {
                LegStatus::Answered if winner.is_none() => {
                    winner = Some((l.uuid.clone(), l.rx.clone()));
                    false
                }
                LegStatus::Ended(c) => {
                    record(sw, a, &l.uuid, &c);
                    *cause = c;
                    false
                }
                _ if l.deadline.is_some_and(|d| now >= d) || now >= overall => {
                    sw.hangup(&l.uuid, "NO_ANSWER");
                    record(sw, a, &l.uuid, "NO_ANSWER");
                    *cause = "NO_ANSWER".into();
                    false
                }
                _ => true,
            }
        });
        if let Some((w, rx)) = winner {
            for l in &live {
                sw.hangup(&l.uuid, "LOSE_RACE");
                record(sw, a, &l.uuid, "LOSE_RACE");
            }
            record(sw, a, &w, "NONE");
            // The bridge answers a caller that was only ringing (SIP 200 towards the caller).
            if let Some(a) = a {
                sw.answer(a);
            }
            return Some(RingResult::Won(w, rx));
        }
    }
    None
}

/// Whether the A leg survives a failed bridge with `cause` (§10.4).
pub fn continues(continue_on_fail: Option<&str>, cause: &str) -> bool {
    match continue_on_fail {
        Some("true") => true,
        Some(list) if list != "false" => list.split(',').any(|c| c.trim() == cause),
        _ => matches!(
            cause,
            "NO_ANSWER" | "NO_USER_RESPONSE" | "ORIGINATOR_CANCEL"
        ),
    }
}

fn set_result(sw: &Switch, a: &str, cause: &str) {
    sw.with_channel(a, |c| {
        c.set_var("originate_disposition", cause);
        c.set_var("DIALSTATUS", dialstatus(cause));
        if cause != "SUCCESS" {
            c.set_var("originate_failed_cause", cause);
        }
    });
}

/// The `bridge` application on A leg `a`; returns its Application-Response.
pub async fn bridge_app(sw: &Arc<Switch>, a: &str, arg: &str) -> String {
    let Ok(dial_str) = dialstring::parse(arg) else {
        set_result(sw, a, "INVALIDARGS");
        return "_none_".into();
    };
    let timeout = sw
        .with_channel(a, |c| c.var("call_timeout").and_then(|v| v.parse().ok()))
        .flatten()
        .or_else(|| {
            dial_str
                .first()?
                .first()?
                .var("originate_timeout")?
                .parse()
                .ok()
        })
        .unwrap_or(60);
    sw.with_channel(a, |c| {
        c.set_var("originate_disposition", "failure");
        c.set_var("DIALSTATUS", "INVALIDARGS");
        c.call_state = "RING_WAIT";
    });
    sw.fire_channel(
        a,
        "CHANNEL_CALLSTATE",
        &[("Original-Channel-Call-State", "ACTIVE")],
    );
    match ring(sw, Some(a), &dial_str, timeout).await {
        RingResult::Won(b, rx) => talk(sw, a, &b, rx).await,
        RingResult::Failed(cause) => {
            sw.tick().await;
            set_result(sw, a, &cause);
            sw.with_channel(a, |c| {
                if c.hangup_cause.is_none() {
                    c.call_state = "ACTIVE"
                }
            });
            let keep = sw
                .with_channel(a, |c| continues(c.var("continue_on_fail"), &cause))
                .unwrap_or(true);
            if !keep {
                sw.hangup(a, &cause);
            }
        }
    }
    "_none_".into()
}

/// Links A and B, fires CHANNEL_BRIDGE, waits for either side to end, then unbridges.
async fn talk(sw: &Arc<Switch>, a: &str, b: &str, mut wb: watch::Receiver<LegStatus>) {
    set_result(sw, a, "SUCCESS");
    let now = sw.micros(Instant::now());
    {
        let mut st = sw.lock();
        if let Some(c) = st.channels.get_mut(a) {
            c.other_leg = Some(b.to_owned());
            c.originatee = Some(b.to_owned());
            if c.bridged_us == 0 {
                c.bridged_us = now;
            }
            c.call_state = "ACTIVE";
            c.set_var("bridge_uuid", b);
            c.set_var("last_bridge_to", b);
        }
        if let Some(c) = st.channels.get_mut(b) {
            c.other_leg = Some(a.to_owned());
            c.set_var("bridge_uuid", a);
        }
    }
    sw.fire_channel(
        a,
        "CHANNEL_CALLSTATE",
        &[("Original-Channel-Call-State", "RING_WAIT")],
    );
    sw.fire_channel(
        a,
        "CHANNEL_BRIDGE",
        &[("Bridge-A-Unique-ID", a), ("Bridge-B-Unique-ID", b)],
    );
    sw.fire_channel(
        b,
        "CHANNEL_BRIDGE",
        &[("Bridge-A-Unique-ID", a), ("Bridge-B-Unique-ID", b)],
    );
    let Some(mut wa) = sw.watch(a) else {
        return;
    };
    let ended = |s: &LegStatus| matches!(s, LegStatus::Ended(_));
    tokio::select! {
        r = wb.wait_for(ended) => {
            let cause = match r.map(|s| s.clone()) { Ok(LegStatus::Ended(c)) => c, _ => "NORMAL_CLEARING".into() };
            // A blind transfer of A (REFER from the agent, transfer_of_socket_call.txt run2):
            // UNBRIDGE without Other-Leg-Unique-ID and no bridge hang-up cause on A.
            let refer = sw.lock().transfers.contains_key(a);
            if refer {
                sw.with_channel(a, |c| c.other_leg = None);
            }
            // a transferred B leg leaves the bridge without hanging up: no cause reaches A
            if cause != "BLIND_TRANSFER" && !refer {
                sw.with_channel(a, |c| {
                    c.set_var("last_bridge_hangup_cause", &cause);
                    c.set_var("bridge_hangup_cause", &cause);
                });
            }
            sw.fire_channel(a, "CHANNEL_UNBRIDGE", &[("Bridge-A-Unique-ID", a), ("Bridge-B-Unique-ID", b)]);
            sw.with_channel(a, |c| c.other_leg = None);
            let hab = sw.with_channel(a, |c| c.var("hangup_after_bridge") == Some("true")).unwrap_or(false);
            if hab {
                sw.hangup(a, &cause);
            }
        }
        r = wa.wait_for(ended) => {
            let cause = match r.map(|s| s.clone()) { Ok(LegStatus::Ended(c)) => c, _ => "NORMAL_CLEARING".into() };
            // A leg a uuid_bridge moved away lives on in its new bridge (attended.rs).
            if !sw.lock().moved.contains(b) {
                sw.hangup(b, &cause);
            }
        }
        () = super::attended::moved_away(sw, a) => {
            // switch_ivr_uuid_bridge stepped A's caller profile first, so this UNBRIDGE names
            // the new leg (attended.rs); the old partner is not hung up by it.
            sw.fire_channel(a, "CHANNEL_UNBRIDGE", &[("Bridge-A-Unique-ID", a), ("Bridge-B-Unique-ID", b)]);
        }
        () = resumed_away(sw, a) => {
            // The agent is hung up NORMAL_CLEARING at that instant; the caller is not (it goes
            // on with the dialplan after `socket`), so hangup_after_bridge does not apply.
            sw.hangup(b, "NORMAL_CLEARING");
            sw.with_channel(a, |c| {
                c.set_var("last_bridge_hangup_cause", "NORMAL_CLEARING");
                c.set_var("bridge_hangup_cause", "NORMAL_CLEARING");
            });
            sw.fire_channel(a, "CHANNEL_UNBRIDGE", &[("Bridge-A-Unique-ID", a), ("Bridge-B-Unique-ID", b)]);
            sw.with_channel(a, |c| c.other_leg = None);
        }
        () = sw.cancel.cancelled() => {}
    }
}

/// Returns on the first tick after A's socket closed with `resume` in force.
async fn resumed_away(sw: &Switch, a: &str) {
    while !socket_resumed_away(sw, a) {
        sw.tick().await;
    }
}
