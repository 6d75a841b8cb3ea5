//! Calls in progress as operators see them, and the call metrics. Each call task keeps its own
//! [`BoardEntry`] up to date from the inputs and actions it handles; the admin side reads a
//! [`Board::snapshot`]. Cheap on the call path: a short std mutex per update, never held across
//! an await, no IO, no allocation unless something visible changed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use tokio::time::Instant;

use crate::call::machine::{Action, BridgeOutcome, Input};
use crate::ids::{AgentId, BitrixUserId, ChannelId, ExecId, LegId};
use crate::outbox::op::BitrixWrite;

/// Where a call stands, for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// In a queue, nobody ringing (between steps, or nobody free).
    Waiting,
    /// Agents' phones ring.
    Ringing,
    /// Someone talks with the caller.
    Talking,
    /// The caller hung up; the call is being finished (recording, cards).
    Ending,
}

impl Phase {
    /// Lower-case name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Ringing => "ringing",
            Self::Talking => "talking",
            Self::Ending => "ending",
        }
    }
}

/// How a call arrived: fixed for its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Arrived {
    /// The switch channel.
    pub channel: ChannelId,
    /// The caller's number as the switch gave it.
    pub caller: String,
    /// The dialled number.
    pub destination: String,
    /// The route that took it (label).
    pub route: String,
    /// The queue it went to first, if any.
    pub queue: Option<String>,
}

/// One call in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallView {
    /// How it arrived.
    pub arrived: Arrived,
    /// Wall-clock start.
    pub started_at: DateTime<Utc>,
    /// Start on the runtime clock.
    pub since: Instant,
    /// Where it stands.
    pub phase: Phase,
    /// Since when it stands there.
    pub phase_since: Instant,
    /// Agents whose phone rings for it now.
    pub ringing: Vec<AgentId>,
    /// Who talks with the caller, if anyone we know.
    pub talking: Option<AgentId>,
    /// Bitrix24 users whose card is open, with since when.
    pub cards: Vec<(BitrixUserId, Instant)>,
}

/// The call metrics (registered by [`CallMetrics::register`]).
#[derive(Debug, Clone)]
pub(crate) struct CallMetrics {
    calls: Family<[(&'static str, String); 3], Counter>,
    in_progress: Gauge,
    ring_step: Histogram,
    hand_over: Histogram,
}

impl Default for CallMetrics {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            in_progress: Gauge::default(),
            // 0.5 s .. ~4 min: a ring step is seconds long.
            ring_step: Histogram::new(exponential_buckets(0.5, 2.0, 10)),
            // 1 ms .. ~4 s: a hand-over is a switch tick or two.
            hand_over: Histogram::new(exponential_buckets(0.001, 2.0, 13)),
        }
    }
}

impl CallMetrics {
    /// Adds the call metrics to `registry`.
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "fsb24_calls",
            "Calls ended, by route, first queue and outcome (answered, missed, abandoned, failed, unfinished)",
            self.calls.clone(),
        );
        registry.register(
            "fsb24_calls_in_progress",
            "Calls fsb24 is handling now",
            self.in_progress.clone(),
        );
        registry.register_with_unit(
            "fsb24_ring_step",
            "How long agents' phones rang in one ring step (from the switch's ring start to answer or step end)",
            Unit::Seconds,
            self.ring_step.clone(),
        );
        registry.register_with_unit(
            "fsb24_hand_over",
            "Gap between one ring step's end and the next step's ring start within a call",
            Unit::Seconds,
            self.hand_over.clone(),
        );
    }
}

#[derive(Debug, Default)]
struct Inner {
    calls: HashMap<ChannelId, CallView>,
}

/// Every call in progress. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Board {
    inner: Arc<Mutex<Inner>>,
    metrics: CallMetrics,
}

impl Board {
    /// The metrics this board keeps.
    pub(crate) fn metrics(&self) -> &CallMetrics {
        &self.metrics
    }

    /// Every call in progress, oldest first.
    pub(crate) fn snapshot(&self) -> Vec<CallView> {
        let mut calls: Vec<CallView> = self.lock().calls.values().cloned().collect();
        calls.sort_by_key(|c| c.since);
        calls
    }

