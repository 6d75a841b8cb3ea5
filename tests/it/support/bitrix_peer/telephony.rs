//! `telephony.externalCall.register/show/hide/finish/searchCrmEntities` (reference §6.5-§6.9):
//! validation in the documented order, 30-minute de-duplication, CRM binding, card timeline.

use serde_json::{Value, json};

use super::crm::EntityKind;
use super::envelope::{ApiError, MethodOk};
use super::lines;
use super::methods::Ctx;
use super::params::Params;
use super::state::{CallRecord, FinishRecord, PeerState};

const DEDUP_WINDOW_SECS: i64 = 30 * 60;

/// `telephony.externalcall.register`.
pub fn register(st: &mut PeerState, ctx: &Ctx, p: &Params) -> Result<MethodOk, ApiError> {
    let style = st.switches.error_style;
    if ctx.auth.is_webhook() && st.switches.webhook_wrong_auth_type {
        return Err(ApiError::wrong_auth_type());
    }
    let user_id = resolve_user(st, p)
        .ok_or_else(|| ApiError::core(style, "USER_ID or USER_PHONE_INNER should be set"))?;
    let call_type = p
        .int("TYPE")
        .filter(|t| (1..=5).contains(t))
        .ok_or_else(|| ApiError::core(style, "Unknown TYPE"))? as u8;
    let start_unix = match p.non_empty("CALL_START_DATE") {
        Some(date) => parse_start_date(&date, ctx.utc_offset_secs).ok_or_else(|| {
            ApiError::core(style, "CALL_START_DATE should be in the ISO-8601 format")
        })?,
        None => st.now_unix() as i64,
    };
    let phone = super::crm::normalize_phone(&p.str("PHONE_NUMBER").unwrap_or_default());
    if phone.is_empty() {
        return Err(ApiError::core(style, "Unsupported phone number format"));
    }
    if st.crm.active_user(user_id).is_none() {
        return Err(ApiError::core(style, "User is not found or is not active"));
    }
    let line = p.non_empty("LINE_NUMBER");
    if let Some(number) = &line {
        lines::ensure_line(st, number, ctx.auth.is_webhook());
    }
    let external = p.non_empty("EXTERNAL_CALL_ID");
    let show = p.truthy("SHOW", true);
    let probe = DedupProbe {
        phone: &phone,
        call_type,
        user_id,
        line: line.as_deref(),
        external: external.as_deref(),
    };
    if let Some(index) = find_duplicate(st, ctx, &probe) {
        let call = &mut st.calls[index];
        call.dedup_hits += 1;
        let (call_id, result) = (call.call_id.clone(), register_result(call, true));
        if show {
            st.timeline.open(&call_id, user_id, ctx.arrived);
        }
        return Ok(MethodOk::of(result));
    }
    let forced = p
        .str("CRM_ENTITY_TYPE")
        .and_then(|t| EntityKind::parse(&t))
        .zip(p.int("CRM_ENTITY_ID").filter(|id| *id > 0));
    let crm_create = p.truthy("CRM_CREATE", false);
    let internal = st.crm.is_internal(&phone);
    let (crm, created) = if internal {
        (None, Vec::new())
    } else if let Some((kind, id)) = forced {
        (Some((kind, id as u64)), Vec::new())
    } else if let Some(found) = st.crm.find_by_phone(&phone).first() {
        (Some((found.kind, found.id)), Vec::new())
    } else if crm_create {
        let lead = st
            .crm
            .create_lead(&phone, user_id, p.non_empty("CRM_SOURCE"));
        (
            Some((EntityKind::Lead, lead)),
            vec![(EntityKind::Lead, lead)],
        )
    } else {
        (None, Vec::new())
    };
    let call_id = format!(
        "externalCall.{}.{}",
        super::auth::random_token(),
        st.now_unix() as i64
    );
    let call = CallRecord {
        call_id: call_id.clone(),
        external_call_id: external,
        user_id,
        phone,
        call_type,
        line,
        start_unix,
        show,
        crm_create,
        internal,
        crm,
        created,
        via_webhook: ctx.auth.is_webhook(),
        registered_at: ctx.arrived,
        dedup_hits: 0,
        finished: None,
    };
    let result = register_result(&call, false);
    st.calls.push(call);
    if show {
        st.timeline.open(&call_id, user_id, ctx.arrived);
    }
    Ok(MethodOk::of(result))
}

