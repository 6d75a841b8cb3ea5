//! The HTTP/1.1 server under the event endpoint: hyper with the limits `axum::serve` lacks.
//!
//! A client that opens a connection and sends half a request must not hold a file descriptor
//! (shared with the ESL listener) for ever: request heads must arrive within
//! `header_read_timeout` (an idle keep-alive connection included), whole requests within
//! `request_timeout`, at most `max_connections` are open at once (further ones wait in the
//! kernel's backlog), and a connection is closed after `max_requests_per_connection`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{Instrument, debug, info_span, warn};

/// Request heads and bodies are small (an event is about 1 KiB): a 16 KiB read buffer bounds
/// what one connection may hold before its head is parsed.
const MAX_READ_BUFFER: usize = 16 * 1024;

/// How long to wait after an accept error that is not about one connection (out of file
/// descriptors): retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(200);

/// The listener's limits (`[http]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request head (request line and headers) must arrive within this, counted from the
    /// connection's start or the end of its previous response.
    pub header_read_timeout: Duration,
    /// A whole request (head and body) must be read and answered within this.
    pub request_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Requests served on one connection before it is closed.
    pub max_requests_per_connection: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            max_connections: 256,
            max_requests_per_connection: 100,
        }
    }
}

/// Serves `router` on `listener` until `shutdown`; then stops accepting, lets each connection
/// finish its current request and closes it. Connection tasks run on `tracker`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_READ_BUFFER);
    loop {
        // A permit first: at the cap, new connections wait in the backlog, not in our memory.
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed; nothing left to serve with
            },
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(error = &e as &dyn std::error::Error, "http accept failed");
                    if !is_connection_error(&e) {
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                    continue;
                }
            },
        };
        let service = Connection::new(router.clone(), limits);
        let conn = http.serve_connection(
            TokioIo::new(stream),
            hyper::service::service_fn(move |req| service.call(req)),
        );
        let stop = shutdown.clone();
        let span = info_span!("http", peer = %peer);
        tracker.spawn(
            async move {
                let _permit = permit;
                tokio::pin!(conn);
                let done = tokio::select! {
                    done = conn.as_mut() => done,
                    () = stop.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                if let Err(e) = done {
                    // Timeouts and clients that went away: routine on a public listener.
                    debug!(
                        error = &e as &dyn std::error::Error,
                        "http connection ended"
                    );
                }
            }
            .instrument(span),
        );
    }
}

/// Errors about one connection (it was reset before we took it): accept again at once.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}

/// One connection's requests: each under `request_timeout`, the last one marked
/// `Connection: close`.
#[derive(Clone)]
struct Connection {
    router: Router,
    limits: Limits,
    served: Arc<AtomicU32>,
}

impl Connection {
    fn new(router: Router, limits: Limits) -> Self {
        Self {
            router,
            limits,
            served: Arc::new(AtomicU32::new(0)),
        }
    }

    fn call(
        &self,
        req: Request<Incoming>,
    ) -> impl Future<Output = Result<Response, Infallible>> + Send + use<> {
        let router = self.router.clone();
        let limits = self.limits;
        let nth = self
            .served
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        async move {
            let handled = router.oneshot(req.map(axum::body::Body::new));
            let (mut response, last) =
                match tokio::time::timeout(limits.request_timeout, handled).await {
                    Ok(Ok(response)) => (response, nth >= limits.max_requests_per_connection),
                    Ok(Err(never)) => match never {},
                    Err(_) => {
                        warn!(
                            timeout_ms = limits.request_timeout.as_millis() as u64,
                            "http request not received in time"
                        );
                        let late = (StatusCode::REQUEST_TIMEOUT, "request timeout");
                        (late.into_response(), true)
                    }
                };
            if last {
                // hyper closes the connection after a response that says so.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response)
        }
    }
}
