//! The validated configuration: domain types only, every reference checked, every default applied.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::Secret;
use super::template::DialTemplate;
use crate::esl::Cause;
use crate::ids::{AgentId, BitrixUserId, PhoneNumber, QueueName};
use crate::phone::Numbering;
use crate::recording::PathTemplate;
use crate::recording::compact::AttachFormat;

/// The whole validated config. Built by [`Config::load`] or [`Config::from_toml_str`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this config came from (`None` for a string); SIGHUP re-reads it.
    pub source: Option<PathBuf>,
    /// How long shutdown waits for calls and the outbox worker before giving up.
    pub shutdown_grace: Duration,
    /// FreeSWITCH Event Socket, both directions.
    pub esl: EslConfig,
    /// Bitrix24 REST access.
    pub bitrix: BitrixConfig,
    /// Agents in file order; ids and extensions are unique.
    pub agents: Vec<AgentConfig>,
    /// Queues in file order; names are unique, agents and overflow targets exist, no cycles.
    pub queues: Vec<QueueConfig>,
    /// Routes, tried in file order; the first match wins. A route without matchers is the default.
    pub routes: Vec<RouteConfig>,
    /// Call recording.
    pub recording: RecordingConfig,
    /// The durable Bitrix24 write queue.
    pub outbox: OutboxConfig,
    /// The event endpoint for Bitrix24 POSTs; `None` disables click-to-call.
    pub http: Option<HttpConfig>,
    /// Calls originated for click-to-call.
    pub click_to_call: ClickToCallConfig,
    /// `[outgoing]`: calls employees dial from their phones.
    pub outgoing: super::OutgoingConfig,
    /// Log output format.
    pub log: LogConfig,
    /// The operators' listener (metrics, health, status page); `None` serves none.
    pub admin: Option<AdminConfig>,
    /// `[numbers]`: how phone numbers are normalised for Bitrix24 and for dialling.
    pub numbers: Numbering,
    /// `[events]` and `[[lines]]`: event delivery and what `fsb24 setup` registers.
    pub portal: super::portal::PortalConfig,
}

/// `[admin]`: where `/metrics`, `/healthz`, `/readyz` and the status page are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Listen address (loopback unless `admin.expose`).
    pub listen: SocketAddr,
}

// === ESL ===

/// `[esl]`: the outbound listener FreeSWITCH connects to, and the inbound control connection.
#[derive(Debug, Clone)]
pub struct EslConfig {
    /// Where the `socket` dialplan app connects (`socket 127.0.0.1:8084 async full`).
    pub listen: SocketAddr,
    /// Longest wait for FreeSWITCH's `connect` reply on a new outbound session.
    pub handshake_timeout: Duration,
    /// Longest wait for the reply to any single command.
    pub command_timeout: Duration,
    /// `linger` asked for on outbound sessions, so the final hang-up events still arrive.
    pub linger: Duration,
    /// Most calls fsb24 controls at once; a call past it is handed straight back to the
    /// dialplan (its fallback) instead of growing memory without bound under overload.
    pub max_calls: usize,
    /// The inbound (`:8021`) connection used for `uuid_kill`, `originate` and presence.
    pub inbound: EslInboundConfig,
    /// How agents are dialled.
    pub dial: DialConfig,
}

/// `[esl.inbound]`: one long-lived inbound Event Socket connection.
#[derive(Debug, Clone)]
pub struct EslInboundConfig {
    /// FreeSWITCH host (name or address).
    pub host: String,
    /// mod_event_socket port.
    pub port: u16,
    /// mod_event_socket password.
    pub password: Secret,
    /// First reconnect delay after the connection drops.
    pub reconnect_min: Duration,
    /// Cap of the doubling reconnect delay.
    pub reconnect_max: Duration,
}

/// `[esl.dial]`: how an agent extension becomes a dial string.
#[derive(Debug, Clone)]
pub struct DialConfig {
    /// SIP domain the agents register in (FreeSWITCH `domain`), if the template uses it.
    pub domain: Option<String>,
    /// Template with `{extension}` (and optionally `{domain}`), e.g. `user/{extension}@{domain}`.
    pub template: DialTemplate,
}

