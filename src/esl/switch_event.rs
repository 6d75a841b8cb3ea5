//! Translation of switch-wide events seen on the inbound connection into [`SwitchEvent`]s.
//!
//! Pure. Shapes follow the real `presence_register_events.txt` and `originate_click_to_call.txt`
//! captures: registration events are `CUSTOM` with their own per-subclass header sets.

use freeswitch_esl_tokio::{
    EslEvent, EslEventType, EventHeader, HeaderLookup, SofiaChannelName, SofiaEventSubclass,
    parse_api_body,
};

use chrono::{DateTime, Utc};

use super::event::{IgnoreReason, MapError, hangup_cause, lenient_number, required};
use super::{HangupCause, SipHangupDisposition};
use crate::ids::{ChannelId, JobId};

const VAR_SIP_TERM_STATUS: &str = "sip_term_status";
const REG_FROM_USER: &str = "from-user";
const REG_EXPIRE_USER: &str = "user";
const REG_EXPIRES: &str = "expires";
const OTHER_TYPE: &str = "Other-Type";
const OTHER_LEG_CHANNEL_NAME: &str = "Other-Leg-Channel-Name";

/// Something that happened on the switch, outside any one outbound session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchEvent {
    /// A channel was created (`CHANNEL_CREATE`).
    ChannelCreated {
        /// Its `Unique-ID`.
        channel: ChannelId,
        /// The SIP user (extension) whose phone this channel talks to, if it is a sofia channel.
        extension: Option<String>,
    },
    /// A channel was answered (`CHANNEL_ANSWER`); for an originated agent leg this is the agent.
    LegAnswered {
        /// Its `Unique-ID` (equals the `origination_uuid` we assigned).
        leg: ChannelId,
        /// The SIP user of the channel, if any.
        extension: Option<String>,
    },
    /// A channel finished hanging up (`CHANNEL_HANGUP_COMPLETE`).
    ChannelHangupComplete {
        /// Its `Unique-ID`.
        channel: ChannelId,
        /// The SIP user of the channel, if any.
        extension: Option<String>,
        /// `Hangup-Cause`.
        cause: HangupCause,
        /// SIP status received from the far end, if any.
        sip_term_status: Option<u16>,
        /// Which SIP message ended the dialog.
        sip_hangup_disposition: Option<SipHangupDisposition>,
        /// When it was answered, bridged and hung up, and to whom it was bridged.
        end: ChannelEnd,
    },
    /// A phone registered (`sofia::register`).
    Registered {
        /// `from-user`.
        user: String,
        /// Granted seconds.
        expires: Option<u32>,
    },
    /// A phone unregistered (`sofia::unregister`, REGISTER with `Expires: 0`).
    Unregistered {
        /// `from-user`.
        user: String,
    },
    /// A registration lapsed (`sofia::expire`).
    Expired {
        /// `user`.
        user: String,
    },
    /// A `bgapi` finished (`BACKGROUND_JOB`).
    BackgroundJob {
        /// `Job-UUID`.
        job: JobId,
        /// Its output.
        result: JobOutcome,
    },
    /// `HEARTBEAT`: the switch is alive.
    Heartbeat,
}

/// The timetable of a channel that finished hanging up, from its `CHANNEL_HANGUP_COMPLETE`
/// (`Caller-Channel-*-Time`, microseconds; 0 means "never"). Startup recovery uses it to
/// finish a call that went on in the switch while fsb24 was down.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelEnd {
    /// `Caller-Channel-Answered-Time`.
    pub answered_at: Option<DateTime<Utc>>,
    /// `Caller-Channel-Bridged-Time`: the channel was bridged to another leg.
    pub bridged_at: Option<DateTime<Utc>>,
    /// `Caller-Channel-Hangup-Time`.
    pub hungup_at: Option<DateTime<Utc>>,
    /// The SIP user of the leg it was bridged to (`Other-Leg-Channel-Name` of the originatee
    /// profile, which the A leg keeps after the bridge ends), if any.
    pub bridged_to: Option<String>,
}

/// A background job's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// `+OK <payload>` (prefix removed) or any non-error output.
    Ok(String),
    /// `-ERR <reason>` / `-USAGE ...`: the reason without `-ERR `.
    Failed(String),
}

/// The outcome of mapping one inbound event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchMapped {
    /// A switch event.
    Event(SwitchEvent),
    /// Knowingly dropped.
    Ignored(IgnoreReason),
}

