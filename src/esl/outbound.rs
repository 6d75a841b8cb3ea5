//! Listener for the dialplan `socket` app: one task per call, handshake, event pump, clean exit.
//!
//! The accept loop never waits on a session's handshake. A session failure (timeout, `-ERR`,
//! malformed frame, early close) closes that session only. Every session ends with `exit`, so a
//! lingering channel is never leaked.
//!
//! fsb24 never sends `resume`: with it, FreeSWITCH breaks a running bridge the moment the socket
//! closes, so a crash or a restart would cut every conversation (measured on 1.10.12,
//! esl-protocol.md §5.6). Without it a closed socket leaves a running bridge alone, and a caller
//! not in a bridge continues the dialplan after `socket` (the fallback). Only the call task
//! closes a session on purpose, after deciding what happens to the caller.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use freeswitch_esl_tokio::{
    EslClient, EslConnectOptions, EslEventStream, EslEventType, EslResponse, EventFormat,
    HeaderLookup,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::error::EslError;
use super::event::{CallEvent, DisconnectCause, Mapped, map_event};
use super::overflow;
use crate::ids::ChannelId;

mod forward;
mod session;

pub use session::SessionHandle;

const SOCKET_MODE: &str = "Socket-Mode";
const CONTROL: &str = "Control";
const VAR_SOCKET_PATH: &str = "socket_path";

/// Tunables of the outbound listener.
#[derive(Debug, Clone)]
pub struct OutboundOptions {
    /// Limit for `connect` and each setup command (default 5 s; FreeSWITCH itself waits 25 s).
    pub handshake_timeout: Duration,
    /// Limit for every later command's reply (default 5 s).
    pub command_timeout: Duration,
    /// `linger N`; `None` = linger until we `exit` (the default: we always exit).
    pub linger: Option<Duration>,
    /// Capacity of each call's [`CallEvent`] channel (default 256).
    pub event_capacity: usize,
    /// Channel variables copied into [`ChannelInfo::variables`].
    pub variables: Vec<String>,
    /// Most sessions at once (default 10,000); a connection past it is closed before the
    /// handshake, so the dialplan continues with its fallback.
    pub max_calls: usize,
    /// Safety net: `exit` this long after `CHANNEL_HANGUP` even if `CHANNEL_HANGUP_COMPLETE`
    /// never arrives, so a lingering channel cannot leak (default 10 s).
    pub hangup_grace: Duration,
}

impl Default for OutboundOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(5),
            linger: None,
            event_capacity: 256,
            max_calls: 10_000,
            variables: Vec::new(),
            hangup_grace: Duration::from_secs(10),
        }
    }
}

/// What FreeSWITCH told us about the channel in its `connect` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The controlled channel.
    pub channel: ChannelId,
    /// `Caller-Caller-ID-Number`, raw (validate with `PhoneNumber::parse` before dialling it).
    pub caller_id_number: Option<String>,
    /// `Caller-Caller-ID-Name`, raw.
    pub caller_id_name: Option<String>,
    /// `Caller-Destination-Number`, raw.
    pub destination_number: Option<String>,
    /// `Caller-Channel-Created-Time`.
    pub created_at: Option<DateTime<Utc>>,
    /// Whether the channel was already answered.
    pub answered: bool,
    /// `socket_path`: the `/path` tag of the dialplan's socket address.
    pub socket_path: Option<String>,
    /// The configured [`OutboundOptions::variables`] that are set.
    pub variables: HashMap<String, String>,
}

/// A new call handed to the application.
#[derive(Debug)]
pub struct IncomingCall {
    /// Channel data from the handshake.
    pub info: ChannelInfo,
    /// Commands on the channel.
    pub session: SessionHandle,
    /// Domain events of the channel, ending with [`CallEvent::Disconnected`].
    pub events: mpsc::Receiver<CallEvent>,
}

