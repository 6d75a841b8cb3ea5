//! Card bookkeeping: who has the Bitrix24 card open, so every show has its hide and `finish` never
//! leaves a card behind (finish closes it only for its own `USER_ID`).

use crate::ids::{AgentId, BitrixUserId};
use crate::outbox::op::{AcceptedCall, BitrixWrite, CallType};

use super::{Action, Call, CardMode};

/// Register state and open cards.
#[derive(Debug, Default)]
pub(super) struct Cards {
    registered: bool,
    open: Vec<BitrixUserId>,
}

impl Cards {
    /// Users whose card is open.
    pub(super) fn open(&self) -> &[BitrixUserId] {
        &self.open
    }

    /// Closes the card for those of `users` who have it, in one hide.
    pub(super) fn close(&mut self, users: &[BitrixUserId], out: &mut Vec<Action>) {
        let closing: Vec<_> = self
            .open
            .iter()
            .copied()
            .filter(|u| users.contains(u))
            .collect();
        if closing.is_empty() {
            return;
        }
        self.open.retain(|u| !closing.contains(u));
        out.push(Action::Card(BitrixWrite::Hide { users: closing }));
    }

    /// Closes every open card except `keep`'s, in one hide.
    pub(super) fn close_all_except(&mut self, keep: Option<BitrixUserId>, out: &mut Vec<Action>) {
        let others: Vec<_> = self
            .open
            .iter()
            .copied()
            .filter(|u| Some(*u) != keep)
            .collect();
        self.close(&others, out);
    }
}

impl Call {
    /// When `agent`'s card opens: their own mode, else `default` (their queue's).
    pub(super) fn card_mode(&self, agent: Option<&AgentId>, default: CardMode) -> CardMode {
        agent
            .and_then(|a| self.settings.agent_cards.get(a))
            .map_or(default, |mode| *mode)
    }

    /// `user` talks now: their card opens unless their mode is [`CardMode::Never`], in which
    /// case the call is only registered (for them, if nobody had a card before).
    pub(super) fn card_for_talker(
        &mut self,
        user: BitrixUserId,
        mode: CardMode,
        out: &mut Vec<Action>,
    ) {
        if mode == CardMode::Never {
            self.register(user, false, out);
        } else {
            self.open_cards(&[user], out);
        }
    }

    /// What `register` needs that is known from the start.
    pub(super) fn accepted(&self) -> Option<AcceptedCall> {
        let meta = self.meta.as_ref()?;
        let callback = self.settings.callback.as_ref();
        Some(AcceptedCall {
            phone: self.phone(),
            call_type: callback.map_or(CallType::Incoming, |_| CallType::Callback),
            line_number: meta.line.clone(),
            started_at: meta.started_at,
            crm_create: self.settings.crm_create,
            crm: callback.and_then(|c| c.crm),
        })
    }

    /// Registers the call once; with `show` the card opens for `user`.
    pub(super) fn register(&mut self, user: BitrixUserId, show: bool, out: &mut Vec<Action>) {
        if self.cards.registered {
            return;
        }
        let Some(accepted) = self.accepted() else {
            tracing::debug!("register before start; ignored");
            return;
        };
        let register = accepted.register(user, show);
        self.cards.registered = true;
        if show {
            self.cards.open.push(user);
        }
        out.push(Action::Card(BitrixWrite::Register(register)));
    }

    /// Opens the card for `users` who do not have it: the first through the register (SHOW=1)
    /// when the call is not registered yet, the rest in one show.
    pub(super) fn open_cards(&mut self, users: &[BitrixUserId], out: &mut Vec<Action>) {
        let mut new: Vec<_> = Vec::new();
        for user in users {
            if !self.cards.open.contains(user) && !new.contains(user) {
                new.push(*user);
            }
        }
        if new.is_empty() {
            return;
        }
        if !self.cards.registered {
            let first = new.remove(0);
            self.register(first, true, out);
        }
        if !new.is_empty() {
            self.cards.open.extend(new.iter().copied());
            out.push(Action::Card(BitrixWrite::Show { users: new }));
        }
    }
}
