//! `fsb24::bitrix::BitrixClient` against the fake Bitrix24 portal over real loopback HTTP:
//! rate limiting under concurrency, batching with per-call order, single-flight OAuth refresh
//! with durable rotation, redirect re-POST, recordings, lookups, and secrets kept out of logs.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::DateTime;
use fsb24::bitrix::{
    AttachMode, AuthSettings, BitrixClient, BitrixError, BitrixSettings, ErrorKind, RateLimit,
    SecretString, TokenFile, WebhookUrl, wire::CrmEntityType,
};
use fsb24::ids::{BitrixUserId, ExternalCallId, PhoneNumber};
use fsb24::outbox::op::{CallType, FinishCall, RegisterCall};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::support::bitrix_peer::{
    BitrixPeer, BucketConfig, CONTACT_PHONE, Fault, PeerOptions, SeedUser,
};

const FAILSAFE: Duration = Duration::from_secs(20);

fn fast_bucket(per_second: f64, burst: u32) -> PeerOptions {
    PeerOptions {
        bucket: BucketConfig {
            drain_per_sec: per_second,
            burst,
        },
        ..PeerOptions::default()
    }
}

async fn start(settings: BitrixSettings) -> (BitrixClient, TaskTracker, CancellationToken) {
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let client = BitrixClient::start(settings, &tracker, shutdown.clone())
        .await
        .unwrap();
    (client, tracker, shutdown)
}

fn register_call(user: u64, phone: &str) -> RegisterCall {
    RegisterCall {
        user: BitrixUserId(user),
        phone: PhoneNumber::parse(phone).unwrap(),
        call_type: CallType::Incoming,
        line_number: Some("4930555000".into()),
        started_at: DateTime::parse_from_rfc3339("2026-05-04T09:15:02+02:00").unwrap(),
        crm_create: false,
        show: true,
        crm: None,
    }
}

fn finish_call(user: u64, secs: u32) -> FinishCall {
    let status_code = if secs > 0 { "200" } else { "304" }.to_owned();
    FinishCall {
        user: BitrixUserId(user),
        duration_secs: secs,
        status_code,
        add_to_chat: false,
        failed_reason: None,
    }
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(FAILSAFE, f)
        .await
        .expect("failsafe timeout")
}

#[tokio::test]
async fn two_hundred_concurrent_callers_never_trip_the_portal_rate_limit() {
    let peer = BitrixPeer::seeded(fast_bucket(40.0, 50)).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, _) = peer.install_app(dir.path()).await;
    settings.rate = RateLimit {
        per_second: 40.0,
        burst: 50,
    };
    settings.batch_window = None; // every caller its own request: the limiter does all the work
    let (client, _tracker, _stop) = start(settings).await;
    let callers: Vec<_> = (0..200)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let call = ExternalCallId::new(format!("fs-rate-{i}"));
                client
                    .register(&call, &register_call(17, &format!("+49301234{i:04}")))
                    .await
            })
        })
        .collect();
    for caller in callers {
        within(caller).await.unwrap().unwrap();
    }
    assert_eq!(peer.count_rejected(), 0, "no QUERY_LIMIT_EXCEEDED");
    // A leaky bucket of 40/s and size 50 admits at most 50 + 40 requests in any second.
    assert!(peer.max_requests_in_any_window(Duration::from_secs(1)) <= 90);
    assert_eq!(peer.calls().len(), 200);
}

