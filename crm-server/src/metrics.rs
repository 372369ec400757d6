//! Prometheus metrics: requests by route and status, latency, pool use,
//! cache hits, and the process's CPU time.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Counter, Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

use crate::AppState;

/// All metrics of one server, in their own registry (so tests do not share).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pool_size: IntGauge,
    pool_idle: IntGauge,
    cache_ratio: Gauge,
    /// Cache lookups that found an entry.
    pub cache_hits: IntCounter,
    /// Cache lookups that went to the database.
    pub cache_misses: IntCounter,
}

impl Metrics {
    /// Register every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "crm_http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "crm_http_request_duration_seconds",
                "Request latency by route",
            ),
            &["route"],
        )?;
        let pool_size = IntGauge::new("crm_db_pool_connections", "Open database connections")?;
        let pool_idle = IntGauge::new("crm_db_pool_idle", "Idle database connections")?;
        let cache_hits = IntCounter::new("crm_cache_hits_total", "Cache hits")?;
        let cache_misses = IntCounter::new("crm_cache_misses_total", "Cache misses")?;
        let cache_ratio = Gauge::new(
            "crm_cache_hit_ratio",
            "Cache hits / lookups since start (0 when none)",
        )?;
        registry.register(Box::new(cache_ratio.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(pool_size.clone()))?;
        registry.register(Box::new(pool_idle.clone()))?;
        registry.register(Box::new(cache_hits.clone()))?;
        registry.register(Box::new(cache_misses.clone()))?;
        registry.register(Box::new(Cpu::new()?))?;
        Ok(Self {
            registry,
            requests,
            latency,
            pool_size,
            pool_idle,
            cache_ratio,
            cache_hits,
            cache_misses,
        })
    }
}

/// `crm_process_cpu_seconds_total`: the CPU time this process has used,
/// read at each scrape. Autopilot divides its rate by the request rate, so
/// the CPU per request needs no cAdvisor and counts no sidecar.
#[derive(Debug)]
struct Cpu {
    desc: Desc,
}

impl Cpu {
    const NAME: &str = "crm_process_cpu_seconds_total";
    const HELP: &str = "User and system CPU time of this process, in seconds";

    fn new() -> Result<Self, prometheus::Error> {
        let desc = Desc::new(
            Self::NAME.into(),
            Self::HELP.into(),
            vec![],
            Default::default(),
        )?;
        Ok(Self { desc })
    }
}

impl Collector for Cpu {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let (Some(seconds), Ok(counter)) = (cpu_seconds(), Counter::new(Self::NAME, Self::HELP))
        else {
            return Vec::new();
        };
        counter.inc_by(seconds);
        counter.collect()
    }
}

/// User and system CPU time of this process so far, in seconds.
#[cfg(target_os = "linux")]
fn cpu_seconds() -> Option<f64> {
    let stat = procfs::process::Process::myself().ok()?.stat().ok()?;
    Some((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
}

#[cfg(not(target_os = "linux"))]
fn cpu_seconds() -> Option<f64> {
    None
}

/// Count and time a request; runs after routing so the route is the
/// template (`/api/v1/contacts/{id}`), keeping label cardinality bounded.
pub async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    let start = Instant::now();
    let res = next.run(req).await;
    let m = &st.metrics;
    m.latency
        .with_label_values(&[route.as_str()])
        .observe(start.elapsed().as_secs_f64());
    m.requests
        .with_label_values(&[route.as_str(), method.as_str(), res.status().as_str()])
        .inc();
    res
}

/// `/metrics` alone, for the separate metrics listener (`CRM_METRICS_ADDR`):
/// whoever reaches that port reaches nothing else.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(render))
        .with_state(state)
}

/// `GET /metrics` in the Prometheus text format.
pub async fn render(State(st): State<AppState>) -> Response {
    let m = &st.metrics;
    m.pool_size.set(st.db.connections() as i64);
    m.pool_idle.set(st.db.idle_connections() as i64);
    let (hits, misses) = (m.cache_hits.get(), m.cache_misses.get());
    let lookups = hits + misses;
    m.cache_ratio.set(if lookups == 0 {
        0.0
    } else {
        hits as f64 / lookups as f64
    });
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&m.registry.gather(), &mut buf) {
        return crate::error::ApiError::Internal(e.to_string()).into_response();
    }
    let mut res = buf.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}
