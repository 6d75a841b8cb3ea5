//! The outbox's [`Deliver`] seam implemented on [`BitrixClient`]: one stored write becomes one
//! typed Bitrix24 command, and its failure is classified for the outbox worker.

use crate::ids::{BitrixCallId, ExternalCallId};
use crate::outbox::deliver::{Deliver, DeliverError, Delivered};
use crate::outbox::op::{BitrixWrite, CrmBinding};
use crate::outbox::store::RegisterResult;

use std::time::Duration;

use super::client::BitrixClient;
use super::error::{BitrixError, ErrorKind, WRONG_AUTH_TYPE_ADVICE};

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
                    .map_err(|e| self.classify(e))?;
                let crm = match (r.crm_entity_type.as_deref(), r.crm_entity_id) {
                    (Some(t), Some(id)) if !t.is_empty() && id > 0 => Some(CrmBinding {
                        entity_type: t.to_owned(),
                        entity_id: id,
                    }),
                    _ => None,
                };
                return Ok(Delivered::Registered(RegisterResult {
                    call_id: r.call_id,
                    crm,
                    created_lead: r.created_lead,
                }));
            }
            // Adopted calls were registered by Bitrix24 itself; the worker stores the id.
            // Notes are for startup recovery; the planner skips them before they get here.
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
            .map_err(|e| self.classify(e))
    }
}

impl BitrixClient {
    /// Classifies `err` for the worker; a method held for its operating budget is retried
    /// when the hold ends, not at the backoff.
    fn classify(&self, err: BitrixError) -> DeliverError {
        // A configuration error: said once, clearly; each refused write is dead-lettered at its
        // first refusal (no retries), for `fsb24 outbox retry` after the fix.
        if err.is_wrong_auth_type() && self.first_wrong_auth() {
            tracing::error!(
                method = err.method().unwrap_or_default(),
                "Bitrix24 refused webhook auth (WRONG_AUTH_TYPE): {WRONG_AUTH_TYPE_ADVICE}"
            );
        }
        let wait = match (err.kind(), err.method()) {
            (Some(ErrorKind::OperationTimeLimit), Some(method)) => self.held_for(method),
            _ => None,
        };
        classify(err, wait)
    }
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
