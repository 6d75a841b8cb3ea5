//! The pure decision logic of one outgoing call (an employee dialled an external number): when
//! the customer answered, how the attempt ended, and the one `finish` with the talk time and the
//! recording. No IO, no clock: every input carries `now`. It speaks the call machine's
//! vocabulary ([`Input`]) so the session's events map once, in `call::task::map`.

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use crate::call::click::machine::whole_seconds;
use crate::call::machine::{BridgeOutcome, Input};
use crate::call::status::{Attempt, Cause, Direction, MissedStatus, finish_status};
use crate::ids::{BitrixUserId, ExecId};
use crate::outbox::op::{BitrixWrite, CallNote, FinishCall};

/// What the driver does next (imperative), in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Store this write durably before going on (notes, the finish and its recording).
    Cards(Vec<BitrixWrite>),
    /// `uuid_record <agent leg> start <path>`.
    StartRecording(PathBuf),
    /// Hang the employee's leg up with this cause (the customer side is over).
    HangupAgent(Cause),
    /// Close the session (`exit`); the call is over for us.
    Exit,
}

/// Fixed facts of one outgoing call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutgoingSettings {
    /// The employee who dialled (`USER_ID` of register and finish).
    pub user: BitrixUserId,
    /// `ADD_TO_CHAT` of the finish.
    pub add_to_chat: bool,
    /// Where the conversation is recorded, if recording is on.
    pub record: Option<PathBuf>,
    /// How long after the hang-up the finish waits for `RECORD_STOP`.
    pub record_wait: Duration,
    /// `Outbound` for a call the employee dialled; `Inbound` for a client's call forwarded to
    /// the employee's mobile (unanswered is then a missed call, `304`).
    pub direction: Direction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Recording {
    Off,
    Requested(PathBuf),
    Stopped(PathBuf),
}

/// One outgoing call. Finishes exactly once; after [`Action::Exit`] every input is ignored.
#[derive(Debug, Clone)]
pub(crate) struct OutgoingCall {
    settings: OutgoingSettings,
    exec: ExecId,
    answered_at: Option<Instant>,
    talk_end: Option<Instant>,
    attempt: Option<Attempt>,
    agent_gave_up: bool,
    hung_up: bool,
    complete_at: Option<Instant>,
    recording: Recording,
    done: bool,
}

impl OutgoingCall {
    /// A call whose bridge to the customer was sent with `Event-UUID = exec`.
    pub(crate) fn new(settings: OutgoingSettings, exec: ExecId) -> Self {
        Self {
            settings,
            exec,
            answered_at: None,
            talk_end: None,
            attempt: None,
            agent_gave_up: false,
            hung_up: false,
            complete_at: None,
            recording: Recording::Off,
            done: false,
        }
    }