// === Bitrix24 ===

/// `[bitrix]`: portal access, limits and call-card defaults.
#[derive(Debug, Clone)]
pub struct BitrixConfig {
    /// Credentials.
    pub auth: BitrixAuth,
    /// Shared secret every event POST must carry in `auth[application_token]`.
    pub application_token: Option<Secret>,
    /// Client-side leaky bucket matching the portal plan.
    pub rate: RateConfig,
    /// How long writes are held to coalesce them into one `batch`.
    pub batch_window: Duration,
    /// Timeout of one REST request.
    pub request_timeout: Duration,
    /// Longest a caller waits on a CRM lookup before routing falls back.
    pub lookup_timeout: Duration,
    /// Values used when a route does not override them.
    pub defaults: BitrixDefaults,
}

/// How fsb24 authenticates against the portal.
#[derive(Debug, Clone)]
pub enum BitrixAuth {
    /// An inbound webhook; the URL embeds the token, so the whole URL is secret.
    Webhook {
        /// `https://<portal>/rest/<user>/<token>/` (validated, with trailing `/`).
        url: Secret,
    },
    /// A local or Market application with OAuth 2.0 tokens.
    OAuth(Box<OAuthConfig>),
}

/// `[bitrix.auth.oauth]`.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// The portal's REST base (`client_endpoint`), e.g. `https://acme.bitrix24.de/rest/`.
    pub portal: Url,
    /// Application `client_id`.
    pub client_id: String,
    /// Application `client_secret`; sent only to the token server.
    pub client_secret: Secret,
    /// Token server REST base (`server_endpoint`); tokens come from `<base>/../oauth/token/`.
    pub server_endpoint: Url,
    /// File holding the current refresh token; rewritten atomically after each refresh.
    pub token_file: PathBuf,
}

/// `[bitrix.rate]`: the portal's leaky bucket (2/s burst 50; Enterprise 5/s burst 250).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateConfig {
    /// Requests drained per second.
    pub per_second: u32,
    /// Requests that may be sent at once after an idle period.
    pub burst: u32,
}

/// `[bitrix.defaults]`.
#[derive(Debug, Clone)]
pub struct BitrixDefaults {
    /// `LINE_NUMBER` sent with every call unless a route overrides it.
    pub line_number: Option<String>,
    /// `CRM_CREATE`: create a lead for unknown numbers.
    pub crm_create: bool,
    /// `ADD_TO_CHAT` on finish.
    pub add_to_chat: bool,
    /// Who owns missed inbound calls when nobody answered (`USER_ID` of finish).
    pub missed_call_owner: Option<BitrixUserId>,
    /// `PHONE_NUMBER` sent for callers with a hidden or unusable number.
    pub anonymous_number: PhoneNumber,
}

// === Agents, queues, routes ===

/// `[[agents]]`: a person with a SIP phone and a Bitrix24 account.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Id used by queues and routes (defaults to the extension).
    pub id: AgentId,
    /// SIP extension; letters and digits only, so it is safe in a dial string.
    pub extension: Extension,
    /// The agent's Bitrix24 user.
    pub bitrix_user: BitrixUserId,
    /// Display name for logs and summaries.
    pub name: String,
    /// When this agent's card opens, whatever their queue says; `None` follows the queue.
    pub card: Option<CardMode>,
}

/// A SIP extension: 1-32 ASCII letters or digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Extension(pub(crate) String);

