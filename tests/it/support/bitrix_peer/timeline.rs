//! Card visibility per call and user (reference §6.8): the intervals during which a user's
//! call card was open. Only the telephony methods open and close intervals.

use std::collections::{BTreeSet, HashMap};

use tokio::time::Instant;

/// One stretch of time during which `user` had the card of a call open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardInterval {
    /// Bitrix24 user id.
    pub user: u64,
    /// Arrival time of the request that opened the card.
    pub from: Instant,
    /// Arrival time of the request that closed it; `None` while still open.
    pub to: Option<Instant>,
}

/// All card intervals, by `CALL_ID`.
#[derive(Debug, Default)]
pub struct Timeline {
    by_call: HashMap<String, Vec<CardInterval>>,
}

impl Timeline {
    /// Opens the card for `user` unless it is open already.
    pub fn open(&mut self, call_id: &str, user: u64, at: Instant) {
        let intervals = self.by_call.entry(call_id.to_owned()).or_default();
        if !intervals.iter().any(|i| i.user == user && i.to.is_none()) {
            intervals.push(CardInterval {
                user,
                from: at,
                to: None,
            });
        }
    }

    /// Closes the open card of `user`, if any.
    pub fn close(&mut self, call_id: &str, user: u64, at: Instant) {
        if let Some(intervals) = self.by_call.get_mut(call_id) {
            for interval in intervals
                .iter_mut()
                .filter(|i| i.user == user && i.to.is_none())
            {
                interval.to = Some(at);
            }
        }
    }

    /// The intervals of one call in opening order.
    pub fn intervals(&self, call_id: &str) -> Vec<CardInterval> {
        self.by_call.get(call_id).cloned().unwrap_or_default()
    }

    /// Users whose card for the call is open now.
    pub fn shown(&self, call_id: &str) -> BTreeSet<u64> {
        self.by_call
            .get(call_id)
            .map(|v| {
                v.iter()
                    .filter(|i| i.to.is_none())
                    .map(|i| i.user)
                    .collect()
            })
            .unwrap_or_default()
    }
}