#[tokio::test]
async fn batched_mixed_load_keeps_each_calls_order_and_uses_few_requests() {
    let peer = BitrixPeer::seeded(fast_bucket(40.0, 50)).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, _) = peer.install_app(dir.path()).await;
    settings.rate = RateLimit {
        per_second: 40.0,
        burst: 50,
    };
    let (client, _tracker, _stop) = start(settings).await;
    let callers: Vec<_> = (0..200)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let call = ExternalCallId::new(format!("fs-mix-{i}"));
                let reg = client
                    .register(&call, &register_call(17, &format!("+49301234{i:04}")))
                    .await?;
                let users = [BitrixUserId(21), BitrixUserId(22)];
                assert!(client.show(&call, &reg.call_id, &users).await?);
                assert!(client.hide(&call, &reg.call_id, &users).await?);
                client
                    .finish(&call, &reg.call_id, &finish_call(17, 30))
                    .await?;
                Ok::<_, BitrixError>(reg.call_id)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for caller in callers {
        ids.push(within(caller).await.unwrap().unwrap());
    }
    assert_eq!(peer.count_rejected(), 0);
    let http = peer.requests().len();
    assert!(http < 200, "800 commands took {http} HTTP requests");
    for id in ids {
        let record = peer.call(id.as_str()).unwrap();
        assert!(peer.shown(&record.call_id).is_empty(), "every card closed");
    }
    assert_eq!(
        peer.method_calls("telephony.externalcall.finish").len(),
        200
    );
}

#[tokio::test]
async fn show_for_several_users_queued_together_becomes_one_command() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, _) = peer.install_app(dir.path()).await;
    settings.batch_window = Some(Duration::from_millis(50));
    let (client, _tracker, _stop) = start(settings).await;
    let call = ExternalCallId::new("fs-merge");
    let reg = within(client.register(&call, &register_call(17, "+4930123456789")))
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        client.show(&call, &reg.call_id, &[BitrixUserId(21)]),
        client.show(&call, &reg.call_id, &[BitrixUserId(22)]),
    );
    assert!(a.unwrap() && b.unwrap());
    let shows = peer.method_calls("telephony.externalcall.show");
    assert_eq!(shows.len(), 1, "{shows:?}");
    let mut shown = peer.shown(reg.call_id.as_str());
    shown.sort_unstable();
    assert_eq!(shown, [17, 21, 22]);
}

#[tokio::test]
async fn expired_token_under_100_concurrent_requests_is_refreshed_exactly_once() {
    let peer = BitrixPeer::seeded(fast_bucket(10_000.0, 10_000)).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, token_path) = peer.install_app(dir.path()).await;
    settings.rate = RateLimit {
        per_second: 10_000.0,
        burst: 10_000,
    };
    settings.batch_window = None;
    let (client, _tracker, _stop) = start(settings).await;
    peer.expire_access_tokens();
    let phone = PhoneNumber::parse("+4930123456789").unwrap();
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let (client, phone) = (client.clone(), phone.clone());
            tokio::spawn(async move { client.search_crm_entities(&phone).await })
        })
        .collect();
    for caller in callers {
        let found = within(caller).await.unwrap().unwrap();
        assert_eq!(found[0].entity_id, 311);
    }
    assert_eq!(peer.refresh_count(), 1);
    assert_eq!(client.refresh_count(), 1);
    let on_disk = TokenFile::load(&token_path).await.unwrap();
    let latest = peer.latest_tokens();
    assert_eq!(on_disk.refresh_token.expose(), latest.refresh);
    assert_eq!(on_disk.access_token.expose(), latest.access);
    assert_ne!(
        latest.refresh,
        peer.tokens().refresh,
        "the refresh token was rotated"
    );
}

