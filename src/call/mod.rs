//! Call control: the pure per-call state machine ([`machine`]), the hangup-cause to Bitrix24
//! status table ([`status`]), routing from the config ([`route`]), the driver ([`task`]) with its
//! real effects ([`effects`]), and click-to-call ([`click`]).

pub mod click;
pub mod effects;
pub mod machine;
pub mod route;
pub mod status;
pub mod task;
