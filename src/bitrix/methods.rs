//! The typed Bitrix24 methods of [`BitrixClient`]: call cards (register / show / hide / finish /
//! attachRecord), CRM and user lookups, external lines and event subscriptions.

use std::path::Path;

use url::Url;

use super::auth::TokenFile;
use super::call::{FinishCall, RegisterCall};
use super::client::BitrixClient;
use super::error::{BitrixError, ErrorKind};
use super::record::{self, Inline};
use super::transport::Body;
use super::wire::{
    AttachResult, AttachUploadParams, CardParams, CrmEntity, CrmEntityType, CrmMatch,
    EventBindParams, EventHandler, EventName, ExternalLine, FinishParams, Finished, LineAddParams,
    LineAdded, Method, OfflineClearParams, OfflineErrorParams, OfflineEvents, OfflineGetParams,
    RegisterParams, Registered, SearchParams, User, active_users_params, crm_get_params,
};
use crate::ids::{BitrixCallId, BitrixUserId, ExternalCallId, PhoneNumber};

/// Upper bound on `user.get` pages (50 users each), against a portal that never stops paging.
const MAX_USER_PAGES: u64 = 2000;

/// How a recording was attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// `FILE_CONTENT` inline (mode A).
    Inline,
    /// `uploadUrl` + multipart (mode C).
    Upload,
}

impl BitrixClient {
    /// `telephony.externalcall.register` for call `call` (always sent as `EXTERNAL_CALL_ID`, so a
    /// retry within 30 minutes returns the same `CALL_ID`).
    pub async fn register(
        &self,
        call: &ExternalCallId,
        req: &RegisterCall,
    ) -> Result<Registered, BitrixError> {
        self.typed(Method::Register, RegisterParams::new(call, req), Some(call))
            .await
    }

    /// `telephony.externalcall.show` for `users` (one `USER_ID` array; show commands of one call
    /// queued together are merged). `false`: the call is unknown or already finished. No
    /// request is made for an empty list.
    pub async fn show(
        &self,
        call: &ExternalCallId,
        call_id: &BitrixCallId,
        users: &[BitrixUserId],
    ) -> Result<bool, BitrixError> {
        self.card(Method::Show, call, call_id, users).await
    }

    /// `telephony.externalcall.hide` for `users`; as [`BitrixClient::show`].
    pub async fn hide(
        &self,
        call: &ExternalCallId,
        call_id: &BitrixCallId,
        users: &[BitrixUserId],
    ) -> Result<bool, BitrixError> {
        self.card(Method::Hide, call, call_id, users).await
    }

    async fn card(
        &self,
        method: Method,
        call: &ExternalCallId,
        call_id: &BitrixCallId,
        users: &[BitrixUserId],
    ) -> Result<bool, BitrixError> {
        if users.is_empty() {
            return Ok(true);
        }
        self.typed(method, CardParams::new(call_id, users), Some(call))
            .await
    }

    /// `telephony.externalcall.finish`. On a retry, an error with
    /// [`BitrixError::is_call_not_found`] means the first attempt already finished the call.
    pub async fn finish(
        &self,
        call: &ExternalCallId,
        call_id: &BitrixCallId,
        req: &FinishCall,
    ) -> Result<Finished, BitrixError> {
        self.typed(Method::Finish, FinishParams::new(call_id, req), Some(call))
            .await
    }

    /// `attachRecord` with the file at `path`: inline when it is small, two-step upload
    /// otherwise. Returns the portal's `FILE_ID` (if it reports one) and the mode used.
    pub async fn attach_record(
        &self,
        call_id: &BitrixCallId,
        path: &Path,
    ) -> Result<(Option<u64>, AttachMode), BitrixError> {
        let len = record::recording_len(Method::AttachRecord, path).await?;
        if len <= self.inline_record_max() {
            Ok((
                self.attach_record_inline(call_id, path).await?,
                AttachMode::Inline,
            ))
        } else {
            Ok((
                self.attach_record_upload(call_id, path).await?,
                AttachMode::Upload,
            ))
        }
    }

    /// `attachRecord` mode A: base64 `FILE_CONTENT`, streamed from disk into the JSON body.
    pub(crate) async fn attach_record_inline(
        &self,
        call_id: &BitrixCallId,
        path: &Path,
    ) -> Result<Option<u64>, BitrixError> {
        let filename = Self::check_recording(path)?;
        record::recording_len(Method::AttachRecord, path).await?;
        let inline = Inline {
            call_id: call_id.clone(),
            path: path.to_owned(),
            filename,
        };
        let answer = self
            .direct(Method::AttachRecord, Body::InlineRecord(inline))
            .await?;
        Ok(decode::<AttachResult>(Method::AttachRecord, answer.result)?.file_id)
    }

