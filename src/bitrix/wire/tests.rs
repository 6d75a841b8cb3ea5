//! Unit tests of `bitrix::wire`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::DateTime;
use serde_json::{Value, json};

use super::*;
use crate::bitrix::call::{CallType, CrmBinding, FinishCall, RegisterCall};
use crate::ids::{BitrixCallId, BitrixUserId, ExternalCallId, PhoneNumber};

fn register_call() -> RegisterCall {
    RegisterCall {
        user: BitrixUserId(17),
        phone: PhoneNumber::parse("+4930123456789").unwrap(),
        call_type: CallType::Incoming,
        line_number: Some("4930555000".into()),
        started_at: DateTime::parse_from_rfc3339("2026-05-04T09:15:02+02:00").unwrap(),
        crm_create: false,
        show: true,
        crm: Some(CrmBinding {
            entity_type: CrmEntityType::Contact,
            entity_id: 311,
        }),
    }
}

#[test]
fn register_params_send_flags_as_integers_an_offset_date_and_the_external_id() {
    let params = serde_json::to_value(RegisterParams::new(
        &ExternalCallId::new("fs-1"),
        &register_call(),
    ))
    .unwrap();
    assert_eq!(
        params,
        json!({
            "USER_ID": 17, "PHONE_NUMBER": "+4930123456789", "TYPE": 2,
            "CALL_START_DATE": "2026-05-04T09:15:02+02:00", "CRM_CREATE": 0, "SHOW": 1,
            "LINE_NUMBER": "4930555000", "EXTERNAL_CALL_ID": "fs-1",
            "CRM_ENTITY_TYPE": "CONTACT", "CRM_ENTITY_ID": 311
        })
    );
}

#[test]
fn query_encoding_turns_plus_into_percent_2b_and_arrays_into_brackets() {
    let q = to_query(
        &json!({ "PHONE_NUMBER": "+49 30", "USER_ID": [21, 22], "SHOW": true, "X": null,
                               "FILTER": { "UF_PHONE_INNER": "205" } }),
    );
    assert_eq!(
        q,
        "FILTER[UF_PHONE_INNER]=205&PHONE_NUMBER=%2B49+30&SHOW=1&USER_ID[0]=21&USER_ID[1]=22"
    );
    let decoded: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect();
    assert!(decoded.contains(&("PHONE_NUMBER".into(), "+49 30".into())));
}

#[test]
fn finish_params_are_explicit_about_chat_and_duration() {
    let req = FinishCall {
        user: BitrixUserId(17),
        duration_secs: 74,
        status_code: "200".into(),
        add_to_chat: false,
        failed_reason: None,
    };
    let params = serde_json::to_value(FinishParams::new(
        &BitrixCallId::new("externalCall.x.1"),
        &req,
    ))
    .unwrap();
    assert_eq!(
        params,
        json!({"CALL_ID": "externalCall.x.1", "USER_ID": 17, "DURATION": 74, "STATUS_CODE": "200", "ADD_TO_CHAT": 0})
    );
}

#[test]
fn register_results_of_the_doc_samples_decode() {
    let found: Registered = serde_json::from_value(json!({
        "CALL_ID": "externalCall.5be0a1c2d3e4f5a6b7c8d9e0f1a2b3c4.1777879000",
        "CRM_CREATED_LEAD": null, "CRM_CREATED_ENTITIES": [], "CRM_ENTITY_TYPE": "CONTACT", "CRM_ENTITY_ID": 311
    })).unwrap();
    assert_eq!(found.crm_entity_type.as_deref(), Some("CONTACT"));
    assert_eq!((found.crm_entity_id, found.created_lead), (Some(311), None));
    let created: Registered = serde_json::from_value(json!({
        "CALL_ID": "externalCall.e41f09ab77c2d5e3f0a1b2c3d4e5f607.1777879333", "CRM_CREATED_LEAD": 905,
        "CRM_CREATED_ENTITIES": [ { "ENTITY_TYPE": "LEAD", "ENTITY_ID": 905 } ],
        "CRM_ENTITY_TYPE": "LEAD", "CRM_ENTITY_ID": 905
    })).unwrap();
    assert_eq!(
        created.created_entities,
        vec![CreatedEntity {
            entity_type: "LEAD".into(),
            entity_id: 905
        }]
    );
    let nothing: Registered = serde_json::from_value(json!({
        "CALL_ID": "externalCall.a.1", "CRM_ENTITY_TYPE": "", "CRM_ENTITY_ID": null, "LEAD_CREATION_ERROR": "boom"
    })).unwrap();
    assert_eq!(
        (nothing.crm_entity_type, nothing.crm_entity_id),
        (None, None)
    );
    assert_eq!(nothing.lead_creation_error.as_deref(), Some("boom"));
}

