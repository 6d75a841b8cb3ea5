//! Typed identifiers and validated values shared by every module.
//!
//! Nothing here does IO. Each id is a newtype so that a FreeSWITCH channel UUID can never be passed
//! where a Bitrix24 call id is expected. [`PhoneNumber`] is the only way a number reaches a dial
//! string: it admits digits with an optional leading `+` and nothing else.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a value that is already known to be well-formed.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The raw text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }
    };
}

string_id!(
    /// A FreeSWITCH channel `Unique-ID` (the caller leg of an outbound socket, or any other leg).
    ChannelId
);
string_id!(
    /// An agent leg we originate; its value is the `origination_uuid` we assign, so it equals the
    /// new channel's `Unique-ID` once it exists.
    LegId
);
string_id!(
    /// A `bgapi` `Job-UUID`.
    JobId
);
string_id!(
    /// The `Event-UUID` of one `sendmsg execute`, echoed back as `Application-UUID`.
    ExecId
);
string_id!(
    /// An agent as named in the config (normally the SIP extension, e.g. `1001`).
    AgentId
);
string_id!(
    /// A queue as named in the config.
    QueueName
);
string_id!(
    /// Bitrix24's `CALL_ID` (`externalCall.<hex>.<unix seconds>`).
    BitrixCallId
);
string_id!(
    /// Our `EXTERNAL_CALL_ID`: stable per physical call and leg, so a retried register is safe.
    ExternalCallId
);

impl BitrixCallId {
    /// The longest `CALL_ID` accepted from outside (Bitrix24's are 57 bytes).
    pub const MAX_LEN: usize = 128;

    /// Checks a `CALL_ID` that arrived from outside (an event POST): `externalCall.<hex>.<digits>`
    /// and at most [`Self::MAX_LEN`] bytes, so it is safe to log, store and send back.
    pub fn parse(raw: &str) -> Option<Self> {
        let rest = raw.strip_prefix("externalCall.")?;
        let (hex, digits) = rest.split_once('.')?;
        let ok = raw.len() <= Self::MAX_LEN
            && !hex.is_empty()
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
            && !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| Self(raw.to_owned()))
    }
}

impl LegId {
    /// A fresh random leg id (UUID v4), used as `origination_uuid`.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

impl ExecId {
    /// A fresh random execute id (UUID v4), used as `Event-UUID`.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

impl JobId {
    /// A fresh random job id (UUID v4), used as `Job-UUID`.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

/// Fresh leg and execute ids for one call, drawn from a seed its creator chose (random in the
/// daemon, fixed in tests), so a call machine's run is a pure function of its inputs. Each id is
/// a UUID v4 (`origination_uuid`, `Event-UUID`); a call's ids follow each other from its seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdSequence {
    seed: u128,
    drawn: u128,
}

impl IdSequence {
    /// Ids following `seed`.
    pub fn new(seed: u128) -> Self {
        Self { seed, drawn: 0 }
    }

    /// Ids following a random seed.
    pub fn random() -> Self {
        Self::new(uuid::Uuid::new_v4().as_u128())
    }

    fn next_uuid(&mut self) -> String {
        self.drawn += 1;
        let bytes = self.seed.wrapping_add(self.drawn).to_be_bytes();
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    /// The next leg id.
    pub fn leg(&mut self) -> LegId {
        LegId(self.next_uuid())
    }

    /// The next execute id.
    pub fn exec(&mut self) -> ExecId {
        ExecId(self.next_uuid())
    }
}

impl From<LegId> for ChannelId {
    fn from(leg: LegId) -> Self {
        ChannelId(leg.0)
    }
}

/// A Bitrix24 user id (`USER_ID`, `ASSIGNED_BY_ID`). Bitrix24 sends these as strings in CRM and
/// user answers and as numbers in telephony answers; both decode here.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct BitrixUserId(pub u64);

impl fmt::Display for BitrixUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for BitrixUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "user#{}", self.0)
    }
}

impl<'de> Deserialize<'de> for BitrixUserId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Num(u64),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Num(n) => Ok(Self(n)),
            Either::Text(s) => s
                .trim()
                .parse()
                .map(Self)
                .map_err(|_| serde::de::Error::custom(format!("invalid user id {s:?}"))),
        }
    }
}

