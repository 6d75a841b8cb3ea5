//! The thin driver of one call: feeds the pure [`Call`] machine with ESL events, deadlines, the
//! lookup's result and shutdown, and executes its actions through an [`Effects`] seam (the real
//! one wraps the ESL session, the queue actor, the outbox and the Bitrix24 client).
//!
//! Failure policy: an ESL command that fails is logged and otherwise ignored (when the session is
//! gone `Disconnected` follows and ends the call), except `bridge`, whose failure is fed back as
//! a failed attempt (`DESTINATION_OUT_OF_ORDER`) so the hunt moves on; a queue request that fails
//! counts as "nobody free"; a card that cannot be pushed into the outbox is logged at error
//! (its durability is lost) and the call goes on; a failed lookup counts as "not found".

mod map;

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::call::board::BoardEntry;
use crate::call::machine::{Action, BridgeLeg, BridgeOutcome, Call, Input, Pick};
use crate::call::status::Cause;
use crate::call::why::why;
use crate::esl::event::CallEvent;
use crate::ids::{AgentId, BitrixUserId, ChannelId, ExecId, LegId, PhoneNumber};
use crate::outbox::audit::WriteCause;
use crate::outbox::op::{BitrixWrite, CallNote};
use crate::queue::{AgentInfo, Outcome};

pub(crate) use map::{MapCtx, Seen, to_input};

/// The cause fed back when the switch refused our `bridge` command itself.
const BRIDGE_COMMAND_FAILED: Cause = Cause::DESTINATION_OUT_OF_ORDER;