impl Extension {
    /// The extension text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Extension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[[queues]]`: who is rung for a call, in what order, for how long, and what happens then.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Queue name (referenced by routes and overflows).
    pub name: QueueName,
    /// One at a time, or everyone at once.
    pub strategy: Strategy,
    /// Which member a new call starts with.
    pub order: QueueOrder,
    /// Members in ring order.
    pub agents: Vec<AgentId>,
    /// Ring times: per step for sequential (the last repeats), exactly one for simultaneous.
    pub ring: Vec<Duration>,
    /// Passes over the member list before overflow.
    pub rounds: u32,
    /// Longest a caller waits in this queue before overflow.
    pub max_wait: Duration,
    /// Where the caller goes when the queue gives up.
    pub overflow: Overflow,
    /// Pause after an agent's call ends before they are rung again.
    pub wrap_up: Duration,
    /// Pause after an agent's phone answered busy.
    pub cooldown_busy: Duration,
    /// Pause after an agent rejected the call.
    pub cooldown_reject: Duration,
    /// Pause after an agent let it ring out.
    pub cooldown_no_answer: Duration,
    /// Consecutive unanswered rings before the agent is paused; 0 never pauses.
    pub max_no_answer: u32,
    /// How long such a pause lasts.
    pub no_answer_pause: Duration,
    /// Ring agents who are already on a call (call waiting).
    pub allow_busy_agents: bool,
    /// What the caller hears while waiting.
    pub wait_media: WaitMedia,
    /// What to do when no member is free right now.
    pub when_nobody_free: WhenNobodyFree,
    /// When the cards of this queue's agents open (an agent's own `card` wins).
    pub card: CardMode,
    /// Who owns a missed call routed to this queue (unless the route says); `None`: the
    /// default chain.
    pub missed_owner: Option<Vec<MissedOwner>>,
}

impl QueueConfig {
    /// Ring time of sequential step `step` (0-based); the last configured value repeats.
    pub fn ring_for_step(&self, step: usize) -> Duration {
        let last = self.ring.len().saturating_sub(1);
        self.ring.get(step.min(last)).copied().unwrap_or_default()
    }
}

/// Ringing strategy of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// One agent at a time, for the step's ring time, in list order.
    Sequential,
    /// Every free agent at once; first to answer wins.
    Simultaneous,
}

/// Which member of a queue a new call starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueOrder {
    /// Always the first free member in list order (a fixed hunt group).
    List,
    /// The member after the one rung last, by any call (spreads the calls over the group).
    RoundRobin,
}

/// Where a caller goes when a queue gives up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overflow {
    /// Another queue (never forming a cycle).
    Queue(QueueName),
    /// One agent, rung until the caller hangs up or the next queue timer.
    Agent(AgentId),
    /// Hang up the caller with this cause.
    Hangup(Cause),
    /// Bridge the caller to an employee's mobile or landline through `[outgoing]`'s gateway or
    /// profile; the card and the finish are that employee's (the call stays `TYPE=2`).
    Forward {
        /// The external number.
        number: PhoneNumber,
        /// The employee it is forwarded for.
        agent: AgentId,
        /// How long the number rings.
        ring: Duration,
    },
}

/// What a waiting caller hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitMedia {
    /// Ringback tone (FreeSWITCH `ringback`/`transfer_ringback`, `%(2000,4000,440,480)`).
    Ringback,
    /// Music: an absolute file path or a `local_stream://` source, played by FreeSWITCH.
    Music(String),
}

/// Queue behaviour when every member is busy, paused or unregistered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenNobodyFree {
    /// Keep the caller waiting until someone frees up or `max_wait` passes.
    Wait,
    /// Overflow at once.
    Overflow,
}

/// `[[routes]]`: which calls go where.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Exact `Caller-Destination-Number`; `None` matches any.
    pub destination: Option<String>,
    /// Which line the call arrived on; `None` matches any.
    pub line: Option<LineMatch>,
    /// Who is rung.
    pub target: RouteTarget,
    /// Bitrix24 `LINE_NUMBER` for these calls (else `bitrix.defaults.line_number`).
    pub line_number: Option<String>,
    /// `CRM_CREATE` for these calls (else `bitrix.defaults.crm_create`).
    pub crm_create: Option<bool>,
    /// Who owns a missed call of this route (else its queue's chain, else the default one).
    pub missed_owner: Option<Vec<MissedOwner>>,
}

/// When an agent's Bitrix24 card opens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CardMode {
    /// While their phone rings (`"ringing"`).
    #[default]
    Ringing,
    /// Once they answer (`"answered"`).
    Answered,
    /// Never; the call is still registered and finished for them (`"never"`).
    Never,
}

/// One step of a missed-call owner chain; the chain ends at `bitrix.defaults.missed_call_owner`,
/// then the queue's first agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissedOwner {
    /// The caller's CRM-responsible manager (found by a `responsible` route's lookup).
    Responsible,
    /// The agent whose phone rang last.
    LastRung,
    /// The first agent of the queue the route sends the call to (an agent route: that agent).
    FirstAgent,
    /// A fixed Bitrix24 user.
    User(BitrixUserId),
}

