//! Unit tests of `call::task`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Driver tests in paused time: a fake [`Effects`] that records every effect with its instant and
//! plays a minimal switch (bridge -> execute events, uuid_kill -> bridge result, hangup -> hang-up
//! events) on the same event channel the driver reads.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::call::machine::tests::sim::{OWNER, S, agent, route, settings, started};
use crate::call::machine::{CallInfo, Strategy, Target, Transferee};
use crate::esl::HangupCause;
use crate::esl::bridge::{BridgeResult, Disposition};
use crate::esl::event::{DisconnectCause, HangupSummary};
use crate::ids::IdSequence;

/// One effect as the fake saw it.
#[derive(Debug, Clone, PartialEq)]
enum Fx {
    Vars,
    Answer,
    RingReady,
    Bridge { exec: ExecId, agents: Vec<AgentId> },
    Kill { leg: LegId, cause: Cause },
    Record,
    Hangup(Cause),
    Exit,
    Request(Pick),
    Release(AgentId, Outcome),
    Card(BitrixWrite),
    Lookup,
}

#[derive(Default)]
struct Shared {
    log: Vec<(Duration, Fx)>,
    reserved: HashSet<AgentId>,
    bridges: HashMap<LegId, ExecId>,
    refuse_bridges: usize,
    refuse_cards: bool,
}

#[derive(Clone)]
struct FakeEffects {
    t0: Instant,
    shared: Arc<Mutex<Shared>>,
    switch: mpsc::Sender<CallEvent>,
    agents: Vec<AgentInfo>,
    /// `None`: the lookup never answers.
    lookup_after: Option<Duration>,
}

impl FakeEffects {
    fn note(&self, fx: Fx) {
        let at = Instant::now() - self.t0;
        self.shared.lock().unwrap().log.push((at, fx));
    }

    fn log(&self) -> Vec<(Duration, Fx)> {
        self.shared.lock().unwrap().log.clone()
    }

    fn ok(&self, fx: Fx) -> impl Future<Output = Result<(), EffectError>> + Send {
        self.note(fx);
        async { Ok(()) }
    }

    async fn send(&self, event: CallEvent) {
        // The driver may be gone already (the call ended); that is fine for a switch.
        let _ = self.switch.send(event).await;
    }
}

fn hangup_events(cause: HangupCause, billsec: u64) -> [CallEvent; 2] {
    [
        CallEvent::Hangup {
            cause,
            sip_term_status: None,
            sip_hangup_disposition: None,
        },
        CallEvent::HangupComplete(HangupSummary {
            cause,
            sip_term_status: None,
            sip_hangup_disposition: None,
            billsec,
            billmsec: billsec * 1000,
            answered: billsec > 0,
            bridged: billsec > 0,
        }),
    ]
}

fn failed_bridge(exec: ExecId, cause: HangupCause) -> CallEvent {
    CallEvent::ExecuteCompleted {
        exec: Some(exec),
        app: "bridge".into(),
        response: None,
        bridge: Some(BridgeResult {
            disposition: Disposition::Failed(cause),
            last_bridge_hangup_cause: Some(cause),
            sip_invite_failure_status: Some(487),
            leg_causes: Vec::new(),
        }),
    }
}