/// Why a phone number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Nothing but formatting characters (or nothing at all).
    #[error("phone number is empty")]
    Empty,
    /// A character that is neither a digit, a leading `+`, nor harmless formatting.
    #[error("phone number contains {0:?}, which is not allowed")]
    BadCharacter(char),
    /// More digits than any E.164 number (15) plus a generous allowance for prefixes.
    #[error("phone number has {0} digits; at most 20 are allowed")]
    TooLong(usize),
}

/// A phone number reduced to an optional leading `+` and 1-20 ASCII digits.
///
/// This is the only type that may be interpolated into a FreeSWITCH dial string or originate
/// command: it cannot carry `{`, `}`, `,`, `|`, `'`, `&`, spaces or newlines.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parses a number as a human or Bitrix24 wrote it: spaces, `-`, `.`, `(`, `)` and `/` are
    /// dropped; a `+` is allowed only first; anything else is refused.
    pub fn parse(raw: &str) -> Result<Self, PhoneError> {
        let mut out = String::with_capacity(raw.len());
        for (i, c) in raw.trim().chars().enumerate() {
            match c {
                '0'..='9' => out.push(c),
                '+' if i == 0 => out.push(c),
                ' ' | '-' | '.' | '(' | ')' | '/' | '\u{a0}' => {}
                other => return Err(PhoneError::BadCharacter(other)),
            }
        }
        let digits = out.trim_start_matches('+').len();
        if digits == 0 {
            return Err(PhoneError::Empty);
        }
        if digits > 20 {
            return Err(PhoneError::TooLong(digits));
        }
        Ok(Self(out))
    }

    /// The normalised text (`+` and digits only).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.0)
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_from_outside_must_look_like_bitrix24s_own() {
        let real = "externalCall.5be0a1c2d3e4f5a6b7c8d9e0f1a2b3c4.1777879000";
        assert_eq!(BitrixCallId::parse(real).unwrap().as_str(), real);
        let long = format!("externalCall.{}.1", "a".repeat(120));
        for bad in [
            "",
            "externalCall..1",
            "externalCall.abc.",
            "externalCall.xyz.1",
            "externalCall.abc.1.2",
            "externalCall.abc.1\nforged",
            "externalcall.abc.1",
            " externalCall.abc.1",
            long.as_str(),
        ] {
            assert!(
                BitrixCallId::parse(bad).is_none(),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn phone_numbers_keep_only_digits_and_a_leading_plus() {
        assert_eq!(
            PhoneNumber::parse("+49 (30) 123-456.789").unwrap().as_str(),
            "+4930123456789"
        );
        assert_eq!(PhoneNumber::parse(" 1001 ").unwrap().as_str(), "1001");
    }

    #[test]
    fn phone_numbers_that_could_inject_into_a_dial_string_are_refused() {
        for bad in [
            "1001,user/1002",
            "1001|x",
            "{a=b}1",
            "1'&socket(x)",
            "12\n34",
            "1+2",
            "abc",
        ] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert_eq!(PhoneNumber::parse("+"), Err(PhoneError::Empty));
        assert_eq!(
            PhoneNumber::parse(&"1".repeat(21)),
            Err(PhoneError::TooLong(21))
        );
    }

    #[test]
    fn user_ids_decode_from_numbers_and_strings() {
        let a: BitrixUserId = serde_json::from_str("17").unwrap();
        let b: BitrixUserId = serde_json::from_str("\"17\"").unwrap();
        assert_eq!(a, b);
        assert!(serde_json::from_str::<BitrixUserId>("\"x\"").is_err());
    }

    #[test]
    fn a_sequence_draws_distinct_v4_uuids_and_repeats_for_its_seed() {
        let draw = |seed| {
            let mut ids = IdSequence::new(seed);
            [ids.leg().0, ids.exec().0, ids.leg().0]
        };
        let ids = draw(u128::MAX);
        for id in &ids {
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(uuid.get_version_num(), 4, "{id}");
        }
        assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
        assert_eq!(draw(u128::MAX), ids);
        assert_ne!(draw(7), ids);
    }
}
