//! The operators' listener (`[admin] listen`, loopback by default; separate from the Bitrix24
//! event endpoint): `/metrics` in the Prometheus text format, `/healthz`, `/readyz` (see
//! `health`) and the live status page at `/`. It reads the running daemon only through
//! [`Sources`] and changes nothing, except that `/readyz` may send the portal one cheap read
//! while its state is unknown.

pub(crate) mod health;
pub(crate) mod live;
mod page;
pub(crate) mod scrape;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use crate::bitrix::{BitrixClient, PortalState};
use crate::call::board::Board;
use crate::esl::{InboundHandle, Presence};
use crate::outbox::Outbox;
use crate::queue::QueueHandle;

use health::Readiness;
use live::Live;
use scrape::Snapshot;

/// Longest `/readyz` waits for its portal read.
const PORTAL_PROBE_LIMIT: Duration = Duration::from_secs(3);

/// Read-only handles on the running daemon.
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    /// Calls in progress and the call metrics.
    pub board: Board,
    /// The queue actor (agent snapshot).
    pub queue: QueueHandle,
    /// Registrations and live channels per extension.
    pub presence: Presence,
    /// The inbound ESL connection.
    pub inbound: InboundHandle,
    /// The outbox (counts, writability).
    pub outbox: Outbox,
    /// The Bitrix24 client (its metrics; `/readyz`'s portal read).
    pub bitrix: BitrixClient,
    /// When the daemon started.
    pub started: Instant,
}

/// The admin side: sources, the metric registry, and the scrape-time values.
#[derive(Debug, Clone)]
pub(crate) struct Admin {
    sources: Arc<Sources>,
    registry: Arc<Registry>,
    live: Live,
    probe: Arc<tokio::sync::Mutex<()>>,
}

impl Admin {
    /// Registers every metric the sources keep.
    pub(crate) fn new(sources: Sources) -> Self {
        let mut registry = Registry::default();
        sources.board.metrics().register(&mut registry);
        sources.bitrix.metrics().register(&mut registry);
        registry.register_with_unit(
            "fsb24_card_write_latency",
            "From the switch event behind a card write (register, show, hide, finish) to its \
             request on the wire (first attempts)",
            Unit::Seconds,
            sources.outbox.metrics().card_clock.histogram(),
        );
        let live = Live::default();
        registry.register_collector(Box::new(live.clone()));
        Self {
            sources: Arc::new(sources),
            registry: Arc::new(registry),
            live,
            probe: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The routes.
    pub(crate) fn router(self) -> Router {
        Router::new()
            .route("/", get(status_page))
            .route("/metrics", get(metrics))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .with_state(self)
    }

    /// Serves on `listener` until `stop`.
    pub(crate) async fn serve(self, listener: TcpListener, stop: CancellationToken) {
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            error!(
                error = &e as &dyn std::error::Error,
                "admin listener failed"
            );
        }
    }

    /// The readiness checks now; reads the portal once if its state is unknown.
    pub(crate) async fn readiness(&self) -> Readiness {
        let s = &self.sources;
        if s.bitrix.metrics().portal() == PortalState::Unknown {
            // One read at a time, however many probes a load balancer sends.
            let _one = self.probe.lock().await;
            if s.bitrix.metrics().portal() == PortalState::Unknown {
                let read = s.bitrix.external_line_get();
                if tokio::time::timeout(PORTAL_PROBE_LIMIT, read)
                    .await
                    .is_err()
                {
                    warn!("portal read for readiness timed out");
                }
            }
        }
        Readiness {
            esl_connected: s.inbound.is_connected(),
            outbox: s.outbox.check_writable().await.map_err(|e| {
                let e: &dyn std::error::Error = &e;
                let cause = e.source().map(|c| format!(": {c}")).unwrap_or_default();
                format!("{e}{cause}")
            }),
            portal: s.bitrix.metrics().portal(),
        }
    }
}

async fn status_page(State(admin): State<Admin>) -> Response {
    let snapshot = Snapshot::read(&admin.sources).await;
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page::render(&snapshot),
    )
        .into_response()
}

async fn metrics(State(admin): State<Admin>) -> Response {
    let snapshot = Snapshot::read(&admin.sources).await;
    admin.live.set(snapshot.live_metrics());
    let mut text = String::with_capacity(16 * 1024);
    if let Err(e) = prometheus_text::encode(&mut text, &admin.registry) {
        error!(error = %e, "metrics encoding failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
        text,
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(admin): State<Admin>) -> Response {
    let readiness = admin.readiness().await;
    let status = if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, readiness.render()).into_response()
}
