//! Bitrix24 REST client: typed telephony, CRM, user and event methods over one HTTP
//! transport with credentials (webhook or OAuth with single-flight refresh), a client-side
//! leaky bucket and `batch` coalescing. Only this module knows Bitrix24 JSON; callers speak
//! domain types. It owns its request and answer types and imports nothing from the outbox,
//! whose adapter (`outbox::bitrix`) brings writes here; nothing here is durable except tokens.

pub(crate) mod auth;
pub(crate) mod batch;
mod batcher;
mod call;
mod client;
pub(crate) mod error;
pub(crate) mod limiter;
mod methods;
pub(crate) mod metrics;
pub(crate) mod operating;
mod record;
mod transport;
pub mod wire;

pub use auth::{
    AuthSettings, OAuthSettings, SecretString, TokenFile, WebhookUrl, secure_or_loopback,
};
pub use call::{CallType, CrmBinding, FinishCall, RegisterCall};
pub use client::{BitrixClient, BitrixSettings};
pub use error::{BitrixError, ErrorKind};
pub use limiter::RateLimit;
pub use methods::AttachMode;
pub use metrics::{BitrixMetrics, LastError, PortalState, WireWatch};
