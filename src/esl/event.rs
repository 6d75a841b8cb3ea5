//! Translation of one outbound session's ESL events into domain [`CallEvent`]s.
//!
//! Pure: no IO, no clock. Every event either becomes a [`CallEvent`], is knowingly ignored with an
//! [`IgnoreReason`], or is refused with a [`MapError`] when a header the mapping needs is missing
//! or malformed. Header spellings live here and in the sibling mapping modules only.

use freeswitch_esl_tokio::{EslEvent, EslEventType, EventHeader, HeaderLookup};

use super::bridge::BridgeResult;
use super::{HangupCause, SipHangupDisposition};
use crate::ids::{ChannelId, ExecId};

// Header and variable names the crate has no typed accessor for.
const APPLICATION_RESPONSE_NONE: &str = "_none_";
const RECORD_FILE_PATH: &str = "Record-File-Path";
const VAR_RECORD_MS: &str = "record_ms";
const VAR_SIP_TERM_STATUS: &str = "sip_term_status";
const VAR_BILLSEC: &str = "billsec";
const VAR_BILLMSEC: &str = "billmsec";
const BRIDGE_APP: &str = "bridge";
const SOCKET_APP: &str = "socket";

/// What happened to the channel an outbound session controls (or to the session itself).
///
/// There is no "linger started" event: freeswitch-esl-tokio's reader consumes the
/// `Content-Disposition: linger` notice without surfacing it, so the session treats
/// [`CallEvent::HangupComplete`] as the end of the call and then sends `exit` itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// The channel was answered (`CHANNEL_ANSWER`).
    Answered,
    /// The channel was bridged to `other` (`CHANNEL_BRIDGE`; the B leg's `Unique-ID`).
    Bridged {
        /// The other leg, when FreeSWITCH named it.
        other: Option<ChannelId>,
        /// `Other-Leg-Destination-Number`: what the other leg was dialled as (an agent leg's
        /// extension). It names the new party when an attended transfer bridged the caller to
        /// a leg fsb24 never dialled.
        other_number: Option<String>,
    },
    /// A bridge ended (`CHANNEL_UNBRIDGE`). `other` is `None` when the caller itself was
    /// transferred away (blind REFER from the agent): FreeSWITCH then omits `Other-Leg-Unique-ID`.
    Unbridged {
        /// The other leg, when FreeSWITCH named it.
        other: Option<ChannelId>,
    },
    /// An application started (`CHANNEL_EXECUTE`).
    ExecuteStarted {
        /// `Application-UUID`: our `Event-UUID` when we sent one.
        exec: Option<ExecId>,
        /// Application name, e.g. `bridge`.
        app: String,
    },
    /// An application finished (`CHANNEL_EXECUTE_COMPLETE`).
    ExecuteCompleted {
        /// `Application-UUID`: our `Event-UUID` when we sent one.
        exec: Option<ExecId>,
        /// Application name, e.g. `bridge`.
        app: String,
        /// `Application-Response`, absent when FreeSWITCH wrote `_none_`.
        response: Option<String>,
        /// For `bridge` only: the outcome read from the channel variables.
        bridge: Option<BridgeResult>,
    },
    /// The channel left the socket's control while still up (the `socket` application returned
    /// without a hangup): it was transferred or redirected, e.g. by a blind REFER. Events keep
    /// flowing on this connection, but commands now race the dialplan.
    Transferred {
        /// `Caller-Destination-Number` after the transfer.
        destination: Option<String>,
    },
    /// A recording began writing (`RECORD_START`).
    RecordStarted {
        /// `Record-File-Path`, as given to `uuid_record` or `record_session`.
        path: String,
    },
    /// A recording file was closed and is final (`RECORD_STOP`).
    RecordStopped {
        /// `Record-File-Path`.
        path: String,
        /// `record_ms` (use this, not the truncated `record_seconds`).
        record_ms: Option<u64>,
    },
    /// A DTMF digit was received.
    Dtmf {
        /// The digit (`0-9`, `*`, `#`, `A-D`).
        digit: char,
    },
    /// The channel hung up (`CHANNEL_HANGUP`); CDR values follow in [`CallEvent::HangupComplete`].
    Hangup {
        /// `Hangup-Cause`.
        cause: HangupCause,
        /// SIP status received from the far end, when there was one.
        sip_term_status: Option<u16>,
        /// Which SIP message ended the dialog (often still unset at this point).
        sip_hangup_disposition: Option<SipHangupDisposition>,
    },
    /// The channel finished hang-up processing (`CHANNEL_HANGUP_COMPLETE`): use this for reporting.
    HangupComplete(HangupSummary),
    /// The session's TCP connection is over; no further events follow.
    Disconnected {
        /// Why it ended.
        reason: DisconnectCause,
    },
}

