//! The fake Bitrix24 portal driven with plain reqwest: every method's happy path and
//! documented errors, JSON/form/GET encodings, OAuth and webhook auth, batch, the leaky
//! bucket, token expiry and rotation, outages, redirects and the card timeline.
//!
//! These guard the peer's fidelity to bitrix24-telephony.md (every other suite trusts it);
//! what fsb24 does with the portal's answers is tested where fsb24 runs: its client in
//! bitrix_client.rs (retry after a lost answer, redirect re-POST, rate limit, refresh), the calls
//! in the call and outbox suites.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::bitrix_peer::{
    AuthKind, BitrixPeer, BucketConfig, COMPANY_PHONE, CONTACT_PHONE, ClickToCall, CrmEntity,
    EntityKind, ErrorStyle, LEAD_PHONE, OperatingBudget, Outage, PeerOptions, SeedUser,
};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// POSTs a JSON body with `auth` to `/rest/{method}`.
async fn json_call(peer: &BitrixPeer, method: &str, mut body: Value) -> (u16, Value) {
    body["auth"] = json!(peer.latest_tokens().access);
    let resp = client()
        .post(format!("{}{method}", peer.rest_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// POSTs a form body (PHP bracket arrays allowed) with `auth` to `/rest/{method}.json`.
async fn form_call(peer: &BitrixPeer, method: &str, pairs: &[(&str, &str)]) -> (u16, Value) {
    let token = peer.latest_tokens().access;
    let mut all: Vec<(&str, &str)> = pairs.to_vec();
    all.push(("auth", &token));
    let resp = client()
        .post(format!("{}{method}.json", peer.rest_url()))
        .form(&all)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// POSTs a JSON body through the incoming webhook.
async fn webhook_call(peer: &BitrixPeer, method: &str, body: Value) -> (u16, Value) {
    let url = format!("{}{method}.json", peer.webhook_url().unwrap());
    let resp = client().post(url).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn register(peer: &BitrixPeer, body: Value) -> String {
    let (status, reply) = json_call(peer, "telephony.externalcall.register", body).await;
    assert_eq!(status, 200, "{reply}");
    reply["result"]["CALL_ID"].as_str().unwrap().to_owned()
}

fn inbound(user: u64, phone: &str, ext: &str) -> Value {
    json!({"USER_ID": user, "PHONE_NUMBER": phone, "TYPE": 2, "SHOW": 0, "LINE_NUMBER": "4930555000",
           "EXTERNAL_CALL_ID": ext, "CRM_CREATE": 0, "CALL_START_DATE": "2026-05-04T09:15:02+02:00"})
}

fn error_of(reply: &Value) -> (&str, &str) {
    (
        reply["error"].as_str().unwrap_or("?"),
        reply["error_description"].as_str().unwrap_or("?"),
    )
}

#[tokio::test]
async fn register_returns_call_id_and_binds_known_contact() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let (status, reply) = json_call(
        &peer,
        "telephony.externalCall.register",
        inbound(17, CONTACT_PHONE, "fs-1"),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let call_id = reply["result"]["CALL_ID"].as_str().unwrap();
    let mut parts = call_id.split('.');
    assert_eq!(parts.next(), Some("externalCall"));
    let hex = parts.next().unwrap();
    assert!(
        hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()),
        "{call_id}"
    );
    assert!(parts.next().unwrap().parse::<u64>().unwrap() > 1_700_000_000);
    assert_eq!(reply["result"]["CRM_ENTITY_TYPE"], "CONTACT");
    assert_eq!(reply["result"]["CRM_ENTITY_ID"], 311);
    assert_eq!(reply["result"]["CRM_CREATED_LEAD"], Value::Null);
    assert_eq!(reply["result"]["CRM_CREATED_ENTITIES"], json!([]));
    for key in [
        "start",
        "finish",
        "duration",
        "processing",
        "date_start",
        "date_finish",
    ] {
        assert!(
            reply["time"].get(key).is_some(),
            "time.{key} missing: {reply}"
        );
    }
    let call = peer.call(call_id).unwrap();
    assert_eq!(
        (call.user_id, call.call_type, call.phone.as_str()),
        (17, 2, CONTACT_PHONE)
    );
    assert_eq!(call.external_call_id.as_deref(), Some("fs-1"));
    assert!(call.finished.is_none());
    assert!(peer.timeline(call_id).is_empty(), "SHOW=0 opens no card");
}

#[tokio::test]
async fn register_validation_errors_follow_the_documented_order() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let cases = [
        (
            json!({"PHONE_NUMBER": "123", "TYPE": 9}),
            "USER_ID or USER_PHONE_INNER should be set",
        ),
        (
            json!({"USER_PHONE_INNER": "999", "PHONE_NUMBER": "123", "TYPE": 2}),
            "USER_ID or USER_PHONE_INNER should be set",
        ),
        (
            json!({"USER_ID": 17, "PHONE_NUMBER": "anonymous", "TYPE": 9}),
            "Unknown TYPE",
        ),
        (
            json!({"USER_ID": 17, "PHONE_NUMBER": "anonymous", "TYPE": 2, "CALL_START_DATE": "yesterday-ish"}),
            "CALL_START_DATE should be in the ISO-8601 format",
        ),
        (
            json!({"USER_ID": 30, "PHONE_NUMBER": "anonymous", "TYPE": 2}),
            "Unsupported phone number format",
        ),
        (
            json!({"USER_ID": 30, "PHONE_NUMBER": "+491", "TYPE": 2}),
            "User is not found or is not active",
        ),
        (
            json!({"USER_ID": 4242, "PHONE_NUMBER": "+491", "TYPE": 2}),
            "User is not found or is not active",
        ),
    ];
    for (body, text) in cases {
        let (status, reply) =
            json_call(&peer, "telephony.externalcall.register", body.clone()).await;
        assert_eq!(
            (status, error_of(&reply)),
            (400, ("ERROR_CORE", text)),
            "{body}"
        );
    }
    // Webhooks are refused before any parameter is looked at ([doc]).
    let (status, reply) = webhook_call(&peer, "telephony.externalcall.register", json!({})).await;
    assert_eq!((status, error_of(&reply).0), (403, "WRONG_AUTH_TYPE"));
    assert!(peer.calls().is_empty());
}

#[tokio::test]
async fn show_hide_and_finish_build_the_card_timeline() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let mut body = inbound(17, CONTACT_PHONE, "fs-t");
    body["SHOW"] = json!(1);
    let call_id = register(&peer, body).await;
    assert_eq!(peer.shown(&call_id), [17]);
    let (_, reply) = json_call(
        &peer,
        "telephony.externalcall.show",
        json!({"CALL_ID": call_id, "USER_ID": [21, 22]}),
    )
    .await;
    assert_eq!(reply["result"], true);
    assert_eq!(peer.shown(&call_id), [17, 21, 22]);
    // Form encoding with a PHP bracket array.
    let (_, reply) = form_call(
        &peer,
        "telephony.externalcall.hide",
        &[
            ("CALL_ID", &call_id),
            ("USER_ID[]", "17"),
            ("USER_ID[]", "22"),
        ],
    )
    .await;
    assert_eq!(reply["result"], true);
    assert_eq!(peer.shown(&call_id), [21]);
    let (status, reply) = json_call(
        &peer,
        "telephony.externalcall.finish",
        json!({"CALL_ID": call_id, "USER_ID": 17, "DURATION": 0, "ADD_TO_CHAT": 0}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    // finish closes the card only for its USER_ID: 21 still sees it.
    assert_eq!(peer.shown(&call_id), [21]);
    let (_, reply) = json_call(
        &peer,
        "telephony.externalcall.hide",
        json!({"CALL_ID": call_id, "USER_ID": [21]}),
    )
    .await;
    assert_eq!(reply["result"], false, "hide after finish is a no-op");
    let (_, reply) = json_call(
        &peer,
        "telephony.externalcall.show",
        json!({"CALL_ID": call_id, "USER_ID": 22}),
    )
    .await;
    assert_eq!(reply["result"], false, "show after finish is a no-op");
    let timeline = peer.timeline(&call_id);
    let users: Vec<(u64, bool)> = timeline.iter().map(|i| (i.user, i.to.is_some())).collect();
    assert_eq!(users, [(17, true), (21, false), (22, true)]);
    let requests = peer.requests();
    assert_eq!(
        timeline[0].from, requests[0].at,
        "register SHOW=1 opened the owner's card"
    );
    assert_eq!(timeline[1].from, requests[1].at);
    assert_eq!(
        timeline[0].to,
        Some(requests[2].at),
        "hide closed the owner's card"
    );
    assert_eq!(timeline[2].to, Some(requests[2].at));
}

#[tokio::test]
async fn finish_returns_statistics_and_a_second_finish_is_not_found() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let call_id = register(&peer, inbound(17, CONTACT_PHONE, "fs-f")).await;
    let body = json!({"CALL_ID": call_id, "USER_ID": 17, "DURATION": 74, "STATUS_CODE": "200", "ADD_TO_CHAT": 0});
    let (status, reply) = json_call(&peer, "telephony.externalcall.finish", body.clone()).await;
    assert_eq!(status, 200, "{reply}");
    let r = &reply["result"];
    assert_eq!(
        (
            r["CALL_ID"].as_str(),
            r["CALL_DURATION"].as_i64(),
            r["CALL_STATUS"].as_i64()
        ),
        (Some(call_id.as_str()), Some(74), Some(1))
    );
    assert_eq!(
        (
            r["EXTERNAL_CALL_ID"].as_str(),
            r["PORTAL_NUMBER"].as_str(),
            r["INCOMING"].as_str()
        ),
        (Some("fs-f"), Some("4930555000"), Some("2"))
    );
    assert_eq!(
        (
            r["CRM_ENTITY_TYPE"].as_str(),
            r["CRM_ENTITY_ID"].as_i64(),
            r["PORTAL_USER_ID"].as_i64()
        ),
        (Some("CONTACT"), Some(311), Some(17))
    );
    assert_eq!(r["CALL_START_DATE"], json!({}));
    let (status, reply) = json_call(&peer, "telephony.externalcall.finish", body).await;
    assert_eq!(
        (status, error_of(&reply)),
        (
            400,
            (
                "ERROR_CORE",
                "Call is not found (call should be registered prior to finishing"
            )
        )
    );
    let finished = peer.call(&call_id).unwrap().finished.unwrap();
    assert_eq!(
        (
            finished.duration,
            finished.status_code.as_str(),
            finished.missed,
            finished.add_to_chat
        ),
        (74, "200", false, Some(false))
    );
}

#[tokio::test]
async fn bucket_answers_503_past_the_burst() {
    let opts = PeerOptions {
        bucket: BucketConfig {
            drain_per_sec: 0.001,
            burst: 5,
        },
        ..PeerOptions::default()
    };
    let peer = BitrixPeer::seeded(opts).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let (status, reply) = json_call(&peer, "user.get", json!({})).await;
        statuses.push(status);
        if status == 503 {
            assert_eq!(
                error_of(&reply),
                ("QUERY_LIMIT_EXCEEDED", "Too many requests")
            );
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 503, 503, 503]);
    assert_eq!(peer.count_rejected(), 3);
    assert_eq!(peer.max_requests_in_any_window(Duration::from_secs(60)), 8);
}

#[tokio::test]
async fn expired_token_is_refused_and_refresh_rotates_both_tokens() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let old = peer.tokens();
    peer.expire_access_tokens();
    let (status, reply) = json_call(&peer, "user.get", json!({})).await;
    assert_eq!(
        (status, error_of(&reply)),
        (
            401,
            ("expired_token", "The access token provided has expired")
        )
    );
    let opts = peer.options().clone();
    let query = [
        ("grant_type", "refresh_token"),
        ("client_id", opts.client_id.as_str()),
        ("client_secret", opts.client_secret.as_str()),
        ("refresh_token", old.refresh.as_str()),
    ];
    let resp = client()
        .get(peer.token_url())
        .query(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let fresh: Value = resp.json().await.unwrap();
    assert_ne!(fresh["access_token"].as_str(), Some(old.access.as_str()));
    assert_ne!(fresh["refresh_token"].as_str(), Some(old.refresh.as_str()));
    assert_eq!(fresh["expires_in"], 3600);
    assert_eq!(
        fresh["client_endpoint"].as_str(),
        Some(peer.rest_url().as_str())
    );
    assert_eq!(peer.refresh_count(), 1);
    let (status, _) = json_call(&peer, "user.get", json!({})).await;
    assert_eq!(status, 200, "the rotated access token works");
    // The used refresh token is dead.
    let resp = client()
        .get(peer.token_url())
        .query(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    assert_eq!(peer.refresh_count(), 1);
}

#[tokio::test]
async fn next_request_and_wait_for_observe_the_log() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let call_id = register(&peer, inbound(17, CONTACT_PHONE, "fs-n")).await;
    let req = peer.next_request().await;
    assert_eq!(req.method, "telephony.externalcall.register");
    assert_eq!(req.params["EXTERNAL_CALL_ID"], "fs-n");
    assert!(
        req.params.get("auth").is_none(),
        "auth is kept out of params"
    );
    assert!(matches!(
        req.auth,
        crate::support::bitrix_peer::AuthKind::OAuth { .. }
    ));
    let waiter = peer.wait_for("call finished", |st| {
        st.call(&call_id).is_some_and(|c| c.finished.is_some())
    });
    let finisher = json_call(
        &peer,
        "telephony.externalcall.finish",
        json!({"CALL_ID": call_id, "USER_ID": 17}),
    );
    let ((), (status, _)) = tokio::join!(waiter, finisher);
    assert_eq!(status, 200);
    assert_eq!(
        peer.next_request().await.method,
        "telephony.externalcall.finish"
    );
}

#[tokio::test]
async fn unknown_method_is_404_method_not_found() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let (status, reply) = json_call(&peer, "telephony.externalcall.teleport", json!({})).await;
    assert_eq!(
        (status, error_of(&reply)),
        (404, ("ERROR_METHOD_NOT_FOUND", "Method not found!"))
    );
}

#[tokio::test]
async fn register_deduplicates_the_same_call_for_thirty_minutes() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let mut body = inbound(17, CONTACT_PHONE, "fs-d");
    body.as_object_mut().unwrap().remove("CALL_START_DATE");
    let first = register(&peer, body.clone()).await;
    assert_eq!(
        register(&peer, body.clone()).await,
        first,
        "a retried register returns the same CALL_ID"
    );
    let mut other = body.clone();
    other["EXTERNAL_CALL_ID"] = json!("fs-other");
    assert_ne!(
        register(&peer, other).await,
        first,
        "another EXTERNAL_CALL_ID is another call"
    );
    assert_eq!(peer.call(&first).unwrap().dedup_hits, 1);
    peer.advance_clock(Duration::from_secs(31 * 60));
    let later = register(&peer, body.clone()).await;
    assert_ne!(later, first, "the window is 30 minutes");
    let (status, _) = json_call(
        &peer,
        "telephony.externalcall.finish",
        json!({"CALL_ID": later, "USER_ID": 17}),
    )
    .await;
    assert_eq!(status, 200);
    assert_ne!(
        register(&peer, body).await,
        later,
        "finished calls never match"
    );
    assert_eq!(peer.calls().len(), 4);
}

