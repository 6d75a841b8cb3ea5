//! Outgoing calls an employee dials from a desk phone: the dialplan hands them over marked
//! `fsb24_call=outgoing` (dialplan/fsb24.xml), [`plan`] decides from the config whether and how
//! fsb24 places them (pure), and [`run`] bridges the employee's leg through the configured
//! gateway or profile and mirrors it on Bitrix24 as `register TYPE=1` and one `finish`.
//! Every write goes through the outbox; the decisions are in [`machine`].

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::call::board::BoardEntry;
use crate::call::click::CustomerRoute;
use crate::call::effects::Dialer;
use crate::call::machine::Input;
use crate::call::status::{Cause, Direction, sip_code_for_cause};
use crate::call::task::{MapCtx, Seen, to_input};
use crate::config::Config;
use crate::esl::event::CallEvent;
use crate::esl::{ChannelInfo, DialLeg, DialString, HangupCause, MediaPath, SessionHandle, VarSet};
use crate::ids::{AgentId, BitrixUserId, ExecId, ExternalCallId, LegId, PhoneNumber};
use crate::outbox::Outbox;
use crate::outbox::op::{BitrixWrite, CallType, CallWrite, FinishCall, RegisterCall};
use crate::recording::RecordingVars;

pub(crate) mod machine;

pub(crate) use machine::{Action, OutgoingCall, OutgoingSettings};

/// The channel variable the dialplan sets on a call it hands to fsb24 as outgoing.
pub(crate) const KIND_VAR: &str = "fsb24_call";
/// Its value for an outgoing call.
pub(crate) const KIND_OUTGOING: &str = "outgoing";
/// Optional: the employee's extension, when the caller id is not it.
pub(crate) const EXTENSION_VAR: &str = "fsb24_extension";
/// Set by fsb24 on the channel once it places the call: the dialplan's fallback after `socket`
/// then hangs up instead of dialling the number a second time (fsb24 went away mid-call).
pub(crate) const PLACED_VAR: &str = "fsb24_placed";
/// FreeSWITCH's switch that keeps a caller up when its bridge fails.
const CONTINUE_ON_FAIL: &str = "continue_on_fail";
/// The cause an implausible number is refused with (the phone shows 484).
const INVALID_NUMBER: Cause = Cause::INVALID_NUMBER_FORMAT;

/// The channel variables the outbound session must copy for this module.
pub(crate) fn variables() -> [&'static str; 2] {
    [KIND_VAR, EXTENSION_VAR]
}

/// Whether the dialplan handed this channel over as an outgoing call.
pub(crate) fn is_outgoing(info: &ChannelInfo) -> bool {
    info.variables.get(KIND_VAR).map(String::as_str) == Some(KIND_OUTGOING)
}

/// What to do with an outgoing call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Not for fsb24 (outgoing calls off, an unknown extension, an unreported internal call):
    /// hand the call back; the dialplan's fallback places it unreported.
    HandBack(&'static str),
    /// The number is not one to dial: report the attempt (if it is a number at all), then hang
    /// the employee up with `INVALID_NUMBER_FORMAT`. Nothing is dialled.
    Refuse(Option<(RegisterCall, FinishCall)>),
    /// Place the call.
    Place(Box<Placement>),
}

/// A call fsb24 places: its register, its one leg and the machine's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placement {
    /// `register TYPE=1`, stored before anything is dialled.
    pub register: RegisterCall,
    /// The dialled leg (checked parts only).
    pub dial: DialLeg,
    /// The machine's settings.
    pub settings: OutgoingSettings,
}

/// The `register` of a call placed for `user` (outgoing or forwarded): started when the switch
/// created the channel (now, if it did not say), on `line` or else the portal's default line,
/// creating CRM records as `[bitrix.defaults]` says. Pure but for that fallback time.
pub(crate) fn placed_register(
    config: &Config,
    info: &ChannelInfo,
    user: BitrixUserId,
    phone: PhoneNumber,
    call_type: CallType,
    line: Option<&String>,
    show: bool,
) -> RegisterCall {
    let started_at: DateTime<Utc> = info.created_at.unwrap_or_else(Utc::now);
    RegisterCall {
        user,
        phone,
        call_type,
        line_number: line
            .cloned()
            .or_else(|| config.bitrix.defaults.line_number.clone()),
        started_at: started_at.fixed_offset(),
        crm_create: config.bitrix.defaults.crm_create,
        show,
        crm: None,
    }
}

