//! Typed domain commands: dial strings, variable sets, record paths, originate requests.
//!
//! Every piece that reaches FreeSWITCH text is validated here to a character set that cannot
//! break out of its slot (`,` `|` `{` `}` `[` `]` `'` spaces and newlines are impossible).
//! Numbers from outside arrive only as [`PhoneNumber`]. Rendering happens only in `esl/`.

use std::fmt::{self, Write as _};
use std::time::Duration;

use crate::ids::{LegId, PhoneNumber};

/// A value refused before it could reach a FreeSWITCH command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// A field contains a character outside its allowed set, or is empty/too long.
    #[error("{field}: {value:?} is not allowed")]
    Invalid {
        /// Which kind of value.
        field: &'static str,
        /// The refused value.
        value: String,
    },
    /// A dial string needs at least one leg.
    #[error("dial string has no legs")]
    NoLegs,
}

fn check(
    field: &'static str,
    value: &str,
    max: usize,
    ok: impl Fn(char) -> bool,
) -> Result<String, CommandError> {
    if value.is_empty() || value.len() > max || !value.chars().all(ok) {
        return Err(CommandError::Invalid {
            field,
            value: value.to_owned(),
        });
    }
    Ok(value.to_owned())
}

fn word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

macro_rules! validated {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr, $ok:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// Validates `value`.
            pub fn parse(value: &str) -> Result<Self, CommandError> {
                check($field, value, $max, $ok).map(Self)
            }

            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

validated!(
    /// A directory user / SIP extension (`1001`, `sales.desk`): letters, digits, `_ - .`.
    Extension, "extension", 64, word_char
);
validated!(
    /// A SIP domain or host, optionally with `:port`.
    Domain, "domain", 253, |c| word_char(c) || c == ':'
);
validated!(
    /// A sofia gateway or profile name, or a dialplan context / dialplan name.
    Name, "name", 64, word_char
);
validated!(
    /// A complete endpoint rendered from the configured dial template (`user/1001@pbx`,
    /// `sofia/internal/1001%pbx`): no `,` `|` `{` `[` quotes or spaces, so it stays one leg.
    DialTarget, "dial target", 256, |c| c.is_ascii_alphanumeric() || "/@._:-+=;%".contains(c)
);
validated!(
    /// A channel variable name.
    VarName, "variable name", 64, |c| c.is_ascii_alphanumeric() || c == '_'
);
validated!(
    /// A channel variable value: printable, no spaces, no `|` (our multiset delimiter), no quotes.
    VarValue, "variable value", 512, |c| c.is_ascii_graphic() && !matches!(c, '|' | '\'' | '"')
);
validated!(
    /// A file path or media URI (`/var/rec/x.wav`, `tone_stream://%(2000,4000,440,480)`): printable,
    /// no spaces (uuid_record splits its arguments on spaces), no quotes.
    MediaPath, "media path", 1024, |c| c.is_ascii_graphic() && !matches!(c, '\'' | '"' | '|')
);

/// Several channel variables, set at once with `multiset`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VarSet(Vec<(VarName, VarValue)>);

impl VarSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `name=value` after validating both.
    pub fn with(mut self, name: &str, value: &str) -> Result<Self, CommandError> {
        self.0
            .push((VarName::parse(name)?, VarValue::parse(value)?));
        Ok(self)
    }

    /// Whether there is nothing to set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `multiset` argument: `^^|a=1|b=2` (custom delimiter, so values may hold commas).
    pub(crate) fn multiset_arg(&self) -> String {
        let mut out = String::from("^^|");
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push('|');
            }
            let _ = write!(out, "{name}={value}");
        }
        out
    }
}

/// Where one leg rings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A registered directory user: `user/<ext>@<domain>`.
    User {
        /// The extension.
        ext: Extension,
        /// The directory domain.
        domain: Domain,
    },
    /// An external number through a sofia gateway: `sofia/gateway/<gw>/<number>`.
    Gateway {
        /// Gateway name.
        gateway: Name,
        /// The number.
        number: PhoneNumber,
    },
    /// An external number on a profile towards a host: `sofia/<profile>/<number>@<host>`.
    Profile {
        /// Sofia profile.
        profile: Name,
        /// The number.
        number: PhoneNumber,
        /// Host (and port) to send the INVITE to.
        host: Domain,
    },
    /// An endpoint rendered from the configured dial template.
    Target(DialTarget),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User { ext, domain } => write!(f, "user/{ext}@{domain}"),
            Self::Gateway { gateway, number } => write!(f, "sofia/gateway/{gateway}/{number}"),
            Self::Profile {
                profile,
                number,
                host,
            } => write!(f, "sofia/{profile}/{number}@{host}"),
            Self::Target(target) => f.write_str(target.as_str()),
        }
    }
}

/// A ring time as FreeSWITCH's whole seconds (`leg_timeout`, `originate` timeout): rounded up,
/// so a safety net never fires before the time it backs up, and at least 1 (0 means none).
pub(crate) fn whole_secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs() + u64::from(d.subsec_nanos() > 0))
        .unwrap_or(u32::MAX)
        .max(1)
}