#[tokio::test]
async fn refused_refresh_token_is_a_reauthorisation_error() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, token_path) = peer.install_app(dir.path()).await;
    let mut file = TokenFile::load(&token_path).await.unwrap();
    file.refresh_token = SecretString::new("not-a-valid-refresh-token");
    file.save(&token_path).await.unwrap();
    settings.batch_window = None;
    let (client, _tracker, _stop) = start(settings).await;
    peer.expire_access_tokens();
    let err = within(client.external_line_get()).await.unwrap_err();
    assert!(
        matches!(&err, BitrixError::Reauthorise { code, .. } if code == "invalid_grant"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Before the local application is installed there is no token file: fsb24 still starts (calls
/// must flow), every request fails with a retryable error (the outbox keeps the writes, as in
/// an outage) without reaching the portal, and once the file appears the next request uses it.
#[tokio::test]
async fn without_a_token_file_requests_wait_retryably_until_the_file_appears() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, token_path) = peer.install_app(dir.path()).await;
    let installed = std::fs::read(&token_path).unwrap();
    std::fs::remove_file(&token_path).unwrap();
    settings.batch_window = None;
    let (client, _tracker, _stop) = start(settings).await;
    let err = within(client.external_line_get()).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("tokens.json"), "{err}");
    assert!(peer.requests().is_empty(), "nothing sent without tokens");
    std::fs::write(&token_path, installed).unwrap();
    within(client.external_line_get()).await.unwrap();
    assert_eq!(peer.requests().len(), 1);
}

#[tokio::test]
async fn after_a_refresh_the_token_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, token_path) = peer.install_app(dir.path()).await;
    // As an operator installs it: readable by fsb24's user only.
    std::fs::set_permissions(&token_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    settings.batch_window = None;
    let (client, _tracker, _stop) = start(settings).await;
    peer.expire_access_tokens();
    within(client.external_line_get()).await.unwrap();
    assert_eq!(client.refresh_count(), 1);
    let on_disk = TokenFile::load(&token_path).await.unwrap();
    assert_eq!(on_disk.refresh_token.expose(), peer.latest_tokens().refresh);
    assert_eq!(mode_of(&token_path), 0o600, "the live tokens stay private");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["tokens.json"], "no temp file left behind");
}

#[tokio::test]
async fn a_token_file_naming_another_portal_or_token_server_is_refused_at_start() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let elsewhere = BitrixPeer::start(PeerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    for field in ["client_endpoint", "server_endpoint"] {
        let (settings, token_path) = peer.install_app(dir.path()).await;
        let mut file = TokenFile::load(&token_path).await.unwrap();
        match field {
            "client_endpoint" => file.client_endpoint = elsewhere.rest_url(),
            _ => file.server_endpoint = elsewhere.rest_url(),
        }
        file.save(&token_path).await.unwrap();
        let tracker = TaskTracker::new();
        let err = BitrixClient::start(settings, &tracker, CancellationToken::new())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, BitrixError::EndpointMismatch { what, .. } if what.starts_with(field)),
            "{err:?}"
        );
        assert!(err.to_string().contains(&peer.rest_url()), "{err}");
    }
    assert!(elsewhere.requests().is_empty(), "nothing went elsewhere");
    assert!(peer.requests().is_empty());
}

