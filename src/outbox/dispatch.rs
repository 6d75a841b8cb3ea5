//! Dispatching one due entry: decide (see `plan`), check a recording, deliver, then record the
//! outcome in the store (ack, retry with backoff, or dead letter). Ownership of the entry goes
//! back to the store on every path: a failed entry is rescheduled, never dropped.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::outbox::deliver::{Deliver, DeliverError, Delivered};
use crate::outbox::metrics::OutboxMetrics;
use crate::outbox::op::BitrixWrite;
use crate::outbox::plan::{Decision, decide};
use crate::outbox::portal::Reached;
use crate::outbox::recording::{RecordingError, RecordingFile};
use crate::outbox::store::{Completion, DueEntry, RegisterResult, StoreError};
use crate::outbox::worker::WorkerConfig;
use crate::outbox::{Outbox, RegisterStatus};
use crate::recording::compact::attachable;

/// Everything one dispatch needs.
pub(crate) struct Dispatch<D> {
    pub(crate) outbox: Outbox,
    pub(crate) deliver: Arc<D>,
    pub(crate) config: Arc<WorkerConfig>,
    pub(crate) shutdown: CancellationToken,
}

impl<D: Deliver> Dispatch<D> {
    /// Handles `entry` to the end (or abandons it on shutdown, leaving it pending); says whether
    /// the portal answered.
    pub(crate) async fn run(&self, entry: DueEntry) -> Result<Reached, StoreError> {
        let clock = self.outbox.metrics().card_clock.clone();
        let card = matches!(
            entry.write,
            BitrixWrite::Register(_)
                | BitrixWrite::Show { .. }
                | BitrixWrite::Hide { .. }
                | BitrixWrite::Finish(_)
        );
        clock.dispatching(entry.id, &entry.call, card);
        let call = entry.call.clone();
        let reached = self.handle(entry).await;
        clock.settled(&call);
        reached
    }

    async fn handle(&self, entry: DueEntry) -> Result<Reached, StoreError> {
        match decide(&entry.write, &entry.state) {
            Decision::Skip { reason } => {
                debug!(reason, "outbox entry skipped");
                self.skip(&entry, reason.to_owned()).await?;
            }
            Decision::Adopt(call_id) => {
                let result = RegisterResult {
                    call_id,
                    crm: None,
                    created_lead: None,
                };
                self.registered(&entry, result, false).await?;
            }
            Decision::NoCallId => {
                let reason = "no CALL_ID: the call's register has not succeeded".to_owned();
                self.dead(&entry, reason).await?;
            }
            Decision::Send { write, opens_card } => {
                return self.send(&entry, write, opens_card).await;
            }
        }
        Ok(Reached::NotSent)
    }

    async fn send(
        &self,
        entry: &DueEntry,
        write: BitrixWrite,
        opens_card: bool,
    ) -> Result<Reached, StoreError> {
        let write = match write {
            BitrixWrite::AttachRecord { path } => match attachable(&path, self.config.attach).await
            {
                Ok(path) => BitrixWrite::AttachRecord { path },
                // FreeSWITCH reports RECORD_STOP once the file is closed, so this is rare (a
                // recovered call); a file that never completes is dead-lettered, not cut short.
                Err(err) if entry.attempts + 1 < self.config.max_not_found_attempts => {
                    self.retry(entry, err.to_string(), None).await?;
                    return Ok(Reached::NotSent);
                }
                Err(err) => {
                    self.dead(entry, err.to_string()).await?;
                    return Ok(Reached::NotSent);
                }
            },
            write => write,
        };
        if let BitrixWrite::AttachRecord { path } = &write {
            match RecordingFile::inspect(path).await {
                Ok(_) => {}
                Err(err) if err.is_absent() => {
                    warn!(
                        error = &err as &dyn std::error::Error,
                        "recording not attached; call stays without it"
                    );
                    self.skip(entry, err.to_string()).await?;
                    return Ok(Reached::NotSent);
                }
                Err(err @ RecordingError::UnsupportedFormat { .. }) => {
                    self.dead(entry, err.to_string()).await?;
                    return Ok(Reached::NotSent);
                }
                Err(err) => {
                    self.retry(entry, err.to_string(), None).await?;
                    return Ok(Reached::NotSent);
                }
            }
        }
        let sent = tokio::select! {
            res = self.deliver.deliver(&entry.call, entry.state.call_id(), &write) => res,
            () = self.shutdown.cancelled() => {
                info!("outbox delivery abandoned at shutdown; entry stays pending");
                return Ok(Reached::NotSent);
            }
        };
        let reached = match &sent {
            // No answer, or an answer that says "not now" for the whole portal (5xx, rate
            // limit); a per-method hold comes with its own `retry_after`.
            Err(DeliverError::Retryable {
                retry_after: None, ..
            }) => Reached::Unreachable,
            _ => Reached::Answered,
        };
        match sent {
            Ok(Delivered::Registered(result)) => self.registered(entry, result, opens_card).await,
            Ok(Delivered::Done) => self.sent(entry, opens_card).await,
            Err(err) => self.failed(entry, &write, err).await,
        }?;
        Ok(reached)
    }

