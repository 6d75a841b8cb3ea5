//! Everything the fake portal knows, behind one mutex: the request log, calls, card
//! timeline, CRM, lines, tokens, limiter, event bindings and stored recordings.
//! Handlers lock it briefly and never across an await.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use super::auth::{AuthKind, Tokens};
use super::crm::{Crm, EntityKind};
use super::limiter::{Limiter, OperatingLedger};
use super::options::{ErrorStyle, Outage, PeerOptions};
use super::timeline::{CardInterval, Timeline};

/// One HTTP request the portal answered.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// Lower-case method name (`telephony.externalcall.register`, `batch`, `oauth.token`, `upload`).
    pub method: String,
    /// The method name exactly as it appeared in the path.
    pub method_as_sent: String,
    /// Merged parameters without `auth`.
    pub params: Value,
    /// How it authenticated.
    pub auth: AuthKind,
    /// HTTP verb.
    pub http_method: String,
    /// Request `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Arrival time.
    pub at: Instant,
    /// HTTP status answered.
    pub status: u16,
    /// The JSON body answered (`Null` for redirects).
    pub response: Value,
    /// For `batch`: the sub-calls in execution order.
    pub sub_calls: Vec<SubCall>,
}

/// One sub-call of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct SubCall {
    /// Command name (key of `cmd`).
    pub name: String,
    /// Lower-case method name.
    pub method: String,
    /// Parsed parameters after `$result[..]` substitution.
    pub params: Value,
    /// Whether it succeeded.
    pub ok: bool,
}

/// A call registered on the portal (active or finished).
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    /// `externalCall.<32 hex>.<unix>`.
    pub call_id: String,
    /// `EXTERNAL_CALL_ID` as given.
    pub external_call_id: Option<String>,
    /// Owner (`USER_ID` / resolved `USER_PHONE_INNER`).
    pub user_id: u64,
    /// Normalised client number.
    pub phone: String,
    /// `TYPE` 1..5.
    pub call_type: u8,
    /// `LINE_NUMBER` as given (trimmed).
    pub line: Option<String>,
    /// Start time, unix seconds (from `CALL_START_DATE` or the peer clock).
    pub start_unix: i64,
    /// `SHOW` as interpreted.
    pub show: bool,
    /// `CRM_CREATE` as interpreted.
    pub crm_create: bool,
    /// Whether the number was an employee's extension.
    pub internal: bool,
    /// CRM binding.
    pub crm: Option<(EntityKind, u64)>,
    /// Entities created for this call.
    pub created: Vec<(EntityKind, u64)>,
    /// Whether registration came through a webhook (app-less namespace).
    pub via_webhook: bool,
    /// Arrival time of the registering request.
    pub registered_at: Instant,
    /// How many later registers were collapsed onto this call by de-duplication.
    pub dedup_hits: u32,
    /// The finish, once finished.
    pub finished: Option<FinishRecord>,
}

/// The statistics row written by `finish`.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishRecord {
    /// Statistics row id.
    pub stat_id: u64,
    /// Finishing user.
    pub user_id: u64,
    /// `DURATION` (talk time).
    pub duration: i64,
    /// `STATUS_CODE` after defaulting.
    pub status_code: String,
    /// 1 iff duration > 0.
    pub call_status: u8,
    /// 304 on an incoming call.
    pub missed: bool,
    /// `COST`.
    pub cost: f64,
    /// `COST_CURRENCY`.
    pub cost_currency: String,
    /// `FAILED_REASON`.
    pub failed_reason: String,
    /// `VOTE`.
    pub vote: i64,
    /// `ADD_TO_CHAT` as sent (None when omitted).
    pub add_to_chat: Option<bool>,
    /// `RECORD_URL` as sent.
    pub record_url: Option<String>,
    /// Arrival time of the finishing request.
    pub at: Instant,
}

impl FinishRecord {
    /// Asserts an answered call's finish: STATUS_CODE 200 and `secs` of talk. DURATION is
    /// billsec, counted on whole epoch seconds as FreeSWITCH does, so `secs` of talk reads
    /// `secs` or `secs + 1`.
    pub fn assert_talked(&self, secs: i64) {
        assert_eq!(self.status_code, "200", "{}", self.failed_reason);
        assert!(
            (secs..=secs + 1).contains(&self.duration),
            "DURATION {} for {secs} s of talk",
            self.duration
        );
    }
}

/// An external line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Line id.
    pub id: u64,
    /// `NUMBER`.
    pub number: String,
    /// `NAME`.
    pub name: String,
    /// `CRM_AUTO_CREATE` Y/N.
    pub crm_auto_create: bool,
    /// Whether it belongs to the webhook namespace.
    pub webhook_ns: bool,
}

/// A recording the portal received through attachRecord.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// The call.
    pub call_id: String,
    /// `FILE_ID` answered.
    pub file_id: u64,
    /// File name used.
    pub filename: String,
    /// The exact bytes received.
    pub bytes: Vec<u8>,
    /// `"inline"`, `"url"` or `"upload"`.
    pub mode: &'static str,
}

/// An `event.bind` registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBinding {
    /// Upper-case event code.
    pub event: String,
    /// Handler URL (empty for offline).
    pub handler: String,
    /// `auth_type` user (0 = none).
    pub auth_type: u64,
    /// Offline binding.
    pub offline: bool,
}

