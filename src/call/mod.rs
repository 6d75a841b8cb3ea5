//! One call's control: the pure per-call state machine ([`machine`]) and the hangup-cause to
//! Bitrix24 status table ([`status`]). The task that drives a machine with real IO lives beside them.

pub mod machine;
pub mod status;