struct DedupProbe<'a> {
    phone: &'a str,
    call_type: u8,
    user_id: u64,
    line: Option<&'a str>,
    external: Option<&'a str>,
}

// De-dup key (§6.6): phone + TYPE + user + LINE_NUMBER (if given) + EXTERNAL_CALL_ID (if
// given), unfinished, same app namespace, stored start within the last 30 minutes.
fn find_duplicate(st: &PeerState, ctx: &Ctx, probe: &DedupProbe<'_>) -> Option<usize> {
    let now = st.now_unix() as i64;
    st.calls.iter().position(|c| {
        c.finished.is_none()
            && c.via_webhook == ctx.auth.is_webhook()
            && c.phone == probe.phone
            && c.call_type == probe.call_type
            && c.user_id == probe.user_id
            && probe.line.is_none_or(|l| c.line.as_deref() == Some(l))
            && probe
                .external
                .is_none_or(|e| c.external_call_id.as_deref() == Some(e))
            && now - c.start_unix < DEDUP_WINDOW_SECS
    })
}

fn register_result(call: &CallRecord, dedup: bool) -> Value {
    let created_lead = call
        .created
        .iter()
        .find(|(k, _)| *k == EntityKind::Lead)
        .map(|(_, id)| *id);
    let created: Vec<Value> = call
        .created
        .iter()
        .map(|(k, id)| json!({"ENTITY_TYPE": k.wire(), "ENTITY_ID": id}))
        .collect();
    let (entity_type, entity_id) = match call.crm {
        Some((kind, id)) => (json!(kind.wire()), json!(id)),
        // Nothing bound: "" on a fresh registration, null on the de-dup path [impl].
        None if dedup => (Value::Null, Value::Null),
        None => (json!(""), Value::Null),
    };
    json!({
        "CALL_ID": call.call_id,
        "CRM_CREATED_LEAD": created_lead,
        "CRM_CREATED_ENTITIES": created,
        "CRM_ENTITY_TYPE": entity_type,
        "CRM_ENTITY_ID": entity_id,
    })
}

/// `USER_ID` > 0 wins; else `USER_PHONE_INNER` resolved to an active user.
fn resolve_user(st: &PeerState, p: &Params) -> Option<u64> {
    if let Some(id) = p.int("USER_ID").filter(|id| *id > 0) {
        return Some(id as u64);
    }
    let inner = p.non_empty("USER_PHONE_INNER")?;
    st.crm.user_by_inner(&inner).map(|u| u.id)
}

/// Lenient ISO 8601 like PHP `strtotime`; values without an offset are server-local.
pub fn parse_start_date(s: &str, offset_secs: i32) -> Option<i64> {
    if let Ok(date) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(date.timestamp());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%z",
        "%Y-%m-%d %H:%M:%S%z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ] {
        if let Ok(date) = chrono::DateTime::parse_from_str(s, fmt) {
            return Some(date.timestamp());
        }
    }
    let naive = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|fmt| chrono::NaiveDateTime::parse_from_str(s, fmt).ok())
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
    Some(naive.and_utc().timestamp() - i64::from(offset_secs))
}

/// `show` (`open = true`) and `hide`: `true` when the call is active, `false` otherwise.
pub fn show_hide(
    st: &mut PeerState,
    ctx: &Ctx,
    p: &Params,
    open: bool,
) -> Result<MethodOk, ApiError> {
    let call_id = p.str("CALL_ID").unwrap_or_default();
    let Some(call) = st.call(&call_id).filter(|c| c.finished.is_none()) else {
        return Ok(MethodOk::of(json!(false)));
    };
    let users = p.user_ids("USER_ID").unwrap_or_else(|| vec![call.user_id]);
    for user in users {
        if open {
            st.timeline.open(&call_id, user, ctx.arrived);
        } else {
            st.timeline.close(&call_id, user, ctx.arrived);
        }
    }
    Ok(MethodOk::of(json!(true)))
}

