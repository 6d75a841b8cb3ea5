//! Unit tests of `call::machine`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Pure scenario tests of the call machine (time passed explicitly). `sim` is the world around it.

mod ending;
mod policies;
mod scenarios;
pub(crate) mod sim;
