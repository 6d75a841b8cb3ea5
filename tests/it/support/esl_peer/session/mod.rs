//! One ESL connection of the simulated switch (outbound socket of a call, or inbound :8021):
//! command handling with the real reply texts, subscriptions, filters, myevents, linger, exit.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod commands;

use super::event::EventRef;
use super::exec::Exec;
use super::switch::{ConnKind, Switch};
use super::wire::{self, Command};

/// Events `myevents` subscribes (esl-protocol.md §6).
const MYEVENTS: &[&str] = &[
    "CHANNEL_ANSWER",
    "CHANNEL_APPLICATION",
    "CHANNEL_BRIDGE",
    "CHANNEL_CREATE",
    "CHANNEL_DATA",
    "CHANNEL_DESTROY",
    "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_ORIGINATE",
    "CHANNEL_UUID",
    "CHANNEL_OUTGOING",
    "CHANNEL_PARK",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_STATE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_UNPARK",
    "DETECTED_SPEECH",
    "DTMF",
    "NOTALK",
    "TALK",
];

/// The controlled call of an outbound connection.
pub struct Controlled {
    /// Channel uuid.
    pub uuid: String,
    /// Raw Channel-Name for the linger notice.
    pub channel_name: String,
    /// The connect reply (CHANNEL_DATA dump), prebuilt.
    pub connect_reply: String,
    /// Execute queue of the channel.
    pub exec: mpsc::Sender<Exec>,
    /// Fires once the channel is torn down.
    pub done: oneshot::Receiver<()>,
    /// Never answer `connect` (a stuck switch).
    pub stall_connect: bool,
}

struct Session {
    sw: Arc<Switch>,
    stop: CancellationToken,
    kind: ConnKind,
    out: OwnedWriteHalf,
    authed: bool,
    password: String,
    all: bool,
    /// Types `nixevent` removed from `ALL` (the switch then sends every type but these).
    nixed: HashSet<String>,
    names: HashSet<String>,
    customs: HashSet<String>,
    filters: Vec<(String, String)>,
    myevents: bool,
    /// `event json ...` switches every later event to text/event-json.
    json: bool,
    linger: Option<i64>,
    ctl: Option<Controlled>,
    sent: mpsc::Sender<String>,
}

/// Serves one connection until it closes. `sent` receives the Event-Name / Reply-Text of every frame written.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    sw: Arc<Switch>,
    stop: CancellationToken,
    kind: ConnKind,
    stream: TcpStream,
    password: String,
    ctl: Option<Controlled>,
    sent: mpsc::Sender<String>,
) {
    // mod_event_socket sets TCP_NODELAY on every ESL connection, the `socket` app's and the
    // inbound listener's (esl-protocol.md §5.1): each frame leaves at once, never held back by
    // Nagle until the app's delayed ACK (which would also stall the paused-clock replays).
    let _ = stream.set_nodelay(true);
    let (rd, out) = stream.into_split();
    let (cmd_tx, mut cmd_rx) = mpsc::channel::<Command>(64);
    let reader_cancel = stop.clone();
    sw.tracker.spawn(async move {
        let mut rd = BufReader::new(rd);
        loop {
            let c = tokio::select! { () = reader_cancel.cancelled() => break, c = wire::read_command(&mut rd) => c };
            let Ok(Some(c)) = c else { break };
            if cmd_tx.send(c).await.is_err() {
                break;
            }
        }
    });
    let mut bus = sw.bus.subscribe();
    let authed = ctl.is_some();
    let mut s = Session {
        sw,
        stop,
        kind,
        out,
        authed,
        password,
        all: false,
        nixed: HashSet::new(),
        names: HashSet::new(),
        customs: HashSet::new(),
        filters: Vec::new(),
        myevents: false,
        json: false,
        linger: None,
        ctl,
        sent,
    };
    if !authed
        && s.write("Content-Type: auth/request\n\n", "auth/request")
            .await
            .is_err()
    {
        return;
    }
    let _ = s.run(&mut cmd_rx, &mut bus).await;
}

impl Session {
    async fn write(&mut self, frame: &str, label: &str) -> std::io::Result<()> {
        let _ = self.sent.try_send(label.to_owned());
        self.out.write_all(frame.as_bytes()).await
    }

