//! Bitrix24 REST wire format: method names, parameter and result field names, the response
//! envelope and the quirks of its typing. This is the only place that spells Bitrix24 names;
//! everything above it speaks typed requests and results. No IO here.

mod directory;
mod lenient;
mod query;
mod telephony;

pub use directory::*;
pub use lenient::MapOrEmpty;
pub use query::to_query;
pub use telephony::*;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// Every Bitrix24 REST method fsb24 calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `telephony.externalcall.register`.
    Register,
    /// `telephony.externalcall.show`.
    Show,
    /// `telephony.externalcall.hide`.
    Hide,
    /// `telephony.externalcall.finish`.
    Finish,
    /// `telephony.externalcall.attachRecord`.
    AttachRecord,
    /// `telephony.externalcall.searchCrmEntities`.
    SearchCrmEntities,
    /// `telephony.externalLine.add`.
    ExternalLineAdd,
    /// `telephony.externalLine.get`.
    ExternalLineGet,
    /// `telephony.externalLine.update`.
    ExternalLineUpdate,
    /// `user.get`.
    UserGet,
    /// `crm.lead.get` / `crm.contact.get` / `crm.company.get` / `crm.deal.get`.
    CrmGet(CrmEntityType),
    /// `event.bind`.
    EventBind,
    /// `event.get`.
    EventGet,
    /// `event.offline.get`.
    EventOfflineGet,
    /// `event.offline.clear`.
    EventOfflineClear,
    /// `event.offline.error`.
    EventOfflineError,
    /// `app.info` (checks an installation's first access token).
    AppInfo,
    /// `batch`.
    Batch,
    /// The multipart upload to an `uploadUrl` handed out by `attachRecord` (not a REST method).
    Upload,
    /// The OAuth token endpoint (`{server}/oauth/token/`, not a REST method).
    TokenRefresh,
}

impl Method {
    /// The method name as sent in the URL (Bitrix24 lower-cases method names, so case is cosmetic).
    pub fn name(self) -> &'static str {
        match self {
            Self::Register => "telephony.externalcall.register",
            Self::Show => "telephony.externalcall.show",
            Self::Hide => "telephony.externalcall.hide",
            Self::Finish => "telephony.externalcall.finish",
            Self::AttachRecord => "telephony.externalcall.attachRecord",
            Self::SearchCrmEntities => "telephony.externalcall.searchCrmEntities",
            Self::ExternalLineAdd => "telephony.externalLine.add",
            Self::ExternalLineGet => "telephony.externalLine.get",
            Self::ExternalLineUpdate => "telephony.externalLine.update",
            Self::UserGet => "user.get",
            Self::CrmGet(CrmEntityType::Lead) => "crm.lead.get",
            Self::CrmGet(CrmEntityType::Contact) => "crm.contact.get",
            Self::CrmGet(CrmEntityType::Company) => "crm.company.get",
            Self::CrmGet(CrmEntityType::Deal) => "crm.deal.get",
            Self::EventBind => "event.bind",
            Self::EventGet => "event.get",
            Self::EventOfflineGet => "event.offline.get",
            Self::EventOfflineClear => "event.offline.clear",
            Self::EventOfflineError => "event.offline.error",
            Self::AppInfo => "app.info",
            Self::Batch => "batch",
            Self::Upload => "upload",
            Self::TokenRefresh => "oauth.token",
        }
    }

    /// Whether the method may travel inside a `batch`: never `batch` itself (no nesting), never
    /// file uploads (`ERROR_BATCH_METHOD_NOT_ALLOWED`), never non-REST endpoints.
    pub fn batchable(self) -> bool {
        !matches!(
            self,
            Self::Batch | Self::AttachRecord | Self::Upload | Self::TokenRefresh
        )
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A CRM entity type as Bitrix24 names it in `CRM_ENTITY_TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CrmEntityType {
    /// `LEAD`.
    Lead,
    /// `CONTACT`.
    Contact,
    /// `COMPANY`.
    Company,
    /// `DEAL`.
    Deal,
}

impl CrmEntityType {
    /// Parses `LEAD` / `CONTACT` / `COMPANY` / `DEAL` (any case, an optional `CRM_` prefix as
    /// click-to-call events may carry); anything else is `None`.
    pub fn parse(raw: &str) -> Option<Self> {
        let upper = raw.trim().to_ascii_uppercase();
        match upper.strip_prefix("CRM_").unwrap_or(&upper) {
            "LEAD" => Some(Self::Lead),
            "CONTACT" => Some(Self::Contact),
            "COMPANY" => Some(Self::Company),
            "DEAL" => Some(Self::Deal),
            _ => None,
        }
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lead => "LEAD",
            Self::Contact => "CONTACT",
            Self::Company => "COMPANY",
            Self::Deal => "DEAL",
        }
    }
}

/// A boolean parameter sent as the integer `0`/`1`: Bitrix24 reads the strings `"N"` and `"false"`
/// as true (any non-empty string is truthy in PHP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag(pub bool);

impl Serialize for Flag {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(u8::from(self.0))
    }
}

/// The JSON body of every REST answer: `result` (+ `total`/`next` for lists) or `error`.
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    /// The method's result; any JSON type.
    #[serde(default)]
    pub result: Option<Value>,
    /// The error code; present (possibly empty, `""`) exactly when the call failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Human text for the error.
    #[serde(default)]
    pub error_description: Option<String>,
    /// Offset of the next page of a list method.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub next: Option<u64>,
    /// Total number of items of a list method.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub total: Option<u64>,
    /// The `time` object (kept raw: its keys vary between portals and versions).
    #[serde(default)]
    pub time: Option<Value>,
}

impl Envelope {
    /// `time.operating_reset_at` (unix seconds), when the portal reported it.
    pub fn operating_reset_at(&self) -> Option<i64> {
        let at = self.time.as_ref()?.get("operating_reset_at")?;
        #[allow(clippy::cast_possible_truncation)]
        at.as_i64().or_else(|| at.as_f64().map(|f| f.ceil() as i64))
    }
}

/// An error object as it appears in an envelope, in `result_error` of a batch, or from the OAuth
/// token server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorBody {
    /// The code (`QUERY_LIMIT_EXCEEDED`, `expired_token`, `ERROR_CORE`, or `""`).
    #[serde(default, deserialize_with = "lenient::string_or_null")]
    pub error: String,
    /// The human text.
    #[serde(default, deserialize_with = "lenient::string_or_null")]
    pub error_description: String,
}
