//! `ONAPPINSTALL` through both peers (the local application, OAuth): fsb24 starts without a
//! token file; the portal POSTs the installation to the event endpoint; fsb24 checks the new
//! access token with `app.info`, writes the token file (0600) and does what `fsb24 setup` does.
//! A re-install changes nothing in the portal, and an installation from another portal is
//! refused without touching the token file.

use std::os::unix::fs::PermissionsExt;

use fsb24::bitrix::TokenFile;

use crate::offline_events::{Rig, TOKEN};
use crate::support::bitrix_peer::{AuthKind, BitrixPeer};

const HANDLER: &str = "https://pbx.example.com/bitrix24/event";
const WRITES: [&str; 3] = [
    "event.bind",
    "telephony.externalline.add",
    "telephony.externalline.update",
];

fn writes(bx: &BitrixPeer) -> usize {
    WRITES.iter().map(|m| bx.method_calls(m).len()).sum()
}

/// Waits until the `n`th setup run reached its last step (the lines are read last; with the
/// line in place nothing follows).
async fn setup_runs(bx: &BitrixPeer, n: usize) {
    bx.wait_for("setup ran", |s| {
        s.requests
            .iter()
            .filter(|r| r.method == "telephony.externalline.get")
            .count()
            >= n
    })
    .await;
}

async fn token_file(rig: &Rig) -> TokenFile {
    TokenFile::load(&rig.dir.path().join("tokens.json"))
        .await
        .unwrap()
}

#[tokio::test]
async fn an_installation_stores_its_tokens_sets_the_portal_up_and_a_reinstall_changes_nothing() {
    let port = crate::support::daemon::free_port();
    let events = format!("handler_url = \"{HANDLER}\"\n");
    let lines = "[[lines]]\nnumber = \"4930555000\"\nname = \"Berlin\"\n";
    let rig = Rig::with("online", Some(port), &events, lines).await;
    // Not installed yet.
    std::fs::remove_file(rig.dir.path().join("tokens.json")).unwrap();
    let http = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let app = rig.start(Some(http)).await;
    let handler = format!("http://127.0.0.1:{port}/bitrix24/event");

    let (first, status) = rig.bx.app_install(&handler, TOKEN).await;
    assert_eq!(status, Some(200));
    // Setup's last write: the line.
    rig.bx
        .wait_for("the line is registered", |s| s.lines.len() == 1)
        .await;
    let file = token_file(&rig).await;
    assert_eq!(file.access_token.expose(), first.access);
    assert_eq!(file.refresh_token.expose(), first.refresh);
    assert_eq!(
        file.member_id.as_deref(),
        Some(rig.bx.options().member_id.as_str())
    );
    let mode = std::fs::metadata(rig.dir.path().join("tokens.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Verified before trusted: app.info with the new token came first.
    let requests = rig.bx.requests();
    let first_use = requests
        .iter()
        .position(|r| {
            r.auth
                == AuthKind::OAuth {
                    token: first.access.clone(),
                }
        })
        .unwrap();
    assert_eq!(requests[first_use].method, "app.info");
    let mut bound: Vec<(String, String)> = rig
        .bx
        .event_bindings()
        .into_iter()
        .map(|b| (b.event, b.handler))
        .collect();
    bound.sort();
    assert_eq!(
        bound,
        [
            ("ONEXTERNALCALLBACKSTART".to_owned(), HANDLER.to_owned()),
            ("ONEXTERNALCALLSTART".to_owned(), HANDLER.to_owned()),
        ]
    );
    let after_first = writes(&rig.bx);
    assert_eq!(after_first, 3);

    // An installation from another portal (same token, another member_id) is refused; the
    // re-install after it is taken, and finds the portal set up.
    let mut foreign = rig.bx.deliveries()[0].form.clone();
    for (k, v) in &mut foreign {
        match k.as_str() {
            "auth[member_id]" => *v = "f0re1gn".to_owned(),
            "auth[access_token]" => *v = "foreign-access".to_owned(),
            _ => {}
        }
    }
    let posted = reqwest::Client::new()
        .post(&handler)
        .form(&foreign)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    let (second, status) = rig.bx.app_install(&handler, TOKEN).await;
    assert_eq!(status, Some(200));
    setup_runs(&rig.bx, 2).await;
    let file = token_file(&rig).await;
    assert_eq!(file.access_token.expose(), second.access);
    assert_eq!(
        writes(&rig.bx),
        after_first,
        "the re-install changed nothing"
    );
    assert!(
        rig.bx.requests().iter().all(|r| r.auth
            != AuthKind::OAuth {
                token: "foreign-access".into()
            }),
        "the foreign installation's token was never used"
    );
    app.shutdown().await;
}
