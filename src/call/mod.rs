//! Call control: the pure per-call state machine ([`machine`]), the hangup-cause to Bitrix24
//! status table ([`status`]), routing from the config ([`route`]), the driver ([`task`]) with its
//! real effects ([`effects`]), click-to-call ([`click`]), outgoing calls dialled on desk phones ([`outgoing`]), calls forwarded to a mobile ([`forward`]) and the startup recovery of calls a
//! killed run left open ([`recover`]).

pub(crate) mod board;
pub(crate) mod callback;
pub mod click;
pub mod effects;
pub(crate) mod forward;
pub(crate) mod machine;
pub(crate) mod outgoing;
pub mod recover;
pub(crate) mod route;
pub(crate) mod spawn;
pub(crate) mod status;
pub(crate) mod task;
pub(crate) mod why;

pub use spawn::CallConfigs;
