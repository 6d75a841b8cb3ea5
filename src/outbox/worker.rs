//! The worker task: drains due entries from the store, at most one in flight per call and
//! many calls at once (so the Bitrix client can batch them), logs backlog progress and prunes
//! finished entries. While the portal does not answer it sends one probe at a time (see
//! `portal`) and releases the whole backlog with the first answer. Stops on the shutdown token,
//! leaving every unfinished entry durable.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, info_span, warn};

use crate::ids::ExternalCallId;
use crate::outbox::Outbox;
use crate::outbox::deliver::{Deliver, RetryBackoff};
use crate::outbox::dispatch::Dispatch;
use crate::outbox::metrics::{OutboxMetrics, Progress};
use crate::outbox::portal::{Admit, Portal, Reached, Recovered};
use crate::outbox::store::StoreError;
use crate::recording::compact::AttachFormat;

/// Worker tuning.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Calls with a delivery in flight at once (the client's limiter paces the actual requests).
    /// Each call has one write in flight, so this bounds a `batch`: the default, two full
    /// batches, lets a backlog fill every request to 50 with the next 50 waiting behind it.
    pub max_in_flight: usize,
    /// Retry schedule for retryable failures.
    pub backoff: RetryBackoff,
    /// Attempts for an `attachRecord` that gets "call not found" before it is dead-lettered.
    pub max_not_found_attempts: u32,
    /// Longest sleep without looking at the store (picks up `fsb24 outbox retry` from the CLI).
    pub idle_poll: Duration,
    /// How often backlog progress is logged and the gauges refreshed.
    pub progress_every: Duration,
    /// Done entries older than this are pruned.
    pub prune_after: Duration,
    /// How often pruning runs.
    pub prune_every: Duration,
    /// Pause after a store failure before trying again.
    pub store_error_pause: Duration,
    /// What a recording is attached as (an MP3 made from the WAV, or the file as recorded).
    pub attach: AttachFormat,
    /// While the portal does not answer, the longest wait between two probes (the probes back
    /// off from `backoff.base` up to this): the backlog follows the portal at most this late.
    pub probe_max: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 2 * crate::bitrix::wire::BATCH_MAX,
            backoff: RetryBackoff::default(),
            max_not_found_attempts: 6,
            idle_poll: Duration::from_secs(5),
            progress_every: Duration::from_secs(10),
            prune_after: Duration::from_secs(7 * 24 * 3600),
            prune_every: Duration::from_secs(600),
            store_error_pause: Duration::from_secs(1),
            attach: AttachFormat::Mp3 {
                kbps_per_channel: 24,
            },
            probe_max: Duration::from_secs(1),
        }
    }
}

/// What a delivery task hands back: its call, and whether the store kept up and the portal
/// answered.
type TaskOutput = (ExternalCallId, Result<Reached, StoreError>);

/// Worker loop state that is not the store.
struct Loop<D> {
    dispatch: Arc<Dispatch<D>>,
    tasks: JoinSet<TaskOutput>,
    busy: HashSet<ExternalCallId>,
    /// Which call each delivery task serves, so a panicked task still frees its call.
    task_calls: HashMap<tokio::task::Id, ExternalCallId>,
    paused_until: Option<Instant>,
    next_progress: Instant,
    next_prune: Instant,
    last_progress: (Instant, u64),
    portal: Portal,
    /// The delivery task that is the current probe, if any.
    probe: Option<tokio::task::Id>,
    /// Stopping: what is due goes once; nothing is probed or released.
    draining: bool,
}

/// Runs the worker until `shutdown` is cancelled; then abandons in-flight requests (their
/// entries stay pending) and returns once every delivery task has ended.
pub async fn run<D: Deliver>(
    outbox: Outbox,
    deliver: Arc<D>,
    config: WorkerConfig,
    shutdown: CancellationToken,
) {
    run_draining(outbox, deliver, config, CancellationToken::new(), shutdown).await;
}

