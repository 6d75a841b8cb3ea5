//! Callback forms (`ONEXTERNALCALLBACKSTART`): fsb24 calls the customer first and, once they
//! answer, hands the call to `[events] callback_queue` through its own `socket` listener. From
//! there it is an inbound call like any other (the queue, the cards of the ringing agents, one
//! `finish`), registered as `TYPE=4` with the form's line and CRM entity (see
//! [`crate::call::route::resolve_callback`]). Bitrix24 gives a callback no `CALL_ID`: the one its
//! `register` returns is the call's, and the `finish` uses it.
//!
//! A customer who does not answer rings no agent: the call is registered (`TYPE=4`, no card)
//! and finished at once with the status of the failed attempt (`480`, `486`, ...), for
//! `bitrix.defaults.missed_call_owner`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::FixedOffset;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, info_span, warn};

use crate::call::click::CustomerRoute;
use crate::call::status::{Attempt, Cause, Direction, MissedStatus, finish_status};
use crate::esl::command::{CommandError, OriginateRequest, OriginateThen, whole_secs};
use crate::esl::{EslError, InboundHandle};
use crate::http::CallbackRequest;
use crate::ids::{BitrixUserId, ChannelId, LegId, PhoneNumber};
use crate::outbox::op::{BitrixWrite, CallType, CallWrite, CrmBinding, FinishCall, RegisterCall};
use crate::outbox::{Outbox, external_call_id};

/// The channel variables that mark a callback's customer leg; the outbound session copies them
/// and [`crate::call::route::resolve_callback`] reads them back.
pub(crate) mod vars {
    use std::collections::HashMap;

    use crate::bitrix::wire::CrmEntityType;
    use crate::outbox::op::CrmBinding;

    /// Present on every callback leg.
    pub(crate) const MARK: &str = "fsb24_callback";
    /// The customer's number (E.164 form).
    pub(crate) const NUMBER: &str = "fsb24_callback_number";
    /// The form's line (`LINE_NUMBER`).
    pub(crate) const LINE: &str = "fsb24_callback_line";
    /// The form's CRM entity type.
    pub(crate) const CRM_TYPE: &str = "fsb24_callback_crm_type";
    /// The form's CRM entity id.
    pub(crate) const CRM_ID: &str = "fsb24_callback_crm_id";
    /// All of them.
    pub(crate) const ALL: [&str; 5] = [MARK, NUMBER, LINE, CRM_TYPE, CRM_ID];

    /// Whether `vars` are a callback leg's (fsb24 set [`MARK`] when it dialled the customer).
    pub(crate) fn is_marked(vars: &HashMap<String, String>) -> bool {
        vars.contains_key(MARK)
    }

    /// The CRM entity carried by `vars`, if both halves are there and valid.
    pub(crate) fn crm(vars: &HashMap<String, String>) -> Option<CrmBinding> {
        let kind = CrmEntityType::parse(vars.get(CRM_TYPE)?)?;
        let id = vars.get(CRM_ID)?.parse::<u64>().ok().filter(|id| *id > 0)?;
        Some(CrmBinding {
            entity_type: kind,
            entity_id: id,
        })
    }
}

/// The same number asked for again within this is called once (a form submitted twice, or a
/// form delivered both online and offline: callbacks carry no id to tell them apart).
const REPEAT_WINDOW: Duration = Duration::from_secs(60);

/// Everything the callback task needs.
#[derive(Debug, Clone)]
pub(crate) struct CallbackDeps {
    /// The inbound ESL connection (originate).
    pub inbound: InboundHandle,
    /// The durable Bitrix24 write queue (a customer who did not answer).
    pub outbox: Outbox,
    /// How the customer is reached (`[click_to_call]` gateway or profile + host).
    pub customer: CustomerRoute,
    /// Caller id shown to the customer (`[click_to_call] caller_id_number`).
    pub caller_id_number: Option<PhoneNumber>,
    /// How long the customer's phone rings.
    pub ring: Duration,
    /// Where FreeSWITCH reaches fsb24's `socket` listener.
    pub socket: SocketAddr,
    /// Who a callback nobody answered is finished for.
    pub owner: BitrixUserId,
    /// `ADD_TO_CHAT`.
    pub add_to_chat: bool,
    /// `LINE_NUMBER` when the form names none.
    pub default_line: Option<String>,
}

