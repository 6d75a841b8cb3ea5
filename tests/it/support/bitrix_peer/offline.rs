//! The offline event queue (`event.bind event_type=offline`, `event.offline.get/clear/error`),
//! as the Bitrix24 documentation describes it:
//!
//! - an event with an offline binding is stored for the application instead of POSTed; a second
//!   event with the same `MESSAGE_ID` (a hash of name and data) while the first is still queued
//!   and unclaimed is not stored twice;
//! - `event.offline.get` returns the first `limit` (default 50) records with `ERROR` = `error`
//!   (default 0) that are unclaimed or claimed by the given `process_id`, after `filter`
//!   (`ID`, `TIMESTAMP_X`, `EVENT_NAME`, `MESSAGE_ID`; operation before the field name) and
//!   `order` (default `TIMESTAMP_X ASC`). With `clear=1` (the default) they are deleted at once
//!   and `process_id` is null; with `clear=0` they are marked with `process_id` (a new one when
//!   none was given) and returned again only to that process id until cleared;
//! - `event.offline.clear` (`process_id` required) deletes that process's records, all or those
//!   in `id` (or, without `id`, in `message_id`);
//! - `event.offline.error` (`process_id` required) flags that process's records in `message_id`
//!   as erroneous: only `error=1` returns them afterwards.

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use super::envelope::{ApiError, MethodOk, iso_date};
use super::methods::Ctx;
use super::params::{Params, intval, scalar_string};
use super::state::PeerState;

/// One queued offline event.
#[derive(Debug, Clone, PartialEq)]
pub struct OfflineRecord {
    /// `ID`.
    pub id: u64,
    /// `TIMESTAMP_X` as unix seconds.
    pub at_unix: i64,
    /// `EVENT_NAME` (upper case).
    pub event: String,
    /// `EVENT_DATA`.
    pub data: Value,
    /// `MESSAGE_ID`.
    pub message_id: String,
    /// `PROCESS_ID` (empty when unclaimed).
    pub process_id: String,
    /// `ERROR`.
    pub error: bool,
}

impl OfflineRecord {
    fn wire(&self, utc_offset_secs: i32) -> Value {
        json!({
            "ID": self.id.to_string(),
            "TIMESTAMP_X": iso_date(self.at_unix as f64, utc_offset_secs),
            "EVENT_NAME": self.event,
            "EVENT_DATA": self.data,
            "EVENT_ADDITIONAL": {"user_id": "1"},
            "MESSAGE_ID": self.message_id,
        })
    }

    fn field(&self, name: &str) -> Value {
        match name {
            "ID" => json!(self.id),
            "TIMESTAMP_X" => json!(self.at_unix),
            "EVENT_NAME" => json!(self.event),
            "MESSAGE_ID" => json!(self.message_id),
            _ => Value::Null,
        }
    }
}

/// The offline queue of the application.
#[derive(Debug, Default)]
pub struct OfflineQueue {
    /// Queued records, oldest first.
    pub records: Vec<OfflineRecord>,
    next_id: u64,
    next_process: u64,
}

impl OfflineQueue {
    /// Stores `event` with `data` unless the same message is queued unclaimed; returns its ID.
    pub fn push(&mut self, event: &str, data: Value, at_unix: i64) -> u64 {
        let message_id = message_id(event, &data);
        if let Some(r) = self
            .records
            .iter()
            .find(|r| r.message_id == message_id && r.process_id.is_empty())
        {
            return r.id;
        }
        self.next_id += 1;
        self.records.push(OfflineRecord {
            id: self.next_id,
            at_unix,
            event: event.to_ascii_uppercase(),
            data,
            message_id,
            process_id: String::new(),
            error: false,
        });
        self.next_id
    }
}

fn message_id(event: &str, data: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    event.to_ascii_uppercase().hash(&mut h);
    data.to_string().hash(&mut h);
    format!("{:016x}{:016x}", h.finish(), data.to_string().len())
}

