//! A faithful fake Bitrix24 portal for wire-level tests: a real axum server on 127.0.0.1
//! implementing the telephony, CRM, user, event and batch methods of
//! /work/shared/bitrix24-telephony.md with their validation, error texts and limits.
//! Tests seed it, flip switches and outages, and assert on recorded requests, calls,
//! card timelines, stored recordings and bucket figures. It never decides for the client.

mod auth;
mod batch;
mod crm;
mod envelope;
mod events;
mod install;
mod limiter;
mod lines;
mod methods;
mod multipart;
mod observe;
mod offline;
mod options;
mod outgoing;
mod params;
mod record;
mod request;
mod seed;
mod server;
mod state;
mod telephony;
mod timeline;
mod token;
mod transcript;
mod users;

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::Instant;

// Re-exported for tests across the binary; not every test module uses every item.
#[allow(unused_imports)]
pub use auth::{AuthKind, TokenPair};
#[allow(unused_imports)]
pub use crm::{CrmEntity, EntityKind, SeedUser, normalize_phone};
#[allow(unused_imports)]
pub use envelope::iso_date;
#[allow(unused_imports)]
pub use limiter::Arrival;
#[allow(unused_imports)]
pub use methods::METHODS;
#[allow(unused_imports)]
pub use options::{
    BucketConfig, ErrorStyle, Fault, OperatingBudget, Outage, PeerOptions, WebhookCredential,
};
#[allow(unused_imports)]
pub use outgoing::{ClickToCall, Delivery};
#[allow(unused_imports)]
pub use record::is_audio;
pub use seed::{COMPANY_PHONE, CONTACT_PHONE, LEAD_PHONE};
#[allow(unused_imports)]
pub use state::{
    CallRecord, EventBinding, FinishRecord, Line, PeerState, RecordedRequest, StoredRecord, SubCall,
};
#[allow(unused_imports)]
pub use timeline::CardInterval;
#[allow(unused_imports)]
pub use token::TOKEN_METHOD;
#[allow(unused_imports)]
pub use transcript::Transcript;

use server::Running;
use state::Shared;

/// Failsafe for every wait on the peer; reaching it is a test failure, not a synchronisation.
pub const FAILSAFE: Duration = Duration::from_secs(5);

/// One method invocation, direct or inside a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodCall {
    /// Lower-case method name.
    pub method: String,
    /// Parameters (after batch substitution).
    pub params: serde_json::Value,
    /// Arrival time of the carrying HTTP request.
    pub at: Instant,
    /// Batch command name when it came inside a batch.
    pub batch_name: Option<String>,
    /// Whether it succeeded.
    pub ok: bool,
}

/// Handle to a running fake portal. Dropping it stops the server.
#[derive(Debug)]
pub struct BitrixPeer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    running: Mutex<Option<Running>>,
    cursor: AtomicUsize,
    initial: TokenPair,
}