impl Effects for FakeEffects {
    fn set_vars(&self, _: Vec<(String, String)>) -> impl Future<Output = Result<(), EffectError>> {
        self.ok(Fx::Vars)
    }
    fn answer(&self) -> impl Future<Output = Result<(), EffectError>> + Send {
        self.ok(Fx::Answer)
    }
    fn ring_ready(&self) -> impl Future<Output = Result<(), EffectError>> + Send {
        self.ok(Fx::RingReady)
    }
    async fn bridge(
        &self,
        exec: ExecId,
        legs: Vec<BridgeLeg>,
        _: bool,
        _: Duration,
    ) -> Result<(), EffectError> {
        let agents = legs.iter().map(|l| l.agent.clone()).collect();
        self.note(Fx::Bridge {
            exec: exec.clone(),
            agents,
        });
        {
            let mut shared = self.shared.lock().unwrap();
            if shared.refuse_bridges > 0 {
                shared.refuse_bridges -= 1;
                return Err(EffectError::Esl {
                    command: "bridge",
                    reason: "-ERR no reply".into(),
                });
            }
            for leg in &legs {
                shared.bridges.insert(leg.leg.clone(), exec.clone());
            }
        }
        let app = "bridge".to_owned();
        let exec = Some(exec);
        self.send(CallEvent::ExecuteStarted { exec, app }).await;
        Ok(())
    }
    async fn kill_leg(&self, leg: LegId, cause: Cause) -> Result<(), EffectError> {
        self.note(Fx::Kill {
            leg: leg.clone(),
            cause: cause.clone(),
        });
        let exec = self.shared.lock().unwrap().bridges.remove(&leg);
        if let Some(exec) = exec {
            let cause = cause.as_str().parse().unwrap();
            self.send(failed_bridge(exec, cause)).await;
        }
        Ok(())
    }
    fn record(&self, _: PathBuf) -> impl Future<Output = Result<(), EffectError>> + Send {
        self.ok(Fx::Record)
    }
    async fn hangup(&self, cause: Cause) -> Result<(), EffectError> {
        self.note(Fx::Hangup(cause.clone()));
        for event in hangup_events(cause.as_str().parse().unwrap(), 0) {
            self.send(event).await;
        }
        Ok(())
    }
    fn exit(&self) -> impl Future<Output = Result<(), EffectError>> + Send {
        self.ok(Fx::Exit)
    }
    async fn request_agents(&self, pick: Pick) -> Result<Vec<AgentInfo>, EffectError> {
        self.note(Fx::Request(pick.clone()));
        let mut shared = self.shared.lock().unwrap();
        let free = self.agents.iter().find(|a| {
            !shared.reserved.contains(&a.agent)
                && match &pick {
                    Pick::Queue { exclude, .. } => !exclude.contains(&a.agent),
                    Pick::Agent(wanted) => *wanted == a.agent,
                }
        });
        let offer: Vec<AgentInfo> = free.into_iter().cloned().collect();
        shared
            .reserved
            .extend(offer.iter().map(|a| a.agent.clone()));
        Ok(offer)
    }
    async fn release_agent(&self, agent: AgentId, outcome: Outcome) -> Result<(), EffectError> {
        self.note(Fx::Release(agent.clone(), outcome));
        self.shared.lock().unwrap().reserved.remove(&agent);
        Ok(())
    }
    async fn card(&self, write: BitrixWrite) -> Result<(), EffectError> {
        self.note(Fx::Card(write));
        if self.shared.lock().unwrap().refuse_cards {
            return Err(EffectError::Outbox {
                method: "telephony.externalcall.show",
                reason: "disk full".into(),
            });
        }
        Ok(())
    }
    async fn lookup(&self, _: PhoneNumber) -> Result<Option<(BitrixUserId, AgentId)>, EffectError> {
        self.note(Fx::Lookup);
        let Some(after) = self.lookup_after else {
            return std::future::pending().await;
        };
        tokio::time::sleep(after).await;
        let a = agent("a");
        Ok(Some((a.user, a.agent)))
    }
}

