//! `fsb24 setup` against the Bitrix24 peer: from scratch it binds both events (online and
//! offline) and registers the lines; a second run reads, finds everything in place and sends no
//! write. Under an incoming webhook the portal refuses event binding, and setup says so.

use std::path::Path;
use std::time::Duration;

use fsb24::bitrix::{AuthSettings, BitrixClient, BitrixSettings, WebhookUrl};
use fsb24::config::{EventDelivery, LineConfig, PortalConfig};
use fsb24::setup::agents::check;
use fsb24::setup::{Outcome, run};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::support::bitrix_peer::{BitrixPeer, PeerOptions, SeedUser};

const HANDLER: &str = "https://pbx.example.com/bitrix24/event";
const WRITES: [&str; 3] = [
    "event.bind",
    "telephony.externalline.add",
    "telephony.externalline.update",
];

async fn oauth(peer: &BitrixPeer, dir: &Path) -> BitrixSettings {
    peer.install_app(dir).await.0
}

fn portal(delivery: EventDelivery) -> PortalConfig {
    PortalConfig {
        delivery,
        handler_url: Some(url::Url::parse(HANDLER).unwrap()),
        lines: vec![
            LineConfig {
                number: "4930555000".into(),
                name: Some("Berlin".into()),
                crm_auto_create: false,
            },
            LineConfig {
                number: "74951234567".into(),
                name: None,
                crm_auto_create: true,
            },
        ],
        ..PortalConfig::default()
    }
}

fn writes(peer: &BitrixPeer) -> usize {
    WRITES.iter().map(|m| peer.method_calls(m).len()).sum()
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("failsafe timeout")
}

#[tokio::test]
async fn setup_from_scratch_binds_and_registers_and_a_second_run_changes_nothing() {
    let peer = BitrixPeer::start(PeerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (tracker, stop) = (TaskTracker::new(), CancellationToken::new());
    let client = BitrixClient::start(oauth(&peer, dir.path()).await, &tracker, stop.clone())
        .await
        .unwrap();
    let wanted = portal(EventDelivery::Both);

    let first = within(run(&client, &wanted, &[])).await.unwrap();
    assert!(first.changed(), "{first}");
    let mut bound: Vec<(String, String, bool)> = peer
        .event_bindings()
        .into_iter()
        .map(|b| (b.event, b.handler, b.offline))
        .collect();
    bound.sort();
    assert_eq!(
        bound,
        vec![
            ("ONEXTERNALCALLBACKSTART".into(), String::new(), true),
            ("ONEXTERNALCALLBACKSTART".into(), HANDLER.into(), false),
            ("ONEXTERNALCALLSTART".into(), String::new(), true),
            ("ONEXTERNALCALLSTART".into(), HANDLER.into(), false),
        ]
    );
    let lines: Vec<(String, String, bool)> = peer
        .lines()
        .into_iter()
        .map(|l| (l.number, l.name, l.crm_auto_create))
        .collect();
    assert_eq!(
        lines,
        vec![
            ("4930555000".into(), "Berlin".into(), false),
            ("74951234567".into(), String::new(), true),
        ]
    );
    let after_first = writes(&peer);
    assert_eq!(after_first, 6);

    let second = within(run(&client, &wanted, &[])).await.unwrap();
    assert!(!second.changed(), "{second}");
    assert!(
        second
            .steps
            .iter()
            .all(|s| matches!(s.outcome, Outcome::Unchanged | Outcome::Granted)),
        "{second}"
    );
    assert_eq!(writes(&peer), after_first, "the second run sent a write");
    assert!(second.to_string().ends_with("nothing changed\n"));

    // An admin renamed a line in the portal: the next run puts the configured name back.
    let mut renamed = wanted.clone();
    renamed.lines[0].name = Some("Berlin DID".into());
    let third = within(run(&client, &renamed, &[])).await.unwrap();
    let updated: Vec<&str> = third
        .steps
        .iter()
        .filter(|s| s.outcome == Outcome::Updated)
        .map(|s| s.what.as_str())
        .collect();
    assert_eq!(updated, ["line 4930555000"]);
    assert_eq!(peer.lines()[0].name, "Berlin DID");
    stop.cancel();
}

#[tokio::test]
async fn under_an_incoming_webhook_setup_reports_what_the_portal_refuses() {
    let peer = BitrixPeer::start(PeerOptions::default()).await;
    let (tracker, stop) = (TaskTracker::new(), CancellationToken::new());
    let hook = WebhookUrl::parse(&peer.webhook_url().unwrap()).unwrap();
    let client = BitrixClient::start(
        BitrixSettings::new(AuthSettings::Webhook(hook)),
        &tracker,
        stop.clone(),
    )
    .await
    .unwrap();
    let report = within(run(&client, &portal(EventDelivery::Online), &[]))
        .await
        .unwrap();
    let skipped: Vec<&str> = report
        .steps
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Skipped(_)))
        .map(|s| s.what.as_str())
        .collect();
    assert_eq!(skipped, ["events", "lines"], "{report}");
    assert!(peer.event_bindings().is_empty() && peer.lines().is_empty());
    assert_eq!(writes(&peer), 0);
    stop.cancel();
}

