//! The config file as serde sees it: structure only, every leaf as written.
//!
//! Durations and enum-like values stay strings here so that validation can report every bad
//! value at once with its key; only the shape (unknown keys, wrong types) fails in serde.

use std::path::PathBuf;

use serde::Deserialize;

use super::Secret;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub shutdown_grace: Option<String>,
    pub esl: RawEsl,
    pub bitrix: RawBitrix,
    #[serde(default)]
    pub agents: Vec<RawAgent>,
    #[serde(default)]
    pub queues: Vec<RawQueue>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub recording: RawRecording,
    #[serde(default)]
    pub outbox: RawOutbox,
    pub http: Option<RawHttp>,
    #[serde(default)]
    pub click_to_call: RawClickToCall,
    #[serde(default)]
    pub outgoing: super::outgoing::RawOutgoing,
    #[serde(default)]
    pub log: RawLog,
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub numbers: RawNumbers,
    #[serde(default)]
    pub events: super::portal::RawEvents,
    #[serde(default)]
    pub lines: Vec<super::portal::RawLine>,
}

// === ESL ===

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEsl {
    pub listen: Option<String>,
    pub handshake_timeout: Option<String>,
    pub command_timeout: Option<String>,
    pub linger: Option<String>,
    pub max_calls: Option<u64>,
    pub inbound: RawEslInbound,
    #[serde(default)]
    pub dial: RawDial,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEslInbound {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub password: Option<Secret>,
    pub reconnect_min: Option<String>,
    pub reconnect_max: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDial {
    pub domain: Option<String>,
    pub template: Option<String>,
}

// === Bitrix24 ===

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBitrix {
    pub auth: Option<RawAuth>,
    pub application_token: Option<Secret>,
    #[serde(default)]
    pub rate: RawRate,
    pub batch_window: Option<String>,
    pub request_timeout: Option<String>,
    pub lookup_timeout: Option<String>,
    #[serde(default)]
    pub defaults: RawBitrixDefaults,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum RawAuth {
    Webhook(RawWebhook),
    OAuth(RawOAuth),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhook {
    pub url: Option<Secret>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOAuth {
    pub portal: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub server_endpoint: Option<String>,
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRate {
    pub per_second: Option<u32>,
    pub burst: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBitrixDefaults {
    pub line_number: Option<String>,
    pub crm_create: Option<bool>,
    pub add_to_chat: Option<bool>,
    pub missed_call_owner: Option<u64>,
    pub anonymous_number: Option<String>,
}

// === Agents, queues, routes ===

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAgent {
    pub id: Option<String>,
    pub extension: String,
    pub bitrix_user: u64,
    pub name: Option<String>,
    pub card: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueue {
    pub name: String,
    pub strategy: Option<String>,
    pub order: Option<String>,
    #[serde(default)]
    pub agents: Vec<String>,
    pub ring: Option<Vec<String>>,
    pub rounds: Option<u32>,
    pub max_wait: Option<String>,
    pub overflow: Option<RawOverflow>,
    pub wrap_up: Option<String>,
    pub cooldown_busy: Option<String>,
    pub cooldown_reject: Option<String>,
    pub cooldown_no_answer: Option<String>,
    pub max_no_answer: Option<u32>,
    pub no_answer_pause: Option<String>,
    pub allow_busy_agents: Option<bool>,
    pub wait_media: Option<String>,
    pub when_nobody_free: Option<String>,
    pub card: Option<String>,
    pub missed_owner: Option<Vec<RawOwner>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum RawOverflow {
    Queue(String),
    Agent(String),
    Hangup(String),
    Forward(RawForward),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub destination: Option<String>,
    pub line: Option<RawLine>,
    pub target: RawTarget,
    pub line_number: Option<String>,
    pub crm_create: Option<bool>,
    pub missed_owner: Option<Vec<RawOwner>>,
}

/// One step of a `missed_owner` list: a policy name, or `{ user = 15 }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawOwner {
    Name(String),
    User(RawOwnerUser),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOwnerUser {
    pub user: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLine {
    pub socket_path: Option<String>,
    pub variable: Option<String>,
    pub value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum RawTarget {
    Agent(String),
    Queue(String),
    Responsible(RawResponsible),
    Forward(RawForward),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawForward {
    pub number: String,
    pub agent: String,
    pub ring: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawResponsible {
    pub fallback_queue: String,
    pub ring: Option<String>,
}

// === Recording, outbox, HTTP, click-to-call, log ===

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRecording {
    pub enabled: Option<bool>,
    pub path_template: Option<String>,
    pub stereo: Option<bool>,
    pub wait_after_hangup: Option<String>,
    pub inline_max_bytes: Option<u64>,
    pub attach_format: Option<String>,
    pub mp3_kbps: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutbox {
    pub path: Option<PathBuf>,
    pub prune_after: Option<String>,
    pub retry_min: Option<String>,
    pub retry_max: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp {
    pub listen: Option<String>,
    pub path: Option<String>,
    pub header_read_timeout: Option<String>,
    pub request_timeout: Option<String>,
    pub max_connections: Option<u32>,
    pub max_requests_per_connection: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClickToCall {
    pub context: Option<String>,
    pub dialplan: Option<String>,
    pub originate_timeout: Option<String>,
    pub caller_id_number: Option<String>,
    pub gateway: Option<String>,
    pub profile: Option<String>,
    pub host: Option<String>,
    pub customer_ring_timeout: Option<String>,
    pub max_duration: Option<String>,
    pub max_event_age: Option<String>,
    pub repeat_window: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub listen: Option<String>,
    pub expose: Option<bool>,
}

// === [numbers] ===

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNumbers {
    pub default_country: Option<String>,
}
