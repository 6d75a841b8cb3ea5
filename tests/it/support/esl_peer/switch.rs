//! The simulated switch core: channels, the event bus, the 20 ms clock with whole-second
//! timers, hangup/teardown, the command log and the per-phone ring log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::event::{Channel, EventRef, FsEvent};
use super::phones::{PhoneScript, RingRecord};

/// One 20 ms switch tick.
pub const TICK: Duration = Duration::from_millis(20);

/// Lifecycle of a channel, watched by bridges, phones and sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegStatus {
    /// Ringing / not answered.
    Ringing,
    /// Answered.
    Answered,
    /// Hung up with this cause.
    Ended(String),
}

/// Where a command arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnKind {
    /// Outbound socket of the call with this serial number.
    Outbound(u64),
    /// Inbound ESL connection number.
    Inbound(u64),
}

/// A command the peer received, with its arrival time.
#[derive(Debug, Clone)]
pub struct Received {
    /// Connection it arrived on.
    pub conn: ConnKind,
    /// Full text as read (command line, headers, body).
    pub text: String,
    /// Arrival time.
    pub at: Instant,
}

/// Mutable switch state (never held across an await).
#[derive(Default)]
pub struct State {
    /// Live channels by uuid.
    pub channels: HashMap<String, Channel>,
    /// Lifecycle watchers by uuid.
    pub status: HashMap<String, watch::Sender<LegStatus>>,
    /// Scripted phones by user.
    pub phones: HashMap<String, PhoneScript>,
    /// Rings in start order.
    pub rings: Vec<RingRecord>,
    /// Every command received.
    pub commands: Vec<Received>,
    /// Active recordings: (channel uuid, path, started).
    pub recordings: Vec<(String, String, Instant)>,
    /// Channels hung up by the app's own `sendmsg hangup`.
    pub app_hangups: std::collections::HashSet<String>,
    /// Delay before a recording's file and RECORD_STOP appear.
    pub record_delay: Duration,
    /// Completed channels: a partner's Other-Leg headers outlive it (A's caller profile keeps
    /// the originatee's profile, so CHANNEL_UNBRIDGE after B's HANGUP_COMPLETE still names B).
    pub departed: HashMap<String, Channel>,
    /// Socket-controlled A legs being blind-transferred (REFER from their agent): A -> extension.
    pub transfers: HashMap<String, String>,
    /// A legs whose outbound socket sent `resume` (the listener keeps the flag; esl-protocol.md
    /// §5.6: `set socket_resume=false` later does not undo it).
    pub resume: std::collections::HashSet<String>,
    /// A legs whose outbound socket is closed (the app sent `exit` or dropped the connection).
    pub socket_closed: std::collections::HashSet<String>,
    /// The dialplan after `socket` (dialplan/fsb24.xml): empty = nothing follows (the caller is
    /// hung up NORMAL_CLEARING); else `fsb24_after_talk` (a caller who talked is hung up) and the
    /// `fsb24_fallback` ring group of these users.
    pub fallback: Vec<String>,
    /// dialplan/fsb24.xml's `fsb24_outgoing_fallback`: when set, an outgoing call
    /// (`fsb24_call=outgoing`) that fsb24 did not place (no `fsb24_placed`) is bridged to
    /// `sofia/gateway/<this>/<destination>` after `socket`; one fsb24 placed is hung up.
    pub outgoing_gateway: Option<String>,
    /// Socket-controlled callers an attended transfer is moving (`uuid_bridge`): caller -> the
    /// consulted leg it is bridged to next (see `attended.rs`).
    pub rebridges: HashMap<String, String>,
    /// Legs a `uuid_bridge` took out of their bridge: its end does not hang them up.
    pub moved: std::collections::HashSet<String>,
    seq: u64,
}

/// The switch, shared by all sessions and tasks.
pub struct Switch {
    state: Mutex<State>,
    /// Every fired event.
    pub bus: broadcast::Sender<EventRef>,
    epoch: Instant,
    wall0_us: u64,
    /// Core-UUID header.
    pub core_uuid: String,
    /// Count of received commands (for waiting).
    pub cmd_count: watch::Sender<usize>,
    /// Count of ring log changes (for waiting).
    pub ring_count: watch::Sender<usize>,
    /// All peer tasks.
    pub tracker: TaskTracker,
    /// Stops every peer task.
    pub cancel: CancellationToken,
}

impl Switch {
    /// A fresh switch with no channels.
    pub fn new() -> Arc<Self> {
        let wall0_us = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(0);
        Arc::new(Self {
            state: Mutex::new(State::default()),
            bus: broadcast::channel(8192).0,
            epoch: Instant::now(),
            wall0_us,
            core_uuid: uuid::Uuid::new_v4().to_string(),
            cmd_count: watch::channel(0).0,
            ring_count: watch::channel(0).0,
            tracker: TaskTracker::new(),
            cancel: CancellationToken::new(),
        })
    }

    /// Locks the state (poisoning is a test bug; recover the data anyway).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Switch wall clock in microseconds for an instant.
    pub fn micros(&self, at: Instant) -> u64 {
        self.wall0_us + u64::try_from(at.duration_since(self.epoch).as_micros()).unwrap_or(0)
    }

