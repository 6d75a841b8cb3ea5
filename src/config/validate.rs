//! Raw → typed for the scalar sections (`[esl]`, `[recording]`, `[outbox]`, `[http]`,
//! `[click_to_call]`, `[log]`), plus the value parsers every section shares.
//!
//! Each function records every problem it finds and returns a value anyway (the default where the
//! input was bad), so one pass reports all mistakes; the caller discards the result if any exist.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::Secret;
use super::error::Problems;
use super::model::{
    ClickToCallConfig, DialConfig, EslConfig, EslInboundConfig, HttpConfig, LogConfig, LogFormat,
    OutboxConfig, RecordingConfig,
};
use super::raw::{
    RawClickToCall, RawDial, RawEsl, RawEslInbound, RawHttp, RawLog, RawNumbers, RawOutbox,
    RawRecording,
};
use super::template::DialTemplate;
use crate::ids::PhoneNumber;
use crate::phone::Numbering;
use crate::recording::PathTemplate;
use crate::recording::compact::AttachFormat;
use crate::recording::mp3::KBPS_PER_CHANNEL;

// === Shared value parsers ===

/// Parses a humantime duration (`"3s"`, `"1m30s"`, `"500ms"`), or `default` when absent.
pub(crate) fn duration(p: &mut Problems, key: &str, raw: Option<&str>, default: &str) -> Duration {
    let text = raw.unwrap_or(default);
    match humantime::parse_duration(text) {
        Ok(d) => d,
        Err(e) => {
            p.push(
                key,
                format!("invalid duration {text:?} ({e}); write e.g. \"3s\", \"1m30s\""),
            );
            humantime::parse_duration(default).unwrap_or_default()
        }
    }
}

/// Records a problem unless `min <= value <= max`.
pub(crate) fn in_range(p: &mut Problems, key: &str, value: Duration, min: Duration, max: Duration) {
    let show = |d: Duration| humantime::format_duration(d).to_string();
    if value < min {
        p.push(
            key,
            format!("{} is too short; use at least {}", show(value), show(min)),
        );
    } else if value > max {
        p.push(
            key,
            format!("{} is too long; use at most {}", show(value), show(max)),
        );
    }
}

/// [`duration`], then [`in_range`]: the value (or `default` when absent), checked to lie
/// within `min..=max`.
pub(crate) fn bounded_duration(
    p: &mut Problems,
    key: &str,
    raw: Option<&str>,
    default: &str,
    min: Duration,
    max: Duration,
) -> Duration {
    let value = duration(p, key, raw, default);
    in_range(p, key, value, min, max);
    value
}

pub(crate) fn socket_addr(
    p: &mut Problems,
    key: &str,
    raw: Option<&str>,
    default: &str,
) -> SocketAddr {
    let text = raw.unwrap_or(default);
    text.parse().unwrap_or_else(|e| {
        p.push(
            key,
            format!("invalid listen address {text:?} ({e}); write e.g. \"127.0.0.1:8084\""),
        );
        SocketAddr::from(([127, 0, 0, 1], 0))
    })
}

/// A plain token (dialplan context, variable name...): ASCII letters, digits, `_`, `-`, `.`.
pub(crate) fn token(p: &mut Problems, key: &str, raw: &str) -> String {
    let ok = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
    if raw.is_empty() || !raw.chars().all(ok) {
        p.push(
            key,
            format!("{raw:?} must be non-empty letters, digits, '_', '-' or '.'"),
        );
    }
    raw.to_owned()
}