/// [`run`], and once `drain` is cancelled it delivers what is due and returns when nothing is
/// left to send now (an entry that fails waits for the next start): the graceful stop, which
/// gets the cards calls closed while shutting down to Bitrix24. `shutdown` still abandons.
pub async fn run_draining<D: Deliver>(
    outbox: Outbox,
    deliver: Arc<D>,
    config: WorkerConfig,
    drain: CancellationToken,
    shutdown: CancellationToken,
) {
    let now = Instant::now();
    let completed = outbox.metrics().completed();
    let config = Arc::new(config);
    let probes = RetryBackoff {
        base: config.backoff.base.min(config.probe_max),
        max: config.probe_max,
        jitter: 0.0,
    };
    let mut lp = Loop {
        dispatch: Arc::new(Dispatch {
            outbox,
            deliver,
            config: Arc::clone(&config),
            shutdown: shutdown.clone(),
        }),
        tasks: JoinSet::new(),
        busy: HashSet::new(),
        task_calls: HashMap::new(),
        paused_until: None,
        next_progress: now,
        next_prune: now,
        last_progress: (now, completed),
        portal: Portal::new(probes),
        probe: None,
        draining: false,
    };
    info!(
        max_in_flight = config.max_in_flight,
        "outbox worker started"
    );
    loop {
        let wake_at = lp.fill().await;
        if lp.draining && lp.tasks.is_empty() {
            info!("outbox drained what was due");
            break;
        }
        let deadline = wake_at.min(lp.next_progress).min(lp.next_prune);
        let outbox = lp.dispatch.outbox.clone();
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            () = drain.cancelled(), if !lp.draining => lp.draining = true,
            Some(joined) = lp.tasks.join_next_with_id() => {
                lp.joined(joined).await;
                // A batch answers up to 50 deliveries at once: take every one that has ended
                // before reading the store again, not one `due()` per delivery.
                while let Some(joined) = lp.tasks.try_join_next_with_id() {
                    lp.joined(joined).await;
                }
            }
            () = outbox.wake().notified() => {}
            () = sleep_until(deadline) => {}
        }
        lp.housekeeping().await;
    }
    while let Some(joined) = lp.tasks.join_next_with_id().await {
        lp.joined(joined).await;
    }
    info!("outbox worker stopped");
}

impl<D: Deliver> Loop<D> {
    fn config(&self) -> &WorkerConfig {
        &self.dispatch.config
    }

    /// Starts deliveries for due entries of idle calls; returns when to look again at the latest.
    /// While draining for a stop, whatever is due goes once, without probing: the next start
    /// gets the rest.
    async fn fill(&mut self) -> Instant {
        let now = Instant::now();
        let idle = now + self.config().idle_poll;
        if let Some(until) = self.paused_until {
            if until > now {
                return until;
            }
            self.paused_until = None;
        }
        let free = self.config().max_in_flight.saturating_sub(self.tasks.len());
        if free == 0 {
            return idle;
        }
        let probing = match self.portal.admit(now) {
            _ if self.draining => false,
            Admit::All => false,
            Admit::Probe => true,
            Admit::Wait(until) => return until.map_or(idle, |at| at.min(idle)),
        };
        let found = if probing {
            self.spawn_probe().await.map(|()| None)
        } else {
            self.spawn_due(free).await
        };
        match found {
            Ok(next) => next.map_or(idle, |at| at.min(idle)),
            Err(err) => {
                warn!(
                    error = &err as &dyn std::error::Error,
                    "outbox store failed; pausing"
                );
                let until = now + self.config().store_error_pause;
                self.paused_until = Some(until);
                until
            }
        }
    }

    async fn spawn_due(&mut self, free: usize) -> Result<Option<Instant>, StoreError> {
        let outbox = self.dispatch.outbox.clone();
        let now = outbox.now();
        // Each busy call's head is among the due ones (it stays pending while in flight), so
        // this many rows hold every idle head the free slots can take.
        let limit = free.saturating_add(self.busy.len()).max(1);
        let due = outbox.store().due(now, limit).await?;
        let idle: Vec<_> = due
            .into_iter()
            .filter(|e| !self.busy.contains(&e.call))
            .take(free)
            .collect();
        for entry in idle {
            self.spawn_entry(entry);
        }
        let next = outbox.store().next_due_at(now).await?;
        Ok(next.map(|at| outbox.clock().instant_at(at)))
    }

    /// Starts the probe: the oldest head of an idle call, whatever its own retry time (it may be
    /// minutes away after a long outage; the portal may be back any moment).
    async fn spawn_probe(&mut self) -> Result<(), StoreError> {
        let outbox = self.dispatch.outbox.clone();
        let limit = self.config().max_in_flight.saturating_mul(2).max(1);
        let heads = outbox
            .store()
            .due(chrono::DateTime::<chrono::Utc>::MAX_UTC, limit)
            .await?;
        if let Some(entry) = heads.into_iter().find(|e| !self.busy.contains(&e.call)) {
            debug!(call = %entry.call, entry = %entry.id, "probing the portal");
            self.portal.probe_started();
            self.probe = Some(self.spawn_entry(entry));
        }
        Ok(())
    }

