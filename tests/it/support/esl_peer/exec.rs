//! The A leg's execute queue: sendmsg `execute`/`hangup` messages run one after another on
//! the 20 ms tick with CHANNEL_EXECUTE / EXECUTE_COMPLETE, and the socket-app teardown.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::bridge::bridge_app;
use super::switch::{LegStatus, Switch};

/// A message queued for the channel (from sendmsg).
#[derive(Debug, Clone)]
pub enum Exec {
    /// `call-command: execute`.
    App {
        /// execute-app-name.
        name: String,
        /// execute-app-arg (or body).
        arg: Option<String>,
        /// Event-UUID, echoed as Application-UUID.
        event_uuid: Option<String>,
    },
    /// `call-command: hangup` with `hangup-cause`.
    Hangup(String),
}

/// Starts the executor of socket-controlled channel `uuid`; the receiver fires after teardown.
pub fn spawn(
    sw: &Arc<Switch>,
    uuid: &str,
    socket_arg: String,
) -> (mpsc::Sender<Exec>, oneshot::Receiver<()>) {
    let (tx, rx) = mpsc::channel(256);
    let (done_tx, done_rx) = oneshot::channel();
    let sw2 = Arc::clone(sw);
    let uuid = uuid.to_owned();
    sw.tracker.spawn(async move {
        run(&sw2, &uuid, rx, &socket_arg).await;
        let _ = done_tx.send(());
    });
    (tx, done_rx)
}

async fn run(sw: &Arc<Switch>, uuid: &str, mut rx: mpsc::Receiver<Exec>, socket_arg: &str) {
    let Some(mut status) = sw.watch(uuid) else {
        return;
    };
    let mut last_response = "_none_".to_owned();
    loop {
        let msg = tokio::select! {
            biased;
            () = sw.cancel.cancelled() => return,
            _ = status.wait_for(|s| matches!(s, LegStatus::Ended(_))) => break,
            m = rx.recv() => m,
        };
        let Some(msg) = msg else {
            // The socket closed (fsb24 exited or was killed): the `socket` app returns once the
            // running app is done (a bridge goes on until the conversation ends, unless the
            // socket sent `resume`) and the dialplan continues after it (esl-protocol.md §5.6).
            return after_socket(sw, uuid, socket_arg, &last_response).await;
        };
        sw.tick().await;
        if sw
            .with_channel(uuid, |c| c.hangup_cause.is_some())
            .unwrap_or(true)
        {
            break;
        }
        match msg {
            Exec::Hangup(cause) => {
                sw.hangup(uuid, &cause);
            }
            Exec::App {
                name,
                arg,
                event_uuid,
            } => {
                if let Some(r) =
                    execute(sw, uuid, &name, arg.as_deref(), event_uuid.as_deref()).await
                {
                    last_response = r;
                }
                let refer = sw.lock().transfers.remove(uuid);
                if let Some(to) = refer {
                    return transferred(sw, uuid, &mut rx, socket_arg, &to).await;
                }
                let rebridge = sw.lock().rebridges.remove(uuid);
                if let Some(to) = rebridge {
                    socket_app_returns(sw, uuid, socket_arg, "_none_", false);
                    super::attended::uuid_bridged(sw, uuid, &to, &mut rx).await;
                    return dialplan_continues(sw, uuid).await;
                }
            }
        }
    }
    teardown(sw, uuid, socket_arg, &last_response).await;
}

/// Runs one application with its EXECUTE/EXECUTE_COMPLETE; None if it was unknown.
async fn execute(
    sw: &Arc<Switch>,
    uuid: &str,
    name: &str,
    arg: Option<&str>,
    ev_uuid: Option<&str>,
) -> Option<String> {
    if !KNOWN_APPS.contains(&name) {
        sw.hangup(uuid, "DESTINATION_OUT_OF_ORDER");
        return None;
    }
    sw.with_channel(uuid, |c| {
        c.set_var("current_application", name);
        if let Some(a) = arg {
            c.set_var("current_application_data", a);
        }
    });
    // An app the dialplan runs gets an Application-UUID of the switch's own making
    // (transfer_of_socket_call.txt run2: `set`, `bridge` after the REFER).
    let generated = uuid::Uuid::new_v4().to_string();
    let ev_uuid = Some(ev_uuid.unwrap_or(&generated));
    let mut extra = vec![("Application", name)];
    if let Some(a) = arg {
        extra.push(("Application-Data", a));
    }
    if let Some(e) = ev_uuid {
        extra.push(("Application-UUID", e));
    }
    sw.fire_channel(uuid, "CHANNEL_EXECUTE", &extra);
    let response = run_app(sw, uuid, name, arg.unwrap_or("")).await;
    sw.with_channel(uuid, |c| {
        c.set_var("current_application_response", &response)
    });
    let mut extra = vec![("Application", name)];
    if let Some(a) = arg {
        extra.push(("Application-Data", a));
    }
    extra.push(("Application-Response", &response));
    if let Some(e) = ev_uuid {
        extra.push(("Application-UUID", e));
    }
    sw.fire_channel(uuid, "CHANNEL_EXECUTE_COMPLETE", &extra);
    Some(response)
}

