//! Unit tests of `config`.
use std::time::Duration;

use super::*;
use crate::ids::{AgentId, QueueName};

const BASE: &str = r#"
[esl.inbound]
password = "esl-pass-123"
[esl.dial]
domain = "pbx.local"
[bitrix.auth.webhook]
url = "https://example.bitrix24.de/rest/1/webhook-key-xyz/"
"#;

fn with(extra: &str) -> Result<Config, ConfigErrors> {
    Config::from_toml_str(&format!("{BASE}\n{extra}"))
}

fn keys(errors: &ConfigErrors) -> Vec<&str> {
    errors.errors.iter().map(|e| e.key.as_str()).collect()
}

const AGENTS: &str = r#"
[[agents]]
extension = "1001"
bitrix_user = 1
[[agents]]
extension = "1002"
bitrix_user = 2
"#;

#[test]
fn minimal_config_takes_documented_defaults() {
    let c = with("").unwrap();
    assert_eq!(c.esl.listen.to_string(), "127.0.0.1:8084");
    assert_eq!(c.esl.inbound.port, 8021);
    assert_eq!(c.esl.inbound.reconnect_min, Duration::from_millis(500));
    assert_eq!(
        c.bitrix.rate,
        RateConfig {
            per_second: 2,
            burst: 50
        }
    );
    assert_eq!(c.bitrix.lookup_timeout, Duration::from_millis(1500));
    assert_eq!(c.outbox.path, std::path::PathBuf::from("fsb24-outbox.db"));
    assert_eq!(c.outbox.prune_after, Duration::from_secs(7 * 86_400));
    assert_eq!(c.shutdown_grace, Duration::from_secs(10));
    assert!(c.http.is_none());
    assert_eq!(
        c.esl.dial.template.render("1001", "pbx.local"),
        "user/1001@pbx.local"
    );
}

#[test]
fn every_value_error_is_reported_not_just_the_first() {
    let errors = with(&format!(
        r#"{AGENTS}
[[queues]]
name = "sales"
agents = ["1001", "nobody"]
ring = ["3s", "5 parsecs"]
max_wait = "soon"
[[routes]]
target = {{ queue = "missing" }}
"#
    ))
    .unwrap_err();
    assert_eq!(
        keys(&errors),
        [
            "queues.sales.agents[1]",
            "queues.sales.ring[1]",
            "queues.sales.max_wait",
            "routes[0].target.queue"
        ]
    );
}

#[test]
fn sequential_ring_steps_repeat_the_last_time() {
    let c = with(&format!(
        "{AGENTS}\n[[queues]]\nname = \"q\"\nagents = [\"1001\"]\nring = [\"3s\", \"5s\", \"7s\"]"
    ))
    .unwrap();
    let q = c.queue(&QueueName::new("q")).unwrap();
    let steps: Vec<u64> = (0..5).map(|s| q.ring_for_step(s).as_secs()).collect();
    assert_eq!(steps, [3, 5, 7, 7, 7]);
}

#[test]
fn a_queue_may_overflow_to_an_external_number_only_with_a_way_out() {
    let queue = format!(
        r#"{AGENTS}
[[queues]]
name = "a"
agents = ["1001"]
overflow = {{ forward = {{ number = "+491707654321", agent = "1002", ring = "20s" }} }}
"#
    );
    let errors = with(&queue).unwrap_err();
    assert_eq!(keys(&errors), ["queues.a.overflow.forward"]);
    let c = with(&format!("{queue}[outgoing]\ngateway = \"provider\"\n")).unwrap();
    assert_eq!(
        c.queues[0].overflow,
        Overflow::Forward {
            number: crate::ids::PhoneNumber::parse("+491707654321").unwrap(),
            agent: AgentId::new("1002"),
            ring: Duration::from_secs(20),
        }
    );
    let bad = queue.replace("+491707654321", "17'0");
    let errors = with(&format!("{bad}[outgoing]\ngateway = \"provider\"\n")).unwrap_err();
    assert_eq!(keys(&errors), ["queues.a.overflow.forward.number"]);
}