/// `data[KEY]=value` form pairs as the `EVENT_DATA` object an offline record carries.
pub fn event_data(form: &[(String, String)]) -> Value {
    let mut data = Map::new();
    for (key, value) in form {
        if let Some(name) = key.strip_prefix("data[").and_then(|k| k.strip_suffix(']')) {
            data.insert(name.to_owned(), Value::String(value.clone()));
        }
    }
    Value::Object(data)
}

fn guard(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.auth.is_webhook() {
        Err(ApiError::wrong_auth_type())
    } else {
        Ok(())
    }
}

/// One `filter` condition: `[op]FIELD` => value.
fn matches(record: &OfflineRecord, key: &str, want: &Value) -> bool {
    let split = key
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(key.len());
    let (op, field) = key.split_at(split);
    let have = record.field(&field.to_ascii_uppercase());
    let ord = match (&have, want) {
        (Value::Number(a), b) => a.as_i64().map(|a| a.cmp(&intval(b))),
        (Value::String(a), b) => scalar_string(b).map(|b| a.as_str().cmp(b.as_str())),
        _ => None,
    };
    let Some(ord) = ord else { return false };
    match op {
        "" | "=" => ord == Ordering::Equal,
        "!" | "!=" => ord != Ordering::Equal,
        ">" => ord == Ordering::Greater,
        "<" => ord == Ordering::Less,
        ">=" => ord != Ordering::Less,
        "<=" => ord != Ordering::Greater,
        _ => false,
    }
}

