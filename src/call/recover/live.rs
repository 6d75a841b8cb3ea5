//! The recovery driver: reads the calls a previous run left open, asks the switch (inbound ESL,
//! `uuid_exists`) which are still up, finishes the others at once and follows the live ones to
//! their `CHANNEL_HANGUP_COMPLETE`. Run [`start`] before the outbox worker starts, so a call
//! that is already over is registered with `SHOW=0` and never shows a card.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::{Ending, Progress, closing_writes};
use crate::esl::{InboundHandle, SwitchEvent};
use crate::ids::{BitrixUserId, ChannelId, ExternalCallId};
use crate::outbox::op::{BitrixWrite, CallWrite};
use crate::outbox::{self, Outbox, OutboxError};

/// What recovery needs.
#[derive(Clone)]
pub(crate) struct Recovery {
    /// The outbox of the previous run.
    pub outbox: Outbox,
    /// The switch.
    pub inbound: InboundHandle,
    /// SIP user (extension) -> Bitrix24 user, for a call answered after the kill.
    pub agents: HashMap<String, BitrixUserId>,
    /// Who finishes a call whose writes name nobody.
    pub fallback: BitrixUserId,
}

/// Calls still up on the switch, followed until they hang up (see [`LiveCalls::run`]).
pub(crate) struct LiveCalls {
    recovery: Recovery,
    calls: HashMap<ChannelId, (ExternalCallId, Progress)>,
    events: broadcast::Receiver<SwitchEvent>,
}

/// Recovers every call left open. `switch_up` says whether the inbound connection is up: when it
/// is not, nobody can say which calls still run and every open call is finished from its notes
/// (a switch that does not answer has most likely lost its calls too). Returns the live calls.
pub(crate) async fn start(recovery: Recovery, switch_up: bool) -> Result<LiveCalls, OutboxError> {
    // Subscribe before asking, so a hang-up right after `uuid_exists` is not missed.
    let events = recovery.inbound.subscribe();
    let orphans = recovery.outbox.store().orphans().await?;
    let mut live = LiveCalls {
        recovery,
        calls: HashMap::new(),
        events,
    };
    if !orphans.is_empty() && !switch_up {
        warn!("FreeSWITCH is not connected: finishing the calls left open from their notes");
    }
    // Ask about every call first (quick), store afterwards (each store is an fsync).
    let mut asked = Vec::with_capacity(orphans.len());
    for orphan in orphans {
        let progress = Progress::of(&orphan.writes);
        let channel = progress
            .channel
            .clone()
            .or_else(|| outbox::channel_of(&orphan.call));
        let up = match &channel {
            Some(channel) if switch_up => live.exists(channel).await,
            _ => Some(false),
        };
        asked.push((orphan.call, progress, channel, up));
    }
    // A call that hung up since we subscribed has its CHANNEL_HANGUP_COMPLETE waiting here:
    // its real ending beats the notes.
    let mut ended = live.drain_hangups();
    for (call, progress, channel, up) in asked {
        let span = info_span!("recover", call = %call);
        let hangup = channel.as_ref().and_then(|c| ended.remove(c));
        match (channel, up, hangup) {
            (_, _, Some(ending)) => {
                live.finish(&call, &progress, &ending)
                    .instrument(span)
                    .await;
            }
            (Some(channel), Some(true) | None, None) => {
                span.in_scope(|| {
                    info!(channel = %channel, "call left open by a previous run is still up");
                });
                live.push(&call, progress.live_writes(), super::WHY_STILL_UP)
                    .await?;
                live.calls.insert(channel, (call, progress));
            }
            _ => live.finish_gone(&call, &progress).instrument(span).await?,
        }
    }
    Ok(live)
}

impl LiveCalls {
    /// Whether no call is being followed.
    pub(crate) fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Follows the live calls until each has hung up (or `token` is cancelled: they stay open
    /// in the outbox for the next start). After a reconnect or lost events it asks the switch
    /// again, since a `CHANNEL_HANGUP_COMPLETE` may have been missed meanwhile.
    pub(crate) async fn run(mut self, token: CancellationToken) {
        let mut resyncs = self.recovery.inbound.resyncs();
        resyncs.borrow_and_update();
        while !self.calls.is_empty() {
            let recheck = tokio::select! {
                () = token.cancelled() => return,
                event = self.events.recv() => match event {
                    Ok(SwitchEvent::ChannelHangupComplete { channel, cause, end, .. }) => {
                        if let Some((call, progress)) = self.calls.remove(&channel) {
                            let ending = Ending::HungUp { cause, end };
                            let span = info_span!("recover", call = %call);
                            self.finish(&call, &progress, &ending).instrument(span).await;
                        }
                        false
                    }
                    Ok(_) => false,
                    Err(RecvError::Lagged(n)) => {
                        warn!(lost = n, "recovery lost switch events; asking the switch again");
                        true
                    }
                    Err(RecvError::Closed) => return,
                },
                changed = resyncs.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    true
                }
            };
            if recheck {
                self.recheck().await;
            }
        }
        debug!("every recovered call is finished");
    }