/// A call driven by `run` on its own task, with the fake switch on its event channel.
struct Harness {
    fx: FakeEffects,
    events: mpsc::Sender<CallEvent>,
    shutdown: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

impl Harness {
    fn start(target: Target, lookup_after: Option<Duration>, refuse_bridges: usize) -> Self {
        let (events, rx) = mpsc::channel(64);
        let t0 = Instant::now();
        let fx = FakeEffects {
            t0,
            shared: Arc::new(Mutex::new(Shared {
                refuse_bridges,
                ..Shared::default()
            })),
            switch: events.clone(),
            agents: ["a", "b", "c"].map(agent).to_vec(),
            lookup_after,
        };
        let channel = ChannelId::from("caller-uuid");
        let info = CallInfo {
            channel: channel.clone(),
            ids: IdSequence::new(1),
        };
        let call = Call::new(settings(), info);
        let shutdown = CancellationToken::new();
        let task = run(
            channel,
            call,
            started(target),
            rx,
            MapCtx::default(),
            fx.clone(),
            shutdown.clone(),
        );
        Self {
            fx,
            events,
            shutdown,
            done: tokio::spawn(task),
        }
    }

    async fn at(&self, offset: Duration) {
        tokio::time::sleep_until(self.fx.t0 + offset).await;
    }

    async fn send(&self, event: CallEvent) {
        self.events.send(event).await.unwrap();
    }

    /// Waits (failsafe-bounded) for the call task to end; returns the effect log.
    async fn finished(self) -> Vec<(Duration, Fx)> {
        tokio::time::timeout(Duration::from_secs(3600), self.done)
            .await
            .expect("the call task ends")
            .unwrap();
        self.fx.log()
    }

