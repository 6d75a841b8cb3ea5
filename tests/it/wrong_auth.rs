//! A portal that allows register/finish only to applications (`WRONG_AUTH_TYPE` for webhooks, as
//! Bitrix24's documentation now says): the real binary says what to change, once, in its log and
//! in `check-config --online`, and never retries the refused writes.

use std::time::Duration;

use tokio::process::Command;

use crate::support::app::config_text;
use crate::support::bitrix_peer::{BitrixPeer, PeerOptions, SeedUser};
use crate::support::daemon::{Daemon, free_port};
use crate::support::esl_peer::{CallSpec, FsPeer};

/// What the advice must name: the setting to use instead, and how to resend the refused calls.
const ADVICE: [&str; 3] = [
    "WRONG_AUTH_TYPE",
    "[bitrix.auth.oauth]",
    "fsb24 outbox retry",
];

const ROUTE: &str = "[[routes]]\ndestination = \"9001\"\ntarget = { agent = \"1001\" }\n";

fn config(fs: &FsPeer, bx: &BitrixPeer, dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let text = config_text(fs, bx, dir, &[("1001", 11)], ROUTE).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    let path = dir.join("fsb24.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_webhook_is_explained_once_and_its_writes_are_not_retried() {
    let fs = FsPeer::start().await.unwrap();
    // The peer follows the documentation by default: webhooks get WRONG_AUTH_TYPE.
    let bx = BitrixPeer::start(PeerOptions::default()).await;
    bx.add_user(SeedUser::new(11, "Agent 1001", Some("1001")));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut daemon = Daemon::new(config(&fs, &bx, dir.path(), port), dir.path().join("log"));
    daemon.start().await;
    fs.phone("1001")
        .answers_then_hangs_up(Duration::from_millis(300), Duration::from_secs(1));
    let spec = CallSpec {
        caller: "+79991234567".into(),
        destination: "9001".into(),
        ..CallSpec::default()
    };
    let caller = fs
        .offer_call(std::net::SocketAddr::from(([127, 0, 0, 1], port)), spec)
        .await
        .unwrap();
    assert!(daemon.wait_log("Bitrix24 refused webhook auth").await);
    // The call ends; its finish and recording have no CALL_ID and are dead-lettered unsent.
    assert!(fs.channel_gone(&caller.uuid).await);
    assert!(daemon.wait_log("no CALL_ID: the call's register").await);
    let status = daemon.terminate().await;
    assert!(status.success(), "{status}");

    let log = std::fs::read_to_string(&daemon.log).unwrap();
    let advice: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Bitrix24 refused webhook auth"))
        .collect();
    assert_eq!(advice.len(), 1, "said once: {advice:?}");
    for needle in ADVICE {
        assert!(
            advice[0].contains(needle),
            "{needle} missing: {}",
            advice[0]
        );
    }
    let requests = bx.requests();
    let registers = bx.method_calls("telephony.externalcall.register");
    eprintln!(
        "requests to the portal: {}, registers: {}",
        requests.len(),
        registers.len()
    );
    assert_eq!(registers.len(), 1, "the register is not retried");
    assert!(
        bx.method_calls("telephony.externalcall.finish").is_empty(),
        "nothing is sent without a CALL_ID"
    );
    assert!(requests.len() <= 2, "no retry storm: {requests:?}");
}

#[tokio::test]
async fn check_config_online_says_what_to_change_when_the_portal_refuses_the_webhook() {
    let fs = FsPeer::start().await.unwrap();
    let bx = BitrixPeer::start(PeerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = config(&fs, &bx, dir.path(), free_port());
    let run = || async {
        Command::new(env!("CARGO_BIN_EXE_fsb24"))
            .args(["check-config", "--online", "--config"])
            .arg(&path)
            .output()
            .await
            .unwrap()
    };
    let refused = run().await;
    let stdout = String::from_utf8_lossy(&refused.stdout);
    assert!(!refused.status.success(), "{stdout}");
    for needle in ADVICE {
        assert!(stdout.contains(needle), "{needle} missing:\n{stdout}");
    }
    bx.set_webhook_wrong_auth_type(false);
    let accepted = run().await;
    let stdout = String::from_utf8_lossy(&accepted.stdout);
    assert!(accepted.status.success(), "{stdout}");
    assert!(stdout.contains("webhook accepted"), "{stdout}");
}
