//! The fake Bitrix24 portal driven with plain reqwest: every method's happy path and
//! documented errors, JSON/form/GET encodings, OAuth and webhook auth, batch, the leaky
//! bucket, token expiry and rotation, outages, redirects and the card timeline.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::bitrix_peer::{
    AuthKind, BitrixPeer, BucketConfig, CrmEntity, EntityKind, ErrorStyle, PeerOptions, SeedUser,
};

const CONTACT_PHONE: &str = "+4930123456789";
const LEAD_PHONE: &str = "+4989555666";
const COMPANY_PHONE: &str = "+4940111222";

/// A peer with users 17 (ext 205), 21 (206), 22 (207), fired 30 (299), contact 311,
/// lead 700, company 501 and deal 800.
async fn seeded(opts: PeerOptions) -> BitrixPeer {
    let peer = BitrixPeer::start(opts).await;
    peer.add_user(SeedUser::new(17, "Erika", Some("205")));
    peer.add_user(SeedUser::new(21, "Max", Some("206")));
    peer.add_user(SeedUser::new(22, "Lena", Some("207")));
    peer.add_user(SeedUser::new(30, "Fired", Some("299")).inactive());
    peer.add_entity(CrmEntity::contact(
        311,
        "Erika Mustermann",
        "+49 30 123456789",
        17,
    ));
    peer.add_entity(CrmEntity::lead(700, "Lead from web", LEAD_PHONE, 21));
    peer.add_entity(CrmEntity::company(501, "ACME GmbH", COMPANY_PHONE, 22));
    peer.add_entity(CrmEntity::deal(800, "Big deal", Some(311), 17));
    peer
}

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
    let peer = seeded(PeerOptions::default()).await;
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
    let peer = seeded(PeerOptions::default()).await;
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
    let peer = seeded(PeerOptions::default()).await;
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
    let peer = seeded(PeerOptions::default()).await;
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
    let peer = seeded(opts).await;
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
    let peer = seeded(PeerOptions::default()).await;
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
    let peer = seeded(PeerOptions::default()).await;
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
    let peer = seeded(PeerOptions::default()).await;
    let (status, reply) = json_call(&peer, "telephony.externalcall.teleport", json!({})).await;
    assert_eq!(
        (status, error_of(&reply)),
        (404, ("ERROR_METHOD_NOT_FOUND", "Method not found!"))
    );
}

#[tokio::test]
async fn register_deduplicates_the_same_call_for_thirty_minutes() {
    let peer = seeded(PeerOptions::default()).await;
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
    let peer = seeded(PeerOptions::default()).await;
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
    let peer = seeded(PeerOptions::default()).await;
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
    let peer = seeded(PeerOptions::default()).await;
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
    let peer = seeded(PeerOptions::default()).await;
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
    let peer = seeded(PeerOptions {
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
    let peer = seeded(PeerOptions {
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
    let peer = seeded(PeerOptions::default()).await;
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