/// The outbound ESL listener.
#[derive(Debug)]
pub struct OutboundServer {
    listener: TcpListener,
    options: OutboundOptions,
}

impl OutboundServer {
    /// Wraps a bound listener (tests bind `127.0.0.1:0`).
    pub fn new(listener: TcpListener, options: OutboundOptions) -> Self {
        Self { listener, options }
    }

    /// Accepts until `shutdown`; each connection runs in its own task on `tracker`.
    ///
    /// Cancel-safe. Returns once the listener stopped accepting; sessions keep running on the
    /// tracker until they exit (they watch `shutdown` too).
    pub async fn run(
        self,
        calls: mpsc::Sender<IncomingCall>,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) {
        let slots = Arc::new(Semaphore::new(self.options.max_calls.max(1)));
        let mut refusing = false;
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    // At the limit the call costs nothing here: the socket closes before
                    // `connect`, the `socket` app returns and the dialplan runs its fallback.
                    let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                        CALLS_REFUSED.fetch_add(1, Ordering::Relaxed);
                        if !refusing {
                            // Once per overload, not per call: fsb24_esl_calls_refused_total counts.
                            warn!(
                                limit = self.options.max_calls,
                                "esl.max_calls reached: new calls go back to the dialplan"
                            );
                            refusing = true;
                        }
                        drop(stream);
                        continue;
                    };
                    if refusing {
                        info!("below esl.max_calls again: taking calls");
                        refusing = false;
                    }
                    let span = info_span!("esl", peer = %peer, channel = tracing::field::Empty);
                    let session = run_session(
                        stream,
                        peer,
                        self.options.clone(),
                        calls.clone(),
                        shutdown.child_token(),
                    );
                    tracker.spawn(
                        async move {
                            session.await;
                            drop(slot);
                        }
                        .instrument(span),
                    );
                }
                // Accept errors (EMFILE, aborted handshakes) concern one connection only.
                Err(err) => warn!(
                    error = &err as &dyn std::error::Error,
                    "outbound accept failed"
                ),
            }
        }
        info!("outbound listener stopped");
    }
}

async fn run_session(
    stream: TcpStream,
    peer: SocketAddr,
    options: OutboundOptions,
    calls: mpsc::Sender<IncomingCall>,
    shutdown: CancellationToken,
) {
    let connect = overflow::backpressure(EslConnectOptions::new(), options.command_timeout);
    let (client, stream_events) = EslClient::accept_outbound_stream_with_options(stream, connect);
    let info = match handshake(&client, &options).await {
        Ok(info) => info,
        Err(err) => {
            error!(peer = %peer, error = &err as &dyn std::error::Error, "outbound session handshake failed");
            close(&client, &options).await;
            return;
        }
    };
    tracing::Span::current().record("channel", tracing::field::display(&info.channel));
    info!(
        destination = info.destination_number.as_deref().unwrap_or(""),
        "call connected"
    );
    let (tx, rx) = mpsc::channel(options.event_capacity.max(1));
    let session = SessionHandle::new(
        client.clone(),
        info.channel.clone(),
        options.command_timeout,
    );
    let own = info.channel.clone();
    let call = IncomingCall {
        info,
        session,
        events: rx,
    };
    let handed = tokio::select! {
        () = shutdown.cancelled() => false,
        sent = calls.send(call) => sent.is_ok(),
    };
    if !handed {
        warn!("no taker for the call; returning it to the dialplan");
        close(&client, &options).await;
        return;
    }
    pump(&client, stream_events, &own, &tx, &options).await;
}

