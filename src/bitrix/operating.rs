//! The per-method execution-time budget (bitrix24-telephony.md §8.2): once a method answers
//! `429 OPERATION_TIME_LIMIT`, every further call of that method fails here, without a request,
//! until the portal's `operating_reset_at` (the last one it reported for the method; a minute
//! when it never said). Other methods are unaffected. Pure: the time comes in as unix seconds.

use std::collections::HashMap;
use std::sync::Mutex;

/// How long a method is held when the portal never reported its `operating_reset_at`: the
/// budget is counted in one-minute buckets, so a minute frees the oldest one.
pub(crate) const DEFAULT_HOLD_SECS: i64 = 60;

#[derive(Debug, Default)]
struct Inner {
    /// Latest `operating_reset_at` reported per method.
    reset_at: HashMap<&'static str, i64>,
    /// Methods held until this unix second.
    held_until: HashMap<&'static str, i64>,
}

/// Per-method holds, shared by every request of a client.
#[derive(Debug, Default)]
pub(crate) struct OperatingHolds {
    inner: Mutex<Inner>,
}

impl OperatingHolds {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes the `time.operating_reset_at` of an answer of `method`.
    pub(crate) fn observe(&self, method: &'static str, reset_at: i64) {
        self.lock().reset_at.insert(method, reset_at);
    }

    /// `method` answered `OPERATION_TIME_LIMIT` at `now`: hold it. Returns the unix second the
    /// hold ends.
    pub(crate) fn hold(&self, method: &'static str, now: i64) -> i64 {
        let mut inner = self.lock();
        let until = inner
            .reset_at
            .get(method)
            .copied()
            .filter(|at| *at > now)
            .unwrap_or(now + DEFAULT_HOLD_SECS);
        inner.held_until.insert(method, until);
        until
    }

    /// When `method` may be called again, if it is held at `now`.
    pub(crate) fn held(&self, method: &str, now: i64) -> Option<i64> {
        let mut inner = self.lock();
        match inner.held_until.get(method).copied() {
            Some(until) if until > now => Some(until),
            Some(_) => {
                inner.held_until.remove(method);
                None
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = "telephony.externalcall.attachRecord";

    #[test]
    fn a_limited_method_is_held_until_the_reset_the_portal_reported_and_others_are_not() {
        let holds = OperatingHolds::default();
        assert_eq!(holds.held(M, 1000), None);
        holds.observe(M, 1450);
        assert_eq!(holds.hold(M, 1000), 1450);
        assert_eq!(holds.held(M, 1000), Some(1450));
        assert_eq!(holds.held(M, 1449), Some(1450));
        assert_eq!(holds.held("user.get", 1000), None);
        assert_eq!(holds.held(M, 1450), None, "released at the reset");
        assert_eq!(holds.held(M, 1000), None, "and forgotten");
    }

    #[test]
    fn without_a_reported_reset_or_with_a_stale_one_the_hold_is_a_minute() {
        let holds = OperatingHolds::default();
        assert_eq!(holds.hold(M, 1000), 1000 + DEFAULT_HOLD_SECS);
        holds.observe(M, 900);
        assert_eq!(holds.hold(M, 1000), 1000 + DEFAULT_HOLD_SECS);
    }
}