#[test]
fn overflow_cycle_is_reported_once_with_its_path() {
    let errors = with(&format!(
        r#"{AGENTS}
[[queues]]
name = "a"
agents = ["1001"]
overflow = {{ queue = "b" }}
[[queues]]
name = "b"
agents = ["1002"]
overflow = {{ queue = "a" }}
"#
    ))
    .unwrap_err();
    assert_eq!(keys(&errors), ["queues.a.overflow.queue"]);
    assert!(errors.errors[0].problem.contains("a -> b -> a"));
}

#[test]
fn route_after_a_catch_all_is_refused_as_unreachable() {
    let errors = with(&format!(
        "{AGENTS}\n[[routes]]\ntarget = {{ agent = \"1001\" }}\n[[routes]]\ndestination = \"100\"\ntarget = {{ agent = \"1002\" }}"
    ))
    .unwrap_err();
    assert_eq!(keys(&errors), ["routes[1]"]);
}

#[test]
fn agent_id_defaults_to_extension_and_is_found_by_id() {
    let c = with(AGENTS).unwrap();
    let agent = c.agent(&AgentId::new("1002")).unwrap();
    assert_eq!(agent.extension.as_str(), "1002");
    assert_eq!(agent.name, "1002");
}

#[test]
fn unknown_key_is_reported_with_its_path_and_line() {
    let errors = with("[outbox]\nretry_minimum = \"1s\"").unwrap_err();
    assert_eq!(errors.errors.len(), 1);
    let error = &errors.errors[0];
    assert!(error.key.starts_with("outbox"), "{error}");
    assert!(error.problem.contains("retry_minimum"), "{error}");
    assert!(error.problem.contains("line"), "{error}");
}

#[test]
fn missing_required_key_names_the_key_itself() {
    let errors = with("[[agents]]\nextension = \"1001\"").unwrap_err();
    assert_eq!(keys(&errors), ["agents[0].bitrix_user"]);
}

#[test]
fn debug_output_and_errors_never_contain_secrets() {
    let c = with("[bitrix]\napplication_token = \"app-token-7777777\"").unwrap();
    let debug = format!("{c:?}");
    for secret in ["esl-pass-123", "webhook-key-xyz", "app-token-7777777"] {
        assert!(!debug.contains(secret), "{secret} leaked into Debug");
        assert!(
            !c.summary().contains(secret),
            "{secret} leaked into the summary"
        );
    }
    let bad = BASE.replace(
        "https://example.bitrix24.de/rest/1/webhook-key-xyz/",
        "http://x/rest/1/webhook-key-xyz/",
    );
    let errors = Config::from_toml_str(&bad).unwrap_err();
    assert_eq!(keys(&errors), ["bitrix.auth.webhook.url"]);
    assert!(!errors.to_string().contains("webhook-key-xyz"));
}

#[test]
fn http_without_application_token_is_refused() {
    let errors = with("[http]\nlisten = \"127.0.0.1:8085\"").unwrap_err();
    assert_eq!(keys(&errors), ["bitrix.application_token"]);
}

#[test]
fn oauth_takes_the_default_token_server() {
    let text = BASE.replace(
        "[bitrix.auth.webhook]\nurl = \"https://example.bitrix24.de/rest/1/webhook-key-xyz/\"",
        "[bitrix.auth.oauth]\nportal = \"https://acme.bitrix24.de/rest\"\nclient_id = \"local.1\"\nclient_secret = \"s\"",
    );
    let c = Config::from_toml_str(&text).unwrap();
    let BitrixAuth::OAuth(oauth) = &c.bitrix.auth else {
        panic!("expected oauth")
    };
    assert_eq!(oauth.portal.as_str(), "https://acme.bitrix24.de/rest/");
    assert_eq!(
        oauth.server_endpoint.as_str(),
        "https://oauth.bitrix.info/rest/"
    );
}

#[test]
fn application_tokens_shorter_than_16_visible_characters_are_refused() {
    for weak in [
        "",
        " ",
        "a",
        "               x",
        "0123456789 abcdef",
        "0123456789abcde\t",
    ] {
        let text = format!("[bitrix]\napplication_token = {weak:?}");
        let errors = with(&text).unwrap_err();
        assert_eq!(keys(&errors), ["bitrix.application_token"], "{weak:?}");
        let shown = errors.to_string();
        assert!(shown.contains("at least 16"), "{shown}");
        if weak.trim().len() > 1 {
            assert!(!shown.contains(weak.trim()), "the token is echoed: {shown}");
        }
    }
    let c = with("[bitrix]\napplication_token = \"2c6e0b9f4d1a8e7c\"").unwrap();
    assert!(c.bitrix.application_token.is_some());
}

