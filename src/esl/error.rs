//! The one error type of the ESL adapter: every failure names the command it belongs to.

use std::time::Duration;

/// Why an ESL command or session failed. A failure closes at most the session it happened on.
#[derive(Debug, thiserror::Error)]
pub enum EslError {
    /// No connection right now (inbound reconnecting, or the session is gone).
    #[error("{command}: not connected to FreeSWITCH")]
    NotConnected {
        /// Command name.
        command: &'static str,
    },
    /// No reply within the command timeout.
    #[error("{command}: no reply within {timeout:?}")]
    Timeout {
        /// Command name.
        command: &'static str,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// FreeSWITCH answered `-ERR ...` (or another refusal).
    #[error("{command}: refused: {reply}")]
    Rejected {
        /// Command name.
        command: &'static str,
        /// The reply text.
        reply: String,
    },
    /// The connection closed while the command was in flight.
    #[error("{command}: connection closed")]
    Closed {
        /// Command name.
        command: &'static str,
    },
    /// A malformed frame or another transport failure.
    #[error("{command}: protocol failure")]
    Protocol {
        /// Command name.
        command: &'static str,
        /// What the ESL crate reported.
        #[source]
        source: freeswitch_esl_tokio::EslError,
    },
    /// The outbound socket was not opened as `async full`.
    #[error(
        "connect: socket mode {socket_mode:?}, control {control:?}; the dialplan must use `socket <addr> async full`"
    )]
    NotAsyncFull {
        /// `Socket-Mode` of the connect reply.
        socket_mode: Option<String>,
        /// `Control` of the connect reply.
        control: Option<String>,
    },
    /// A reply lacked something it must carry (e.g. `Unique-ID`, `Job-UUID`) or did not parse.
    #[error("{command}: malformed reply: {detail}")]
    MalformedReply {
        /// Command name.
        command: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// `originate` finished without a leg.
    #[error("originate: failed with {cause}")]
    OriginateFailed {
        /// The cause FreeSWITCH gave (`-ERR USER_BUSY`).
        cause: super::Cause,
    },
}

impl EslError {
    /// Classifies an error of the ESL crate for `command`.
    pub(crate) fn from_crate(
        command: &'static str,
        timeout: Duration,
        err: freeswitch_esl_tokio::EslError,
    ) -> Self {
        use freeswitch_esl_tokio::EslError as E;
        match err {
            E::NotConnected => Self::NotConnected { command },
            E::ConnectionClosed => Self::Closed { command },
            E::Timeout { .. } => Self::Timeout { command, timeout },
            E::CommandFailed { reply_text } | E::UnexpectedReply { reply_text } => Self::Rejected {
                command,
                reply: reply_text.trim_end().to_owned(),
            },
            other => Self::Protocol {
                command,
                source: other,
            },
        }
    }
}
