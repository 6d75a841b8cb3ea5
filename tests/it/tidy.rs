//! Greps `src/` for what house style bans, since the top level has no clippy.toml.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    files.sort();
    files
        .into_iter()
        .map(|p| (p.clone(), std::fs::read_to_string(&p).unwrap()))
        .collect()
}

#[test]
fn src_uses_no_std_instant_no_thread_sleep_and_no_placeholders() {
    // Paused-clock tests only control tokio's Instant; a sleeping thread blocks the runtime.
    let banned = [
        "std::time::Instant",
        "thread::sleep",
        "todo!(",
        "unimplemented!(",
        "dbg!(",
    ];
    let mut hits = Vec::new();
    for (path, text) in sources() {
        for (n, line) in text.lines().enumerate() {
            if banned.iter().any(|b| line.contains(b)) && !line.trim_start().starts_with("//") {
                hits.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "banned items in src/:\n{}",
        hits.join("\n")
    );
}

#[test]
fn every_module_opens_with_a_doc_comment() {
    let missing: Vec<_> = sources()
        .into_iter()
        .filter(|(_, text)| !text.trim_start().starts_with("//!"))
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(missing.is_empty(), "modules without a //! doc: {missing:?}");
}

#[test]
fn only_the_esl_module_touches_the_esl_crate() {
    let offenders: Vec<_> = sources()
        .into_iter()
        .filter(|(path, text)| {
            let in_esl = path.components().any(|c| c.as_os_str() == "esl");
            !in_esl && text.contains("freeswitch_esl_tokio")
        })
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "freeswitch_esl_tokio used outside src/esl: {offenders:?}"
    );
}
