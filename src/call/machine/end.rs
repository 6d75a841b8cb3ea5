//! The end of a call: the conversation, transfers, recording, hang-up, the final `finish` (after
//! hiding every other card) and `attachRecord`, a late recording, deadlines and shutdown.

use std::path::PathBuf;
use std::time::Duration;

use chrono::DateTime;
use tokio::time::Instant;

use crate::call::status::{Cause, Direction, finish_status};
use crate::ids::BitrixUserId;
use crate::outbox::op::{BitrixWrite, CallNote, FinishCall};
use crate::queue::Outcome;
use crate::recording::{PathTemplate, RecordingVars};

use super::{Action, Call, Caller, CardMode, OwnerStep, State, Transferee};

/// The recording of this call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RecordingState {
    Off,
    /// We asked for it; no `RECORD_START` yet.
    Requested,
    /// Being written.
    Started(PathBuf),
    /// Complete.
    Stopped(PathBuf),
}

/// How the caller's side ended: the cause, and whether they gave up before anybody answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CallerLeft {
    cause: Cause,
    gave_up: bool,
}

/// How long after the caller's hang-up a recording may take to close before every card is hidden.
/// FreeSWITCH closes the file before it reports the hang-up complete, so a slow file holds back
/// both; the finish then waits for them, the cards do not.
const RECORD_GRACE: Duration = Duration::from_millis(500);

/// A `finish` held back until the recording is complete (or `until` passes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PendingFinish {
    finish: FinishCall,
    pub(super) until: Instant,
}

impl Call {
    pub(super) fn start_recording(&mut self, out: &mut Vec<Action>) {
        let Some(settings) = &self.settings.recording else {
            return;
        };
        if self.recording != RecordingState::Off {
            return;
        }
        let path = self.render_path(&settings.path_template);
        self.recording = RecordingState::Requested;
        // Stored before the switch is asked (the driver flushes card writes first), so that a
        // run killed mid-call still knows which file to attach.
        out.push(Action::Card(BitrixWrite::Note(CallNote::Recording {
            path: path.clone(),
        })));
        out.push(Action::StartRecording { path });
    }

    fn render_path(&self, template: &PathTemplate) -> PathBuf {
        let caller = match self.meta.as_ref().map(|m| &m.caller) {
            Some(Caller::Number(number)) => number.to_string(),
            _ => "anonymous".to_owned(),
        };
        let agent = self
            .talk
            .as_ref()
            .and_then(|t| t.agent.as_ref())
            .map(|a| a.to_string())
            .unwrap_or_default();
        template.render(&RecordingVars {
            call: self.info.channel.as_str(),
            started_at: self
                .meta
                .as_ref()
                .map_or(DateTime::UNIX_EPOCH.fixed_offset(), |m| m.started_at),
            caller: &caller,
            destination: self
                .meta
                .as_ref()
                .and_then(|m| m.line.as_deref())
                .unwrap_or_default(),
            agent: &agent,
        })
    }

    /// Our bridge returned after a conversation: the agent side is gone.
    pub(super) fn talk_ended(&mut self, exec: &crate::ids::ExecId, out: &mut Vec<Action>) {
        // After a transfer the switch owns the conversation; only the caller's hang-up ends it.
        let ours = self
            .talk
            .as_ref()
            .is_some_and(|t| t.exec == *exec && !t.transferred);
        if ours {
            out.push(Action::HangupCaller {
                cause: Cause::NORMAL_CLEARING,
            });
            self.state = State::Closing;
        }
    }

    pub(super) fn transferred(&mut self, to: Option<Transferee>, out: &mut Vec<Action>) {
        let Some(talk) = &mut self.talk else {
            tracing::debug!("transfer before an answer; ignored");
            return;
        };
        talk.transferred = true;
        let Some(to) = to else { return };
        let old = talk.user;
        if talk.reserved
            && let Some(agent) = &talk.agent
        {
            out.push(Action::ReleaseAgent {
                agent: agent.clone(),
                outcome: Outcome::Answered,
            });
        }
        talk.reserved = false;
        talk.agent = to.agent.clone();
        talk.user = to.user;
        if old != to.user {
            let mode = self.card_mode(to.agent.as_ref(), CardMode::Ringing);
            self.cards.close(&[old], out);
            self.card_for_talker(to.user, mode, out);
            out.push(Action::Card(BitrixWrite::Note(CallNote::Answered {
                user: to.user,
                at: None,
            })));
        }
    }

