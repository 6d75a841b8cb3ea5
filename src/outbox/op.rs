//! The Bitrix24 writes a call produces, as durable data: what the call machine emits, what the
//! outbox stores (JSON) and what the worker turns into REST calls. No IO here.

use std::path::PathBuf;

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

pub use crate::bitrix::{CallType, CrmBinding, FinishCall, RegisterCall};
use crate::ids::{BitrixCallId, BitrixUserId, ChannelId, ExternalCallId, PhoneNumber};

/// What `register` needs that is known when the call arrives (the user and the card come with
/// the first ring).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedCall {
    /// The client's number.
    pub phone: PhoneNumber,
    /// Direction.
    pub call_type: CallType,
    /// Our external line (`LINE_NUMBER`).
    pub line_number: Option<String>,
    /// When the call started on the PBX.
    pub started_at: DateTime<FixedOffset>,
    /// `CRM_CREATE`.
    pub crm_create: bool,
    /// A CRM binding known from the start (a callback form's entity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm: Option<CrmBinding>,
}

impl AcceptedCall {
    /// The `register` of this call for `user`, with the card (`show`) or without.
    pub fn register(&self, user: BitrixUserId, show: bool) -> RegisterCall {
        RegisterCall {
            user,
            phone: self.phone.clone(),
            call_type: self.call_type,
            line_number: self.line_number.clone(),
            started_at: self.started_at,
            crm_create: self.crm_create,
            show,
            crm: self.crm,
        }
    }
}

/// One Bitrix24 write belonging to one call. The outbox delivers a call's writes in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BitrixWrite {
    /// `telephony.externalcall.register`; its `CALL_ID` is stored with the call for the writes after it.
    Register(RegisterCall),
    /// The call was registered by Bitrix24 itself (click-to-call, `ONEXTERNALCALLSTART`): remember
    /// its `CALL_ID`; nothing is sent.
    Adopt {
        /// Bitrix24's `CALL_ID` from the event.
        call_id: BitrixCallId,
    },
    /// `telephony.externalcall.show` for these users (one request with a `USER_ID` array).
    Show {
        /// Users who should see the card from now on.
        users: Vec<BitrixUserId>,
    },
    /// `telephony.externalcall.hide` for these users.
    Hide {
        /// Users whose card closes now.
        users: Vec<BitrixUserId>,
    },
    /// `telephony.externalcall.finish`.
    Finish(FinishCall),
    /// `telephony.externalcall.attachRecord` with the file at this path (after `finish`).
    AttachRecord {
        /// The recording on local disk (`.wav` or `.mp3`).
        path: PathBuf,
    },
    /// A fact about the call's progress, kept for startup recovery; nothing is sent.
    Note(CallNote),
}

/// What a call has done so far, stored with its writes so that a run killed mid-call can be
/// finished by the next one with the real outcome (see `outbox::recover`). The time of a note
/// is the time it was stored, unless it carries its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallNote {
    /// fsb24 took the call: stored before any agent rings, so that a call the switch goes on
    /// ringing after a kill can still be registered (its `register` comes with the first card).
    Accepted(AcceptedCall),
    /// This user's agent answered (or the call was transferred to them): they are talking now.
    Answered {
        /// The Bitrix24 user talking.
        user: BitrixUserId,
        /// When the answer was seen, stamped by the call task as it happens: the note itself is
        /// stored beside the call loop and may reach the disk later (a busy disk delayed it by
        /// over half a second, which made a recovered 1 s talk read 0 s). Older notes lack it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<DateTime<Utc>>,
    },
    /// The switch is recording the call to this file (complete once the channel is gone).
    Recording {
        /// The recording on local disk.
        path: PathBuf,
    },
    /// The switch channel that carries a call whose key does not name it (click-to-call: the
    /// employee's leg, which fsb24 originates and bridges to the customer).
    Channel {
        /// Its `Unique-ID`.
        channel: ChannelId,
    },
}

/// A write addressed to its call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallWrite {
    /// The call's stable key, also sent as `EXTERNAL_CALL_ID`.
    pub call: ExternalCallId,
    /// The write.
    pub write: BitrixWrite,
}

impl CallWrite {
    /// `writes` addressed to `call`, in order.
    pub fn all(call: &ExternalCallId, writes: impl IntoIterator<Item = BitrixWrite>) -> Vec<Self> {
        writes
            .into_iter()
            .map(|write| Self {
                call: call.clone(),
                write,
            })
            .collect()
    }
}
