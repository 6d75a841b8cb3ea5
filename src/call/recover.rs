//! Startup recovery of calls a killed run (kill -9, power loss) left open: their `register` is
//! stored but no `finish`. Pure decisions here; the driver that asks the switch is [`live`].
//!
//! What survives a kill is the outbox: the card moves and the call's progress notes ("user U
//! answered at T", "recorded to P"). The switch keeps the call itself: the conversation goes on
//! without fsb24, the dialplan continues after `socket`. So recovery asks the switch whether
//! the channel still exists; a live call keeps the talker's card and is finished from its
//! `CHANNEL_HANGUP_COMPLETE` with the real talk time; a call already gone is finished from the
//! notes (talk time up to the recording's last write). Only a call that left no trace of an
//! answer is finished as missed with [`UNKNOWN_REASON`].

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::call::status::{Direction, MissedStatus, finish_status};
use crate::esl::{ChannelEnd, HangupCause};
use crate::ids::{BitrixUserId, ChannelId};
use crate::outbox::StoredWrite;
use crate::outbox::op::{AcceptedCall, BitrixWrite, CallNote, CallType, FinishCall};

pub(crate) mod live;

/// The "why" (`fsb24 call show`) of the writes that finish a call a previous run left open and
/// the switch followed to its hang-up after the restart.
pub const WHY_HUNG_UP: &str = "left open by a previous run: hung up after the restart";
/// The "why" of the writes that keep the cards of a call a previous run left open and that is
/// still up at the restart (it is followed to its hang-up).
pub const WHY_STILL_UP: &str = "left open by a previous run: still up at the restart";
/// The "why" of the writes that finish a call a previous run left open and that was already
/// over at the restart (finished from its notes).
pub const WHY_GONE: &str = "left open by a previous run: gone before the restart";

/// `FAILED_REASON` of a recovered call whose outcome nothing recorded.
pub const UNKNOWN_REASON: &str = "fsb24 restarted during the call; outcome unknown";

/// `STATUS_CODE` of a recovered call nobody answered (a missed inbound call).
pub const MISSED_STATUS: &str = "304";

/// Who talked on the call, as its notes tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// The user talking last (the transferee after a transfer).
    pub user: BitrixUserId,
    /// When the first agent answered (the note's own time, else its storage time).
    pub since: DateTime<Utc>,
}

/// What a call's stored writes say about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// The user the call was registered to.
    pub owner: Option<BitrixUserId>,
    /// Users whose card is open, in the order they were opened.
    pub open: Vec<BitrixUserId>,
    /// The conversation, if an agent answered.
    pub answered: Option<Answered>,
    /// The recording file, if one was started.
    pub recording: Option<PathBuf>,
    /// What fsb24 knew when it took the call (registers a call killed before its first card).
    pub accepted: Option<AcceptedCall>,
    /// The channel that carries the call, when its key does not name it (click-to-call).
    pub channel: Option<ChannelId>,
    /// fsb24 or Bitrix24 called the client (click-to-call, an outgoing register).
    pub outbound: bool,
}

impl Progress {
    /// Folds a call's writes (push order).
    pub fn of(writes: &[StoredWrite]) -> Self {
        let mut p = Self::default();
        for stored in writes {
            match &stored.write {
                BitrixWrite::Register(reg) => {
                    p.outbound |= matches!(reg.call_type, CallType::Outgoing | CallType::Callback);
                    p.owner.get_or_insert(reg.user);
                    if reg.show && !p.open.contains(&reg.user) {
                        p.open.push(reg.user);
                    }
                }
                BitrixWrite::Show { users } => {
                    p.open.retain(|u| !users.contains(u));
                    p.open.extend(users.iter().copied());
                }
                BitrixWrite::Hide { users } => p.open.retain(|u| !users.contains(u)),
                BitrixWrite::Note(CallNote::Answered { user, at }) => {
                    let since = p
                        .answered
                        .as_ref()
                        .map_or(at.unwrap_or(stored.at), |a| a.since);
                    p.answered = Some(Answered { user: *user, since });
                }
                BitrixWrite::Note(CallNote::Recording { path }) => {
                    p.recording = Some(path.clone());
                }
                BitrixWrite::Note(CallNote::Accepted(accepted)) => {
                    p.accepted = Some(accepted.clone());
                }
                BitrixWrite::Note(CallNote::Channel { channel }) => {
                    p.channel = Some(channel.clone());
                }
                // Only click-to-call adopts a call Bitrix24 registered itself: an outgoing call.
                BitrixWrite::Adopt { .. } => p.outbound = true,
                BitrixWrite::Finish(_) | BitrixWrite::AttachRecord { .. } => {}
            }
        }
        p
    }

    /// The writes for a call found still live. Answered: every card but the talker's closes,
    /// the talker keeps theirs while the conversation lasts. Still ringing: the cards stay, since
    /// the switch goes on ringing those agents (fsb24 no longer sees which of them answers) and
    /// a talker without their card is worse than a card a little too long; the finish closes
    /// them.
    pub fn live_writes(&self) -> Vec<BitrixWrite> {
        let Some(talker) = self.answered.as_ref().map(|a| a.user) else {
            return Vec::new();
        };
        let others: Vec<BitrixUserId> =
            self.open.iter().copied().filter(|u| *u != talker).collect();
        if others.is_empty() {
            Vec::new()
        } else {
            vec![BitrixWrite::Hide { users: others }]
        }
    }
}

