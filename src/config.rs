//! The config file: parsed by serde into `raw` types, then validated into [`Config`].
//!
//! Validation collects every mistake with its dotted key ([`ConfigErrors`]) instead of stopping
//! at the first; secrets are [`Secret`]s that never print. This module does no IO beyond reading
//! the file in [`Config::load`], and knows nothing about ESL or Bitrix24 wire formats.

use std::path::Path;

mod admin;
mod bitrix;
mod click;
mod error;
mod model;
mod outgoing;
mod policies;
mod portal;
mod queues;
mod raw;
mod routes;
mod secret;
mod summary;
mod template;
mod validate;

pub use click::CustomerRoute;
pub use error::{ConfigError, ConfigErrors};
pub use model::{
    AdminConfig, AgentConfig, BitrixAuth, BitrixConfig, BitrixDefaults, CardMode,
    ClickToCallConfig, Config, DialConfig, EslConfig, EslInboundConfig, Extension, HttpConfig,
    LineMatch, LogConfig, LogFormat, MissedOwner, OAuthConfig, OutboxConfig, Overflow, QueueConfig,
    QueueOrder, RateConfig, RecordingConfig, RouteConfig, RouteTarget, Strategy, WaitMedia,
    WhenNobodyFree,
};
pub use outgoing::OutgoingConfig;
pub use portal::{EventDelivery, LineConfig, PortalConfig};
pub use secret::Secret;
pub use template::DialTemplate;

use error::Problems;
use raw::RawConfig;

impl Config {
    /// Reads and validates the file at `path`. Blocking (reads the file): call it before the
    /// runtime starts or from `spawn_blocking`; async code can read the text itself and use
    /// [`Config::from_toml_str_at`].
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let problem = format!("cannot read the config file: {e}");
            ConfigErrors::new(
                path.display().to_string(),
                vec![ConfigError::new("(file)", problem)],
            )
        })?;
        Self::from_toml_str_at(&text, path)
    }

    /// Validates config text that was read from `path` (named in errors, kept as [`Config::source`]).
    pub fn from_toml_str_at(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
        let mut config = parse(text, &path.display().to_string())?;
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// Validates config text that has no file behind it (tests, embedded defaults).
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigErrors> {
        parse(text, "<string>")
    }

    /// The agent with this id, if configured.
    pub fn agent(&self, id: &crate::ids::AgentId) -> Option<&AgentConfig> {
        self.agents.iter().find(|a| &a.id == id)
    }

    /// The queue with this name, if configured.
    pub fn queue(&self, name: &crate::ids::QueueName) -> Option<&QueueConfig> {
        self.queues.iter().find(|q| &q.name == name)
    }
}

fn parse(text: &str, source_name: &str) -> Result<Config, ConfigErrors> {
    let raw = parse_raw(text).map_err(|e| ConfigErrors::new(source_name, vec![e]))?;
    Config::try_from(raw).map_err(|mut e| {
        e.source_name = source_name.to_owned();
        e
    })
}

/// TOML syntax and shape (unknown keys, wrong types, missing required keys): serde stops at the
/// first such error, so this stage reports one; value errors are all collected later.
fn parse_raw(text: &str) -> Result<RawConfig, ConfigError> {
    let de = toml::Deserializer::parse(text).map_err(|e| shape_error(String::new(), &e, text))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        shape_error(path, e.inner(), text)
    })
}

fn shape_error(path: String, error: &toml::de::Error, text: &str) -> ConfigError {
    let message = error.message().trim();
    let mut key = if path == "." { String::new() } else { path };
    // serde names a missing key in the message, at the path of its parent table.
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.strip_suffix('`'))
    {
        key = if key.is_empty() {
            field.to_owned()
        } else {
            format!("{key}.{field}")
        };
    }
    if key.is_empty() {
        key = "(file)".to_owned();
    }
    let line = error
        .span()
        .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    match line {
        Some(line) => ConfigError::new(key, format!("{message} (line {line})")),
        None => ConfigError::new(key, message),
    }
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigErrors;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigErrors> {
        let mut p = Problems::default();
        let grace = validate::bounded_duration(
            &mut p,
            "shutdown_grace",
            raw.shutdown_grace.as_deref(),
            "10s",
            std::time::Duration::ZERO,
            std::time::Duration::from_secs(600),
        );
        let esl = validate::esl(&mut p, raw.esl);
        let bitrix = bitrix::bitrix(&mut p, raw.bitrix);
        let agents = queues::agents(&mut p, raw.agents);
        let queue_names: Vec<String> = raw.queues.iter().map(|q| q.name.clone()).collect();
        let queues = queues::queues(&mut p, raw.queues, &agents);
        let known = queues::Known {
            agents: &agents,
            queues: &queue_names,
        };
        let routes = routes::routes(&mut p, raw.routes, &known);
        let recording = validate::recording(&mut p, raw.recording);
        let outbox = validate::outbox(&mut p, raw.outbox);
        let http = raw.http.map(|h| validate::http(&mut p, h));
        let click_to_call = validate::click_to_call(&mut p, raw.click_to_call);
        let outgoing = outgoing::outgoing(&mut p, raw.outgoing, click_to_call.customer.as_ref());
        routes::check_forwards(&mut p, &routes, outgoing.customer.is_some());
        routes::check_queue_forwards(&mut p, &queues, outgoing.customer.is_some());
        let log = validate::log(&mut p, raw.log);
        let admin_section = raw.admin.map(|a| admin::admin(&mut p, a));
        let numbers = validate::numbers(&mut p, raw.numbers);
        let portal = portal::portal(&mut p, raw.events, raw.lines);
        let token_missing = bitrix
            .as_ref()
            .is_some_and(|b| b.application_token.is_none());
        let webhook = bitrix
            .as_ref()
            .is_some_and(|b| matches!(b.auth, BitrixAuth::Webhook { .. }));
        if portal.delivery.offline() && webhook {
            // event.offline.* run only in an application's context (§5).
            p.push(
                "events.delivery",
                "offline events need the local application ([bitrix.auth.oauth]); \
                 a webhook has no offline queue",
            );
        }
        if let Some(queue) = &portal.callback_queue
            && !queue_names.iter().any(|q| q == queue.as_str())
        {
            p.push(
                "events.callback_queue",
                format!("{:?} is not a [[queues]] name", queue.as_str()),
            );
        }
        if http.is_some() && token_missing {
            // Event POSTs are unsigned; the token is their only authenticity check.
            p.push(
                "bitrix.application_token",
                "missing; required to verify events posted to [http]",
            );
        }
        let config = (|| {
            Some(Config {
                source: None,
                shutdown_grace: grace,
                esl: esl?,
                bitrix: bitrix?,
                agents,
                queues,
                routes,
                recording: recording?,
                outbox,
                http,
                click_to_call,
                outgoing,
                log,
                admin: admin_section,
                numbers,
                portal,
            })
        })();
        match config {
            Some(config) if p.is_empty() => Ok(config),
            _ if p.is_empty() => {
                let error = ConfigError::new("(file)", "invalid config");
                Err(ConfigErrors::new("<config>", vec![error]))
            }
            _ => Err(ConfigErrors::new("<config>", p.into_vec())),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
