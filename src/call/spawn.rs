//! One constructor for a call: route the session FreeSWITCH handed over against a config
//! version, put the call on the board and run its task. Never blocks the caller (the accept
//! loop): a call handed back exits in a task of its own, and a call that arrives before the
//! first presence snapshot waits for it in its own task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info_span, warn};

use crate::bitrix::CallType;
use crate::call::board::{Arrived, Board, BoardEntry};
use crate::call::effects::{CallEffects, CallServices};
use crate::call::machine::{AgentCards, Call, CallInfo, Input, Target, Transferee};
use crate::call::outgoing::{self, OutgoingSession, Plan};
use crate::call::route::{self, Arrival};
use crate::call::task::{self, MapCtx};
use crate::call::{callback, click, forward};
use crate::config::{Config, LineMatch, RouteConfig};
use crate::esl::command::Extension;
use crate::esl::{ChannelInfo, IncomingCall};
use crate::ids::{AgentId, BitrixUserId, IdSequence, LegId};
use crate::outbox;

/// Longest a call waits for the first presence snapshot after start-up.
const FIRST_PRESENCE_WAIT: Duration = Duration::from_secs(2);

/// A config version with the lookups calls need, built once per version (a SIGHUP makes a new
/// one; calls in progress keep theirs).
#[derive(Debug, Clone)]
pub(crate) struct CallConfig {
    /// The config.
    pub(crate) config: Arc<Config>,
    /// Extension -> who is behind it (transfer destinations).
    extensions: Arc<HashMap<String, Transferee>>,
    /// Bitrix24 user -> agent (responsible-manager routing).
    agents_by_user: Arc<HashMap<BitrixUserId, AgentId>>,
    /// Bitrix24 user -> the extension click-to-call rings for them.
    click_agents: Arc<HashMap<BitrixUserId, Extension>>,
    /// Each agent's own card mode, shared by every call of this version.
    agent_cards: AgentCards,
}

impl CallConfig {
    /// Builds the lookups of `config`.
    pub(crate) fn new(config: Arc<Config>) -> Self {
        let extensions = config
            .agents
            .iter()
            .map(|a| {
                let who = Transferee {
                    agent: Some(a.id.clone()),
                    user: a.bitrix_user,
                };
                (a.extension.as_str().to_owned(), who)
            })
            .collect();
        let agents_by_user = config
            .agents
            .iter()
            .map(|a| (a.bitrix_user, a.id.clone()))
            .collect();
        let click_agents = click::agents_by_user(&config.agents);
        let agent_cards = route::agent_cards(&config);
        Self {
            config,
            extensions: Arc::new(extensions),
            agents_by_user: Arc::new(agents_by_user),
            click_agents: Arc::new(click_agents),
            agent_cards,
        }
    }

    /// The extension click-to-call rings for `user` (the user's first agent).
    pub(crate) fn click_extension(&self, user: BitrixUserId) -> Option<&Extension> {
        self.click_agents.get(&user)
    }
}

/// The config versions as they come (SIGHUP), each with its [`CallConfig`] built once and
/// shared by everyone who asks: the call dispatcher and click-to-call see the same lookups.
#[derive(Debug, Clone)]
pub struct CallConfigs {
    updates: watch::Receiver<Arc<Config>>,
    current: Arc<Mutex<CallConfig>>,
}

impl CallConfigs {
    /// Follows `updates`, starting from its current version.
    pub fn new(updates: watch::Receiver<Arc<Config>>) -> Self {
        let first = CallConfig::new(Arc::clone(&updates.borrow()));
        Self {
            updates,
            current: Arc::new(Mutex::new(first)),
        }
    }

    /// The lookups of the config current now; built on the first ask after a reload.
    pub(crate) fn current(&self) -> CallConfig {
        let config = Arc::clone(&self.updates.borrow());
        // Nothing panics while the lock is held; a poisoned one still holds a whole CallConfig.
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if !Arc::ptr_eq(&current.config, &config) {
            *current = CallConfig::new(config);
        }
        current.clone()
    }
}

/// What every call runs with, whatever the config version.
#[derive(Clone)]
pub(crate) struct Services {
    /// Queue, outbox, Bitrix24 client, dialer.
    pub(crate) calls: CallServices,
    /// Calls in progress as operators see them.
    pub(crate) board: Board,
    /// Presence snapshots taken so far (0 until the first).
    pub(crate) resyncs: watch::Receiver<u64>,
    /// The call side's shutdown.
    pub(crate) token: CancellationToken,
    /// The call side's tasks.
    pub(crate) tracker: TaskTracker,
}

