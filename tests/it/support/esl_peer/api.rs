//! `api` / `bgapi` commands of the simulated switch, with the exact outputs of esl-protocol.md
//! §9 and the captures: uuid_kill, uuid_getvar, uuid_exists, uuid_bridge, uuid_transfer,
//! uuid_record, originate, sofia_contact, show channels/calls as json.

use std::sync::Arc;

use super::bridge::{RingResult, ring};
use super::dialstring;
use super::exec::{start_recording, stop_recordings};
use super::phones::Behaviour;
use super::switch::{LegStatus, Switch};

/// Runs one api command line (`cmd args`) and returns the api/response body.
pub async fn run(sw: &Arc<Switch>, line: &str) -> String {
    let (cmd, args) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
    let a: Vec<&str> = args.split_whitespace().collect();
    let no_channel = || "-ERR No such channel!\n".to_owned();
    let exists = |u: &str| sw.lock().channels.contains_key(u);
    match cmd {
        "uuid_kill" => match a.first() {
            Some(u) if exists(u) => {
                sw.hangup(u, a.get(1).copied().unwrap_or("NORMAL_CLEARING"));
                "+OK\n".into()
            }
            _ => no_channel(),
        },
        "uuid_exists" => a.first().is_some_and(|u| exists(u)).to_string(),
        "uuid_getvar" => match (a.first(), a.get(1)) {
            (Some(u), Some(v)) => sw
                .with_channel(u, |c| c.var(v).unwrap_or("_undef_").to_owned())
                .unwrap_or_else(no_channel),
            _ => "-USAGE: <uuid> <var>\n".into(),
        },
        "uuid_setvar" => match (a.first(), a.get(1)) {
            (Some(u), Some(k)) => {
                match sw.with_channel(u, |c| c.set_var(k, a.get(2).copied().unwrap_or(""))) {
                    Some(()) => "+OK\n".into(),
                    None => no_channel(),
                }
            }
            _ => "-USAGE: <uuid> <var> [value]\n".into(),
        },
        "uuid_bridge" => uuid_bridge(sw, &a),
        "uuid_transfer" => uuid_transfer(sw, &a),
        "uuid_record" => uuid_record(sw, &a).await,
        "originate" => originate(sw, args).await,
        "sofia_contact" => sofia_contact(sw, args),
        "show" if args.starts_with("channels") || args.starts_with("calls") => show_channels(sw),
        "status" => {
            "UP 0 years, 0 days\nFreeSWITCH (Version 1.10.12 -release 64bit) is ready\n".into()
        }
        _ => format!("-ERR {cmd} Command not found!\n"),
    }
}

fn uuid_bridge(sw: &Switch, a: &[&str]) -> String {
    let (Some(x), Some(y)) = (a.first(), a.get(1)) else {
        return "-USAGE: <uuid> <other_uuid>\n".into();
    };
    {
        let mut st = sw.lock();
        if !st.channels.contains_key(*x) || !st.channels.contains_key(*y) {
            return "-ERR Invalid uuid\n".into();
        }
        for (p, q) in [(x, y), (y, x)] {
            if let Some(c) = st.channels.get_mut(*p) {
                c.other_leg = Some((*q).to_owned());
                c.set_var("bridge_uuid", q);
            }
        }
    }
    sw.fire_channel(
        x,
        "CHANNEL_BRIDGE",
        &[("Bridge-A-Unique-ID", x), ("Bridge-B-Unique-ID", y)],
    );
    format!("+OK {y}\n")
}

/// Transfers a channel away: a bridged partner's bridge returns (UNBRIDGE + EXECUTE_COMPLETE)
/// and the transferred leg leaves this switch's view (hung up BLIND_TRANSFER for its own peer).
fn uuid_transfer(sw: &Switch, a: &[&str]) -> String {
    let Some(u) = a.first().filter(|u| sw.lock().channels.contains_key(**u)) else {
        return "-ERR No such channel!\n".into();
    };
    if a.get(1) == Some(&"-bleg") {
        // `-bleg`: the partner of `u` is transferred (switch_ivr_session_transfer on it), which
        // is what a blind REFER from `u`'s phone does too: the socket-controlled caller sees the
        // sequence of transfer_of_socket_call.txt run2, and `u` is hung up NORMAL_CLEARING.
        let partner = sw.with_channel(u, |c| c.other_leg.clone()).flatten();
        let (Some(partner), Some(dest)) = (partner, a.get(2)) else {
            return "-ERR\n".into();
        };
        return if super::caller::refer(sw, &partner, dest) {
            "+OK\n".into()
        } else {
            "-ERR\n".into()
        };
    }
    let dest = a.get(1).copied().unwrap_or("");
    sw.with_channel(u, |c| {
        c.set_var("transfer_destination", dest);
        c.destination = dest.to_owned();
    });
    sw.fire_channel(u, "CHANNEL_TRANSFER", &[]);
    sw.hangup(u, "BLIND_TRANSFER");
    "+OK\n".into()
}