/// Maps one event from the inbound connection. Never panics.
pub fn map_switch_event(event: &EslEvent) -> Result<SwitchMapped, MapError> {
    use EslEventType as T;
    let name = event
        .header(EventHeader::EventName)
        .ok_or(MapError::NoEventName)?;
    let Some(kind) = event.event_type() else {
        return Ok(SwitchMapped::Ignored(IgnoreReason::UnknownEventName(
            name.to_owned(),
        )));
    };
    let ev = kind.as_str();
    let mapped = match kind {
        T::ChannelCreate => SwitchEvent::ChannelCreated {
            channel: channel(event, ev)?,
            extension: extension_of(event),
        },
        T::ChannelAnswer => SwitchEvent::LegAnswered {
            leg: channel(event, ev)?,
            extension: extension_of(event),
        },
        T::ChannelHangupComplete => SwitchEvent::ChannelHangupComplete {
            channel: channel(event, ev)?,
            extension: extension_of(event),
            cause: hangup_cause(event, ev)?,
            sip_term_status: lenient_number(event.variable_str(VAR_SIP_TERM_STATUS)),
            sip_hangup_disposition: event.sip_hangup_disposition().ok().flatten(),
            end: channel_end(event),
        },
        T::BackgroundJob => background_job(event, ev)?,
        T::Heartbeat => SwitchEvent::Heartbeat,
        T::Custom => return custom(event),
        other => return Ok(SwitchMapped::Ignored(IgnoreReason::Unused(other))),
    };
    Ok(SwitchMapped::Event(mapped))
}

fn custom(event: &EslEvent) -> Result<SwitchMapped, MapError> {
    const EV: &str = "CUSTOM";
    let user = |header: &'static str| {
        event
            .header_str(header)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or(MapError::MissingHeader { event: EV, header })
    };
    let mapped = match event.sofia_event_subclass() {
        Ok(Some(SofiaEventSubclass::Register)) => SwitchEvent::Registered {
            user: user(REG_FROM_USER)?,
            expires: lenient_number(event.header_str(REG_EXPIRES)),
        },
        Ok(Some(SofiaEventSubclass::Unregister)) => SwitchEvent::Unregistered {
            user: user(REG_FROM_USER)?,
        },
        Ok(Some(SofiaEventSubclass::Expire)) => SwitchEvent::Expired {
            user: user(REG_EXPIRE_USER)?,
        },
        _ => {
            return Ok(SwitchMapped::Ignored(IgnoreReason::Unused(
                EslEventType::Custom,
            )));
        }
    };
    Ok(SwitchMapped::Event(mapped))
}

fn background_job(event: &EslEvent, ev: &'static str) -> Result<SwitchEvent, MapError> {
    let job = JobId::new(required(event, ev, EventHeader::JobUuid)?);
    let body = event.body().unwrap_or("");
    let result = match parse_api_body(body) {
        Ok(payload) => JobOutcome::Ok(payload.to_owned()),
        Err(err) => JobOutcome::Failed(failure_text(&err, body)),
    };
    Ok(SwitchEvent::BackgroundJob { job, result })
}

fn failure_text(err: &freeswitch_esl_tokio::EslError, body: &str) -> String {
    let text = match err.command_failure().and_then(|f| f.payload()) {
        Some(payload) => payload.to_owned(),
        None => body.trim_end().to_owned(),
    };
    text.strip_prefix("-ERR")
        .map(|t| t.trim().to_owned())
        .unwrap_or(text)
}

/// Lenient: a malformed time reads as unknown (recovery then falls back to what it stored).
fn channel_end(event: &EslEvent) -> ChannelEnd {
    let at = |us: Option<i64>| {
        us.filter(|v| *v > 0)
            .and_then(DateTime::<Utc>::from_timestamp_micros)
    };
    let times = event.caller_timetable().ok().flatten().unwrap_or_default();
    let originatee = event.header_str(OTHER_TYPE) == Some("originatee");
    ChannelEnd {
        answered_at: at(times.answered),
        bridged_at: at(times.bridged),
        hungup_at: at(times.hungup),
        bridged_to: event
            .header_str(OTHER_LEG_CHANNEL_NAME)
            .filter(|_| originatee)
            .and_then(extension_of_channel_name),
    }
}

fn channel(event: &EslEvent, ev: &'static str) -> Result<ChannelId, MapError> {
    event
        .unique_id()
        .filter(|v| !v.is_empty())
        .map(ChannelId::new)
        .ok_or(MapError::MissingHeader {
            event: ev,
            header: "Unique-ID",
        })
}

/// The SIP user a sofia channel talks to: `sofia/internal/1011@127.0.0.1:5081` -> `1011`.
/// For a phone calling in, that is the caller's own extension; for a leg we dial, the callee.
pub(crate) fn extension_of(event: &EslEvent) -> Option<String> {
    extension_of_channel_name(event.channel_name()?)
}

/// [`extension_of`] for a bare channel name (e.g. a `show channels` row).
pub(crate) fn extension_of_channel_name(name: &str) -> Option<String> {
    let sofia = SofiaChannelName::parse(name)?;
    let user = sofia.user()?;
    let user = user.strip_prefix("sip:").unwrap_or(user);
    (!user.is_empty()).then(|| user.to_owned())
}

#[cfg(test)]
mod tests;
