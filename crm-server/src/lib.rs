//! The CRM server: `app(state)` builds the whole HTTP service.
#![forbid(unsafe_code)]

pub mod cache;
pub mod config;
pub mod customers;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod idempotency;
pub mod marketing;
pub mod metrics;
pub mod notes;
pub mod openapi;
pub mod ops;
pub mod pagination;
pub mod patch;
pub mod read_only;
pub mod reports;
pub mod sales;
pub mod seed;
pub mod service;
pub mod store;
pub mod transfer;
pub mod ui;
pub mod webhooks;

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa_axum::router::OpenApiRouter;

use crate::config::Modules;
use crate::db::Db;
use crate::error::ApiError;

/// Default of `CRM_COMPRESS_MIN_BYTES`. Compressing a few hundred bytes of
/// JSON saves tens of bytes and costs about half the throughput of a cached
/// read (bench/README.md); below about one TCP segment it cannot pay.
pub const DEFAULT_COMPRESS_MIN_BYTES: u64 = 1024;

/// Shared state of every handler: one `Arc`, so the clones that axum's
/// extractors and middleware make on every request cost one atomic
/// increment, not one per metric, setting and pool (bench/README.md).
/// Setup code may still assign fields: [`DerefMut`] copies the state only
/// while it is shared, which a server never does after it starts.
#[derive(Debug, Clone)]
pub struct AppState(Arc<StateFields>);

impl Deref for AppState {
    type Target = StateFields;

    fn deref(&self) -> &StateFields {
        &self.0
    }
}

impl DerefMut for AppState {
    fn deref_mut(&mut self) -> &mut StateFields {
        Arc::make_mut(&mut self.0)
    }
}

/// What [`AppState`] holds.
#[derive(Debug, Clone)]
pub struct StateFields {
    /// The database.
    pub db: Db,
    /// SHA-256 of the API key; comparing digests keeps the comparison
    /// constant-time regardless of the presented key's length.
    key_digest: Arc<[u8; 32]>,
    /// False until migrations are done and again once shutdown starts.
    pub ready: Arc<AtomicBool>,
    /// Enabled modules.
    pub modules: Modules,
    /// Request timeout.
    pub timeout: Duration,
    /// Body size limit in bytes.
    pub max_body_bytes: usize,
    /// Prometheus metrics.
    pub metrics: metrics::Metrics,
    /// Hot-read cache for companies and contacts.
    pub cache: cache::Cache<customers::Key, customers::Entry>,
    /// Responses smaller than this many bytes are never compressed.
    pub compress_min_bytes: u64,
    /// Writes are refused with 503 (`read_only`).
    pub read_only: bool,
    /// How webhooks are delivered (and which targets they may have).
    pub webhooks: webhooks::deliver::Settings,
    /// The web UI's settings.
    pub ui: ui::UiState,
}

impl AppState {
    /// State for a migrated database, accepting `api_key`.
    pub fn new(db: Db, api_key: &str, modules: Modules) -> Result<Self, prometheus::Error> {
        StateFields::new(db, api_key, modules).map(|fields| Self(Arc::new(fields)))
    }

    /// State for a server run with `config`: the one place its settings
    /// become the state's.
    pub fn from_config(
        db: Db,
        api_key: &str,
        modules: Modules,
        config: &config::Config,
    ) -> Result<Self, prometheus::Error> {
        StateFields::from_config(db, api_key, modules, config).map(|fields| Self(Arc::new(fields)))
    }
}

impl StateFields {
    fn new(db: Db, api_key: &str, modules: Modules) -> Result<Self, prometheus::Error> {
        Ok(Self {
            db,
            key_digest: Arc::new(Sha256::digest(api_key.as_bytes()).into()),
            ready: Arc::new(AtomicBool::new(true)),
            modules,
            timeout: Duration::from_secs(30),
            max_body_bytes: 1_048_576,
            metrics: metrics::Metrics::new()?,
            cache: cache::Cache::new(10_000, Duration::from_secs(5)),
            compress_min_bytes: DEFAULT_COMPRESS_MIN_BYTES,
            read_only: false,
            webhooks: webhooks::deliver::Settings::default(),
            ui: ui::UiState::default(),
        })
    }

