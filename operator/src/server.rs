//! The operator's own HTTP endpoints: `/metrics` (Prometheus text format),
//! `/healthz` (the process answers) and `/readyz` (standing by for the
//! lease, or leading with its caches filled).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// What the endpoints read.
#[derive(Clone, Debug)]
pub struct Telemetry {
    /// The operator's metrics.
    pub metrics: Arc<Metrics>,
    /// True while waiting for the leader lease.
    pub standby: Arc<AtomicBool>,
}

impl Telemetry {
    /// Endpoints for `metrics`, not standing by.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            standby: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A standby is ready (it serves its purpose by waiting); a leader once
    /// its caches are filled.
    pub fn ready(&self) -> bool {
        self.standby.load(Ordering::Acquire) || self.metrics.is_synced()
    }
}

/// The router of the three endpoints.
pub fn router(telemetry: Telemetry) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(telemetry)
}

async fn metrics(State(telemetry): State<Telemetry>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        telemetry.metrics.encode(),
    )
}

async fn readyz(State(telemetry): State<Telemetry>) -> impl IntoResponse {
    if telemetry.ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet\n")
    }
}

/// Binds `addr`; the bound address tells the port when `addr` asked for port 0.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves the endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    telemetry: Telemetry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(telemetry))
        .with_graceful_shutdown(shutdown)
        .await
}