/// Runs callbacks from `rx` (one tracked task each) until `shutdown` or the channel closes.
pub(crate) async fn run_callbacks(
    mut rx: mpsc::Receiver<CallbackRequest>,
    deps: CallbackDeps,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let deps = Arc::new(deps);
    let mut recent: HashMap<PhoneNumber, Instant> = HashMap::new();
    loop {
        let request = tokio::select! {
            () = shutdown.cancelled() => break,
            request = rx.recv() => match request {
                Some(request) => request,
                None => break,
            },
        };
        let now = Instant::now();
        recent.retain(|_, at| now.duration_since(*at) < REPEAT_WINDOW);
        if recent.insert(request.phone.clone(), now).is_some() {
            info!("callback to the same number again within a minute; called once");
            continue;
        }
        let leg = LegId::random();
        let span = info_span!("callback", leg = %leg);
        tracker.spawn(one_callback(Arc::clone(&deps), request, leg).instrument(span));
    }
}

async fn one_callback(deps: Arc<CallbackDeps>, request: CallbackRequest, leg: LegId) {
    let started_at = deps.outbox.now().fixed_offset();
    let request_line = request
        .line_number
        .clone()
        .or_else(|| deps.default_line.clone());
    let originate = match originate_request(&deps, &request, request_line.as_deref(), &leg) {
        Ok(originate) => originate,
        Err(e) => {
            error!(error = %e, "callback dial string refused");
            let cause = Cause::INVALID_NUMBER_FORMAT;
            return not_answered(&deps, &request, request_line, &leg, started_at, cause).await;
        }
    };
    info!("calling the customer back");
    match deps.inbound.originate(&originate).await {
        Ok(_) => info!("customer answered; handed to the callback queue"),
        Err(EslError::OriginateFailed { cause }) => {
            info!(%cause, "customer did not answer");
            not_answered(&deps, &request, request_line, &leg, started_at, cause).await;
        }
        // The job may still run: if the customer answers, the call arrives at the socket.
        Err(e @ (EslError::Timeout { .. } | EslError::Closed { .. })) => {
            warn!(error = %e, "callback originate result unknown");
        }
        Err(e) => {
            error!(error = %e, "callback originate not sent");
            let cause = Cause::DESTINATION_OUT_OF_ORDER;
            not_answered(&deps, &request, request_line, &leg, started_at, cause).await;
        }
    }
}

/// `originate [vars]<customer> '&socket(<fsb24> async full)'`.
fn originate_request(
    deps: &CallbackDeps,
    request: &CallbackRequest,
    line: Option<&str>,
    leg: &LegId,
) -> Result<OriginateRequest, CommandError> {
    let phone = &request.phone;
    let mut dial = deps
        .customer
        .leg(
            leg.clone(),
            phone,
            deps.ring,
            deps.caller_id_number.as_ref(),
        )?
        .var(vars::MARK, "1")?
        .var(vars::NUMBER, phone.as_str())?;
    if let Some(line) = line {
        dial = dial.var(vars::LINE, line)?;
    }
    if let Some((kind, id)) = request.crm {
        dial = dial
            .var(vars::CRM_TYPE, kind.as_str())?
            .var(vars::CRM_ID, &id.to_string())?;
    }
    Ok(OriginateRequest {
        leg: dial,
        then: OriginateThen::Socket(deps.socket),
        timeout_secs: whole_secs(deps.ring),
    })
}

/// Registers the callback without a card and finishes it with the failed attempt's status.
async fn not_answered(
    deps: &CallbackDeps,
    request: &CallbackRequest,
    line: Option<String>,
    leg: &LegId,
    started_at: chrono::DateTime<FixedOffset>,
    cause: Cause,
) {
    let key = external_call_id(&ChannelId::new(leg.as_str()), 0);
    let attempt = Attempt { cause, sip: None };
    let status = finish_status(
        Direction::Outbound,
        false,
        false,
        MissedStatus::Missed304,
        Some(&attempt),
    );
    let register = RegisterCall {
        user: deps.owner,
        phone: request.phone.clone(),
        call_type: CallType::Callback,
        line_number: line,
        started_at,
        crm_create: false,
        show: false,
        crm: request.crm.map(|(kind, id)| CrmBinding {
            entity_type: kind,
            entity_id: id,
        }),
    };
    let finish = FinishCall {
        user: deps.owner,
        duration_secs: 0,
        status_code: status.clone(),
        add_to_chat: deps.add_to_chat,
        failed_reason: Some(format!(
            "callback: the customer did not answer ({})",
            attempt.cause.as_str()
        )),
    };
    let writes = [BitrixWrite::Register(register), BitrixWrite::Finish(finish)];
    match deps.outbox.push_all(CallWrite::all(&key, writes)).await {
        Ok(_) => info!(status = %status, "unanswered callback registered and finished"),
        Err(e) => error!(error = %e, "unanswered callback not stored"),
    }
}
