//! Every shipped and fixture config: `conf/*.toml` and `valid/*.toml` load, and each
//! `invalid/*.toml` fails with the message in its first line (`# expect: <key>: <problem>`).

use std::path::{Path, PathBuf};

use fsb24::config::{Config, ConfigErrors};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `*.toml` files in `dir`, sorted, relative to the crate root.
pub(crate) fn toml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.toml in {dir}");
    files
}

/// The expected message of an invalid fixture: its first line after `# expect: `.
pub(crate) fn expectation(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let first = text.lines().next().unwrap_or_default();
    first
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| {
            panic!(
                "{} must start with `# expect: <key>: <problem>`",
                path.display()
            )
        })
        .to_owned()
}

#[test]
fn shipped_and_valid_configs_load() {
    let mut files = toml_files("conf");
    files.extend(toml_files("tests/fixtures/config/valid"));
    for path in files {
        if let Err(errors) = Config::load(&path) {
            panic!("{errors}");
        }
    }
}

#[test]
fn each_invalid_config_fails_with_its_expected_message() {
    let files = toml_files("tests/fixtures/config/invalid");
    assert!(
        files.len() >= 12,
        "keep at least one fixture per common mistake"
    );
    for path in files {
        let expected = expectation(&path);
        let errors: ConfigErrors = match Config::load(&path) {
            Ok(_) => panic!("{} was accepted", path.display()),
            Err(errors) => errors,
        };
        let lines: Vec<String> = errors.errors.iter().map(ToString::to_string).collect();
        assert!(
            lines.iter().any(|line| line.starts_with(&expected)),
            "{}: expected an error starting with {expected:?}, got:\n{errors}",
            path.display()
        );
        // One mistake per file: nothing else in the fixture may be wrong.
        assert_eq!(
            lines.len(),
            1,
            "{}: more than the intended error:\n{errors}",
            path.display()
        );
    }
}

#[test]
fn shipped_config_debug_output_hides_every_secret() {
    let config = Config::load(&root().join("conf/fsb24.toml")).unwrap();
    let debug = format!("{config:?}");
    let text = std::fs::read_to_string(root().join("conf/fsb24.toml")).unwrap();
    let secret_lines = [
        "password = ",
        "url = ",
        "application_token = ",
        "client_secret = ",
    ];
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let Some(prefix) = secret_lines.iter().find(|p| line.starts_with(**p)) else {
            continue;
        };
        let value = line[prefix.len()..].split('"').nth(1).unwrap();
        assert!(
            !debug.contains(value),
            "secret {value:?} from {line:?} appears in Debug output"
        );
    }
    assert!(debug.contains("Secret(..)"));
}