/// `telephony.externalcall.finish`.
pub fn finish(st: &mut PeerState, ctx: &Ctx, p: &Params) -> Result<MethodOk, ApiError> {
    let style = st.switches.error_style;
    if ctx.auth.is_webhook() && st.switches.webhook_wrong_auth_type {
        return Err(ApiError::wrong_auth_type());
    }
    let user_id = resolve_user(st, p)
        .ok_or_else(|| ApiError::core(style, "USER_ID or USER_PHONE_INNER should be set"))?;
    if p.raw("CALL_ID").is_some_and(|v| !v.is_string()) {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "CALL_ID must be a string",
        ));
    }
    let call_id = p.str("CALL_ID").unwrap_or_default();
    let not_found = || {
        ApiError::core(
            style,
            "Call is not found (call should be registered prior to finishing",
        )
    };
    let call_type = st
        .call(&call_id)
        .filter(|c| c.finished.is_none())
        .ok_or_else(not_found)?
        .call_type;
    if st.crm.active_user(user_id).is_none() {
        return Err(ApiError::core(style, "User is not found or is not active"));
    }
    let duration = p.int("DURATION").unwrap_or(0).max(0);
    let status_code = p
        .non_empty("STATUS_CODE")
        .unwrap_or_else(|| if duration > 0 { "200" } else { "304" }.to_owned());
    let stat_id = st.next_id();
    let record = FinishRecord {
        stat_id,
        user_id,
        duration,
        missed: status_code == "304" && matches!(call_type, 2 | 3),
        status_code,
        call_status: u8::from(duration > 0),
        cost: p
            .str("COST")
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(0.0),
        cost_currency: p.str("COST_CURRENCY").unwrap_or_default(),
        failed_reason: p.str("FAILED_REASON").unwrap_or_default(),
        vote: p.int("VOTE").unwrap_or(0),
        add_to_chat: p.raw("ADD_TO_CHAT").map(super::params::truthy),
        record_url: p.non_empty("RECORD_URL"),
        at: ctx.arrived,
    };
    let activity_id = st.next_id();
    st.timeline.close(&call_id, user_id, ctx.arrived);
    let call = st.call_mut(&call_id).ok_or_else(not_found)?;
    call.finished = Some(record);
    let call = call.clone();
    for (kind, id) in &call.created {
        st.crm.reassign(*kind, *id, user_id);
    }
    Ok(MethodOk::of(finish_result(&call, ctx, activity_id)))
}

fn finish_result(call: &CallRecord, ctx: &Ctx, activity_id: u64) -> Value {
    let Some(f) = &call.finished else {
        return Value::Null;
    };
    let portal_number = call
        .line
        .clone()
        .unwrap_or_else(|| format!("REST_APP:{}", ctx.app_id));
    let (app_id, app_name) = if call.via_webhook {
        (Value::Null, json!(false))
    } else {
        (json!(ctx.app_id.to_string()), json!(ctx.app_name))
    };
    let mut result = json!({
        "ID": f.stat_id,
        "CALL_ID": call.call_id,
        "EXTERNAL_CALL_ID": call.external_call_id,
        "PORTAL_USER_ID": f.user_id,
        "PHONE_NUMBER": call.phone,
        "PORTAL_NUMBER": portal_number,
        "INCOMING": call.call_type.to_string(),
        "CALL_DURATION": f.duration,
        "CALL_START_DATE": {},
        "CALL_STATUS": f.call_status,
        "CALL_VOTE": f.vote,
        "COST": f.cost,
        "COST_CURRENCY": f.cost_currency,
        "CALL_FAILED_CODE": f.status_code,
        "CALL_FAILED_REASON": f.failed_reason,
        "REST_APP_ID": app_id,
        "REST_APP_NAME": app_name,
        "CRM_ACTIVITY_ID": call.crm.map(|_| activity_id),
        "COMMENT": null,
    });
    if let (Some((kind, id)), Some(map)) = (call.crm, result.as_object_mut()) {
        map.insert("CRM_ENTITY_TYPE".to_owned(), json!(kind.wire()));
        map.insert("CRM_ENTITY_ID".to_owned(), json!(id));
    }
    result
}

/// `telephony.externalcall.searchcrmentities`.
pub fn search_crm_entities(st: &PeerState, p: &Params) -> Result<MethodOk, ApiError> {
    let phone = p
        .non_empty("PHONE_NUMBER")
        .ok_or_else(|| ApiError::core(st.switches.error_style, "PHONE_NUMBER is empty"))?;
    Ok(MethodOk::of(st.crm.search_result(&phone)))
}
