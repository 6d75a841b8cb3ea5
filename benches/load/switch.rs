//! The synthetic FreeSWITCH: one outbound `socket ... async full` session per call (connect
//! reply, `linger`/`myevents`/`event`/`filter` replies, `sendmsg execute` of answer, bridge,
//! hangup and the rest, `api uuid_kill`), simulated phones behind `bridge`, and an inbound
//! server (auth, `event`, `filter`, `api`) that sends the switch-wide events of every leg.
//! Events are the real transcripts' bodies (see `real.rs`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;

use crate::real::Catalog;
use crate::stats::Stats;

/// What a simulated call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Dialled straight to one agent, who answers.
    Direct,
    /// A simultaneous queue: the first phone answers, the others lose the race.
    RingAll,
    /// A sequential queue: the first phone does not answer, the second does.
    Sequential,
    /// The caller hangs up while the phones ring.
    Abandon,
}

/// Timings of the simulated people.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// How long a phone rings before it is answered.
    pub ring: Duration,
    /// Conversation length.
    pub talk: Duration,
    /// How long an abandoning caller waits.
    pub abandon_after: Duration,
}

/// A command for a call's task from elsewhere (the inbound server's `uuid_kill`).
#[derive(Debug)]
pub(crate) enum Ctl {
    Kill { leg: String, cause: String },
}

/// Shared by the sessions and the inbound server.
pub(crate) struct Switch {
    pub cat: Catalog,
    pub stats: Arc<Stats>,
    pub timing: Timing,
    pub fsb24: SocketAddr,
    /// Ringing and talking agent legs -> their call's task.
    legs: DashMap<String, mpsc::UnboundedSender<Ctl>>,
    hub: Mutex<Vec<Listener>>,
    /// Switch-wide events the inbound server could not queue for a listener.
    pub hub_dropped: AtomicU64,
    core_uuid: String,
}

struct Listener {
    names: Vec<String>,
    all: bool,
    filters: Vec<(String, String)>,
    tx: mpsc::Sender<Arc<Vec<u8>>>,
}

/// A running app on the A leg.
#[derive(Debug, Clone)]
struct App {
    exec: String,
    name: String,
    arg: String,
}

/// A bridge in progress.
#[derive(Debug)]
struct Bridge {
    app: App,
    legs: Vec<(String, String)>,
    answered: Option<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Answer,
    NoAnswer,
    TalkEnd,
    Abandon,
    LingerEnd,
}

/// One call's state inside its task.
struct Call {
    sw: Arc<Switch>,
    kind: Kind,
    uuid: String,
    agent_tx: mpsc::UnboundedSender<Ctl>,
    wr: OwnedWriteHalf,
    apps: VecDeque<App>,
    bridge: Option<Bridge>,
    bridges: u32,
    answered: bool,
    up: bool,
    timer: Option<(Instant, Timer)>,
    /// When an event that needs a decision was written (`None` once answered by a command).
    armed: Option<Instant>,
    armed_by: &'static str,
    dest: String,
    caller: String,
}

impl Switch {
    pub(crate) fn new(
        cat: Catalog,
        stats: Arc<Stats>,
        timing: Timing,
        fsb24: SocketAddr,
    ) -> Arc<Self> {
        Arc::new(Self {
            cat,
            stats,
            timing,
            fsb24,
            legs: DashMap::new(),
            hub: Mutex::new(Vec::new()),
            hub_dropped: AtomicU64::new(0),
            core_uuid: uuid::Uuid::new_v4().to_string(),
        })
    }

