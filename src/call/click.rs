//! Click-to-call (`ONEXTERNALCALLSTART`): ring the employee's phone, then bridge to the customer,
//! and mirror it onto the call Bitrix24 already registered (`Adopt`, `Show`, one `Finish`; never
//! `register`). [`machine`] decides; this driver only does the IO. Wired by [`run_click_to_call`].

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::call::spawn::CallConfigs;
use crate::call::status::Cause;
use crate::esl::command::OriginateRequest;
use crate::esl::{EslError, InboundHandle, SwitchEvent};
use crate::http::ClickToCall;
use crate::ids::{BitrixCallId, BitrixUserId, ExternalCallId, LegId};
use crate::outbox::op::{BitrixWrite, CallNote, CallWrite, FinishCall};
use crate::outbox::{Outbox, OutboxError};

pub(crate) mod dial;
pub(crate) mod hygiene;
pub(crate) mod machine;

pub use dial::{ClickDial, ClickError, CustomerRoute, agents_by_user, originate_request};
pub use hygiene::{ClickFilter, Hygiene, Verdict};

pub use machine::{ClickCall, Input, Legs, Limits, not_dialled_finish, unknown_user_finish};

/// How many recent `CALL_ID`s are remembered to drop a redelivered event.
const RECENT_CALLS: usize = 4096;

/// Everything the click-to-call task needs.
#[derive(Debug, Clone)]
pub struct ClickDeps {
    /// The config versions: Bitrix24 user -> the extension rung for them, as of the click.
    pub agents: CallConfigs,
    /// The inbound ESL connection (originate + switch events).
    pub inbound: InboundHandle,
    /// The durable Bitrix24 write queue.
    pub outbox: Outbox,
    /// Dial settings.
    pub dial: ClickDial,
}

/// Runs click-to-calls from `rx` (one tracked task each) until `shutdown` or the channel closes.
/// A `CALL_ID` seen before is dropped (Bitrix24 may redeliver an event, and deliver it both
/// online and offline): in this run by memory, across restarts by the outbox, where the
/// click's `Adopt` is stored before anything else happens (see [`claim`]). A click too old, or
/// repeating one just dialled, is finished without dialling (see [`hygiene`]).
pub async fn run_click_to_call(
    mut rx: mpsc::Receiver<ClickToCall>,
    deps: ClickDeps,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let deps = Arc::new(deps);
    let mut recent = Recent::default();
    let mut filter = ClickFilter::new(deps.dial.hygiene);
    loop {
        let click = tokio::select! {
            () = shutdown.cancelled() => break,
            click = rx.recv() => match click {
                Some(click) => click,
                None => break,
            },
        };
        if !recent.insert(&click.call_id) {
            info!(
                call_id = click.call_id.as_str(),
                "duplicate click-to-call ignored"
            );
            continue;
        }
        if !claim(&deps.outbox, &click.call_id).await {
            continue;
        }
        let span =
            info_span!("click_to_call", call_id = click.call_id.as_str(), user = %click.user);
        let now_unix = deps.outbox.now().timestamp();
        let reason = match filter.check(Instant::now(), now_unix, &click) {
            Verdict::Dial => {
                tracker
                    .spawn(one_call(Arc::clone(&deps), click, shutdown.clone()).instrument(span));
                continue;
            }
            Verdict::Stale { age } => {
                let max_age_secs = deps.dial.hygiene.max_age.as_secs();
                span.in_scope(|| {
                    warn!(
                        age_secs = age.as_secs(),
                        max_age_secs, "click-to-call event too old; not dialled"
                    )
                });
                format!(
                    "click arrived {} s after it was made: not dialled",
                    age.as_secs()
                )
            }
            Verdict::Repeated { after } => {
                let after_ms = after.as_millis() as u64;
                span.in_scope(|| {
                    info!(after_ms, "same user and number clicked again; dialled once")
                });
                format!("same number clicked again {after_ms} ms later: dialled once")
            }
        };
        tracker.spawn(not_dialled(Arc::clone(&deps), click, reason).instrument(span));
    }
}

