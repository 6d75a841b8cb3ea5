//! Calls the simulated switch offers to the app (the `socket` dialplan app dialling out) and
//! calls between two phones; the connect reply (CHANNEL_DATA dump) of an outbound session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

use super::event::{Channel, FsEvent};
use super::switch::{ConnKind, Switch};
use super::{FAILSAFE, FsPeer, bridge, exec, session, wire};

/// How the switch offers a call to the app.
#[derive(Debug, Clone, Default)]
pub struct CallSpec {
    /// Caller-ID number (`+79991234567`).
    pub caller: String,
    /// Caller-ID name (defaults to the number).
    pub caller_name: Option<String>,
    /// Dialled number (`9000`).
    pub destination: String,
    /// Fixed channel uuid (default: random).
    pub uuid: Option<String>,
    /// The caller hangs up this long after `connect` was answered.
    pub hang_up_after: Option<Duration>,
    /// Never reply to `connect` (a stuck switch).
    pub stall_connect: bool,
    /// Channel variables the dialplan set before `socket` (`set fsb24_call=outgoing`).
    pub vars: Vec<(String, String)>,
}

/// The caller side of one offered call.
pub struct CallerHandle {
    /// The A leg's uuid.
    pub uuid: String,
    sw: Arc<Switch>,
    sent: mpsc::Receiver<String>,
    task: Option<JoinHandle<()>>,
}

impl FsPeer {
    /// Offers a call to the app listening at `app` like `socket <app> async full`.
    pub async fn offer_call(
        &self,
        app: SocketAddr,
        spec: CallSpec,
    ) -> std::io::Result<CallerHandle> {
        let uuid = spec
            .uuid
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let socket_arg = format!("{app} async full");
        let ch = caller_channel(&self.sw, &uuid, &spec, &socket_arg);
        let channel_name = ch.name.clone();
        self.sw.add_channel(ch);
        let stream = timeout(FAILSAFE, TcpStream::connect(app))
            .await
            .map_err(std::io::Error::other)??;
        let (exec, done) = exec::spawn(&self.sw, &uuid, socket_arg);
        let connect_reply = connect_reply(&self.sw, &uuid);
        let ctl = session::Controlled {
            uuid: uuid.clone(),
            channel_name,
            connect_reply,
            exec,
            done,
            stall_connect: spec.stall_connect,
        };
        let (tx, sent) = mpsc::channel(4096);
        let n = self.serial.fetch_add(1, Ordering::Relaxed);
        let (sw, stop) = (Arc::clone(&self.sw), self.sw.cancel.child_token());
        let task = self.sw.tracker.spawn(session::serve(
            sw,
            stop,
            ConnKind::Outbound(n),
            stream,
            String::new(),
            Some(ctl),
            tx,
        ));
        if let Some(after) = spec.hang_up_after {
            let (sw, u) = (Arc::clone(&self.sw), uuid.clone());
            self.sw.tracker.spawn(async move {
                let mut rx = sw.cmd_count.subscribe();
                let connected = |_: &usize| {
                    sw.lock()
                        .commands
                        .iter()
                        .any(|c| c.conn == ConnKind::Outbound(n) && c.text.starts_with("connect"))
                };
                if timeout(FAILSAFE, rx.wait_for(connected)).await.is_ok() {
                    tokio::time::sleep(after).await;
                    sw.hangup(&u, "NORMAL_CLEARING");
                }
            });
        }
        Ok(CallerHandle {
            uuid,
            sw: Arc::clone(&self.sw),
            sent,
            task: Some(task),
        })
    }

    /// Like [`FsPeer::offer_call`] while nothing listens at `app` (fsb24 is down): the `socket`
    /// app's connect is refused at once, the app returns (CHANNEL_EXECUTE_COMPLETE) and the
    /// dialplan continues after it with the configured fallback (esl-protocol.md §5.6,
    /// dialplan/fsb24.xml). Returns the channel's uuid. Panics if something accepts the connect.
    pub async fn offer_call_while_down(&self, app: SocketAddr, spec: CallSpec) -> String {
        let uuid = spec
            .uuid
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let socket_arg = format!("{app} async full");
        let ch = caller_channel(&self.sw, &uuid, &spec, &socket_arg);
        self.sw.add_channel(ch);
        self.sw.fire_channel(&uuid, "CHANNEL_CREATE", &[]);
        let refused = timeout(FAILSAFE, TcpStream::connect(app)).await;
        assert!(
            matches!(refused, Ok(Err(_))),
            "offer_call_while_down: something accepted the socket connect at {app}"
        );
        let (sw, u) = (Arc::clone(&self.sw), uuid.clone());
        self.sw
            .tracker
            .spawn(async move { exec::socket_refused(&sw, &u, &socket_arg).await });
        uuid
    }

