//! The portal's user directory: seeded users with extensions and `user.get` (reference §7.1)
//! with FILTER operators, order and paging by 50. IDs are strings on the wire.

use serde_json::{Value, json};

use super::crm::yn;
use super::envelope::MethodOk;
use super::params::{Params, intval, scalar_string, truthy};

/// A Bitrix24 user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedUser {
    /// User id.
    pub id: u64,
    /// First name.
    pub name: String,
    /// Last name.
    pub last_name: String,
    /// Internal extension (`UF_PHONE_INNER`).
    pub inner: Option<String>,
    /// Whether the user is active (fired users are not).
    pub active: bool,
    /// Time-tracking status shown by `searchCrmEntities`.
    pub timeman_status: String,
    /// Mobile number.
    pub personal_mobile: Option<String>,
}

impl SeedUser {
    /// An active user with an optional extension.
    pub fn new(id: u64, name: &str, inner: Option<&str>) -> Self {
        Self {
            id,
            name: name.to_owned(),
            last_name: String::new(),
            inner: inner.map(str::to_owned),
            active: true,
            timeman_status: "OPENED".to_owned(),
            personal_mobile: None,
        }
    }

    /// The same user, fired.
    pub fn inactive(mut self) -> Self {
        self.active = false;
        self
    }

    fn to_json(&self) -> Value {
        json!({
            "ID": self.id.to_string(),
            "ACTIVE": self.active,
            "NAME": self.name,
            "LAST_NAME": self.last_name,
            "EMAIL": format!("user{}@example.test", self.id),
            "UF_PHONE_INNER": self.inner,
            "PERSONAL_MOBILE": self.personal_mobile,
            "WORK_PHONE": null,
            "USER_TYPE": "employee",
        })
    }
}

/// `user.get` with FILTER (operator prefixes `=`, `!`, `%`, `@`), order and paging by 50.
pub fn user_get(users: &[SeedUser], p: &Params) -> MethodOk {
    let filter = user_filter(p);
    let descending = p
        .raw_any(&["order", "ORDER"])
        .and_then(scalar_string)
        .is_some_and(|o| o.eq_ignore_ascii_case("DESC"));
    let mut matching: Vec<Value> = users
        .iter()
        .map(SeedUser::to_json)
        .filter(|u| filter.iter().all(|(k, v)| matches_filter(u, k, v)))
        .collect();
    if descending {
        matching.reverse();
    }
    let start = p.raw_any(&["start", "START"]).map(intval).unwrap_or(0);
    let count_total = start >= 0;
    let start = start.max(0) as usize;
    let total = matching.len();
    let page: Vec<Value> = matching.into_iter().skip(start).take(PAGE).collect();
    let next = (start + PAGE < total).then_some((start + PAGE) as u64);
    MethodOk {
        result: Value::Array(page),
        total: count_total.then_some(total as u64),
        next,
    }
}

const PAGE: usize = 50;
const USER_GET_CONTROL_KEYS: [&str; 10] = [
    "sort",
    "order",
    "start",
    "select",
    "admin_mode",
    "filter",
    "SORT",
    "ORDER",
    "SELECT",
    "ADMIN_MODE",
];

fn user_filter(p: &Params) -> Vec<(String, Value)> {
    match p.raw_any(&["FILTER", "filter"]) {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        // user.get also takes filter fields at the top level when no FILTER is given.
        _ => {
            p.0.iter()
                .filter(|(k, _)| !USER_GET_CONTROL_KEYS.contains(&k.as_str()) && *k != "START")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }
    }
}

fn matches_filter(user: &Value, key: &str, wanted: &Value) -> bool {
    let field = key.trim_start_matches(['!', '=', '%', '@', '>', '<']);
    let op = &key[..key.len() - field.len()];
    let field = field.to_ascii_uppercase();
    let actual = comparable(&field, user.get(&field).unwrap_or(&Value::Null));
    let wanted_list: Vec<String> = match wanted {
        Value::Array(items) => items.iter().map(|v| comparable(&field, v)).collect(),
        other => vec![comparable(&field, other)],
    };
    let hit = match op.trim_start_matches('!') {
        "%" => wanted_list
            .iter()
            .any(|w| actual.to_lowercase().contains(&w.to_lowercase())),
        ">" => wanted_list
            .iter()
            .any(|w| actual.parse::<f64>().ok() > w.parse::<f64>().ok()),
        "<" => wanted_list
            .iter()
            .any(|w| actual.parse::<f64>().ok() < w.parse::<f64>().ok()),
        _ => wanted_list.contains(&actual),
    };
    if op.starts_with('!') { !hit } else { hit }
}

fn comparable(field: &str, value: &Value) -> String {
    if field == "ACTIVE" {
        let active = match value {
            Value::String(s) => matches!(s.to_ascii_uppercase().as_str(), "Y" | "TRUE" | "1"),
            other => truthy(other),
        };
        return yn(active).to_owned();
    }
    scalar_string(value).unwrap_or_default()
}
