//! `/healthz` and `/readyz`.
//!
//! - `/healthz` answers 200 while the process serves HTTP at all: for a supervisor that
//!   restarts a hung daemon.
//! - `/readyz` answers 200 only when fsb24 can do its whole job: the inbound ESL connection is
//!   up (ringing ends on time, presence is fresh), the outbox accepts writes (calls are durable),
//!   and the portal's state is known (at least one request got an answer or failed; while it is
//!   unknown `/readyz` sends one cheap read itself). A portal that is *down* does not make
//!   fsb24 unready: calls go on and the outbox holds their writes. Otherwise 503, listing what
//!   is missing, one check per line.

use std::fmt::Write as _;

use crate::bitrix::PortalState;

/// The readiness checks, each with its finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Readiness {
    /// The inbound ESL connection is up.
    pub esl_connected: bool,
    /// The outbox store accepts writes (`Err`: why not).
    pub outbox: Result<(), String>,
    /// The portal's state.
    pub portal: PortalState,
}

impl Readiness {
    /// Whether every check passes.
    pub(crate) fn is_ready(&self) -> bool {
        self.esl_connected && self.outbox.is_ok() && self.portal != PortalState::Unknown
    }

    /// One line per check: `ok <check>` or `FAIL <check>: <why>`.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}",
            if self.is_ready() {
                "ready"
            } else {
                "not ready"
            }
        );
        let line = |out: &mut String, ok: bool, check: &str, why: &str| {
            let _ = if ok {
                writeln!(out, "ok   {check}")
            } else {
                writeln!(out, "FAIL {check}: {why}")
            };
        };
        line(
            &mut out,
            self.esl_connected,
            "esl_inbound",
            "not connected to mod_event_socket",
        );
        let why = self.outbox.as_ref().err().map_or("", String::as_str);
        line(&mut out, self.outbox.is_ok(), "outbox_writable", why);
        let portal = match self.portal {
            PortalState::Unknown => "unknown",
            PortalState::Up => "up",
            PortalState::Down => "down (calls go on; the outbox holds their writes)",
        };
        let _ = if self.portal == PortalState::Unknown {
            writeln!(out, "FAIL portal: state unknown")
        } else {
            writeln!(out, "ok   portal: {portal}")
        };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_down_portal_is_ready_but_an_unknown_one_or_a_lost_switch_is_not() {
        let ready = Readiness {
            esl_connected: true,
            outbox: Ok(()),
            portal: PortalState::Down,
        };
        assert!(ready.is_ready());
        assert!(ready.render().starts_with("ready\n"));
        let unknown = Readiness {
            portal: PortalState::Unknown,
            ..ready.clone()
        };
        assert!(!unknown.is_ready());
        let lost = Readiness {
            esl_connected: false,
            ..ready
        };
        assert!(lost.render().contains("FAIL esl_inbound"));
    }
}
