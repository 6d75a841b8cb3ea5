//! The one hang-up cause type: a FreeSWITCH cause this build knows, or the name as the switch
//! spelled it. Parsed once, where text from the switch arrives (events, `-ERR` replies, config);
//! everything after matches on the variant and never reads the name again.

use std::fmt;

use super::HangupCause;

/// A FreeSWITCH hangup cause (`USER_BUSY`, `ORIGINATOR_CANCEL`, ...).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Cause {
    /// A cause of `switch_cause_t` (Q.850 and FreeSWITCH's own).
    Known(HangupCause),
    /// A name this build does not know, kept intact (a newer switch, a module's own text).
    Other(String),
}

impl Cause {
    /// `NORMAL_CLEARING` (16).
    pub const NORMAL_CLEARING: Cause = Cause::Known(HangupCause::NormalClearing);
    /// `NO_ANSWER` (19): the cause we kill a ringing agent leg with at the end of its step.
    pub const NO_ANSWER: Cause = Cause::Known(HangupCause::NoAnswer);
    /// `USER_BUSY` (17).
    pub const USER_BUSY: Cause = Cause::Known(HangupCause::UserBusy);
    /// `ORIGINATOR_CANCEL` (487): the caller gave up; also what we cancel agent legs with then.
    pub const ORIGINATOR_CANCEL: Cause = Cause::Known(HangupCause::OriginatorCancel);
    /// `LOSE_RACE` (702): another leg of a ring-all bridge answered.
    pub const LOSE_RACE: Cause = Cause::Known(HangupCause::LoseRace);
    /// `NORMAL_TEMPORARY_FAILURE` (41): a session ended with an unknown disposition (SIP 503).
    pub const NORMAL_TEMPORARY_FAILURE: Cause = Cause::Known(HangupCause::NormalTemporaryFailure);
    /// `INVALID_NUMBER_FORMAT` (28): a number fsb24 refuses to dial (SIP 484).
    pub const INVALID_NUMBER_FORMAT: Cause = Cause::Known(HangupCause::InvalidNumberFormat);
    /// `DESTINATION_OUT_OF_ORDER` (27).
    pub const DESTINATION_OUT_OF_ORDER: Cause = Cause::Known(HangupCause::DestinationOutOfOrder);

    /// A cause as the switch spelled it (`Hangup-Cause`, `-ERR USER_BUSY`, a config value);
    /// surrounding whitespace is not part of the name.
    pub fn parse(name: &str) -> Self {
        let name = name.trim();
        name.parse()
            .map_or_else(|_| Self::Other(name.to_owned()), Self::Known)
    }

    /// The cause name as FreeSWITCH spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Known(cause) => cause.as_str(),
            Self::Other(name) => name,
        }
    }

    /// The cause to send in a command, if the switch knows it.
    pub fn known(&self) -> Option<HangupCause> {
        match self {
            Self::Known(cause) => Some(*cause),
            Self::Other(_) => None,
        }
    }
}

impl From<HangupCause> for Cause {
    fn from(cause: HangupCause) -> Self {
        Self::Known(cause)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cause({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_parse_to_the_cause_and_others_travel_intact() {
        assert_eq!(Cause::parse(" USER_BUSY\n"), Cause::USER_BUSY);
        assert_eq!(Cause::parse("USER_BUSY").to_string(), "USER_BUSY");
        let other = Cause::parse("SOME_NEW_CAUSE");
        assert_eq!(other, Cause::Other("SOME_NEW_CAUSE".to_owned()));
        assert_eq!(other.to_string(), "SOME_NEW_CAUSE");
        assert_eq!(other.known(), None);
        assert_eq!(Cause::NO_ANSWER.known(), Some(HangupCause::NoAnswer));
    }
}