/// Finishes Bitrix24's call of a click that is not dialled, so it does not stay open.
async fn not_dialled(deps: Arc<ClickDeps>, click: ClickToCall, reason: String) {
    let finish = not_dialled_finish(click.user, deps.dial.add_to_chat, reason);
    let key = click_call_key(&click.call_id);
    let _ = push(&deps.outbox, &key, BitrixWrite::Finish(finish)).await;
}

/// Takes the click with `call_id` for this installation: `false` when an earlier run (or an
/// earlier delivery) already stored it, or when the store fails (logged). Otherwise stores its
/// `Adopt` (the call's first write, fsync'd) and returns `true`: from then on the `CALL_ID` is
/// known across restarts, and the offline poller may clear the event.
async fn claim(outbox: &Outbox, call_id: &BitrixCallId) -> bool {
    let key = click_call_key(call_id);
    match outbox.knows(&key).await {
        Ok(true) => {
            info!(
                call_id = call_id.as_str(),
                "click-to-call taken before (another delivery or an earlier run); ignored"
            );
            return false;
        }
        Ok(false) => {}
        Err(e) => {
            error!(error = %e, call_id = call_id.as_str(), "click-to-call not checked");
            return false;
        }
    }
    let adopt = BitrixWrite::Adopt {
        call_id: call_id.clone(),
    };
    push(outbox, &key, adopt).await.is_ok()
}

#[derive(Default)]
struct Recent {
    order: VecDeque<BitrixCallId>,
    set: HashSet<BitrixCallId>,
}

