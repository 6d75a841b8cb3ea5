//! Hands a session's domain events to its call task without ever blocking the session's reader.
//!
//! The ESL crate reads command replies and events on one loop and drops events once its queue is
//! full. If the pump waited on a busy call task, a flood of events (more than the crate's queue
//! and the call's channel hold together) would make the crate drop some, a hang-up among them.
//! So the pump keeps reading: what the call's channel cannot take now waits here, in order, and
//! is delivered as the call task makes room. Only events the call uses get here (the pump drops
//! other channels' and unused events first), so the wait is bounded by one call's events.

use std::collections::VecDeque;

use tokio::sync::mpsc;

use crate::esl::CallEvent;

/// The in-order hand-over from the pump to the call task.
#[derive(Debug)]
pub(super) struct Forward<'a> {
    tx: &'a mpsc::Sender<CallEvent>,
    waiting: VecDeque<CallEvent>,
}

impl<'a> Forward<'a> {
    pub(super) fn new(tx: &'a mpsc::Sender<CallEvent>) -> Self {
        Self {
            tx,
            waiting: VecDeque::new(),
        }
    }

    /// Queues `event` behind those still waiting; `false` once the call task is gone.
    pub(super) fn push(&mut self, event: CallEvent) -> bool {
        if self.waiting.is_empty() {
            match self.tx.try_send(event) {
                Ok(()) => return true,
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
                Err(mpsc::error::TrySendError::Full(event)) => self.waiting.push_back(event),
            }
        } else {
            self.waiting.push_back(event);
        }
        !self.tx.is_closed()
    }

    /// Whether events wait for room in the call's channel.
    pub(super) fn is_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Delivers waiting events while the call's channel has room (resolves once it moved at
    /// least one, or the task is gone: then the rest is discarded).
    pub(super) async fn make_progress(&mut self) {
        let Ok(permit) = self.tx.reserve().await else {
            self.waiting.clear();
            return;
        };
        if let Some(event) = self.waiting.pop_front() {
            permit.send(event);
        }
        while let Some(event) = self.waiting.pop_front() {
            if let Err(err) = self.tx.try_send(event) {
                match err {
                    mpsc::error::TrySendError::Full(event) => {
                        self.waiting.push_front(event);
                        return;
                    }
                    mpsc::error::TrySendError::Closed(_) => {
                        self.waiting.clear();
                        return;
                    }
                }
            }
        }
    }

    /// Delivers everything still waiting, then `last` (the session is over).
    pub(super) async fn finish(mut self, last: CallEvent) -> bool {
        while self.is_waiting() {
            self.make_progress().await;
        }
        self.tx.send(last).await.is_ok()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::esl::DisconnectCause;

    #[tokio::test]
    async fn a_flood_larger_than_the_channel_arrives_whole_and_in_order() {
        let (tx, mut rx) = mpsc::channel(4);
        let mut fwd = Forward::new(&tx);
        for digit in (0..100).map(|i| char::from(b'0' + (i % 10) as u8)) {
            assert!(fwd.push(CallEvent::Dtmf { digit }));
        }
        assert!(fwd.is_waiting());
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(ev) = rx.recv().await {
                got.push(ev);
            }
            got
        });
        assert!(
            fwd.finish(CallEvent::Disconnected {
                reason: DisconnectCause::ClosedByUs
            })
            .await
        );
        drop(tx);
        let got = reader.await.unwrap();
        assert_eq!(got.len(), 101);
        for (i, ev) in got.iter().take(100).enumerate() {
            let want = char::from(b'0' + (i % 10) as u8);
            assert_eq!(*ev, CallEvent::Dtmf { digit: want });
        }
    }
}
