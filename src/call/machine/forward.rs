//! A queue that gives up forwarding the caller to an employee's mobile or landline: the number
//! is rung like a direct target (the employee's card while it rings and while they talk, the
//! finish theirs), only the leg goes out through `[outgoing]`'s gateway or profile instead of
//! the employee's extension. The call keeps the `TYPE=2` it was registered with.

use std::time::Duration;

use tokio::time::Instant;

use crate::call::click::CustomerRoute;
use crate::call::status::Cause;
use crate::ids::PhoneNumber;
use crate::queue::AgentInfo;

use super::{Action, Call, DirectTarget, Overflow, OwnerStep};

/// An external number a queue overflows to, for an employee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForwardTarget {
    /// The employee it is forwarded for (card, finish). Their extension is not rung and they
    /// are not reserved in the queue actor (their desk phone stays free).
    pub agent: AgentInfo,
    /// Where the leg goes.
    pub dial: ExternalDial,
    /// How long the number rings.
    pub ring_timeout: Duration,
}

/// A leg to a number outside the PBX: the checked way out and the number in E.164.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExternalDial {
    /// Gateway, or profile and host.
    pub route: CustomerRoute,
    /// The number dialled.
    pub number: PhoneNumber,
}

impl Call {
    /// Rings `target`'s number; when it is not answered the caller is hung up (`NO_ANSWER`)
    /// and the call is the employee's missed call: the queue handed it to them by name, so
    /// they own it ahead of the missed-call policy (as a route's forward does).
    pub(super) fn ring_forward(
        &mut self,
        now: Instant,
        target: ForwardTarget,
        out: &mut Vec<Action>,
    ) {
        let from = out.len();
        let owner = OwnerStep::User(target.agent.user);
        self.settings.missed_owner.steps.insert(0, owner);
        let direct = DirectTarget {
            agent: target.agent,
            ring_timeout: target.ring_timeout,
            fallback: Overflow::Hangup {
                cause: Cause::NO_ANSWER,
            },
        };
        self.ring_direct(now, direct, out);
        // The one bridge just planned dials the number instead of the extension.
        for action in &mut out[from..] {
            if let Action::Bridge { legs, .. } = action {
                for leg in legs {
                    leg.external = Some(target.dial.clone());
                }
            }
        }
    }
}