    /// The first tick strictly after `at`.
    pub fn next_tick(&self, at: Instant) -> Instant {
        let n = at.duration_since(self.epoch).as_micros() / TICK.as_micros() + 1;
        self.epoch + Duration::from_micros(u64::try_from(n * TICK.as_micros()).unwrap_or(0))
    }

    /// Sleeps to the next tick.
    pub async fn tick(&self) {
        tokio::time::sleep_until(self.next_tick(Instant::now())).await;
    }

    /// When a whole-second timer of `secs` started at `start` fires: the first tick on which
    /// `epoch_secs(now) - epoch_secs(start) >= secs` (FreeSWITCH's leg_timeout rule).
    pub fn whole_second_deadline(&self, start: Instant, secs: u64) -> Instant {
        let start_s = self.micros(start) / 1_000_000;
        let boundary_us = (start_s + secs) * 1_000_000;
        let offset = boundary_us.saturating_sub(self.wall0_us);
        let boundary = self.epoch + Duration::from_micros(offset);
        self.next_tick(boundary - Duration::from_micros(1))
    }

    /// Builds an event for a channel; `None` if the channel is gone.
    pub fn channel_event(&self, uuid: &str, name: &str, extra: &[(&str, &str)]) -> Option<FsEvent> {
        let mut st = self.lock();
        let ch = st.channels.get(uuid)?;
        // Regression (call_cases): B's teardown raced A's UNBRIDGE, which then lacked
        // Other-Leg-Unique-ID and looked like a transfer.
        let hangup_first = name == "CHANNEL_HANGUP_COMPLETE";
        // The CDR event keeps the originatee profile after the bridge ended.
        let partner = ch
            .other_leg
            .as_ref()
            .or(ch.originatee.as_ref().filter(|_| hangup_first));
        let other = partner.and_then(|o| st.channels.get(o).or_else(|| st.departed.get(o)));
        let mut h = Vec::with_capacity(200);
        let mut body = Vec::with_capacity(200);
        ch.channel_headers(&mut body, other);
        let cause = ch.hangup_cause.clone();
        let seq = st.next_seq();
        self.core_headers(&mut h, name, seq);
        if hangup_first && let Some(c) = cause {
            h.push(("Hangup-Cause".into(), c));
        }
        h.extend(body);
        h.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Some(FsEvent {
            headers: h,
            body: None,
        })
    }

    /// The core header block every event starts with.
    pub fn core_headers(&self, h: &mut Vec<(String, String)>, name: &str, seq: u64) {
        let now = Instant::now();
        let us = self.micros(now) / 20_000 * 20_000;
        let dt = chrono::DateTime::from_timestamp_micros(i64::try_from(us).unwrap_or(0))
            .unwrap_or_default();
        let rows = [
            ("Event-Name", name.to_owned()),
            ("Core-UUID", self.core_uuid.clone()),
            ("FreeSWITCH-Hostname", "vm".into()),
            ("FreeSWITCH-Switchname", "vm".into()),
            ("FreeSWITCH-IPv4", "192.0.2.2".into()),
            ("FreeSWITCH-IPv6", "fd00::2".into()),
            (
                "Event-Date-Local",
                dt.format("%Y-%m-%d %H:%M:%S").to_string(),
            ),
            (
                "Event-Date-GMT",
                dt.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
            ),
            ("Event-Date-Timestamp", us.to_string()),
            ("Event-Calling-File", "switch_channel.c".into()),
            (
                "Event-Calling-Function",
                "switch_channel_perform_event".into(),
            ),
            ("Event-Calling-Line-Number", "1".into()),
            ("Event-Sequence", seq.to_string()),
        ];
        h.extend(rows.into_iter().map(|(k, v)| (k.to_owned(), v)));
    }

    /// A non-channel event (BACKGROUND_JOB, CUSTOM) with the core block and `extra` headers.
    pub fn plain_event(
        &self,
        name: &str,
        subclass: Option<&str>,
        extra: Vec<(String, String)>,
        body: Option<String>,
    ) -> FsEvent {
        let seq = self.lock().next_seq();
        let mut h = Vec::with_capacity(24);
        if let Some(s) = subclass {
            h.push(("Event-Subclass".to_owned(), s.to_owned()));
        }
        self.core_headers(&mut h, name, seq);
        h.extend(extra);
        FsEvent { headers: h, body }
    }

    /// Fires an event on the bus.
    pub fn fire(&self, ev: FsEvent) {
        let _ = self.bus.send(Arc::new(ev));
    }

    /// Builds and fires a channel event.
    pub fn fire_channel(&self, uuid: &str, name: &str, extra: &[(&str, &str)]) {
        if let Some(ev) = self.channel_event(uuid, name, extra) {
            self.fire(ev);
        }
    }

    /// Mutates a channel if it exists.
    pub fn with_channel<R>(&self, uuid: &str, f: impl FnOnce(&mut Channel) -> R) -> Option<R> {
        self.lock().channels.get_mut(uuid).map(f)
    }

