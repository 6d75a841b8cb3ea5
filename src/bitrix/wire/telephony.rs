//! `telephony.*` parameters and results (Bitrix24 telephony reference §6).

use serde::{Deserialize, Serialize};

use super::lenient;
use super::{CrmEntityType, Flag};
use crate::bitrix::call::{CallType, CrmBinding, FinishCall, RegisterCall};
use crate::ids::{BitrixCallId, BitrixUserId, ExternalCallId};

/// `telephony.externalcall.register` parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegisterParams {
    /// `USER_ID`.
    #[serde(rename = "USER_ID")]
    pub user: u64,
    /// `PHONE_NUMBER` (`+` and digits; JSON bodies keep the `+`, queries encode it as `%2B`).
    #[serde(rename = "PHONE_NUMBER")]
    pub phone: String,
    /// `TYPE` (1..=4).
    #[serde(rename = "TYPE")]
    pub call_type: u8,
    /// `CALL_START_DATE`, RFC 3339 with the PBX's offset: without one the portal reads it in its
    /// own time zone.
    #[serde(rename = "CALL_START_DATE")]
    pub start_date: String,
    /// `CRM_CREATE`.
    #[serde(rename = "CRM_CREATE")]
    pub crm_create: Flag,
    /// `SHOW`.
    #[serde(rename = "SHOW")]
    pub show: Flag,
    /// `LINE_NUMBER`.
    #[serde(rename = "LINE_NUMBER", skip_serializing_if = "Option::is_none")]
    pub line_number: Option<String>,
    /// `EXTERNAL_CALL_ID`: always sent; without it overlapping calls from one number collapse
    /// into one `CALL_ID` and the second `finish` fails.
    #[serde(rename = "EXTERNAL_CALL_ID")]
    pub external_call_id: String,
    /// `CRM_ENTITY_TYPE`.
    #[serde(rename = "CRM_ENTITY_TYPE", skip_serializing_if = "Option::is_none")]
    pub crm_entity_type: Option<String>,
    /// `CRM_ENTITY_ID`.
    #[serde(rename = "CRM_ENTITY_ID", skip_serializing_if = "Option::is_none")]
    pub crm_entity_id: Option<u64>,
}

impl RegisterParams {
    /// Builds the parameters of one call's registration.
    pub fn new(call: &ExternalCallId, req: &RegisterCall) -> Self {
        Self {
            user: req.user.0,
            phone: req.phone.as_str().to_owned(),
            call_type: call_type_code(req.call_type),
            start_date: req.started_at.to_rfc3339(),
            crm_create: Flag(req.crm_create),
            show: Flag(req.show),
            line_number: req.line_number.clone(),
            external_call_id: call.as_str().to_owned(),
            crm_entity_type: req.crm.map(|c| c.entity_type.as_str().to_owned()),
            crm_entity_id: req.crm.map(|c| c.entity_id),
        }
    }
}

/// `TYPE` code of a call direction.
pub fn call_type_code(t: CallType) -> u8 {
    match t {
        CallType::Outgoing => 1,
        CallType::Incoming => 2,
        CallType::IncomingRedirected => 3,
        CallType::Callback => 4,
    }
}

/// A CRM entity created by `register` (`CRM_CREATED_ENTITIES[]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CreatedEntity {
    /// `ENTITY_TYPE`.
    #[serde(
        rename = "ENTITY_TYPE",
        default,
        deserialize_with = "lenient::string_or_null"
    )]
    pub entity_type: String,
    /// `ENTITY_ID`.
    #[serde(rename = "ENTITY_ID", deserialize_with = "lenient::u64_flex")]
    pub entity_id: u64,
}

/// `telephony.externalcall.register` result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Registered {
    /// `CALL_ID`, needed by every later write of the call.
    #[serde(rename = "CALL_ID")]
    pub call_id: BitrixCallId,
    /// `CRM_ENTITY_TYPE` (absent when nothing matched: `""` or `null`).
    #[serde(
        rename = "CRM_ENTITY_TYPE",
        default,
        deserialize_with = "lenient::opt_string"
    )]
    pub crm_entity_type: Option<String>,
    /// `CRM_ENTITY_ID`.
    #[serde(
        rename = "CRM_ENTITY_ID",
        default,
        deserialize_with = "lenient::opt_u64"
    )]
    pub crm_entity_id: Option<u64>,
    /// `CRM_CREATED_LEAD`.
    #[serde(
        rename = "CRM_CREATED_LEAD",
        default,
        deserialize_with = "lenient::opt_u64"
    )]
    pub created_lead: Option<u64>,
    /// `CRM_CREATED_ENTITIES`.
    #[serde(
        rename = "CRM_CREATED_ENTITIES",
        default,
        deserialize_with = "lenient::list"
    )]
    pub created_entities: Vec<CreatedEntity>,
    /// `LEAD_CREATION_ERROR`: auto-creation failed, the call is still registered.
    #[serde(
        rename = "LEAD_CREATION_ERROR",
        default,
        deserialize_with = "lenient::opt_string"
    )]
    pub lead_creation_error: Option<String>,
}

