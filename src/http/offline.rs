//! Offline events (`[events] delivery = "offline"` or `"both"`): for a PBX that Bitrix24 cannot
//! reach, the portal queues the events and fsb24 fetches them every `poll_interval` with
//! `event.offline.get`.
//!
//! Process, then clear. Events are claimed with `clear=0` for [`PROCESS_ID`] and stay queued;
//! each goes through the same checks as a POSTed one ([`parse_fields`], the `[numbers]`
//! normalisation) to the same click-to-call task, and is cleared (`event.offline.clear` by
//! `ID`) only once the outbox holds the click's `Adopt`. A run killed in between leaves the
//! events claimed for the same process id, so the next poll gets them again; the click task
//! drops a `CALL_ID` the outbox already knows, so an event delivered online and offline, or
//! fetched again after a restart, is dialled once. An event that fails the checks, or that
//! fsb24 does not handle, is flagged with `event.offline.error`: the portal keeps it for the
//! administrator and stops returning it.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::event::{CallbackRequest, ClickToCall, ParsedEvent, parse_fields};
use crate::bitrix::wire::OfflineEvent;
use crate::bitrix::{BitrixClient, BitrixError};
use crate::call::click::click_call_key;
use crate::outbox::{Outbox, OutboxError};
use crate::phone::Numbering;

/// The process id fsb24 claims offline events for. Fixed, so that a restarted fsb24 gets back
/// what a killed one claimed and did not clear (the portal returns claimed records only to
/// their process id). One fsb24 serves one application's queue.
pub const PROCESS_ID: &str = "fsb24";

/// Events fetched per request (the portal's default and the size of one page).
const BATCH: u32 = 50;

/// How long an event waits for the click task to store it before it is left for the next poll.
const STORED_WITHIN: Duration = Duration::from_secs(30);

/// What the poller needs.
#[derive(Debug, Clone)]
pub struct OfflinePoller {
    /// The portal.
    pub client: BitrixClient,
    /// The click-to-call task's inbox (the one the event endpoint feeds).
    pub clicks: mpsc::Sender<ClickToCall>,
    /// The callback task's inbox, when `[events] callback_queue` is set.
    pub callbacks: Option<mpsc::Sender<CallbackRequest>>,
    /// The outbox, where a taken click's `Adopt` shows that it was processed.
    pub outbox: Outbox,
    /// `[numbers]`.
    pub numbering: Numbering,
    /// `[events] poll_interval`.
    pub interval: Duration,
}

/// What became of one fetched event.
enum Handled {
    /// Processed: clear it.
    Done,
    /// Refused or not for fsb24: flag it as erroneous.
    Refused,
    /// Not processed yet (shutdown, or the click was not stored in time): leave it claimed.
    Later,
}

