//! The batching task: collects commands from all calls for a short window, sends them as
//! `batch` requests of at most 50 when the rate limiter has room, and hands each result back
//! through its oneshot. Requests in flight are futures polled by this task (nothing detached).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::batch::{self, Command, Pending, Planned};
use super::error::{BitrixError, ErrorKind};
use super::transport::{Body, Transport};
use super::wire::{BATCH_MAX, BatchResult, Method};

/// Where a command's result goes.
pub(crate) type Reply = oneshot::Sender<Result<Value, BitrixError>>;

/// A command handed to the batcher.
pub(crate) struct Queued {
    pub(crate) command: Command,
    pub(crate) reply: Reply,
}

/// Tuning of the batcher.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatcherSettings {
    pub(crate) window: Duration,
    pub(crate) max_in_flight: usize,
}

type InFlight = FuturesUnordered<BoxFuture<'static, ()>>;

/// Runs until every client handle is dropped and the queue is empty, or until `shutdown`.
/// On shutdown, queued commands fail with [`BitrixError::Shutdown`] and requests in flight are
/// abandoned (their callers see `Shutdown` too); the outbox still holds them durably.
pub(crate) async fn run(
    transport: Arc<Transport>,
    mut rx: mpsc::Receiver<Queued>,
    settings: BatcherSettings,
    shutdown: CancellationToken,
) {
    let mut pending: Pending<Reply> = Pending::default();
    let mut in_flight: InFlight = FuturesUnordered::new();
    let mut hold: Option<Instant> = None;
    let mut open = true;
    loop {
        let due = if in_flight.len() < settings.max_in_flight {
            pending.due_at(settings.window)
        } else {
            None
        };
        let due = match (due, hold) {
            (Some(d), Some(h)) => Some(d.max(h)),
            (d, _) => d,
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            msg = rx.recv(), if open => match msg {
                Some(q) => pending.push(q.command, q.reply, Instant::now()),
                None => open = false,
            },
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            () = sleep_until_opt(due) => {
                match transport.try_acquire() {
                    Err(wait) => hold = Some(Instant::now() + wait),
                    Ok(()) => {
                        hold = None;
                        let planned = pending.take(BATCH_MAX);
                        if planned.is_empty() {
                            continue;
                        }
                        in_flight.push(Box::pin(send(Arc::clone(&transport), planned)));
                    }
                }
            }
        }
        if !open && pending.is_empty() && in_flight.is_empty() {
            return;
        }
    }
    for (command, reply) in pending.drain_all() {
        let _ = reply.send(Err(BitrixError::Shutdown {
            method: command.method.name(),
        }));
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Sends one flush (room in the limiter already taken) and answers every waiter.
async fn send(transport: Arc<Transport>, planned: Vec<Planned<Reply>>) {
    // Methods whose operating budget is exhausted fail here without being sent.
    let mut sendable = Vec::with_capacity(planned.len());
    for p in planned {
        match transport.check_held(p.command.method) {
            Ok(()) => sendable.push(p),
            Err(err) => answer(vec![p], vec![Err(err)]),
        }
    }
    let planned = sendable;
    if planned.is_empty() {
        return;
    }
    debug!(commands = planned.len(), "sending batch");
    for key in planned.iter().filter_map(|p| p.command.key.as_ref()) {
        transport.metrics.on_wire(key);
    }
    if let [single] = planned.as_slice() {
        // One command needs no `batch` envelope, and its errors keep their HTTP status.
        let result = transport
            .exchange(
                single.command.method,
                &Body::Json(single.command.params.clone()),
                true,
            )
            .await;
        answer(planned, vec![result.map(|a| a.result)]);
        return;
    }
    let commands: Vec<&Command> = planned.iter().map(|p| &p.command).collect();
    let methods: Vec<Method> = commands.iter().map(|c| c.method).collect();
    let params = batch::build(&commands);
    let results = match serde_json::to_value(&params) {
        Err(e) => vec![Err(BitrixError::decode(Method::Batch.name(), e)); methods.len()],
        Ok(body) => match transport
            .exchange(Method::Batch, &Body::Json(body), true)
            .await
        {
            Err(e) => vec![Err(e); methods.len()],
            Ok(a) => match serde_json::from_value::<BatchResult>(a.result) {
                Ok(parsed) => {
                    let results = batch::split(parsed, &methods);
                    for (method, result) in methods.iter().zip(&results) {
                        if let Err(e) = result
                            && e.kind() == Some(ErrorKind::OperationTimeLimit)
                        {
                            transport.hold(method.name());
                        }
                    }
                    results
                }
                Err(e) => vec![Err(BitrixError::decode(Method::Batch.name(), e)); methods.len()],
            },
        },
    };
    answer(planned, results);
}

fn answer(planned: Vec<Planned<Reply>>, results: Vec<Result<Value, BitrixError>>) {
    for (p, result) in planned.into_iter().zip(results) {
        for waiter in p.waiters {
            // A waiter that gave up is no error here.
            let _ = waiter.send(result.clone());
        }
    }
}