#[tokio::test]
async fn register_with_crm_create_makes_a_lead_that_finish_reassigns() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let mut body = inbound(17, "+4917000000001", "fs-lead");
    body["CRM_CREATE"] = json!(1);
    body["CRM_SOURCE"] = json!("CALL");
    let (status, reply) = json_call(&peer, "telephony.externalcall.register", body).await;
    assert_eq!(status, 200, "{reply}");
    let r = &reply["result"];
    let lead = r["CRM_CREATED_LEAD"].as_u64().unwrap();
    assert_eq!(
        r["CRM_CREATED_ENTITIES"],
        json!([{"ENTITY_TYPE": "LEAD", "ENTITY_ID": lead}])
    );
    assert_eq!(
        (r["CRM_ENTITY_TYPE"].as_str(), r["CRM_ENTITY_ID"].as_u64()),
        (Some("LEAD"), Some(lead))
    );
    assert_eq!(peer.entity(EntityKind::Lead, lead).unwrap().assigned_by, 17);
    let call_id = r["CALL_ID"].as_str().unwrap();
    let (status, _) = json_call(
        &peer,
        "telephony.externalcall.finish",
        json!({"CALL_ID": call_id, "USER_ID": 21, "DURATION": 5}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        peer.entity(EntityKind::Lead, lead).unwrap().assigned_by,
        21,
        "finish makes the finisher responsible"
    );
    // Without CRM_CREATE an unknown number binds nothing.
    let (_, reply) = json_call(
        &peer,
        "telephony.externalcall.register",
        inbound(17, "+4917000000002", "fs-none"),
    )
    .await;
    assert_eq!(
        (
            &reply["result"]["CRM_ENTITY_TYPE"],
            &reply["result"]["CRM_ENTITY_ID"]
        ),
        (&json!(""), &Value::Null)
    );
}