    /// The hang-ups already received, by channel (nothing waits).
    fn drain_hangups(&mut self) -> HashMap<ChannelId, Ending> {
        let mut ended = HashMap::new();
        loop {
            match self.events.try_recv() {
                Ok(SwitchEvent::ChannelHangupComplete {
                    channel,
                    cause,
                    end,
                    ..
                }) => {
                    ended.insert(channel, Ending::HungUp { cause, end });
                }
                Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => return ended,
            }
        }
    }

    async fn recheck(&mut self) {
        let channels: Vec<ChannelId> = self.calls.keys().cloned().collect();
        for channel in channels {
            if self.exists(&channel).await == Some(false)
                && let Some((call, progress)) = self.calls.remove(&channel)
            {
                let span = info_span!("recover", call = %call);
                let done = self.finish_gone(&call, &progress).instrument(span).await;
                if let Err(e) = done {
                    warn!(call = %call, error = %e, "recovered call not stored; next start retries");
                }
            }
        }
    }

    /// `Some(up)`, or `None` when the switch could not be asked.
    async fn exists(&self, channel: &ChannelId) -> Option<bool> {
        match self.recovery.inbound.uuid_exists(channel).await {
            Ok(up) => Some(up),
            Err(e) => {
                warn!(channel = %channel, error = %e, "uuid_exists failed");
                None
            }
        }
    }

    async fn finish_gone(
        &self,
        call: &ExternalCallId,
        progress: &Progress,
    ) -> Result<(), OutboxError> {
        let recording_end = match &progress.recording {
            Some(path) => last_write(path).await,
            None => None,
        };
        let ending = Ending::Gone { recording_end };
        self.finish_with(call, progress, &ending).await
    }

    async fn finish(&self, call: &ExternalCallId, progress: &Progress, ending: &Ending) {
        if let Err(e) = self.finish_with(call, progress, ending).await {
            warn!(error = %e, "recovered call not finished; the next start retries");
        }
    }

    async fn finish_with(
        &self,
        call: &ExternalCallId,
        progress: &Progress,
        ending: &Ending,
    ) -> Result<(), OutboxError> {
        let agents = &self.recovery.agents;
        let writes = closing_writes(
            progress,
            ending,
            |ext| agents.get(ext).copied(),
            self.recovery.fallback,
        );
        if let Some(BitrixWrite::Finish(f)) =
            writes.iter().find(|w| matches!(w, BitrixWrite::Finish(_)))
        {
            info!(
                status = %f.status_code,
                user = %f.user,
                duration = f.duration_secs,
                ended = ending_kind(ending),
                detail = ?ending,
                "call left open by a previous run finished"
            );
        }
        let why = match ending {
            Ending::HungUp { .. } => super::WHY_HUNG_UP,
            Ending::Gone { .. } => super::WHY_GONE,
        };
        self.push(call, writes, why).await
    }

    /// Stores `writes` in one transaction (a kill meanwhile leaves the call open for next time),
    /// each with the recovery's outcome as its "why" (`fsb24 call show`).
    async fn push(
        &self,
        call: &ExternalCallId,
        writes: Vec<BitrixWrite>,
        why: &str,
    ) -> Result<(), OutboxError> {
        if writes.is_empty() {
            return Ok(());
        }
        let writes = CallWrite::all(call, writes);
        self.recovery
            .outbox
            .push_all_explained(writes, why)
            .await
            .map(drop)
    }
}

fn ending_kind(ending: &Ending) -> &'static str {
    match ending {
        Ending::HungUp { .. } => "hung up after the restart",
        Ending::Gone { .. } => "gone before the restart",
    }
}

/// When `path` was last written: the end of a recording FreeSWITCH closed at hang-up.
async fn last_write(path: &Path) -> Option<DateTime<Utc>> {
    match tokio::fs::metadata(path).await.and_then(|m| m.modified()) {
        Ok(at) => Some(at.into()),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "recording of a recovered call not readable");
            None
        }
    }
}
