//! PHP-style query-string encoding of JSON parameters, for `batch` sub-commands
//! (`method?USER_ID[0]=5&PHONE_NUMBER=%2B4930...`).

use serde_json::Value;
use url::form_urlencoded::byte_serialize;

/// Encodes an object of parameters as a PHP query string: nested objects and arrays use bracket
/// keys (`FILTER[UF_PHONE_INNER]=205`, `USER_ID[0]=5`), booleans become `1`/`0`, `null` is left
/// out, and every name and value is percent-encoded (a `+` becomes `%2B`, never a space).
/// A non-object value encodes as the empty string.
pub fn to_query(params: &Value) -> String {
    let mut pairs = Vec::new();
    if let Value::Object(obj) = params {
        for (name, value) in obj {
            push(&mut pairs, encode(name), value);
        }
    }
    pairs.join("&")
}

fn push(pairs: &mut Vec<String>, key: String, value: &Value) {
    match value {
        Value::Null => {}
        Value::Bool(b) => pairs.push(format!("{key}={}", u8::from(*b))),
        Value::Number(n) => pairs.push(format!("{key}={n}")),
        Value::String(s) => pairs.push(format!("{key}={}", encode(s))),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                push(pairs, format!("{key}[{i}]"), item);
            }
        }
        Value::Object(obj) => {
            for (name, item) in obj {
                push(pairs, format!("{key}[{}]", encode(name)), item);
            }
        }
    }
}

fn encode(text: &str) -> String {
    byte_serialize(text.as_bytes()).collect()
}
