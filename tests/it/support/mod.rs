//! Test peers and harness shared by the integration tests.
#![allow(dead_code)]

pub mod app;
pub mod bitrix_peer;
pub mod esl_peer;