/// The CDR values of a finished channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HangupSummary {
    /// `Hangup-Cause`.
    pub cause: HangupCause,
    /// SIP status received from the far end (200 for a received BYE), when there was one.
    pub sip_term_status: Option<u16>,
    /// Which SIP message ended the dialog.
    pub sip_hangup_disposition: Option<SipHangupDisposition>,
    /// Answered seconds as FreeSWITCH truncates them (`billsec`).
    pub billsec: u64,
    /// Answered milliseconds (`billmsec`).
    pub billmsec: u64,
    /// The channel was answered (`Caller-Channel-Answered-Time` > 0).
    pub answered: bool,
    /// The channel was bridged at some point (`Caller-Channel-Bridged-Time` > 0).
    pub bridged: bool,
}

impl HangupSummary {
    /// The talk time in whole seconds: `billmsec` rounded to the nearest second, at least 1 once
    /// answered. `billsec` is the difference of whole epoch seconds (a real 6.16 s talk reads 7,
    /// a 0.96 s one can read 0: a_answered_agent.txt), so it is only the fallback when `billmsec`
    /// is missing.
    pub fn talk_secs(&self) -> u64 {
        match self.billmsec {
            0 => self.billsec,
            ms => (ms.saturating_add(500) / 1000).max(1),
        }
    }
}

/// Why an outbound session's connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectCause {
    /// FreeSWITCH sent its final disconnect notice (after our `exit`, linger expiry, or hangup
    /// without linger).
    ServerNotice,
    /// The peer closed the TCP connection.
    ConnectionClosed,
    /// We closed the connection ourselves.
    ClosedByUs,
    /// A read failed or the stream could not be decoded (desynchronised).
    Failed(String),
}

/// Why an event was knowingly not turned into a [`CallEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnoreReason {
    /// The event belongs to another channel (`Unique-ID` differs).
    OtherChannel,
    /// The event concerns no channel (e.g. `HEARTBEAT`, `BACKGROUND_JOB`, `CUSTOM`).
    NotAChannelEvent,
    /// A channel event type the call logic does not use (state, park, callstate, ...).
    Unused(EslEventType),
    /// The `socket` application returned because the channel hung up.
    SocketReturnedOnHangup,
    /// `Event-Name` is not one the crate knows.
    UnknownEventName(String),
}

/// The outcome of mapping one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapped {
    /// A domain event for the call.
    Event(CallEvent),
    /// Knowingly dropped.
    Ignored(IgnoreReason),
}

/// An event that should carry a header the mapping needs, but does not (or carries garbage).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// The event has no `Event-Name`.
    #[error("event without Event-Name")]
    NoEventName,
    /// A required header is absent.
    #[error("{event}: missing header {header}")]
    MissingHeader {
        /// Event name.
        event: &'static str,
        /// Header name.
        header: &'static str,
    },
    /// A required header does not parse.
    #[error("{event}: header {header} has invalid value {value:?}")]
    BadValue {
        /// Event name.
        event: &'static str,
        /// Header name.
        header: &'static str,
        /// The offending value.
        value: String,
    },
}

/// Maps one event seen on the outbound session that controls `own`.
///
/// Never panics. Events of other channels are `Ignored(OtherChannel)` (possible on a `full`
/// socket that also subscribed with `event`).
pub fn map_event(event: &EslEvent, own: &ChannelId) -> Result<Mapped, MapError> {
    let name = event
        .header(EventHeader::EventName)
        .ok_or(MapError::NoEventName)?;
    let Some(kind) = event.event_type() else {
        return Ok(Mapped::Ignored(IgnoreReason::UnknownEventName(
            name.to_owned(),
        )));
    };
    if !is_mapped_kind(kind) {
        return Ok(Mapped::Ignored(match event.unique_id() {
            None => IgnoreReason::NotAChannelEvent,
            Some(id) if id != own.as_str() => IgnoreReason::OtherChannel,
            Some(_) => IgnoreReason::Unused(kind),
        }));
    }
    let event_name = kind.as_str();
    let id = event.unique_id().ok_or(MapError::MissingHeader {
        event: event_name,
        header: "Unique-ID",
    })?;
    if id != own.as_str() {
        return Ok(Mapped::Ignored(IgnoreReason::OtherChannel));
    }
    map_own(event, kind, event_name)
}

