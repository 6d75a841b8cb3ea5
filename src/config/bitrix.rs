//! Raw → typed for `[bitrix]`: credentials (webhook URL or OAuth application), the request-rate
//! budget, timeouts and call-card defaults. Secrets are checked without ever being echoed.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::Secret;
use super::error::Problems;
use super::model::{BitrixAuth, BitrixConfig, BitrixDefaults, OAuthConfig, RateConfig};
use super::raw::{RawAuth, RawBitrix, RawBitrixDefaults, RawOAuth};
use super::validate::{bounded_duration, line_number, ms, secret, secs};
use crate::bitrix::secure_or_loopback;
use crate::ids::{BitrixUserId, PhoneNumber};

pub(crate) fn bitrix(p: &mut Problems, raw: RawBitrix) -> Option<BitrixConfig> {
    let auth = match raw.auth {
        Some(RawAuth::Webhook(w)) => webhook_url(p, w.url).map(|url| BitrixAuth::Webhook { url }),
        Some(RawAuth::OAuth(o)) => oauth(p, o).map(|o| BitrixAuth::OAuth(Box::new(o))),
        None => {
            p.push(
                "bitrix.auth",
                "missing; add [bitrix.auth.webhook] url = ... or [bitrix.auth.oauth]",
            );
            None
        }
    };
    let batch_window = bounded_duration(
        p,
        "bitrix.batch_window",
        raw.batch_window.as_deref(),
        "10ms",
        Duration::ZERO,
        secs(1),
    );
    // Bitrix24 cuts every request at 60 s, so waiting longer only hides a dead portal.
    let request_timeout = bounded_duration(
        p,
        "bitrix.request_timeout",
        raw.request_timeout.as_deref(),
        "10s",
        ms(100),
        secs(60),
    );
    // A caller hears silence or ringback during a lookup; keep it short.
    let lookup_timeout = bounded_duration(
        p,
        "bitrix.lookup_timeout",
        raw.lookup_timeout.as_deref(),
        "1500ms",
        ms(50),
        secs(10),
    );
    let rate = RateConfig {
        per_second: raw.rate.per_second.unwrap_or(2),
        burst: raw.rate.burst.unwrap_or(50),
    };
    if rate.per_second == 0 {
        p.push(
            "bitrix.rate.per_second",
            "must be at least 1 (the portal drains 2/s, Enterprise 5/s)",
        );
    }
    if rate.burst == 0 {
        p.push(
            "bitrix.rate.burst",
            "must be at least 1 (the portal allows 50, Enterprise 250)",
        );
    }
    let defaults = bitrix_defaults(p, raw.defaults);
    Some(BitrixConfig {
        auth: auth?,
        application_token: raw.application_token.map(|t| application_token(p, t)),
        rate,
        batch_window,
        request_timeout,
        lookup_timeout,
        defaults: defaults?,
    })
}

/// Checks `https://<portal>/rest/<user id>/<token>/` without ever echoing the URL (it is the key).
fn webhook_url(p: &mut Problems, raw: Option<Secret>) -> Option<Secret> {
    let key = "bitrix.auth.webhook.url";
    let Some(secret) = raw else {
        p.push(
            key,
            "missing; paste the inbound webhook URL (https://<portal>/rest/<user>/<token>/)",
        );
        return None;
    };
    let parsed = Url::parse(secret.expose().trim())
        .map_err(|e| {
            p.push(
                key,
                format!("not a URL ({e}); value not shown because it is secret"),
            )
        })
        .ok()?;
    let segments: Vec<&str> = parsed.path().split('/').filter(|s| !s.is_empty()).collect();
    let shaped = matches!(segments.as_slice(), ["rest", user, token]
        if user.chars().all(|c| c.is_ascii_digit()) && !token.is_empty());
    if !secure_or_loopback(&parsed) {
        p.push(key, "must be an https:// URL (Bitrix24 refuses plain http)");
    } else if !shaped || parsed.query().is_some() {
        p.push(
            key,
            "must look like https://<portal>/rest/<user id>/<token>/ (value not shown)",
        );
    }
    let mut normalised = parsed.to_string();
    if !normalised.ends_with('/') {
        normalised.push('/');
    }
    Some(Secret::new(normalised))
}

fn rest_base(p: &mut Problems, key: &str, raw: &str) -> Option<Url> {
    let mut text = raw.trim().to_owned();
    if !text.ends_with('/') {
        text.push('/');
    }
    match Url::parse(&text) {
        Ok(url) if secure_or_loopback(&url) => Some(url),
        Ok(_) => {
            p.push(key, format!("{raw:?} must be an https:// URL"));
            None
        }
        Err(e) => {
            p.push(key, format!("{raw:?} is not a URL ({e})"));
            None
        }
    }
}

fn oauth(p: &mut Problems, raw: RawOAuth) -> Option<OAuthConfig> {
    let key = "bitrix.auth.oauth.portal";
    let portal = match raw.portal.as_deref() {
        Some(text) => rest_base(p, key, text),
        None => {
            p.push(
                key,
                "missing; the portal's REST URL, e.g. https://acme.bitrix24.de/rest/",
            );
            None
        }
    };
    let client_id = raw.client_id.unwrap_or_default();
    if client_id.trim().is_empty() {
        p.push(
            "bitrix.auth.oauth.client_id",
            "missing; the application's client_id",
        );
    }
    let server = raw
        .server_endpoint
        .as_deref()
        .unwrap_or("https://oauth.bitrix.info/rest/");
    let server_endpoint = rest_base(p, "bitrix.auth.oauth.server_endpoint", server);
    let what = "application's client_secret";
    let client_secret = secret(
        p,
        "bitrix.auth.oauth.client_secret",
        raw.client_secret,
        what,
    );
    Some(OAuthConfig {
        portal: portal?,
        client_id,
        client_secret,
        server_endpoint: server_endpoint?,
        token_file: raw
            .token_file
            .unwrap_or_else(|| PathBuf::from("fsb24-bitrix-token.json")),
    })
}

/// Events are unsigned: the token is their only authenticity check, so a guessable one ("",
/// "a") is refused. Bitrix24 issues 32 hex digits; at least 16 visible characters are required.
fn application_token(p: &mut Problems, token: Secret) -> Secret {
    const MIN: usize = 16;
    let text = token.expose();
    if text.chars().count() < MIN || !text.chars().all(|c| c.is_ascii_graphic()) {
        p.push(
            "bitrix.application_token",
            format!(
                "must be at least {MIN} visible characters without spaces, as Bitrix24 shows it \
                 (value not shown because it is secret)"
            ),
        );
    }
    token
}

fn bitrix_defaults(p: &mut Problems, raw: RawBitrixDefaults) -> Option<BitrixDefaults> {
    let line_number = raw
        .line_number
        .map(|l| line_number(p, "bitrix.defaults.line_number", l));
    let anonymous = raw.anonymous_number.as_deref().unwrap_or("0000");
    let anonymous_number = PhoneNumber::parse(anonymous)
        .map_err(|e| p.push("bitrix.defaults.anonymous_number", e))
        .ok()?;
    Some(BitrixDefaults {
        line_number,
        crm_create: raw.crm_create.unwrap_or(true),
        add_to_chat: raw.add_to_chat.unwrap_or(true),
        missed_call_owner: raw.missed_call_owner.map(BitrixUserId),
        anonymous_number,
    })
}
