//! The seam between the outbox worker and Bitrix24: the [`Deliver`] trait (implemented by the
//! Bitrix client), its result and error classification, and the retry [`RetryBackoff`] schedule.
//! Pure apart from the trait itself.

use std::future::Future;
use std::time::Duration;

use crate::ids::{BitrixCallId, ExternalCallId};
use crate::outbox::op::BitrixWrite;
use crate::outbox::store::RegisterResult;

/// What Bitrix24 answered to a write that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// `register` answered with a `CALL_ID` (and CRM binding).
    Registered(RegisterResult),
    /// Any other write was accepted (`show`/`hide` answering `false` counts too).
    Done,
}

/// Why a delivery failed, classified by what the worker should do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliverError {
    /// Transient (rate limit, timeout, 5xx, connection): retry after a backoff.
    #[error("retryable: {reason}")]
    Retryable {
        /// What happened.
        reason: String,
        /// A server-suggested wait (e.g. from `operating_reset_at`), used instead of the
        /// backoff when longer.
        retry_after: Option<Duration>,
    },
    /// Bitrix24 refused the write for good (validation error, unknown user): dead-letter it.
    #[error("permanent: {reason}")]
    Permanent {
        /// What Bitrix24 said.
        reason: String,
    },
    /// "Call is not found": for a `finish` this means an earlier attempt already finished it.
    #[error("call is not found: {reason}")]
    CallNotFound {
        /// What Bitrix24 said.
        reason: String,
    },
}

/// Sends one outbox write to Bitrix24. The implementation goes through the client's rate
/// limiter and may coalesce concurrent calls into `batch` requests.
///
/// Must be cancel-safe in the at-least-once sense: the worker may drop the future on shutdown,
/// and the entry is sent again after restart (every write is safe to repeat).
pub trait Deliver: Send + Sync + 'static {
    /// Sends `write` for `call`. `call_id` is the call's `CALL_ID` once known (always `Some`
    /// except for `Register`). `AttachRecord` files were checked by the worker beforehand
    /// (see [`crate::outbox::recording::Recording`]).
    fn deliver(
        &self,
        call: &ExternalCallId,
        call_id: Option<&BitrixCallId>,
        write: &BitrixWrite,
    ) -> impl Future<Output = Result<Delivered, DeliverError>> + Send;
}

/// Exponential backoff with optional jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBackoff {
    /// Delay after the first failure.
    pub base: Duration,
    /// Upper bound for any delay (an outage may last hours; we keep retrying at this pace).
    pub max: Duration,
    /// 0.0..=1.0: the fraction of each delay that is randomised ("equal jitter"); 0 in tests.
    pub jitter: f64,
}

impl Default for RetryBackoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            jitter: 0.5,
        }
    }
}

impl RetryBackoff {
    /// The delay before attempt `attempt + 1`, after `attempt` (>= 1) failures. `unit` is a
    /// random number in 0..1 (pass anything when `jitter` is 0). A longer server-suggested
    /// `retry_after` wins.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let full = self.base.saturating_mul(1u32 << exp).min(self.max);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let unit = unit.clamp(0.0, 1.0);
        let delay = full.mul_f64(1.0 - jitter * unit);
        retry_after.map_or(delay, |after| delay.max(after))
    }

    /// [`RetryBackoff::delay`] with a fresh random number.
    pub fn delay_now(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let unit = if self.jitter > 0.0 {
            rand::random::<f64>()
        } else {
            0.0
        };
        self.delay(attempt, retry_after, unit)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_without_jitter() {
        let b = RetryBackoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(10),
            jitter: 0.0,
        };
        let got: Vec<u64> = (1..=6).map(|a| b.delay(a, None, 0.9).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 10, 10]);
        assert_eq!(b.delay(100, None, 0.0), Duration::from_secs(10));
    }

    #[test]
    fn jitter_shortens_delays_within_its_fraction_and_retry_after_wins() {
        let b = RetryBackoff {
            base: Duration::from_secs(4),
            max: Duration::from_secs(60),
            jitter: 0.5,
        };
        assert_eq!(b.delay(1, None, 1.0), Duration::from_secs(2));
        assert_eq!(b.delay(1, None, 0.0), Duration::from_secs(4));
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(30)), 0.5),
            Duration::from_secs(30)
        );
    }
}
