//! Call control: the pure per-call state machine ([`machine`]), the hangup-cause to Bitrix24
//! status table ([`status`]), routing from the config ([`route`]), the driver ([`task`]) with its
//! real effects ([`effects`]), click-to-call ([`click`]), outgoing calls dialled on desk phones ([`outgoing`]), calls forwarded to a mobile ([`forward`]) and the startup recovery of calls a
//! killed run left open ([`recover`]).

pub mod board;
pub mod callback;
pub mod click;
pub mod effects;
pub mod forward;
pub mod machine;
pub mod outgoing;
pub mod recover;
pub mod route;
pub mod status;
pub mod task;
pub mod why;