const KNOWN_APPS: &[&str] = &[
    "answer",
    "pre_answer",
    "ring_ready",
    "set",
    "export",
    "multiset",
    "unset",
    "bridge",
    "record_session",
    "stop_record_session",
    "playback",
    "sleep",
    "hangup",
    "park",
    "log",
    "info",
    "transfer",
    "endless_playback",
];

async fn run_app(sw: &Arc<Switch>, uuid: &str, name: &str, arg: &str) -> String {
    match name {
        "answer" | "pre_answer" => {
            sw.answer(uuid);
        }
        "set" | "export" => set_pairs(sw, uuid, std::iter::once(arg)),
        "multiset" => set_pairs(sw, uuid, multiset_pairs(arg)),
        "unset" => {
            sw.with_channel(uuid, |c| c.set_var(arg, ""));
        }
        "bridge" => return bridge_app(sw, uuid, arg).await,
        "record_session" => start_recording(sw, uuid, arg).await,
        "stop_record_session" => stop_recordings(sw, uuid, Some(arg)).await,
        "playback" | "endless_playback" => return playback(sw, uuid, arg).await,
        "sleep" => {
            let _ = wait_or_hangup(sw, uuid, Duration::from_millis(arg.parse().unwrap_or(0))).await;
        }
        "hangup" => {
            sw.hangup(
                uuid,
                if arg.is_empty() {
                    "NORMAL_CLEARING"
                } else {
                    arg
                },
            );
        }
        "park" => {
            let _ = wait_or_hangup(sw, uuid, Duration::from_secs(86_400)).await;
        }
        _ => {}
    }
    "_none_".into()
}

/// The pairs of a `multiset` argument: space-separated, or split on the character after a
/// leading `^^` (`^^|a=1|b=2`, FreeSWITCH's custom delimiter).
// Regression (call_cases busy manager): `^^|` arguments were split on spaces, so fsb24's
// `continue_on_fail=true` was never set and a busy agent hung the caller up.
fn multiset_pairs(arg: &str) -> Box<dyn Iterator<Item = &str> + '_> {
    match arg.strip_prefix("^^").and_then(|r| {
        let d = r.chars().next()?;
        Some((d, &r[d.len_utf8()..]))
    }) {
        Some((d, rest)) => Box::new(rest.split(d)),
        None => Box::new(arg.split(' ')),
    }
}

fn set_pairs<'a>(sw: &Switch, uuid: &str, pairs: impl Iterator<Item = &'a str>) {
    sw.with_channel(uuid, |c| {
        for p in pairs {
            if let Some((k, v)) = p.split_once('=') {
                c.set_var(k, v);
            }
        }
    });
}

/// Sleeps `d` unless the channel hangs up first; true if the full time passed.
pub async fn wait_or_hangup(sw: &Switch, uuid: &str, d: Duration) -> bool {
    let Some(mut st) = sw.watch(uuid) else {
        return false;
    };
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        _ = st.wait_for(|s| matches!(s, LegStatus::Ended(_))) => false,
        () = sw.cancel.cancelled() => false,
    }
}

async fn playback(sw: &Arc<Switch>, uuid: &str, arg: &str) -> String {
    let ms = arg
        .strip_prefix("tone_stream://%(")
        .or_else(|| arg.strip_prefix("silence_stream://"))
        .and_then(|r| r.split([',', ')']).next()?.parse::<u64>().ok())
        .unwrap_or(1000);
    sw.tick().await;
    sw.fire_channel(uuid, "PLAYBACK_START", &[("Playback-File-Path", arg)]);
    let full = wait_or_hangup(sw, uuid, Duration::from_millis(ms)).await;
    let status = if full { "done" } else { "break" };
    sw.fire_channel(
        uuid,
        "PLAYBACK_STOP",
        &[("Playback-File-Path", arg), ("Playback-Status", status)],
    );
    // sendmsg hangup is parsed by the playback loop (it "finishes"); a remote BYE breaks it
    if full || sw.lock().app_hangups.contains(uuid) {
        "FILE PLAYED".into()
    } else {
        "PLAYBACK ERROR".into()
    }
}

