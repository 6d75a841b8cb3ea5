//! The call-card requests fsb24 sends (`register`, `finish`) and the CRM binding a call gets:
//! plain data, owned here with the methods that send them. The outbox stores them whole (JSON),
//! so a retry sends byte-identical parameters.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use super::wire::CrmEntityType;
use crate::ids::{BitrixUserId, PhoneNumber};

/// `TYPE` of `telephony.externalcall.register`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallType {
    /// 1: outgoing.
    Outgoing,
    /// 2: incoming.
    Incoming,
    /// 3: incoming, redirected to a mobile or landline.
    IncomingRedirected,
    /// 4: callback.
    Callback,
}

/// A CRM entity a call is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmBinding {
    /// `CONTACT`, `COMPANY`, `LEAD` or `DEAL`.
    pub entity_type: CrmEntityType,
    /// The entity id.
    pub entity_id: u64,
}

impl CrmBinding {
    /// Reads a binding stored as text (the store holds what it was given), keeping only a
    /// known entity type and a real id: what an older build stored as any string stays readable.
    pub(crate) fn lenient<'de, D>(d: D) -> Result<Option<Self>, D::Error>
    where
        D: serde::Deserializer<'de>,
    {
        #[derive(Deserialize)]
        struct Stored {
            entity_type: String,
            entity_id: u64,
        }
        let stored = Option::<Stored>::deserialize(d)?;
        Ok(stored.and_then(|s| {
            let entity_type = CrmEntityType::parse(&s.entity_type)?;
            (s.entity_id > 0).then_some(Self {
                entity_type,
                entity_id: s.entity_id,
            })
        }))
    }
}

/// Everything `register` needs. Stored whole when the call starts, so that a retry (after a
/// timeout or a crash) sends byte-identical parameters and hits Bitrix24's re-registration key
/// (phone + type + user + line + EXTERNAL_CALL_ID) instead of creating a second call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterCall {
    /// The Bitrix24 user who owns the call (gets the card when `show` is true).
    pub user: BitrixUserId,
    /// The client's number.
    pub phone: PhoneNumber,
    /// Direction.
    pub call_type: CallType,
    /// Our external line (`LINE_NUMBER`), normally the DID.
    pub line_number: Option<String>,
    /// When the call started on the PBX (sent with its offset as `CALL_START_DATE`).
    pub started_at: DateTime<FixedOffset>,
    /// `CRM_CREATE`.
    pub crm_create: bool,
    /// `SHOW`. The worker forces 0 when the call is already over by the time it is sent.
    pub show: bool,
    /// Force a CRM binding (`CRM_ENTITY_TYPE` / `CRM_ENTITY_ID`).
    #[serde(default, deserialize_with = "CrmBinding::lenient")]
    pub crm: Option<CrmBinding>,
}

/// Everything `finish` needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishCall {
    /// Who talked (or the configured missed-call owner).
    pub user: BitrixUserId,
    /// Talk time in whole seconds (`DURATION`); 0 when nobody answered.
    pub duration_secs: u32,
    /// `STATUS_CODE` (`200`, `304`, `486`, `603-S`, ...).
    pub status_code: String,
    /// `ADD_TO_CHAT`.
    pub add_to_chat: bool,
    /// `FAILED_REASON`, if any.
    pub failed_reason: Option<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Holder {
        #[serde(default, deserialize_with = "CrmBinding::lenient")]
        crm: Option<CrmBinding>,
    }

    // Stored register results hold the binding as the portal spelled it: a known type stays
    // typed, anything else reads as no binding instead of failing the whole entry.
    #[test]
    fn a_stored_binding_reads_typed_or_not_at_all() {
        let read = |json: &str| serde_json::from_str::<Holder>(json).unwrap().crm;
        let contact = Some(CrmBinding {
            entity_type: CrmEntityType::Contact,
            entity_id: 311,
        });
        assert_eq!(
            read(r#"{"crm":{"entity_type":"CONTACT","entity_id":311}}"#),
            contact
        );
        assert_eq!(
            read(r#"{"crm":{"entity_type":"contact","entity_id":311}}"#),
            contact
        );
        assert_eq!(
            read(r#"{"crm":{"entity_type":"SMART_PROCESS","entity_id":3}}"#),
            None
        );
        assert_eq!(read(r#"{"crm":null}"#), None);
        assert_eq!(read("{}"), None);
        let stored = serde_json::to_string(&contact).unwrap();
        assert_eq!(stored, r#"{"entity_type":"CONTACT","entity_id":311}"#);
    }
}