/// `connect`, verify `async full`, then linger, myevents, RECORD_*/BACKGROUND_JOB, nixevent of
/// myevents' types no call uses. No `resume`
/// (see the module doc): it would make our own crash cut the call's conversation.
async fn handshake(client: &EslClient, options: &OutboundOptions) -> Result<ChannelInfo, EslError> {
    let t = options.handshake_timeout;
    client.set_command_timeout(t);
    let reply = client
        .connect_session()
        .await
        .and_then(EslResponse::into_result)
        .map_err(|e| EslError::from_crate("connect", t, e))?;
    let socket_mode = reply.header(SOCKET_MODE).map(str::to_owned);
    let control = reply.header(CONTROL).map(str::to_owned);
    if socket_mode.as_deref() != Some("async") || control.as_deref() != Some("full") {
        return Err(EslError::NotAsyncFull {
            socket_mode,
            control,
        });
    }
    let info = channel_info(&reply, &options.variables)?;
    let map = |command| move |e| EslError::from_crate(command, t, e);
    client.linger(options.linger).await.map_err(map("linger"))?;
    client
        .myevents(EventFormat::Plain)
        .await
        .map_err(map("myevents"))?;
    // myevents' fixed set lacks RECORD_*; with myevents active only our own channel's pass.
    let extra = [
        EslEventType::RecordStart,
        EslEventType::RecordStop,
        EslEventType::BackgroundJob,
    ];
    client
        .subscribe_events(EventFormat::Plain, extra)
        .await
        .map_err(map("event"))?;
    // ...and of myevents' set only what a call uses: `myevents` keeps its own-channel filter.
    client
        .nixevent(super::event::unused_myevents())
        .await
        .map_err(map("nixevent"))?;
    client.set_command_timeout(options.command_timeout);
    Ok(info)
}

fn channel_info(reply: &EslResponse, wanted: &[String]) -> Result<ChannelInfo, EslError> {
    let malformed = |detail: &str| EslError::MalformedReply {
        command: "connect",
        detail: detail.to_owned(),
    };
    let channel = reply
        .unique_id()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| malformed("no Unique-ID"))?;
    let timetable = reply
        .caller_timetable()
        .map_err(|e| malformed(&e.to_string()))?;
    let created_at = timetable
        .and_then(|t| t.created)
        .filter(|us| *us > 0)
        .and_then(DateTime::<Utc>::from_timestamp_micros);
    let answered = timetable.and_then(|t| t.answered).is_some_and(|us| us > 0);
    let variables = wanted
        .iter()
        .filter_map(|name| {
            reply
                .variable_str(name)
                .map(|v| (name.clone(), v.to_owned()))
        })
        .collect();
    Ok(ChannelInfo {
        channel: ChannelId::new(channel),
        caller_id_number: reply.caller_id_number().map(str::to_owned),
        caller_id_name: reply.caller_id_name().map(str::to_owned),
        destination_number: reply.destination_number().map(str::to_owned),
        created_at,
        answered,
        socket_path: reply.variable_str(VAR_SOCKET_PATH).map(str::to_owned),
        variables,
    })
}

