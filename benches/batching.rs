//! HTTP requests per call with and without `batch` coalescing: N concurrent calls, each doing
//! register + show + hide + finish through `BitrixClient` against an in-process counting portal.
//! Run with `cargo bench --bench batching` (optionally `-- 500` for N).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use chrono::DateTime;
use fsb24::bitrix::{AuthSettings, BitrixClient, BitrixSettings, RateLimit, WebhookUrl};
use fsb24::ids::{BitrixUserId, ExternalCallId, PhoneNumber};
use fsb24::outbox::op::{CallType, FinishCall, RegisterCall};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Default)]
struct Counter {
    requests: AtomicU64,
    commands: AtomicU64,
}

fn answer(method: &str, n: u64) -> Value {
    match method.to_ascii_lowercase().as_str() {
        "telephony.externalcall.register" => {
            json!({ "CALL_ID": format!("externalCall.{n:032x}.1777879000") })
        }
        "telephony.externalcall.finish" => json!({ "ID": n, "CALL_STATUS": 1 }),
        _ => json!(true),
    }
}

async fn portal(State(counter): State<Arc<Counter>>, uri: Uri, body: Bytes) -> axum::Json<Value> {
    counter.requests.fetch_add(1, Ordering::Relaxed);
    let method = uri
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .trim_end_matches(".json")
        .to_owned();
    if method != "batch" {
        let n = counter.commands.fetch_add(1, Ordering::Relaxed);
        return axum::Json(json!({ "result": answer(&method, n) }));
    }
    let params: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut results = serde_json::Map::new();
    if let Some(cmd) = params.get("cmd").and_then(Value::as_object) {
        for (name, line) in cmd {
            let sub = line
                .as_str()
                .unwrap_or_default()
                .split('?')
                .next()
                .unwrap_or_default();
            let n = counter.commands.fetch_add(1, Ordering::Relaxed);
            results.insert(name.clone(), answer(sub, n));
        }
    }
    axum::Json(
        json!({ "result": { "result": results, "result_error": [], "result_total": [], "result_next": [] } }),
    )
}

async fn run_load(base: &str, calls: usize, window: Option<Duration>) -> (u64, Duration) {
    let counter = Arc::new(Counter::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .fallback(portal)
        .with_state(Arc::clone(&counter));
    let stop = CancellationToken::new();
    let server_stop = stop.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(server_stop.cancelled_owned())
            .await
            .unwrap();
    });
    let hook = WebhookUrl::parse(&format!("http://{addr}{base}")).unwrap();
    let mut settings = BitrixSettings::new(AuthSettings::Webhook(hook));
    settings.rate = RateLimit {
        per_second: 1_000_000.0,
        burst: 1_000_000,
    };
    settings.batch_window = window;
    let tracker = TaskTracker::new();
    let client = BitrixClient::start(settings, &tracker, stop.clone())
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..calls)
        .map(|i| tokio::spawn(one_call(client.clone(), i)))
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    stop.cancel();
    drop(client);
    tracker.close();
    tracker.wait().await;
    server.await.unwrap();
    (counter.requests.load(Ordering::Relaxed), elapsed)
}

async fn one_call(client: BitrixClient, i: usize) {
    let call = ExternalCallId::new(format!("fs-bench-{i}"));
    let register = RegisterCall {
        user: BitrixUserId(17),
        phone: PhoneNumber::parse(&format!("+4930{i:07}")).unwrap(),
        call_type: CallType::Incoming,
        line_number: Some("4930555000".into()),
        started_at: DateTime::parse_from_rfc3339("2026-05-04T09:15:02+02:00").unwrap(),
        crm_create: false,
        show: true,
        crm: None,
    };
    let reg = client.register(&call, &register).await.unwrap();
    let others = [BitrixUserId(21), BitrixUserId(22)];
    client.show(&call, &reg.call_id, &others).await.unwrap();
    client.hide(&call, &reg.call_id, &others).await.unwrap();
    let finish = FinishCall {
        user: BitrixUserId(17),
        duration_secs: 42,
        status_code: "200".into(),
        add_to_chat: false,
        failed_reason: None,
    };
    client.finish(&call, &reg.call_id, &finish).await.unwrap();
}

fn main() {
    let calls: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "batching benchmark: {calls} concurrent calls x (register + show + hide + finish)"
        );
        for (label, window) in [
            ("without batching", None),
            ("batch window 10 ms", Some(Duration::from_millis(10))),
        ] {
            let (requests, elapsed) = run_load("/rest/1/benchsecret/", calls, window).await;
            println!(
                "{label:>20}: {requests:>5} HTTP requests, {:.3} requests/call, {:.1} ms total",
                requests as f64 / calls as f64,
                elapsed.as_secs_f64() * 1000.0
            );
        }
    });
}
