//! dialplan/*.xml: well-formed, and every hand-over to fsb24 is shaped as the real switch needs.

use std::path::Path;

fn dialplan_files() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplan");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "dialplan/ has no XML");
    files
}

fn actions<'a>(doc: &'a roxmltree::Document<'a>) -> Vec<roxmltree::Node<'a, 'a>> {
    doc.descendants()
        .filter(|n| n.has_tag_name("action"))
        .collect()
}

#[test]
fn dialplan_files_are_well_formed_xml() {
    for file in dialplan_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}

#[test]
fn every_socket_hand_over_is_async_full_and_has_a_fallback_after_it() {
    for file in dialplan_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap();
        for action in actions(&doc)
            .into_iter()
            .filter(|a| a.attribute("application") == Some("socket"))
        {
            let data = action.attribute("data").unwrap_or_default();
            let flags: Vec<_> = data.split_whitespace().skip(1).collect();
            assert!(
                flags.contains(&"async") && flags.contains(&"full"),
                "{}: socket {data:?}",
                file.display()
            );
            // The socket app returns when fsb24 is down: something must follow it.
            let next = action.next_siblings().find(|n| n.has_tag_name("action"));
            assert!(
                next.is_some(),
                "{}: socket {data:?} has no fallback action",
                file.display()
            );
        }
    }
}

#[test]
fn only_known_applications_are_used() {
    // An unknown application name kills the call on a real switch (DESTINATION_OUT_OF_ORDER).
    const KNOWN: &[&str] = &[
        "set", "socket", "transfer", "bridge", "respond", "hangup", "answer", "playback",
    ];
    for file in dialplan_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap();
        for action in actions(&doc) {
            let app = action.attribute("application").unwrap_or_default();
            assert!(
                KNOWN.contains(&app),
                "{}: unknown application {app:?}",
                file.display()
            );
        }
    }
}

#[test]
fn the_originate_context_and_the_fallback_context_exist() {
    let mut contexts = Vec::new();
    for file in dialplan_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap();
        contexts.extend(
            doc.descendants()
                .filter(|n| n.has_tag_name("context"))
                .filter_map(|n| n.attribute("name").map(str::to_owned)),
        );
    }
    for needed in ["public", "fsb24_fallback", "fsb24_originate"] {
        assert!(
            contexts.iter().any(|c| c == needed),
            "context {needed} missing: {contexts:?}"
        );
    }
}
