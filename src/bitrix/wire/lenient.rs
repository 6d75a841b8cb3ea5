//! Decoders for Bitrix24's type drift: ids as strings or numbers, `""`/`null` for "absent",
//! `"Y"`/`"N"`/`0`/`1`/booleans for flags, and PHP's empty array `[]` where a map is meant.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Error};
use serde_json::Value;

/// A JSON object that PHP serialises as `[]` when it is empty.
#[derive(Debug, Clone, PartialEq)]
pub struct MapOrEmpty<T>(pub BTreeMap<String, T>);

impl<T> Default for MapOrEmpty<T> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for MapOrEmpty<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(Self::default()),
            Value::Array(items) if items.is_empty() => Ok(Self::default()),
            Value::Array(items) => {
                // A PHP list: keys are the positions.
                let map = items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| {
                        Ok((
                            i.to_string(),
                            serde_json::from_value(v).map_err(D::Error::custom)?,
                        ))
                    })
                    .collect::<Result<_, D::Error>>()?;
                Ok(Self(map))
            }
            Value::Object(obj) => {
                let map = obj
                    .into_iter()
                    .map(|(k, v)| Ok((k, serde_json::from_value(v).map_err(D::Error::custom)?)))
                    .collect::<Result<_, D::Error>>()?;
                Ok(Self(map))
            }
            other => Err(D::Error::custom(format!(
                "expected a map or [], got {other}"
            ))),
        }
    }
}

/// A non-negative integer sent as a number or a digit string; `null`, `""`, `false` and `{}`
/// mean absent.
pub(super) fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null | Value::Bool(false) => Ok(None),
        Value::Number(n) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("expected a non-negative integer, got {n}"))),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("expected an integer, got {s:?}"))),
        Value::Object(o) if o.is_empty() => Ok(None),
        other => Err(D::Error::custom(format!(
            "expected an integer, got {other}"
        ))),
    }
}

/// Like [`opt_u64`] but required.
pub(super) fn u64_flex<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    opt_u64(d)?.ok_or_else(|| D::Error::custom("missing integer"))
}

/// A string that may be `null` (read as empty) or a number (read as its text).
pub(super) fn string_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(opt_string(d)?.unwrap_or_default())
}

/// A string where `null`, `false`, `""` and `{}` mean absent; numbers are read as text.
pub(super) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Null | Value::Bool(false) => Ok(None),
        Value::Object(o) if o.is_empty() => Ok(None),
        other => Err(D::Error::custom(format!("expected a string, got {other}"))),
    }
}

/// A flag sent as `true`/`false`, `1`/`0`, `"1"`/`"0"` or `"Y"`/`"N"`; `null` is false.
pub(super) fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Bool(b) => Ok(b),
        Value::Null => Ok(false),
        Value::Number(n) => Ok(n.as_f64().is_some_and(|f| f != 0.0)),
        Value::String(s) => match s.trim().to_ascii_uppercase().as_str() {
            "Y" | "1" | "TRUE" => Ok(true),
            "N" | "0" | "FALSE" | "" => Ok(false),
            _ => Err(D::Error::custom(format!("expected a flag, got {s:?}"))),
        },
        other => Err(D::Error::custom(format!("expected a flag, got {other}"))),
    }
}

/// A list that PHP may send as `[]`, as a list, or as a map keyed by position.
pub(super) fn list<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .into_iter()
            .map(|v| serde_json::from_value(v).map_err(D::Error::custom))
            .collect(),
        Value::Object(obj) => obj
            .into_iter()
            .map(|(_, v)| serde_json::from_value(v).map_err(D::Error::custom))
            .collect(),
        other => Err(D::Error::custom(format!("expected a list, got {other}"))),
    }
}