    /// Puts a new call on the board; the entry takes it off when dropped.
    pub(crate) fn enter(&self, arrived: Arrived, now: Instant) -> BoardEntry {
        let view = CallView {
            arrived: arrived.clone(),
            started_at: Utc::now(),
            since: now,
            phase: Phase::Waiting,
            phase_since: now,
            ringing: Vec::new(),
            talking: None,
            cards: Vec::new(),
        };
        self.lock().calls.insert(arrived.channel.clone(), view);
        self.metrics.in_progress.inc();
        BoardEntry {
            board: Some(self.clone()),
            channel: arrived.channel.clone(),
            labels: [
                ("route", arrived.route),
                ("queue", arrived.queue.unwrap_or_default()),
            ],
            execs: HashMap::new(),
            legs: HashMap::new(),
            ring_started: None,
            ring_ended: None,
            outcome: None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned board only means a panic mid-update; the map itself is intact.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One call's place on the board, owned by its task.
#[derive(Debug)]
pub(crate) struct BoardEntry {
    board: Option<Board>,
    channel: ChannelId,
    labels: [(&'static str, String); 2],
    execs: HashMap<ExecId, Vec<(LegId, AgentId)>>,
    legs: HashMap<LegId, AgentId>,
    ring_started: Option<Instant>,
    ring_ended: Option<Instant>,
    outcome: Option<&'static str>,
}

impl BoardEntry {
    /// An entry on no board (tests, calls nobody watches).
    pub(crate) fn detached() -> Self {
        Self {
            board: None,
            channel: ChannelId::new(""),
            labels: [("route", String::new()), ("queue", String::new())],
            execs: HashMap::new(),
            legs: HashMap::new(),
            ring_started: None,
            ring_ended: None,
            outcome: None,
        }
    }

    /// Notes what an input says about the call, before the machine handles it.
    pub(crate) fn on_input(&mut self, input: &Input, now: Instant) {
        let Some(board) = self.board.clone() else {
            return;
        };
        match input {
            Input::BridgeStarted { exec } => {
                let agents: Vec<AgentId> = self
                    .execs
                    .get(exec)
                    .map(|legs| legs.iter().map(|(_, a)| a.clone()).collect())
                    .unwrap_or_default();
                if let Some(ended) = self.ring_ended.take() {
                    board.metrics.hand_over.observe(secs(now - ended));
                }
                self.ring_started = Some(now);
                self.update(|v| {
                    v.ringing = agents;
                    set_phase(v, Phase::Ringing, now);
                });
            }
            Input::LegAnswered { leg } => {
                self.end_ring(now, false);
                let agent = self.legs.get(leg).cloned();
                self.update(|v| {
                    v.ringing.clear();
                    v.talking = agent;
                    set_phase(v, Phase::Talking, now);
                });
            }
            Input::BridgeEnded {
                outcome: BridgeOutcome::Failed { .. },
                ..
            } => {
                self.end_ring(now, true);
                self.update(|v| {
                    v.ringing.clear();
                    if v.phase == Phase::Ringing {
                        set_phase(v, Phase::Waiting, now);
                    }
                });
            }
            Input::Transferred { to: Some(to) } => {
                let agent = to.agent.clone();
                self.update(|v| v.talking = agent);
            }
            Input::CallerHungUp { .. } | Input::HangupComplete { .. } => {
                self.end_ring(now, false);
                self.update(|v| {
                    v.ringing.clear();
                    if v.phase != Phase::Ending {
                        set_phase(v, Phase::Ending, now);
                    }
                });
            }
            _ => {}
        }
    }

    /// Notes what the machine decided, and whose card is open after it.
    pub(crate) fn on_actions(&mut self, actions: &[Action], cards: &[BitrixUserId], now: Instant) {
        if self.board.is_none() {
            return;
        }
        for action in actions {
            match action {
                Action::Bridge { exec, legs, .. } => {
                    let legs: Vec<(LegId, AgentId)> = legs
                        .iter()
                        .map(|l| (l.leg.clone(), l.agent.clone()))
                        .collect();
                    for (leg, agent) in &legs {
                        self.legs.insert(leg.clone(), agent.clone());
                    }
                    self.execs.insert(exec.clone(), legs);
                }
                Action::Card(BitrixWrite::Finish(finish)) => {
                    self.outcome = Some(outcome(&finish.status_code));
                }
                _ => {}
            }
        }
        self.update(|v| {
            let same =
                v.cards.len() == cards.len() && v.cards.iter().zip(cards).all(|((a, _), b)| a == b);
            if !same {
                let old = std::mem::take(&mut v.cards);
                v.cards = cards
                    .iter()
                    .map(|u| {
                        let since = old.iter().find(|(o, _)| o == u).map_or(now, |(_, s)| *s);
                        (*u, since)
                    })
                    .collect();
            }
        });
    }

    fn end_ring(&mut self, now: Instant, failed: bool) {
        if let (Some(started), Some(board)) = (self.ring_started.take(), &self.board) {
            board.metrics.ring_step.observe(secs(now - started));
            if failed {
                self.ring_ended = Some(now);
            }
        }
    }

    fn update(&self, f: impl FnOnce(&mut CallView)) {
        if let Some(board) = &self.board
            && let Some(view) = board.lock().calls.get_mut(&self.channel)
        {
            f(view);
        }
    }
}

impl Drop for BoardEntry {
    fn drop(&mut self) {
        let Some(board) = self.board.take() else {
            return;
        };
        board.lock().calls.remove(&self.channel);
        board.metrics.in_progress.dec();
        let [route, queue] = self.labels.clone();
        let outcome = ("outcome", self.outcome.unwrap_or("unfinished").to_owned());
        board
            .metrics
            .calls
            .get_or_create(&[route, queue, outcome])
            .inc();
    }
}

fn set_phase(view: &mut CallView, phase: Phase, now: Instant) {
    view.phase = phase;
    view.phase_since = now;
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The outcome label of a finished call, from its Bitrix24 `STATUS_CODE`.
fn outcome(status_code: &str) -> &'static str {
    match status_code {
        "200" => "answered",
        "304" => "missed",
        "603-S" => "abandoned",
        _ => "failed",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::call::machine::BridgeLeg;
    use crate::call::status::Cause;

    fn bridge(agent: &str) -> (ExecId, Action) {
        let exec = ExecId::random();
        let leg = BridgeLeg {
            agent: AgentId::new(agent),
            leg: LegId::random(),
            extension: agent.to_owned(),
            external: None,
        };
        let action = Action::Bridge {
            exec: exec.clone(),
            legs: vec![leg],
            simultaneous: false,
            leg_timeout: Duration::from_secs(3),
        };
        (exec, action)
    }

    fn encoded(board: &Board) -> String {
        let mut registry = Registry::default();
        board.metrics().register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        text
    }

    #[tokio::test(start_paused = true)]
    async fn ring_steps_and_the_hand_over_between_them_are_timed_and_the_call_counted() {
        let board = Board::default();
        let t0 = Instant::now();
        let arrived = Arrived {
            channel: ChannelId::new("c1"),
            caller: "+4930123".into(),
            destination: "9100".into(),
            route: "9100".into(),
            queue: Some("sales".into()),
        };
        let mut entry = board.enter(arrived, t0);
        let (first, ring_a) = bridge("1001");
        entry.on_actions(&[ring_a], &[BitrixUserId(11)], t0);
        entry.on_input(
            &Input::BridgeStarted {
                exec: first.clone(),
            },
            t0,
        );
        assert_eq!(board.snapshot()[0].ringing, [AgentId::new("1001")]);
        let failed = BridgeOutcome::Failed {
            cause: Cause::NO_ANSWER,
            sip_status: None,
        };
        let t3 = t0 + Duration::from_secs(3);
        let ended = Input::BridgeEnded {
            exec: first,
            outcome: failed,
        };
        entry.on_input(&ended, t3);
        assert_eq!(board.snapshot()[0].phase, Phase::Waiting);
        let (second, ring_b) = bridge("1002");
        let t4 = t3 + Duration::from_millis(500);
        entry.on_actions(&[ring_b], &[BitrixUserId(12)], t4);
        entry.on_input(&Input::BridgeStarted { exec: second }, t4);
        let view = &board.snapshot()[0];
        assert_eq!(
            (view.phase, view.cards.clone()),
            (Phase::Ringing, vec![(BitrixUserId(12), t4)])
        );
        drop(entry);
        assert!(board.snapshot().is_empty());
        let text = encoded(&board);
        assert!(text.contains("fsb24_ring_step_seconds_sum 3.0\n"), "{text}");
        assert!(text.contains("fsb24_hand_over_seconds_sum 0.5\n"), "{text}");
        assert!(
            text.contains(
                "fsb24_calls_total{route=\"9100\",queue=\"sales\",outcome=\"unfinished\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("fsb24_calls_in_progress 0"), "{text}");
    }
}