/// Starts a recording of `uuid` to `path` (RECORD_START + MEDIA_BUG_START on the next tick).
pub async fn start_recording(sw: &Arc<Switch>, uuid: &str, path: &str) {
    sw.tick().await;
    sw.lock()
        .recordings
        .push((uuid.to_owned(), path.to_owned(), Instant::now()));
    sw.fire_channel(uuid, "RECORD_START", &[("Record-File-Path", path)]);
    sw.fire_channel(
        uuid,
        "MEDIA_BUG_START",
        &[
            ("Media-Bug-Function", "session_record"),
            ("Media-Bug-Target", path),
        ],
    );
}

/// Stops recordings of `uuid` (`None`/`all` = every one): writes the WAV, then RECORD_STOP.
pub async fn stop_recordings(sw: &Arc<Switch>, uuid: &str, path: Option<&str>) {
    let (stopping, delay) = {
        let mut st = sw.lock();
        let all = path.is_none_or(|p| p == "all");
        let (stop, keep) = st
            .recordings
            .drain(..)
            .partition(|(u, p, _)| u == uuid && (all || Some(p.as_str()) == path));
        st.recordings = keep;
        (stop, st.record_delay)
    };
    let stopping: Vec<(String, String, Instant)> = stopping;
    if !stopping.is_empty() && !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    for (_, path, started) in stopping {
        let ms = started.elapsed().as_millis();
        let _ = tokio::fs::write(&path, super::wav::tone(ms)).await;
        let (ms_s, secs) = (ms.to_string(), (ms / 1000).to_string());
        sw.with_channel(uuid, |c| {
            c.set_var("record_ms", &ms_s);
            c.set_var("record_seconds", &secs);
        });
        sw.fire_channel(
            uuid,
            "RECORD_STOP",
            &[
                ("Record-File-Path", &path),
                ("Record-Completion-Cause", "success-silence"),
            ],
        );
        sw.fire_channel(
            uuid,
            "MEDIA_BUG_STOP",
            &[
                ("Media-Bug-Function", "session_record"),
                ("Media-Bug-Target", &path),
            ],
        );
    }
}

/// A blind transfer (REFER) took the channel out of the socket app: the app returns without a
/// hang-up cause, then the dialplan of `to` runs `set hangup_after_bridge=true`,
/// `set call_timeout=30` and bridges it (transfer_of_socket_call.txt run2). The app stays connected: its `sendmsg hangup` still works.
async fn transferred(
    sw: &Arc<Switch>,
    uuid: &str,
    rx: &mut mpsc::Receiver<Exec>,
    socket_arg: &str,
    to: &str,
) {
    socket_app_returns(sw, uuid, socket_arg, "_none_", false);
    // The capture's dialplan for the extension: two `set`s, then the bridge.
    for set in ["hangup_after_bridge=true", "call_timeout=30"] {
        execute(sw, uuid, "set", Some(set), None).await;
    }
    let dial = format!("user/{to}@127.0.0.1");
    let dialplan = execute(sw, uuid, "bridge", Some(&dial), None);
    tokio::pin!(dialplan);
    loop {
        tokio::select! {
            _ = &mut dialplan => break,
            m = rx.recv() => match m {
                Some(Exec::Hangup(cause)) => {
                    sw.hangup(uuid, &cause);
                }
                // The bridge loop runs queued messages too; of the apps only `hangup` matters.
                Some(Exec::App { name, arg, .. }) if name == "hangup" => {
                    let cause = arg.filter(|a| !a.is_empty());
                    sw.hangup(uuid, cause.as_deref().unwrap_or("NORMAL_CLEARING"));
                }
                Some(Exec::App { .. }) => {}
                None => {
                    let _ = (&mut dialplan).await;
                    break;
                }
            },
        }
    }
    if sw
        .with_channel(uuid, |c| c.hangup_cause.is_none())
        .unwrap_or(false)
    {
        sw.hangup(uuid, "NORMAL_CLEARING");
    }
    sw.enter_hangup_state(uuid);
    stop_recordings(sw, uuid, None).await;
    sw.complete_channel(uuid);
}

/// The socket closed while the caller is up: the `socket` app returns and the dialplan goes on
/// as in dialplan/fsb24.xml: a caller who talked is hung up (`fsb24_after_talk`); one who did
/// not rings the fallback group (`continue_on_fail`, `hangup_after_bridge`, `call_timeout=30`,
/// then NO_ANSWER), when the test configured one; without one the caller is hung up.
async fn after_socket(sw: &Arc<Switch>, uuid: &str, socket_arg: &str, last_response: &str) {
    let alive = sw
        .with_channel(uuid, |c| c.hangup_cause.is_none())
        .unwrap_or(false);
    if !alive {
        return teardown(sw, uuid, socket_arg, last_response).await;
    }
    sw.tick().await;
    socket_app_returns(sw, uuid, socket_arg, last_response, false);
    dialplan_continues(sw, uuid).await;
}

