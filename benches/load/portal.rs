//! A fast Bitrix24 peer: the REST envelope, `batch` with `$result[...]` references, the
//! telephony methods fsb24 writes, and the portal's leaky bucket (503 QUERY_LIMIT_EXCEEDED).
//! It answers at once; what it counts goes into [`Stats`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::stats::Stats;

/// The bucket: `rate` requests per second drain it, `burst` is its size.
pub(crate) struct Bucket {
    rate: f64,
    burst: f64,
    level: f64,
    last: Option<Instant>,
}

impl Bucket {
    pub(crate) fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate,
            burst: f64::from(burst),
            level: 0.0,
            last: None,
        }
    }

    fn admit(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            self.level = (self.level - now.duration_since(last).as_secs_f64() * self.rate).max(0.0);
        }
        self.last = Some(now);
        let ok = self.level + 1.0 <= self.burst + 1e-9;
        if ok {
            self.level += 1.0;
        }
        ok
    }
}

pub(crate) struct Portal {
    stats: Arc<Stats>,
    bucket: Mutex<Bucket>,
    calls: DashMap<String, String>,
    serial: AtomicU64,
}

pub(crate) fn router(stats: Arc<Stats>, bucket: Bucket) -> Router {
    let portal = Arc::new(Portal {
        stats,
        bucket: Mutex::new(bucket),
        calls: DashMap::new(),
        serial: AtomicU64::new(1),
    });
    Router::new().fallback(handle).with_state(portal)
}

async fn handle(State(p): State<Arc<Portal>>, uri: Uri, body: Bytes) -> Response {
    let method = uri
        .path()
        .rsplit('/')
        .next()
        .unwrap_or("")
        .trim_end_matches(".json")
        .to_ascii_lowercase();
    p.stats.requests.fetch_add(1, Ordering::Relaxed);
    crate::stats::lock_push(&p.stats.request_times, Instant::now());
    let admitted = p
        .bucket
        .lock()
        .map(|mut b| b.admit(Instant::now()))
        .unwrap_or(true);
    if !admitted {
        p.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
        let err =
            json!({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"});
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(err)).into_response();
    }
    let params: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let result = if method == "batch" {
        p.batch(&params)
    } else {
        p.stats.commands.fetch_add(1, Ordering::Relaxed);
        p.stats.max_batch.fetch_max(1, Ordering::Relaxed);
        p.method(&method, &flatten(&params))
    };
    axum::Json(json!({"result": result, "time": time()})).into_response()
}

fn time() -> Value {
    json!({"start": 0, "finish": 0, "duration": 0.001, "processing": 0.001,
           "date_start": "", "date_finish": "", "operating": 0})
}

/// Top-level JSON params as `FIELD -> string` (`FIELDS[X]` nesting is not used by telephony).
fn flatten(v: &Value) -> HashMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), s)
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Portal {
    fn batch(&self, params: &Value) -> Value {
        let mut results = Map::new();
        let cmds = params
            .get("cmd")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let n = cmds.len() as u64;
        self.stats.commands.fetch_add(n, Ordering::Relaxed);
        self.stats.max_batch.fetch_max(n, Ordering::Relaxed);
        for (name, line) in cmds {
            let line = line.as_str().unwrap_or("");
            let (method, query) = line.split_once('?').unwrap_or((line, ""));
            let mut fields = HashMap::new();
            for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
                fields.insert(k.into_owned(), resolve(&v, &results));
            }
            let r = self.method(&method.to_ascii_lowercase(), &fields);
            results.insert(name, r);
        }
        json!({"result": results, "result_error": [], "result_total": [],
               "result_next": [], "result_time": []})
    }

    fn method(&self, method: &str, f: &HashMap<String, String>) -> Value {
        let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
        match method {
            "telephony.externalcall.register" => {
                self.stats.registers.fetch_add(1, Ordering::Relaxed);
                let n = self.serial.fetch_add(1, Ordering::Relaxed);
                let call_id = format!("externalCall.{n:032x}.1777879000");
                let uuid = channel_of(get("EXTERNAL_CALL_ID"));
                if get("SHOW") != "0" && get("SHOW") != "false" {
                    self.stats.card_opened(&uuid);
                }
                self.calls.insert(call_id.clone(), uuid);
                json!({"CALL_ID": call_id, "CRM_CREATED_LEAD": null, "CRM_ENTITY_TYPE": "",
                       "CRM_ENTITY_ID": 0, "LEAD_CREATION_ERROR": ""})
            }
            "telephony.externalcall.show" => {
                if let Some(uuid) = self.calls.get(get("CALL_ID")) {
                    self.stats.card_opened(uuid.value());
                }
                json!(true)
            }
            "telephony.externalcall.finish" => {
                self.stats.finishes.fetch_add(1, Ordering::Relaxed);
                let n = self.serial.fetch_add(1, Ordering::Relaxed);
                json!({"ID": n, "CALL_ID": get("CALL_ID"), "CALL_STATUS": 1})
            }
            "user.get" => json!([]),
            _ => json!(true),
        }
    }
}

/// `$result[c00][CALL_ID]` -> that sub-result's field.
fn resolve(v: &str, results: &Map<String, Value>) -> String {
    let Some(rest) = v.strip_prefix("$result[") else {
        return v.to_owned();
    };
    let mut parts = rest.split("][");
    let name = parts.next().unwrap_or("");
    let field = parts.next().unwrap_or("").trim_end_matches(']');
    results
        .get(name)
        .and_then(|r| r.get(field))
        .and_then(Value::as_str)
        .map_or_else(|| v.to_owned(), str::to_owned)
}

/// The channel uuid inside an `EXTERNAL_CALL_ID` (`fs-<uuid>...`).
fn channel_of(external: &str) -> String {
    let s = external.strip_prefix("fs-").unwrap_or(external);
    s.get(..36).unwrap_or(s).to_owned()
}