/// Why an effect failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EffectError {
    /// An ESL command could not be sent or was refused (`-ERR`).
    #[error("esl command {command} failed: {reason}")]
    Esl {
        /// `answer`, `bridge`, `uuid_kill`, ...
        command: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The queue actor did not answer.
    #[error("queue request {request} failed: {reason}")]
    Queue {
        /// `next_agents` or `release`.
        request: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// A card write could not be stored in the outbox.
    #[error("outbox push for {method} failed: {reason}")]
    Outbox {
        /// The Bitrix24 method of the write.
        method: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The responsible-manager lookup failed.
    #[error("lookup failed: {reason}")]
    Lookup {
        /// What went wrong.
        reason: String,
    },
}

/// One method per kind of effect a call's actions need. Generic (no `dyn`): the real
/// implementation and the tests' fake are both plain types.
pub(crate) trait Effects: Send + Sync {
    /// `set` each `(name, value)` on the caller leg.
    fn set_vars(
        &self,
        vars: Vec<(String, String)>,
    ) -> impl Future<Output = Result<(), EffectError>> + Send;
    /// `answer` the caller leg.
    fn answer(&self) -> impl Future<Output = Result<(), EffectError>> + Send;
    /// `ring_ready` on the caller leg.
    fn ring_ready(&self) -> impl Future<Output = Result<(), EffectError>> + Send;
    /// `sendmsg execute bridge` with `Event-UUID = exec`; returns once the switch accepted it.
    fn bridge(
        &self,
        exec: ExecId,
        legs: Vec<BridgeLeg>,
        simultaneous: bool,
        leg_timeout: Duration,
    ) -> impl Future<Output = Result<(), EffectError>> + Send;
    /// `uuid_kill <leg> <cause>`.
    fn kill_leg(
        &self,
        leg: LegId,
        cause: Cause,
    ) -> impl Future<Output = Result<(), EffectError>> + Send;
    /// `uuid_record <caller> start <path>` (works in the middle of a bridge).
    fn record(&self, path: PathBuf) -> impl Future<Output = Result<(), EffectError>> + Send;
    /// Hang the caller leg up with `cause`.
    fn hangup(&self, cause: Cause) -> impl Future<Output = Result<(), EffectError>> + Send;
    /// Close the session (`exit`).
    fn exit(&self) -> impl Future<Output = Result<(), EffectError>> + Send;
    /// Ask the queue actor for agents (reserved for this call); empty when nobody is free.
    fn request_agents(
        &self,
        pick: Pick,
    ) -> impl Future<Output = Result<Vec<AgentInfo>, EffectError>> + Send;
    /// Give an agent back to the queue actor.
    fn release_agent(
        &self,
        agent: AgentId,
        outcome: Outcome,
    ) -> impl Future<Output = Result<(), EffectError>> + Send;
    /// Store a card write durably in the outbox (in this call's order).
    fn card(&self, write: BitrixWrite) -> impl Future<Output = Result<(), EffectError>> + Send;
    /// [`Effects::cards`] with the event behind each write (kept for `fsb24 call show` and the
    /// card-latency metric); the default drops the causes.
    fn cards_caused(
        &self,
        writes: Vec<(BitrixWrite, WriteCause)>,
    ) -> impl Future<Output = Result<(), EffectError>> + Send {
        self.cards(writes.into_iter().map(|(write, _)| write).collect())
    }
    /// Store card writes produced together (hide, finish, attachRecord) so that a crash keeps
    /// all or none of them; the default stores them one by one.
    fn cards(
        &self,
        writes: Vec<BitrixWrite>,
    ) -> impl Future<Output = Result<(), EffectError>> + Send {
        async move {
            for write in writes {
                self.card(write).await?;
            }
            Ok(())
        }
    }
    /// Find the client's responsible manager; the driver bounds it with the lookup timeout.
    fn lookup(
        &self,
        phone: PhoneNumber,
    ) -> impl Future<Output = Result<Option<(BitrixUserId, AgentId)>, EffectError>> + Send;
}

#[cfg(test)]
/// Drives one call until its machine is finished (after `Exit` was executed), then returns.
///
/// `start` is the first input (normally [`Input::Started`]); `events` are the session's domain
/// events; `shutdown` is delivered once as [`Input::Shutdown`]. The lookup runs beside the loop
/// (events, deadlines and shutdown are handled while it runs) and is bounded by the call's
/// lookup timeout.
pub(crate) async fn run<E: Effects>(
    channel: ChannelId,
    call: Call,
    start: Input,
    events: mpsc::Receiver<CallEvent>,
    ctx: MapCtx,
    fx: E,
    shutdown: CancellationToken,
) {
    let board = BoardEntry::detached();
    run_on_board(channel, call, start, events, ctx, fx, shutdown, board).await;
}

/// [`run`], keeping `board` (the call's place on the operators' board) up to date.
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(name = "call", skip_all, fields(call = %channel))]
pub(crate) async fn run_on_board<E: Effects>(
    channel: ChannelId,
    mut call: Call,
    start: Input,
    mut events: mpsc::Receiver<CallEvent>,
    ctx: MapCtx,
    fx: E,
    shutdown: CancellationToken,
    mut board: BoardEntry,
) {
    let limit = call.lookup_timeout();
    let mut lookup = std::pin::pin!(lookup_input(&fx, None, limit));
    let (mut lookup_active, mut shutdown_seen, mut events_open) = (false, false, true);
    let mut seen = Seen::default();
    let mut inputs = VecDeque::from([start]);
    // Card writes are stored one at a time, in order, beside the loop: an outbox commit (an
    // fsync) must not hold up the next bridge or the reading of a ring's start. Awaiting them
    // inline once made hand-overs and card edges lag the phones by up to 200 ms under disk load
    // (pinned by call_queue::a_sequential_queue_moves_the_card_with_each_ring_step_*).
    let mut cards = VecDeque::new();
    let mut pushing: Option<CardPush<'_>> = None;
    // The call's first record (accepted note or register) must be durable before an agent
    // rings: a run killed after that leaves the switch ringing a call the outbox knows.
    let mut unrecorded = true;
    loop {
        let mut wanted = None;
        while let Some(input) = inputs.pop_front() {
            let now = Instant::now();
            let cause = WriteCause::now(why(&input), now);
            board.on_input(&input, now);
            let actions = call.handle(now, input);
            board.on_actions(&actions, call.card_holders(), now);
            for action in actions {
                match action {
                    Action::Card(write) => cards.push_back((stamped(write), cause.clone())),
                    action @ Action::Bridge { .. } if unrecorded => {
                        flush_cards(&fx, pushing.take(), &mut cards).await;
                        unrecorded = false;
                        inputs.extend(execute(&fx, action, events_open, &mut wanted).await);
                    }
                    // Every card is stored before the session is let go, and the recording note
                    // before the switch starts writing the file (a kill in between would
                    // leave a recording nobody attaches).
                    action @ (Action::Exit | Action::StartRecording { .. }) => {
                        flush_cards(&fx, pushing.take(), &mut cards).await;
                        inputs.extend(execute(&fx, action, events_open, &mut wanted).await);
                    }
                    action => inputs.extend(execute(&fx, action, events_open, &mut wanted).await),
                }
            }
        }
        if let Some(phone) = wanted {
            lookup.set(lookup_input(&fx, Some(phone), limit));
            lookup_active = true;
        }
        if pushing.is_none() && !cards.is_empty() {
            // Everything queued goes as one atomic push: a finish and its recording, or a hide
            // and the finish after it, survive a crash together or not at all.
            let batch: Vec<(BitrixWrite, WriteCause)> = cards.drain(..).collect();
            pushing = Some(Box::pin(fx.cards_caused(batch)) as CardPush<'_>);
        }
        if call.is_finished() && pushing.is_none() {
            break;
        }
        let deadline = call.deadline();
        if !events_open && deadline.is_none() && !lookup_active && pushing.is_none() {
            tracing::warn!("session gone and nothing left to wait for; call abandoned");
            break;
        }
        tokio::select! {
            biased;
            () = shutdown.cancelled(), if !shutdown_seen => {
                shutdown_seen = true;
                inputs.push_back(Input::Shutdown);
            }
            event = events.recv(), if events_open => {
                inputs.extend(on_event(event, &ctx, &mut seen, &mut events_open));
            }
            () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)),
                if deadline.is_some() => inputs.push_back(Input::DeadlinePassed),
            input = &mut lookup, if lookup_active => {
                lookup_active = false;
                inputs.push_back(input);
            }
            stored = async { pushing.as_mut()?.await.err() }, if pushing.is_some() => {
                pushing = None;
                card_stored(stored.map_or(Ok(()), Err));
            }
        }
    }
    tracing::debug!("call task done");
}