async fn uuid_record(sw: &Arc<Switch>, a: &[&str]) -> String {
    let (Some(u), Some(action), Some(path)) = (a.first(), a.get(1), a.get(2)) else {
        return "-USAGE: <uuid> [start|stop|mask|unmask] <path> [<limit>]\n".into();
    };
    if !sw.lock().channels.contains_key(*u) {
        return "-ERR Cannot locate session!\n".into();
    }
    match *action {
        "start" => start_recording(sw, u, path).await,
        "stop" => stop_recordings(sw, u, Some(path)).await,
        _ => return "-ERR Bad action\n".into(),
    }
    "+OK Success\n".into()
}

/// `originate <dial> <&app(arg)|ext> ...`: `+OK <uuid>` once answered, else `-ERR <CAUSE>`.
async fn originate(sw: &Arc<Switch>, args: &str) -> String {
    let mut parts = args.trim().splitn(2, ' ');
    let dial = parts.next().unwrap_or("");
    // The app is one argument (quoted when it holds spaces); dialplan/context/cid/timeout may follow.
    let app = app_argument(parts.next().unwrap_or("&park()"));
    let Ok(d) = dialstring::parse(dial) else {
        return "-ERR INVALID_URL\n".into();
    };
    let timeout = d
        .first()
        .and_then(|g| g.first()?.var("originate_timeout")?.parse().ok())
        .unwrap_or(60);
    let leg = match ring(sw, None, &d, timeout).await {
        RingResult::Won(leg, _) => leg,
        RingResult::Failed(c) => return format!("-ERR {c}\n"),
    };
    if let Some(inner) = app
        .strip_prefix("&bridge(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let sw2 = Arc::clone(sw);
        let (leg2, inner) = (leg.clone(), inner.to_owned());
        sw.tracker
            .spawn(async move { originate_bridge(&sw2, &leg2, &inner).await });
    }
    if let Some(inner) = app
        .strip_prefix("&socket(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let sw2 = Arc::clone(sw);
        let (leg2, inner) = (leg.clone(), inner.to_owned());
        sw.tracker
            .spawn(super::caller::socket_leg(sw2, leg2, inner));
    }
    format!("+OK {leg}\n")
}

/// The first space-separated argument of `rest`, single quotes grouping and stripped.
fn app_argument(rest: &str) -> String {
    let (mut out, mut quoted) = (String::new(), false);
    for c in rest.trim().chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => break,
            _ => out.push(c),
        }
    }
    out
}

/// The `&bridge(...)` of an originated leg: rings the far end; on failure the leg hangs up with its cause.
async fn originate_bridge(sw: &Arc<Switch>, leg: &str, dial: &str) {
    match super::bridge::bridge_app(sw, leg, dial).await.as_str() {
        _ if sw
            .with_channel(leg, |c| c.hangup_cause.is_none())
            .unwrap_or(false) =>
        {
            let cause = sw
                .with_channel(leg, |c| c.var("originate_disposition").map(str::to_owned))
                .flatten();
            match cause.as_deref() {
                Some("SUCCESS") | None => sw.hangup(leg, "NORMAL_CLEARING"),
                Some(c) => sw.hangup(leg, c),
            };
        }
        _ => {}
    }
    if let Some(mut w) = sw.watch(leg) {
        let _ = w.wait_for(|s| matches!(s, LegStatus::Ended(_))).await;
    }
}

fn sofia_contact(sw: &Switch, args: &str) -> String {
    let user = args
        .trim()
        .trim_start_matches("*/")
        .split('@')
        .next()
        .unwrap_or("");
    match sw.lock().phones.get(user) {
        Some(p) if p.behaviour != Behaviour::Unregistered => {
            format!("sofia/internal/sip:{user}@127.0.0.1:{}", p.port)
        }
        _ => "error/user_not_registered".into(),
    }
}

fn show_channels(sw: &Switch) -> String {
    let st = sw.lock();
    if st.channels.is_empty() {
        return "{\"row_count\": 0}".into();
    }
    let rows: Vec<serde_json::Value> = st
        .channels
        .values()
        .map(|c| {
            serde_json::json!({
                "uuid": c.uuid, "direction": c.direction, "name": c.name, "state": c.state,
                "cid_name": c.cid_name, "cid_num": c.cid_number, "dest": c.destination,
                "application": c.var("current_application").unwrap_or(""),
                "callstate": c.call_state, "call_uuid": c.var("call_uuid").unwrap_or(&c.uuid),
                "presence_id": if c.direction == "outbound" { format!("{}@127.0.0.1", c.destination) } else { String::new() },
            })
        })
        .collect();
    serde_json::json!({"row_count": rows.len(), "rows": rows}).to_string()
}
