//! fsb24: a bridge between a FreeSWITCH PBX (Event Socket, outbound mode) and a Bitrix24 portal
//! (external telephony REST API).
//!
//! FreeSWITCH hands each call to us over an outbound `socket ... async full` connection; a per-call
//! task drives a pure state machine ([`call::machine`]) that rings agents, bridges, records and
//! mirrors every leg change onto Bitrix24 call cards through a durable [`outbox`].
//! The README's "Architecture" section has the bird's-eye view, code map and invariants.

pub(crate) mod admin;
pub mod app;
pub mod bitrix;
pub mod call;
pub mod config;
pub mod esl;
pub mod http;
pub mod ids;
pub mod outbox;
pub mod phone;
pub(crate) mod queue;
pub(crate) mod recording;
pub mod setup;
pub mod telemetry;
