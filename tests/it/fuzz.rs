//! Property-based fuzzing (proptest) of the three parsers that see outside input: the Bitrix24
//! event body parser, the config loader and the ESL event mapping. Inputs are both raw bytes and
//! near-valid shapes (real keys and headers with hostile values), so most cases get past the
//! first check. Properties: no panic ever; what is accepted keeps its rules; errors are short,
//! printable and never echo a value.
//!
//! CI runs [`CI_CASES`] cases per property. Run longer with, e.g.,
//! `PROPTEST_CASES=100000 cargo test --release --test it fuzz`.

use std::path::PathBuf;

use freeswitch_esl_tokio::EslEvent;
use fsb24::config::Config;
use fsb24::esl::{map_event, map_switch_event};
use fsb24::http::{EventError, ParsedEvent, parse_event};
use fsb24::ids::{BitrixCallId, ChannelId};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

/// Cases per property in CI (about 3 s for the whole suite on a debug build).
const CI_CASES: u32 = 1024;
const TOKEN: &str = "2c6e0b9f4d1a8e7c3b5f9a0d2e4c6b81";
const OWN: &str = "78db8cfe-db01-49e6-8b07-cdaf507e4fe4";

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CI_CASES;
    }
    // CI must not write regression files into the source tree; a failure prints its input.
    config.failure_persistence = None;
    config
}

/// Text an attacker would send: control characters, escapes, separators, unicode, long runs.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[\\x00-\\x1f\\x7f|,;{}\\[\\]'\" =&%+]{0,20}",
        "[0-9]{0,25}",
        "[a-f0-9.]{0,40}",
        "\\PC{0,30}",
        (1usize..3000).prop_map(|n| "x".repeat(n)),
        Just(String::new()),
    ]
}

// === Event bodies ===

const EVENT_KEYS: [&str; 14] = [
    "event",
    "event_handler_id",
    "ts",
    "data[PHONE_NUMBER]",
    "data[PHONE_NUMBER_INTERNATIONAL]",
    "data[EXTENSION]",
    "data[USER_ID]",
    "data[CALL_LIST_ID]",
    "data[LINE_NUMBER]",
    "data[IS_MOBILE]",
    "data[CALL_ID]",
    "data[CRM_ENTITY_TYPE]",
    "data[CRM_ENTITY_ID]",
    "auth[member_id]",
];

/// A value for `key`: usually plausible, sometimes hostile.
fn event_value(key: &'static str) -> BoxedStrategy<String> {
    let plausible: BoxedStrategy<String> = match key {
        "event" => prop_oneof![
            Just("ONEXTERNALCALLSTART".to_owned()),
            Just("onExternalCallStart".to_owned()),
            "[A-Z_]{1,30}",
        ]
        .boxed(),
        "data[CALL_ID]" => "externalCall\\.[0-9a-f]{1,40}\\.[0-9]{1,12}".boxed(),
        "data[USER_ID]" | "data[CALL_LIST_ID]" | "data[CRM_ENTITY_ID]" | "ts" => {
            "[0-9]{1,22}".boxed()
        }
        "data[PHONE_NUMBER]" | "data[PHONE_NUMBER_INTERNATIONAL]" => {
            "\\+?[0-9 ()./-]{1,30}".boxed()
        }
        _ => "[A-Za-z0-9]{0,20}".boxed(),
    };
    prop_oneof![3 => plausible, 1 => hostile_text()].boxed()
}

/// A click-to-call form: every known key (or not), with values, plus a few strange keys.
fn event_form() -> impl Strategy<Value = Vec<(String, String)>> {
    let known: Vec<_> = EVENT_KEYS
        .iter()
        .map(|key| proptest::option::weighted(0.9, event_value(key)).prop_map(move |v| (*key, v)))
        .collect();
    let extra = proptest::collection::vec((hostile_text(), hostile_text()), 0..4);
    let token = prop_oneof![8 => Just(TOKEN.to_owned()), 1 => hostile_text()];
    (known, extra, token).prop_map(|(known, extra, token)| {
        let mut form: Vec<(String, String)> = known
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect();
        form.extend(extra);
        form.push(("auth[application_token]".to_owned(), token));
        form
    })
}

