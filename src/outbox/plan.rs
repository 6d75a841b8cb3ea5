//! What to do with one due entry, given its call's state. Pure: no IO, no clock.
//!
//! This is where "no card ever opens for a call that is already over" is enforced: a `register`
//! whose call already has a `finish` queued goes out with `SHOW=0`, and its `show`s are skipped.

use crate::ids::BitrixCallId;
use crate::outbox::op::BitrixWrite;
use crate::outbox::store::CallState;

/// The worker's decision for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Send this (possibly adjusted) write.
    Send {
        /// What to send.
        write: BitrixWrite,
        /// Sending it opens a card for someone.
        opens_card: bool,
    },
    /// Remember this `CALL_ID`; nothing is sent.
    Adopt(BitrixCallId),
    /// Mark the entry done without sending it.
    Skip {
        /// Why.
        reason: &'static str,
    },
    /// The write needs a `CALL_ID` the call does not have (its register failed).
    NoCallId,
}

/// Decides how to dispatch `write` for a call in `state`.
pub(crate) fn decide(write: &BitrixWrite, state: &CallState) -> Decision {
    let has_id = state.call_id().is_some();
    match write {
        // Notes are stored settled, beside the queue; one never comes due.
        BitrixWrite::Note(_) => Decision::Skip {
            reason: "a note for startup recovery: nothing to send",
        },
        BitrixWrite::Register(_) if has_id => Decision::Skip {
            reason: "call already has a CALL_ID",
        },
        BitrixWrite::Register(reg) => {
            let mut reg = reg.clone();
            if state.over {
                // Replay after an outage: the call is over, record it without a card.
                reg.show = false;
            }
            let opens_card = reg.show;
            Decision::Send {
                write: BitrixWrite::Register(reg),
                opens_card,
            }
        }
        BitrixWrite::Adopt { call_id } => Decision::Adopt(call_id.clone()),
        BitrixWrite::Show { .. } if state.over => Decision::Skip {
            reason: "call is already over: no card opens",
        },
        BitrixWrite::Show { users } | BitrixWrite::Hide { users } if users.is_empty() => {
            Decision::Skip { reason: "no users" }
        }
        BitrixWrite::Hide { .. } if state.over && !state.cards_opened => Decision::Skip {
            reason: "call is already over and no card was opened",
        },
        _ if !has_id => Decision::NoCallId,
        BitrixWrite::Show { .. } => Decision::Send {
            write: write.clone(),
            opens_card: true,
        },
        _ => Decision::Send {
            write: write.clone(),
            opens_card: false,
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::ids::{BitrixUserId, PhoneNumber};
    use crate::outbox::op::{CallType, FinishCall, RegisterCall};
    use crate::outbox::store::RegisterResult;

    fn register(show: bool) -> BitrixWrite {
        BitrixWrite::Register(RegisterCall {
            user: BitrixUserId(1),
            phone: PhoneNumber::parse("+4930123").unwrap(),
            call_type: CallType::Incoming,
            line_number: None,
            started_at: chrono::DateTime::parse_from_rfc3339("2026-05-04T09:15:02+02:00").unwrap(),
            crm_create: false,
            show,
            crm: None,
        })
    }

    fn registered(over: bool, cards_opened: bool) -> CallState {
        let result = RegisterResult {
            call_id: BitrixCallId::new("externalCall.a.1"),
            crm: None,
            created_lead: None,
        };
        CallState {
            registered: Some(result),
            over,
            cards_opened,
            known: true,
        }
    }

    fn show() -> BitrixWrite {
        BitrixWrite::Show {
            users: vec![BitrixUserId(2)],
        }
    }

    fn hide() -> BitrixWrite {
        BitrixWrite::Hide {
            users: vec![BitrixUserId(2)],
        }
    }

    #[test]
    fn register_of_an_over_call_is_sent_without_a_card() {
        let state = CallState {
            over: true,
            ..CallState::default()
        };
        assert_eq!(
            decide(&register(true), &state),
            Decision::Send {
                write: register(false),
                opens_card: false
            }
        );
    }

    #[test]
    fn register_of_a_live_call_keeps_its_show_flag() {
        let state = CallState::default();
        assert_eq!(
            decide(&register(true), &state),
            Decision::Send {
                write: register(true),
                opens_card: true
            }
        );
    }

    #[test]
    fn show_and_hide_of_an_over_call_without_cards_are_skipped() {
        let state = registered(true, false);
        assert!(matches!(decide(&show(), &state), Decision::Skip { .. }));
        assert!(matches!(decide(&hide(), &state), Decision::Skip { .. }));
    }

    #[test]
    fn hide_still_closes_cards_that_were_opened_before_the_call_ended() {
        let state = registered(true, true);
        assert!(matches!(decide(&show(), &state), Decision::Skip { .. }));
        assert_eq!(
            decide(&hide(), &state),
            Decision::Send {
                write: hide(),
                opens_card: false
            }
        );
    }

    #[test]
    fn writes_needing_a_call_id_without_one_are_reported() {
        let finish = BitrixWrite::Finish(FinishCall {
            user: BitrixUserId(1),
            duration_secs: 3,
            status_code: "200".into(),
            add_to_chat: false,
            failed_reason: None,
        });
        assert_eq!(decide(&finish, &CallState::default()), Decision::NoCallId);
        assert_eq!(decide(&show(), &CallState::default()), Decision::NoCallId);
    }

    #[test]
    fn a_second_register_for_a_registered_call_is_not_sent() {
        assert!(matches!(
            decide(&register(true), &registered(false, true)),
            Decision::Skip { .. }
        ));
    }
}