    /// `attachRecord` mode C: ask for an `uploadUrl`, then POST the file there as multipart,
    /// streamed from disk. Never batched.
    pub(crate) async fn attach_record_upload(
        &self,
        call_id: &BitrixCallId,
        path: &Path,
    ) -> Result<Option<u64>, BitrixError> {
        let filename = Self::check_recording(path)?;
        record::recording_len(Method::AttachRecord, path).await?;
        let params = AttachUploadParams {
            call_id: call_id.as_str().to_owned(),
            filename: filename.clone(),
        };
        let body = Body::Json(to_value(Method::AttachRecord, &params)?);
        let step1 = decode::<AttachResult>(
            Method::AttachRecord,
            self.direct(Method::AttachRecord, body).await?.result,
        )?;
        if step1.file_id.is_some() && step1.upload_url.is_none() {
            return Ok(step1.file_id);
        }
        let url = step1
            .upload_url
            .as_deref()
            .and_then(|u| Url::parse(u).ok())
            .ok_or(BitrixError::Url {
                what: "attachRecord uploadUrl",
            })?;
        let field = step1.field_name.unwrap_or_else(|| "file".to_owned());
        let upload = Body::Upload {
            url,
            field,
            path: path.to_owned(),
            filename,
        };
        let answer = self.direct(Method::Upload, upload).await?;
        Ok(decode::<AttachResult>(Method::Upload, answer.result)?.file_id)
    }

    /// `telephony.externalcall.searchCrmEntities`: CRM entities with this number, best first.
    pub async fn search_crm_entities(
        &self,
        phone: &PhoneNumber,
    ) -> Result<Vec<CrmMatch>, BitrixError> {
        let value = self
            .command(
                Method::SearchCrmEntities,
                SearchParams {
                    phone: phone.as_str().to_owned(),
                },
                None,
            )
            .await?;
        decode_list(Method::SearchCrmEntities, value)
    }

    /// `telephony.externalLine.add`; returns the line's `ID`.
    pub async fn external_line_add(
        &self,
        number: &str,
        name: Option<&str>,
        crm_auto_create: bool,
    ) -> Result<u64, BitrixError> {
        let added: LineAdded = self
            .typed(
                Method::ExternalLineAdd,
                LineAddParams::new(number, name, crm_auto_create),
                None,
            )
            .await?;
        Ok(added.id)
    }

    /// `telephony.externalLine.get`: this application's lines.
    pub async fn external_line_get(&self) -> Result<Vec<ExternalLine>, BitrixError> {
        let value = self
            .command(Method::ExternalLineGet, serde_json::json!({}), None)
            .await?;
        decode_list(Method::ExternalLineGet, value)
    }

    /// `telephony.externalLine.update` of the line `number` (its `NAME` and `CRM_AUTO_CREATE`).
    pub(crate) async fn external_line_update(
        &self,
        number: &str,
        name: Option<&str>,
        crm_auto_create: bool,
    ) -> Result<(), BitrixError> {
        self.command(
            Method::ExternalLineUpdate,
            LineAddParams::new(number, name, crm_auto_create),
            None,
        )
        .await
        .map(drop)
    }

    /// All active users with a non-empty extension (`UF_PHONE_INNER`), paging by 50.
    pub async fn users_with_inner_numbers(&self) -> Result<Vec<User>, BitrixError> {
        let mut users = Vec::new();
        let mut start = 0;
        for _ in 0..MAX_USER_PAGES {
            let answer = self
                .direct(Method::UserGet, Body::Json(active_users_params(start)))
                .await?;
            let page: Vec<User> = decode_list(Method::UserGet, answer.result)?;
            users.extend(page.into_iter().filter(|u| {
                u.active
                    && u.inner_number
                        .as_deref()
                        .is_some_and(|n| !n.trim().is_empty())
            }));
            match answer.next {
                Some(next) if next > start => start = next,
                _ => return Ok(users),
            }
        }
        Ok(users)
    }

    /// `crm.{lead,contact,company,deal}.get`: the entity's responsible user (`ASSIGNED_BY_ID`),
    /// `None` when it has none.
    pub async fn crm_entity(
        &self,
        kind: CrmEntityType,
        id: u64,
    ) -> Result<Option<BitrixUserId>, BitrixError> {
        let entity: CrmEntity = self
            .typed(Method::CrmGet(kind), crm_get_params(id), None)
            .await?;
        Ok(entity.assigned_by_id.filter(|id| *id > 0).map(BitrixUserId))
    }