/// A pending two-step upload (attachRecord mode C).
#[derive(Debug, Clone)]
pub struct PendingUpload {
    /// The call.
    pub call_id: String,
}

/// Run-time switches tests may flip.
#[derive(Debug, Clone)]
pub struct Switches {
    /// `ERROR_CORE` vs `""`.
    pub error_style: ErrorStyle,
    /// Webhooks refused on register/finish/externalLine.*.
    pub webhook_wrong_auth_type: bool,
    /// Current outage.
    pub outage: Option<Outage>,
    /// Whether `/rest/...` answers 302 to `/renamed/rest/...`.
    pub redirect: bool,
    /// Scopes the credentials lack (§3.6): their methods answer `insufficient_scope`.
    pub missing_scopes: Vec<String>,
}

/// The portal's state.
#[derive(Debug)]
pub struct PeerState {
    /// Every answered request.
    pub requests: Vec<RecordedRequest>,
    /// Calls by registration order.
    pub calls: Vec<CallRecord>,
    /// Card visibility.
    pub timeline: Timeline,
    /// Users and CRM.
    pub crm: Crm,
    /// External lines.
    pub lines: Vec<Line>,
    /// OAuth tokens.
    pub tokens: Tokens,
    /// Leaky bucket.
    pub limiter: Limiter,
    /// Operating budget ledger.
    pub operating: OperatingLedger,
    /// Event bindings.
    pub events: Vec<EventBinding>,
    /// Received recordings.
    pub records: Vec<StoredRecord>,
    /// Mode C uploads by token.
    pub uploads: HashMap<String, PendingUpload>,
    /// Accepted transcripts.
    pub transcripts: Vec<super::transcript::Transcript>,
    /// Injected one-shot faults by lower-case method, consumed in order.
    pub faults: Vec<(String, super::options::Fault)>,
    /// Events POSTed to the connector.
    pub deliveries: Vec<super::outgoing::Delivery>,
    /// Events queued for `event.offline.get`.
    pub offline: super::offline::OfflineQueue,
    /// Switches.
    pub switches: Switches,
    /// How far the peer clock runs ahead of real time.
    pub clock_offset: Duration,
    /// How far the unix clock is turned back meanwhile (a call registered in the past).
    pub unix_rewind: Duration,
    next_id: u64,
}

impl PeerState {
    /// Fresh state for `opts`.
    pub fn new(opts: &PeerOptions) -> Self {
        Self {
            requests: Vec::new(),
            calls: Vec::new(),
            timeline: Timeline::default(),
            crm: Crm::default(),
            lines: Vec::new(),
            tokens: Tokens::default(),
            limiter: Limiter::new(opts.bucket),
            operating: OperatingLedger::default(),
            events: Vec::new(),
            records: Vec::new(),
            uploads: HashMap::new(),
            deliveries: Vec::new(),
            offline: super::offline::OfflineQueue::default(),
            faults: Vec::new(),
            transcripts: Vec::new(),
            switches: Switches {
                error_style: opts.error_style,
                webhook_wrong_auth_type: opts.webhook_wrong_auth_type,
                outage: None,
                redirect: false,
                missing_scopes: Vec::new(),
            },
            clock_offset: Duration::ZERO,
            unix_rewind: Duration::ZERO,
            next_id: 4400,
        }
    }

    /// Peer clock: real tokio time plus the injected offset.
    pub fn now(&self) -> Instant {
        Instant::now() + self.clock_offset
    }

    /// Peer clock as unix seconds.
    pub fn now_unix(&self) -> f64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        (real + self.clock_offset)
            .saturating_sub(self.unix_rewind)
            .as_secs_f64()
    }

    /// A fresh id for statistics rows, files, activities and lines.
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A call by `CALL_ID`.
    pub fn call(&self, call_id: &str) -> Option<&CallRecord> {
        self.calls.iter().find(|c| c.call_id == call_id)
    }

    /// A call by `CALL_ID`, mutable.
    pub fn call_mut(&mut self, call_id: &str) -> Option<&mut CallRecord> {
        self.calls.iter_mut().find(|c| c.call_id == call_id)
    }

    /// The card intervals of a call.
    pub fn card_timeline(&self, call_id: &str) -> Vec<CardInterval> {
        self.timeline.intervals(call_id)
    }
}

/// State plus its change notification, shared by the server and the test handle.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<PeerState>,
    changed: watch::Sender<u64>,
    /// Start-up options.
    pub opts: PeerOptions,
    /// `http://127.0.0.1:port` (no trailing slash).
    pub base_url: String,
    /// Client for attachRecord mode B downloads.
    pub http: reqwest::Client,
}

impl Shared {
    /// Wraps fresh state.
    pub fn new(opts: PeerOptions, base_url: String) -> Self {
        let state = Mutex::new(PeerState::new(&opts));
        Self {
            state,
            changed: watch::Sender::new(0),
            opts,
            base_url,
            http: reqwest::Client::new(),
        }
    }

    /// Locks the state (a poisoned lock is taken over: a panicking test already failed).
    pub fn lock(&self) -> MutexGuard<'_, PeerState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the state and wakes every waiter.
    pub fn update<T>(&self, f: impl FnOnce(&mut PeerState) -> T) -> T {
        let out = f(&mut self.lock());
        self.changed.send_modify(|v| *v += 1);
        out
    }

    /// Subscribes to change notifications.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}
