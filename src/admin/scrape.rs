//! One read of the running daemon through [`Sources`]: the calls on the board, the agents from
//! the queue actor, the outbox from its store, the ESL connection and the portal. Both the
//! status page and `/metrics` are rendered from it. Reads only; bounded waits.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::Sources;
use super::live::{Kind, LiveMetric};
use crate::bitrix::{LastError, PortalState};
use crate::call::board::CallView;
use crate::outbox::{MetricsSnapshot, StatusReport};
use crate::queue::{AgentStatus, Availability, Outcome};

/// Longest wait for the queue actor or the store while rendering.
const READ_LIMIT: Duration = Duration::from_secs(2);

/// What an agent is doing, for people and the `fsb24_agents` gauge.
pub(crate) const AGENT_STATES: [&str; 10] = [
    "ringing",
    "talking",
    "reserved",
    "wrap_up",
    "cooldown",
    "paused",
    "free",
    "on_call",
    "unregistered",
    "unknown",
];

/// One agent on the page.
#[derive(Debug, Clone)]
pub(crate) struct AgentView {
    /// The queue's view.
    pub status: AgentStatus,
    /// Its sofia registration.
    pub registered: bool,
    /// Channels up on its phone.
    pub live_channels: usize,
    /// One of [`AGENT_STATES`].
    pub state: &'static str,
    /// When a rest or pause ends.
    pub until: Option<Instant>,
}

/// Everything the page and the metrics show, read at one moment.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// When it was read.
    pub now: Instant,
    /// The same on the wall clock.
    pub wall: DateTime<Utc>,
    /// Since the start.
    pub uptime: Duration,
    /// Calls in progress, oldest first.
    pub calls: Vec<CallView>,
    /// Agents by name (empty if the queue actor did not answer).
    pub agents: Vec<AgentView>,
    /// The store's counts (`None` if it could not be read).
    pub outbox: Option<StatusReport>,
    /// This process's outbox counters.
    pub outbox_counts: MetricsSnapshot,
    /// Whether the portal answers.
    pub portal: PortalState,
    /// The portal's last errors, newest first.
    pub last_errors: Vec<LastError>,
    /// The inbound ESL connection is up.
    pub esl_connected: bool,
    /// Successful inbound connects since the start.
    pub esl_connects: u64,
    /// Switch events dropped.
    pub esl_dropped: u64,
    /// OAuth token refreshes.
    pub token_refreshes: u64,
    /// Calls handed back to the dialplan at `esl.max_calls`.
    pub calls_refused: u64,
}