    fn spawn_entry(&mut self, entry: crate::outbox::store::DueEntry) -> tokio::task::Id {
        self.busy.insert(entry.call.clone());
        let call = entry.call.clone();
        let dispatch = Arc::clone(&self.dispatch);
        let metrics = self.dispatch.outbox.metrics();
        let span = info_span!("outbox", call = %entry.call, entry = %entry.id);
        let handle = self.tasks.spawn(
            async move {
                OutboxMetrics::inc(&metrics.in_flight);
                let call = entry.call.clone();
                let res = dispatch.run(entry).await;
                OutboxMetrics::dec(&metrics.in_flight);
                (call, res)
            }
            .instrument(span),
        );
        self.task_calls.insert(handle.id(), call);
        handle.id()
    }

    async fn joined(
        &mut self,
        joined: Result<(tokio::task::Id, TaskOutput), tokio::task::JoinError>,
    ) {
        match joined {
            Ok((id, (call, res))) => {
                self.task_calls.remove(&id);
                self.busy.remove(&call);
                let probe = self.probe == Some(id);
                if probe {
                    self.probe = None;
                }
                match res {
                    Ok(reached) => {
                        let now = Instant::now();
                        let back = self.portal.on_result(reached, probe, now);
                        if let Some(back) = back.filter(|_| !self.draining) {
                            self.release(back).await;
                        } else if reached == Reached::Unreachable && probe {
                            debug!("portal probe failed");
                        }
                        self.publish_portal();
                    }
                    Err(err) => {
                        if probe {
                            self.portal.probe_unsent();
                        }
                        warn!(call = %call, error = &err as &dyn std::error::Error, "outbox store failed; entry stays pending");
                        self.paused_until = Some(Instant::now() + self.config().store_error_pause);
                    }
                }
            }
            Err(err) => {
                if self.probe == Some(err.id()) {
                    self.probe = None;
                    self.portal.probe_unsent();
                }
                // A panicked delivery: free its call; the entry is still pending and is
                // dispatched again (every write is safe to repeat).
                warn!(
                    error = &err as &dyn std::error::Error,
                    "outbox delivery task failed"
                );
                if let Some(call) = self.task_calls.remove(&err.id()) {
                    self.busy.remove(&call);
                }
            }
        }
    }

    /// The portal answers again: every entry waiting out its own backoff is due now, so the
    /// backlog leaves at the pace of the client's limiter (the portal's rate), oldest call first.
    async fn release(&mut self, back: Recovered) {
        let outbox = &self.dispatch.outbox;
        match outbox.store().release_retries(outbox.now()).await {
            Ok(released) => info!(
                down_ms = back.down_for.as_millis() as u64,
                probes = back.probes,
                released,
                "portal answers again; backlog released"
            ),
            Err(err) => warn!(
                error = &err as &dyn std::error::Error,
                "outbox release after the outage failed; entries keep their retry times"
            ),
        }
    }

    fn publish_portal(&self) {
        let down = u64::from(self.portal.is_down());
        let metrics = self.dispatch.outbox.metrics();
        metrics
            .portal_down
            .store(down, std::sync::atomic::Ordering::Relaxed);
    }

    async fn housekeeping(&mut self) {
        let now = Instant::now();
        if now >= self.next_progress {
            self.next_progress = now + self.config().progress_every;
            self.progress(now).await;
        }
        if now >= self.next_prune {
            self.next_prune = now + self.config().prune_every;
            let outbox = &self.dispatch.outbox;
            let before = outbox.now()
                - chrono::Duration::from_std(self.config().prune_after).unwrap_or_default();
            match outbox.store().prune(before).await {
                Ok(0) => {}
                Ok(pruned) => info!(pruned, "outbox pruned delivered entries"),
                Err(err) => warn!(
                    error = &err as &dyn std::error::Error,
                    "outbox prune failed"
                ),
            }
        }
    }

    async fn progress(&mut self, now: Instant) {
        let outbox = &self.dispatch.outbox;
        let metrics = outbox.metrics();
        let completed = metrics.completed();
        let (since, before) = self.last_progress;
        self.last_progress = (now, completed);
        let pending = match outbox.store().status(outbox.now()).await {
            Ok(report) => report.pending,
            Err(err) => {
                warn!(
                    error = &err as &dyn std::error::Error,
                    "outbox status failed"
                );
                return;
            }
        };
        let p = Progress::compute(pending, completed.saturating_sub(before), now - since);
        p.publish(&metrics);
        if p.pending > 0 || p.completed > 0 {
            let eta_secs = p.eta.map(|d| d.as_secs());
            info!(
                pending = p.pending,
                completed = p.completed,
                per_sec = p.per_sec,
                eta_secs,
                "outbox progress"
            );
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod crash_tests;