    /// A call between two phones (no socket): `from` dials `to`; live-channel events for presence.
    pub fn internal_call(&self, from: &str, to: &str, talk: Duration) -> String {
        let uuid = uuid::Uuid::new_v4().to_string();
        let spec = CallSpec {
            caller: from.to_owned(),
            destination: to.to_owned(),
            ..CallSpec::default()
        };
        let mut ch = caller_channel(&self.sw, &uuid, &spec, "");
        ch.answer_state = "answered";
        self.sw.add_channel(ch);
        let (sw, u, to) = (Arc::clone(&self.sw), uuid.clone(), to.to_owned());
        self.sw.tracker.spawn(async move {
            sw.fire_channel(&u, "CHANNEL_CREATE", &[]);
            let hang = {
                let (sw, u) = (Arc::clone(&sw), u.clone());
                let mut bus = sw.bus.subscribe();
                async move {
                    let bridged = async {
                        while let Ok(ev) = bus.recv().await {
                            if ev.name() == "CHANNEL_BRIDGE"
                                && ev.header("Unique-ID") == Some(u.as_str())
                            {
                                return true;
                            }
                        }
                        false
                    };
                    if bridged.await {
                        exec::wait_or_hangup(&sw, &u, talk).await;
                    }
                    sw.hangup(&u, "NORMAL_CLEARING");
                }
            };
            sw.tracker.spawn(hang);
            bridge::bridge_app(&sw, &u, &format!("user/{to}@127.0.0.1")).await;
            sw.hangup(&u, "NORMAL_CLEARING");
            sw.finish_channel(&u);
        });
        uuid
    }
}

impl CallerHandle {
    /// The caller hangs up now (BYE -> NORMAL_CLEARING).
    pub fn hang_up(&self) {
        self.sw.hangup(&self.uuid, "NORMAL_CLEARING");
    }

    /// The agent bridged to this caller blind-transfers them (SIP REFER) to extension `to`: the
    /// agent's leg hangs up, the caller's bridge and socket app return, and the dialplan bridges
    /// the caller to `to` (transfer_of_socket_call.txt run2). False if the caller is not bridged.
    pub fn blind_transfer(&self, to: &str) -> bool {
        refer(&self.sw, &self.uuid, to)
    }

    /// The next frame label the peer wrote to the app (Event-Name, Reply-Text, `connect`,
    /// `linger`, `disconnect`, `api/response`); None after 5 s or once the connection is over.
    pub async fn next_sent(&mut self) -> Option<String> {
        timeout(FAILSAFE, self.sent.recv()).await.ok().flatten()
    }

    /// Waits (5 s failsafe) until the peer has closed or lost the connection; true if it did.
    pub async fn finished(&mut self) -> bool {
        match self.task.take() {
            Some(t) => timeout(FAILSAFE, t).await.is_ok(),
            None => true,
        }
    }
}

/// The agent bridged to socket-controlled caller `caller` sends a blind REFER to extension `to`
/// (transfer_of_socket_call.txt run2): the caller is the channel transferred, the agent's leg
/// gets BYE (NORMAL_CLEARING). False if the caller is not bridged.
pub(super) fn refer(sw: &Switch, caller: &str, to: &str) -> bool {
    let agent = sw.with_channel(caller, |c| c.other_leg.clone()).flatten();
    let Some(agent) = agent else {
        return false;
    };
    sw.lock().transfers.insert(caller.to_owned(), to.to_owned());
    sw.with_channel(caller, |c| c.destination = to.to_owned());
    sw.hangup(&agent, "NORMAL_CLEARING")
}

impl FsPeer {
    /// [`CallerHandle::blind_transfer`] by the caller's uuid (for replays that do not hold the
    /// handle).
    pub fn blind_transfer(&self, caller: &str, to: &str) -> bool {
        refer(&self.sw, caller, to)
    }
}