    /// Sends a switch-wide event to every inbound listener that subscribed it.
    async fn fire(&self, key: &str, a: &str, b: &str, set: &[(&str, &str)]) {
        let t = self.cat.get(key);
        let name = t.get("Event-Name").unwrap_or_default().to_owned();
        let mut hub = self.hub.lock().await;
        hub.retain(|l| !l.tx.is_closed());
        if hub.is_empty() {
            return;
        }
        let mut frame: Option<Arc<Vec<u8>>> = None;
        for l in hub.iter() {
            if !(l.all || l.names.contains(&name)) {
                continue;
            }
            let body = frame.get_or_insert_with(|| {
                let mut set = set.to_vec();
                let now = now_us().to_string();
                set.push(("Event-Date-Timestamp", &now));
                set.push(("Core-UUID", &self.core_uuid));
                let text = t.render(a, b, &set);
                Arc::new(event_frame(&text))
            });
            if !l.filters.is_empty() && !passes(&l.filters, &t.render(a, b, set)) {
                continue;
            }
            if l.tx.try_send(Arc::clone(body)).is_err() {
                self.hub_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn passes(filters: &[(String, String)], text: &str) -> bool {
    text.lines().any(|l| {
        l.split_once(": ").is_some_and(|(k, v)| {
            filters
                .iter()
                .any(|(fk, fv)| fk.eq_ignore_ascii_case(k) && crate::real::encode(fv) == v)
        })
    })
}

fn now_us() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(0)
}

fn event_frame(body: &str) -> Vec<u8> {
    let mut out = format!(
        "Content-Length: {}\nContent-Type: text/event-plain\n\n",
        body.len() + 1
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out.push(b'\n');
    out
}

fn reply(text: &str) -> Vec<u8> {
    format!("Content-Type: command/reply\nReply-Text: {text}\n\n").into_bytes()
}

fn api_reply(body: &str) -> Vec<u8> {
    format!(
        "Content-Type: api/response\nContent-Length: {}\n\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads one command (`line` plus headers up to the blank line, plus a body if any).
async fn read_command<R: AsyncBufReadExt + Unpin>(
    rd: &mut R,
) -> std::io::Result<Option<(String, Vec<(String, String)>)>> {
    let mut first = String::new();
    loop {
        first.clear();
        if rd.read_line(&mut first).await? == 0 {
            return Ok(None);
        }
        if !first.trim().is_empty() {
            break;
        }
    }
    let mut headers = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if rd.read_line(&mut line).await? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(": ") {
            headers.push((k.to_owned(), v.to_owned()));
        }
    }
    if let Some(n) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        let mut body = vec![0u8; n];
        rd.read_exact(&mut body).await?;
    }
    Ok(Some((first.trim_end().to_owned(), headers)))
}

fn header<'a>(h: &'a [(String, String)], k: &str) -> &'a str {
    h.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(k))
        .map_or("", |(_, v)| v.as_str())
}

/// Offers one call to fsb24 and plays it to its end.
pub(crate) async fn run_call(sw: Arc<Switch>, kind: Kind, dest: String, caller: String) {
    let uuid = uuid::Uuid::new_v4().to_string();
    let stream = match TcpStream::connect(sw.fsb24).await {
        Ok(s) => s,
        Err(_) => {
            sw.stats.connect_failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(16 * 1024, rd);
    let (agent_tx, mut agent_rx) = mpsc::unbounded_channel();
    sw.stats.call_started();
    let mut call = Call {
        sw: Arc::clone(&sw),
        kind,
        uuid,
        agent_tx,
        wr,
        apps: VecDeque::new(),
        bridge: None,
        bridges: 0,
        answered: false,
        up: true,
        timer: None,
        armed: None,
        armed_by: "",
        dest,
        caller,
    };
    let created = now_us().to_string();
    sw.fire(
        "sw_create_a",
        &call.uuid,
        "",
        &[
            ("Caller-Destination-Number", &call.dest),
            ("Caller-Caller-ID-Number", &call.caller),
        ],
    )
    .await;
    let _ = call.serve(&mut rd, &mut agent_rx, &created).await;
    call.cleanup();
    sw.stats.call_ended();
}

impl Call {
    async fn serve(
        &mut self,
        rd: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
        agent_rx: &mut mpsc::UnboundedReceiver<Ctl>,
        created: &str,
    ) -> std::io::Result<()> {
        loop {
            let deadline = self.timer.map(|(at, _)| at);
            tokio::select! {
                cmd = read_command(rd) => {
                    let Some((line, headers)) = cmd? else { return Ok(()) };
                    if let Some(at) = self.armed.take() {
                        self.sw.stats.decision(at.elapsed());
                        if std::env::var_os("BENCH_TRACE").is_some() && at.elapsed() > Duration::from_millis(100) {
                            eprintln!("slow decision {:?} after {} -> {line}", at.elapsed(), self.armed_by);
                        }
                    }
                    if !self.command(&line, &headers, created).await? {
                        return Ok(());
                    }
                }
                Some(ctl) = agent_rx.recv() => match ctl {
                    Ctl::Kill { leg, cause } => self.kill_leg(&leg, &cause).await?,
                },
                () = sleep_opt(deadline) => {
                    let Some((_, what)) = self.timer.take() else { continue };
                    if !self.fire_timer(what).await? {
                        return Ok(());
                    }
                }
            }
        }
    }

    async fn command(
        &mut self,
        line: &str,
        headers: &[(String, String)],
        created: &str,
    ) -> std::io::Result<bool> {
        let mut words = line.split_whitespace();
        match words.next().unwrap_or("") {
            "connect" => {
                let text = self.sw.cat.get("connect").render(
                    &self.uuid,
                    "",
                    &[
                        ("Caller-Destination-Number", &self.dest),
                        ("Caller-Caller-ID-Number", &self.caller),
                        ("Caller-Channel-Created-Time", created),
                        ("Core-UUID", &self.sw.core_uuid),
                    ],
                );
                let mut out = text.into_bytes();
                out.extend_from_slice(
                    b"Content-Type: command/reply\nReply-Text: %2BOK%0A\nSocket-Mode: async\nControl: full\n\n",
                );
                self.wr.write_all(&out).await?;
                self.armed = Some(Instant::now());
                self.armed_by = "connect";
            }
            "linger" => self.send(&reply("+OK will linger")).await?,
            "myevents" => self.send(&reply("+OK Events Enabled")).await?,
            "nixevent" => self.send(&reply("+OK events nixed")).await?,
            "event" => {
                self.send(&reply("+OK event listener enabled plain"))
                    .await?;
            }
            "filter" => {
                let rest = line.trim_start_matches("filter").trim();
                self.send(&reply(&format!("+OK filter added. [{rest}]")))
                    .await?;
            }
            "exit" => {
                self.send(&reply("+OK bye")).await?;
                self.disconnect_notice("disconnect").await?;
                if self.up {
                    // The dialplan after `socket` hangs a caller who talked up.
                    self.up = false;
                    self.sw
                        .stats
                        .finished_by_exit
                        .fetch_add(1, Ordering::Relaxed);
                }
                return Ok(false);
            }
            "api" => {
                let out = self.api(words.collect::<Vec<_>>()).await?;
                self.send(&api_reply(&out)).await?;
            }
            "sendmsg" => {
                self.send(&reply("+OK")).await?;
                if header(headers, "call-command") == "execute" {
                    self.apps.push_back(App {
                        exec: header(headers, "Event-UUID").to_owned(),
                        name: header(headers, "execute-app-name").to_owned(),
                        arg: header(headers, "execute-app-arg").to_owned(),
                    });
                    self.next_app().await?;
                } else if header(headers, "call-command") == "hangup" {
                    self.hang_up_a("NORMAL_CLEARING").await?;
                }
            }
            _ => self.send(&reply("-ERR command not found")).await?,
        }
        Ok(true)
    }

    async fn api(&mut self, words: Vec<&str>) -> std::io::Result<String> {
        match words.as_slice() {
            ["uuid_kill", leg, cause @ ..] => {
                let cause = cause.first().copied().unwrap_or("NORMAL_CLEARING");
                if *leg == self.uuid {
                    self.hang_up_a(cause).await?;
                    return Ok("+OK\n".into());
                }
                match self.sw.legs.get(*leg).map(|t| t.clone()) {
                    Some(tx) => {
                        let _ = tx.send(Ctl::Kill {
                            leg: (*leg).to_owned(),
                            cause: cause.to_owned(),
                        });
                        Ok("+OK\n".into())
                    }
                    None => Ok("-ERR No such channel!\n".into()),
                }
            }
            ["uuid_record", ..] => Ok("+OK Success\n".into()),
            _ => Ok("-ERR Command not found!\n".into()),
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.wr.write_all(bytes).await
    }

    async fn event(&mut self, key: &str, b: &str, set: &[(&str, &str)]) -> std::io::Result<()> {
        let now = now_us().to_string();
        let mut set = set.to_vec();
        set.push(("Event-Date-Timestamp", &now));
        set.push(("Core-UUID", &self.sw.core_uuid));
        set.push(("Caller-Destination-Number", &self.dest));
        let text = self.sw.cat.get(key).render(&self.uuid, b, &set);
        self.wr.write_all(&event_frame(&text)).await?;
        self.sw.stats.events_out.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn disconnect_notice(&mut self, how: &str) -> std::io::Result<()> {
        let body = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n";
        let text = if how == "linger" {
            format!(
                "Content-Type: text/disconnect-notice\nControlled-Session-UUID: {}\nContent-Disposition: linger\nChannel-Name: sofia/internal/{}@127.0.0.1:5061\nLinger-Time: -1\nContent-Length: 0\n\n",
                self.uuid, self.caller
            )
        } else {
            format!(
                "Content-Type: text/disconnect-notice\nControlled-Session-UUID: {}\nContent-Disposition: disconnect\nContent-Length: {}\n\n{body}",
                self.uuid,
                body.len()
            )
        };
        self.send(text.as_bytes()).await
    }

    /// Starts the next queued app unless one runs (apps run in order, `event-lock`).
    async fn next_app(&mut self) -> std::io::Result<()> {
        while self.bridge.is_none() && self.up {
            let Some(app) = self.apps.pop_front() else {
                return Ok(());
            };
            self.run_app(app).await?;
        }
        // A hung-up channel runs nothing more.
        if !self.up {
            self.apps.clear();
        }
        Ok(())
    }

    async fn run_app(&mut self, app: App) -> std::io::Result<()> {
        let key = if app.name == "bridge" {
            "execute_bridge"
        } else {
            "execute"
        };
        let base = [
            ("Application", app.name.as_str()),
            ("Application-Data", app.arg.as_str()),
            ("Application-UUID", app.exec.as_str()),
        ];
        self.event(key, "", &base).await?;
        match app.name.as_str() {
            "answer" => {
                self.answered = true;
                self.event("answer", "", &[]).await?;
                self.complete(&app, "_none_").await?;
            }
            "bridge" => self.start_bridge(app).await?,
            "hangup" => {
                let cause = if app.arg.is_empty() {
                    "NORMAL_CLEARING".to_owned()
                } else {
                    app.arg.clone()
                };
                self.hang_up_a(&cause).await?;
            }
            _ => self.complete(&app, "_none_").await?,
        }
        Ok(())
    }

    async fn complete(&mut self, app: &App, response: &str) -> std::io::Result<()> {
        self.event(
            "complete",
            "",
            &[
                ("Application", app.name.as_str()),
                ("Application-Data", app.arg.as_str()),
                ("Application-UUID", app.exec.as_str()),
                ("Application-Response", response),
            ],
        )
        .await
    }

    async fn start_bridge(&mut self, app: App) -> std::io::Result<()> {
        self.bridges += 1;
        let legs = parse_dial(&app.arg);
        self.sw.stats.bridge_started(&self.uuid);
        for (leg, ext) in &legs {
            self.sw.legs.insert(leg.clone(), self.agent_tx.clone());
            let name = format!("sofia/internal/{ext}@127.0.0.1:5071");
            self.sw
                .fire(
                    "sw_create_b",
                    &self.uuid,
                    leg,
                    &[
                        ("Unique-ID", leg),
                        ("Channel-Name", &name),
                        ("Caller-Destination-Number", ext),
                    ],
                )
                .await;
        }
        let t = self.sw.timing;
        let now = Instant::now();
        let leg_timeout = leg_timeout(&app.arg);
        self.timer = Some(match self.kind {
            Kind::Abandon => (now + t.abandon_after, Timer::Abandon),
            Kind::Sequential if self.bridges == 1 => (now + leg_timeout, Timer::NoAnswer),
            _ if legs.is_empty() => (now, Timer::NoAnswer),
            _ => (now + t.ring, Timer::Answer),
        });
        self.bridge = Some(Bridge {
            app,
            legs,
            answered: None,
        });
        self.armed = None;
        Ok(())
    }

    async fn fire_timer(&mut self, what: Timer) -> std::io::Result<bool> {
        match what {
            Timer::Answer => self.agent_answers().await?,
            Timer::NoAnswer => self.end_bridge_failed("NO_ANSWER").await?,
            Timer::TalkEnd => self.agent_hangs_up().await?,
            Timer::Abandon => self.hang_up_a("NORMAL_CLEARING").await?,
            Timer::LingerEnd => {
                self.disconnect_notice("disconnect").await?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn agent_answers(&mut self) -> std::io::Result<()> {
        let Some(bridge) = self.bridge.as_mut() else {
            return Ok(());
        };
        let Some(win) = bridge.legs.first().cloned() else {
            return Ok(());
        };
        bridge.answered = Some(win.clone());
        let losers: Vec<_> = bridge.legs.drain(1..).collect();
        let (leg, ext) = win;
        let name = format!("sofia/internal/{ext}@127.0.0.1:5071");
        self.sw
            .fire(
                "sw_answer",
                &leg,
                &self.uuid,
                &[("Channel-Name", &name), ("Caller-Destination-Number", &ext)],
            )
            .await;
        for (l, e) in losers {
            self.agent_gone(&l, &e, "LOSE_RACE").await;
        }
        self.event("bridge", &leg, &[]).await?;
        self.timer = Some((Instant::now() + self.sw.timing.talk, Timer::TalkEnd));
        Ok(())
    }

    async fn agent_gone(&self, leg: &str, ext: &str, cause: &str) {
        self.sw.legs.remove(leg);
        let name = format!("sofia/internal/{ext}@127.0.0.1:5071");
        self.sw
            .fire(
                "sw_hangup_b",
                &self.uuid,
                leg,
                &[
                    ("Unique-ID", leg),
                    ("Channel-Name", &name),
                    ("Hangup-Cause", cause),
                    ("Caller-Destination-Number", ext),
                ],
            )
            .await;
    }

    async fn agent_hangs_up(&mut self) -> std::io::Result<()> {
        let Some(bridge) = self.bridge.take() else {
            return Ok(());
        };
        let Some((leg, ext)) = bridge.answered.clone() else {
            return Ok(());
        };
        self.agent_gone(&leg, &ext, "NORMAL_CLEARING").await;
        self.event("unbridge", &leg, &[]).await?;
        let app = bridge.app;
        self.event(
            "complete_bridge_ok",
            &leg,
            &[
                ("Application-Data", app.arg.as_str()),
                ("Application-UUID", app.exec.as_str()),
            ],
        )
        .await?;
        self.armed = Some(Instant::now());
        self.armed_by = "bridge ok";
        self.next_app().await
    }

    async fn end_bridge_failed(&mut self, cause: &str) -> std::io::Result<()> {
        let Some(bridge) = self.bridge.take() else {
            return Ok(());
        };
        let mut causes = Vec::new();
        for (leg, ext) in &bridge.legs {
            self.agent_gone(leg, ext, cause).await;
            causes.push(format!("{leg};{cause}"));
        }
        let causes = causes.join("|");
        let app = bridge.app;
        self.event(
            "complete_bridge_no_answer",
            "",
            &[
                ("Application-Data", app.arg.as_str()),
                ("Application-UUID", app.exec.as_str()),
                ("variable_originate_disposition", cause),
                ("variable_originate_failed_cause", cause),
                ("variable_last_bridge_hangup_cause", cause),
                ("variable_originate_causes", &causes),
            ],
        )
        .await?;
        self.armed = Some(Instant::now());
        self.armed_by = "bridge failed";
        self.next_app().await
    }

    async fn kill_leg(&mut self, leg: &str, cause: &str) -> std::io::Result<()> {
        let Some(bridge) = self.bridge.as_mut() else {
            return Ok(());
        };
        if bridge.answered.as_ref().is_some_and(|(l, _)| l == leg) {
            self.timer = Some((Instant::now(), Timer::TalkEnd));
            return Ok(());
        }
        let Some(i) = bridge.legs.iter().position(|(l, _)| l == leg) else {
            return Ok(());
        };
        let (l, e) = bridge.legs.remove(i);
        let none_left = bridge.legs.is_empty() && bridge.answered.is_none();
        self.agent_gone(&l, &e, cause).await;
        if none_left {
            self.timer = None;
            self.end_bridge_failed(cause).await?;
        }
        Ok(())
    }

    /// The A leg hangs up (caller BYE, `hangup` app or `uuid_kill`).
    async fn hang_up_a(&mut self, cause: &str) -> std::io::Result<()> {
        if !self.up {
            return Ok(());
        }
        self.up = false;
        let key = if self.answered && self.bridges > 0 && self.kind != Kind::Abandon {
            ("hangup", "hangup_complete")
        } else {
            ("abandon_hangup", "abandon_hangup_complete")
        };
        self.event(key.0, "", &[("Hangup-Cause", cause)]).await?;
        if let Some(bridge) = self.bridge.take() {
            let mut legs = bridge.legs.clone();
            legs.extend(bridge.answered.clone());
            for (leg, ext) in &legs {
                self.agent_gone(leg, ext, "ORIGINATOR_CANCEL").await;
            }
            let app = bridge.app;
            self.event(
                "complete_bridge_cancel",
                "",
                &[
                    ("Application-Data", app.arg.as_str()),
                    ("Application-UUID", app.exec.as_str()),
                ],
            )
            .await?;
        }
        self.event(key.1, "", &[("Hangup-Cause", cause)]).await?;
        self.sw
            .fire(
                "sw_hangup_a",
                &self.uuid,
                "",
                &[
                    ("Hangup-Cause", cause),
                    ("Caller-Destination-Number", &self.dest),
                ],
            )
            .await;
        self.disconnect_notice("linger").await?;
        self.armed = Some(Instant::now());
        self.armed_by = "hangup complete";
        self.timer = Some((Instant::now() + Duration::from_secs(30), Timer::LingerEnd));
        Ok(())
    }

    fn cleanup(&mut self) {
        if let Some(b) = self.bridge.take() {
            for (leg, _) in b.legs.iter().chain(b.answered.iter()) {
                self.sw.legs.remove(leg);
            }
        }
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The legs of a dial string: `(origination_uuid or a new uuid, extension)`.
fn parse_dial(arg: &str) -> Vec<(String, String)> {
    let rest = match arg.strip_prefix('{') {
        Some(r) => r.split_once('}').map_or("", |(_, r)| r),
        None => arg,
    };
    split_top(rest)
        .into_iter()
        .filter_map(|leg| {
            let (vars, target) = match leg.strip_prefix('[') {
                Some(r) => r.split_once(']').unwrap_or(("", r)),
                None => ("", leg),
            };
            let ext = target
                .rsplit('/')
                .next()?
                .split(['@', '%'])
                .next()?
                .to_owned();
            let id = vars
                .split(',')
                .find_map(|v| v.strip_prefix("origination_uuid="))
                .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
            Some((id, ext))
        })
        .collect()
}

/// Splits on `,` and `|` outside `[...]` and `{...}`.
fn split_top(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut from) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '[' | '{' => depth += 1,
            ']' | '}' => depth -= 1,
            ',' | '|' if depth == 0 => {
                out.push(&s[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[from..]);
    out.into_iter().filter(|l| !l.is_empty()).collect()
}

fn leg_timeout(arg: &str) -> Duration {
    let secs = arg
        .split(['{', '}', '[', ']', ','])
        .find_map(|v| v.strip_prefix("leg_timeout="))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// The inbound ESL server (mod_event_socket on 8021).
pub(crate) async fn serve_inbound(sw: Arc<Switch>, listener: TcpListener, password: String) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(inbound_conn(Arc::clone(&sw), stream, password.clone()));
    }
}

async fn inbound_conn(sw: Arc<Switch>, stream: TcpStream, password: String) {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let (tx, mut rx) = mpsc::channel::<Arc<Vec<u8>>>(100_000);
    let writer = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let send = |b: Vec<u8>| {
        let tx = tx.clone();
        async move { tx.send(Arc::new(b)).await.is_ok() }
    };
    send(b"Content-Type: auth/request\n\n".to_vec()).await;
    while let Ok(Some((line, _))) = read_command(&mut rd).await {
        let mut words = line.split_whitespace();
        let out = match words.next().unwrap_or("") {
            "auth" if words.next() == Some(password.as_str()) => reply("+OK accepted"),
            "auth" => reply("-ERR invalid"),
            "event" => {
                let names: Vec<String> = words.skip(1).map(str::to_owned).collect();
                let all = names.iter().any(|n| n == "ALL");
                if all || names.iter().any(|n| n == "HEARTBEAT") {
                    tokio::spawn(heartbeats(Arc::clone(&sw), tx.clone()));
                }
                let mut hub = sw.hub.lock().await;
                hub.push(Listener {
                    names,
                    all,
                    filters: Vec::new(),
                    tx: tx.clone(),
                });
                reply("+OK event listener enabled plain")
            }
            "filter" => {
                let k = words.next().unwrap_or("").to_owned();
                let v = words.collect::<Vec<_>>().join(" ");
                let mut hub = sw.hub.lock().await;
                if let Some(l) = hub.iter_mut().rev().find(|l| l.tx.same_channel(&tx)) {
                    l.filters.push((k.clone(), v.clone()));
                }
                reply(&format!("+OK filter added. [{k}]=[{v}]"))
            }
            "api" => api_reply(&inbound_api(&sw, &words.collect::<Vec<_>>())),
            "exit" => {
                send(reply("+OK bye")).await;
                break;
            }
            _ => reply("-ERR command not found"),
        };
        if !send(out).await {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// The switch's HEARTBEAT every 20 s (FreeSWITCH's default `event-heartbeat-interval`), which
/// fsb24's inbound connection uses as its liveness signal, until the connection closes.
async fn heartbeats(sw: Arc<Switch>, tx: mpsc::Sender<Arc<Vec<u8>>>) {
    let started = Instant::now();
    let mut every = tokio::time::interval_at(started + HEARTBEAT, HEARTBEAT);
    loop {
        every.tick().await;
        let body = format!(
            "Event-Name: HEARTBEAT\nCore-UUID: {}\nEvent-Date-Timestamp: {}\nEvent-Info: System%20Ready\nUp-Time: {}%20seconds\nSession-Count: {}\n",
            sw.core_uuid,
            now_us(),
            started.elapsed().as_secs(),
            sw.legs.len(),
        );
        if tx.send(Arc::new(event_frame(&body))).await.is_err() {
            return;
        }
    }
}

const HEARTBEAT: Duration = Duration::from_secs(20);

fn inbound_api(sw: &Switch, words: &[&str]) -> String {
    match words {
        ["sofia_contact", who] => {
            let ext = who.split('@').next().unwrap_or("");
            format!("sofia/internal/sip:{ext}@127.0.0.1:5071")
        }
        ["show", "channels", ..] => "{\"row_count\": 0}\n".to_owned(),
        ["uuid_exists", ..] => "false".to_owned(),
        ["uuid_kill", leg, cause @ ..] => match sw.legs.get(*leg).map(|t| t.clone()) {
            Some(tx) => {
                let _ = tx.send(Ctl::Kill {
                    leg: (*leg).to_owned(),
                    cause: cause
                        .first()
                        .copied()
                        .unwrap_or("NORMAL_CLEARING")
                        .to_owned(),
                });
                "+OK\n".to_owned()
            }
            None => "-ERR No such channel!\n".to_owned(),
        },
        _ => "-ERR Command not found!\n".to_owned(),
    }
}