/// How a recovered call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Its `CHANNEL_HANGUP_COMPLETE` arrived: the switch's own cause and timetable.
    HungUp {
        /// `Hangup-Cause`.
        cause: HangupCause,
        /// Its timetable.
        end: ChannelEnd,
    },
    /// The channel was already gone when fsb24 asked (or the switch could not be asked).
    Gone {
        /// When the recording file was last written: the end of the conversation.
        recording_end: Option<DateTime<Utc>>,
    },
}

/// The writes that end a recovered call: its `register` if it never got one (from the accepted
/// note, `SHOW=0`), hides for every open card but the finisher's, the `finish`, and the
/// recording when there was a conversation. `agent_user` maps a SIP user
/// (extension) to its Bitrix24 user; `fallback` finishes when the writes name nobody.
///
/// * Answered (a note, or the switch says it bridged): `200`, the talker, the talk time in
///   seconds, rounded: switch hang-up minus bridge; for a call already gone, the recording's last
///   write minus the answer note (0 without a recording).
/// * Not answered and hung up: `304` (`OTHER` for an outgoing call), the owner, the switch's
///   cause as `FAILED_REASON`.
/// * Not answered and gone: the same status, [`UNKNOWN_REASON`].
pub fn closing_writes(
    progress: &Progress,
    ending: &Ending,
    agent_user: impl Fn(&str) -> Option<BitrixUserId>,
    fallback: BitrixUserId,
) -> Vec<BitrixWrite> {
    let owner = progress.open.last().copied().or(progress.owner);
    let talked = talk(progress, ending, &agent_user, owner);
    let (finish, record) = match talked {
        Some((user, duration_secs)) => (
            FinishCall {
                user,
                duration_secs,
                status_code: "200".to_owned(),
                add_to_chat: false,
                failed_reason: None,
            },
            progress.recording.clone(),
        ),
        None => {
            let reason = match ending {
                Ending::HungUp { cause, .. } => cause.to_string(),
                Ending::Gone { .. } => UNKNOWN_REASON.to_owned(),
            };
            let direction = if progress.outbound {
                Direction::Outbound
            } else {
                Direction::Inbound
            };
            let status = finish_status(direction, false, false, MissedStatus::Missed304, None);
            let finish = FinishCall {
                user: owner.unwrap_or(fallback),
                duration_secs: 0,
                status_code: status,
                add_to_chat: false,
                failed_reason: Some(reason),
            };
            (finish, None)
        }
    };
    let others: Vec<BitrixUserId> = progress
        .open
        .iter()
        .copied()
        .filter(|u| *u != finish.user)
        .collect();
    let mut out = Vec::with_capacity(4);
    if progress.owner.is_none()
        && let Some(accepted) = &progress.accepted
    {
        // Killed before the first card: the call was never registered. It is over by the time
        // this is sent, so the card stays closed (SHOW=0).
        out.push(BitrixWrite::Register(accepted.register(finish.user, false)));
    }
    if !others.is_empty() {
        out.push(BitrixWrite::Hide { users: others });
    }
    out.push(BitrixWrite::Finish(finish));
    if let Some(path) = record {
        out.push(BitrixWrite::AttachRecord { path });
    }
    out
}

/// `(talker, talk seconds)` when the call was answered.
fn talk(
    progress: &Progress,
    ending: &Ending,
    agent_user: &impl Fn(&str) -> Option<BitrixUserId>,
    owner: Option<BitrixUserId>,
) -> Option<(BitrixUserId, u32)> {
    // Talk time rounded to the nearest second (`billsec` truncates; a recovered call has only
    // the two instants, and 0.98 s of talk is a one-second call).
    let secs = |from: DateTime<Utc>, to: DateTime<Utc>| {
        let ms = (to - from).num_milliseconds().max(0);
        u32::try_from((ms + 500) / 1000).unwrap_or(u32::MAX)
    };
    match ending {
        Ending::HungUp { end, .. } => {
            let bridged_to = end.bridged_to.as_deref().and_then(agent_user);
            let user = match (&progress.answered, end.bridged_at) {
                (Some(a), _) => a.user,
                (None, Some(_)) => bridged_to.or(owner)?,
                (None, None) => return None,
            };
            let start = end
                .bridged_at
                .or(progress.answered.as_ref().map(|a| a.since));
            let duration = match (start, end.hungup_at) {
                (Some(start), Some(stop)) => secs(start, stop),
                _ => 0,
            };
            Some((user, duration))
        }
        Ending::Gone { recording_end } => {
            let a = progress.answered.as_ref()?;
            let duration = recording_end.map_or(0, |stop| secs(a.since, stop));
            Some((a.user, duration))
        }
    }
}

#[cfg(test)]
mod tests;
