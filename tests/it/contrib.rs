//! contrib/: the systemd unit matches what the binary does (sd_notify readiness, SIGHUP
//! reload, subcommands it knows) and the FreeSWITCH snippet is well-formed with its ACL.

use std::time::Duration;

use tokio::net::UnixDatagram;
use tokio::process::Command;

use crate::support::app::config_text;
use crate::support::bitrix_peer::{BitrixPeer, PeerOptions};
use crate::support::esl_peer::FsPeer;

fn contrib(path: &str) -> String {
    std::fs::read_to_string(format!("{}/contrib/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn the_systemd_unit_is_hardened_and_uses_notify_readiness_and_sighup_reload() {
    let unit = contrib("systemd/fsb24.service");
    let keys: Vec<(&str, &str)> = unit
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    let has = |k: &str, v: &str| keys.iter().any(|(key, val)| *key == k && val.contains(v));
    for (k, v) in [
        ("Type", "notify"),
        ("ExecReload", "-HUP $MAINPID"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("StateDirectory", "fsb24"),
        ("ExecStart", "fsb24 run --config"),
        ("ExecStartPre", "fsb24 check-config --config"),
    ] {
        assert!(has(k, v), "{k}={v} missing");
    }
}

#[test]
fn the_event_socket_snippet_listens_on_loopback_behind_the_fsb24_acl() {
    let text = contrib("freeswitch/event_socket.conf.xml");
    let doc = roxmltree::Document::parse(&text).unwrap();
    let param = |name: &str| {
        doc.descendants()
            .find(|n| n.attribute("name") == Some(name))
            .and_then(|n| n.attribute("value"))
    };
    assert_eq!(param("listen-ip"), Some("127.0.0.1"));
    assert_eq!(param("apply-inbound-acl"), Some("fsb24"));
    assert!(text.contains("<list name=\"fsb24\" default=\"deny\">"));
}

/// The real binary tells systemd READY=1 once it runs, and STOPPING=1 on SIGTERM.
#[tokio::test]
async fn the_daemon_notifies_systemd_when_ready_and_when_stopping() {
    let fs = FsPeer::start().await.unwrap();
    let bx = BitrixPeer::start(PeerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fsb24.toml");
    std::fs::write(&config, config_text(&fs, &bx, dir.path(), &[], "")).unwrap();
    let socket = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&socket).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fsb24"))
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket)
        .env_remove("FSB24_CONFIG")
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let mut next = async || {
        let n = tokio::time::timeout(Duration::from_secs(20), notify.recv(&mut buf))
            .await
            .expect("a notification within 20 s")
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(next().await.trim(), "READY=1");
    let pid = child.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    assert_eq!(next().await.trim(), "STOPPING=1");
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}
