//! Translation of switch-wide events seen on the inbound connection into [`SwitchEvent`]s.
//!
//! Pure. Shapes follow the real `presence_register_events.txt` and `originate_click_to_call.txt`
//! captures: registration events are `CUSTOM` with their own per-subclass header sets.

use freeswitch_esl_tokio::{
    EslEvent, EslEventType, EventHeader, HeaderLookup, SofiaChannelName, SofiaEventSubclass,
    parse_api_body,
};

use super::event::{IgnoreReason, MapError, hangup_cause, lenient_number, required};
use super::{HangupCause, SipHangupDisposition};
use crate::ids::{ChannelId, JobId};

const VAR_SIP_TERM_STATUS: &str = "sip_term_status";
const REG_FROM_USER: &str = "from-user";
const REG_EXPIRE_USER: &str = "user";
const REG_EXPIRES: &str = "expires";

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
pub fn extension_of(event: &EslEvent) -> Option<String> {
    extension_of_channel_name(event.channel_name()?)
}

/// [`extension_of`] for a bare channel name (e.g. a `show channels` row).
pub fn extension_of_channel_name(name: &str) -> Option<String> {
    let sofia = SofiaChannelName::parse(name)?;
    let user = sofia.user()?;
    let user = user.strip_prefix("sip:").unwrap_or(user);
    (!user.is_empty()).then(|| user.to_owned())
}

#[cfg(test)]
mod tests;