    pub(super) fn record_stopped(&mut self, path: PathBuf, out: &mut Vec<Action>) {
        self.recording = RecordingState::Stopped(path.clone());
        if let State::HungUp { finish, .. } = &mut self.state
            && let Some(pending) = finish.take()
        {
            self.emit_finish(pending.finish, Some(path), true, out);
        }
    }

    pub(super) fn caller_hung_up(&mut self, now: Instant, cause: Cause, out: &mut Vec<Action>) {
        let gave_up = match &self.state {
            State::Finished | State::HungUp { .. } => return,
            State::Idle | State::LookingUp { .. } | State::Hunting { .. } => true,
            State::Talking | State::Closing => false,
        };
        self.cancel_ringing(out);
        self.release_talker(out);
        tracing::info!(cause = %cause, "caller hung up");
        // Regression (call_cases late recording): with a slow file the cards stayed open until
        // the file was ready; they close after RECORD_GRACE, the finish still waits.
        let recording = matches!(
            self.recording,
            RecordingState::Started(_) | RecordingState::Requested
        );
        let hide_at = (self.talk.is_some() && recording).then(|| now + RECORD_GRACE);
        self.state = State::HungUp {
            finish: None,
            hide_at,
            caller: CallerLeft { cause, gave_up },
        };
    }

    pub(super) fn hangup_complete(
        &mut self,
        now: Instant,
        billsec: u32,
        cause: Cause,
        out: &mut Vec<Action>,
    ) {
        if self.state == State::Idle {
            self.state = State::Finished;
            out.push(Action::Exit);
            return;
        }
        self.caller_hung_up(now, cause, out);
        let (hide_at, caller) = match &self.state {
            State::HungUp {
                finish: None,
                hide_at,
                caller,
            } => (*hide_at, caller.clone()),
            _ => return,
        };
        let finish = self.finish_call(now, Some(billsec), &caller);
        let path = match &self.recording {
            RecordingState::Started(_) if self.talk.is_some() => {
                // Scenario 5: the file is not complete; close every card now, finish when it is.
                self.cards.close_all_except(None, out);
                let wait = self
                    .settings
                    .recording
                    .as_ref()
                    .map(|r| r.wait_after_hangup)
                    .unwrap_or_default();
                self.state = State::HungUp {
                    finish: Some(PendingFinish {
                        finish,
                        until: now + wait,
                    }),
                    hide_at,
                    caller,
                };
                return;
            }
            RecordingState::Stopped(path) if self.talk.is_some() => Some(path.clone()),
            _ => None,
        };
        self.emit_finish(finish, path, true, out);
    }

    pub(super) fn deadline_passed(&mut self, now: Instant, out: &mut Vec<Action>) {
        match &mut self.state {
            State::LookingUp { until, .. } if *until <= now => self.lookup_done(now, None, out),
            State::Hunting { .. } => self.hunting_deadline(now, out),
            State::HungUp {
                finish: None,
                hide_at,
                ..
            } if hide_at.is_some_and(|at| at <= now) => {
                *hide_at = None;
                tracing::info!("recording not closed yet; hiding every card");
                self.cards.close_all_except(None, out);
            }
            State::HungUp { finish, .. } if finish.as_ref().is_some_and(|p| p.until <= now) => {
                if let Some(pending) = finish.take() {
                    tracing::warn!("recording not complete in time; finishing without it");
                    self.emit_finish(pending.finish, None, true, out);
                }
            }
            _ => {}
        }
    }