#[test]
fn finish_result_with_date_object_and_string_numbers_decodes() {
    let f: Finished = serde_json::from_value(json!({
        "ID": 4412, "CALL_ID": "externalCall.5be0.1777879000", "EXTERNAL_CALL_ID": "fs-0b8e",
        "PORTAL_USER_ID": 17, "PHONE_NUMBER": "+4930123456789", "PORTAL_NUMBER": "4930555000",
        "INCOMING": "2", "CALL_DURATION": 74, "CALL_START_DATE": {}, "CALL_STATUS": 1, "CALL_VOTE": 0,
        "COST": 0, "COST_CURRENCY": "", "CALL_FAILED_CODE": "200", "CALL_FAILED_REASON": "",
        "REST_APP_ID": "5", "REST_APP_NAME": false, "CRM_ACTIVITY_ID": "20931", "COMMENT": null,
        "CRM_ENTITY_TYPE": "CONTACT", "CRM_ENTITY_ID": 311
    })).unwrap();
    assert_eq!(
        (f.id, f.call_status, f.crm_activity_id),
        (Some(4412), Some(1), Some(20931))
    );
    assert_eq!(f.status_code.as_deref(), Some("200"));
}

#[test]
fn search_sample_decodes_with_string_and_numeric_ids() {
    let v = json!([{ "CRM_ENTITY_TYPE": "CONTACT", "CRM_ENTITY_ID": 311, "ASSIGNED_BY_ID": 17, "NAME": "Erika Mustermann",
        "ASSIGNED_BY": { "ID": "17", "TIMEMAN_STATUS": "OPENED", "USER_PHONE_INNER": "205", "WORK_PHONE": null,
                         "PERSONAL_PHONE": null, "PERSONAL_MOBILE": "+4915112345678" } }]);
    let m: Vec<CrmMatch> = serde_json::from_value(v).unwrap();
    assert_eq!(m[0].kind(), Some(CrmEntityType::Contact));
    assert_eq!(m[0].assigned_by.as_ref().unwrap().id, BitrixUserId(17));
    assert_eq!(
        m[0].assigned_by.as_ref().unwrap().inner_number.as_deref(),
        Some("205")
    );
}

#[test]
fn attach_results_of_all_modes_decode() {
    let a: AttachResult = serde_json::from_value(json!({"FILE_ID": 9021})).unwrap();
    assert_eq!(a.file_id, Some(9021));
    let c: AttachResult = serde_json::from_value(
        json!({"uploadUrl": "https://p/rest/upload.json?auth=a&token=t", "fieldName": "file"}),
    )
    .unwrap();
    assert_eq!((c.file_id, c.field_name.as_deref()), (None, Some("file")));
}

#[test]
fn inline_body_prefix_is_json_up_to_the_base64_text() {
    let prefix =
        AttachInlineBody::prefix(&BitrixCallId::new("externalCall.x.1"), "r.mp3", Some("tok"));
    let body = format!("{prefix}QUJD{}", AttachInlineBody::SUFFIX);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        json!({"CALL_ID": "externalCall.x.1", "FILENAME": "r.mp3", "auth": "tok", "FILE_CONTENT": "QUJD"})
    );
}

