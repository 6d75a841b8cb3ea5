//! [`Secret`]: a credential that never reaches logs, `Debug` output or error messages.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A credential (ESL password, OAuth client secret, the whole Bitrix24 webhook URL...).
///
/// `Debug` and `Display` print a fixed placeholder; the only way to the value is
/// [`Secret::expose`], so every use of the plain text is greppable. A value of the wrong type
/// (`password = 12345678`) is refused without showing it: serde's own message would.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plain credential, for the one place that must send it (never log it).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretVisitor)
    }
}

struct SecretVisitor;

const WRONG_TYPE: &str =
    "invalid type: expected a string in quotes (value not shown because it is secret)";

/// Every non-string shape gets the same message, which never contains the value.
macro_rules! refuse {
    ($($method:ident($($ty:ty)?)),* $(,)?) => {
        $(fn $method<E: de::Error>(self $(, _: $ty)?) -> Result<Secret, E> {
            Err(E::custom(WRONG_TYPE))
        })*
    };
}

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
        Ok(Secret(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Secret, E> {
        Ok(Secret(v))
    }

    fn visit_char<E: de::Error>(self, v: char) -> Result<Secret, E> {
        Ok(Secret(v.to_string()))
    }

    refuse!(
        visit_bool(bool),
        visit_i64(i64),
        visit_i128(i128),
        visit_u64(u64),
        visit_u128(u128),
        visit_f64(f64),
        visit_bytes(&[u8]),
        visit_none(),
        visit_unit(),
    );

    fn visit_some<D: Deserializer<'de>>(self, _: D) -> Result<Secret, D::Error> {
        Err(de::Error::custom(WRONG_TYPE))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
        Err(de::Error::custom(WRONG_TYPE))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
        Err(de::Error::custom(WRONG_TYPE))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(..)");
        assert_eq!(secret.to_string(), "<redacted>");
        assert_eq!(secret.expose(), "hunter2");
    }
}