/// Routes `incoming` with `config` and runs the call in a task of its own; a call no route
/// matches is handed back to the dialplan. Returns at once.
pub(crate) fn spawn(incoming: IncomingCall, config: &CallConfig, services: &Services) {
    if let Some(plan) = placed(&config.config, &incoming.info) {
        spawn_placed(incoming, plan, services);
        return;
    }
    let IncomingCall {
        info,
        session,
        events,
    } = incoming;
    let arrival = arrival_of(&info);
    let resolved = route::resolve_callback(&config.config, &config.agent_cards, &arrival)
        .or_else(|| route::resolve(&config.config, &config.agent_cards, &arrival));
    let Some(resolved) = resolved else {
        // Not ours: hand the call back. The socket closes before any bridge, so the dialplan
        // continues after `socket` and runs its fallback (esl-protocol.md §5.6).
        warn!(channel = %info.channel, destination = arrival.destination, "no route matches; call handed back");
        services.tracker.spawn(async move {
            if let Err(e) = session.exit().await {
                warn!(
                    error = &e as &dyn std::error::Error,
                    "exit after no route failed"
                );
            }
        });
        return;
    };
    let channel = info.channel.clone();
    let arrived = Arrived {
        channel: channel.clone(),
        caller: arrival.caller_number.to_owned(),
        destination: arrival.destination.to_owned(),
        route: resolved
            .route
            .and_then(|i| config.config.routes.get(i))
            .map_or_else(|| "callback".to_owned(), route_label),
        queue: first_queue(&resolved.start),
    };
    let now = tokio::time::Instant::now();
    let entry = services.board.enter(arrived, now);
    let call = Call::new(
        resolved.settings,
        CallInfo {
            channel: channel.clone(),
            ids: IdSequence::random(),
        },
    );
    let call_key = outbox::external_call_id(&channel, 0);
    let fx = CallEffects::new(
        session,
        call_key,
        services.calls.clone(),
        Arc::clone(&config.agents_by_user),
    );
    let ctx = MapCtx {
        extensions: Arc::clone(&config.extensions),
    };
    let resyncs = services.resyncs.clone();
    let token = services.token.child_token();
    let span = info_span!("dispatch", channel = %channel);
    services.tracker.spawn(
        async move {
            first_presence(resyncs).await;
            task::run_on_board(channel, call, resolved.start, events, ctx, fx, token, entry).await;
        }
        .instrument(span),
    );
}

/// What routing knows about a new channel.
fn arrival_of(info: &ChannelInfo) -> Arrival<'_> {
    Arrival {
        destination: info.destination_number.as_deref().unwrap_or_default(),
        socket_path: info.socket_path.as_deref(),
        variables: &info.variables,
        caller_number: info.caller_id_number.as_deref().unwrap_or_default(),
        created_at: info.created_at,
    }
}

/// The plan of a call fsb24 places on one external leg: an outgoing call the dialplan handed
/// over as `fsb24_call=outgoing`, or a call its route forwards. `None` for a call routed to
/// agents (a callback's customer leg included: it goes to the callback queue, never forwarded).
fn placed(config: &Config, info: &ChannelInfo) -> Option<Plan> {
    let leg = LegId::random();
    if outgoing::is_outgoing(info) {
        Some(outgoing::plan(config, info, leg))
    } else if callback::vars::is_marked(&info.variables) {
        None
    } else {
        route::matching(config, &arrival_of(info)).and_then(|r| forward::plan(config, r, info, leg))
    }
}

/// Runs a placed call ([`placed`]) in its own task.
fn spawn_placed(incoming: IncomingCall, plan: Plan, services: &Services) {
    let IncomingCall {
        info,
        session,
        events,
    } = incoming;
    let route = match &plan {
        Plan::Place(p) if p.register.call_type == CallType::IncomingRedirected => "forwarded",
        _ => "outgoing",
    };
    let arrived = Arrived {
        channel: info.channel.clone(),
        caller: info.caller_id_number.clone().unwrap_or_default(),
        destination: info.destination_number.clone().unwrap_or_default(),
        route: route.to_owned(),
        queue: None,
    };
    // A call handed back is the dialplan's, as an unrouted inbound call is: not on the board.
    let entry = if matches!(plan, Plan::HandBack(_)) {
        BoardEntry::detached()
    } else {
        services.board.enter(arrived, tokio::time::Instant::now())
    };
    let call = OutgoingSession {
        board: entry,
        session,
        events,
        key: outbox::external_call_id(&info.channel, 0),
        outbox: services.calls.outbox.clone(),
    };
    services
        .tracker
        .spawn(outgoing::run(call, plan, services.token.child_token()));
}