#[tokio::test]
async fn register_of_an_internal_extension_binds_no_crm_and_creates_the_line() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    peer.add_entity(CrmEntity::contact(312, "Clash", "206", 17));
    let mut body = inbound(17, "206", "fs-int");
    body["CRM_CREATE"] = json!(1);
    body["LINE_NUMBER"] = json!(" 4930999000 ");
    let (status, reply) = json_call(&peer, "telephony.externalcall.register", body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["result"]["CRM_ENTITY_TYPE"], "");
    assert_eq!(reply["result"]["CRM_CREATED_LEAD"], Value::Null);
    let call = peer
        .call(reply["result"]["CALL_ID"].as_str().unwrap())
        .unwrap();
    assert!(call.internal && call.crm.is_none());
    let lines = peer.lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(
        (
            lines[0].number.as_str(),
            lines[0].name.as_str(),
            lines[0].crm_auto_create
        ),
        ("4930999000", "", true)
    );
}

#[tokio::test]
async fn register_accepts_form_and_get_encodings_and_user_phone_inner() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    // reqwest percent-encodes '+' as %2B in forms, so the number survives.
    let (status, reply) = form_call(
        &peer,
        "telephony.externalcall.register",
        &[
            ("USER_PHONE_INNER", "206"),
            ("PHONE_NUMBER", LEAD_PHONE),
            ("TYPE", "1"),
            ("SHOW", "false"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let call = peer
        .call(reply["result"]["CALL_ID"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        (call.user_id, call.phone.as_str(), call.call_type),
        (21, LEAD_PHONE, 1)
    );
    assert!(call.show, "the string \"false\" is truthy in PHP");
    assert_eq!(reply["result"]["CRM_ENTITY_TYPE"], "LEAD");
    // GET with the query string, mixed-case method name.
    let url = format!(
        "{}TELEPHONY.externalCall.searchCrmEntities",
        peer.rest_url()
    );
    let token = peer.latest_tokens().access;
    let resp = client()
        .get(url)
        .query(&[("PHONE_NUMBER", COMPANY_PHONE), ("auth", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let reply: Value = resp.json().await.unwrap();
    assert_eq!(reply["result"][0]["CRM_ENTITY_TYPE"], "COMPANY");
    assert_eq!(
        peer.requests().last().unwrap().method_as_sent,
        "TELEPHONY.externalCall.searchCrmEntities"
    );
}

#[tokio::test]
async fn finish_validates_user_call_id_type_and_flags_missed_incoming_calls() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let call_id = register(&peer, inbound(17, CONTACT_PHONE, "fs-m")).await;
    let cases = [
        (
            json!({"CALL_ID": call_id}),
            400,
            "ERROR_CORE",
            "USER_ID or USER_PHONE_INNER should be set",
        ),
        (
            json!({"CALL_ID": 12345, "USER_ID": 17}),
            400,
            "INVALID_ARGUMENT",
            "CALL_ID must be a string",
        ),
        (
            json!({"CALL_ID": "externalCall.nope.1", "USER_ID": 17}),
            400,
            "ERROR_CORE",
            "Call is not found (call should be registered prior to finishing",
        ),
        (
            json!({"CALL_ID": call_id, "USER_ID": 30}),
            400,
            "ERROR_CORE",
            "User is not found or is not active",
        ),
    ];
    for (body, status, code, text) in cases {
        let (got, reply) = json_call(&peer, "telephony.externalcall.finish", body.clone()).await;
        assert_eq!((got, error_of(&reply)), (status, (code, text)), "{body}");
    }
    let (status, reply) = json_call(
        &peer,
        "telephony.externalcall.finish",
        json!({"CALL_ID": call_id, "USER_PHONE_INNER": "205"}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        (
            reply["result"]["CALL_FAILED_CODE"].as_str(),
            reply["result"]["CALL_STATUS"].as_i64()
        ),
        (Some("304"), Some(0))
    );
    assert!(
        peer.call(&call_id).unwrap().finished.unwrap().missed,
        "304 on an incoming call is a missed call"
    );
    // An outgoing 304 is not missed; ring time passed as DURATION marks the call successful.
    let mut out = inbound(17, CONTACT_PHONE, "fs-o");
    out["TYPE"] = json!(1);
    let out_id = register(&peer, out).await;
    let (_, reply) = json_call(
        &peer,
        "telephony.externalcall.finish",
        json!({"CALL_ID": out_id, "USER_ID": 17, "DURATION": 12, "STATUS_CODE": "304"}),
    )
    .await;
    assert_eq!(reply["result"]["CALL_STATUS"], 1);
    assert!(!peer.call(&out_id).unwrap().finished.unwrap().missed);
}

#[tokio::test]
async fn error_style_switch_emits_an_empty_error_code() {
    let peer = BitrixPeer::seeded(PeerOptions {
        error_style: ErrorStyle::Empty,
        ..PeerOptions::default()
    })
    .await;
    let body = json!({"CALL_ID": "externalCall.gone.1", "USER_ID": 17});
    let (status, reply) = json_call(&peer, "telephony.externalcall.finish", body.clone()).await;
    assert_eq!(
        (status, error_of(&reply)),
        (
            400,
            (
                "",
                "Call is not found (call should be registered prior to finishing"
            )
        )
    );
    peer.set_error_style(ErrorStyle::ErrorCore);
    let (_, reply) = json_call(&peer, "telephony.externalcall.finish", body).await;
    assert_eq!(error_of(&reply).0, "ERROR_CORE");
}

#[tokio::test]
async fn webhook_auth_is_accepted_when_the_switch_allows_it() {
    let peer = BitrixPeer::seeded(PeerOptions {
        webhook_wrong_auth_type: false,
        ..PeerOptions::default()
    })
    .await;
    let (status, reply) = webhook_call(
        &peer,
        "telephony.externalcall.register",
        inbound(17, CONTACT_PHONE, "fs-w"),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let call_id = reply["result"]["CALL_ID"].as_str().unwrap().to_owned();
    let (status, reply) = webhook_call(
        &peer,
        "telephony.externalcall.finish",
        json!({"CALL_ID": call_id, "USER_ID": 17}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        (
            &reply["result"]["REST_APP_NAME"],
            &reply["result"]["REST_APP_ID"]
        ),
        (&json!(false), &Value::Null)
    );
    assert!(matches!(
        peer.requests()[0].auth,
        AuthKind::Webhook { user_id: 1, .. }
    ));
    peer.set_webhook_wrong_auth_type(true);
    let (status, reply) = webhook_call(&peer, "telephony.externalLine.get", json!({})).await;
    assert_eq!((status, error_of(&reply).0), (403, "WRONG_AUTH_TYPE"));
    // show/hide/searchCrmEntities stay open to webhooks.
    let (status, _) = webhook_call(
        &peer,
        "telephony.externalcall.searchCrmEntities",
        json!({"PHONE_NUMBER": CONTACT_PHONE}),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn credentials_are_checked_before_anything_else() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let bad_hook = format!("{}/rest/1/wrong-secret/user.get.json", peer.base_url());
    let resp = client()
        .post(bad_hook)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "INVALID_CREDENTIALS"
    );
    let resp = client()
        .post(format!("{}user.get", peer.rest_url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "NO_AUTH_FOUND"
    );
    let resp = client()
        .post(format!("{}user.get", peer.rest_url()))
        .json(&json!({"auth": "garbage"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_token"
    );
    let token = peer.tokens().access;
    let resp = client()
        .post(format!("{}user.get", peer.rest_url()))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        200,
        "the bearer header is accepted [impl]"
    );
    let opts = peer.options().clone();
    let bad = [
        ("grant_type", "refresh_token"),
        ("client_id", opts.client_id.as_str()),
        ("client_secret", "nope"),
        ("refresh_token", "x"),
    ];
    let resp = client()
        .post(peer.token_url())
        .form(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
}

fn wav_bytes() -> Vec<u8> {
    let mut bytes = b"RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00".to_vec();
    bytes.extend((0..=255u8).cycle().take(2048));
    bytes
}

fn mp3_bytes() -> Vec<u8> {
    let mut bytes = b"ID3\x03\x00\x00\x00\x00\x00\x00".to_vec();
    bytes.extend((0..=255u8).rev().cycle().take(4096));
    bytes
}

async fn finished_call(peer: &BitrixPeer, ext: &str) -> String {
    let call_id = register(peer, inbound(17, CONTACT_PHONE, ext)).await;
    let (status, _) = json_call(
        peer,
        "telephony.externalcall.finish",
        json!({"CALL_ID": call_id, "USER_ID": 17, "DURATION": 9}),
    )
    .await;
    assert_eq!(status, 200);
    call_id
}

#[tokio::test]
async fn attach_record_inline_base64_stores_the_exact_bytes() {
    use base64::Engine;
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let open_call = register(&peer, inbound(17, CONTACT_PHONE, "fs-open")).await;
    let call_id = finished_call(&peer, "fs-rec").await;
    let wav = wav_bytes();
    let content = base64::engine::general_purpose::STANDARD.encode(&wav);
    let cases = [
        (
            json!({"CALL_ID": call_id}),
            "Required parameters are not set. Request should contain or URL or FILENAME parameter",
        ),
        (
            json!({"CALL_ID": open_call, "FILENAME": "a.wav", "FILE_CONTENT": content}),
            "Call is not found in the statistic table. Call is not finished yet.",
        ),
        (
            json!({"CALL_ID": call_id, "FILENAME": "", "FILE_CONTENT": content}),
            "File name is empty",
        ),
        (
            json!({"CALL_ID": call_id, "FILENAME": "a.ogg", "FILE_CONTENT": content}),
            "Wrong file extension. Only wav and mp3 are allowed",
        ),
        (
            json!({"CALL_ID": call_id, "FILENAME": "a.wav", "FILE_CONTENT": ""}),
            "File content is empty.",
        ),
        (
            json!({"CALL_ID": call_id, "FILENAME": "a.wav", "FILE_CONTENT": "@@not base64@@"}),
            "File content is not properly encoded. Base64 encoding is expected.",
        ),
    ];
    for (body, text) in cases {
        let (status, reply) =
            json_call(&peer, "telephony.externalcall.attachRecord", body.clone()).await;
        assert_eq!(
            (status, error_of(&reply)),
            (400, ("ERROR_CORE", text)),
            "{body}"
        );
    }
    let (status, reply) = json_call(
        &peer,
        "telephony.externalcall.attachRecord",
        json!({"CALL_ID": call_id, "FILENAME": "call.wav", "FILE_CONTENT": content}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let stored = peer.record_of(&call_id).unwrap();
    assert_eq!(reply["result"]["FILE_ID"].as_u64(), Some(stored.file_id));
    assert_eq!(
        (stored.filename.as_str(), stored.mode, stored.bytes == wav),
        ("call.wav", "inline", true)
    );
}

/// Serves `/rec/call.mp3` (the MP3 bytes) and 404 elsewhere, like a recording host.
async fn recording_host(bytes: Vec<u8>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/rec/call.mp3",
        axum::routing::get(move || async move { bytes.clone() }),
    );
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, task)
}

#[tokio::test]
async fn attach_record_by_url_downloads_the_file_and_reports_http_errors() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let call_id = finished_call(&peer, "fs-url").await;
    let mp3 = mp3_bytes();
    let (host, task) = recording_host(mp3.clone()).await;
    let (status, reply) = json_call(
        &peer,
        "telephony.externalcall.attachRecord",
        json!({"CALL_ID": call_id, "RECORD_URL": format!("{host}/missing.mp3")}),
    )
    .await;
    assert_eq!(
        (status, error_of(&reply)),
        (400, ("ERROR_CORE", "Server returns HTTP error code 404"))
    );
    let (status, reply) = json_call(
        &peer,
        "telephony.externalcall.attachRecord",
        json!({"CALL_ID": call_id, "RECORD_URL": format!("{host}/rec/call.mp3")}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let stored = peer.record_of(&call_id).unwrap();
    assert_eq!(
        (stored.filename.as_str(), stored.mode, stored.bytes == mp3),
        ("call.mp3", "url", true)
    );
    task.abort();
}

#[tokio::test]
async fn attach_record_two_step_upload_accepts_a_multipart_file() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let call_id = finished_call(&peer, "fs-up").await;
    let (status, reply) = json_call(
        &peer,
        "telephony.externalcall.attachRecord",
        json!({"CALL_ID": call_id, "FILENAME": "call.mp3"}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["result"]["fieldName"], "file");
    let upload_url = reply["result"]["uploadUrl"].as_str().unwrap().to_owned();
    assert!(
        upload_url.starts_with(&format!("{}/rest/upload.json?auth=", peer.base_url())),
        "{upload_url}"
    );
    let mp3 = mp3_bytes();
    let bad = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(mp3.clone()).file_name("call.flac"),
    );
    let resp = client()
        .post(&upload_url)
        .multipart(bad)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error_description"],
        "Wrong file extension. Only wav and mp3 are allowed"
    );
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(mp3.clone()).file_name("call.mp3"),
    );
    let resp = client()
        .post(&upload_url)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let reply: Value = resp.json().await.unwrap();
    let stored = peer.record_of(&call_id).unwrap();
    assert_eq!(reply["result"]["FILE_ID"].as_u64(), Some(stored.file_id));
    assert_eq!((stored.mode, stored.bytes == mp3), ("upload", true));
    let again = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(mp3).file_name("call.mp3"),
    );
    let resp = client()
        .post(&upload_url)
        .multipart(again)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401, "an upload URL is single-use");
}

#[tokio::test]
async fn search_crm_entities_puts_contacts_before_leads_and_companies() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    peer.add_entity(CrmEntity::company(
        502,
        "Shared line Ltd",
        "+49 30 123456789",
        22,
    ));
    peer.add_entity(CrmEntity::lead(701, "Same number", "004930123456789", 21));
    let (status, reply) = json_call(
        &peer,
        "telephony.externalCall.searchCrmEntities",
        json!({"PHONE_NUMBER": CONTACT_PHONE}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let kinds: Vec<(&str, u64)> = reply["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["CRM_ENTITY_TYPE"].as_str().unwrap(),
                e["CRM_ENTITY_ID"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [("CONTACT", 311), ("COMPANY", 502)],
        "digits-only matching: 0049… is another number"
    );
    let first = &reply["result"][0];
    assert_eq!(
        (
            first["ASSIGNED_BY_ID"].as_u64(),
            first["ASSIGNED_BY"]["USER_PHONE_INNER"].as_str()
        ),
        (Some(17), Some("205"))
    );
    assert_eq!(first["ASSIGNED_BY"]["ID"], "17");
    let (_, reply) = json_call(
        &peer,
        "telephony.externalcall.searchcrmentities",
        json!({"PHONE_NUMBER": "+1555"}),
    )
    .await;
    assert_eq!(reply["result"], json!([]));
    let (status, reply) =
        json_call(&peer, "telephony.externalcall.searchcrmentities", json!({})).await;
    assert_eq!(
        (status, error_of(&reply)),
        (400, ("ERROR_CORE", "PHONE_NUMBER is empty"))
    );
}

#[tokio::test]
async fn external_lines_are_added_listed_updated_and_deleted() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let (status, reply) = json_call(
        &peer,
        "telephony.externalLine.add",
        json!({"NUMBER": "4930555000", "NAME": "Berlin DID", "CRM_AUTO_CREATE": "N"}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let id = reply["result"]["ID"].as_u64().unwrap();
    let (_, reply) = json_call(
        &peer,
        "telephony.externalLine.add",
        json!({"NUMBER": "4930555000"}),
    )
    .await;
    assert_eq!(error_of(&reply), ("ERROR_CORE", "Line already exists"));
    let (_, reply) = json_call(&peer, "telephony.externalLine.add", json!({"NUMBER": "  "})).await;
    assert_eq!(
        error_of(&reply),
        ("ERROR_CORE", "NUMBER should not be empty")
    );
    let (_, reply) = json_call(&peer, "telephony.externalLine.get", json!({})).await;
    assert_eq!(
        reply["result"],
        json!([{"NUMBER": "4930555000", "NAME": "Berlin DID", "CRM_AUTO_CREATE": "N"}])
    );
    let (_, reply) = json_call(
        &peer,
        "telephony.externalLine.update",
        json!({"NUMBER": "4930555000"}),
    )
    .await;
    assert_eq!(
        error_of(&reply),
        ("ERROR_CORE", "There are no fields to update")
    );
    let (_, reply) = json_call(
        &peer,
        "telephony.externalLine.update",
        json!({"NUMBER": "111", "NAME": "x"}),
    )
    .await;
    assert_eq!(
        error_of(&reply),
        ("ERROR_CORE", "Could not find line with number 111")
    );
    let (_, reply) = json_call(
        &peer,
        "telephony.externalLine.update",
        json!({"NUMBER": "4930555000", "CRM_AUTO_CREATE": "Y"}),
    )
    .await;
    assert_eq!(
        reply["result"],
        json!({"ID": id.to_string()}),
        "update answers a string ID"
    );
    let (_, reply) = json_call(
        &peer,
        "telephony.externalLine.delete",
        json!({"NUMBER": "4930555000"}),
    )
    .await;
    assert_eq!(reply["result"], json!([]));
    assert!(peer.lines().is_empty());
}

#[tokio::test]
async fn user_get_filters_by_extension_and_pages_by_fifty() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    for id in 100..160 {
        peer.add_user(SeedUser::new(id, "Agent", Some(&format!("{}", 1000 + id))));
    }
    let (status, reply) = json_call(
        &peer,
        "user.get",
        json!({"FILTER": {"UF_PHONE_INNER": "205", "ACTIVE": true}, "select": ["ID"]}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["result"][0]["ID"], "17", "IDs are strings");
    assert_eq!(
        (
            reply["result"][0]["ACTIVE"].as_bool(),
            reply["total"].as_u64()
        ),
        (Some(true), Some(1))
    );
    let (_, reply) = form_call(
        &peer,
        "user.get",
        &[("FILTER[UF_PHONE_INNER]", "299"), ("FILTER[ACTIVE]", "Y")],
    )
    .await;
    assert_eq!(
        reply["result"],
        json!([]),
        "fired users do not match ACTIVE"
    );
    let (_, page1) = json_call(
        &peer,
        "user.get",
        json!({"filter": {"!UF_PHONE_INNER": ""}}),
    )
    .await;
    assert_eq!(
        (
            page1["result"].as_array().unwrap().len(),
            page1["total"].as_u64(),
            page1["next"].as_u64()
        ),
        (50, Some(64), Some(50))
    );
    let (_, page2) = json_call(
        &peer,
        "user.get",
        json!({"filter": {"!UF_PHONE_INNER": ""}, "start": 50}),
    )
    .await;
    assert_eq!(
        (page2["result"].as_array().unwrap().len(), page2.get("next")),
        (14, None)
    );
}

#[tokio::test]
async fn crm_get_methods_return_string_fields_and_not_found() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    for (method, id, field, value) in [
        ("crm.contact.get", 311, "NAME", "Erika Mustermann"),
        ("crm.lead.get", 700, "TITLE", "Lead from web"),
        ("crm.company.get", 501, "TITLE", "ACME GmbH"),
        ("crm.deal.get", 800, "CONTACT_ID", "311"),
    ] {
        let (status, reply) = json_call(&peer, method, json!({"id": id})).await;
        assert_eq!(status, 200, "{method}: {reply}");
        assert_eq!(
            (
                reply["result"]["ID"].as_str(),
                reply["result"][field].as_str()
            ),
            (Some(id.to_string().as_str()), Some(value))
        );
        assert!(reply["result"]["ASSIGNED_BY_ID"].is_string());
    }
    let (status, reply) = form_call(&peer, "crm.contact.get", &[("ID", "999")]).await;
    assert_eq!((status, error_of(&reply)), (400, ("", "Not found")));
    let (status, reply) = json_call(&peer, "crm.deal.get", json!({"id": "abc"})).await;
    assert_eq!(
        (status, error_of(&reply)),
        (400, ("", "ID is not defined or invalid"))
    );
}

#[tokio::test]
async fn event_binding_is_app_only_and_reports_duplicates() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let bind =
        json!({"event": "onExternalCallStart", "handler": "https://pbx.example.com/bitrix/event"});
    let (status, reply) = json_call(&peer, "event.bind", bind.clone()).await;
    assert_eq!((status, &reply["result"]), (200, &json!(true)), "{reply}");
    let (status, reply) = json_call(&peer, "event.bind", bind.clone()).await;
    assert_eq!(
        (status, error_of(&reply)),
        (
            400,
            (
                "ERROR_CORE",
                "Unable to set event handler: Handler already binded"
            )
        )
    );
    let (status, reply) = json_call(
        &peer,
        "event.bind",
        json!({"event": "ONNOPE", "handler": "https://a.b/c"}),
    )
    .await;
    assert_eq!((status, error_of(&reply).0), (400, "ERROR_EVENT_NOT_FOUND"));
    let (status, reply) = json_call(&peer, "event.bind", json!({"handler": "https://a.b/c"})).await;
    assert_eq!((status, error_of(&reply).0), (400, "ERROR_ARGUMENT"));
    let (_, reply) = json_call(&peer, "event.get", json!({})).await;
    assert_eq!(
        reply["result"],
        json!([{"event": "ONEXTERNALCALLSTART", "handler": "https://pbx.example.com/bitrix/event", "auth_type": "0", "offline": 0}])
    );
    let (status, reply) = webhook_call(&peer, "event.get", json!({})).await;
    assert_eq!((status, error_of(&reply).0), (403, "WRONG_AUTH_TYPE"));
    let (_, reply) = json_call(&peer, "event.offline.get", json!({})).await;
    assert_eq!(reply["result"]["events"], json!([]));
    let (_, reply) = json_call(&peer, "event.unbind", bind).await;
    assert_eq!(reply["result"], json!({"count": 1}));
    assert!(peer.event_bindings().is_empty());
}

#[tokio::test]
async fn batch_runs_sequentially_with_substitution_halt_and_php_empty_maps() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    // Raw JSON text: serde_json maps sort their keys, and the order sent is the order run.
    let body = format!(
        r#"{{"halt": 1, "auth": "{}", "cmd": {{
            "reg": "telephony.externalcall.register?USER_ID=17&PHONE_NUMBER=%2B4930123456789&TYPE=2&SHOW=1&EXTERNAL_CALL_ID=fs-b",
            "show": "telephony.externalCall.show?CALL_ID=$result[reg][CALL_ID]&USER_ID[]=21&USER_ID[]=22",
            "hide": "telephony.externalCall.hide?CALL_ID=$result[reg][CALL_ID]&USER_ID[]=17&USER_ID[]=22",
            "fin": "telephony.externalCall.finish?CALL_ID=$result[reg][CALL_ID]&USER_ID=21&DURATION=74&STATUS_CODE=200&ADD_TO_CHAT=0"
        }}}}"#,
        peer.latest_tokens().access
    );
    let resp = client()
        .post(format!("{}batch", peer.rest_url()))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let reply: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{reply}");
    let result = &reply["result"];
    assert_eq!(
        result["result_error"],
        json!([]),
        "empty maps are PHP empty arrays"
    );
    assert_eq!(result["result_total"], json!([]));
    assert_eq!(
        (&result["result"]["show"], &result["result"]["hide"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(result["result"]["fin"]["CALL_DURATION"], 74);
    let call_id = result["result"]["reg"]["CALL_ID"].as_str().unwrap();
    assert!(result["result_time"]["fin"]["start"].is_number());
    // Executed in the order sent, not alphabetically: show before hide before finish.
    let intervals: Vec<(u64, bool)> = peer
        .timeline(call_id)
        .iter()
        .map(|i| (i.user, i.to.is_some()))
        .collect();
    assert_eq!(intervals, [(17, true), (21, true), (22, true)]);
    assert_eq!(peer.requests().len(), 1);
    assert_eq!(
        peer.arrivals().len(),
        1,
        "a batch is one request for the bucket"
    );
    let finishes = peer.method_calls("telephony.externalcall.finish");
    assert_eq!(
        (finishes.len(), finishes[0].batch_name.as_deref()),
        (1, Some("fin"))
    );

    // halt stops at the first failure; without halt the rest still runs.
    let failing = json!({"a": "telephony.externalcall.finish?CALL_ID=nope&USER_ID=17", "b": "user.get?ID=17"});
    let (_, reply) = json_call(&peer, "batch", json!({"halt": true, "cmd": failing})).await;
    assert_eq!(reply["result"]["result"], json!([]));
    assert_eq!(
        reply["result"]["result_error"]["a"]["error_description"],
        "Call is not found (call should be registered prior to finishing"
    );
    let (_, reply) = json_call(&peer, "batch", json!({"halt": 0, "cmd": failing})).await;
    assert_eq!(reply["result"]["result"]["b"][0]["ID"], "17");
}

#[tokio::test]
async fn batch_form_encoding_lists_and_limits() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let (status, reply) = form_call(
        &peer,
        "batch",
        &[
            ("cmd[0]", "user.get?ID=21"),
            ("cmd[1]", "crm.contact.get?id=311"),
            ("cmd[2]", "batch?cmd[x]=user.get"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["result"]["result"][0][0]["ID"], "21",
        "list commands answer lists"
    );
    assert_eq!(reply["result"]["result"][1]["ID"], "311");
    assert_eq!(
        reply["result"]["result_error"]["2"]["error"],
        "ERROR_BATCH_METHOD_NOT_ALLOWED"
    );
    let too_many: serde_json::Map<String, Value> = (0..51)
        .map(|i| (format!("c{i}"), json!("user.get")))
        .collect();
    let (status, reply) = json_call(&peer, "batch", json!({"cmd": too_many})).await;
    assert_eq!(
        (status, error_of(&reply).0),
        (400, "ERROR_BATCH_LENGTH_EXCEEDED")
    );
}

#[tokio::test]
async fn operating_budget_answers_429_for_that_method_only() {
    let budget = OperatingBudget {
        limit: Duration::from_secs(10),
        cost: Duration::from_millis(10),
        per_method: [(
            "telephony.externalcall.searchcrmentities".to_owned(),
            Duration::from_secs(6),
        )]
        .into(),
    };
    let peer = BitrixPeer::seeded(PeerOptions {
        operating: Some(budget),
        ..PeerOptions::default()
    })
    .await;
    let search = json!({"PHONE_NUMBER": CONTACT_PHONE});
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, reply) = json_call(
            &peer,
            "telephony.externalcall.searchCrmEntities",
            search.clone(),
        )
        .await;
        statuses.push(status);
        assert!(
            reply["time"]["operating"].is_number() || status == 429,
            "{reply}"
        );
    }
    assert_eq!(statuses, [200, 200, 429]);
    let (status, reply) = json_call(&peer, "user.get", json!({})).await;
    assert_eq!(status, 200, "other methods are unaffected: {reply}");
    peer.advance_clock(Duration::from_secs(601));
    let (status, _) = json_call(&peer, "telephony.externalcall.searchCrmEntities", search).await;
    assert_eq!(status, 200, "the budget recovers once the buckets expire");
}

#[tokio::test]
async fn refused_outage_closes_the_port_and_restore_reopens_it() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let addr = peer.addr();
    // One client throughout: its pooled keep-alive connection must not outlive the outage.
    let http = client();
    let url = format!("{}user.get", peer.rest_url());
    let body = json!({"auth": peer.tokens().access});
    assert_eq!(
        http.post(&url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    peer.go_down(Outage::Refuse).await;
    let err = http.post(&url).json(&body).send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    let err = client().post(&url).json(&body).send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    peer.restore().await;
    assert_eq!(peer.addr(), addr);
    let resp = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "served again on the same port");
}

#[tokio::test]
async fn http500_and_slow_outages_answer_as_configured() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    peer.go_down(Outage::Http500).await;
    let (status, reply) = json_call(
        &peer,
        "telephony.externalcall.register",
        inbound(17, CONTACT_PHONE, "fs-5"),
    )
    .await;
    assert_eq!((status, error_of(&reply).0), (500, "INTERNAL_SERVER_ERROR"));
    assert!(
        peer.calls().is_empty(),
        "nothing happens during a 500 outage"
    );
    let delay = Duration::from_millis(300);
    peer.go_down(Outage::Slow(delay)).await;
    let started = tokio::time::Instant::now();
    let (status, _) = json_call(&peer, "user.get", json!({})).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= delay, "answered only after the delay");
    peer.restore().await;
    let (status, _) = json_call(&peer, "user.get", json!({})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn redirect_mode_answers_302_to_the_renamed_base() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    peer.set_redirect(true);
    let token = peer.latest_tokens().access;
    let resp = client()
        .post(format!("{}user.get.json?start=0", peer.rest_url()))
        .form(&[("auth", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let location = resp.headers()[reqwest::header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        location,
        format!("{}user.get.json?start=0", peer.renamed_rest_url())
    );
    // reqwest's default policy turns the POST into a bodiless GET: the auth is lost.
    let following = reqwest::Client::new();
    let resp = following
        .post(format!("{}user.get.json", peer.rest_url()))
        .form(&[("auth", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // Re-POSTing to the new base works.
    let resp = client()
        .post(location)
        .form(&[("auth", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

/// A connector stand-in: answers 200 and hands every form body to the test.
async fn event_sink() -> (
    String,
    tokio::sync::mpsc::Receiver<Vec<(String, String)>>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/bitrix/event", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/bitrix/event",
        axum::routing::post(move |body: String| {
            let tx = tx.clone();
            async move {
                let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
                    .into_owned()
                    .collect();
                tx.send(form).await.unwrap();
                "ok"
            }
        }),
    );
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, rx, task)
}

fn field<'a>(form: &'a [(String, String)], key: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == key)
        .map_or("<missing>", |(_, v)| v.as_str())
}

#[tokio::test]
async fn click_to_call_registers_the_call_and_posts_the_event_form() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let (handler, mut events, task) = event_sink().await;
    let click = ClickToCall {
        user_id: 17,
        phone: "+49 30 123456789".to_owned(),
        line_number: "4930555000".to_owned(),
        crm: Some((EntityKind::Contact, 311)),
        queued_for: Duration::ZERO,
    };
    let (call_id, status) = peer.click_to_call(&handler, "app-token-1", &click).await;
    assert_eq!(status, Some(200));
    let form = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(field(&form, "event"), "ONEXTERNALCALLSTART");
    assert_eq!(field(&form, "data[CALL_ID]"), call_id);
    assert_eq!(field(&form, "data[USER_ID]"), "17");
    assert_eq!(
        field(&form, "data[PHONE_NUMBER_INTERNATIONAL]"),
        CONTACT_PHONE
    );
    assert_eq!(
        (
            field(&form, "data[CRM_ENTITY_TYPE]"),
            field(&form, "data[CRM_ENTITY_ID]")
        ),
        ("CONTACT", "311")
    );
    assert_eq!(field(&form, "auth[application_token]"), "app-token-1");
    assert_eq!(field(&form, "auth[client_endpoint]"), peer.rest_url());
    let call = peer.call(&call_id).unwrap();
    assert_eq!(
        (call.call_type, call.external_call_id.as_deref(), call.show),
        (1, None, false)
    );
    // Duplicate delivery of the same CALL_ID [field].
    assert_eq!(peer.redeliver(0).await, Some(200));
    let again = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, form);
    // The connector finishes the clicked call with that CALL_ID; no register.
    let (status, _) = json_call(
        &peer,
        "telephony.externalcall.finish",
        json!({"CALL_ID": call_id, "USER_ID": 17, "STATUS_CODE": "603-S"}),
    )
    .await;
    assert_eq!(status, 200);
    let (tokens, status) = peer.app_install(&handler, "app-token-1").await;
    assert_eq!(status, Some(200));
    let install = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            field(&install, "event"),
            field(&install, "auth[refresh_token]")
        ),
        ("ONAPPINSTALL", tokens.refresh.as_str())
    );
    assert_eq!(peer.deliveries().len(), 3);
    task.abort();
}

#[tokio::test]
async fn php_bracket_forms_with_indices_parse_like_php() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let call_id = register(&peer, inbound(17, CONTACT_PHONE, "fs-br")).await;
    let (_, reply) = form_call(
        &peer,
        "telephony.externalcall.show",
        &[
            ("CALL_ID", &call_id),
            ("USER_ID[0]", "21"),
            ("USER_ID[1]", "22"),
        ],
    )
    .await;
    assert_eq!(reply["result"], true);
    assert_eq!(peer.shown(&call_id), [21, 22]);
    assert_eq!(
        peer.requests().last().unwrap().params["USER_ID"],
        json!(["21", "22"]),
        "indexed keys become a list"
    );
    // Nested filter in a GET query; user.get also takes top-level filter fields.
    let token = peer.latest_tokens().access;
    let resp = client()
        .get(format!("{}user.get", peer.rest_url()))
        .query(&[("FILTER[UF_PHONE_INNER]", "207"), ("auth", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["result"][0]["ID"], "22");
    let (_, reply) = form_call(&peer, "user.get", &[("UF_PHONE_INNER", "206")]).await;
    assert_eq!(reply["result"][0]["ID"], "21");
}

#[tokio::test]
async fn webhook_lines_live_in_their_own_namespace() {
    let peer = BitrixPeer::seeded(PeerOptions {
        webhook_wrong_auth_type: false,
        ..PeerOptions::default()
    })
    .await;
    let (status, _) = webhook_call(
        &peer,
        "telephony.externalLine.add",
        json!({"NUMBER": "777"}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, reply) = json_call(&peer, "telephony.externalLine.get", json!({})).await;
    assert_eq!(
        reply["result"],
        json!([]),
        "the app does not see app-less lines"
    );
    let (status, _) = json_call(
        &peer,
        "telephony.externalLine.add",
        json!({"NUMBER": "777"}),
    )
    .await;
    assert_eq!(status, 200, "the same NUMBER is free in the app namespace");
    let (_, reply) = webhook_call(&peer, "telephony.externalLine.get", json!({})).await;
    assert_eq!(reply["result"][0]["NUMBER"], "777");
}

#[tokio::test]
async fn overload_outage_answers_503_overload_limit() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    peer.go_down(Outage::Overload).await;
    let (status, reply) = json_call(&peer, "user.get", json!({})).await;
    assert_eq!((status, error_of(&reply).0), (503, "OVERLOAD_LIMIT"));
    assert_eq!(peer.count_rejected(), 0, "not a bucket rejection");
    peer.restore().await;
    let (status, _) = json_call(&peer, "user.get", json!({})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn attach_transcription_validates_messages_and_needs_a_finished_call() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let open_call = register(&peer, inbound(17, CONTACT_PHONE, "fs-tr-open")).await;
    let call_id = finished_call(&peer, "fs-tr").await;
    let good = json!([{"SIDE": "User", "START_TIME": 0, "STOP_TIME": 3, "MESSAGE": "Hello"},
                      {"SIDE": "Client", "START_TIME": 3, "STOP_TIME": 5, "MESSAGE": "Hi"}]);
    let cases = [
        (
            json!({"MESSAGES": good}),
            "CALL_ID should be set".to_owned(),
        ),
        (
            json!({"CALL_ID": call_id, "MESSAGES": "x"}),
            "MESSAGES should be an array".to_owned(),
        ),
        (
            json!({"CALL_ID": call_id, "MESSAGES": [{"SIDE": "Bot", "START_TIME": 0, "STOP_TIME": 1, "MESSAGE": "x"}]}),
            "MESSAGES[0][SIDE] should be either Client or User".to_owned(),
        ),
        (
            json!({"CALL_ID": call_id, "MESSAGES": [good[0], {"SIDE": "User", "START_TIME": -1, "STOP_TIME": 1, "MESSAGE": "x"}]}),
            "MESSAGES[1][START_TIME] should be greater or equal to zero".to_owned(),
        ),
        (
            json!({"CALL_ID": call_id, "MESSAGES": [{"SIDE": "User", "START_TIME": 0, "STOP_TIME": 0, "MESSAGE": "x"}]}),
            "MESSAGES[0][STOP_TIME] should be greater than zero".to_owned(),
        ),
        (
            json!({"CALL_ID": call_id, "MESSAGES": [{"SIDE": "User", "START_TIME": 0, "STOP_TIME": 1, "MESSAGE": " "}]}),
            "MESSAGES[0][MESSAGE] is empty".to_owned(),
        ),
        (
            json!({"CALL_ID": open_call, "MESSAGES": good}),
            format!("Call {open_call} is not found. Is it finished?"),
        ),
    ];
    for (body, text) in cases {
        let (status, reply) =
            json_call(&peer, "telephony.call.attachTranscription", body.clone()).await;
        assert_eq!(
            (status, error_of(&reply)),
            (400, ("ERROR_CORE", text.as_str())),
            "{body}"
        );
    }
    let (status, reply) = json_call(
        &peer,
        "telephony.call.attachTranscription",
        json!({"CALL_ID": call_id, "MESSAGES": good}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let transcripts = peer.transcripts();
    assert_eq!(
        reply["result"]["TRANSCRIPT_ID"].as_u64(),
        Some(transcripts[0].id)
    );
    assert_eq!(transcripts[0].messages, good);
}
