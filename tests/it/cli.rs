//! The real `fsb24` binary: `check-config` prints a summary and exits 0 for the shipped config,
//! and exits non-zero naming the offending key for every invalid fixture.

use std::process::{Command, Output};

use crate::config_files::{expectation, toml_files};

fn fsb24(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fsb24"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("FSB24_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn check_config_on_the_shipped_config_prints_a_summary() {
    // No --config: the default path conf/fsb24.toml is used.
    let out = fsb24(&["check-config"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("conf/fsb24.toml: config OK"), "{stdout}");
    for section in ["agents: 4", "queues: 2", "routes: 4", "sales: sequential"] {
        assert!(
            stdout.contains(section),
            "summary lacks {section:?}:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("bitrix: oauth"),
        "OAuth is the documented default"
    );
    assert!(
        !stdout.contains("replace-with-the-client-secret"),
        "summary shows the client secret"
    );
}

#[test]
fn check_config_names_the_key_of_every_invalid_fixture_and_fails() {
    for path in toml_files("tests/fixtures/config/invalid") {
        let expected = expectation(&path);
        let key = expected.split(": ").next().unwrap();
        let out = fsb24(&["check-config", "--config", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{} passed check-config",
            path.display()
        );
        assert!(
            stderr.contains(key),
            "{}: stderr lacks {key:?}:\n{stderr}",
            path.display()
        );
    }
}

#[test]
fn check_config_never_echoes_a_secret_given_with_the_wrong_type() {
    let path = "tests/fixtures/config/invalid/secret_wrong_type.toml";
    let out = fsb24(&["check-config", "--config", path]);
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success());
    assert!(shown.contains("esl.inbound.password"), "{shown}");
    assert!(
        !shown.contains("12345678"),
        "the password is echoed: {shown}"
    );
}

#[test]
fn version_flag_prints_the_crate_version() {
    let out = fsb24(&["--version"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn run_with_a_missing_config_file_fails_naming_the_file() {
    let out = fsb24(&["run", "--config", "does/not/exist.toml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does/not/exist.toml"));
}

/// `fsb24 run` with an OAuth config whose token file names another portal: the run stops with
/// the mismatch named, and no request leaves (the other "portal" is a listener that would see it).
#[tokio::test]
async fn run_refuses_a_token_file_that_names_another_portal() {
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let decoy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let decoy_url = format!("http://{}/rest/", decoy.local_addr().unwrap());
    let tokens = fsb24::bitrix::TokenFile {
        access_token: fsb24::bitrix::SecretString::new("acc3ss-t0ken"),
        refresh_token: fsb24::bitrix::SecretString::new("r3fr3sh-t0ken"),
        expires: None,
        client_endpoint: decoy_url.clone(),
        server_endpoint: "https://oauth.bitrix.info/rest/".into(),
        member_id: None,
    };
    let token_path = dir.path().join("tokens.json");
    tokens.save(&token_path).await.unwrap();
    let config = format!(
        r#"
[esl]
listen = "127.0.0.1:0"
handshake_timeout = "200ms"
[esl.inbound]
port = {port}
password = "pw"
[esl.dial]
domain = "pbx.local"
[bitrix.auth.oauth]
portal = "https://acme.bitrix24.de/rest/"
client_id = "local.1"
client_secret = "cl13nt-s3cr3t"
token_file = "{tokens}"
[outbox]
path = "{outbox}"
"#,
        port = crate::support::daemon::free_port(),
        tokens = token_path.display(),
        outbox = dir.path().join("outbox.db").display(),
    );
    let config_path = dir.path().join("fsb24.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fsb24"))
        .args(["run", "--config"])
        .arg(&config_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = String::new();
    let mut pipe = child.stderr.take().unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        pipe.read_to_string(&mut stderr).await.unwrap();
        child.wait().await.unwrap()
    })
    .await
    .expect("fsb24 kept running with a token file naming another portal");
    assert!(!status.success());
    assert!(
        stderr.contains("client_endpoint of the token file")
            && stderr.contains("https://acme.bitrix24.de/rest/"),
        "{stderr}"
    );
    for secret in ["acc3ss-t0ken", "r3fr3sh-t0ken", "cl13nt-s3cr3t"] {
        assert!(!stderr.contains(secret), "{secret} leaked: {stderr}");
    }
    let mode = std::fs::metadata(dir.path().join("outbox.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the outbox is private");
    // Nothing connected to the decoy "portal".
    let accepted = tokio::time::timeout(std::time::Duration::ZERO, decoy.accept()).await;
    assert!(
        accepted.is_err(),
        "a request went to the token file's portal"
    );
}

/// `fsb24 setup` with an incoming webhook: it prints every step (the portal refuses event binding
/// and lines to a webhook, so both are skipped with the reason), warns about an agent whose
/// user has another inner number, suggests an `[[agents]]` entry, and a second run prints the
/// same and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_prints_each_step_and_a_second_run_changes_nothing() {
    use crate::support::bitrix_peer::{BitrixPeer, PeerOptions, SeedUser};
    let peer = BitrixPeer::start(PeerOptions::default()).await;
    peer.add_user(SeedUser::new(11, "Anna", Some("1009")));
    peer.add_user(SeedUser::new(17, "Erika", Some("205")));
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[esl.inbound]
password = "pw"
[esl.dial]
domain = "pbx.local"
[bitrix.auth.webhook]
url = "{hook}"
[events]
handler_url = "https://pbx.example.com/bitrix24/event"
[[lines]]
number = "4930555000"
[[agents]]
extension = "1001"
bitrix_user = 11
"#,
        hook = peer.webhook_url().unwrap(),
    );
    let path = dir.path().join("fsb24.toml");
    std::fs::write(&path, config).unwrap();
    let path = path.display().to_string();
    for _ in 0..2 {
        let args = ["setup", "--config", path.as_str()].map(str::to_owned);
        let out = tokio::task::spawn_blocking(move || {
            fsb24(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("events: skipped: "), "{stdout}");
        assert!(stdout.contains("lines: skipped: "), "{stdout}");
        assert!(stdout.contains("nothing changed\n"), "{stdout}");
        assert!(
            stdout.contains("warning: agent 1001: Bitrix24 user 11 has inner number \"1009\""),
            "{stdout}"
        );
        assert!(
            stdout.contains("[[agents]]\nextension = \"205\"\nbitrix_user = 17\n"),
            "{stdout}"
        );
    }
    assert!(peer.event_bindings().is_empty() && peer.lines().is_empty());
}