fn sort(records: &mut [OfflineRecord], order: Option<&Value>) {
    let keys: Vec<(String, bool)> = match order.and_then(Value::as_object) {
        Some(map) if !map.is_empty() => map
            .iter()
            .map(|(k, v)| {
                let desc = scalar_string(v).is_some_and(|d| d.eq_ignore_ascii_case("desc"));
                (k.to_ascii_uppercase(), desc)
            })
            .collect(),
        _ => vec![("TIMESTAMP_X".to_owned(), false)],
    };
    records.sort_by(|a, b| {
        for (key, desc) in &keys {
            let ord = match (a.field(key), b.field(key)) {
                (Value::Number(x), Value::Number(y)) => x.as_i64().cmp(&y.as_i64()),
                (x, y) => x.to_string().cmp(&y.to_string()),
            };
            let ord = if *desc { ord.reverse() } else { ord };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        a.id.cmp(&b.id)
    });
}

/// `event.offline.get`.
pub fn get(st: &mut PeerState, ctx: &Ctx, p: &Params) -> Result<MethodOk, ApiError> {
    guard(ctx)?;
    let clear = p.truthy("clear", true);
    let errors = p.truthy("error", false);
    let limit = match p.raw("limit") {
        None => 50,
        Some(v) if intval(v) > 0 => intval(v) as usize,
        Some(_) => return Err(ApiError::argument("Value must be positive integer")),
    };
    let given = p.non_empty("process_id");
    let filter = p.raw("filter").and_then(Value::as_object).cloned();
    let mut picked: Vec<OfflineRecord> = st
        .offline
        .records
        .iter()
        .filter(|r| r.error == errors)
        .filter(|r| r.process_id.is_empty() || Some(&r.process_id) == given.as_ref())
        .filter(|r| {
            filter
                .iter()
                .flatten()
                .all(|(key, want)| matches(r, key, want))
        })
        .cloned()
        .collect();
    sort(&mut picked, p.raw("order"));
    picked.truncate(limit);
    let ids: Vec<u64> = picked.iter().map(|r| r.id).collect();
    let process_id = if clear {
        st.offline.records.retain(|r| !ids.contains(&r.id));
        None
    } else {
        let pid = given.unwrap_or_else(|| {
            st.offline.next_process += 1;
            format!("{:032x}", 0x5eed_0000_u64 + st.offline.next_process)
        });
        for r in st
            .offline
            .records
            .iter_mut()
            .filter(|r| ids.contains(&r.id))
        {
            r.process_id = pid.clone();
        }
        Some(pid)
    };
    let events: Vec<Value> = picked.iter().map(|r| r.wire(ctx.utc_offset_secs)).collect();
    Ok(MethodOk::of(
        json!({"process_id": process_id, "events": events}),
    ))
}

fn list_of(p: &Params, name: &str) -> Option<Vec<String>> {
    match p.raw(name)? {
        Value::Array(items) => Some(items.iter().filter_map(scalar_string).collect()),
        Value::Object(map) => Some(map.values().filter_map(scalar_string).collect()),
        other => scalar_string(other).map(|s| vec![s]),
    }
}

fn process_id(p: &Params) -> Result<String, ApiError> {
    p.non_empty("process_id")
        .ok_or_else(|| ApiError::argument("Argument 'process_id' is null or empty"))
}

/// `event.offline.clear`.
pub fn clear(st: &mut PeerState, ctx: &Ctx, p: &Params) -> Result<MethodOk, ApiError> {
    guard(ctx)?;
    let pid = process_id(p)?;
    let ids = list_of(p, "id");
    let messages = list_of(p, "message_id");
    st.offline.records.retain(|r| {
        let chosen = match (&ids, &messages) {
            (Some(ids), _) => ids.contains(&r.id.to_string()),
            (None, Some(messages)) => messages.contains(&r.message_id),
            (None, None) => true,
        };
        !(r.process_id == pid && chosen)
    });
    Ok(MethodOk::of(json!(true)))
}

/// `event.offline.error`.
pub fn error(st: &mut PeerState, ctx: &Ctx, p: &Params) -> Result<MethodOk, ApiError> {
    guard(ctx)?;
    let pid = process_id(p)?;
    let messages = list_of(p, "message_id").unwrap_or_default();
    for r in st
        .offline
        .records
        .iter_mut()
        .filter(|r| r.process_id == pid && messages.contains(&r.message_id))
    {
        r.error = true;
    }
    Ok(MethodOk::of(json!(true)))
}

// === BitrixPeer: offline delivery ===

impl super::BitrixPeer {
    /// Queues `form` (an event the peer built) for the application when `event` has an offline
    /// binding, as the portal does; returns the record's `ID`, or `None` when nothing is bound.
    pub fn queue_offline(&self, event: &str, form: &[(String, String)]) -> Option<u64> {
        self.shared.update(|st| {
            let bound = st
                .events
                .iter()
                .any(|b| b.offline && b.event.eq_ignore_ascii_case(event));
            let at = st.now_unix() as i64;
            bound.then(|| st.offline.push(event, event_data(form), at))
        })
    }

    /// A CRM click delivered offline only: registers the TYPE=1 call as
    /// [`Self::click_to_call`] does and queues `ONEXTERNALCALLSTART`. Returns the CALL_ID.
    pub fn click_to_call_offline(
        &self,
        click: &super::ClickToCall,
        application_token: &str,
    ) -> String {
        let (call_id, form) = self.click_to_call_form(click, application_token);
        self.queue_offline("ONEXTERNALCALLSTART", &form)
            .unwrap_or_else(|| panic!("bitrix peer: ONEXTERNALCALLSTART has no offline binding"));
        call_id
    }

    /// The offline queue as it stands.
    pub fn offline_records(&self) -> Vec<OfflineRecord> {
        self.shared.lock().offline.records.clone()
    }
}

impl super::BitrixPeer {
    /// A callback form delivered offline only: queues `ONEXTERNALCALLBACKSTART`.
    pub fn callback_offline(
        &self,
        phone: &str,
        line: &str,
        crm: Option<(super::EntityKind, u64)>,
        application_token: &str,
    ) {
        let text = "Call the customer back";
        let form =
            super::outgoing::callback_form(&self.shared, phone, text, line, crm, application_token);
        self.queue_offline("ONEXTERNALCALLBACKSTART", &form)
            .unwrap_or_else(|| {
                panic!("bitrix peer: ONEXTERNALCALLBACKSTART has no offline binding")
            });
    }
}
