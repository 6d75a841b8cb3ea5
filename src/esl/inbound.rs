//! One long-lived inbound connection to FreeSWITCH: typed API commands and switch-wide events.
//!
//! A background task authenticates, subscribes, resyncs [`Presence`] and reconnects with capped
//! exponential backoff. While it is disconnected every command fails at once with
//! [`EslError::NotConnected`]; nothing waits for the reconnect.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use freeswitch_esl_tokio::EslClient;
use tokio::sync::{broadcast, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::HangupCause;
use super::command::{Domain, Extension, Name, OriginateRequest};
use super::error::EslError;
use super::presence::Presence;
use super::switch_event::{JobOutcome, SwitchEvent, extension_of_channel_name};
use crate::ids::{ChannelId, JobId, LegId};

mod conn;

pub use conn::ReconnectBackoff;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct InboundOptions {
    /// FreeSWITCH host.
    pub host: String,
    /// Event socket port (8021).
    pub port: u16,
    /// `auth` password. Never logged.
    pub password: String,
    /// TCP connect + auth limit.
    pub connect_timeout: Duration,
    /// Limit for each command's reply.
    pub command_timeout: Duration,
    /// Limit for a `bgapi originate` to report its BACKGROUND_JOB.
    pub job_timeout: Duration,
    /// Reconnect schedule.
    pub backoff: ReconnectBackoff,
    /// No traffic for this long (HEARTBEAT comes every 20 s) counts as a dead connection.
    pub liveness_timeout: Duration,
    /// Directory domain of the agents (`sofia_contact <ext>@<domain>`).
    pub domain: Domain,
    /// Capacity of the [`SwitchEvent`] broadcast.
    pub event_capacity: usize,
}

/// Typed commands over the shared inbound connection. Cheap to clone.
#[derive(Debug, Clone)]
pub struct InboundHandle {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    client: watch::Receiver<Option<EslClient>>,
    events: broadcast::Sender<SwitchEvent>,
    resyncs: watch::Sender<u64>,
    jobs: Mutex<Jobs>,
    timeout: Duration,
    job_timeout: Duration,
    /// Successful connects since the start (the first one is not a reconnect).
    connects: AtomicU64,
    /// Events read but not delivered (malformed, stream faults).
    dropped: AtomicU64,
}

/// Background-job results by `Job-UUID`. FreeSWITCH writes the bgapi reply before the job's
/// event, but our reader may see the event before the caller registers, so results that arrive
/// first are parked briefly.
#[derive(Debug, Default)]
struct Jobs {
    waiting: HashMap<JobId, oneshot::Sender<JobOutcome>>,
    early: HashMap<JobId, (JobOutcome, Instant)>,
}

const EARLY_JOB_TTL: Duration = Duration::from_secs(60);

impl Jobs {
    fn complete(&mut self, job: JobId, outcome: JobOutcome, now: Instant) {
        match self.waiting.remove(&job) {
            Some(tx) => {
                // The caller may have timed out meanwhile; nothing left to tell.
                let _ = tx.send(outcome);
            }
            None => {
                self.early
                    .retain(|_, (_, at)| now.duration_since(*at) < EARLY_JOB_TTL);
                self.early.insert(job, (outcome, now));
            }
        }
    }

    fn register(&mut self, job: JobId) -> oneshot::Receiver<JobOutcome> {
        let (tx, rx) = oneshot::channel();
        match self.early.remove(&job) {
            Some((outcome, _)) => {
                let _ = tx.send(outcome);
            }
            None => {
                self.waiting.insert(job, tx);
            }
        }
        rx
    }
}

/// Spawns the inbound connection task.
pub struct InboundClient;

impl InboundClient {
    /// Starts connecting in the background (on `tracker`, until `shutdown`) and returns at once.
    pub fn spawn(
        options: InboundOptions,
        presence: Presence,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> InboundHandle {
        let (client_tx, client_rx) = watch::channel(None);
        let (events, _) = broadcast::channel(options.event_capacity.max(1));
        let shared = Arc::new(Shared {
            client: client_rx,
            events,
            resyncs: watch::Sender::new(0),
            jobs: Mutex::new(Jobs::default()),
            timeout: options.command_timeout,
            job_timeout: options.job_timeout,
            connects: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        let handle = InboundHandle { shared };
        tracker.spawn(conn::run(
            options,
            presence,
            handle.clone(),
            client_tx,
            shutdown,
        ));
        handle
    }
}

impl InboundHandle {
    /// Receives every [`SwitchEvent`] from now on. A receiver that lags loses the oldest events
    /// (`RecvError::Lagged`) rather than stalling the connection.
    pub fn subscribe(&self) -> broadcast::Receiver<SwitchEvent> {
        self.shared.events.subscribe()
    }

    /// Counts completed presence resyncs (one after every successful connect); wait on it to know
    /// the [`Presence`] snapshot is fresh.
    pub fn resyncs(&self) -> watch::Receiver<u64> {
        self.shared.resyncs.subscribe()
    }

    /// Successful connects since the start; every one after the first is a reconnect.
    pub fn connects(&self) -> u64 {
        self.shared.connects.load(Ordering::Relaxed)
    }

    /// Events read from the switch but not delivered (malformed frames, stream faults).
    pub fn events_dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Whether the connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.shared
            .client
            .borrow()
            .as_ref()
            .is_some_and(EslClient::is_connected)
    }

    /// Resolves once the connection is down (at once if it is down now): the reconnect loop has
    /// noticed the loss, so commands fail with `NotConnected` until it is back.
    pub async fn disconnected(&self) {
        let mut client = self.shared.client.clone();
        // An error means the connection task is gone: that is down, too.
        let _ = client.wait_for(Option::is_none).await;
    }

    /// `uuid_exists <channel>`: whether the switch still has this channel.
    pub async fn uuid_exists(&self, channel: &ChannelId) -> Result<bool, EslError> {
        let out = self.api("uuid_exists", channel.as_str()).await?;
        match out.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(EslError::MalformedReply {
                command: "uuid_exists",
                detail: format!("expected true or false, got {other:?}"),
            }),
        }
    }

    /// `uuid_kill <channel> <cause>`. An already gone channel is `Rejected` (`No such channel`).
    pub async fn uuid_kill(&self, channel: &ChannelId, cause: HangupCause) -> Result<(), EslError> {
        self.api("uuid_kill", &format!("{channel} {cause}"))
            .await
            .map(|_| ())
    }

    /// `uuid_kill` of an agent leg we originated (its id is its `Unique-ID`).
    pub async fn kill_leg(&self, leg: &LegId, cause: HangupCause) -> Result<(), EslError> {
        self.api("uuid_kill", &format!("{leg} {cause}"))
            .await
            .map(|_| ())
    }

    /// `uuid_transfer <channel> <dest> <dialplan> <context>`.
    pub async fn uuid_transfer(
        &self,
        channel: &ChannelId,
        dest: &Extension,
        dialplan: &Name,
        context: &Name,
    ) -> Result<(), EslError> {
        let args = format!("{channel} {dest} {dialplan} {context}");
        self.api("uuid_transfer", &args).await.map(|_| ())
    }

    /// `uuid_bridge <a> <b>`.
    pub async fn uuid_bridge(&self, a: &ChannelId, b: &ChannelId) -> Result<(), EslError> {
        self.api("uuid_bridge", &format!("{a} {b}"))
            .await
            .map(|_| ())
    }

    /// `sofia_contact <ext>@<domain>`: the contact, or `None` when not registered.
    pub async fn sofia_contact(
        &self,
        ext: &str,
        domain: &Domain,
    ) -> Result<Option<String>, EslError> {
        let ext = Extension::parse(ext).map_err(|e| EslError::MalformedReply {
            command: "sofia_contact",
            detail: e.to_string(),
        })?;
        let out = self
            .api("sofia_contact", &format!("{ext}@{domain}"))
            .await?;
        // Not registered is `error/user_not_registered`, not an -ERR (presence_register_events.txt).
        Ok((!out.starts_with("error/")).then_some(out))
    }

    /// `show channels as json`: `(channel, extension)` of every live sofia channel.
    pub async fn live_channels(&self) -> Result<Vec<(ChannelId, String)>, EslError> {
        let out = self.api("show", "channels as json").await?;
        parse_channels(&out)
    }

    /// `bgapi originate ...` and waits (bounded by the job timeout) for its BACKGROUND_JOB.
    /// Success is the new leg's id; `-ERR <CAUSE>` is [`EslError::OriginateFailed`].
    pub async fn originate(&self, request: &OriginateRequest) -> Result<ChannelId, EslError> {
        const COMMAND: &str = "originate";
        let client = self.client(COMMAND)?;
        let t = self.shared.timeout;
        let reply = client
            .bgapi(&format!("originate {}", request.api_args()))
            .await
            .and_then(freeswitch_esl_tokio::EslResponse::into_result)
            .map_err(|e| EslError::from_crate(COMMAND, t, e))?;
        let job = reply
            .job_uuid()
            .map(JobId::new)
            .ok_or_else(|| EslError::MalformedReply {
                command: COMMAND,
                detail: "bgapi reply without Job-UUID".into(),
            })?;
        let rx = self.jobs().register(job.clone());
        let outcome = match tokio::time::timeout(self.shared.job_timeout, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => return Err(EslError::Closed { command: COMMAND }),
            Err(_) => {
                self.jobs().waiting.remove(&job);
                return Err(EslError::Timeout {
                    command: COMMAND,
                    timeout: self.shared.job_timeout,
                });
            }
        };
        match outcome {
            JobOutcome::Ok(uuid) => Ok(ChannelId::new(uuid.trim())),
            JobOutcome::Failed(reason) => Err(EslError::OriginateFailed {
                cause: super::Cause::parse(&reason),
            }),
        }
    }

    async fn api(&self, command: &'static str, args: &str) -> Result<String, EslError> {
        let client = self.client(command)?;
        let t = self.shared.timeout;
        let reply = client
            .api(&format!("{command} {args}"))
            .await
            .map_err(|e| EslError::from_crate(command, t, e))?;
        reply
            .api_result()
            .map(str::to_owned)
            .map_err(|e| EslError::from_crate(command, t, e))
    }

    fn client(&self, command: &'static str) -> Result<EslClient, EslError> {
        match self.shared.client.borrow().as_ref() {
            Some(client) if client.is_connected() => Ok(client.clone()),
            _ => Err(EslError::NotConnected { command }),
        }
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, Jobs> {
        // A poisoned table only means a panic elsewhere mid-insert; the map itself is intact.
        self.shared
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Routes one mapped event: job results to their waiter, everything to subscribers.
    fn publish(&self, event: SwitchEvent, now: Instant) {
        if let SwitchEvent::BackgroundJob { job, result } = &event {
            self.jobs().complete(job.clone(), result.clone(), now);
        }
        // No subscriber is fine.
        let _ = self.shared.events.send(event);
    }
}

#[derive(serde::Deserialize)]
struct ChannelRows {
    #[serde(default)]
    rows: Vec<ChannelRow>,
}

#[derive(serde::Deserialize)]
struct ChannelRow {
    uuid: String,
    name: String,
}

fn parse_channels(json: &str) -> Result<Vec<(ChannelId, String)>, EslError> {
    let rows: ChannelRows =
        serde_json::from_str(json.trim()).map_err(|e| EslError::MalformedReply {
            command: "show",
            detail: e.to_string(),
        })?;
    Ok(rows
        .rows
        .into_iter()
        .filter_map(|row| {
            Some((
                ChannelId::new(row.uuid),
                extension_of_channel_name(&row.name)?,
            ))
        })
        .collect())
}

#[cfg(test)]
mod tests;