/// One leg: a pre-assigned `origination_uuid`, a safety-net `leg_timeout`, an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialLeg {
    leg: LegId,
    endpoint: Endpoint,
    leg_timeout_secs: Option<u32>,
    caller_id_number: Option<PhoneNumber>,
    vars: Vec<(&'static str, String)>,
}

impl DialLeg {
    /// A leg; `leg` must be a UUID (as [`LegId::random`] makes).
    pub fn new(leg: LegId, endpoint: Endpoint) -> Result<Self, CommandError> {
        if uuid::Uuid::parse_str(leg.as_str()).is_err() {
            return Err(CommandError::Invalid {
                field: "leg id",
                value: leg.as_str().to_owned(),
            });
        }
        Ok(Self {
            leg,
            endpoint,
            leg_timeout_secs: None,
            caller_id_number: None,
            vars: Vec::new(),
        })
    }

    /// A channel variable of fsb24's own on this leg (read back when the leg reaches fsb24's
    /// socket). The value is letters, digits and `+-_.:` only, at most 128 of them, so it can
    /// close no bracket and split no dial string.
    pub fn var(mut self, name: &'static str, value: &str) -> Result<Self, CommandError> {
        let value = check("channel variable", value, 128, |c| {
            c.is_ascii_alphanumeric() || "+-_.:".contains(c)
        })?;
        let name = check("channel variable name", name, 64, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
        })
        .map(|_| name)?;
        self.vars.push((name, value));
        Ok(self)
    }

    /// FreeSWITCH's own ring limit for this leg (whole seconds; a safety net only).
    pub fn leg_timeout(mut self, secs: u32) -> Self {
        self.leg_timeout_secs = Some(secs);
        self
    }

    /// Caller id shown on this leg.
    pub fn caller_id_number(mut self, number: PhoneNumber) -> Self {
        self.caller_id_number = Some(number);
        self
    }

    /// The leg's id (its future `Unique-ID`).
    pub fn leg(&self) -> &LegId {
        &self.leg
    }
}

impl fmt::Display for DialLeg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[origination_uuid={}", self.leg)?;
        if let Some(secs) = self.leg_timeout_secs {
            write!(f, ",leg_timeout={secs}")?;
        }
        if let Some(number) = &self.caller_id_number {
            write!(f, ",origination_caller_id_number={number}")?;
        }
        for (name, value) in &self.vars {
            write!(f, ",{name}={value}")?;
        }
        write!(f, "]{}", self.endpoint)
    }
}

/// Legs rung at once (`,`) or one after another (`|`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialString {
    legs: Vec<DialLeg>,
    separator: char,
}

impl DialString {
    /// One leg.
    pub fn single(leg: DialLeg) -> Self {
        Self {
            legs: vec![leg],
            separator: ',',
        }
    }

    /// Ring all legs at once; the first to answer wins, the others end with LOSE_RACE.
    pub fn simultaneous(legs: Vec<DialLeg>) -> Result<Self, CommandError> {
        Self::of(legs, ',')
    }

    /// Try legs in order, each after the previous one failed.
    pub fn sequential(legs: Vec<DialLeg>) -> Result<Self, CommandError> {
        Self::of(legs, '|')
    }

    fn of(legs: Vec<DialLeg>, separator: char) -> Result<Self, CommandError> {
        if legs.is_empty() {
            return Err(CommandError::NoLegs);
        }
        Ok(Self { legs, separator })
    }

    /// The legs, in dial order.
    pub fn legs(&self) -> &[DialLeg] {
        &self.legs
    }
}

impl fmt::Display for DialString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, leg) in self.legs.iter().enumerate() {
            if i > 0 {
                f.write_char(self.separator)?;
            }
            write!(f, "{leg}")?;
        }
        Ok(())
    }
}

/// What an originated leg does once it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginateThen {
    /// Bridge it onwards (click-to-call: agent first, then the customer).
    Bridge(DialString),
    /// Park it.
    Park,
    /// Hand it to fsb24's own socket (`socket <addr> async full`), as the dialplan does with a
    /// call that comes in: the callback's customer leg then runs as an inbound call.
    Socket(std::net::SocketAddr),
}

/// A `bgapi originate` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginateRequest {
    /// The first leg (its `origination_uuid` is the answer of a successful job).
    pub leg: DialLeg,
    /// What the answered leg runs.
    pub then: OriginateThen,
    /// Overall ring time in whole seconds (originate's positional timeout).
    pub timeout_secs: u32,
}

impl OriginateRequest {
    /// The `originate` API argument string.
    pub(crate) fn api_args(&self) -> String {
        let app = match &self.then {
            OriginateThen::Bridge(target) => format!("&bridge({target})"),
            OriginateThen::Park => "&park()".to_owned(),
            // Quoted: originate takes the application as one argument.
            OriginateThen::Socket(addr) => format!("'&socket({addr} async full)'"),
        };
        // Every piece is validated and space-free, so no quoting is needed.
        format!(
            "{{ignore_early_media=true}}{} {app} XML default undef undef {}",
            self.leg, self.timeout_secs
        )
    }
}

#[cfg(test)]
mod tests;