/// The fixed set `myevents` subscribes on an outbound socket (esl-protocol.md §6, the
/// `myevents` row of the command table).
const MYEVENTS: [EslEventType; 23] = {
    use EslEventType as T;
    [
        T::ChannelAnswer,
        T::ChannelApplication,
        T::ChannelBridge,
        T::ChannelCreate,
        T::ChannelData,
        T::ChannelDestroy,
        T::ChannelExecute,
        T::ChannelExecuteComplete,
        T::ChannelHangup,
        T::ChannelHangupComplete,
        T::ChannelOriginate,
        T::ChannelUuid,
        T::ChannelOutgoing,
        T::ChannelPark,
        T::ChannelProgress,
        T::ChannelProgressMedia,
        T::ChannelState,
        T::ChannelUnbridge,
        T::ChannelUnpark,
        T::DetectedSpeech,
        T::Dtmf,
        T::Notalk,
        T::Talk,
    ]
};

/// The types `myevents` subscribes that no call uses. The session unsubscribes them right after
/// `myevents` (`nixevent`), so the switch never writes them and fsb24 never parses them: a
/// real call's own CHANNEL_STATE, CHANNEL_DATA, CHANNEL_PARK/UNPARK and CHANNEL_DESTROY are
/// several KiB each, and parsing was the largest share of fsb24's CPU (docs/scaling.md).
pub(crate) fn unused_myevents() -> Vec<EslEventType> {
    MYEVENTS
        .into_iter()
        .filter(|kind| !is_mapped_kind(*kind))
        .collect()
}

fn is_mapped_kind(kind: EslEventType) -> bool {
    use EslEventType as T;
    matches!(
        kind,
        T::ChannelAnswer
            | T::ChannelBridge
            | T::ChannelUnbridge
            | T::ChannelExecute
            | T::ChannelExecuteComplete
            | T::RecordStart
            | T::RecordStop
            | T::Dtmf
            | T::ChannelHangup
            | T::ChannelHangupComplete
    )
}

fn map_own(event: &EslEvent, kind: EslEventType, name: &'static str) -> Result<Mapped, MapError> {
    use EslEventType as T;
    let mapped = match kind {
        T::ChannelAnswer => CallEvent::Answered,
        T::ChannelBridge => CallEvent::Bridged {
            other: other_leg(event),
            other_number: event
                .header(EventHeader::OtherLegDestinationNumber)
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
        },
        T::ChannelUnbridge => CallEvent::Unbridged {
            other: other_leg(event),
        },
        T::ChannelExecute => CallEvent::ExecuteStarted {
            exec: exec_id(event),
            app: required(event, name, EventHeader::Application)?.to_owned(),
        },
        T::ChannelExecuteComplete => return execute_completed(event, name),
        T::RecordStart => CallEvent::RecordStarted {
            path: record_path(event, name)?,
        },
        T::RecordStop => CallEvent::RecordStopped {
            path: record_path(event, name)?,
            record_ms: lenient_number(event.variable_str(VAR_RECORD_MS)),
        },
        T::Dtmf => CallEvent::Dtmf {
            digit: dtmf_digit(event, name)?,
        },
        T::ChannelHangup => CallEvent::Hangup {
            cause: hangup_cause(event, name)?,
            sip_term_status: lenient_number(event.variable_str(VAR_SIP_TERM_STATUS)),
            sip_hangup_disposition: event.sip_hangup_disposition().ok().flatten(),
        },
        T::ChannelHangupComplete => CallEvent::HangupComplete(hangup_summary(event, name)?),
        other => return Ok(Mapped::Ignored(IgnoreReason::Unused(other))),
    };
    Ok(Mapped::Event(mapped))
}