#[tokio::test]
async fn agents_are_checked_against_the_portals_users() {
    let peer = BitrixPeer::start(PeerOptions::default()).await;
    peer.add_user(SeedUser::new(11, "Anna", Some("1001")));
    peer.add_user(SeedUser::new(12, "Boris", Some("2002")));
    let mut fired = SeedUser::new(13, "Clara", Some("1003"));
    fired.active = false;
    peer.add_user(fired);
    peer.add_user(SeedUser::new(17, "Erika", Some("205")));
    let (tracker, stop) = (TaskTracker::new(), CancellationToken::new());
    let hook = WebhookUrl::parse(&peer.webhook_url().unwrap()).unwrap();
    let client = BitrixClient::start(
        BitrixSettings::new(AuthSettings::Webhook(hook)),
        &tracker,
        stop.clone(),
    )
    .await
    .unwrap();
    let config = fsb24::config::Config::from_toml_str(
        r#"
[esl.inbound]
password = "pw"
[esl.dial]
domain = "pbx.local"
[bitrix.auth.webhook]
url = "https://example.bitrix24.de/rest/1/key/"
[[agents]]
extension = "1001"
bitrix_user = 11
[[agents]]
extension = "1002"
bitrix_user = 12
[[agents]]
extension = "1003"
bitrix_user = 13
"#,
    )
    .unwrap();
    let check = within(check(&client, &config.agents)).await.unwrap();
    let warnings: Vec<String> = check.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "agent 1002: Bitrix24 user 12 has inner number \"2002\" in the portal",
            "agent 1003: Bitrix24 user 13 is not active or has no inner number",
        ]
    );
    let suggested: Vec<u64> = check.unconfigured.iter().map(|u| u.user.0).collect();
    assert_eq!(suggested, [17]);
    assert_eq!(peer.method_calls("user.get").len(), 1);
    stop.cancel();
}

#[tokio::test]
async fn setup_verifies_the_scopes_and_names_a_missing_one() {
    let peer = BitrixPeer::start(PeerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (tracker, stop) = (TaskTracker::new(), CancellationToken::new());
    let client = BitrixClient::start(oauth(&peer, dir.path()).await, &tracker, stop.clone())
        .await
        .unwrap();
    let wanted = portal(EventDelivery::Online);
    let granted = within(run(&client, &wanted, &[])).await.unwrap();
    let scopes: Vec<(&str, &Outcome)> = granted
        .steps
        .iter()
        .filter(|s| s.what.starts_with("scope "))
        .map(|s| (s.what.as_str(), &s.outcome))
        .collect();
    assert_eq!(
        scopes,
        [
            ("scope telephony", &Outcome::Granted),
            ("scope crm", &Outcome::Granted),
            ("scope user", &Outcome::Granted),
        ]
    );
    assert!(!granted.scope_missing());

    peer.set_missing_scopes(&["crm"]);
    let report = within(run(&client, &wanted, &[])).await.unwrap();
    assert!(report.scope_missing(), "{report}");
    assert!(
        report
            .to_string()
            .contains("scope crm: MISSING: grant it to the application;"),
        "{report}"
    );
    stop.cancel();
}
