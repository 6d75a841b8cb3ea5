//! The short human summary `fsb24 check-config` prints for a valid config.

use std::fmt::Write as _;
use std::time::Duration;

use super::model::{
    BitrixAuth, Config, LineMatch, Overflow, QueueOrder, RouteConfig, RouteTarget, Strategy,
};

fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl Config {
    /// Agents, queues and routes in a few lines, without any secret.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let auth = match &self.bitrix.auth {
            BitrixAuth::Webhook { .. } => "webhook".to_owned(),
            BitrixAuth::OAuth(o) => format!("oauth, portal {}", o.portal),
        };
        let _ = writeln!(
            out,
            "esl: listen {}, inbound {}:{}",
            self.esl.listen, self.esl.inbound.host, self.esl.inbound.port
        );
        let _ = writeln!(
            out,
            "bitrix: {auth}, {} req/s burst {}",
            self.bitrix.rate.per_second, self.bitrix.rate.burst
        );
        if let Some(admin) = &self.admin {
            let _ = writeln!(
                out,
                "admin: listen {} (metrics, health, status page)",
                admin.listen
            );
        }
        let _ = writeln!(out, "agents: {}", self.agents.len());
        for a in &self.agents {
            let _ = writeln!(
                out,
                "  {} ext {} -> bitrix user {} ({})",
                a.id, a.extension, a.bitrix_user, a.name
            );
        }
        let _ = writeln!(out, "queues: {}", self.queues.len());
        for q in &self.queues {
            let strategy = match (q.strategy, q.order) {
                (Strategy::Sequential, QueueOrder::List) => "sequential",
                (Strategy::Sequential, QueueOrder::RoundRobin) => "sequential round-robin",
                (Strategy::Simultaneous, _) => "simultaneous",
            };
            let ring: Vec<String> = q.ring.iter().map(|d| show(*d)).collect();
            let agents: Vec<&str> = q.agents.iter().map(|a| a.as_str()).collect();
            let overflow = match &q.overflow {
                Overflow::Queue(name) => format!("queue {name}"),
                Overflow::Agent(id) => format!("agent {id}"),
                Overflow::Hangup(cause) => format!("hangup {cause}"),
                Overflow::Forward {
                    number,
                    agent,
                    ring,
                } => format!("forwarded to {number} for agent {agent}, {}", show(*ring)),
            };
            let _ = writeln!(
                out,
                "  {}: {strategy} [{}], ring {}, max wait {}, overflow {overflow}",
                q.name,
                agents.join(", "),
                ring.join("/"),
                show(q.max_wait)
            );
        }
        let _ = writeln!(out, "routes: {}", self.routes.len());
        for (i, r) in self.routes.iter().enumerate() {
            let _ = writeln!(out, "  [{i}] {} -> {}", matcher(r), target(&r.target));
        }
        out
    }
}

fn matcher(route: &RouteConfig) -> String {
    let dest = route.destination.as_deref().unwrap_or("any number");
    match &route.line {
        None => dest.to_owned(),
        Some(LineMatch::SocketPath(path)) => format!("{dest} on socket path {path}"),
        Some(LineMatch::Variable { name, value }) => format!("{dest} where {name}={value}"),
    }
}

fn target(target: &RouteTarget) -> String {
    match target {
        RouteTarget::Agent(id) => format!("agent {id}"),
        RouteTarget::Queue(name) => format!("queue {name}"),
        RouteTarget::Responsible {
            fallback_queue,
            ring,
        } => {
            format!(
                "CRM responsible for {}, then queue {fallback_queue}",
                show(*ring)
            )
        }
        RouteTarget::Forward {
            number,
            agent,
            ring,
        } => format!("forwarded to {number} for agent {agent}, {}", show(*ring)),
    }
}