#[test]
fn a_secret_of_the_wrong_type_is_refused_without_echoing_it() {
    let cases = [
        (
            "password = \"esl-pass-123\"",
            "password = 12345678",
            "esl.inbound.password",
        ),
        (
            "password = \"esl-pass-123\"",
            "password = 31415.9265",
            "esl.inbound.password",
        ),
        (
            "password = \"esl-pass-123\"",
            "password = [\"s3cr3t-in-a-list\"]",
            "esl.inbound.password",
        ),
        (
            "password = \"esl-pass-123\"",
            "password = { value = \"s3cr3t-in-a-table\" }",
            "esl.inbound.password",
        ),
        (
            "password = \"esl-pass-123\"",
            "password = 1979-05-27T07:32:00Z",
            "esl.inbound.password",
        ),
        (
            "password = \"esl-pass-123\"",
            "password = true",
            "esl.inbound.password",
        ),
        (
            "url = \"https://example.bitrix24.de/rest/1/webhook-key-xyz/\"",
            "url = 98765432",
            "bitrix.auth.webhook.url",
        ),
    ];
    for (good, bad, key) in cases {
        let text = BASE.replace(good, bad);
        let errors = Config::from_toml_str(&text).unwrap_err();
        assert_eq!(keys(&errors), [key], "{bad}");
        let shown = errors.to_string();
        for leaked in ["12345678", "31415", "s3cr3t", "1979", "98765432", "true"] {
            assert!(!shown.contains(leaked), "{bad}: value echoed in {shown}");
        }
        assert!(shown.contains("string"), "{bad}: {shown}");
    }
    let errors = with("[bitrix]\napplication_token = 24681357924680").unwrap_err();
    assert_eq!(keys(&errors), ["bitrix.application_token"]);
    assert!(!errors.to_string().contains("24681357924680"));
}

#[test]
fn wait_media_that_fails_at_run_time_is_refused_at_load() {
    // The run-time rule (a channel variable value): printable ASCII, no space, `|`, quotes.
    for bad in [
        "/music/hold music.wav",
        "/music/a|b.wav",
        "/music/\"x\".wav",
        "/music/ожидание.wav",
        "local_stream://moh ",
    ] {
        let text = format!(
            "{AGENTS}\n[[queues]]\nname = \"sales\"\nagents = [\"1001\"]\nwait_media = {bad:?}"
        );
        let errors = with(&text).unwrap_err();
        assert_eq!(keys(&errors), ["queues.sales.wait_media"], "{bad:?}");
    }
    for good in ["ringback", "/var/lib/fsb24/moh.wav", "local_stream://moh"] {
        let text = format!(
            "{AGENTS}\n[[queues]]\nname = \"sales\"\nagents = [\"1001\"]\nwait_media = {good:?}"
        );
        with(&text).unwrap_or_else(|e| panic!("{good:?}: {e}"));
    }
}

#[test]
fn the_http_listener_has_limits_by_default_and_refuses_unusable_ones() {
    let token = "[bitrix]\napplication_token = \"2c6e0b9f4d1a8e7c3b5f9a0d2e4c6b81\"";
    let c = with(&format!("{token}\n[http]")).unwrap();
    let http = c.http.unwrap();
    assert_eq!(http.header_read_timeout, Duration::from_secs(10));
    assert_eq!(http.request_timeout, Duration::from_secs(10));
    assert_eq!(http.max_connections, 256);
    assert_eq!(http.max_requests_per_connection, 100);
    let errors = with(&format!(
        "{token}\n[http]\nheader_read_timeout = \"1h\"\nrequest_timeout = \"1ms\"\n\
         max_connections = 0\nmax_requests_per_connection = 0"
    ))
    .unwrap_err();
    assert_eq!(
        keys(&errors),
        [
            "http.header_read_timeout",
            "http.request_timeout",
            "http.max_connections",
            "http.max_requests_per_connection"
        ]
    );
}
