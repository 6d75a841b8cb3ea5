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
    for needed in [
        "public",
        "fsb24_fallback",
        "fsb24_originate",
        "default",
        "fsb24_outgoing_fallback",
    ] {
        assert!(
            contexts.iter().any(|c| c == needed),
            "context {needed} missing: {contexts:?}"
        );
    }
}

#[test]
fn outgoing_calls_are_marked_and_their_fallback_never_dials_a_placed_call_twice() {
    // tests/it/outgoing.rs drives the esl peer with these variables; keep them in step.
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplan/fsb24.xml"))
            .unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let extension = |name: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name("extension") && n.attribute("name") == Some(name))
            .unwrap_or_else(|| panic!("extension {name} missing"))
    };
    let data: Vec<_> = extension("fsb24_outgoing")
        .descendants()
        .filter(|n| n.has_tag_name("action"))
        .filter_map(|a| a.attribute("data"))
        .collect();
    assert_eq!(data[0], "fsb24_call=outgoing", "marked before the socket");
    assert!(data[2].ends_with("XML fsb24_outgoing_fallback"));
    let guard = extension("fsb24_outgoing_after_fsb24");
    let condition = guard
        .descendants()
        .find(|n| n.has_tag_name("condition"))
        .unwrap();
    assert_eq!(condition.attribute("field"), Some("${fsb24_placed}"));
    let hangup = guard
        .descendants()
        .find(|n| n.has_tag_name("action"))
        .unwrap();
    assert_eq!(hangup.attribute("application"), Some("hangup"));
}
