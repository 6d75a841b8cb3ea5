//! Which clicks are dialled. Bitrix24 never retries an online event, so a click that arrives
//! late was delayed, not repeated: the employee has moved on, and dialling now would surprise
//! them. Its age comes from its `CALL_ID`, which Bitrix24 stamps with the second it registered
//! the call (`externalCall.<hex>.<unix seconds>`). The same employee clicking the same number
//! again within a few seconds (a double click, two tabs) is dialled once. Pure: time comes in.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::http::ClickToCall;
use crate::ids::{BitrixCallId, BitrixUserId, PhoneNumber};

/// The limits of [`ClickFilter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hygiene {
    /// A click older than this is not dialled.
    pub max_age: Duration,
    /// The same user and number again within this is dialled once (zero: every click).
    pub repeat_window: Duration,
}

/// What to do with one click.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Dial it.
    Dial,
    /// Registered by Bitrix24 this long ago: too old.
    Stale {
        /// How old.
        age: Duration,
    },
    /// The same user and number were dialled this long ago.
    Repeated {
        /// Since the click that was dialled.
        after: Duration,
    },
}

/// Remembers the clicks dialled within the repeat window.
#[derive(Debug)]
pub struct ClickFilter {
    hygiene: Hygiene,
    dialled: HashMap<(BitrixUserId, PhoneNumber), Instant>,
}

/// Clicks stamped before this (2001-09-09) are not stamped with a time at all.
const PLAUSIBLE_UNIX: i64 = 1_000_000_000;

/// When Bitrix24 registered the clicked call (unix seconds), if its `CALL_ID` says.
pub(crate) fn clicked_at(call_id: &BitrixCallId) -> Option<i64> {
    let (_, stamp) = call_id.as_str().rsplit_once('.')?;
    if stamp.is_empty() || !stamp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stamp.parse().ok().filter(|t| *t >= PLAUSIBLE_UNIX)
}

impl ClickFilter {
    /// A filter with no click seen yet.
    pub fn new(hygiene: Hygiene) -> Self {
        Self {
            hygiene,
            dialled: HashMap::new(),
        }
    }

    /// Decides on `click`, which arrived at `now` (`now_unix` on the wall clock). A click whose
    /// `CALL_ID` carries no time is never stale.
    pub fn check(&mut self, now: Instant, now_unix: i64, click: &ClickToCall) -> Verdict {
        if let Some(at) = clicked_at(&click.call_id) {
            let age = Duration::from_secs(u64::try_from(now_unix - at).unwrap_or(0));
            if age > self.hygiene.max_age {
                return Verdict::Stale { age };
            }
        }
        let window = self.hygiene.repeat_window;
        self.dialled
            .retain(|_, at| now.duration_since(*at) < window);
        let key = (click.user, click.phone.clone());
        if let Some(at) = self.dialled.get(&key) {
            return Verdict::Repeated {
                after: now.duration_since(*at),
            };
        }
        if !window.is_zero() {
            self.dialled.insert(key, now);
        }
        Verdict::Dial
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW_UNIX: i64 = 1_777_879_100;

    fn click(call_id: &str, user: u64, phone: &str) -> ClickToCall {
        ClickToCall {
            call_id: BitrixCallId::new(call_id),
            user: BitrixUserId(user),
            phone: PhoneNumber::parse(phone).unwrap(),
            line_number: None,
            call_list_id: None,
        }
    }

    fn filter() -> ClickFilter {
        ClickFilter::new(Hygiene {
            max_age: Duration::from_secs(15),
            repeat_window: Duration::from_secs(5),
        })
    }

    #[test]
    fn a_click_registered_longer_ago_than_the_limit_is_stale() {
        let (mut f, t0) = (filter(), Instant::now());
        let stamped = |ago: i64| {
            click(
                &format!("externalCall.5be0.{}", NOW_UNIX - ago),
                17,
                "+4930",
            )
        };
        assert_eq!(f.check(t0, NOW_UNIX, &stamped(15)), Verdict::Dial);
        assert_eq!(
            f.check(t0, NOW_UNIX, &stamped(40)),
            Verdict::Stale {
                age: Duration::from_secs(40)
            }
        );
        // The portal's clock a little ahead of ours, or a CALL_ID without a time: dialled.
        let mut f = filter();
        assert_eq!(f.check(t0, NOW_UNIX, &stamped(-3)), Verdict::Dial);
        assert_eq!(
            f.check(t0, NOW_UNIX, &click("externalCall.c2c.1", 18, "+4930")),
            Verdict::Dial
        );
        assert_eq!(clicked_at(&BitrixCallId::new("externalCall.abc")), None);
    }

    #[test]
    fn the_same_user_and_number_within_the_window_are_dialled_once() {
        let (mut f, t0) = (filter(), Instant::now());
        let s = Duration::from_secs;
        assert_eq!(
            f.check(t0, NOW_UNIX, &click("a.1", 17, "+4930")),
            Verdict::Dial
        );
        assert_eq!(
            f.check(t0 + s(3), NOW_UNIX, &click("a.2", 17, "+4930")),
            Verdict::Repeated { after: s(3) }
        );
        // Another number, or another user: dialled.
        assert_eq!(
            f.check(t0 + s(3), NOW_UNIX, &click("a.3", 17, "+4931")),
            Verdict::Dial
        );
        assert_eq!(
            f.check(t0 + s(3), NOW_UNIX, &click("a.4", 18, "+4930")),
            Verdict::Dial
        );
        // Past the window (counted from the click that was dialled): dialled again.
        assert_eq!(
            f.check(t0 + s(5), NOW_UNIX, &click("a.5", 17, "+4930")),
            Verdict::Dial
        );
    }
}