#[tokio::test]
async fn plain_http_to_another_host_is_refused_for_oauth_endpoints() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, _) = peer.install_app(dir.path()).await;
    let AuthSettings::OAuth(oauth) = &mut settings.auth else {
        unreachable!()
    };
    oauth.portal = url::Url::parse("http://portal.example/rest/").unwrap();
    let tracker = TaskTracker::new();
    let err = BitrixClient::start(settings, &tracker, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, BitrixError::Insecure { what: "portal" }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_token_answer_naming_another_portal_is_refused_and_never_used() {
    let decoy = "http://127.0.0.1:9/rest/";
    let peer = BitrixPeer::seeded(PeerOptions {
        token_answer_endpoint: Some(decoy.to_owned()),
        ..PeerOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, token_path) = peer.install_app(dir.path()).await;
    settings.batch_window = None;
    let before = TokenFile::load(&token_path).await.unwrap();
    let (client, _tracker, _stop) = start(settings).await;
    peer.expire_access_tokens();
    let err = within(client.external_line_get()).await.unwrap_err();
    assert!(
        matches!(&err, BitrixError::EndpointMismatch { found, .. } if found == decoy),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(
        client.refresh_count(),
        0,
        "the answer's tokens were not taken"
    );
    let after = TokenFile::load(&token_path).await.unwrap();
    assert_eq!(
        after, before,
        "the token file still names the configured portal"
    );
}

#[tokio::test]
async fn redirected_post_is_reposted_once_and_the_new_address_is_kept() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (settings, _) = peer.install_app(dir.path()).await;
    let (client, _tracker, _stop) = start(settings).await;
    peer.set_redirect(true);
    let call = ExternalCallId::new("fs-moved");
    let reg = within(client.register(&call, &register_call(17, "+4930123456789")))
        .await
        .unwrap();
    within(client.finish(&call, &reg.call_id, &finish_call(17, 5)))
        .await
        .unwrap();
    let statuses: Vec<(String, String, u16)> = peer
        .requests()
        .into_iter()
        .map(|r| (r.method, r.http_method, r.status))
        .collect();
    let redirects = statuses.iter().filter(|(_, _, s)| *s == 302).count();
    assert_eq!(
        redirects, 1,
        "only the first request was redirected: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|(_, verb, _)| verb == "POST"),
        "{statuses:?}"
    );
    assert_eq!(
        peer.call(reg.call_id.as_str())
            .unwrap()
            .external_call_id
            .as_deref(),
        Some("fs-moved")
    );
}

#[tokio::test]
async fn recordings_attach_inline_and_by_two_step_upload_byte_for_byte() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, _) = peer.install_app(dir.path()).await;
    settings.inline_record_max = 64 * 1024;
    let (client, _tracker, _stop) = start(settings).await;
    for (name, size, mode) in [
        ("small.wav", 10_000usize, AttachMode::Inline),
        ("large.wav", 200_001, AttachMode::Upload),
    ] {
        let path = dir.path().join(name);
        let mut bytes = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        bytes.extend((0..size).map(|i| (i * 7 % 251) as u8));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&bytes)
            .unwrap();
        let call = ExternalCallId::new(format!("fs-rec-{name}"));
        let reg = within(client.register(&call, &register_call(17, "+4930123456789")))
            .await
            .unwrap();
        within(client.finish(&call, &reg.call_id, &finish_call(17, 12)))
            .await
            .unwrap();
        let (file_id, used) = within(client.attach_record(&reg.call_id, &path))
            .await
            .unwrap();
        assert_eq!(used, mode);
        let stored = peer.record_of(reg.call_id.as_str()).unwrap();
        assert_eq!(file_id, Some(stored.file_id));
        assert_eq!(
            (stored.filename.as_str(), stored.bytes == bytes),
            (name, true)
        );
    }
}

#[tokio::test]
async fn lookups_decode_users_crm_owners_lines_and_events() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    for id in 100..180 {
        let inner = (id % 2 == 0).then(|| format!("{}", 1000 + id));
        peer.add_user(SeedUser::new(id, "Agent", inner.as_deref()));
    }
    let dir = tempfile::tempdir().unwrap();
    let (settings, _) = peer.install_app(dir.path()).await;
    let (client, _tracker, _stop) = start(settings).await;
    let users = within(client.users_with_inner_numbers()).await.unwrap();
    assert_eq!(users.len(), 3 + 40, "paged past the first 50");
    let erika = users
        .iter()
        .find(|u| u.inner_number.as_deref() == Some("205"));
    assert_eq!(erika.map(|u| u.id), Some(BitrixUserId(17)));
    assert_eq!(
        within(client.crm_entity(CrmEntityType::Contact, 311))
            .await
            .unwrap(),
        Some(BitrixUserId(17))
    );
    let missing = within(client.crm_entity(CrmEntityType::Lead, 4242))
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), Some(ErrorKind::Rejected));
    within(client.external_line_add("4930555000", Some("Berlin"), false))
        .await
        .unwrap();
    let lines = within(client.external_line_get()).await.unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.number == "4930555000" && !l.crm_auto_create)
    );
    let handler = url::Url::parse("https://fsb24.example.com/bitrix/events").unwrap();
    let event = fsb24::bitrix::wire::EventName::ExternalCallStart;
    within(client.event_bind(event, &handler)).await.unwrap();
    within(client.event_bind(event, &handler)).await.unwrap(); // already bound: success
    let bound = within(client.event_get()).await.unwrap();
    assert!(bound.iter().any(|h| h.name() == Some(event)));
}

