#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Driver tests in paused time.