pub(crate) fn secret(p: &mut Problems, key: &str, raw: Option<Secret>, what: &str) -> Secret {
    match raw {
        Some(s) if !s.expose().trim().is_empty() => s,
        Some(_) => {
            p.push(key, format!("{what} is empty"));
            Secret::new("")
        }
        None => {
            p.push(key, format!("missing; set the {what}"));
            Secret::new("")
        }
    }
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// === [esl] ===

pub(crate) fn esl(p: &mut Problems, raw: RawEsl) -> Option<EslConfig> {
    let handshake_timeout = bounded_duration(
        p,
        "esl.handshake_timeout",
        raw.handshake_timeout.as_deref(),
        "5s",
        ms(100),
        secs(60),
    );
    let command_timeout = bounded_duration(
        p,
        "esl.command_timeout",
        raw.command_timeout.as_deref(),
        "5s",
        ms(100),
        secs(60),
    );
    let linger = bounded_duration(
        p,
        "esl.linger",
        raw.linger.as_deref(),
        "30s",
        secs(1),
        secs(600),
    );
    let max_calls = raw.max_calls.unwrap_or(10_000);
    if !(1..=1_000_000).contains(&max_calls) {
        p.push(
            "esl.max_calls",
            format!("{max_calls} is outside 1..=1000000"),
        );
    }
    let listen = socket_addr(p, "esl.listen", raw.listen.as_deref(), "127.0.0.1:8084");
    let inbound = esl_inbound(p, raw.inbound);
    Some(EslConfig {
        listen,
        handshake_timeout,
        command_timeout,
        linger,
        max_calls: usize::try_from(max_calls).unwrap_or(usize::MAX),
        inbound,
        dial: dial(p, raw.dial)?,
    })
}

fn esl_inbound(p: &mut Problems, raw: RawEslInbound) -> EslInboundConfig {
    let host = raw.host.unwrap_or_else(|| "127.0.0.1".to_owned());
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        p.push(
            "esl.inbound.host",
            format!("{host:?} is not a host name or address"),
        );
    }
    let reconnect_min = bounded_duration(
        p,
        "esl.inbound.reconnect_min",
        raw.reconnect_min.as_deref(),
        "500ms",
        ms(10),
        secs(60),
    );
    let reconnect_max = duration(
        p,
        "esl.inbound.reconnect_max",
        raw.reconnect_max.as_deref(),
        "30s",
    );
    if reconnect_max < reconnect_min {
        p.push(
            "esl.inbound.reconnect_max",
            "must not be shorter than esl.inbound.reconnect_min",
        );
    }
    EslInboundConfig {
        host,
        port: raw.port.unwrap_or(8021),
        password: secret(
            p,
            "esl.inbound.password",
            raw.password,
            "mod_event_socket password",
        ),
        reconnect_min,
        reconnect_max,
    }
}

fn dial(p: &mut Problems, raw: RawDial) -> Option<DialConfig> {
    let text = raw
        .template
        .as_deref()
        .unwrap_or("user/{extension}@{domain}");
    let template = DialTemplate::parse(text)
        .map_err(|e| p.push("esl.dial.template", e))
        .ok()?;
    let domain = raw.domain.map(|d| {
        let ok = |c: char| c.is_ascii_alphanumeric() || "-.:_".contains(c);
        if d.is_empty() || !d.chars().all(ok) {
            p.push(
                "esl.dial.domain",
                format!("{d:?} is not a SIP domain or address"),
            );
        }
        d
    });
    if template.uses_domain() && domain.is_none() {
        p.push(
            "esl.dial.domain",
            "missing; esl.dial.template uses {domain}",
        );
    }
    Some(DialConfig { domain, template })
}

/// A Bitrix24 `LINE_NUMBER`: 1-64 printable characters.
pub(crate) fn line_number(p: &mut Problems, key: &str, raw: String) -> String {
    if raw.trim().is_empty() || raw.len() > 64 || raw.chars().any(char::is_control) {
        p.push(key, format!("{raw:?} must be 1-64 printable characters"));
    }
    raw
}

// === [recording], [outbox], [http], [click_to_call], [log] ===

pub(crate) fn recording(p: &mut Problems, raw: RawRecording) -> Option<RecordingConfig> {
    let wait = bounded_duration(
        p,
        "recording.wait_after_hangup",
        raw.wait_after_hangup.as_deref(),
        "30s",
        Duration::ZERO,
        secs(3600),
    );
    let text = raw
        .path_template
        .as_deref()
        .unwrap_or("/var/lib/fsb24/recordings/{date}/{call}.wav");
    let path_template = PathTemplate::parse(text)
        .map_err(|e| p.push("recording.path_template", e.to_string()))
        .ok()?;
    let attach = attach_format(p, &raw, &path_template);
    Some(RecordingConfig {
        attach,
        enabled: raw.enabled.unwrap_or(true),
        path_template,
        stereo: raw.stereo.unwrap_or(true),
        wait_after_hangup: wait,
        inline_max_bytes: raw.inline_max_bytes.unwrap_or(4 * 1024 * 1024),
    })
}

/// `attach_format` and `mp3_kbps`: MP3 at 24 kbit/s per channel unless told otherwise.
fn attach_format(p: &mut Problems, raw: &RawRecording, template: &PathTemplate) -> AttachFormat {
    let kbps = raw.mp3_kbps.unwrap_or(24);
    if !KBPS_PER_CHANNEL.contains(&kbps) {
        let allowed: Vec<String> = KBPS_PER_CHANNEL.iter().map(u32::to_string).collect();
        let why = format!(
            "{kbps} is not one of {} (kbit/s per channel)",
            allowed.join(", ")
        );
        p.push("recording.mp3_kbps", why);
    }
    let records_mp3 = template.as_str().to_ascii_lowercase().ends_with(".mp3");
    match raw.attach_format.as_deref() {
        None | Some("mp3") => AttachFormat::Mp3 {
            kbps_per_channel: kbps,
        },
        Some("wav") if records_mp3 => {
            let why = "FreeSWITCH records MP3 here (path_template ends in .mp3); use \"mp3\"";
            p.push("recording.attach_format", why);
            AttachFormat::AsRecorded
        }
        Some("wav") => AttachFormat::AsRecorded,
        Some(other) => {
            p.push(
                "recording.attach_format",
                format!("{other:?} is not \"mp3\" or \"wav\""),
            );
            AttachFormat::AsRecorded
        }
    }
}