fn execute_completed(event: &EslEvent, name: &'static str) -> Result<Mapped, MapError> {
    let app = required(event, name, EventHeader::Application)?;
    if app == SOCKET_APP {
        // The socket app returns either because the channel hung up, or because the channel was
        // transferred/redirected out of its park (transfer_of_socket_call.txt, run 2).
        if event.header(EventHeader::HangupCause).is_some() {
            return Ok(Mapped::Ignored(IgnoreReason::SocketReturnedOnHangup));
        }
        let destination = event.destination_number().map(str::to_owned);
        return Ok(Mapped::Event(CallEvent::Transferred { destination }));
    }
    let response = event
        .header(EventHeader::ApplicationResponse)
        .filter(|r| *r != APPLICATION_RESPONSE_NONE && !r.is_empty())
        .map(str::to_owned);
    let bridge = (app == BRIDGE_APP).then(|| BridgeResult::from_event(event));
    Ok(Mapped::Event(CallEvent::ExecuteCompleted {
        exec: exec_id(event),
        app: app.to_owned(),
        response,
        bridge,
    }))
}

fn hangup_summary(event: &EslEvent, name: &'static str) -> Result<HangupSummary, MapError> {
    let timetable = event.caller_timetable().map_err(|e| MapError::BadValue {
        event: name,
        header: "Caller-Channel-*-Time",
        value: e.to_string(),
    })?;
    let happened = |t: Option<i64>| t.is_some_and(|v| v > 0);
    Ok(HangupSummary {
        cause: hangup_cause(event, name)?,
        sip_term_status: lenient_number(event.variable_str(VAR_SIP_TERM_STATUS)),
        sip_hangup_disposition: event.sip_hangup_disposition().ok().flatten(),
        billsec: lenient_number(event.variable_str(VAR_BILLSEC)).unwrap_or(0),
        billmsec: lenient_number(event.variable_str(VAR_BILLMSEC)).unwrap_or(0),
        answered: happened(timetable.and_then(|t| t.answered)),
        bridged: happened(timetable.and_then(|t| t.bridged)),
    })
}

pub(super) fn hangup_cause(event: &EslEvent, name: &'static str) -> Result<HangupCause, MapError> {
    let raw = required(event, name, EventHeader::HangupCause)?;
    raw.parse().map_err(|_| MapError::BadValue {
        event: name,
        header: "Hangup-Cause",
        value: raw.to_owned(),
    })
}

pub(super) fn required<'e>(
    event: &'e EslEvent,
    name: &'static str,
    header: EventHeader,
) -> Result<&'e str, MapError> {
    event
        .header(header)
        .filter(|v| !v.is_empty())
        .ok_or(MapError::MissingHeader {
            event: name,
            header: header.as_str(),
        })
}

fn record_path(event: &EslEvent, name: &'static str) -> Result<String, MapError> {
    event
        .header_str(RECORD_FILE_PATH)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or(MapError::MissingHeader {
            event: name,
            header: RECORD_FILE_PATH,
        })
}

fn dtmf_digit(event: &EslEvent, name: &'static str) -> Result<char, MapError> {
    let raw = required(event, name, EventHeader::DtmfDigit)?;
    let mut chars = raw.chars();
    match (chars.next(), chars.next()) {
        (Some(d), None) if d.is_ascii_digit() || matches!(d, '*' | '#' | 'A'..='D') => Ok(d),
        _ => Err(MapError::BadValue {
            event: name,
            header: "DTMF-Digit",
            value: raw.to_owned(),
        }),
    }
}

fn other_leg(event: &EslEvent) -> Option<ChannelId> {
    event
        .header(EventHeader::OtherLegUniqueId)
        .filter(|v| !v.is_empty())
        .map(ChannelId::new)
}

fn exec_id(event: &EslEvent) -> Option<ExecId> {
    event
        .header(EventHeader::ApplicationUuid)
        .filter(|v| !v.is_empty())
        .map(ExecId::new)
}

/// Optional numeric values: a garbage value is treated as absent rather than refusing the whole
/// event, since losing a hang-up over a decorative CDR field would be worse.
pub(super) fn lenient_number<T: std::str::FromStr>(raw: Option<&str>) -> Option<T> {
    raw.and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests;
