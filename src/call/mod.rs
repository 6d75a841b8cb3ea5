//! One call's control: the pure per-call state machine ([`machine`]) and the hangup-cause to
//! Bitrix24 status table ([`status`]). The [`task`] drives a machine with real IO.

pub mod click;
pub mod machine;
pub mod status;
pub mod task;
