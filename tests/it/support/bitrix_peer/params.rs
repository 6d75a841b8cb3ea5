//! Request parameters as the portal reads them: query strings and form bodies with PHP bracket
//! arrays (`USER_ID[]=5`, `FILTER[ACTIVE]=Y`) become JSON, JSON bodies are taken as they are.
//! Accessors apply PHP's loose typing (intval, truthiness) the way the real module does.

use serde_json::{Map, Value};

/// The merged parameters of one method call (query, then body on top).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(pub Map<String, Value>);

impl Params {
    /// Parses an `application/x-www-form-urlencoded` string (also a query string).
    pub fn from_form(input: &str) -> Self {
        let mut root = Map::new();
        for (key, value) in url::form_urlencoded::parse(input.as_bytes()) {
            insert_bracketed(&mut root, &key, Value::String(value.into_owned()));
        }
        Self(listify_map(root))
    }

    /// Adds `key=value` with PHP bracket semantics (used for multipart text parts).
    pub fn insert_form_field(&mut self, key: &str, value: String) {
        insert_bracketed(&mut self.0, key, Value::String(value));
    }

    /// Turns bracket objects with keys `0..n` into arrays after incremental inserts.
    pub fn finish_form(self) -> Self {
        Self(listify_map(self.0))
    }

    /// Merges `other` on top of `self`.
    pub fn merge(&mut self, other: Params) {
        self.0.extend(other.0);
    }

    /// Removes and returns a parameter.
    pub fn take(&mut self, name: &str) -> Option<Value> {
        self.0.remove(name)
    }

    /// The raw JSON value of a parameter.
    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// The first of `names` that is present (for lenient names like `FILTER`/`filter`).
    pub fn raw_any(&self, names: &[&str]) -> Option<&Value> {
        names.iter().find_map(|n| self.0.get(*n))
    }

    /// A scalar parameter as a string (numbers and booleans as PHP prints them).
    pub fn str(&self, name: &str) -> Option<String> {
        self.0.get(name).and_then(scalar_string)
    }

    /// A trimmed, non-empty string parameter.
    pub fn non_empty(&self, name: &str) -> Option<String> {
        self.str(name)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    }

    /// PHP `intval` of a parameter; `None` when absent.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.0.get(name).map(intval)
    }

    /// PHP truthiness of a parameter; `default` when absent.
    pub fn truthy(&self, name: &str, default: bool) -> bool {
        self.0.get(name).map_or(default, truthy)
    }

    /// A user list given as one id or an array of ids; `None` when absent or empty.
    pub fn user_ids(&self, name: &str) -> Option<Vec<u64>> {
        let ids: Vec<u64> = match self.0.get(name)? {
            Value::Array(items) => items
                .iter()
                .map(intval)
                .filter(|v| *v > 0)
                .map(|v| v as u64)
                .collect(),
            Value::Object(items) => items
                .values()
                .map(intval)
                .filter(|v| *v > 0)
                .map(|v| v as u64)
                .collect(),
            other => Some(intval(other))
                .filter(|v| *v > 0)
                .map(|v| v as u64)
                .into_iter()
                .collect(),
        };
        Some(ids).filter(|ids| !ids.is_empty())
    }
}

/// A scalar JSON value as PHP would print it into a string.
pub fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(true) => Some("1".to_owned()),
        Value::Bool(false) => Some(String::new()),
        _ => None,
    }
}

/// PHP `intval`: leading optional sign and digits of a string, numbers truncated, else 0.
pub fn intval(value: &Value) -> i64 {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(0),
        Value::Bool(b) => i64::from(*b),
        Value::String(s) => {
            let s = s.trim_start();
            let (sign, digits) = match s.strip_prefix('-') {
                Some(rest) => (-1, rest),
                None => (1, s.strip_prefix('+').unwrap_or(s)),
            };
            let end = digits
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(digits.len());
            digits[..end].parse::<i64>().map_or(0, |v| sign * v)
        }
        _ => 0,
    }
}

/// PHP truthiness: `""`, `"0"`, `0`, `false`, `null` and empty arrays are false.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !(s.is_empty() || s == "0"),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Splits `a[b][]` into `a` and `["b", ""]`; a malformed key stays literal.
fn split_key(key: &str) -> (&str, Vec<&str>) {
    let Some(open) = key.find('[') else {
        return (key, Vec::new());
    };
    if open == 0 {
        return (key, Vec::new());
    }
    let (base, mut rest) = key.split_at(open);
    let mut segments = Vec::new();
    while let Some(inner) = rest.strip_prefix('[') {
        let Some(close) = inner.find(']') else { break };
        segments.push(&inner[..close]);
        rest = &inner[close + 1..];
    }
    (base, segments)
}

fn insert_bracketed(root: &mut Map<String, Value>, key: &str, value: Value) {
    let (base, segments) = split_key(key);
    let Some((last, path)) = segments.split_last() else {
        root.insert(base.to_owned(), value);
        return;
    };
    let mut cur = root
        .entry(base.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    for segment in path {
        let obj = ensure_object(cur);
        let key = segment_key(obj, segment);
        cur = obj.entry(key).or_insert_with(|| Value::Object(Map::new()));
    }
    let obj = ensure_object(cur);
    let key = segment_key(obj, last);
    obj.insert(key, value);
}

fn ensure_object(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    value
        .as_object_mut()
        .expect("invariant: replaced by an object just above")
}

fn segment_key(obj: &Map<String, Value>, segment: &str) -> String {
    if !segment.is_empty() {
        return segment.to_owned();
    }
    let next = obj
        .keys()
        .filter_map(|k| k.parse::<u64>().ok())
        .max()
        .map_or(0, |m| m + 1);
    next.to_string()
}

fn listify_map(map: Map<String, Value>) -> Map<String, Value> {
    map.into_iter().map(|(k, v)| (k, listify(v))).collect()
}

/// PHP arrays keyed exactly `0..n` are lists when JSON-encoded.
pub fn listify(value: Value) -> Value {
    let Value::Object(map) = value else {
        return value;
    };
    let mut numbered: Vec<(u64, Value)> = Vec::with_capacity(map.len());
    let mut sequential = !map.is_empty();
    let map = listify_map(map);
    for (key, value) in &map {
        match key.parse::<u64>() {
            Ok(index) if key == &index.to_string() => numbered.push((index, value.clone())),
            _ => sequential = false,
        }
    }
    numbered.sort_by_key(|(index, _)| *index);
    sequential &= numbered
        .iter()
        .enumerate()
        .all(|(i, (index, _))| *index == i as u64);
    if sequential {
        Value::Array(numbered.into_iter().map(|(_, v)| v).collect())
    } else {
        Value::Object(map)
    }
}