/// How a route recognises the line a call came in on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineMatch {
    /// The `/path` of the dialplan's `socket host:port/path` (FreeSWITCH `socket_path`).
    SocketPath(String),
    /// A channel variable with an exact value (e.g. `sip_gateway_name` = `telekom`).
    Variable {
        /// Variable name (letters, digits, `_`).
        name: String,
        /// Required value.
        value: String,
    },
}

/// Who a route rings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    /// One agent.
    Agent(AgentId),
    /// A queue.
    Queue(QueueName),
    /// The CRM-responsible manager of the caller, else a queue.
    Responsible {
        /// Queue used when nobody is responsible, unknown, or not answering.
        fallback_queue: QueueName,
        /// How long the responsible manager is rung.
        ring: Duration,
    },
    /// Forwarded to an employee's mobile or landline through `[outgoing]`'s gateway: reported
    /// as `TYPE=3` (incoming, redirected) with that employee's card.
    Forward {
        /// The external number the call is forwarded to.
        number: PhoneNumber,
        /// The employee it is forwarded for (`USER_ID`, the card).
        agent: AgentId,
        /// How long the number rings.
        ring: Duration,
    },
}

// === Recording, outbox, HTTP, click-to-call, log ===

/// `[recording]`.
#[derive(Debug, Clone)]
pub struct RecordingConfig {
    /// Record answered calls.
    pub enabled: bool,
    /// Where FreeSWITCH writes each recording.
    pub path_template: PathTemplate,
    /// Caller and agent on separate channels.
    pub stereo: bool,
    /// How long after hang-up to wait for the file before finishing the card without it.
    pub wait_after_hangup: Duration,
    /// Files up to this size go inline (`FILE_CONTENT`); larger ones use the two-step upload.
    pub inline_max_bytes: u64,
    /// What is attached: an MP3 made from the WAV (default), or the file as recorded.
    pub attach: AttachFormat,
}

/// `[outbox]`.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// SQLite file (relative paths are relative to the working directory).
    pub path: PathBuf,
    /// Delivered or dead entries older than this are deleted.
    pub prune_after: Duration,
    /// First retry delay.
    pub retry_min: Duration,
    /// Cap of the growing retry delay.
    pub retry_max: Duration,
}

/// `[http]`: the endpoint Bitrix24 POSTs events (`ONEXTERNALCALLSTART`) to.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// URL path of the event handler (what `event.bind` was given).
    pub path: String,
    /// A request head must arrive within this (an idle keep-alive connection included).
    pub header_read_timeout: Duration,
    /// A whole request (head and body) must arrive within this.
    pub request_timeout: Duration,
    /// Connections open at once; more wait in the listen backlog.
    pub max_connections: u32,
    /// Requests served on one connection before it is closed.
    pub max_requests_per_connection: u32,
}

/// `[click_to_call]`: calls started from the CRM.
#[derive(Debug, Clone)]
pub struct ClickToCallConfig {
    /// Dialplan context the customer number is transferred to once the agent answers.
    pub context: String,
    /// Dialplan type (`XML`).
    pub dialplan: String,
    /// How long the agent's phone rings before the click-to-call is abandoned.
    pub originate_timeout: Duration,
    /// Caller id presented to the customer; `None` leaves it to the dialplan.
    pub caller_id_number: Option<PhoneNumber>,
    /// How the customer's number is dialled (`gateway`, or `profile` + `host`); required to run
    /// click-to-call.
    pub customer: Option<super::CustomerRoute>,
    /// How long the customer's phone rings.
    pub customer_ring_timeout: Duration,
    /// A click-to-call whose end was never seen is finished after this long.
    pub max_duration: Duration,
    /// A click registered by Bitrix24 longer ago than this is not dialled.
    pub max_event_age: Duration,
    /// The same user and number clicked again within this is dialled once.
    pub repeat_window: Duration,
}

/// `[log]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Output format (the `FSB24_LOG_FORMAT` environment variable overrides it).
    pub format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}
