//! The HTTP side: one axum fallback handler that applies outages and redirects, reads
//! parameters, authenticates, runs the leaky bucket, dispatches and wraps the envelope.
//! Every answered request is recorded.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::auth::AuthKind;
use super::envelope::{ApiError, MethodOk, Operating, time_object};
use super::methods::{self, Ctx};
use super::options::Outage;
use super::params::Params;
use super::request::{Incoming, authenticate, bearer, read_params};
use super::state::{RecordedRequest, Shared, SubCall};
use super::{batch, record};

const BODY_LIMIT: usize = 256 << 20;

/// A running listener.
#[derive(Debug)]
pub struct Running {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    /// Serves `shared` on `listener` until stopped.
    pub fn spawn(shared: Arc<Shared>, listener: TcpListener) -> Self {
        let cancel = CancellationToken::new();
        let app = Router::new().fallback(handle).with_state(shared);
        let signal = cancel.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await;
        });
        Self { cancel, task }
    }

    /// Stops accepting and closes idle connections (graceful), aborting after 5 s.
    pub async fn stop(self) {
        self.cancel.cancel();
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }

    /// Signals shutdown without waiting (for `Drop`).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}

/// What the handler decided, before recording.
pub(super) struct Outcome {
    status: StatusCode,
    body: Value,
    location: Option<String>,
    method: String,
    method_as_sent: String,
    params: Value,
    auth: AuthKind,
    sub_calls: Vec<SubCall>,
}

impl Outcome {
    fn bare(status: StatusCode, body: Value, method: &str) -> Self {
        Self {
            status,
            body,
            location: None,
            method: method.to_owned(),
            method_as_sent: method.to_owned(),
            params: Value::Null,
            auth: AuthKind::None,
            sub_calls: Vec::new(),
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let arrived = Instant::now();
    let outage = shared.lock().switches.outage;
    if let Some(Outage::Slow(delay)) = outage {
        tokio::time::sleep(delay).await;
    }
    let (parts, body) = req.into_parts();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Ok(body) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    };
    let incoming = Incoming {
        http_method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        content_type,
        headers: parts.headers,
        body,
    };
    let start_unix = shared.lock().now_unix();
    let outcome = if outage == Some(Outage::Http500) {
        let err = ApiError::internal();
        Outcome::bare(err.status, err.body(), &method_hint(&incoming.path))
    } else {
        route(&shared, &incoming, arrived, start_unix).await
    };
    respond(&shared, &incoming, arrived, outcome)
}

fn respond(shared: &Shared, incoming: &Incoming, arrived: Instant, outcome: Outcome) -> Response {
    let mut response = if let Some(location) = &outcome.location {
        (StatusCode::FOUND, [(header::LOCATION, location.clone())]).into_response()
    } else {
        (outcome.status, axum::Json(outcome.body.clone())).into_response()
    };
    if outcome.location.is_some() {
        *response.status_mut() = StatusCode::FOUND;
    }
    let recorded = RecordedRequest {
        method: outcome.method,
        method_as_sent: outcome.method_as_sent,
        params: outcome.params,
        auth: outcome.auth,
        http_method: incoming.http_method.clone(),
        content_type: incoming.content_type.clone(),
        at: arrived,
        status: outcome.status.as_u16(),
        response: outcome.body,
        sub_calls: outcome.sub_calls,
    };
    shared.update(|st| st.requests.push(recorded));
    response
}

fn method_hint(path: &str) -> String {
    let last = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    last.strip_suffix(".json")
        .unwrap_or(last)
        .to_ascii_lowercase()
}

async fn route(
    shared: &Arc<Shared>,
    incoming: &Incoming,
    arrived: Instant,
    start_unix: f64,
) -> Outcome {
    let path = incoming.path.as_str();
    if path.trim_end_matches('/') == "/oauth/token" {
        return super::token::endpoint(shared, incoming);
    }
    let (renamed, path) = match path.strip_prefix("/renamed") {
        Some(rest) => (true, rest),
        None => (false, path),
    };
    if !renamed && shared.lock().switches.redirect && path.starts_with("/rest/") {
        let query = if incoming.query.is_empty() {
            String::new()
        } else {
            format!("?{}", incoming.query)
        };
        let mut outcome = Outcome::bare(StatusCode::FOUND, Value::Null, &method_hint(path));
        outcome.location = Some(format!("{}/renamed{path}{query}", shared.base_url));
        return outcome;
    }
    if path == "/rest/upload.json" || path == "/rest/upload" {
        return upload(shared, incoming, start_unix);
    }
    let segments: Vec<&str> = path
        .strip_prefix("/rest/")
        .unwrap_or_default()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (webhook, method_as_sent) = match segments.as_slice() {
        [method] => (None, *method),
        [user, secret, method] => (Some((*user, *secret)), *method),
        _ => {
            let err = ApiError::method_not_found();
            return Outcome::bare(err.status, err.body(), &method_hint(path));
        }
    };
    let method_as_sent = method_as_sent
        .strip_suffix(".json")
        .unwrap_or(method_as_sent);
    let call = RestCall {
        webhook,
        method_as_sent,
        arrived,
        start_unix,
    };
    rest_call(shared, incoming, call).await
}

struct RestCall<'a> {
    webhook: Option<(&'a str, &'a str)>,
    method_as_sent: &'a str,
    arrived: Instant,
    start_unix: f64,
}