/// Dates an answer note now, as it happens: it is stored beside the loop, maybe much later.
fn stamped(write: BitrixWrite) -> BitrixWrite {
    match write {
        BitrixWrite::Note(CallNote::Answered { user, at: None }) => {
            BitrixWrite::Note(CallNote::Answered {
                user,
                at: Some(chrono::Utc::now()),
            })
        }
        write => write,
    }
}

/// A card write being stored in the outbox.
type CardPush<'a> = std::pin::Pin<Box<dyn Future<Output = Result<(), EffectError>> + Send + 'a>>;

/// Stores the card writes in flight and then every queued one, in order.
async fn flush_cards<E: Effects>(
    fx: &E,
    pushing: Option<CardPush<'_>>,
    cards: &mut VecDeque<(BitrixWrite, WriteCause)>,
) {
    if let Some(push) = pushing {
        card_stored(push.await);
    }
    if !cards.is_empty() {
        card_stored(fx.cards_caused(cards.drain(..).collect()).await);
    }
}

fn card_stored(result: Result<(), EffectError>) {
    if let Err(error) = result {
        tracing::error!(error = %error, "card write not stored; durability lost");
    }
}

/// Maps one received event (`None`: the stream closed) and notes a lost session.
fn on_event(
    event: Option<CallEvent>,
    ctx: &MapCtx,
    seen: &mut Seen,
    events_open: &mut bool,
) -> Vec<Input> {
    let now = Instant::now();
    match event {
        Some(CallEvent::Disconnected { reason }) => {
            tracing::info!(reason = ?reason, "session disconnected");
        }
        Some(event) => {
            seen.note(&event, now);
            if let Some(input) = seen.partner_change(&event, ctx) {
                return vec![input];
            }
            return to_input(event, ctx).into_iter().collect();
        }
        None => tracing::info!("session event stream closed"),
    }
    *events_open = false;
    seen.on_disconnect(now)
}