#[tokio::test]
async fn retried_finish_reports_call_not_found_for_the_outbox_to_accept() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    peer.set_error_style(crate::support::bitrix_peer::ErrorStyle::Empty);
    let dir = tempfile::tempdir().unwrap();
    let (settings, _) = peer.install_app(dir.path()).await;
    let (client, _tracker, _stop) = start(settings).await;
    let call = ExternalCallId::new("fs-twice");
    let reg = within(client.register(&call, &register_call(17, "+4930123456789")))
        .await
        .unwrap();
    within(client.finish(&call, &reg.call_id, &finish_call(17, 0)))
        .await
        .unwrap();
    let again = within(client.finish(&call, &reg.call_id, &finish_call(17, 0)))
        .await
        .unwrap_err();
    assert!(again.is_call_not_found(), "{again}");
    assert!(!again.is_retryable());
    assert!(
        !within(client.show(&call, &reg.call_id, &[BitrixUserId(21)]))
            .await
            .unwrap(),
        "show after finish is false"
    );
}

// Moved from bitrix_methods.rs, where it drove the peer by hand: what it guards is fsb24's retry
// (the outbox retries a write with the same EXTERNAL_CALL_ID), so it runs fsb24's client.
#[tokio::test]
async fn a_register_whose_answer_was_lost_is_retried_into_the_same_call() {
    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (settings, _) = peer.install_app(dir.path()).await;
    let (client, _tracker, _stop) = start(settings).await;
    peer.fail_next("telephony.externalCall.register", 1, Fault::LoseResponse);
    let call = ExternalCallId::new("fs-lost");
    let mut req = register_call(17, CONTACT_PHONE);
    // The 30-minute window is measured from CALL_START_DATE [impl]: send a current one.
    req.started_at = chrono::Utc::now().fixed_offset();
    let lost = within(client.register(&call, &req)).await.unwrap_err();
    assert!(lost.is_retryable(), "{lost}");
    assert_eq!(
        peer.calls().len(),
        1,
        "the call was registered before the answer was lost"
    );
    let reg = within(client.register(&call, &req)).await.unwrap();
    assert_eq!(
        reg.call_id.as_str(),
        peer.calls()[0].call_id,
        "de-duplication returns the same CALL_ID"
    );
    assert_eq!(peer.calls().len(), 1);
    let reject = Fault::Reject {
        status: 503,
        code: "QUERY_LIMIT_EXCEEDED".to_owned(),
        description: "Too many requests".to_owned(),
    };
    peer.fail_next("telephony.externalcall.finish", 1, reject);
    // The client waits out the portal's QUERY_LIMIT itself and sends the finish again.
    within(client.finish(&call, &reg.call_id, &finish_call(17, 3)))
        .await
        .unwrap();
    let finishes: Vec<u16> = peer
        .requests()
        .into_iter()
        .filter(|r| {
            r.method
                .eq_ignore_ascii_case("telephony.externalcall.finish")
        })
        .map(|r| r.status)
        .collect();
    // A second finish of a finished call is 404 (bitrix_methods): the 200 of the retry shows
    // the rejected one did nothing.
    assert_eq!(finishes, [503, 200], "the fault was one-shot");
    assert!(peer.call(reg.call_id.as_str()).unwrap().finished.is_some());
}