/// Decides from the config how the outgoing call on `info` goes. `leg` becomes the dialled
/// leg's `origination_uuid`. Pure: ids and time come in.
pub(crate) fn plan(config: &Config, info: &ChannelInfo, leg: LegId) -> Plan {
    let out = &config.outgoing;
    if !out.enabled {
        return Plan::HandBack("outgoing calls are off");
    }
    let extension = info
        .variables
        .get(EXTENSION_VAR)
        .or(info.caller_id_number.as_ref());
    let Some(agent) =
        extension.and_then(|e| config.agents.iter().find(|a| a.extension.as_str() == e))
    else {
        return Plan::HandBack("the calling extension is no agent");
    };
    let dialled = info.destination_number.as_deref().unwrap_or_default();
    let colleague = config
        .agents
        .iter()
        .find(|a| a.extension.as_str() == dialled);
    if colleague.is_some() && !out.report_internal {
        return Plan::HandBack("internal call, not reported");
    }
    let Ok(number) = config.numbers.parse(dialled) else {
        return Plan::Refuse(None);
    };
    let register = placed_register(
        config,
        info,
        agent.bitrix_user,
        number.clone(),
        CallType::Outgoing,
        out.line_number.as_ref(),
        out.show_card,
    );
    let dial = match colleague {
        Some(c) => Dialer::new(config.esl.dial.clone())
            .target(c.extension.as_str())
            .and_then(|endpoint| DialLeg::new(leg, endpoint)),
        None if !config.numbers.is_plausible(&number) => {
            let add_to_chat = config.bitrix.defaults.add_to_chat;
            return Plan::Refuse(Some(refused(register, add_to_chat)));
        }
        None => match out.customer.as_ref().map(CustomerRoute::from_config) {
            Some(Ok(route)) => route.leg(
                leg,
                &number,
                out.ring_timeout,
                out.caller_id_number.as_ref(),
            ),
            _ => return Plan::HandBack("no usable gateway or profile"),
        },
    };
    let Ok(dial) = dial else {
        return Plan::HandBack("the dial string was refused");
    };
    let settings = settings(config, info, &register, &agent.id, Direction::Outbound);
    Plan::Place(Box::new(Placement {
        register,
        dial,
        settings,
    }))
}

/// The machine's settings for a call registered as `register`, talked by `agent`: the
/// recording path (`[recording]`, the client's number as `{caller}`) and the finish options.
pub(crate) fn settings(
    config: &Config,
    info: &ChannelInfo,
    register: &RegisterCall,
    agent: &AgentId,
    direction: Direction,
) -> OutgoingSettings {
    let record = config.recording.enabled.then(|| {
        config.recording.path_template.render(&RecordingVars {
            call: info.channel.as_str(),
            started_at: register.started_at,
            caller: register.phone.as_str(),
            destination: register.line_number.as_deref().unwrap_or_default(),
            agent: agent.as_str(),
        })
    });
    OutgoingSettings {
        user: register.user,
        add_to_chat: config.bitrix.defaults.add_to_chat,
        record,
        record_wait: config.recording.wait_after_hangup,
        direction,
    }
}

/// The register (no card) and finish of a number that is not dialled.
fn refused(mut register: RegisterCall, add_to_chat: bool) -> (RegisterCall, FinishCall) {
    register.show = false;
    let finish = FinishCall {
        user: register.user,
        duration_secs: 0,
        status_code: sip_code_for_cause(&INVALID_NUMBER).to_string(),
        add_to_chat,
        failed_reason: Some(format!(
            "{} is not a plausible number: not dialled",
            register.phone
        )),
    };
    (register, finish)
}

/// One outgoing call's session, its outbox key and the outbox.
pub(crate) struct OutgoingSession {
    /// The employee's leg, under the `socket` app.
    pub session: SessionHandle,
    /// Its events.
    pub events: mpsc::Receiver<CallEvent>,
    /// `EXTERNAL_CALL_ID` of the call (`fs-<uuid>`).
    pub key: ExternalCallId,
    /// The durable Bitrix24 write queue.
    pub outbox: Outbox,
    /// The call's place on the operators' board (phase, outcome metric).
    pub board: BoardEntry,
}

/// Executes `plan` on the session until the call is finished (or `shutdown` lets it go).
#[tracing::instrument(name = "outgoing", skip_all, fields(call = %call.key))]
pub(crate) async fn run(call: OutgoingSession, plan: Plan, shutdown: CancellationToken) {
    match plan {
        Plan::HandBack(why) => {
            info!(why, "outgoing call handed back to the dialplan");
            exit(&call.session).await;
        }
        Plan::Refuse(report) => {
            warn!("dialled number is not plausible; not dialled");
            if let Some((register, finish)) = report {
                let writes = vec![BitrixWrite::Register(register), BitrixWrite::Finish(finish)];
                store(&call, writes).await;
            }
            hangup(&call.session, &INVALID_NUMBER).await;
            exit(&call.session).await;
        }
        Plan::Place(placement) => place(call, *placement, shutdown).await,
    }
}