/// Forwards domain events until the connection ends. After `HangupComplete` (the last event the
/// call needs), or once the call task is gone, sends `exit`; the stream then drains to its end.
/// Shutdown is the call task's decision (it hands the caller on, then exits): closing here
/// first would take away the socket its `uuid_kill`s travel on.
async fn pump(
    client: &EslClient,
    mut events: EslEventStream,
    own: &ChannelId,
    tx: &mpsc::Sender<CallEvent>,
    options: &OutboundOptions,
) {
    let mut exiting = false;
    // Far future until CHANNEL_HANGUP arms it.
    let grace = tokio::time::sleep(Duration::from_secs(86_400 * 365));
    tokio::pin!(grace);
    let mut grace_armed = false;
    let mut fwd = forward::Forward::new(tx);
    let mut dropped = 0;
    let reason = loop {
        let next = tokio::select! {
            () = fwd.make_progress(), if fwd.is_waiting() => continue,
            () = &mut grace, if grace_armed && !exiting => {
                warn!("no CHANNEL_HANGUP_COMPLETE after hangup; exiting anyway");
                exiting = true;
                send_exit(client, options).await;
                continue;
            }
            next = events.recv() => next,
        };
        let event = match next {
            None => break disconnect_cause(client),
            Some(Err(err)) if err.is_connection_error() => {
                break DisconnectCause::Failed(err.to_string());
            }
            Some(Err(err)) => {
                dropped = count_dropped(client, dropped);
                warn!(
                    error = &err as &dyn std::error::Error,
                    "outbound event stream fault"
                );
                continue;
            }
            Some(Ok(event)) => event,
        };
        let call_event = match map_event(&event, own) {
            Ok(Mapped::Event(ev)) => ev,
            Ok(Mapped::Ignored(why)) => {
                debug!(?why, "event ignored");
                continue;
            }
            Err(err) => {
                warn!(
                    error = &err as &dyn std::error::Error,
                    "malformed event dropped"
                );
                continue;
            }
        };
        if matches!(call_event, CallEvent::Hangup { .. }) && !grace_armed {
            grace_armed = true;
            grace
                .as_mut()
                .reset(tokio::time::Instant::now() + options.hangup_grace);
        }
        let last = matches!(call_event, CallEvent::HangupComplete(_));
        if !fwd.push(call_event) && !exiting {
            debug!("call task gone; exiting session");
            exiting = true;
            send_exit(client, options).await;
        }
        if last && !exiting {
            exiting = true;
            send_exit(client, options).await;
        }
    };
    count_dropped(client, dropped);
    info!(?reason, "session closed");
    if !fwd.finish(CallEvent::Disconnected { reason }).await {
        debug!("call task gone before the disconnect notice");
    }
}

/// Calls refused because [`OutboundOptions::max_calls`] sessions were running.
pub(crate) static CALLS_REFUSED: AtomicU64 = AtomicU64::new(0);

/// Events the ESL crate dropped on every outbound session (its queue was full): each one is
/// an error, since the call may have missed a state change.
pub(crate) static EVENTS_DROPPED: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

/// Counts and logs what the crate dropped since `seen`; returns the new total for the session.
/// The call still ends on time: a lost hang-up is made good by the session's end (the switch
/// closes the socket after `linger`), which the call task treats as the channel gone.
fn count_dropped(client: &EslClient, seen: u64) -> u64 {
    let now = client.dropped_event_count();
    if now > seen {
        EVENTS_DROPPED.fetch_add(now - seen, std::sync::atomic::Ordering::Relaxed);
        error!(
            dropped = now - seen,
            "outbound session dropped switch events (the ESL queue was full)"
        );
    }
    now
}

async fn send_exit(client: &EslClient, options: &OutboundOptions) {
    if let Err(err) = client.exit().await {
        let err = EslError::from_crate("exit", options.command_timeout, err);
        warn!(
            error = &err as &dyn std::error::Error,
            "exit failed; closing the socket"
        );
        if let Err(err) = client.disconnect().await {
            debug!(
                error = &err as &dyn std::error::Error,
                "disconnect after failed exit"
            );
        }
    }
}

/// Ends a session that never reached the pump: `exit` if possible, else drop the socket.
async fn close(client: &EslClient, options: &OutboundOptions) {
    if client.is_connected() {
        send_exit(client, options).await;
    }
}

fn disconnect_cause(client: &EslClient) -> DisconnectCause {
    use freeswitch_esl_tokio::{ConnectionStatus, DisconnectReason as R};
    match client.status() {
        ConnectionStatus::Disconnected(R::ServerNotice { .. }) => DisconnectCause::ServerNotice,
        ConnectionStatus::Disconnected(R::ConnectionClosed) => DisconnectCause::ConnectionClosed,
        ConnectionStatus::Disconnected(R::ClientRequested) => DisconnectCause::ClosedByUs,
        ConnectionStatus::Disconnected(other) => DisconnectCause::Failed(other.to_string()),
        _ => DisconnectCause::ConnectionClosed,
    }
}

#[cfg(test)]
mod tests;