/// A `MakeWriter` collecting everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn secrets_never_reach_the_logs_of_a_failing_run() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let peer = BitrixPeer::seeded(PeerOptions::default()).await;
    peer.set_redirect(true);
    let dir = tempfile::tempdir().unwrap();
    let hook_secret = "wh-s3cr3t-path-segment";
    let hook =
        WebhookUrl::parse(&format!("{}rest/1/{hook_secret}/", peer.base_url() + "/")).unwrap();
    let mut hook_settings = BitrixSettings::new(AuthSettings::Webhook(hook));
    hook_settings.batch_window = None;
    let (hook_client, _t1, _s1) = start(hook_settings).await;
    let (mut oauth, token_path) = peer.install_app(dir.path()).await;
    let mut file = TokenFile::load(&token_path).await.unwrap();
    let refresh_secret = "r3fr3sh-s3cr3t-value";
    file.refresh_token = SecretString::new(refresh_secret);
    file.save(&token_path).await.unwrap();
    oauth.batch_window = None;
    let (oauth_client, _t2, _s2) = start(oauth).await;
    peer.expire_access_tokens();

    let mut errors = vec![
        within(hook_client.external_line_get()).await.unwrap_err(),
        within(oauth_client.external_line_get()).await.unwrap_err(),
    ];
    peer.go_down(crate::support::bitrix_peer::Outage::Refuse)
        .await;
    errors.push(within(hook_client.event_get()).await.unwrap_err());
    for err in &errors {
        tracing::warn!(error = err as &dyn std::error::Error, debug = ?err, "delivery failed");
    }
    assert!(matches!(errors[2], BitrixError::Transport { .. }) && errors[2].is_retryable());

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("delivery failed") && text.contains("portal moved"),
        "{text}"
    );
    let access = peer.tokens().access;
    let client_secret = peer.options().client_secret.clone();
    for secret in [
        hook_secret,
        refresh_secret,
        access.as_str(),
        client_secret.as_str(),
    ] {
        assert!(
            !text.contains(secret),
            "secret {secret:?} leaked into logs:\n{text}"
        );
    }
}

#[tokio::test]
async fn a_method_out_of_operating_budget_is_held_until_its_reset_without_requests_and_the_outbox_waits_for_it()
 {
    use fsb24::outbox::op::BitrixWrite;
    use fsb24::outbox::{Deliver as _, DeliverError};
    let budget = crate::support::bitrix_peer::OperatingBudget {
        limit: Duration::from_secs(10),
        cost: Duration::from_millis(10),
        per_method: [(
            "telephony.externalcall.register".to_owned(),
            Duration::from_secs(6),
        )]
        .into(),
    };
    let peer = BitrixPeer::seeded(PeerOptions {
        operating: Some(budget),
        ..PeerOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (settings, _) = peer.install_app(dir.path()).await;
    let (client, _tracker, _stop) = start(settings).await;
    let register = |n: u32| BitrixWrite::Register(register_call(17, &format!("+49301234567{n}")));
    let call = |n: u32| ExternalCallId::new(format!("fs-op-{n}"));
    // Two registers spend the budget (6 s each of 10 s); the third is refused by the portal.
    for n in 0..2 {
        within(client.deliver(&call(n), None, &register(n)))
            .await
            .unwrap();
    }
    let refused = within(client.deliver(&call(2), None, &register(2)))
        .await
        .unwrap_err();
    let DeliverError::Retryable {
        retry_after: Some(wait),
        ..
    } = refused
    else {
        panic!("not a timed retry: {refused:?}");
    };
    // The peer's budget frees its oldest bucket ten minutes after the first charge.
    assert!(
        wait > Duration::from_secs(500) && wait <= Duration::from_secs(601),
        "{wait:?}"
    );
    // Held: the next register fails at once, the portal sees no request; other methods go on.
    let before = peer.requests().len();
    let held = within(client.deliver(&call(3), None, &register(3)))
        .await
        .unwrap_err();
    assert!(
        matches!(held, DeliverError::Retryable { retry_after: Some(w), .. } if w > Duration::from_secs(500)),
        "{held:?}"
    );
    assert_eq!(peer.requests().len(), before, "a held method is not sent");
    assert!(
        !within(client.users_with_inner_numbers())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(client.held_for("telephony.externalcall.register").is_some());
    assert!(client.held_for("user.get").is_none());
}