impl Registered {
    /// The CRM entity the call was bound to: a known entity type with a real id, else none.
    pub fn crm(&self) -> Option<CrmBinding> {
        let entity_type = CrmEntityType::parse(self.crm_entity_type.as_deref()?)?;
        let entity_id = self.crm_entity_id.filter(|id| *id > 0)?;
        Some(CrmBinding {
            entity_type,
            entity_id,
        })
    }
}

/// `telephony.externalcall.show` / `.hide` parameters (one request, a `USER_ID` array).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardParams {
    /// `CALL_ID`.
    #[serde(rename = "CALL_ID")]
    pub call_id: String,
    /// `USER_ID` (always sent: older portals require it for `hide`).
    #[serde(rename = "USER_ID")]
    pub users: Vec<u64>,
}

impl CardParams {
    /// Parameters for these users.
    pub fn new(call_id: &BitrixCallId, users: &[BitrixUserId]) -> Self {
        Self {
            call_id: call_id.as_str().to_owned(),
            users: users.iter().map(|u| u.0).collect(),
        }
    }

    /// The `CALL_ID` and `USER_ID` field names, for merging queued commands.
    pub const CALL_ID: &'static str = "CALL_ID";
    /// See [`CardParams::CALL_ID`].
    pub const USER_ID: &'static str = "USER_ID";
}

/// `telephony.externalcall.finish` parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FinishParams {
    /// `CALL_ID` (must be a JSON string).
    #[serde(rename = "CALL_ID")]
    pub call_id: String,
    /// `USER_ID`.
    #[serde(rename = "USER_ID")]
    pub user: u64,
    /// `DURATION`: talk time; any value > 0 marks the call successful.
    #[serde(rename = "DURATION")]
    pub duration: u32,
    /// `STATUS_CODE`.
    #[serde(rename = "STATUS_CODE")]
    pub status_code: String,
    /// `ADD_TO_CHAT`, always explicit (its default differs between portal versions).
    #[serde(rename = "ADD_TO_CHAT")]
    pub add_to_chat: Flag,
    /// `FAILED_REASON`.
    #[serde(rename = "FAILED_REASON", skip_serializing_if = "Option::is_none")]
    pub failed_reason: Option<String>,
}

impl FinishParams {
    /// Parameters to finish a registered call.
    pub fn new(call_id: &BitrixCallId, req: &FinishCall) -> Self {
        Self {
            call_id: call_id.as_str().to_owned(),
            user: req.user.0,
            duration: req.duration_secs,
            status_code: req.status_code.clone(),
            add_to_chat: Flag(req.add_to_chat),
            failed_reason: req.failed_reason.clone(),
        }
    }
}

/// `telephony.externalcall.finish` result (the statistics row); only what fsb24 reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Finished {
    /// `ID` of the statistics row.
    #[serde(rename = "ID", default, deserialize_with = "lenient::opt_u64")]
    pub id: Option<u64>,
    /// `CALL_ID`.
    #[serde(rename = "CALL_ID", default, deserialize_with = "lenient::opt_string")]
    pub call_id: Option<String>,
    /// `CALL_STATUS`: 1 iff `DURATION` > 0.
    #[serde(rename = "CALL_STATUS", default, deserialize_with = "lenient::opt_u64")]
    pub call_status: Option<u64>,
    /// `CALL_FAILED_CODE`: the stored `STATUS_CODE`.
    #[serde(
        rename = "CALL_FAILED_CODE",
        default,
        deserialize_with = "lenient::opt_string"
    )]
    pub status_code: Option<String>,
    /// `CRM_ACTIVITY_ID`.
    #[serde(
        rename = "CRM_ACTIVITY_ID",
        default,
        deserialize_with = "lenient::opt_u64"
    )]
    pub crm_activity_id: Option<u64>,
}

/// `attachRecord` mode C, step 1: no `FILE_CONTENT`, ask for an upload URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachUploadParams {
    /// `CALL_ID`.
    #[serde(rename = "CALL_ID")]
    pub call_id: String,
    /// `FILENAME` (`*.mp3` / `*.wav`).
    #[serde(rename = "FILENAME")]
    pub filename: String,
}

/// `attachRecord` mode A: the JSON body is streamed (`FILE_CONTENT` is base64-encoded while the
/// file is read), so only its fixed parts are spelled here.
pub struct AttachInlineBody;