    /// Shutdown (SIGTERM, a restart): fsb24 lets go of what would outlive the grace without
    /// cutting it. Closing the socket never ends a call (fsb24 sends no `resume`,
    /// esl-protocol.md §5.6), so:
    /// * a conversation goes on in the switch: the session is closed, the talker keeps the card
    ///   and the call stays open in the outbox; the next run follows it on the switch and
    ///   finishes it with the talk time and the recording, as after a kill;
    /// * a waiting or ringing caller is handed to the dialplan fallback: the ringing legs are
    ///   cancelled, their cards close and the session is closed, so the dialplan continues after
    ///   `socket`; the call stays open, and the next run finishes it with whoever the fallback
    ///   reached (or as missed);
    /// * a call that is already ending (the caller hung up, or we are hanging them up) goes on
    ///   to its finish, which comes within the grace: its deadlines bound it.
    pub(super) fn shutdown(&mut self, out: &mut Vec<Action>) {
        match &self.state {
            State::Closing | State::HungUp { .. } | State::Finished => {}
            State::Idle => {
                self.state = State::Finished;
                out.push(Action::Exit);
            }
            State::Talking => {
                // The agent is still talking: no release, no card change.
                tracing::info!("shutdown: the conversation goes on; the next run finishes it");
                self.state = State::Finished;
                out.push(Action::Exit);
            }
            State::LookingUp { .. } | State::Hunting { .. } => {
                tracing::info!("shutdown: caller handed to the dialplan fallback");
                self.cancel_ringing(out);
                self.state = State::Finished;
                out.push(Action::Exit);
            }
        }
    }

    fn release_talker(&mut self, out: &mut Vec<Action>) {
        if let Some(talk) = &mut self.talk
            && talk.reserved
            && let Some(agent) = &talk.agent
        {
            out.push(Action::ReleaseAgent {
                agent: agent.clone(),
                outcome: Outcome::Answered,
            });
            talk.reserved = false;
        }
    }

    /// The finish for this call; `billsec` `None` means "measure the talk time ourselves".
    fn finish_call(&self, now: Instant, billsec: Option<u32>, caller: &CallerLeft) -> FinishCall {
        let measured = |since: Instant| {
            u32::try_from(now.saturating_duration_since(since).as_secs()).unwrap_or(u32::MAX)
        };
        let (user, duration_secs) = match &self.talk {
            // A caller answered by the route before ringing has billsec that includes the wait.
            Some(talk) => match billsec {
                Some(billsec) if !self.settings.answer => (talk.user, billsec),
                _ => (talk.user, measured(talk.since)),
            },
            None => (self.missed_owner(), 0),
        };
        let answered = self.talk.is_some();
        let status_code = finish_status(
            Direction::Inbound,
            answered,
            caller.gave_up,
            self.settings.missed_status,
            self.last_attempt.as_ref(),
        );
        let failed_reason = if answered {
            None
        } else {
            self.last_attempt
                .as_ref()
                .map(|a| &a.cause)
                .or(Some(&caller.cause))
                .map(|c| c.to_string())
        };
        FinishCall {
            user,
            duration_secs,
            status_code,
            add_to_chat: self.settings.add_to_chat,
            failed_reason,
        }
    }

    /// The first step of the owner chain that names somebody (nobody answered).
    fn missed_owner(&self) -> BitrixUserId {
        let chain = &self.settings.missed_owner;
        let owner = chain.steps.iter().find_map(|step| match step {
            OwnerStep::Responsible => self.responsible,
            OwnerStep::LastRung => self.last_rung,
            OwnerStep::User(user) => Some(*user),
        });
        tracing::debug!(?owner, steps = ?chain.steps, "missed-call owner chosen");
        owner.unwrap_or(chain.last_resort)
    }

    /// Hides every other card, then finish, then the recording; `exit` closes the session.
    fn emit_finish(
        &mut self,
        finish: FinishCall,
        record: Option<PathBuf>,
        exit: bool,
        out: &mut Vec<Action>,
    ) {
        self.register(finish.user, false, out);
        self.cards.close_all_except(Some(finish.user), out);
        tracing::info!(status = %finish.status_code, duration = finish.duration_secs, "call finished");
        out.push(Action::Card(BitrixWrite::Finish(finish)));
        if let Some(path) = record {
            out.push(Action::Card(BitrixWrite::AttachRecord { path }));
        }
        if exit {
            out.push(Action::Exit);
        }
        self.state = State::Finished;
    }
}