impl OfflinePoller {
    /// Polls every `interval` until `shutdown`. A failed poll is retried at the next tick (logged
    /// when polling starts failing and when it works again, not at every tick); a full page is
    /// followed by the next one at once.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        info!(interval = ?self.interval, "polling Bitrix24 offline events");
        let mut failing = false;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            loop {
                let result = self.poll(&shutdown).await;
                match &result {
                    Ok(_) if failing => info!("offline events fetched again"),
                    Err(e) if !failing && e.kind() == Some(crate::bitrix::ErrorKind::Auth) => {
                        error!(error = %e, "offline events cannot be fetched with these credentials; retrying");
                    }
                    Err(e) if !failing => {
                        warn!(error = %e, "offline events not fetched; retrying every poll");
                    }
                    _ => {}
                }
                failing = result.is_err();
                match result {
                    Ok(full) if full && !shutdown.is_cancelled() => continue,
                    _ => break,
                }
            }
        }
    }

    /// One `event.offline.get` and its events; `true` when the page was full.
    async fn poll(&self, shutdown: &CancellationToken) -> Result<bool, BitrixError> {
        let page = self.client.event_offline_get(PROCESS_ID, BATCH).await?;
        let process = page.process_id.as_deref().unwrap_or(PROCESS_ID);
        if process != PROCESS_ID {
            warn!(
                process,
                "the portal claimed offline events for another process id"
            );
        }
        let full = page.events.len() >= BATCH as usize;
        let (mut done, mut refused, mut later) = (Vec::new(), Vec::new(), false);
        for event in &page.events {
            match self.handle(event, shutdown).await {
                Handled::Done => done.extend(event.id),
                Handled::Refused => refused.extend(event.message_id.clone()),
                Handled::Later => {
                    later = true;
                    break;
                }
            }
        }
        if !page.events.is_empty() {
            debug!(
                done = done.len(),
                refused = refused.len(),
                "offline events processed"
            );
        }
        self.client.event_offline_clear(process, done).await?;
        self.client.event_offline_error(process, refused).await?;
        Ok(full && !later)
    }

    /// A callback form: handed to the callback task, then cleared. It has no `CALL_ID` to
    /// remember it by, so a run killed between the two calls the customer again on restart.
    async fn callback(
        &self,
        mut callback: CallbackRequest,
        shutdown: &CancellationToken,
    ) -> Handled {
        let Some(callbacks) = &self.callbacks else {
            warn!("offline callback form not handled: no [events] callback_queue; flagged");
            return Handled::Refused;
        };
        callback.phone = self.numbering.normalise(&callback.phone);
        info!("callback form fetched offline");
        tokio::select! {
            () = shutdown.cancelled() => Handled::Later,
            sent = callbacks.send(callback) => match sent {
                Ok(()) => Handled::Done,
                Err(_) => Handled::Later,
            },
        }
    }

    async fn handle(&self, event: &OfflineEvent, shutdown: &CancellationToken) -> Handled {
        let mut click = match parse_fields(&event.form_fields()) {
            Ok(ParsedEvent::ClickToCall(click)) => click,
            Ok(ParsedEvent::Callback(callback)) => return self.callback(callback, shutdown).await,
            // Installations are POSTed to the install URL; a queued one is not acted upon.
            Ok(ParsedEvent::Install(_)) => {
                warn!(id = ?event.id, "offline ONAPPINSTALL not handled; flagged");
                return Handled::Refused;
            }
            Ok(ParsedEvent::Other(name)) => {
                warn!(event = ?name, id = ?event.id, "offline event not handled by fsb24; flagged");
                return Handled::Refused;
            }
            Err(e) => {
                warn!(error = &e as &dyn std::error::Error, id = ?event.id, "malformed offline event; flagged");
                return Handled::Refused;
            }
        };
        // Bitrix24's E.164 form uses the portal's country, the clicked text may have none.
        click.phone = self.numbering.normalise(&click.phone);
        let key = click_call_key(&click.call_id);
        info!(
            call_id = click.call_id.as_str(),
            "click-to-call fetched offline"
        );
        tokio::select! {
            () = shutdown.cancelled() => return Handled::Later,
            sent = self.clicks.send(click) => if sent.is_err() { return Handled::Later },
        }
        // The click task stores the click's Adopt (or finds it stored by an earlier delivery);
        // once delivered, the register result is there. Until then the event stays claimed.
        let stored = tokio::time::timeout(STORED_WITHIN, self.outbox.register_result(&key));
        tokio::select! {
            () = shutdown.cancelled() => Handled::Later,
            stored = stored => match stored {
                Ok(Ok(_)) => Handled::Done,
                // Dead-lettered: it is in the outbox's dead letters, where operators look.
                Ok(Err(e @ OutboxError::RegisterFailed { .. })) => {
                    warn!(error = %e, "offline click stored but not adopted");
                    Handled::Done
                }
                Ok(Err(e)) => {
                    warn!(error = %e, "offline click not checked; left for the next poll");
                    Handled::Later
                }
                Err(_) => {
                    warn!("offline click not stored in time; left for the next poll");
                    Handled::Later
                }
            },
        }
    }
}
