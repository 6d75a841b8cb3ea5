//! Checks clippy cannot make: every module has a `//!` doc, only `src/esl` touches the ESL
//! crate, the README's code map matches the tree. (`clippy.toml` and `[lints]` in `Cargo.toml`
//! ban `std::time::Instant`, `thread::sleep`, `resume`, `todo!`, `unimplemented!` and `dbg!`.)

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

/// The README's "Code map" section: from its heading to the next heading.
fn code_map() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find("### Code map").expect("README has a code map");
    let rest = &readme[start + "### Code map".len()..];
    let end = rest.find("\n#").unwrap_or(rest.len());
    rest[..end].to_string()
}

/// Every backticked path in the code map (`src/call/`, `task.rs`, `click/hygiene.rs`), resolved
/// against the bullet's own folder (its first `src/...` or `benches/...` folder) or else the
/// crate root.
fn code_map_paths() -> Vec<(String, Vec<PathBuf>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for bullet in code_map().split("\n- ").skip(1) {
        let mut base: Option<PathBuf> = None;
        for name in bullet.split('`').skip(1).step_by(2) {
            let is_path = name.ends_with(".rs") || name.ends_with('/');
            if !is_path || name.contains(' ') || name.contains("::") {
                continue;
            }
            let mut candidates = vec![root.join(name), root.join("src").join(name)];
            if let Some(base) = &base {
                candidates.insert(0, base.join(name));
            }
            if base.is_none() && name.ends_with('/') && root.join(name).is_dir() {
                base = Some(root.join(name));
            }
            out.push((name.to_string(), candidates));
        }
    }
    out
}

#[test]
fn readme_code_map_names_only_files_that_exist() {
    let missing: Vec<_> = code_map_paths()
        .into_iter()
        .filter(|(_, candidates)| !candidates.iter().any(|c| c.exists()))
        .map(|(name, _)| name)
        .collect();
    assert!(
        missing.is_empty(),
        "README code map names paths that are not in the tree: {missing:?}"
    );
}

#[test]
fn readme_code_map_names_every_module_folder_and_top_level_file() {
    // A folder's entry describes the files in it; a new folder or top-level module needs its own.
    let named: Vec<PathBuf> = code_map_paths()
        .into_iter()
        .flat_map(|(_, candidates)| candidates.into_iter().filter(|c| c.exists()))
        .filter_map(|c| c.canonicalize().ok())
        .collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = Vec::new();
    module_folders(&src, &mut modules);
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_string();
        if path.is_file() && !matches!(file.as_str(), "lib.rs" | "main.rs") {
            modules.push(path);
        }
    }
    let is_named = |path: &Path| {
        // A folder `x/` is also named by its module file `x.rs`.
        let file = path.with_extension("rs");
        [path, file.as_path()]
            .iter()
            .filter_map(|p| p.canonicalize().ok())
            .any(|p| named.contains(&p))
    };
    let unnamed: Vec<_> = modules
        .into_iter()
        .filter(|path| !is_named(path))
        .map(|path| path.strip_prefix(&src).unwrap().display().to_string())
        .collect();
    assert!(
        unnamed.is_empty(),
        "modules under src/ the README code map does not name: {unnamed:?}"
    );
}

/// Every folder under `dir` that holds code besides tests.
fn module_folders(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_dir() || path.file_name().is_some_and(|f| f == "tests") {
            continue;
        }
        let has_code = std::fs::read_dir(&path).unwrap().any(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.ends_with(".rs") && name != "tests.rs" && !name.ends_with("_tests.rs")
        });
        if has_code {
            out.push(path.clone());
        }
        module_folders(&path, out);
    }
}

#[test]
fn the_bitrix_client_does_not_import_the_outbox() {
    // The protocol client stands alone; `outbox::bitrix` adapts it to the outbox's seam.
    let offenders: Vec<_> = sources()
        .into_iter()
        .filter(|(path, text)| {
            let in_bitrix = path.components().any(|c| c.as_os_str() == "bitrix");
            in_bitrix && text.contains("crate::outbox")
        })
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "bitrix imports the outbox: {offenders:?}"
    );
}