    /// Whether the machine is done (its `Exit` was returned).
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// When to feed [`Input::DeadlinePassed`]: the end of the wait for a recording.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match (&self.recording, self.complete_at) {
            (Recording::Requested(_), Some(at)) if !self.done => {
                Some(at + self.settings.record_wait)
            }
            _ => None,
        }
    }

    /// Feeds one input; returns what to do.
    pub(crate) fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        if self.done {
            return Vec::new();
        }
        let mut out = Vec::new();
        match input {
            Input::LegAnswered { .. } => self.answered(now, &mut out),
            Input::BridgeEnded { exec, outcome } if exec == self.exec => {
                self.bridge_ended(now, outcome, &mut out);
            }
            Input::Unbridged => self.conversation_over(now),
            Input::CallerHungUp { cause, .. } => {
                self.hung_up = true;
                self.conversation_over(now);
                // The employee hung up before the customer answered or refused: they gave up.
                if self.answered_at.is_none() && self.attempt.is_none() {
                    self.agent_gave_up = true;
                    tracing::debug!(cause = %cause, "employee hung up while dialling");
                }
            }
            Input::RecordStopped { path } => {
                if matches!(&self.recording, Recording::Requested(p) if *p == path) {
                    self.recording = Recording::Stopped(path);
                }
                self.finish_if_ready(now, false, &mut out);
            }
            Input::HangupComplete { .. } => {
                self.hung_up = true;
                self.complete_at.get_or_insert(now);
                self.conversation_over(now);
                self.finish_if_ready(now, false, &mut out);
            }
            Input::DeadlinePassed => self.finish_if_ready(now, true, &mut out),
            // A stop never cuts a call: the switch goes on with it, the next start finishes it
            // from the stored register and notes (README "Stopping and restarting").
            Input::Shutdown => {
                self.done = true;
                out.push(Action::Exit);
            }
            _ => {}
        }
        out
    }

    fn answered(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.answered_at.is_some() {
            return;
        }
        self.answered_at = Some(now);
        let mut notes = vec![BitrixWrite::Note(CallNote::Answered {
            user: self.settings.user,
            at: None,
        })];
        if let Some(path) = self.settings.record.clone() {
            // The note is durable before the switch writes the file (a kill in between would
            // leave a recording nobody attaches).
            notes.push(BitrixWrite::Note(CallNote::Recording {
                path: path.clone(),
            }));
            self.recording = Recording::Requested(path.clone());
            out.push(Action::Cards(notes));
            out.push(Action::StartRecording(path));
        } else {
            out.push(Action::Cards(notes));
        }
    }

    fn bridge_ended(&mut self, now: Instant, outcome: BridgeOutcome, out: &mut Vec<Action>) {
        let cause = match outcome {
            BridgeOutcome::Success => {
                self.conversation_over(now);
                Cause::NORMAL_CLEARING
            }
            BridgeOutcome::Failed { cause, sip_status } => {
                self.attempt = Some(Attempt {
                    cause: cause.clone(),
                    sip: sip_status,
                });
                cause
            }
        };
        if !self.hung_up {
            self.hung_up = true;
            out.push(Action::HangupAgent(cause));
        }
    }

    fn conversation_over(&mut self, now: Instant) {
        if self.answered_at.is_some() {
            self.talk_end.get_or_insert(now);
        }
    }

    /// Finishes once the leg is gone and the recording (if any) is complete, or `waited` out.
    fn finish_if_ready(&mut self, now: Instant, waited: bool, out: &mut Vec<Action>) {
        let Some(complete_at) = self.complete_at else {
            return;
        };
        let recording = match &self.recording {
            Recording::Off => None,
            Recording::Stopped(path) => Some(path.clone()),
            Recording::Requested(_) if waited && now >= complete_at + self.settings.record_wait => {
                tracing::warn!("recording not complete in time; finished without it");
                None
            }
            Recording::Requested(_) => return,
        };
        let mut writes = vec![BitrixWrite::Finish(self.finish())];
        writes.extend(recording.map(|path| BitrixWrite::AttachRecord { path }));
        out.push(Action::Cards(writes));
        out.push(Action::Exit);
        self.done = true;
    }

    /// Who was called, for `FAILED_REASON`.
    fn far_end(&self) -> &'static str {
        match self.settings.direction {
            Direction::Outbound => "customer",
            Direction::Inbound => "forwarded number",
        }
    }

    /// Whose leg fsb24 holds, for `FAILED_REASON`.
    fn near_end(&self) -> &'static str {
        match self.settings.direction {
            Direction::Outbound => "employee",
            Direction::Inbound => "caller",
        }
    }

    fn finish(&self) -> FinishCall {
        let talk = self
            .answered_at
            .zip(self.talk_end)
            .map(|(from, to)| to.saturating_duration_since(from));
        let status_code = finish_status(
            self.settings.direction,
            talk.is_some(),
            self.agent_gave_up,
            MissedStatus::default(),
            self.attempt.as_ref(),
        );
        let failed_reason = match (&talk, &self.attempt) {
            (Some(_), _) => None,
            (None, Some(attempt)) => Some(format!("{}: {}", self.far_end(), attempt.cause)),
            (None, None) if self.agent_gave_up => {
                Some(format!("the {} hung up before an answer", self.near_end()))
            }
            (None, None) => Some("no result from the switch".to_owned()),
        };
        FinishCall {
            user: self.settings.user,
            duration_secs: talk.map_or(0, whole_seconds),
            status_code,
            add_to_chat: self.settings.add_to_chat,
            failed_reason,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