/// Until the first presence snapshot every agent looks unregistered and queues would skip
/// them; a call arriving right after start-up waits for it (bounded). Without this wait agents
/// were skipped (pinned by call_queue::a_simultaneous_queue_*).
async fn first_presence(mut resyncs: watch::Receiver<u64>) {
    if *resyncs.borrow() > 0 {
        return;
    }
    let first = resyncs.wait_for(|n| *n > 0);
    if tokio::time::timeout(FIRST_PRESENCE_WAIT, first)
        .await
        .is_err()
    {
        warn!("no presence snapshot yet; routing with unknown registrations");
    }
}

/// A route as operators read it: its number (or `any`) and line.
fn route_label(route: &RouteConfig) -> String {
    let number = route.destination.as_deref().unwrap_or("any");
    match &route.line {
        None => number.to_owned(),
        Some(LineMatch::SocketPath(path)) => format!("{number} on {path}"),
        Some(LineMatch::Variable { name, value }) => {
            format!("{number} where {name}={value}")
        }
    }
}

/// The queue a call starts in, if any.
fn first_queue(start: &Input) -> Option<String> {
    match start {
        Input::Started {
            target: Target::Queue(q),
            ..
        }
        | Input::Started {
            target: Target::Responsible { fallback: q, .. },
            ..
        } => Some(q.queue.to_string()),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    // Regression: the user -> agent map was built once at start, so agents added by a SIGHUP
    // were never found as a caller's responsible manager. Each config version has its own.
    #[test]
    fn each_config_version_has_its_own_lookups() {
        let text = include_str!("../../tests/fixtures/config/valid/simultaneous_lines.toml");
        let first = CallConfig::new(Arc::new(Config::from_toml_str(text).unwrap()));
        let renamed = text.replace("extension = \"1002\"", "extension = \"1009\"");
        let second = CallConfig::new(Arc::new(Config::from_toml_str(&renamed).unwrap()));
        assert!(first.extensions.contains_key("1002"));
        assert!(!second.extensions.contains_key("1002"));
        assert!(second.extensions.contains_key("1009"));
        for config in [&first, &second] {
            for agent in &config.config.agents {
                assert_eq!(
                    config.agents_by_user.get(&agent.bitrix_user),
                    Some(&agent.id)
                );
            }
        }
    }

    // Regression: click-to-call built its user -> extension map once at start, so an agent a
    // SIGHUP added (or moved) was rung at the old extension or not at all. It now asks the same
    // per-version lookups as the dispatcher, built once per version.
    #[test]
    fn click_to_call_follows_the_config_versions_with_one_lookup_each() {
        let text = include_str!("../../tests/fixtures/config/valid/simultaneous_lines.toml");
        let config = Config::from_toml_str(text).unwrap();
        let agent = config.agents[1].clone();
        let (tx, rx) = watch::channel(Arc::new(config));
        let configs = CallConfigs::new(rx);
        let click_side = configs.clone();
        let before = configs.current();
        assert_eq!(
            before
                .click_extension(agent.bitrix_user)
                .map(Extension::as_str),
            Some(agent.extension.as_str())
        );
        // One version, one build: both sides share it.
        assert!(Arc::ptr_eq(
            &before.click_agents,
            &click_side.current().click_agents
        ));

        let old = format!("extension = \"{}\"", agent.extension);
        let renamed = text.replace(&old, "extension = \"1009\"");
        assert_ne!(renamed, text);
        tx.send(Arc::new(Config::from_toml_str(&renamed).unwrap()))
            .unwrap();
        let after = click_side.current();
        assert_eq!(
            after
                .click_extension(agent.bitrix_user)
                .map(Extension::as_str),
            Some("1009")
        );
        assert!(Arc::ptr_eq(
            &after.click_agents,
            &configs.current().click_agents
        ));
        assert!(!Arc::ptr_eq(&after.click_agents, &before.click_agents));
    }
}