    fn from_config(
        db: Db,
        api_key: &str,
        modules: Modules,
        config: &config::Config,
    ) -> Result<Self, prometheus::Error> {
        Ok(Self {
            cache: cache::Cache::new(
                config.cache_capacity,
                Duration::from_secs(config.cache_ttl_secs),
            ),
            timeout: Duration::from_secs(config.request_timeout_secs),
            max_body_bytes: config.max_body_bytes,
            compress_min_bytes: config.compress_min_bytes,
            read_only: config.read_only,
            webhooks: webhooks::deliver::Settings {
                allow_private: config.webhook_allow_loopback,
                retry_base: Duration::from_millis(config.webhook_retry_base_ms),
                ..webhooks::deliver::Settings::default()
            },
            ui: ui::UiState::new(
                config.secure_cookies,
                Duration::from_secs(config.cache_ttl_secs),
            ),
            ..Self::new(db, api_key, modules)?
        })
    }

    fn key_matches(&self, presented: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        d.ct_eq(&*self.key_digest).into()
    }
}

/// The whole service: `/healthz`, `/readyz`, `/metrics`, `/api/v1` and
/// the web UI under `/ui/` (not in the API's OpenAPI document).
pub fn app(state: AppState) -> Router {
    let m = state.modules;
    let mut api = OpenApiRouter::with_openapi(openapi::base()).merge(webhooks::router());
    if m.customers {
        api = api
            .merge(customers::router())
            .merge(notes::contact_router());
    }
    if m.sales {
        api = api.merge(sales::router()).merge(notes::deal_router());
    }
    if m.service {
        api = api.merge(service::router());
    }
    if m.marketing {
        api = api.merge(marketing::router());
    }
    if m.reports {
        api = api.merge(reports::router());
    }
    let (api, doc) = api.split_for_parts();
    let doc = axum::body::Bytes::from(openapi::complete(&doc).to_string());
    let api = api
        .fallback(|| async { ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            read_only::refuse_writes,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    let timeout = state.timeout;
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::render))
        .route(
            "/api/v1/openapi.json",
            get(move || openapi::serve(doc.clone())),
        )
        .nest("/api/v1", api)
        .merge(ui::router(state.clone(), m))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(middleware::from_fn(move |req, next| {
            ops::with_timeout(timeout, req, next)
        }))
        .layer(compression(state.compress_min_bytes))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(ops::request_span)
                // One line per request costs a tenth of an uncached read's
                // throughput (bench/README.md); failures still log at ERROR.
                // `RUST_LOG=info,tower_http=debug` turns the lines back on.
                .on_response(DefaultOnResponse::new().level(tracing::Level::DEBUG)),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Compression only where it pays: bodies of known size below `min_bytes`
/// go out as they are (streamed bodies of unknown size are compressed), and
/// never images, gRPC or server-sent events (tower-http's defaults).
fn compression(min_bytes: u64) -> CompressionLayer<impl Predicate> {
    CompressionLayer::new().compress_when(
        SizeAbove::new(min_bytes)
            .and(NotForContentType::GRPC)
            .and(NotForContentType::IMAGES)
            .and(NotForContentType::SSE),
    )
}

/// 404: an HTML page under `/ui/`, a problem elsewhere.
async fn no_route(State(state): State<AppState>, req: Request) -> Response {
    if req.uri().path().starts_with("/ui/") {
        ui::errors::not_found(&state, req.headers()).await
    } else {
        ApiError::NoRoute.into_response()
    }
}

async fn require_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(k) if state.key_matches(k.trim()) => next.run(req).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::SeqCst) && state.db.ping().await {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}