impl AttachInlineBody {
    /// The body up to the opening quote of the base64 text. `auth` is the OAuth token, if any.
    pub fn prefix(call_id: &BitrixCallId, filename: &str, auth: Option<&str>) -> String {
        let mut head = serde_json::Map::new();
        head.insert("CALL_ID".into(), call_id.as_str().into());
        head.insert("FILENAME".into(), filename.into());
        if let Some(token) = auth {
            head.insert(super::AUTH_PARAM.into(), token.into());
        }
        let head = serde_json::Value::Object(head).to_string();
        // `{"CALL_ID":..}` -> `{"CALL_ID":..,"FILE_CONTENT":"`
        format!("{},\"FILE_CONTENT\":\"", head.trim_end_matches('}'))
    }

    /// The body after the base64 text.
    pub const SUFFIX: &'static str = "\"}";
}

/// `attachRecord` result: the file id (modes A, B and the upload of C) or an upload URL (C).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AttachResult {
    /// `FILE_ID`.
    #[serde(rename = "FILE_ID", default, deserialize_with = "lenient::opt_u64")]
    pub file_id: Option<u64>,
    /// `uploadUrl` (embeds the access token: a secret).
    #[serde(
        rename = "uploadUrl",
        default,
        deserialize_with = "lenient::opt_string"
    )]
    pub upload_url: Option<String>,
    /// `fieldName`: the multipart part to carry the file (`file`).
    #[serde(
        rename = "fieldName",
        default,
        deserialize_with = "lenient::opt_string"
    )]
    pub field_name: Option<String>,
}

/// `telephony.externalcall.searchCrmEntities` parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchParams {
    /// `PHONE_NUMBER`.
    #[serde(rename = "PHONE_NUMBER")]
    pub phone: String,
}

/// The responsible user of a CRM match (`ASSIGNED_BY`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AssignedBy {
    /// `ID`.
    #[serde(rename = "ID")]
    pub id: BitrixUserId,
    /// `USER_PHONE_INNER`: the responsible's extension, if any.
    #[serde(
        rename = "USER_PHONE_INNER",
        default,
        deserialize_with = "lenient::opt_string"
    )]
    pub inner_number: Option<String>,
    /// `TIMEMAN_STATUS` (`OPENED`, `CLOSED`, ...).
    #[serde(
        rename = "TIMEMAN_STATUS",
        default,
        deserialize_with = "lenient::opt_string"
    )]
    pub timeman_status: Option<String>,
}

/// One element of a `searchCrmEntities` answer, in Bitrix24's priority order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CrmMatch {
    /// `CRM_ENTITY_TYPE` as sent.
    #[serde(
        rename = "CRM_ENTITY_TYPE",
        deserialize_with = "lenient::string_or_null"
    )]
    pub entity_type: String,
    /// `CRM_ENTITY_ID`.
    #[serde(rename = "CRM_ENTITY_ID", deserialize_with = "lenient::u64_flex")]
    pub entity_id: u64,
    /// `ASSIGNED_BY_ID`.
    #[serde(rename = "ASSIGNED_BY_ID", default)]
    pub assigned_by_id: Option<BitrixUserId>,
    /// `NAME`.
    #[serde(rename = "NAME", default, deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    /// `ASSIGNED_BY`.
    #[serde(rename = "ASSIGNED_BY", default)]
    pub assigned_by: Option<AssignedBy>,
}

impl CrmMatch {
    /// The entity type, if it is one fsb24 knows.
    pub fn kind(&self) -> Option<CrmEntityType> {
        CrmEntityType::parse(&self.entity_type)
    }
}

/// `telephony.externalLine.add` parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineAddParams {
    /// `NUMBER`.
    #[serde(rename = "NUMBER")]
    pub number: String,
    /// `NAME`.
    #[serde(rename = "NAME", skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `CRM_AUTO_CREATE`: unlike the telephony flags this one is `"Y"`/`"N"`.
    #[serde(rename = "CRM_AUTO_CREATE")]
    pub crm_auto_create: &'static str,
}

impl LineAddParams {
    /// Parameters for one line.
    pub fn new(number: &str, name: Option<&str>, crm_auto_create: bool) -> Self {
        Self {
            number: number.to_owned(),
            name: name.map(str::to_owned),
            crm_auto_create: if crm_auto_create { "Y" } else { "N" },
        }
    }
}

/// `telephony.externalLine.add` result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LineAdded {
    /// `ID`.
    #[serde(rename = "ID", deserialize_with = "lenient::u64_flex")]
    pub id: u64,
}

/// One line of `telephony.externalLine.get`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ExternalLine {
    /// `NUMBER`.
    #[serde(rename = "NUMBER", deserialize_with = "lenient::string_or_null")]
    pub number: String,
    /// `NAME`.
    #[serde(rename = "NAME", default, deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    /// `CRM_AUTO_CREATE`.
    #[serde(
        rename = "CRM_AUTO_CREATE",
        default,
        deserialize_with = "lenient::flag"
    )]
    pub crm_auto_create: bool,
}