async fn rest_call(shared: &Arc<Shared>, incoming: &Incoming, call: RestCall<'_>) -> Outcome {
    let method = call.method_as_sent.to_ascii_lowercase();
    let mut outcome = Outcome::bare(StatusCode::OK, Value::Null, &method);
    outcome.method_as_sent = call.method_as_sent.to_owned();
    let mut params = match read_params(incoming) {
        Ok(params) => params,
        Err(err) => return with_error(outcome, &err),
    };
    let token = params
        .take("auth")
        .as_ref()
        .and_then(super::params::scalar_string)
        .or_else(|| bearer(shared, &incoming.headers));
    outcome.params = Value::Object(params.0.clone());
    outcome.auth = match (call.webhook, &token) {
        (Some((user, secret)), _) => AuthKind::Webhook {
            user_id: user.parse().unwrap_or(0),
            secret: secret.to_owned(),
        },
        (None, Some(token)) => AuthKind::OAuth {
            token: token.clone(),
        },
        (None, None) => AuthKind::None,
    };
    let user_id = match authenticate(shared, &outcome.auth) {
        Ok(user_id) => user_id,
        Err(err) => return with_error(outcome, &err),
    };
    if !shared.update(|st| st.limiter.admit(call.arrived)) {
        return with_error(outcome, &ApiError::query_limit());
    }
    if !methods::is_known(&method) {
        return with_error(outcome, &ApiError::method_not_found());
    }
    let ctx = Ctx {
        auth: outcome.auth.clone(),
        user_id,
        arrived: call.arrived,
        app_id: shared.opts.app_id,
        app_name: shared.opts.app_name.clone(),
        utc_offset_secs: shared.opts.utc_offset_secs,
    };
    let (result, operating) = if method == "batch" {
        let order = batch::cmd_order(incoming);
        let (result, subs) = batch::run(shared, &ctx, &params, &order).await;
        outcome.sub_calls = subs;
        (result, None)
    } else {
        methods::call(shared, &ctx, &method, params).await
    };
    match result {
        Ok(ok) => {
            outcome.body = envelope(shared, &ok, call.start_unix, operating);
            outcome
        }
        Err(err) => with_error(outcome, &err),
    }
}

fn with_error(mut outcome: Outcome, err: &ApiError) -> Outcome {
    outcome.status = err.status;
    outcome.body = err.body();
    outcome
}

/// The success envelope with `time` (and list extras).
pub fn envelope(
    shared: &Shared,
    ok: &MethodOk,
    start_unix: f64,
    operating: Option<Operating>,
) -> Value {
    let finish = shared.lock().now_unix();
    let mut body = json!({"result": ok.result, "time": time_object(start_unix, finish, shared.opts.utc_offset_secs, operating)});
    if let Some(map) = body.as_object_mut() {
        if let Some(total) = ok.total {
            map.insert("total".to_owned(), json!(total));
        }
        if let Some(next) = ok.next {
            map.insert("next".to_owned(), json!(next));
        }
    }
    body
}

fn upload(shared: &Shared, incoming: &Incoming, start_unix: f64) -> Outcome {
    let query = Params::from_form(&incoming.query);
    let token = query.str("token").unwrap_or_default();
    let mut outcome = Outcome::bare(StatusCode::OK, Value::Null, "upload");
    outcome.params = json!({"token": token, "bytes": incoming.body.len()});
    let content_type = incoming.content_type.as_deref().unwrap_or_default();
    match record::upload(shared, &token, content_type, &incoming.body) {
        Ok(ok) => {
            outcome.body = envelope(shared, &ok, start_unix, None);
            outcome
        }
        Err(err) => with_error(outcome, &err),
    }
}

impl Outcome {
    /// An outcome for a non-REST endpoint (token server).
    pub(super) fn other(status: StatusCode, body: Value, method: &str, params: Value) -> Self {
        let mut outcome = Self::bare(status, body, method);
        outcome.params = params;
        outcome
    }
}