    async fn run(
        &mut self,
        cmds: &mut mpsc::Receiver<Command>,
        bus: &mut broadcast::Receiver<EventRef>,
    ) -> std::io::Result<()> {
        let mut done = self
            .ctl
            .as_mut()
            .map(|c| std::mem::replace(&mut c.done, oneshot::channel().1));
        let mut linger_deadline: Option<Instant> = None;
        let mut connected = self.ctl.is_none();
        loop {
            tokio::select! {
                biased;
                () = self.stop.cancelled() => return Ok(()),
                ev = bus.recv(), if connected => match ev {
                    Ok(ev) => if self.wants(&ev) {
                        let frame = if self.json { wire::event_json(&ev.headers, ev.body.as_deref()) } else { wire::event_plain(&ev.headers, ev.body.as_deref()) };
                        self.write(&frame, ev.name()).await?;
                    },
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                cmd = cmds.recv() => match cmd {
                    Some(cmd) => {
                        if cmd.line == "connect" { connected = true; }
                        if !self.handle(cmd).await? { return self.out.shutdown().await; }
                    }
                    None => { self.app_closed(); return Ok(()); }
                },
                r = async { done.as_mut()?.await.ok() }, if done.is_some() => {
                    let _ = r;
                    done = None;
                    let ctl = self.ctl.as_ref().map(|c| (c.uuid.clone(), c.channel_name.clone()));
                    let Some((uuid, name)) = ctl else { return Ok(()) };
                    match self.linger {
                        Some(n) => {
                            self.write(&wire::linger_notice(&uuid, &name, n), "linger").await?;
                            if n >= 0 {
                                let secs = u64::try_from(n).unwrap_or(0);
                                linger_deadline = Some(self.sw.whole_second_deadline(Instant::now(), secs + 1));
                            }
                        }
                        None => {
                            self.write(&wire::goodbye_notice(Some(&uuid)), "disconnect").await?;
                            return self.out.shutdown().await;
                        }
                    }
                }
                () = async { tokio::time::sleep_until(linger_deadline.unwrap_or_else(Instant::now)).await }, if linger_deadline.is_some() => {
                    let uuid = self.ctl.as_ref().map(|c| c.uuid.clone());
                    self.write(&wire::goodbye_notice(uuid.as_deref()), "disconnect").await?;
                    return self.out.shutdown().await;
                }
            }
        }
    }

    /// The app closed the socket: dropping the session's execute queue lets the channel's
    /// executor finish the running application and then continue the dialplan (see
    /// `exec::run`); the call is not hung up by the disconnect itself. With `resume` a running
    /// bridge is broken at once (`bridge::socket_resumed_away`).
    fn app_closed(&mut self) {
        if let Some(own) = self.own().map(str::to_owned) {
            self.sw.lock().socket_closed.insert(own);
        }
        self.ctl = None;
    }

    fn own(&self) -> Option<&str> {
        self.ctl.as_ref().map(|c| c.uuid.as_str())
    }

    fn wants(&self, ev: &EventRef) -> bool {
        let name = ev.name();
        let subscribed = (self.all && !self.nixed.contains(name))
            || self.names.contains(name)
            || (name == "CUSTOM" && ev.subclass().is_some_and(|s| self.customs.contains(s)));
        if !subscribed {
            return false;
        }
        if !self.filters.is_empty() {
            let pass = self
                .filters
                .iter()
                .any(|(h, v)| ev.header(h).is_some_and(|x| x.eq_ignore_ascii_case(v)));
            if !pass {
                return false;
            }
        }
        match (self.myevents, self.own()) {
            (true, Some(own)) => {
                ev.header("Unique-ID") == Some(own) || ev.header("Job-Owner-UUID") == Some(own)
            }
            _ => true,
        }
    }

    async fn reply(&mut self, text: &str) -> std::io::Result<bool> {
        self.write(&wire::reply(text), text).await?;
        Ok(true)
    }

    /// Handles one command; `Ok(false)` closes the connection.
    async fn handle(&mut self, cmd: Command) -> std::io::Result<bool> {
        self.sw.log_command(self.kind, &cmd.raw);
        let (word, rest) = cmd.line.split_once(' ').unwrap_or((cmd.line.as_str(), ""));
        let rest = rest.trim().to_owned();
        if !self.authed {
            return self.handle_auth(word, &rest).await;
        }
        match word {
            "connect" if self.ctl.is_some() => {
                if self.ctl.as_ref().is_some_and(|c| c.stall_connect) {
                    return Ok(true);
                }
                let reply = self
                    .ctl
                    .as_ref()
                    .map(|c| c.connect_reply.clone())
                    .unwrap_or_default();
                self.write(&reply, "connect").await?;
                Ok(true)
            }
            "myevents" if self.myevents => self.reply("-ERR aready enabled.").await,
            "myevents" if self.ctl.is_some() => {
                // Like mod_event_socket: the fixed set joins the event list (so `nixevent`
                // and `noevents` remove its types), and own-channel filtering starts.
                self.myevents = true;
                self.names.extend(MYEVENTS.iter().map(|n| (*n).to_owned()));
                self.reply("+OK Events Enabled").await
            }
            "linger" if self.ctl.is_some() => {
                let n = rest.parse::<i64>().ok();
                self.linger = Some(n.unwrap_or(-1));
                let text = n.map_or_else(
                    || "+OK will linger".to_owned(),
                    |n| format!("+OK will linger {n} seconds"),
                );
                self.reply(&text).await
            }
            "nolinger" if self.ctl.is_some() => {
                self.linger = None;
                self.reply("+OK will not linger").await
            }
            "resume" if self.ctl.is_some() => {
                if let Some(own) = self.own().map(str::to_owned) {
                    self.sw.lock().resume.insert(own);
                }
                self.reply("+OK").await
            }
            "event" => self.subscribe(&rest).await,
            "nixevent" => self.nixevent(&rest).await,
            "noevents" => {
                self.all = false;
                self.nixed.clear();
                self.names.clear();
                self.customs.clear();
                self.reply("+OK no longer listening for events").await
            }
            "filter" => self.filter(&rest).await,
            "exit" | "..." => {
                self.reply("+OK bye").await?;
                let uuid = self.own().map(str::to_owned);
                self.write(&wire::goodbye_notice(uuid.as_deref()), "disconnect")
                    .await?;
                if uuid.is_some() {
                    self.app_closed();
                }
                Ok(false)
            }
            "sendmsg" => self.sendmsg(&rest, &cmd).await,
            "api" => {
                let body = super::api::run(&self.sw, &rest).await;
                self.write(&wire::api_response(&body), "api/response")
                    .await?;
                Ok(true)
            }
            "bgapi" => self.bgapi(&rest, &cmd).await,
            _ => self.reply("-ERR command not found").await,
        }
    }
}
