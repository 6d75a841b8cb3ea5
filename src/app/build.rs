//! Config sections -> component settings (plain mapping, no IO).

use std::collections::HashMap;

use anyhow::Context;

use crate::bitrix::{
    AuthSettings, BitrixSettings, OAuthSettings, RateLimit, SecretString, WebhookUrl,
};
use crate::call::route::{agent_info, matched_variables};
use crate::config::{BitrixAuth, Config, HttpConfig, QueueOrder};
use crate::esl::{Domain, InboundOptions, OutboundOptions, ReconnectBackoff};
use crate::ids::BitrixUserId;
use crate::outbox::deliver::RetryBackoff;
use crate::outbox::worker::WorkerConfig;
use crate::queue::{Order, Policy, QueueSettings, Rules};

/// The Bitrix24 client's settings.
pub(crate) fn bitrix(config: &Config) -> anyhow::Result<BitrixSettings> {
    let auth = match &config.bitrix.auth {
        BitrixAuth::Webhook { url } => AuthSettings::Webhook(
            WebhookUrl::parse(url.expose()).context("bitrix.auth.webhook.url")?,
        ),
        BitrixAuth::OAuth(o) => AuthSettings::OAuth(OAuthSettings {
            portal: o.portal.clone(),
            server_endpoint: o.server_endpoint.clone(),
            client_id: o.client_id.clone(),
            client_secret: SecretString::new(o.client_secret.expose()),
            token_file: o.token_file.clone(),
        }),
    };
    let mut settings = BitrixSettings::new(auth);
    settings.rate = RateLimit {
        per_second: f64::from(config.bitrix.rate.per_second),
        burst: config.bitrix.rate.burst,
    };
    settings.batch_window =
        (!config.bitrix.batch_window.is_zero()).then_some(config.bitrix.batch_window);
    settings.request_timeout = config.bitrix.request_timeout;
    settings.inline_record_max = config.recording.inline_max_bytes;
    Ok(settings)
}

/// The event listener's limits.
pub(crate) fn http_limits(http: &HttpConfig) -> crate::http::Limits {
    crate::http::Limits {
        header_read_timeout: http.header_read_timeout,
        request_timeout: http.request_timeout,
        max_connections: usize::try_from(http.max_connections).unwrap_or(usize::MAX),
        max_requests_per_connection: http.max_requests_per_connection,
    }
}

/// The outbox worker's settings.
pub(crate) fn worker(config: &Config) -> WorkerConfig {
    WorkerConfig {
        backoff: RetryBackoff {
            base: config.outbox.retry_min,
            max: config.outbox.retry_max,
            jitter: 0.5,
        },
        prune_after: config.outbox.prune_after,
        attach: config.recording.attach,
        ..WorkerConfig::default()
    }
}

/// The outbound listener's settings.
pub(crate) fn outbound(config: &Config) -> OutboundOptions {
    OutboundOptions {
        handshake_timeout: config.esl.handshake_timeout,
        command_timeout: config.esl.command_timeout,
        linger: Some(config.esl.linger),
        max_calls: config.esl.max_calls,
        variables: matched_variables(config)
            .into_iter()
            .chain(crate::call::outgoing::variables().map(str::to_owned))
            .collect(),
        ..OutboundOptions::default()
    }
}

/// The inbound connection's settings.
pub(crate) fn inbound(config: &Config) -> anyhow::Result<InboundOptions> {
    let inbound = &config.esl.inbound;
    let domain = config.esl.dial.domain.as_deref().unwrap_or(&inbound.host);
    Ok(InboundOptions {
        host: inbound.host.clone(),
        port: inbound.port,
        password: inbound.password.expose().to_owned(),
        connect_timeout: config.esl.handshake_timeout,
        command_timeout: config.esl.command_timeout,
        job_timeout: config.click_to_call.originate_timeout + config.esl.command_timeout,
        backoff: ReconnectBackoff {
            initial: inbound.reconnect_min,
            max: inbound.reconnect_max,
            jitter: 0.2,
        },
        liveness_timeout: std::time::Duration::from_secs(60),
        domain: Domain::parse(domain).context("esl.dial.domain")?,
        event_capacity: 1024,
    })
}

/// The queue policy: every agent and queue of the config.
pub(crate) fn policy(config: &Config) -> anyhow::Result<Policy> {
    let agents = config.agents.iter().map(agent_info).collect();
    let queues = config
        .queues
        .iter()
        .map(|q| QueueSettings {
            name: q.name.clone(),
            agents: q.agents.clone(),
            order: match q.order {
                QueueOrder::List => Order::ListOrder,
                QueueOrder::RoundRobin => Order::RoundRobin,
            },
            rules: Rules {
                allow_busy_agents: q.allow_busy_agents,
                wrap_up: q.wrap_up,
                busy_cooldown: q.cooldown_busy,
                reject_cooldown: q.cooldown_reject,
                no_answer_cooldown: q.cooldown_no_answer,
                max_no_answer: q.max_no_answer,
                no_answer_pause: q.no_answer_pause,
            },
        })
        .collect();
    Policy::new(agents, queues, Rules::default()).context("building the queue policy")
}

/// SIP extension -> Bitrix24 user, for recovered calls answered while fsb24 was down.
pub(crate) fn users_by_extension(config: &Config) -> HashMap<String, BitrixUserId> {
    config
        .agents
        .iter()
        .map(|a| (a.extension.as_str().to_owned(), a.bitrix_user))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    // Regression: the client defaulted to a 30 s request timeout and 2 MiB inline recordings
    // while the config said 10 s and 4 MiB; library users and the daemon got different clients.
    #[test]
    fn the_clients_defaults_are_the_configs_defaults() {
        let config = Config::from_toml_str(include_str!(
            "../../tests/fixtures/config/valid/minimal.toml"
        ))
        .unwrap();
        let from_config = bitrix(&config).unwrap();
        let default = BitrixSettings::new(from_config.auth.clone());
        assert_eq!(from_config.request_timeout, default.request_timeout);
        assert_eq!(from_config.batch_window, default.batch_window);
        assert_eq!(from_config.inline_record_max, default.inline_record_max);
        assert_eq!(from_config.rate, default.rate);
    }
}