impl Snapshot {
    /// Reads everything now.
    pub(crate) async fn read(sources: &Sources) -> Self {
        let now = Instant::now();
        let calls = sources.board.snapshot();
        let statuses = tokio::time::timeout(READ_LIMIT, sources.queue.snapshot()).await;
        let agents = match statuses {
            Ok(Ok(list)) => list
                .into_iter()
                .map(|status| agent_view(sources, status, &calls))
                .collect(),
            _ => Vec::new(),
        };
        let outbox = tokio::time::timeout(READ_LIMIT, sources.outbox.status()).await;
        let bitrix = sources.bitrix.metrics();
        Self {
            now,
            wall: Utc::now(),
            uptime: now.saturating_duration_since(sources.started),
            calls,
            agents,
            outbox: outbox.ok().and_then(Result::ok),
            outbox_counts: sources.outbox.metrics().snapshot(),
            portal: bitrix.portal(),
            last_errors: bitrix.last_errors(),
            esl_connected: sources.inbound.is_connected(),
            esl_connects: sources.inbound.connects(),
            esl_dropped: sources.inbound.events_dropped()
                + crate::esl::outbound::EVENTS_DROPPED.load(std::sync::atomic::Ordering::Relaxed),
            token_refreshes: sources.bitrix.refresh_count(),
            calls_refused: crate::esl::outbound::CALLS_REFUSED
                .load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// The values `/metrics` reads at scrape time.
    pub(crate) fn live_metrics(&self) -> Vec<LiveMetric> {
        use Kind::{Counter, Gauge};
        let o = &self.outbox_counts;
        let report = self.outbox.clone().unwrap_or_default();
        let oldest = report.oldest_pending.map_or(0.0, |t| {
            (self.wall - t).num_milliseconds().max(0) as f64 / 1000.0
        });
        let up = |s: PortalState| f64::from(u8::from(self.portal == s));
        let mut agents: Vec<(Vec<(String, String)>, f64)> = AGENT_STATES
            .iter()
            .map(|s| (vec![("state".to_owned(), (*s).to_owned())], 0.0))
            .collect();
        for agent in &self.agents {
            if let Some(i) = AGENT_STATES.iter().position(|s| *s == agent.state) {
                agents[i].1 += 1.0;
            }
        }
        let portal = ["unknown", "up", "down"]
            .iter()
            .zip([PortalState::Unknown, PortalState::Up, PortalState::Down])
            .map(|(name, s)| (vec![("state".to_owned(), (*name).to_owned())], up(s)))
            .collect();
        vec![
            LiveMetric {
                name: "fsb24_agents",
                help: "Agents by state (ringing, talking, wrap_up, cooldown, paused, free, ...)",
                kind: Gauge,
                samples: agents,
            },
            LiveMetric::single(
                "fsb24_outbox_backlog",
                "Outbox entries not yet delivered",
                Gauge,
                report.pending as f64,
            ),
            LiveMetric::single(
                "fsb24_outbox_oldest_entry_age_seconds",
                "Age of the oldest undelivered outbox entry (0 when none)",
                Gauge,
                oldest,
            ),
            LiveMetric::single(
                "fsb24_outbox_dead_letters",
                "Outbox entries given up, waiting for `fsb24 outbox retry`",
                Gauge,
                report.dead_letters.len() as f64,
            ),
            LiveMetric::single(
                "fsb24_outbox_delivered",
                "Outbox entries delivered by this process",
                Counter,
                o.delivered as f64,
            ),
            LiveMetric::single(
                "fsb24_outbox_retries",
                "Failed delivery attempts rescheduled by this process",
                Counter,
                o.retries as f64,
            ),
            LiveMetric::single(
                "fsb24_outbox_probing",
                "1 while the outbox holds its backlog and probes a portal that does not answer",
                Gauge,
                o.portal_down as f64,
            ),
            LiveMetric {
                name: "fsb24_bitrix_portal",
                help: "Whether the portal answered the last request (state unknown, up or down)",
                kind: Gauge,
                samples: portal,
            },
            LiveMetric::single(
                "fsb24_bitrix_token_refreshes",
                "OAuth access-token refreshes",
                Counter,
                self.token_refreshes as f64,
            ),
            LiveMetric::single(
                "fsb24_esl_inbound_connected",
                "1 while the inbound Event Socket connection is up",
                Gauge,
                f64::from(u8::from(self.esl_connected)),
            ),
            LiveMetric::single(
                "fsb24_esl_reconnects",
                "Inbound Event Socket reconnects (connects after the first)",
                Counter,
                self.esl_connects.saturating_sub(1) as f64,
            ),
            LiveMetric::single(
                "fsb24_esl_events_dropped",
                "Switch events lost: dropped by a full ESL queue (inbound or a call's socket), malformed, stream faults",
                Counter,
                self.esl_dropped as f64,
            ),
            LiveMetric::single(
                "fsb24_esl_calls_refused",
                "Calls handed back to the dialplan because esl.max_calls calls were running",
                Counter,
                self.calls_refused as f64,
            ),
            LiveMetric {
                name: "fsb24_recording_attach",
                help: "attachRecord outcomes (attached, missing, failed, retried)",
                kind: Counter,
                samples: [
                    ("attached", o.recordings_attached),
                    ("missing", o.recordings_missing),
                    ("failed", o.recordings_failed),
                    ("retried", o.recordings_retried),
                ]
                .into_iter()
                .map(|(k, v)| (vec![("outcome".to_owned(), k.to_owned())], v as f64))
                .collect(),
            },
        ]
    }
}

fn agent_view(sources: &Sources, status: AgentStatus, calls: &[CallView]) -> AgentView {
    let ext = status.info.extension.clone();
    let id = &status.info.agent;
    let ringing = calls.iter().any(|c| c.ringing.contains(id));
    let talking = calls.iter().any(|c| c.talking.as_ref() == Some(id));
    let (state, until) = match status.availability {
        _ if ringing => ("ringing", None),
        _ if talking => ("talking", None),
        Availability::Free => ("free", None),
        Availability::Reserved => ("reserved", None),
        Availability::Paused { until } => ("paused", Some(until)),
        Availability::Resting { until } if status.last_outcome == Some(Outcome::Answered) => {
            ("wrap_up", Some(until))
        }
        Availability::Resting { until } => ("cooldown", Some(until)),
        Availability::Unregistered => ("unregistered", None),
        Availability::OnCall => ("on_call", None),
        Availability::Unknown => ("unknown", None),
    };
    AgentView {
        registered: sources.presence.is_registered(&ext),
        live_channels: sources.presence.live_channels(&ext),
        status,
        state,
        until,
    }
}