async fn place(mut call: OutgoingSession, placement: Placement, shutdown: CancellationToken) {
    let Placement {
        register,
        dial,
        settings,
    } = placement;
    info!(user = %register.user, call_type = ?register.call_type, "external leg placed");
    // Durable before anything is dialled: a run killed from here on leaves the next start a
    // register to finish (call::recover).
    store(&call, vec![BitrixWrite::Register(register)]).await;
    // A failed bridge must leave the employee's leg to us (the switch would hang it up at once,
    // as if they gave up: b2_bridge_unregistered_and_unknown_user.txt); each variable in a
    // command of its own, as for inbound calls.
    for name in [CONTINUE_ON_FAIL, PLACED_VAR] {
        let set = VarSet::new().with(name, "true");
        if let Ok(vars) = set
            && let Err(e) = call.session.set_vars(&vars).await
        {
            warn!(error = %e, variable = name, "channel variable not set");
        }
    }
    let exec = ExecId::random();
    let mut machine = OutgoingCall::new(settings, exec.clone());
    let mut inputs = Vec::new();
    if let Err(e) = call
        .session
        .bridge(exec.clone(), &DialString::single(dial))
        .await
    {
        error!(error = %e, "bridge to the called number refused");
        inputs.push(Input::BridgeEnded {
            exec,
            outcome: crate::call::machine::BridgeOutcome::Failed {
                cause: Cause::DESTINATION_OUT_OF_ORDER,
                sip_status: None,
            },
        });
    }
    follow(&mut call, &mut machine, inputs, &shutdown).await;
}

/// Feeds the machine until it is done.
async fn follow(
    call: &mut OutgoingSession,
    machine: &mut OutgoingCall,
    mut inputs: Vec<Input>,
    shutdown: &CancellationToken,
) {
    let ctx = MapCtx::default();
    let mut seen = Seen::default();
    let (mut open, mut stop_seen) = (true, false);
    loop {
        for input in std::mem::take(&mut inputs) {
            let now = Instant::now();
            call.board.on_input(&input, now);
            for action in machine.handle(now, input) {
                note_finish(&mut call.board, &action, now);
                execute(call, action).await;
            }
        }
        if machine.is_done() {
            return;
        }
        let deadline = machine.deadline();
        if !open && deadline.is_none() {
            warn!("session gone and nothing left to wait for; call abandoned");
            return;
        }
        tokio::select! {
            biased;
            () = shutdown.cancelled(), if !stop_seen => {
                stop_seen = true;
                inputs.push(Input::Shutdown);
            }
            event = call.events.recv(), if open => match event {
                Some(CallEvent::Disconnected { .. }) | None => {
                    open = false;
                    inputs.extend(seen.on_disconnect(Instant::now()));
                }
                Some(event) => {
                    seen.note(&event, Instant::now());
                    inputs.extend(to_input(event, &ctx));
                }
            },
            () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)),
                if deadline.is_some() => inputs.push(Input::DeadlinePassed),
        }
    }
}

/// Tells the board how the call ended (its outcome label), from the finish being stored.
fn note_finish(board: &mut BoardEntry, action: &Action, now: Instant) {
    let Action::Cards(writes) = action else {
        return;
    };
    let finishes: Vec<crate::call::machine::Action> = writes
        .iter()
        .filter(|w| matches!(w, BitrixWrite::Finish(_)))
        .map(|w| crate::call::machine::Action::Card(w.clone()))
        .collect();
    if !finishes.is_empty() {
        board.on_actions(&finishes, &[], now);
    }
}

async fn execute(call: &OutgoingSession, action: Action) {
    match action {
        Action::Cards(writes) => store(call, writes).await,
        Action::StartRecording(path) => record(&call.session, &path).await,
        Action::HangupAgent(cause) => hangup(&call.session, &cause).await,
        Action::Exit => exit(&call.session).await,
    }
}

async fn store(call: &OutgoingSession, writes: Vec<BitrixWrite>) {
    let writes = CallWrite::all(&call.key, writes);
    if let Err(e) = call.outbox.push_all(writes).await {
        error!(error = %e, "outgoing call write not stored; durability lost");
    }
}

async fn record(session: &SessionHandle, path: &std::path::Path) {
    let text = path.to_string_lossy();
    let Ok(media) = MediaPath::parse(&text) else {
        warn!("recording path refused");
        return;
    };
    if let Some(dir) = path.parent()
        && let Err(e) = tokio::fs::create_dir_all(dir).await
    {
        // FreeSWITCH does not create directories; a missing one loses the recording.
        warn!(error = %e, "cannot create recording directory");
    }
    if let Err(e) = session.record_start(&media).await {
        warn!(error = %e, "recording not started");
    }
}

async fn hangup(session: &SessionHandle, cause: &Cause) {
    // A cause the switch would not know ends the leg as a plain clearing.
    let cause = cause
        .as_str()
        .parse::<HangupCause>()
        .unwrap_or(HangupCause::NormalClearing);
    if let Err(e) = session.hangup(cause).await {
        debug!(error = %e, "hangup after the session ended");
    }
}

async fn exit(session: &SessionHandle) {
    if let Err(e) = session.exit().await {
        debug!(error = %e, "exit after the session ended");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