#[test]
fn lines_users_crm_and_events_decode_their_doc_shapes() {
    let lines: Vec<ExternalLine> = serde_json::from_value(
        json!([{"NUMBER": "4930555000", "NAME": "Berlin DID", "CRM_AUTO_CREATE": "Y"}]),
    )
    .unwrap();
    assert!(lines[0].crm_auto_create);
    assert_eq!(
        serde_json::from_value::<LineAdded>(json!({"ID": "12"}))
            .unwrap()
            .id,
        12
    );
    let users: Vec<User> = serde_json::from_value(json!([
        {"ID": "17", "ACTIVE": true, "UF_PHONE_INNER": "205", "NAME": "Erika"},
        {"ID": "18", "ACTIVE": true, "UF_PHONE_INNER": null}
    ]))
    .unwrap();
    assert_eq!(
        (users[0].id, users[0].inner_number.as_deref()),
        (BitrixUserId(17), Some("205"))
    );
    assert_eq!(users[1].inner_number, None);
    let lead: CrmEntity =
        serde_json::from_value(json!({"ID": "905", "ASSIGNED_BY_ID": "17", "TITLE": "x"})).unwrap();
    assert_eq!(lead.assigned_by_id, Some(17));
    let handlers: Vec<EventHandler> = serde_json::from_value(json!([
        {"event": "ONEXTERNALCALLSTART", "handler": "https://fs.example/b24", "auth_type": "0", "offline": 0}
    ])).unwrap();
    assert_eq!(handlers[0].name(), Some(EventName::ExternalCallStart));
    let offline: OfflineEvents = serde_json::from_value(json!({"process_id": "p1", "events": [
        {"ID": "1", "EVENT_NAME": "ONEXTERNALCALLSTART", "EVENT_DATA": {"CALL_ID": "c"}, "MESSAGE_ID": "m"}]})).unwrap();
    assert_eq!(offline.events[0].id, Some(1));
}

#[test]
fn batch_answer_with_empty_arrays_for_maps_decodes() {
    let r: BatchResult = serde_json::from_value(json!({
        "result": { "hide": true, "fin": { "ID": 4412, "CALL_STATUS": 1 } },
        "result_error": [], "result_total": [], "result_next": [],
        "result_time": { "hide": { "start": 1777879074.1 } }
    }))
    .unwrap();
    assert_eq!(r.result.0.len(), 2);
    assert!(r.result_error.0.is_empty());
    let all_failed: BatchResult = serde_json::from_value(json!({
        "result": [], "result_error": { "c0": { "error": "", "error_description": "Call is not found" } }
    })).unwrap();
    assert!(all_failed.result.0.is_empty());
    assert_eq!(all_failed.result_error.0["c0"].error, "");
}

#[test]
fn envelopes_with_empty_error_codes_are_errors() {
    let e: Envelope = serde_json::from_str(r#"{"error":"","error_description":"Call is not found (call should be registered prior to finishing"}"#).unwrap();
    assert_eq!(e.error.as_deref(), Some(""));
    let ok: Envelope =
        serde_json::from_str(r#"{"result":[],"total":"3","next":50,"time":{"start":1.0}}"#)
            .unwrap();
    assert_eq!((ok.total, ok.next), (Some(3), Some(50)));
}

#[test]
fn crm_entity_types_parse_with_or_without_prefix() {
    assert_eq!(
        CrmEntityType::parse("crm_contact"),
        Some(CrmEntityType::Contact)
    );
    assert_eq!(CrmEntityType::parse("DEAL"), Some(CrmEntityType::Deal));
    assert_eq!(CrmEntityType::parse("DYNAMIC_128"), None);
    assert_eq!(
        Method::CrmGet(CrmEntityType::Company).name(),
        "crm.company.get"
    );
    assert!(!Method::AttachRecord.batchable() && Method::Finish.batchable());
}
