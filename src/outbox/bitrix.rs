//! The outbox's [`Deliver`] seam implemented on [`BitrixClient`]: one stored write becomes one
//! typed Bitrix24 command, and its failure is classified for the outbox worker. The client
//! knows nothing of the outbox; this adapter is where the two meet.

use std::time::Duration;

use crate::bitrix::{BitrixClient, BitrixError, ErrorKind};
use crate::ids::{BitrixCallId, ExternalCallId};
use crate::outbox::deliver::{Deliver, DeliverError, Delivered};
use crate::outbox::op::BitrixWrite;
use crate::outbox::store::RegisterResult;

impl Deliver for BitrixClient {
    async fn deliver(
        &self,
        call: &ExternalCallId,
        call_id: Option<&BitrixCallId>,
        write: &BitrixWrite,
    ) -> Result<Delivered, DeliverError> {
        let needs_id = || {
            call_id.ok_or_else(|| DeliverError::Permanent {
                reason: "no CALL_ID known for this call".to_owned(),
            })
        };
        let outcome = match write {
            BitrixWrite::Register(req) => {
                let r = self
                    .register(call, req)
                    .await
                    .map_err(|e| classify_for(self, e))?;
                return Ok(Delivered::Registered(RegisterResult {
                    crm: r.crm(),
                    call_id: r.call_id,
                    created_lead: r.created_lead,
                }));
            }
            // Adopted calls were registered by Bitrix24 itself; the worker stores the id.
            // Notes are stored settled for startup recovery and never come due.
            BitrixWrite::Adopt { .. } | BitrixWrite::Note(_) => Ok(()),
            BitrixWrite::Show { users } => self.show(call, needs_id()?, users).await.map(drop),
            BitrixWrite::Hide { users } => self.hide(call, needs_id()?, users).await.map(drop),
            BitrixWrite::Finish(req) => self.finish(call, needs_id()?, req).await.map(drop),
            BitrixWrite::AttachRecord { path } => {
                self.attach_record(needs_id()?, path).await.map(drop)
            }
        };
        outcome
            .map(|()| Delivered::Done)
            .map_err(|e| classify_for(self, e))
    }
}

/// Classifies `err` for the worker; a method held for its operating budget is retried when the
/// hold ends, not at the backoff. A `WRONG_AUTH_TYPE` is a configuration error: the client says
/// once what to change, and each refused write is dead-lettered at its first refusal (no
/// retries), for `fsb24 outbox retry` after the fix.
fn classify_for(client: &BitrixClient, err: BitrixError) -> DeliverError {
    client.advise_once(&err);
    let wait = match (err.kind(), err.method()) {
        (Some(ErrorKind::OperationTimeLimit), Some(method)) => client.held_for(method),
        _ => None,
    };
    classify(err, wait)
}

/// Maps a client error onto what the outbox worker should do with the entry.
fn classify(err: BitrixError, retry_after: Option<Duration>) -> DeliverError {
    let reason = err.to_string();
    if err.is_call_not_found() {
        return DeliverError::CallNotFound { reason };
    }
    if err.is_retryable() {
        return DeliverError::Retryable {
            reason,
            retry_after,
        };
    }
    match err.kind() {
        // A token that could not be refreshed, or a portal outage dressed as an auth error,
        // must not dead-letter call data: keep retrying at the backoff's cap.
        Some(ErrorKind::ExpiredToken | ErrorKind::InvalidToken) => DeliverError::Retryable {
            reason,
            retry_after: None,
        },
        _ => DeliverError::Permanent { reason },
    }
}
