//! Test peers and harness shared by the integration tests.
#![allow(dead_code)]

pub mod admin;
pub mod app;
pub mod audio;
pub mod bitrix_peer;
pub mod daemon;
pub mod esl_peer;

/// Taken by the tests that measure real-time edges to a few milliseconds (the queue timing
/// tests) and by the tests that load both cores for seconds (200 concurrent sessions, the
/// kill -9 replay): none of the first kind runs while one of the second kind does.
pub static EXCLUSIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