fn caller_channel(sw: &Switch, uuid: &str, spec: &CallSpec, socket_arg: &str) -> Channel {
    let name = format!("sofia/internal/{}@127.0.0.1:5061", spec.caller);
    let cid_name = spec
        .caller_name
        .clone()
        .unwrap_or_else(|| spec.caller.clone());
    let mut ch = Channel {
        uuid: uuid.to_owned(),
        name: name.clone(),
        direction: "inbound",
        state: "CS_EXECUTE",
        call_state: "RINGING",
        answer_state: "ringing",
        cid_name: cid_name.clone(),
        cid_number: spec.caller.clone(),
        destination: spec.destination.clone(),
        vars: Vec::new(),
        other_leg: None,
        hangup_cause: None,
        created_us: sw.micros(Instant::now()),
        answered_us: 0,
        hangup_us: 0,
        bridged_us: 0,
        originatee: None,
    };
    let from_uri = format!("{}@127.0.0.1:5061", spec.caller);
    let to_uri = format!("{}@127.0.0.1:5060", spec.destination);
    let rows = [
        ("direction", "inbound".to_owned()),
        ("uuid", uuid.to_owned()),
        ("session_id", "1".into()),
        ("sip_from_user", spec.caller.clone()),
        ("sip_from_uri", from_uri),
        ("sip_from_host", "127.0.0.1".into()),
        ("channel_name", name),
        ("sip_call_id", format!("{uuid}@127.0.0.1")),
        ("sip_from_display", cid_name),
        ("sip_req_user", spec.destination.clone()),
        ("sip_req_uri", to_uri.clone()),
        ("sip_to_user", spec.destination.clone()),
        ("sip_to_uri", to_uri),
        ("read_codec", "PCMU".into()),
        ("write_codec", "PCMU".into()),
        ("endpoint_disposition", "RECEIVED".into()),
        ("DP_MATCH", format!("ARRAY::{0}|:{0}", spec.destination)),
        ("call_uuid", uuid.to_owned()),
        ("current_application_data", socket_arg.to_owned()),
        ("current_application", "socket".into()),
        ("socket_host", "127.0.0.1".into()),
    ];
    for (k, v) in rows {
        ch.set_var(k, &v);
    }
    for (k, v) in &spec.vars {
        ch.set_var(k, v);
    }
    ch
}

/// The connect reply: a CHANNEL_DATA dump, all values encoded, command/reply headers last, no Content-Length.
fn connect_reply(sw: &Switch, uuid: &str) -> String {
    let mut ev = sw
        .channel_event(uuid, "CHANNEL_DATA", &[])
        .unwrap_or(FsEvent {
            headers: Vec::new(),
            body: None,
        });
    for (k, v) in [
        ("Content-Type", "command/reply"),
        ("Reply-Text", "+OK\n"),
        ("Socket-Mode", "async"),
        ("Control", "full"),
    ] {
        ev.headers.push((k.to_owned(), v.to_owned()));
    }
    let mut out = String::with_capacity(8192);
    for (k, v) in &ev.headers {
        out.push_str(&format!("{k}: {}\n", wire::encode(v)));
    }
    out.push('\n');
    out
}

/// Serial numbers of outbound sessions opened by `originate ... &socket(...)` (apart from the
/// offered calls' ones).
static SOCKET_LEGS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 32);

/// `originate <dial> '&socket(<addr> async full)'`: the answered leg `uuid` runs the socket app,
/// which connects to the app at `addr` like a dialled-in call's `socket` does. A refused
/// connection ends the leg (`DESTINATION_OUT_OF_ORDER`), as the app does.
/// Boxed: the session it serves may originate again (a recursive future).
pub fn socket_leg(
    sw: Arc<Switch>,
    uuid: String,
    socket_arg: String,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move { socket_leg_inner(&sw, &uuid, &socket_arg).await })
}

async fn socket_leg_inner(sw: &Arc<Switch>, uuid: &str, socket_arg: &str) {
    let addr: Option<SocketAddr> = socket_arg
        .split_whitespace()
        .next()
        .and_then(|a| a.parse().ok());
    sw.with_channel(uuid, |c| {
        c.state = "CS_EXECUTE";
        c.set_var("current_application", "socket");
        c.set_var("current_application_data", socket_arg);
        c.set_var("socket_host", "127.0.0.1");
    });
    let stream = match addr {
        Some(addr) => timeout(FAILSAFE, TcpStream::connect(addr)).await.ok(),
        None => None,
    };
    let Some(Ok(stream)) = stream else {
        sw.hangup(uuid, "DESTINATION_OUT_OF_ORDER");
        return;
    };
    let (exec, done) = exec::spawn(sw, uuid, socket_arg.to_owned());
    let channel_name = sw
        .with_channel(uuid, |c| c.name.clone())
        .unwrap_or_default();
    let ctl = session::Controlled {
        uuid: uuid.to_owned(),
        channel_name,
        connect_reply: connect_reply(sw, uuid),
        exec,
        done,
        stall_connect: false,
    };
    let (tx, _sent) = mpsc::channel(4096);
    let n = SOCKET_LEGS.fetch_add(1, Ordering::Relaxed);
    let stop = sw.cancel.child_token();
    session::serve(
        Arc::clone(sw),
        stop,
        ConnKind::Outbound(n),
        stream,
        String::new(),
        Some(ctl),
        tx,
    )
    .await;
}
