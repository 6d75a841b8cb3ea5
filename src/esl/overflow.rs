//! What the ESL crate's reader does when a connection's event queue is full: it waits.
//!
//! freeswitch-esl-tokio drops an arriving event when its queue is full unless told to wait
//! ([`EventOverflow::BlockFor`]). Waiting is backpressure all the way to the switch: the reader
//! stops reading, the socket's buffers fill, and FreeSWITCH's event write waits in turn. The
//! crate warns that waiting is only sound where the consumer never stalls, because command
//! replies share the reader: fsb24's consumers qualify. The outbound pump hands events on
//! without awaiting the call task (`outbound/forward.rs`) and the inbound read loop applies
//! presence and publishes synchronously, so a wait lasts only until the consumer's task is
//! scheduled again. The queue fills at all only because the reader can parse a socket read's
//! worth of events (a 64 KiB read holds hundreds of small ones) before yielding; under the
//! default `DropIncoming` a 3,000-event flood lost 223 events that way in a CI run.
//!
//! The wait is bounded so a wedged consumer cannot hold the switch's socket forever: past it
//! the crate drops the event after all, and fsb24 counts it, logs it as an error and resyncs
//! what it could have changed. The bound is [`WAIT`], above the scheduling delays seen in the
//! overloaded load bench, or half the connection's command timeout if that is shorter, so a
//! command sent during a wait still gets its reply in time. The switch side tolerates far more:
//! `switch_socket_send` (switch_apr.c) retries a blocked write every 10 ms, 60,000 times
//! (10 minutes), before it gives up on the event.

use std::time::Duration;

use freeswitch_esl_tokio::{EslConnectOptions, EventOverflow};

/// Longest a reader waits for queue room before the crate drops the event.
pub(crate) const WAIT: Duration = Duration::from_secs(2);

/// `options` with the reader waiting for queue room instead of dropping: up to [`WAIT`], or
/// half of `command_timeout` if that is shorter.
pub(crate) fn backpressure(
    options: EslConnectOptions,
    command_timeout: Duration,
) -> EslConnectOptions {
    let wait = WAIT.min(command_timeout / 2);
    options.with_event_overflow(EventOverflow::BlockFor(wait))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_wait_instead_of_dropping() {
        let options = backpressure(EslConnectOptions::new(), Duration::from_secs(5));
        assert_eq!(options.event_overflow(), EventOverflow::BlockFor(WAIT));
    }

    #[test]
    fn a_short_command_timeout_shortens_the_wait() {
        let options = backpressure(EslConnectOptions::new(), Duration::from_millis(100));
        let wait = Duration::from_millis(50);
        assert_eq!(options.event_overflow(), EventOverflow::BlockFor(wait));
    }
}
