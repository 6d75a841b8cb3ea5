//! Startup recovery: a call whose run was killed (kill -9) has its `register` stored but no
//! `finish`, and its outbound session died with the process. Before new calls are accepted,
//! [`finish_orphans`] closes every card still open and finishes it with what the outbox knows.

use tracing::{info, warn};

use crate::ids::BitrixUserId;
use crate::outbox::op::{BitrixWrite, CallWrite, FinishCall};
use crate::outbox::{Outbox, OutboxError};

/// `FAILED_REASON` of a finish made by recovery.
pub const RECOVERED_REASON: &str = "fsb24 restarted during the call; outcome unknown";

/// `STATUS_CODE` of a finish made by recovery (not answered as far as fsb24 can tell).
pub const RECOVERED_STATUS: &str = "304";

/// The writes that end a call whose stored writes are `writes` (push order): a `hide` for
/// every user whose card is still open except the finisher, then the `finish`. `fallback` is
/// the finisher when the writes name nobody (register already pruned).
pub fn closing_writes(writes: &[BitrixWrite], fallback: BitrixUserId) -> Vec<BitrixWrite> {
    let mut owner = None;
    let mut open: Vec<BitrixUserId> = Vec::new();
    for write in writes {
        match write {
            BitrixWrite::Register(reg) => {
                owner.get_or_insert(reg.user);
                if reg.show && !open.contains(&reg.user) {
                    open.push(reg.user);
                }
            }
            BitrixWrite::Show { users } => {
                open.retain(|u| !users.contains(u));
                open.extend(users.iter().copied());
            }
            BitrixWrite::Hide { users } => open.retain(|u| !users.contains(u)),
            BitrixWrite::Adopt { .. }
            | BitrixWrite::Finish(_)
            | BitrixWrite::AttachRecord { .. } => {}
        }
    }
    let finisher = open.last().copied().or(owner).unwrap_or(fallback);
    let others: Vec<BitrixUserId> = open.into_iter().filter(|u| *u != finisher).collect();
    let mut out = Vec::with_capacity(2);
    if !others.is_empty() {
        out.push(BitrixWrite::Hide { users: others });
    }
    out.push(BitrixWrite::Finish(FinishCall {
        user: finisher,
        duration_secs: 0,
        status_code: RECOVERED_STATUS.to_owned(),
        add_to_chat: false,
        failed_reason: Some(RECOVERED_REASON.to_owned()),
    }));
    out
}

/// Finishes every call a previous run left open. Call it after opening the outbox and before
/// accepting calls. Returns how many calls were finished.
///
/// What a dead run leaves durably is only the outbox (register, show, hide). The talk outcome
/// (answered? billsec?) is not in it, so the finish says so: the user whose card was open last
/// (else the owner), `DURATION` 0, `STATUS_CODE` 304 and [`RECOVERED_REASON`]. The hides and
/// the finish are stored in one transaction ([`Outbox::push_all`]), so a kill during recovery
/// leaves the call open for the next start.
pub async fn finish_orphans(outbox: &Outbox, fallback: BitrixUserId) -> Result<usize, OutboxError> {
    let orphans = outbox.store().orphans().await?;
    for orphan in &orphans {
        warn!(call = %orphan.call, "call left open by a previous run; finishing it");
        let writes = closing_writes(&orphan.writes, fallback)
            .into_iter()
            .map(|write| CallWrite {
                call: orphan.call.clone(),
                write,
            })
            .collect();
        outbox.push_all(writes).await?;
    }
    if !orphans.is_empty() {
        info!(calls = orphans.len(), "recovered calls left open");
    }
    Ok(orphans.len())
}

#[cfg(test)]
mod tests;
