//! Adapter over the freeswitch-esl-tokio crate: domain events in, domain commands out.
//!
//! The only module that touches the ESL crate or spells ESL header names. Calls receive
//! [`CallEvent`]s and send commands through a [`SessionHandle`]-style API; nothing above `esl`
//! ever sees ESL text.

pub(crate) mod bridge;
mod cause;
pub mod command;
pub(crate) mod error;
pub(crate) mod event;
pub(crate) mod inbound;
pub(crate) mod outbound;
mod overflow;
pub(crate) mod presence;
pub(crate) mod switch_event;

pub use bridge::{BridgeResult, Disposition};
pub use cause::Cause;
pub use command::{
    CommandError, DialLeg, DialString, DialTarget, Domain, Endpoint, Extension, MediaPath, Name,
    OriginateRequest, OriginateThen, VarName, VarSet, VarValue,
};
pub use error::EslError;
pub use event::{
    CallEvent, DisconnectCause, HangupSummary, IgnoreReason, MapError, Mapped, map_event,
};
pub use freeswitch_esl_tokio::HangupCause;
pub use freeswitch_esl_tokio::variables::SipHangupDisposition;
pub use inbound::{InboundClient, InboundHandle, InboundOptions, ReconnectBackoff};
pub use outbound::{ChannelInfo, IncomingCall, OutboundOptions, OutboundServer, SessionHandle};
pub use presence::{ExtensionPresence, Presence};
pub use switch_event::{ChannelEnd, JobOutcome, SwitchEvent, SwitchMapped, map_switch_event};