impl Recent {
    fn insert(&mut self, id: &BitrixCallId) -> bool {
        if !self.set.insert(id.clone()) {
            return false;
        }
        self.order.push_back(id.clone());
        if self.order.len() > RECENT_CALLS
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

/// The outbox key of a click-to-call: stable for its `CALL_ID`.
pub fn click_call_key(call_id: &BitrixCallId) -> ExternalCallId {
    ExternalCallId::new(format!("c2c-{call_id}"))
}

async fn one_call(deps: Arc<ClickDeps>, click: ClickToCall, shutdown: CancellationToken) {
    let key = click_call_key(&click.call_id);
    let lookups = deps.agents.current();
    let Some(ext) = lookups.click_extension(click.user) else {
        warn!("no agent for the bitrix user: call cancelled");
        let finish = unknown_user_finish(click.user, deps.dial.add_to_chat);
        let _ = push(&deps.outbox, &key, BitrixWrite::Finish(finish)).await;
        return;
    };
    let legs = Legs {
        agent: LegId::random(),
        customer: LegId::random(),
    };
    let show = BitrixWrite::Show {
        users: vec![click.user],
    };
    // Stored before the originate: a run killed mid-call leaves recovery the leg to ask about.
    let channel = BitrixWrite::Note(CallNote::Channel {
        channel: legs.agent.clone().into(),
    });
    if let Err(e) = deps
        .outbox
        .push_all(CallWrite::all(&key, [show, channel]))
        .await
    {
        error!(error = %e, "click-to-call card not stored");
    }
    let finish = match originate_request(&deps.dial, ext, &click.phone, &legs) {
        Ok(request) => follow(&deps, click.user, legs, &request, &shutdown).await,
        Err(e) => {
            error!(error = %e, "click-to-call dial string refused");
            let mut call = ClickCall::new(
                Instant::now(),
                click.user,
                legs,
                deps.dial.limits,
                deps.dial.add_to_chat,
            );
            call.handle(
                Instant::now(),
                Input::OriginateNotSent {
                    reason: e.to_string(),
                },
            )
        }
    };
    if let Some(finish) = finish {
        info!(status = %finish.status_code, duration = finish.duration_secs, "click-to-call finished");
        let _ = push(&deps.outbox, &key, BitrixWrite::Finish(finish)).await;
    }
}

/// Sends the originate and follows both legs until the machine finishes the call; `None` on
/// shutdown (the call goes on in the switch and stays open for the next run).
async fn follow(
    deps: &ClickDeps,
    user: BitrixUserId,
    legs: Legs,
    request: &OriginateRequest,
    shutdown: &CancellationToken,
) -> Option<FinishCall> {
    let mut events = deps.inbound.subscribe();
    let mut call = ClickCall::new(
        Instant::now(),
        user,
        legs.clone(),
        deps.dial.limits,
        deps.dial.add_to_chat,
    );
    info!(agent_leg = %legs.agent, customer_leg = %legs.customer, "ringing the agent");
    let originate = deps.inbound.originate(request);
    tokio::pin!(originate);
    let mut job_done = false;
    loop {
        let wake = call.wake_at()?;
        // Biased: results and events already received are used before a shutdown.
        let input = tokio::select! {
            biased;
            result = &mut originate, if !job_done => {
                job_done = true;
                match originate_input(result) {
                    Some(input) => input,
                    None => continue,
                }
            }
            event = events.recv() => match event {
                Ok(event) => match leg_input(&legs, event) {
                    Some(input) => input,
                    None => continue,
                },
                Err(broadcast::error::RecvError::Lagged(lost)) => {
                    warn!(lost, "click-to-call lost switch events");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => Input::GiveUp,
            },
            () = tokio::time::sleep_until(wake) => Input::Timer,
            () = shutdown.cancelled() => {
                // The switch goes on with both legs (a restart never cuts a conversation):
                // the call stays open in the outbox, and the next run follows the employee's
                // leg (its Channel note) to the end and finishes it with what happened.
                info!("shutdown: the call goes on in the switch; the next run finishes it");
                return None;
            }
        };
        if let Some(finish) = call.handle(Instant::now(), input) {
            return Some(finish);
        }
    }
}

fn originate_input(result: Result<crate::ids::ChannelId, EslError>) -> Option<Input> {
    match result {
        Ok(_) => {
            info!("agent answered");
            Some(Input::OriginateAnswered)
        }
        Err(EslError::OriginateFailed { cause }) => {
            info!(reason = %cause, "agent phone failed");
            Some(Input::OriginateFailed { cause })
        }
        // The job may still be running: keep following the legs (the deadline bounds it).
        Err(e @ (EslError::Timeout { .. } | EslError::Closed { .. })) => {
            warn!(error = %e, "originate result unknown");
            None
        }
        Err(e) => {
            error!(error = %e, "originate not sent");
            Some(Input::OriginateNotSent {
                reason: e.to_string(),
            })
        }
    }
}

fn leg_input(legs: &Legs, event: SwitchEvent) -> Option<Input> {
    let ours = |id: &str| id == legs.agent.as_str() || id == legs.customer.as_str();
    match event {
        SwitchEvent::ChannelCreated { channel, .. } if ours(channel.as_str()) => {
            Some(Input::LegCreated {
                leg: channel.as_str().to_owned(),
            })
        }
        SwitchEvent::LegAnswered { leg, .. } if ours(leg.as_str()) => {
            debug!(leg = %leg, "leg answered");
            Some(Input::LegAnswered {
                leg: leg.as_str().to_owned(),
            })
        }
        SwitchEvent::ChannelHangupComplete {
            channel,
            cause,
            sip_term_status,
            ..
        } if ours(channel.as_str()) => {
            debug!(leg = %channel, cause = %cause, "leg ended");
            Some(Input::LegEnded {
                leg: channel.as_str().to_owned(),
                cause: Cause::from(cause),
                sip_term_status,
            })
        }
        _ => None,
    }
}

async fn push(
    outbox: &Outbox,
    call: &ExternalCallId,
    write: BitrixWrite,
) -> Result<(), OutboxError> {
    let kind = crate::outbox::store::kind_of(&write);
    outbox
        .push(CallWrite {
            call: call.clone(),
            write,
        })
        .await
        .map(|_| ())
        .inspect_err(|e| error!(error = %e, write = kind, "click-to-call write not stored"))
}
