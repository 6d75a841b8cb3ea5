//! The one integration-test binary: real loopback sockets, a fake FreeSWITCH and a fake Bitrix24.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The support peers are this binary's own API: `pub` there is not the library's surface.
#![allow(unreachable_pub)]

mod support;

mod app_install;
mod bitrix_client;
mod bitrix_methods;
mod call_cases;
mod call_flow;
mod call_queue;
mod call_show;
mod callback;
mod cli;
mod click_to_call;
mod config_files;
mod contrib;
mod dialplan;
mod esl_replay;
mod esl_sessions;
mod event_flood;
mod fuzz;
mod hostile_events;
mod http_endpoint;
mod offline_events;
mod ops;
mod outage_replay;
mod outbox_crash;
mod outgoing;
mod phone_numbers;
mod policies;
mod queue_forward;
mod recovery;
mod setup;
mod tidy;
mod transfers;
mod wrong_auth;
