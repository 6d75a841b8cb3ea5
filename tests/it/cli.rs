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