/// The lookup's answer as an input (`None`: the idle placeholder that never completes).
async fn lookup_input<E: Effects>(fx: &E, phone: Option<PhoneNumber>, limit: Duration) -> Input {
    let Some(phone) = phone else {
        return std::future::pending().await;
    };
    match tokio::time::timeout(limit, fx.lookup(phone)).await {
        Ok(Ok(responsible)) => Input::LookupFinished { responsible },
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "lookup failed; treated as not found");
            Input::LookupFinished { responsible: None }
        }
        Err(_) => {
            tracing::warn!(timeout = ?limit, "lookup timed out");
            Input::LookupTimedOut
        }
    }
}

/// Executes one action; returns the fact it taught us, if any. `Lookup` is only noted in
/// `wanted`: the loop starts it so that it never blocks. `session_up`: no `Disconnected` yet.
async fn execute<E: Effects>(
    fx: &E,
    action: Action,
    session_up: bool,
    wanted: &mut Option<PhoneNumber>,
) -> Option<Input> {
    let (command, result) = match action {
        Action::SetCallerVars { vars } => ("set", fx.set_vars(vars).await),
        Action::Answer => ("answer", fx.answer().await),
        Action::RingReady => ("ring_ready", fx.ring_ready().await),
        Action::Bridge {
            exec,
            legs,
            simultaneous,
            leg_timeout,
        } => return bridge(fx, exec, legs, simultaneous, leg_timeout).await,
        Action::KillLeg { leg, cause } => ("uuid_kill", fx.kill_leg(leg, cause).await),
        Action::StartRecording { path } => ("uuid_record", fx.record(path).await),
        Action::HangupCaller { cause } => ("hangup", fx.hangup(cause).await),
        Action::Exit => ("exit", fx.exit().await),
        Action::RequestAgents { pick } => return Some(offer(fx.request_agents(pick).await)),
        Action::ReleaseAgent { agent, outcome } => {
            if let Err(error) = fx.release_agent(agent.clone(), outcome).await {
                tracing::warn!(agent = %agent, error = %error, "agent release failed");
            }
            return None;
        }
        Action::Card(write) => {
            card_stored(fx.card(write).await);
            return None;
        }
        Action::Lookup { phone } => {
            *wanted = Some(phone);
            return None;
        }
    };
    match result {
        // While the session is up a failure is worth a warning; `Disconnected` follows if it is
        // gone. After that, failures are expected, and so is an `exit` racing the switch's own
        // close after the hang-up (it closes once its linger time is over).
        Err(error) if session_up && command != "exit" => {
            tracing::warn!(command, error = %error, "esl command failed; ignored");
        }
        Err(error) => tracing::debug!(command, error = %error, "esl command after disconnect"),
        Ok(()) => {}
    }
    None
}

/// Sends a bridge; a refused command becomes a failed attempt so the hunt moves on.
async fn bridge<E: Effects>(
    fx: &E,
    exec: ExecId,
    legs: Vec<BridgeLeg>,
    simultaneous: bool,
    leg_timeout: Duration,
) -> Option<Input> {
    let error = fx
        .bridge(exec.clone(), legs, simultaneous, leg_timeout)
        .await
        .err()?;
    tracing::warn!(exec = %exec, error = %error, "bridge command failed; attempt fails");
    Some(Input::BridgeEnded {
        exec,
        outcome: BridgeOutcome::Failed {
            cause: BRIDGE_COMMAND_FAILED,
            sip_status: None,
        },
    })
}

/// The queue's answer as an input; a failed request means nobody is free.
fn offer(answer: Result<Vec<AgentInfo>, EffectError>) -> Input {
    match answer {
        Ok(agents) if !agents.is_empty() => Input::AgentsOffered { agents },
        Ok(_) => Input::NoAgentFree,
        Err(error) => {
            tracing::warn!(error = %error, "queue request failed; treated as nobody free");
            Input::NoAgentFree
        }
    }
}

#[cfg(test)]
mod tests;