    async fn failed(
        &self,
        entry: &DueEntry,
        write: &BitrixWrite,
        err: DeliverError,
    ) -> Result<(), StoreError> {
        match (err, write) {
            // An earlier attempt finished it and its answer was lost (timeout, crash): done.
            (DeliverError::CallNotFound { reason }, BitrixWrite::Finish(_)) => {
                info!(
                    attempt = entry.attempts + 1,
                    reason, "finish already applied; counted as done"
                );
                self.sent(entry, false).await
            }
            (
                DeliverError::CallNotFound { reason },
                BitrixWrite::Show { .. } | BitrixWrite::Hide { .. },
            ) => {
                self.skip(entry, format!("call no longer active: {reason}"))
                    .await
            }
            // attachRecord before Bitrix24 sees the finish: give it a few more tries.
            (DeliverError::CallNotFound { reason }, BitrixWrite::AttachRecord { .. })
                if entry.attempts + 1 < self.config.max_not_found_attempts =>
            {
                self.retry(entry, reason, None).await
            }
            (
                DeliverError::Retryable {
                    reason,
                    retry_after,
                },
                _,
            ) => self.retry(entry, reason, retry_after).await,
            (err, _) => self.dead(entry, err.to_string()).await,
        }
    }

    async fn registered(
        &self,
        entry: &DueEntry,
        result: RegisterResult,
        opened_card: bool,
    ) -> Result<(), StoreError> {
        let done = Completion::Registered {
            result: result.clone(),
            opened_card,
        };
        self.outbox
            .store()
            .ack(entry.id, done, self.outbox.now())
            .await?;
        self.count_done(&self.outbox.metrics().delivered);
        debug!(call_id = result.call_id.as_str(), "call registered");
        self.outbox
            .publish(&entry.call, RegisterStatus::Done(result));
        Ok(())
    }

    async fn sent(&self, entry: &DueEntry, opened_card: bool) -> Result<(), StoreError> {
        self.outbox
            .store()
            .ack(
                entry.id,
                Completion::Sent { opened_card },
                self.outbox.now(),
            )
            .await?;
        self.count_done(&self.outbox.metrics().delivered);
        self.count_recording(entry, |m| &m.recordings_attached);
        if matches!(entry.write, BitrixWrite::Finish(_)) {
            self.outbox.retire(&entry.call);
        }
        Ok(())
    }

    async fn skip(&self, entry: &DueEntry, reason: String) -> Result<(), StoreError> {
        self.outbox
            .store()
            .ack(entry.id, Completion::Skipped { reason }, self.outbox.now())
            .await?;
        self.count_done(&self.outbox.metrics().skipped);
        self.count_recording(entry, |m| &m.recordings_missing);
        Ok(())
    }

    async fn retry(
        &self,
        entry: &DueEntry,
        reason: String,
        after: Option<std::time::Duration>,
    ) -> Result<(), StoreError> {
        let attempt = entry.attempts + 1;
        let delay = self.config.backoff.delay_now(attempt, after);
        let when = self.outbox.now() + chrono::Duration::from_std(delay).unwrap_or_default();
        warn!(
            attempt,
            delay_ms = delay.as_millis() as u64,
            error = reason.as_str(),
            "outbox delivery failed; will retry"
        );
        let now = self.outbox.now();
        self.outbox
            .store()
            .retry_at(entry.id, when, reason, now)
            .await?;
        OutboxMetrics::inc(&self.outbox.metrics().retries);
        self.count_recording(entry, |m| &m.recordings_retried);
        Ok(())
    }

    async fn dead(&self, entry: &DueEntry, reason: String) -> Result<(), StoreError> {
        info!(
            attempt = entry.attempts + 1,
            reason, "outbox entry dead-lettered"
        );
        self.outbox
            .store()
            .dead_letter(entry.id, reason.clone(), self.outbox.now())
            .await?;
        self.count_done(&self.outbox.metrics().dead_letters);
        self.count_recording(entry, |m| &m.recordings_failed);
        if matches!(
            entry.write,
            BitrixWrite::Register(_) | BitrixWrite::Adopt { .. }
        ) {
            self.outbox
                .publish(&entry.call, RegisterStatus::Failed(reason));
        }
        Ok(())
    }

    /// Counts an attachRecord outcome (`fsb24_recording_attach`).
    fn count_recording(
        &self,
        entry: &DueEntry,
        counter: impl Fn(&OutboxMetrics) -> &std::sync::atomic::AtomicU64,
    ) {
        if matches!(entry.write, BitrixWrite::AttachRecord { .. }) {
            OutboxMetrics::inc(counter(&self.outbox.metrics()));
        }
    }

    fn count_done(&self, counter: &std::sync::atomic::AtomicU64) {
        OutboxMetrics::inc(counter);
        OutboxMetrics::dec(&self.outbox.metrics().pending);
        self.outbox.completed_one();
    }
}