/// The dialplan after `socket` (dialplan/fsb24.xml), up to the channel's end.
pub(super) async fn dialplan_continues(sw: &Arc<Switch>, uuid: &str) {
    // The listener (and its resume flag) is gone: the dialplan's own bridge is not affected.
    let fallback = {
        let mut st = sw.lock();
        st.resume.remove(uuid);
        st.fallback.clone()
    };
    let talked = sw
        .with_channel(uuid, |c| c.var("last_bridge_to").is_some())
        .unwrap_or(true);
    let mut cause = "NORMAL_CLEARING";
    if let Some(dial) = outgoing_fallback(sw, uuid) {
        execute(sw, uuid, "bridge", Some(&dial), None).await;
    } else if is_outgoing(sw, uuid) {
        // fsb24 placed it (`fsb24_placed`) or no fallback is configured: hung up, never
        // dialled twice.
    } else if !talked && !fallback.is_empty() {
        sw.with_channel(uuid, |c| {
            c.set_var("continue_on_fail", "true");
            c.set_var("hangup_after_bridge", "true");
            c.set_var("call_timeout", "30");
        });
        let group: Vec<String> = fallback
            .iter()
            .map(|u| format!("user/{u}@127.0.0.1"))
            .collect();
        execute(sw, uuid, "bridge", Some(&group.join(",")), None).await;
        cause = "NO_ANSWER";
    }
    sw.hangup(uuid, cause);
    sw.enter_hangup_state(uuid);
    stop_recordings(sw, uuid, None).await;
    sw.complete_channel(uuid);
}

/// The `socket` app could not connect (nothing listens: fsb24 is down). It returns at once
/// after its CHANNEL_EXECUTE, and the dialplan continues after it as in `after_socket`.
pub async fn socket_refused(sw: &Arc<Switch>, uuid: &str, socket_arg: &str) {
    sw.with_channel(uuid, |c| {
        c.set_var("current_application", "socket");
        c.set_var("current_application_data", socket_arg);
    });
    sw.fire_channel(
        uuid,
        "CHANNEL_EXECUTE",
        &[("Application", "socket"), ("Application-Data", socket_arg)],
    );
    sw.tick().await;
    // mod_event_socket's socket_function returns on a failed connect before it parks the
    // channel: no CHANNEL_PARK / UNPARK, only the app's EXECUTE_COMPLETE.
    sw.fire_channel(
        uuid,
        "CHANNEL_EXECUTE_COMPLETE",
        &[
            ("Application", "socket"),
            ("Application-Data", socket_arg),
            ("Application-Response", "_none_"),
        ],
    );
    dialplan_continues(sw, uuid).await;
}

fn is_outgoing(sw: &Switch, uuid: &str) -> bool {
    sw.with_channel(uuid, |c| c.var("fsb24_call") == Some("outgoing"))
        .unwrap_or(false)
}

/// dialplan/fsb24.xml `fsb24_outgoing_fallback`: the dial string for an outgoing call fsb24 did
/// not place (`fsb24_placed` unset), when a gateway is configured.
fn outgoing_fallback(sw: &Switch, uuid: &str) -> Option<String> {
    let gateway = sw.lock().outgoing_gateway.clone()?;
    sw.with_channel(uuid, |c| {
        let placed = c.var("fsb24_placed") == Some("true");
        (c.var("fsb24_call") == Some("outgoing") && !placed).then(|| {
            c.set_var("hangup_after_bridge", "true");
            format!("sofia/gateway/{gateway}/{}", c.destination)
        })
    })
    .flatten()
}

/// The socket app returns and the channel is destroyed (the order of the real captures).
async fn teardown(sw: &Arc<Switch>, uuid: &str, socket_arg: &str, last_response: &str) {
    if sw
        .with_channel(uuid, |c| c.hangup_cause.is_none())
        .unwrap_or(false)
    {
        sw.hangup(uuid, "NORMAL_CLEARING");
    }
    socket_app_returns(sw, uuid, socket_arg, last_response, true);
    sw.enter_hangup_state(uuid);
    stop_recordings(sw, uuid, None).await;
    sw.complete_channel(uuid);
}

/// The `socket` app returns: CHANNEL_UNPARK, then its CHANNEL_EXECUTE_COMPLETE with `response`
/// (after a hang-up the channel's current application reads `socket` again).
fn socket_app_returns(sw: &Switch, uuid: &str, socket_arg: &str, response: &str, current: bool) {
    sw.fire_channel(uuid, "CHANNEL_UNPARK", &[]);
    if current {
        sw.with_channel(uuid, |c| c.set_var("current_application", "socket"));
    }
    sw.fire_channel(
        uuid,
        "CHANNEL_EXECUTE_COMPLETE",
        &[
            ("Application", "socket"),
            ("Application-Data", socket_arg),
            ("Application-Response", response),
        ],
    );
}