    /// Registers a new channel and its lifecycle watcher.
    pub fn add_channel(&self, ch: Channel) -> watch::Receiver<LegStatus> {
        let (tx, rx) = watch::channel(LegStatus::Ringing);
        let mut st = self.lock();
        st.status.insert(ch.uuid.clone(), tx);
        st.channels.insert(ch.uuid.clone(), ch);
        rx
    }

    /// Watches a channel's lifecycle.
    pub fn watch(&self, uuid: &str) -> Option<watch::Receiver<LegStatus>> {
        self.lock().status.get(uuid).map(watch::Sender::subscribe)
    }

    /// Marks a channel answered and fires CHANNEL_ANSWER (+ CALLSTATE ACTIVE).
    pub fn answer(&self, uuid: &str) -> bool {
        let now = self.micros(Instant::now());
        let ok = self.with_channel(uuid, |c| {
            let fresh = c.answered_us == 0 && c.hangup_cause.is_none();
            if fresh {
                c.answered_us = now;
                c.answer_state = "answered";
            }
            fresh
        });
        if ok != Some(true) {
            return false;
        }
        self.fire_channel(uuid, "CHANNEL_ANSWER", &[]);
        self.with_channel(uuid, |c| c.call_state = "ACTIVE");
        self.fire_channel(
            uuid,
            "CHANNEL_CALLSTATE",
            &[("Original-Channel-Call-State", "RINGING")],
        );
        if let Some(tx) = self.lock().status.get(uuid) {
            tx.send_replace(LegStatus::Answered);
        }
        true
    }

    /// Hangs a channel up: CHANNEL_HANGUP now; the owner (executor or leg task) tears down.
    pub fn hangup(&self, uuid: &str, cause: &str) -> bool {
        let now = self.micros(Instant::now());
        let fresh = self.with_channel(uuid, |c| {
            let fresh = c.hangup_cause.is_none();
            if fresh {
                c.hangup_cause = Some(cause.to_owned());
                c.answer_state = "hangup";
                c.hangup_us = now;
            }
            fresh
        });
        if fresh != Some(true) {
            return false;
        }
        self.fire_channel(uuid, "CHANNEL_HANGUP", &[]);
        if let Some(tx) = self.lock().status.get(uuid) {
            tx.send_replace(LegStatus::Ended(cause.to_owned()));
        }
        true
    }

    /// The end of a channel's life: STATE/CALLSTATE/HANGUP_COMPLETE, then removal.
    pub fn finish_channel(&self, uuid: &str) {
        self.enter_hangup_state(uuid);
        self.complete_channel(uuid);
    }

    /// CHANNEL_STATE CS_HANGUP (recordings stop after this).
    pub fn enter_hangup_state(&self, uuid: &str) {
        self.with_channel(uuid, |c| c.state = "CS_HANGUP");
        self.fire_channel(uuid, "CHANNEL_STATE", &[]);
    }

    /// CALLSTATE HANGUP, STATE CS_REPORTING, CHANNEL_HANGUP_COMPLETE, then removal.
    pub fn complete_channel(&self, uuid: &str) {
        // The CDR variables FreeSWITCH sets in the reporting state, on whole epoch seconds for
        // `billsec`/`duration` (esl-protocol.md §8.3) and milliseconds for `billmsec`.
        self.with_channel(uuid, |c| {
            let end = c.hangup_us.max(c.created_us);
            let (answered, end_s) = (c.answered_us, end / 1_000_000);
            let billsec = if answered > 0 {
                end_s - answered / 1_000_000
            } else {
                0
            };
            let billmsec = if answered > 0 {
                (end - answered) / 1000
            } else {
                0
            };
            c.set_var("duration", &(end_s - c.created_us / 1_000_000).to_string());
            c.set_var("billsec", &billsec.to_string());
            c.set_var("billmsec", &billmsec.to_string());
            if let Some(cause) = c.hangup_cause.clone() {
                c.set_var("hangup_cause", &cause);
            }
        });
        self.with_channel(uuid, |c| c.call_state = "HANGUP");
        self.fire_channel(uuid, "CHANNEL_CALLSTATE", &[]);
        self.with_channel(uuid, |c| c.state = "CS_REPORTING");
        self.fire_channel(uuid, "CHANNEL_STATE", &[]);
        self.fire_channel(uuid, "CHANNEL_HANGUP_COMPLETE", &[]);
        let mut st = self.lock();
        if let Some(ch) = st.channels.remove(uuid) {
            st.departed.insert(uuid.to_owned(), ch);
        }
        st.status.remove(uuid);
    }

    /// Logs a received command.
    pub fn log_command(&self, conn: ConnKind, text: &str) {
        let n = {
            let mut st = self.lock();
            st.commands.push(Received {
                conn,
                text: text.to_owned(),
                at: Instant::now(),
            });
            st.commands.len()
        };
        self.cmd_count.send_replace(n);
    }

    /// Bumps the ring-log change counter.
    pub fn rings_changed(&self) {
        self.ring_count.send_modify(|n| *n += 1);
    }
}

impl State {
    /// Next Event-Sequence.
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}