    fn legs(&self) -> Vec<LegId> {
        self.fx
            .shared
            .lock()
            .unwrap()
            .bridges
            .keys()
            .cloned()
            .collect()
    }
}

fn bridges(log: &[(Duration, Fx)]) -> Vec<(Duration, Vec<AgentId>)> {
    log.iter()
        .filter_map(|(at, fx)| match fx {
            Fx::Bridge { agents, .. } => Some((*at, agents.clone())),
            _ => None,
        })
        .collect()
}

fn ids(names: &[&str]) -> Vec<AgentId> {
    names.iter().map(|n| AgentId::from(*n)).collect()
}

fn finish(log: &[(Duration, Fx)]) -> Option<(Duration, crate::outbox::op::FinishCall)> {
    log.iter().find_map(|(at, fx)| match fx {
        Fx::Card(BitrixWrite::Finish(f)) => Some((*at, f.clone())),
        _ => None,
    })
}

#[tokio::test(start_paused = true)]
async fn sequential_hunt_kills_and_rings_the_next_agent_in_the_same_instant() {
    let h = Harness::start(
        Target::Queue(route("sales", Strategy::Sequential, &[10], 25)),
        None,
        0,
    );
    let log = h.finished().await;
    let rung = bridges(&log);
    assert_eq!(
        rung,
        vec![
            (Duration::ZERO, ids(&["a"])),
            (10 * S, ids(&["b"])),
            (20 * S, ids(&["c"])),
        ]
    );
    let kills: Vec<Duration> = log
        .iter()
        .filter(|(_, fx)| matches!(fx, Fx::Kill { cause, .. } if *cause == Cause::NO_ANSWER))
        .map(|(at, _)| *at)
        .collect();
    assert_eq!(kills[..2], [10 * S, 20 * S], "each step ends on time");
    let (at, f) = finish(&log).expect("a missed call is finished");
    assert_eq!((at, f.user, f.status_code.as_str()), (25 * S, OWNER, "304"));
    assert_eq!(log.last().map(|(_, fx)| fx), Some(&Fx::Exit));
}

#[tokio::test(start_paused = true)]
async fn a_caller_hangup_during_a_lookup_that_never_answers_is_handled_at_once() {
    let target = Target::Responsible {
        ring_timeout: 8 * S,
        fallback: route("sales", Strategy::Sequential, &[10], 60),
    };
    let h = Harness::start(target, None, 0);
    h.at(S).await;
    for event in hangup_events(HangupCause::OriginatorCancel, 0) {
        h.send(event).await;
    }
    let log = h.finished().await;
    assert!(
        log.iter()
            .any(|(at, fx)| *at == Duration::ZERO && *fx == Fx::Lookup)
    );
    let (at, f) = finish(&log).expect("the missed call is finished");
    assert_eq!((at, f.user), (S, OWNER), "no wait for the lookup");
    assert_eq!(log.last(), Some(&(S, Fx::Exit)));
}

#[tokio::test(start_paused = true)]
async fn a_lookup_that_never_answers_falls_back_to_the_queue_after_the_lookup_timeout() {
    let target = Target::Responsible {
        ring_timeout: 8 * S,
        fallback: route("sales", Strategy::Sequential, &[10], 60),
    };
    let h = Harness::start(target, None, 0);
    h.at(3 * S).await;
    for event in hangup_events(HangupCause::OriginatorCancel, 0) {
        h.send(event).await;
    }
    let log = h.finished().await;
    // settings(): lookup_timeout = 2 s.
    assert_eq!(bridges(&log), vec![(2 * S, ids(&["a"]))]);
}

#[tokio::test(start_paused = true)]
async fn a_lookup_answer_rings_the_responsible_manager() {
    let target = Target::Responsible {
        ring_timeout: 8 * S,
        fallback: route("sales", Strategy::Sequential, &[10], 60),
    };
    let h = Harness::start(target, Some(Duration::from_millis(500)), 0);
    h.at(3 * S).await;
    for event in hangup_events(HangupCause::OriginatorCancel, 0) {
        h.send(event).await;
    }
    let log = h.finished().await;
    let asked = log
        .iter()
        .find(|(_, fx)| matches!(fx, Fx::Request(Pick::Agent(_))));
    assert_eq!(
        asked,
        Some(&(
            Duration::from_millis(500),
            Fx::Request(Pick::Agent("a".into()))
        ))
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_while_ringing_cancels_the_leg_and_hands_the_caller_to_the_dialplan() {
    let h = Harness::start(
        Target::Queue(route("sales", Strategy::Sequential, &[10], 60)),
        None,
        0,
    );
    h.at(4 * S).await;
    let legs = h.legs();
    h.shutdown.cancel();
    let log = h.finished().await;
    let after: Vec<&Fx> = log
        .iter()
        .filter(|(at, _)| *at == 4 * S)
        .map(|(_, fx)| fx)
        .collect();
    assert!(
        after
            .iter()
            .any(|fx| matches!(fx, Fx::Kill { leg, .. } if legs.contains(leg)))
    );
    // Not hung up and not finished: the dialplan's fallback takes the caller, the next run
    // finishes the call.
    assert!(!after.iter().any(|fx| matches!(fx, Fx::Hangup(_))));
    assert!(finish(&log).is_none());
    assert_eq!(log.last(), Some(&(4 * S, Fx::Exit)));
    assert_eq!(bridges(&log).len(), 1, "nobody new is rung");
}

#[tokio::test(start_paused = true)]
async fn a_session_lost_mid_call_still_finishes_the_card() {
    let h = Harness::start(
        Target::Queue(route("sales", Strategy::Sequential, &[10], 60)),
        None,
        0,
    );
    h.at(2 * S).await;
    h.send(CallEvent::Answered).await;
    let leg = h.legs().pop().unwrap();
    let other = Some(ChannelId::from(leg.as_str()));
    h.send(CallEvent::Bridged {
        other,
        other_number: None,
    })
    .await;
    h.at(32 * S).await;
    let reason = DisconnectCause::ConnectionClosed;
    h.send(CallEvent::Disconnected { reason }).await;
    let log = h.finished().await;
    let (at, f) = finish(&log).expect("the card is finished");
    assert_eq!((at, f.user, f.duration_secs), (32 * S, agent("a").user, 30));
    assert_eq!(f.status_code, "200");
}

#[tokio::test(start_paused = true)]
async fn a_refused_bridge_command_moves_the_hunt_to_the_next_agent() {
    let h = Harness::start(
        Target::Queue(route("sales", Strategy::Sequential, &[10], 15)),
        None,
        1,
    );
    let log = h.finished().await;
    let rung = bridges(&log);
    assert_eq!(
        rung[..2],
        [(Duration::ZERO, ids(&["a"])), (Duration::ZERO, ids(&["b"]))]
    );
    assert!(log.contains(&(
        Duration::ZERO,
        Fx::Release("a".into(), Outcome::Unreachable)
    )));
}

#[tokio::test(start_paused = true)]
async fn cards_the_outbox_refuses_do_not_stop_the_call() {
    let h = Harness::start(
        Target::Queue(route("sales", Strategy::Sequential, &[10], 15)),
        None,
        0,
    );
    h.fx.shared.lock().unwrap().refuse_cards = true;
    let log = h.finished().await;
    assert_eq!(
        bridges(&log),
        vec![(Duration::ZERO, ids(&["a"])), (10 * S, ids(&["b"]))]
    );
    assert!(finish(&log).is_some_and(|(at, _)| at == 15 * S));
    assert_eq!(log.last(), Some(&(15 * S, Fx::Exit)));
}

#[test]
fn bridge_results_keep_only_the_phones_own_sip_status() {
    let ctx = MapCtx::default();
    let exec = ExecId::from("e1");
    let mut event = failed_bridge(exec.clone(), HangupCause::UserBusy);
    let cancelled = to_input(event.clone(), &ctx);
    assert_eq!(
        cancelled,
        Some(Input::BridgeEnded {
            exec: exec.clone(),
            outcome: BridgeOutcome::Failed {
                cause: Cause::USER_BUSY,
                sip_status: None
            }
        }),
        "487 is our own CANCEL"
    );
    if let CallEvent::ExecuteCompleted {
        bridge: Some(r), ..
    } = &mut event
    {
        r.sip_invite_failure_status = Some(486);
    }
    let Some(Input::BridgeEnded {
        outcome: BridgeOutcome::Failed { sip_status, .. },
        ..
    }) = to_input(event, &ctx)
    else {
        panic!("a bridge result")
    };
    assert_eq!(sip_status, Some(crate::call::status::SipStatus(486)));
}

#[test]
fn transfers_name_our_agents_and_foreign_events_map_to_nothing() {
    let transferee = Transferee {
        agent: Some("b".into()),
        user: BitrixUserId(2),
    };
    let ctx = MapCtx {
        extensions: Arc::new(HashMap::from([("1002".to_owned(), transferee.clone())])),
    };
    let to = |d: &str| CallEvent::Transferred {
        destination: Some(d.into()),
    };
    assert_eq!(
        to_input(to("1002"), &ctx),
        Some(Input::Transferred {
            to: Some(transferee)
        })
    );
    assert_eq!(
        to_input(to("+4930999"), &ctx),
        Some(Input::Transferred { to: None })
    );
    let not_ours = CallEvent::ExecuteStarted {
        exec: None,
        app: "bridge".into(),
    };
    assert_eq!(to_input(not_ours, &ctx), None);
    assert_eq!(to_input(CallEvent::Answered, &ctx), None);
}

#[tokio::test(start_paused = true)]
async fn the_call_is_stored_in_the_outbox_before_its_first_agent_rings() {
    use crate::outbox::op::CallNote;
    let h = Harness::start(
        Target::Queue(route("sales", Strategy::Sequential, &[10], 25)),
        None,
        0,
    );
    let log = h.finished().await;
    let position = |pred: &dyn Fn(&Fx) -> bool| log.iter().position(|(_, fx)| pred(fx));
    let accepted = position(&|fx| matches!(fx, Fx::Card(BitrixWrite::Note(CallNote::Accepted(_)))))
        .expect("an accepted note");
    let first_ring = position(&|fx| matches!(fx, Fx::Bridge { .. })).expect("a bridge");
    assert!(
        accepted < first_ring,
        "a kill between the first ring and the store would lose the call: {log:?}"
    );
}