impl BitrixPeer {
    /// Binds 127.0.0.1:0, issues the installer's token pair and starts serving.
    pub async fn start(opts: PeerOptions) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind bitrix peer listener");
        let addr = listener.local_addr().expect("bitrix peer local addr");
        let shared = Arc::new(Shared::new(opts, format!("http://{addr}")));
        let installer = shared.opts.installer_user_id;
        let initial = shared.update(|st| {
            let now = st.now();
            st.tokens.issue(installer, now, shared.opts.token_ttl)
        });
        let running = Running::spawn(shared.clone(), listener);
        Self {
            shared,
            addr,
            running: Mutex::new(Some(running)),
            cursor: AtomicUsize::new(0),
            initial,
        }
    }

    // === Addresses and credentials ===

    /// Listening address (stable across `Outage::Refuse` and `restore`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port` without a trailing slash.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// OAuth REST base `http://127.0.0.1:port/rest/` (the `client_endpoint`).
    pub fn rest_url(&self) -> String {
        format!("{}/rest/", self.shared.base_url)
    }

    /// REST base after the portal "rename" (target of redirect mode).
    pub fn renamed_rest_url(&self) -> String {
        format!("{}/renamed/rest/", self.shared.base_url)
    }

    /// Incoming-webhook base `.../rest/{user_id}/{secret}/`, if a webhook is configured.
    pub fn webhook_url(&self) -> Option<String> {
        let hook = self.shared.opts.webhook.as_ref()?;
        Some(format!(
            "{}/rest/{}/{}/",
            self.shared.base_url, hook.user_id, hook.secret
        ))
    }

    /// Token endpoint `http://127.0.0.1:port/oauth/token/`.
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token/", self.shared.base_url)
    }

    /// The options the peer started with.
    pub fn options(&self) -> &PeerOptions {
        &self.shared.opts
    }

    /// The installer's token pair issued at start.
    pub fn tokens(&self) -> TokenPair {
        self.initial.clone()
    }

    /// The most recently issued pair (after refreshes, the current one).
    pub fn latest_tokens(&self) -> TokenPair {
        self.shared
            .lock()
            .tokens
            .latest()
            .unwrap_or_else(|| self.initial.clone())
    }

    /// Issues an extra pair for `user_id`.
    pub fn issue_tokens(&self, user_id: u64) -> TokenPair {
        let ttl = self.shared.opts.token_ttl;
        self.shared.update(|st| {
            let now = st.now();
            st.tokens.issue(user_id, now, ttl)
        })
    }

    /// Makes every access token issued so far expired (`401 expired_token`).
    pub fn expire_access_tokens(&self) {
        self.shared.update(|st| {
            let now = st.now();
            st.tokens.expire_all(now);
        });
    }

    /// Revokes one access token (`401 invalid_token`).
    pub fn revoke_access_token(&self, access: &str) {
        self.shared.update(|st| st.tokens.revoke(access));
    }

    /// Moves the peer clock forward (token expiry, de-dup window, `time`, operating budget).
    pub fn advance_clock(&self, by: Duration) {
        self.shared.update(|st| st.clock_offset += by);
    }

    /// Successful refreshes at the token endpoint.
    pub fn refresh_count(&self) -> u64 {
        self.shared.lock().tokens.refresh_count()
    }

    // === Seeding and switches ===

    /// Adds or replaces a user.
    pub fn add_user(&self, user: SeedUser) {
        self.shared.update(|st| st.crm.upsert_user(user));
    }

    /// Adds or replaces a CRM entity.
    pub fn add_entity(&self, entity: CrmEntity) {
        self.shared.update(|st| st.crm.upsert_entity(entity));
    }

    /// A CRM entity as stored now (e.g. a lead created by `CRM_CREATE`).
    pub fn entity(&self, kind: EntityKind, id: u64) -> Option<CrmEntity> {
        self.shared.lock().crm.entity(kind, id).cloned()
    }

    /// All CRM entities.
    pub fn entities(&self) -> Vec<CrmEntity> {
        self.shared.lock().crm.entities.clone()
    }

    /// `ERROR_CORE` vs `""` for telephony business errors.
    pub fn set_error_style(&self, style: ErrorStyle) {
        self.shared.update(|st| st.switches.error_style = style);
    }

    /// Scopes the credentials lack: `telephony.*`, `crm.*` or `user.*` answer
    /// `insufficient_scope` (401).
    pub fn set_missing_scopes(&self, scopes: &[&str]) {
        let scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        self.shared.update(|st| st.switches.missing_scopes = scopes);
    }

    /// Whether webhooks get 403 WRONG_AUTH_TYPE on register/finish/externalLine.*.
    pub fn set_webhook_wrong_auth_type(&self, refuse: bool) {
        self.shared
            .update(|st| st.switches.webhook_wrong_auth_type = refuse);
    }

    /// Redirect mode: `/rest/...` answers 302 to `/renamed/rest/...` on the same server.
    pub fn set_redirect(&self, on: bool) {
        self.shared.update(|st| st.switches.redirect = on);
    }

    /// Replaces the leaky-bucket parameters (current level kept).
    pub fn set_bucket(&self, config: BucketConfig) {
        self.shared.update(|st| st.limiter.reconfigure(config));
    }

    /// Puts the portal into an outage. `Refuse` closes the listener (waits until it is closed).
    pub async fn go_down(&self, outage: Outage) {
        if outage == Outage::Refuse {
            let running = self
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            if let Some(running) = running {
                running.stop().await;
            }
        } else {
            self.ensure_listening().await;
        }
        self.shared.update(|st| st.switches.outage = Some(outage));
    }

    /// Ends any outage; after `Refuse` the listener is re-bound on the same port.
    pub async fn restore(&self) {
        self.ensure_listening().await;
        self.shared.update(|st| st.switches.outage = None);
    }

    /// Makes the next `times` calls of `method` (any case; direct or in a batch) fail with `fault`.
    pub fn fail_next(&self, method: &str, times: usize, fault: Fault) {
        let method = method.to_ascii_lowercase();
        self.shared.update(|st| {
            st.faults
                .extend(std::iter::repeat_n((method, fault), times))
        });
    }

    /// Stops the server and waits until its listener is closed.
    pub async fn shutdown(self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(running) = running {
            running.stop().await;
        }
    }

    async fn ensure_listening(&self) {
        if self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
        {
            return;
        }
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("re-bind bitrix peer on the same port");
        let running = Running::spawn(self.shared.clone(), listener);
        *self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(running);
    }
}

impl Drop for BitrixPeer {
    fn drop(&mut self) {
        if let Some(running) = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
        {
            running.cancel();
        }
    }
}