/// What must hold for any outcome of `parse_event`.
fn check_event_outcome(outcome: Result<ParsedEvent, EventError>, values: &[String]) {
    match outcome {
        Ok(ParsedEvent::ClickToCall(click)) => {
            let id = click.call_id.as_str();
            assert!(id.len() <= BitrixCallId::MAX_LEN, "{id:?}");
            assert_eq!(BitrixCallId::parse(id).as_ref(), Some(&click.call_id));
            let digits = click.phone.as_str().trim_start_matches('+');
            assert!(!digits.is_empty() && digits.len() <= 20);
            assert!(
                digits.bytes().all(|b| b.is_ascii_digit()),
                "{:?}",
                click.phone
            );
            if let Some(line) = &click.line_number {
                assert!(line.len() <= 64 && !line.chars().any(char::is_control));
            }
        }
        Ok(ParsedEvent::Install(install)) => {
            assert!(install.member_id.len() <= 64);
            assert!(install.member_id.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
        Ok(ParsedEvent::Callback(callback)) => {
            let digits = callback.phone.as_str().trim_start_matches('+');
            assert!(!digits.is_empty() && digits.len() <= 20);
            assert!(digits.bytes().all(|b| b.is_ascii_digit()));
            if let Some(line) = &callback.line_number {
                assert!(line.len() <= 64 && !line.chars().any(char::is_control));
            }
        }
        Ok(ParsedEvent::Other(name)) => {
            assert!(name.len() <= 64);
            assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        }
        Err(err) => {
            let shown = err.to_string();
            assert!(shown.len() <= 200, "error too long: {shown:?}");
            assert!(!shown.chars().any(char::is_control), "{shown:?}");
            for value in values.iter().filter(|v| v.len() >= 16) {
                assert!(
                    !shown.contains(value.as_str()),
                    "{shown:?} echoes {value:?}"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn event_parser_survives_any_bytes(body in proptest::collection::vec(any::<u8>(), 0..4096)) {
        check_event_outcome(parse_event(&body, TOKEN), &[]);
    }

    #[test]
    fn event_parser_keeps_its_rules_on_near_valid_forms(form in event_form()) {
        let body = serde_urlencoded::to_string(&form).unwrap();
        // A refusal may name a field (shortened): values that are part of a name don't count.
        let values: Vec<String> = form
            .iter()
            .filter(|(_, v)| !form.iter().any(|(k, _)| k.contains(v.as_str())))
            .map(|(_, v)| v.clone())
            .collect();
        check_event_outcome(parse_event(body.as_bytes(), TOKEN), &values);
    }
}

// === Config files ===

fn shipped_config() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conf/fsb24.toml");
    std::fs::read_to_string(path).unwrap()
}

/// A TOML value of any type, as text.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        hostile_text().prop_map(|s| format!("{s:?}")),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("[]".to_owned()),
        hostile_text().prop_map(|s| format!("[{s:?}, 1]")),
        hostile_text().prop_map(|s| format!("{{ value = {s:?} }}")),
        Just("1979-05-27T07:32:00Z".to_owned()),
        "[0-9]{1,4}(ms|s|m|h|d| parsecs)".prop_map(|d| format!("{d:?}")),
    ]
}

/// The shipped config with one line's value replaced, or one line dropped.
fn mutated_config() -> impl Strategy<Value = (String, String)> {
    let text = shipped_config();
    let lines = text.lines().count();
    (0..lines, toml_value(), any::<bool>()).prop_map(move |(at, value, drop)| {
        let mut changed = String::new();
        let mut key = String::new();
        for (i, line) in text.lines().enumerate() {
            let setting = !line.trim_start().starts_with('#') && line.contains(" = ");
            if i == at && setting {
                key = line
                    .split(" = ")
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                if drop {
                    continue;
                }
                changed.push_str(&format!("{key} = {value}\n"));
            } else {
                changed.push_str(line);
                changed.push('\n');
            }
        }
        (changed, key)
    })
}

const SECRET_KEYS: [&str; 4] = ["password", "url", "client_secret", "application_token"];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn config_loader_survives_any_text(text in "\\PC{0,400}") {
        if let Err(errors) = Config::from_toml_str(&text) {
            prop_assert!(!errors.errors.is_empty());
        }
    }

    #[test]
    fn config_loader_reports_every_mutation_by_key_without_echoing_secrets(
        (text, key) in mutated_config(),
        secret in 10_000_000u64..u64::MAX,
    ) {
        if let Err(errors) = Config::from_toml_str(&text) {
            prop_assert!(!errors.errors.is_empty());
            prop_assert!(errors.errors.iter().all(|e| !e.key.is_empty()));
        }
        // The same line holding a number where a secret belongs: refused, never echoed.
        if SECRET_KEYS.contains(&key.as_str()) {
            let needle = format!("\n{key} = ");
            let start = text.find(&needle).map(|i| i + needle.len());
            if let Some(start) = start {
                let end = text[start..].find('\n').map_or(text.len(), |e| start + e);
                let numbered = format!("{}{secret}{}", &text[..start], &text[end..]);
                let errors = Config::from_toml_str(&numbered).unwrap_err();
                prop_assert!(!errors.to_string().contains(&secret.to_string()), "{errors}");
            }
        }
    }
}

// === ESL events ===

const EVENT_NAMES: [&str; 16] = [
    "CHANNEL_ANSWER",
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_CREATE",
    "CHANNEL_PARK",
    "RECORD_START",
    "RECORD_STOP",
    "DTMF",
    "BACKGROUND_JOB",
    "CUSTOM",
    "HEARTBEAT",
    "NOT_AN_EVENT",
];

const HEADERS: [&str; 34] = [
    "Unique-ID",
    "Channel-Call-State",
    "Answer-State",
    "Channel-State",
    "Hangup-Cause",
    "Application",
    "Application-Data",
    "Application-Response",
    "Application-UUID",
    "Other-Leg-Unique-ID",
    "Bridge-A-Unique-ID",
    "Bridge-B-Unique-ID",
    "Other-Type",
    "Other-Leg-Channel-Name",
    "Record-File-Path",
    "DTMF-Digit",
    "Job-UUID",
    "Job-Command",
    "Event-Subclass",
    "Caller-Destination-Number",
    "Caller-Caller-ID-Number",
    "Caller-Channel-Answered-Time",
    "Caller-Channel-Bridged-Time",
    "Channel-Name",
    "variable_billsec",
    "variable_billmsec",
    "variable_record_ms",
    "variable_sip_term_status",
    "variable_sip_hangup_disposition",
    "variable_originate_disposition",
    "variable_last_bridge_hangup_cause",
    "variable_originate_causes",
    "from-user",
    "expires",
];

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(OWN.to_owned()),
        "-?[0-9]{1,25}",
        Just("sofia::register".to_owned()),
        Just("sofia::expire".to_owned()),
        Just("bridge".to_owned()),
        Just("NORMAL_CLEARING".to_owned()),
        Just("originatee".to_owned()),
        Just("_none_".to_owned()),
        "[+-](OK|ERR) [ -~]{0,40}",
        hostile_text(),
    ]
}

fn esl_event() -> impl Strategy<Value = EslEvent> {
    let name = prop_oneof![
        proptest::sample::select(&EVENT_NAMES[..]).prop_map(str::to_owned),
        hostile_text(),
    ];
    let headers = proptest::collection::vec(
        (proptest::sample::select(&HEADERS[..]), header_value()),
        0..12,
    );
    let body = proptest::option::of(hostile_text());
    (name, headers, body).prop_map(|(name, headers, body)| {
        let mut event = EslEvent::new();
        event.set_header("Event-Name", name);
        for (header, value) in headers {
            event.set_header(header, value);
        }
        if let Some(body) = body {
            event.set_body(body);
        }
        event
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn esl_event_mapping_survives_any_headers(event in esl_event()) {
        let _ = map_event(&event, &ChannelId::new(OWN));
        let _ = map_switch_event(&event);
    }
}
