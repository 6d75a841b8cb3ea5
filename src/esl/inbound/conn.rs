//! The inbound connection's life: connect, subscribe, resync, read, back off, repeat.

use std::sync::atomic::Ordering;
use std::time::Duration;

use freeswitch_esl_tokio::{
    AuthMethod, EslClient, EslConnectOptions, EslEventStream, EslEventType, EventFormat,
    EventSubscription,
};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::{InboundHandle, InboundOptions};
use crate::esl::error::EslError;
use crate::esl::overflow;
use crate::esl::presence::Presence;
use crate::esl::switch_event::{SwitchMapped, map_switch_event};

/// Capped exponential backoff with optional jitter.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectBackoff {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
    /// Fraction of the delay randomised away (0.0 = exact, for tests; 0.2 = up to 20 % shorter).
    pub jitter: f64,
}

impl Default for ReconnectBackoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            jitter: 0.2,
        }
    }
}

impl ReconnectBackoff {
    /// Delay before retry number `attempt` (0-based). `unit` is a sample in `[0, 1)`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        let base = self.initial.saturating_mul(factor).min(self.max);
        let cut = self.jitter.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0);
        base.mul_f64(1.0 - cut)
    }

    /// When retry number `attempt` is due, counted from `now`.
    pub fn next_attempt_at(&self, now: Instant, attempt: u32, unit: f64) -> Instant {
        now + self.delay(attempt, unit)
    }
}

const SUBCLASSES: [&str; 3] = ["sofia::register", "sofia::unregister", "sofia::expire"];

/// Capacity of the ESL crate's event queue on this connection. The read loop below never waits
/// (presence and the broadcast are synchronous), so the queue only fills while this task is not
/// scheduled. Measured with `cargo bench --bench load` (docs/scaling.md): about 6 switch-wide
/// events per call, so 500 calls/s are 3,000 events/s, and 20,000 holds more than 6 s of them.
/// Memory is spent only while events wait. When it is full the reader waits for room
/// (`esl/overflow.rs`) instead of dropping; a drop past that wait is counted, logged as an
/// error and followed by a resync of the presence it could have changed.
const EVENT_QUEUE: usize = 20_000;

pub(super) async fn run(
    options: InboundOptions,
    presence: Presence,
    handle: InboundHandle,
    client_tx: watch::Sender<Option<EslClient>>,
    shutdown: CancellationToken,
) {
    let span = info_span!("esl", peer = %format_args!("{}:{}", options.host, options.port));
    async move {
        let mut attempt = 0u32;
        while !shutdown.is_cancelled() {
            match connect(&options).await {
                Ok((client, events)) => {
                    attempt = 0;
                    let connects = handle.shared.connects.fetch_add(1, Ordering::Relaxed) + 1;
                    info!(connects, "inbound connected");
                    client_tx.send_replace(Some(client.clone()));
                    resync(&handle, &presence, &options).await;
                    read(&client, events, &handle, &presence, &options, &shutdown).await;
                    client_tx.send_replace(None);
                    // Job results are delivered only on the connection that issued them.
                    handle.jobs().waiting.clear();
                    if shutdown.is_cancelled() {
                        let _ = client.exit().await;
                        break;
                    }
                    warn!("inbound connection lost");
                }
                Err(err) => warn!(
                    attempt,
                    error = &err as &dyn std::error::Error,
                    "inbound connect failed"
                ),
            }
            let at =
                options
                    .backoff
                    .next_attempt_at(Instant::now(), attempt, rand::random::<f64>());
            attempt = attempt.saturating_add(1);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep_until(at) => {}
            }
        }
        info!("inbound connection stopped");
    }
    .instrument(span)
    .await;
}

async fn connect(options: &InboundOptions) -> Result<(EslClient, EslEventStream), EslError> {
    let t = options.connect_timeout;
    let connect = EslConnectOptions::new()
        .with_connect_timeout(t)
        .with_event_queue_size(EVENT_QUEUE);
    let connect = overflow::backpressure(connect, options.command_timeout);
    let auth = AuthMethod::password(options.password.clone());
    let (client, events) = EslClient::connect_with_auth(&options.host, options.port, auth, connect)
        .await
        .map_err(|e| EslError::from_crate("auth", t, e))?;
    client.set_command_timeout(options.command_timeout);
    client.set_liveness_timeout(options.liveness_timeout);
    let mut sub = EventSubscription::new(EventFormat::Plain).events([
        EslEventType::ChannelCreate,
        EslEventType::ChannelAnswer,
        EslEventType::ChannelHangupComplete,
        EslEventType::BackgroundJob,
        EslEventType::Heartbeat,
    ]);
    for subclass in SUBCLASSES {
        sub = sub
            .custom_subclass(subclass)
            .map_err(|e| EslError::MalformedReply {
                command: "event",
                detail: e.to_string(),
            })?;
    }
    client
        .apply_subscription(&sub)
        .await
        .map_err(|e| EslError::from_crate("event", options.command_timeout, e))?;
    Ok((client, events))
}

/// Re-reads registrations and live channels: events missed while disconnected are lost.
async fn resync(handle: &InboundHandle, presence: &Presence, options: &InboundOptions) {
    match handle.live_channels().await {
        Ok(live) => presence.replace_channels(live),
        Err(err) => warn!(
            error = &err as &dyn std::error::Error,
            "presence channel snapshot failed"
        ),
    }
    for ext in presence.extensions() {
        match handle.sofia_contact(&ext, &options.domain).await {
            Ok(contact) => presence.set_registered(&ext, contact.is_some()),
            Err(err) => {
                warn!(agent = %ext, error = &err as &dyn std::error::Error, "registration snapshot failed");
            }
        }
    }
    handle.shared.resyncs.send_modify(|n| *n += 1);
    debug!(agents = presence.extensions().len(), "presence resynced");
}

async fn read(
    client: &EslClient,
    mut events: EslEventStream,
    handle: &InboundHandle,
    presence: &Presence,
    options: &InboundOptions,
    shutdown: &CancellationToken,
) {
    let mut dropped = 0;
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return,
            next = events.recv() => next,
        };
        let event = match next {
            None => {
                debug!(status = ?client.status(), "inbound stream ended");
                return;
            }
            Some(Err(err)) if err.is_connection_error() => {
                warn!(
                    error = &err as &dyn std::error::Error,
                    "inbound stream failed"
                );
                return;
            }
            Some(Err(freeswitch_esl_tokio::EslError::QueueFull)) => {
                let now = client.dropped_event_count();
                let lost = now.saturating_sub(dropped).max(1);
                dropped = now;
                handle.shared.dropped.fetch_add(lost, Ordering::Relaxed);
                error!(
                    lost,
                    "inbound ESL queue full: switch events dropped; resyncing presence"
                );
                resync(handle, presence, options).await;
                continue;
            }
            Some(Err(err)) => {
                handle.shared.dropped.fetch_add(1, Ordering::Relaxed);
                warn!(
                    error = &err as &dyn std::error::Error,
                    "inbound stream fault"
                );
                continue;
            }
            Some(Ok(event)) => event,
        };
        match map_switch_event(&event) {
            Ok(SwitchMapped::Event(ev)) => {
                presence.apply(&ev);
                handle.publish(ev, Instant::now());
            }
            Ok(SwitchMapped::Ignored(why)) => debug!(?why, "inbound event ignored"),
            Err(err) => {
                handle.shared.dropped.fetch_add(1, Ordering::Relaxed);
                warn!(
                    error = &err as &dyn std::error::Error,
                    "malformed inbound event"
                );
            }
        }
    }
}
