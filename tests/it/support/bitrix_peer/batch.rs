//! `batch` (reference §7.3): up to 50 sequential sub-calls given as `method?query`, `halt`,
//! `$result[name][FIELD]` substitution, empty maps serialised as `[]`. One request for the
//! leaky bucket; each sub-call counts toward its method's operating budget.

use std::sync::Arc;

use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value, json};

use super::envelope::{ApiError, MethodOk, time_object};
use super::methods::{self, Ctx};
use super::params::{Params, listify, scalar_string};
use super::request::Incoming;
use super::state::{Shared, SubCall};

const MAX_COMMANDS: usize = 50;

/// The order of `cmd` keys as sent (JSON objects and PHP bracket forms both keep it on the wire).
pub fn cmd_order(incoming: &Incoming) -> Vec<String> {
    let is_json = incoming
        .content_type
        .as_deref()
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/json"));
    if is_json {
        return serde_json::from_slice::<CmdOnly>(&incoming.body)
            .ok()
            .and_then(|c| c.cmd)
            .map(|k| k.0)
            .unwrap_or_default();
    }
    let mut keys = Vec::new();
    let query = url::form_urlencoded::parse(incoming.query.as_bytes());
    for (key, _) in query.chain(url::form_urlencoded::parse(&incoming.body)) {
        let Some(name) = key
            .strip_prefix("cmd[")
            .and_then(|rest| rest.split(']').next())
        else {
            continue;
        };
        if !keys.iter().any(|k| k == name) {
            keys.push(name.to_owned());
        }
    }
    keys
}

#[derive(Deserialize)]
struct CmdOnly {
    #[serde(default)]
    cmd: Option<OrderedKeys>,
}

struct OrderedKeys(Vec<String>);

impl<'de> Deserialize<'de> for OrderedKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeysVisitor;
        impl<'de> Visitor<'de> for KeysVisitor {
            type Value = OrderedKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a cmd map or list")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedKeys, A::Error> {
                let mut keys = Vec::new();
                while let Some((key, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                    keys.push(key);
                }
                Ok(OrderedKeys(keys))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OrderedKeys, A::Error> {
                let mut keys = Vec::new();
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    keys.push(keys.len().to_string());
                }
                Ok(OrderedKeys(keys))
            }
        }
        d.deserialize_any(KeysVisitor)
    }
}

fn commands(p: &Params, order: &[String]) -> (Vec<(String, Value)>, bool) {
    match p.raw_any(&["cmd", "CMD"]) {
        Some(Value::Array(items)) => (
            items
                .iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v.clone()))
                .collect(),
            true,
        ),
        Some(Value::Object(map)) => {
            let mut names: Vec<String> = order
                .iter()
                .filter(|k| map.contains_key(*k))
                .cloned()
                .collect();
            names.extend(map.keys().filter(|k| !order.contains(k)).cloned());
            let is_list = names.iter().enumerate().all(|(i, k)| *k == i.to_string());
            (
                names
                    .into_iter()
                    .filter_map(|k| map.get(&k).map(|v| (k, v.clone())))
                    .collect(),
                is_list,
            )
        }
        _ => (Vec::new(), false),
    }
}

/// Collected sub-call outputs.
#[derive(Default)]
struct Outputs {
    result: Map<String, Value>,
    error: Map<String, Value>,
    total: Map<String, Value>,
    next: Map<String, Value>,
    time: Map<String, Value>,
}

/// Runs a batch; returns the outer result and the sub-calls for the request log.
pub async fn run(
    shared: &Arc<Shared>,
    ctx: &Ctx,
    p: &Params,
    order: &[String],
) -> (Result<MethodOk, ApiError>, Vec<SubCall>) {
    let (cmds, is_list) = commands(p, order);
    if cmds.len() > MAX_COMMANDS {
        return (
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ERROR_BATCH_LENGTH_EXCEEDED",
                "Max batch length exceeded",
            )),
            Vec::new(),
        );
    }
    let halt = p.truthy("halt", false);
    let mut out = Outputs::default();
    let mut subs = Vec::new();
    for (name, cmd) in cmds {
        let start = shared.lock().now_unix();
        let (method, params) = parse_command(&scalar_string(&cmd).unwrap_or_default(), &out.result);
        let outcome = if method == "batch" {
            Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "ERROR_BATCH_METHOD_NOT_ALLOWED",
                "Method is not allowed for batch usage",
            ))
        } else {
            methods::call(shared, ctx, &method, params.clone()).await.0
        };
        let finish = shared.lock().now_unix();
        subs.push(SubCall {
            name: name.clone(),
            method,
            params: Value::Object(params.0),
            ok: outcome.is_ok(),
        });
        match outcome {
            Ok(ok) => {
                out.time.insert(
                    name.clone(),
                    time_object(start, finish, shared.opts.utc_offset_secs, None),
                );
                if let Some(total) = ok.total {
                    out.total.insert(name.clone(), json!(total));
                }
                if let Some(next) = ok.next {
                    out.next.insert(name.clone(), json!(next));
                }
                out.result.insert(name, ok.result);
            }
            Err(err) => {
                out.error.insert(name, err.body());
                if halt {
                    break;
                }
            }
        }
    }
    (Ok(MethodOk::of(out.into_json(is_list))), subs)
}

impl Outputs {
    fn into_json(self, is_list: bool) -> Value {
        let shape = |map: Map<String, Value>| -> Value {
            // PHP serialises an empty array as `[]`, and a 0..n keyed one as a list.
            if map.is_empty() {
                json!([])
            } else if is_list {
                listify(Value::Object(map))
            } else {
                Value::Object(map)
            }
        };
        json!({
            "result": shape(self.result),
            "result_error": shape(self.error),
            "result_total": shape(self.total),
            "result_next": shape(self.next),
            "result_time": shape(self.time),
        })
    }
}

fn parse_command(cmd: &str, results: &Map<String, Value>) -> (String, Params) {
    let (method, query) = cmd.split_once('?').unwrap_or((cmd, ""));
    let method = method.trim().trim_start_matches('/');
    let method = method
        .strip_suffix(".json")
        .unwrap_or(method)
        .to_ascii_lowercase();
    let mut params = Params::from_form(query);
    for value in params.0.values_mut() {
        substitute(value, results);
    }
    (method, params)
}

fn substitute(value: &mut Value, results: &Map<String, Value>) {
    match value {
        Value::String(s) => *s = substitute_str(s, results),
        Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, results)),
        Value::Object(map) => map.values_mut().for_each(|v| substitute(v, results)),
        _ => {}
    }
}

/// Replaces every `$result[name][FIELD]...` with the referenced scalar of an earlier result.
fn substitute_str(s: &str, results: &Map<String, Value>) -> String {
    const MARK: &str = "$result";
    let mut out = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find(MARK) {
        out.push_str(&rest[..pos]);
        let mut tail = &rest[pos + MARK.len()..];
        let mut path = Vec::new();
        while let Some(inner) = tail.strip_prefix('[') {
            let Some(close) = inner.find(']') else { break };
            path.push(&inner[..close]);
            tail = &inner[close + 1..];
        }
        let found = path.split_first().and_then(|(name, fields)| {
            fields.iter().try_fold(results.get(*name)?, |v, f| match v {
                Value::Array(items) => items.get(f.parse::<usize>().ok()?),
                Value::Object(map) => map.get(*f),
                _ => None,
            })
        });
        match found.and_then(scalar_string) {
            Some(text) => out.push_str(&text),
            None => out.push_str(&rest[pos..rest.len() - tail.len()]),
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}