pub(crate) fn outbox(p: &mut Problems, raw: RawOutbox) -> OutboxConfig {
    let prune_after = bounded_duration(
        p,
        "outbox.prune_after",
        raw.prune_after.as_deref(),
        "7d",
        secs(60),
        secs(365 * 86_400),
    );
    let retry_min = bounded_duration(
        p,
        "outbox.retry_min",
        raw.retry_min.as_deref(),
        "1s",
        ms(10),
        secs(3600),
    );
    let retry_max = duration(p, "outbox.retry_max", raw.retry_max.as_deref(), "5m");
    if retry_max < retry_min {
        p.push(
            "outbox.retry_max",
            "must not be shorter than outbox.retry_min",
        );
    }
    OutboxConfig {
        path: raw.path.unwrap_or_else(|| PathBuf::from("fsb24-outbox.db")),
        prune_after,
        retry_min,
        retry_max,
    }
}

pub(crate) fn http(p: &mut Problems, raw: RawHttp) -> HttpConfig {
    let path = raw.path.unwrap_or_else(|| "/bitrix24/event".to_owned());
    let ok = |c: char| c.is_ascii_alphanumeric() || "/-_.".contains(c);
    if !path.starts_with('/') || !path.chars().all(ok) {
        p.push(
            "http.path",
            format!(
                "{path:?} must start with '/' and use only letters, digits, '/', '-', '_', '.'"
            ),
        );
    }
    let header_read_timeout = bounded_duration(
        p,
        "http.header_read_timeout",
        raw.header_read_timeout.as_deref(),
        "10s",
        ms(100),
        secs(300),
    );
    let request_timeout = bounded_duration(
        p,
        "http.request_timeout",
        raw.request_timeout.as_deref(),
        "10s",
        ms(100),
        secs(300),
    );
    let max_connections = raw.max_connections.unwrap_or(256);
    if !(1..=10_000).contains(&max_connections) {
        p.push(
            "http.max_connections",
            format!("{max_connections} is not between 1 and 10000"),
        );
    }
    let max_requests_per_connection = raw.max_requests_per_connection.unwrap_or(100);
    if max_requests_per_connection == 0 {
        p.push("http.max_requests_per_connection", "must be at least 1");
    }
    HttpConfig {
        listen: socket_addr(p, "http.listen", raw.listen.as_deref(), "127.0.0.1:8085"),
        path,
        header_read_timeout,
        request_timeout,
        max_connections,
        max_requests_per_connection,
    }
}

pub(crate) fn click_to_call(p: &mut Problems, raw: RawClickToCall) -> ClickToCallConfig {
    let timeout = bounded_duration(
        p,
        "click_to_call.originate_timeout",
        raw.originate_timeout.as_deref(),
        "30s",
        secs(1),
        secs(600),
    );
    let caller_id_number = raw.caller_id_number.as_deref().and_then(|n| {
        PhoneNumber::parse(n)
            .map_err(|e| p.push("click_to_call.caller_id_number", e))
            .ok()
    });
    let customer_ring_timeout = bounded_duration(
        p,
        "click_to_call.customer_ring_timeout",
        raw.customer_ring_timeout.as_deref(),
        "60s",
        secs(1),
        secs(600),
    );
    let max_duration = bounded_duration(
        p,
        "click_to_call.max_duration",
        raw.max_duration.as_deref(),
        "4h",
        secs(60),
        secs(86_400),
    );
    let customer = super::click::customer_route(p, &raw);
    let (max_event_age, repeat_window) = super::click::hygiene(p, &raw);
    ClickToCallConfig {
        max_event_age,
        repeat_window,
        customer,
        customer_ring_timeout,
        max_duration,
        context: token(
            p,
            "click_to_call.context",
            raw.context.as_deref().unwrap_or("default"),
        ),
        dialplan: token(
            p,
            "click_to_call.dialplan",
            raw.dialplan.as_deref().unwrap_or("XML"),
        ),
        originate_timeout: timeout,
        caller_id_number,
    }
}

pub(crate) fn log(p: &mut Problems, raw: RawLog) -> LogConfig {
    let format = match raw.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            p.push(
                "log.format",
                format!("{other:?} is not \"text\" or \"json\""),
            );
            LogFormat::Text
        }
    };
    LogConfig { format }
}

/// `[numbers]`: the default country of [`Numbering`]; without one only `+…` numbers are rewritten.
pub(crate) fn numbers(p: &mut Problems, raw: RawNumbers) -> Numbering {
    match raw.default_country.as_deref() {
        None => Numbering::international_only(),
        Some(country) => Numbering::for_country(country).unwrap_or_else(|e| {
            p.push("numbers.default_country", e.to_string());
            Numbering::international_only()
        }),
    }
}