    /// `event.bind` of an online handler. Binding a handler that is already bound is success.
    pub async fn event_bind(&self, event: EventName, handler: &Url) -> Result<(), BitrixError> {
        let params = EventBindParams {
            event: event.as_str(),
            handler: Some(handler.as_str().to_owned()),
            event_type: "online",
        };
        self.bind(params).await
    }

    /// `event.bind` of an offline handler (admin only): the portal queues the event for
    /// `event.offline.get`. Binding it twice is success.
    pub(crate) async fn event_bind_offline(&self, event: EventName) -> Result<(), BitrixError> {
        let params = EventBindParams {
            event: event.as_str(),
            handler: None,
            event_type: "offline",
        };
        self.bind(params).await
    }

    async fn bind(&self, params: EventBindParams) -> Result<(), BitrixError> {
        match self.command(Method::EventBind, params, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == Some(ErrorKind::AlreadyBound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `event.get`: handlers bound by this application.
    pub async fn event_get(&self) -> Result<Vec<EventHandler>, BitrixError> {
        let value = self
            .command(Method::EventGet, serde_json::json!({}), None)
            .await?;
        decode_list(Method::EventGet, value)
    }

    /// `event.offline.get` of up to `limit` events claimed for `process_id` and left queued;
    /// events claimed for it before and not cleared come again.
    pub async fn event_offline_get(
        &self,
        process_id: &str,
        limit: u32,
    ) -> Result<OfflineEvents, BitrixError> {
        let params = OfflineGetParams::new(process_id, limit);
        self.typed(Method::EventOfflineGet, params, None).await
    }

    /// `event.offline.clear` of the records `ids` claimed for `process_id`. No request for none.
    pub async fn event_offline_clear(
        &self,
        process_id: &str,
        ids: Vec<u64>,
    ) -> Result<(), BitrixError> {
        if ids.is_empty() {
            return Ok(());
        }
        let params = OfflineClearParams {
            process_id: process_id.to_owned(),
            id: ids,
        };
        self.command(Method::EventOfflineClear, params, None)
            .await
            .map(drop)
    }

    /// `event.offline.error`: flags the records `message_ids` of `process_id` as erroneous (the
    /// portal keeps them, and stops returning them). No request for none.
    pub async fn event_offline_error(
        &self,
        process_id: &str,
        message_ids: Vec<String>,
    ) -> Result<(), BitrixError> {
        if message_ids.is_empty() {
            return Ok(());
        }
        let params = OfflineErrorParams {
            process_id: process_id.to_owned(),
            message_id: message_ids,
        };
        self.command(Method::EventOfflineError, params, None)
            .await
            .map(drop)
    }
}

impl BitrixClient {
    /// Installs the local application's tokens from `ONAPPINSTALL`: the access token is tried
    /// once with `app.info` on the configured portal (verified before it is trusted, §3.2), then
    /// the token file is written (0600, durably) and the tokens are used. `Ok(false)` for a
    /// webhook client, which has no tokens to install.
    pub async fn install(&self, tokens: TokenFile) -> Result<bool, BitrixError> {
        let transport = self.transport();
        let super::auth::Auth::OAuth(oauth) = &transport.auth else {
            return Ok(false);
        };
        let probe = Body::Json(serde_json::json!({}));
        transport
            .once_with(Method::AppInfo, &probe, &tokens.access_token)
            .await?;
        oauth.install(tokens).await?;
        Ok(true)
    }

    /// The `member_id` of the installed application, if known (OAuth only).
    pub async fn installed_member(&self) -> Option<String> {
        match &self.transport().auth {
            super::auth::Auth::OAuth(oauth) => oauth.member_id().await,
            super::auth::Auth::Webhook => None,
        }
    }
}

fn to_value(
    method: Method,
    params: &impl serde::Serialize,
) -> Result<serde_json::Value, BitrixError> {
    serde_json::to_value(params).map_err(|e| BitrixError::decode(method.name(), e))
}

fn decode<T: serde::de::DeserializeOwned>(
    method: Method,
    value: serde_json::Value,
) -> Result<T, BitrixError> {
    serde_json::from_value(value).map_err(|e| BitrixError::decode(method.name(), e))
}

/// A list result that PHP may send as `[]`, a list or a position-keyed map.
fn decode_list<T: serde::de::DeserializeOwned>(
    method: Method,
    value: serde_json::Value,
) -> Result<Vec<T>, BitrixError> {
    let items = match value {
        serde_json::Value::Null => Vec::new(),
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(map) => map.into_iter().map(|(_, v)| v).collect(),
        other => {
            return Err(BitrixError::decode(
                method.name(),
                serde::de::Error::custom(format!("expected a list, got {other}")),
            ));
        }
    };
    items.into_iter().map(|v| decode(method, v)).collect()
}
