//! Reads a tenant's measured load from Prometheus's HTTP API
//! (`/api/v1/query`): the only I/O of autopilot. Its answer, a
//! [`Sample`], goes to the pure stages as plain
//! values.
//!
//! Every query reads a recording rule of `config/monitoring` (so each costs
//! one series lookup, however long the window), for one tenant:
//!
//! | figure | query |
//! |---|---|
//! | rate now | `tenant:crm_http_requests:rate5m` |
//! | peak | `max_over_time(tenant:crm_http_requests:rate5m[WINDOW])` |
//! | CPU | `tenant:crm_cpu_seconds:rate5m` |
//! | p95 | `histogram_quantile(0.95, tenant:crm_http_request_duration_seconds_bucket:rate5m)` |
//! | scv | the buckets of that rule, by midpoint (docs/model.md) |

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::autopilot::Sample;

/// The recording rule of the request rate per tenant.
pub const RATE_RULE: &str = "tenant:crm_http_requests:rate5m";
/// The recording rule of the latency histogram's buckets per tenant.
pub const BUCKETS_RULE: &str = "tenant:crm_http_request_duration_seconds_bucket:rate5m";
/// The recording rule of the CPU the tenant's replicas use.
pub const CPU_RULE: &str = "tenant:crm_cpu_seconds:rate5m";

/// How long one query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an answer read (a tenant's histogram is a few kB).
const MAX_BODY: usize = 1 << 20;

/// Why Prometheus gave no answer.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ObserveError {
    /// The URL given with `--prometheus-url` cannot be used.
    #[error("--prometheus-url {url}: {problem}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        problem: String,
    },
    /// No connection, or no answer in time.
    #[error("Prometheus at {url} is unreachable: {problem}")]
    Unreachable {
        /// The base URL.
        url: String,
        /// What failed.
        problem: String,
    },
    /// Prometheus answered with an error.
    #[error("Prometheus refused `{query}`: {problem}")]
    Query {
        /// The query.
        query: String,
        /// HTTP status, errorType and error.
        problem: String,
    },
    /// The answer was not Prometheus's JSON.
    #[error("Prometheus answered `{query}` with something unexpected: {problem}")]
    BadResponse {
        /// The query.
        query: String,
        /// What was wrong with it.
        problem: String,
    },
}

/// A Prometheus server, and when each tenant was last measured.
#[derive(Debug)]
pub struct Prometheus {
    base: String,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    attempts: Mutex<HashMap<(String, String), Instant>>,
}

impl Prometheus {
    /// A client of the server at `url` (`http://` or `https://`, with any
    /// path prefix, such as `http://prometheus.monitoring.svc:9090`).
    pub fn new(url: &str) -> Result<Self, ObserveError> {
        let bad = |problem: &str| ObserveError::BadUrl {
            url: url.to_owned(),
            problem: problem.to_owned(),
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(bad("expected http://HOST[:PORT][/PATH] or https://…"));
        }
        if uri.query().is_some() {
            return Err(bad("a query string cannot be part of the base URL"));
        }
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| bad(&format!("no trusted root certificates: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            base: url.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build(connector),
            attempts: Mutex::new(HashMap::new()),
        })
    }

    /// Whether this operator tried to measure the tenant within `interval`
    /// (successfully or not); if not, the attempt starts now.
    pub fn claim(&self, namespace: &str, name: &str, interval: Duration) -> bool {
        let Ok(mut attempts) = self.attempts.lock() else {
            return true;
        };
        let key = (namespace.to_owned(), name.to_owned());
        match attempts.get(&key) {
            Some(at) if at.elapsed() < interval => false,
            _ => {
                attempts.insert(key, Instant::now());
                true
            }
        }
    }

    /// Forgets a tenant (deleted).
    pub fn forget(&self, namespace: &str, name: &str) {
        if let Ok(mut attempts) = self.attempts.lock() {
            attempts.remove(&(namespace.to_owned(), name.to_owned()));
        }
    }

    /// Measures one tenant; `peak_window` is a Prometheus duration (`7d`).
    pub async fn sample(
        &self,
        namespace: &str,
        tenant: &str,
        peak_window: &str,
    ) -> Result<Sample, ObserveError> {
        let selector = format!(
            "{{namespace=\"{}\",tenant=\"{}\"}}",
            escape(namespace),
            escape(tenant)
        );
        let rate = format!("{RATE_RULE}{selector}");
        let peak = format!("max_over_time({rate}[{peak_window}])");
        let cpu = format!("{CPU_RULE}{selector}");
        let buckets = format!("{BUCKETS_RULE}{selector}");
        let p95 = format!("histogram_quantile(0.95, {buckets})");
        let (rate, peak, cpu, p95, buckets) = futures::try_join!(
            self.query(&rate),
            self.query(&peak),
            self.query(&cpu),
            self.query(&p95),
            self.query(&buckets),
        )?;
        Ok(Sample {
            requests_per_second: single(&rate),
            peak_requests_per_second: single(&peak),
            cpu_cores: single(&cpu),
            p95_seconds: single(&p95),
            scv: scv(&buckets),
        })
    }

    /// One instant query: its series as (labels, value), NaN and ±Inf kept.
    pub async fn query(&self, query: &str) -> Result<Vec<Series>, ObserveError> {
        let url = format!("{}/api/v1/query?query={}", self.base, encode(query));
        let unreachable = |problem: String| ObserveError::Unreachable {
            url: self.base.clone(),
            problem,
        };
        let request = http::Request::get(&url)
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| unreachable(e.to_string()))?;
        let response = tokio::time::timeout(QUERY_TIMEOUT, async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| e.to_string());
            Ok::<_, hyper_util::client::legacy::Error>((status, body))
        })
        .await
        .map_err(|_| unreachable(format!("no answer within {QUERY_TIMEOUT:?}")))?
        .map_err(|e| unreachable(error_chain(&e)))?;
        let (status, body) = response;
        let body = body.map_err(unreachable)?.to_bytes();
        parse(query, status, &body)
    }
}

/// One series of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Its labels.
    pub labels: HashMap<String, String>,
    /// Its value; may be NaN or infinite.
    pub value: f64,
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorItem {
    #[serde(default)]
    metric: HashMap<String, String>,
    value: (f64, String),
}

/// Prometheus's JSON answer → series; its errors named.
fn parse(query: &str, status: http::StatusCode, body: &[u8]) -> Result<Vec<Series>, ObserveError> {
    let bad = |problem: String| ObserveError::BadResponse {
        query: query.to_owned(),
        problem,
    };
    let answer: Answer = match serde_json::from_slice(body) {
        Ok(answer) => answer,
        Err(e) if status.is_success() => return Err(bad(format!("not JSON: {e}"))),
        Err(_) => {
            return Err(ObserveError::Query {
                query: query.to_owned(),
                problem: format!("HTTP {status}: {}", snippet(body)),
            });
        }
    };
    if answer.status != "success" {
        return Err(ObserveError::Query {
            query: query.to_owned(),
            problem: format!(
                "HTTP {status}, {}: {}",
                answer.error_type.as_deref().unwrap_or("error"),
                answer.error.as_deref().unwrap_or("no message")
            ),
        });
    }
    let data = answer.data.ok_or_else(|| bad("no data".into()))?;
    match data.result_type.as_str() {
        "vector" => {
            let items: Vec<VectorItem> =
                serde_json::from_value(data.result).map_err(|e| bad(e.to_string()))?;
            items
                .into_iter()
                .map(|item| {
                    let value = parse_value(&item.value.1)
                        .ok_or_else(|| bad(format!("value {:?} is not a number", item.value.1)))?;
                    Ok(Series {
                        labels: item.metric,
                        value,
                    })
                })
                .collect()
        }
        "scalar" => {
            let (_, value): (f64, String) =
                serde_json::from_value(data.result).map_err(|e| bad(e.to_string()))?;
            let value = parse_value(&value)
                .ok_or_else(|| bad(format!("value {value:?} is not a number")))?;
            Ok(vec![Series {
                labels: HashMap::new(),
                value,
            }])
        }
        other => Err(bad(format!("result type {other}, expected a vector"))),
    }
}

/// Prometheus writes values as strings: digits, `NaN`, `+Inf`, `-Inf`.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

/// The value of a one-series answer, when it is a finite number ≥ 0.
pub fn single(series: &[Series]) -> Option<f64> {
    match series {
        [one] if one.value.is_finite() && one.value >= 0.0 => Some(one.value),
        _ => None,
    }
}

/// scv = m2 / m1² − 1 of a histogram's cumulative bucket rates, with each
/// bucket's requests at its midpoint (the first at half its bound). None when
/// fewer than two buckets hold requests, or over 1 % sit in `+Inf`.
pub fn scv(buckets: &[Series]) -> Option<f64> {
    let mut bounds: Vec<(f64, f64)> = buckets
        .iter()
        .filter_map(|s| Some((parse_value(s.labels.get("le")?)?, s.value)))
        .filter(|(_, v)| v.is_finite())
        .collect();
    bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = bounds.last().filter(|(le, _)| le.is_infinite())?.1;
    if total <= 0.0 {
        return None;
    }
    let (mut lower, mut below) = (0.0, 0.0);
    let (mut m1, mut m2, mut filled, mut open) = (0.0, 0.0, 0, 0.0);
    for (le, cumulative) in bounds {
        let count = (cumulative - below).max(0.0);
        if le.is_infinite() {
            open = count;
            break;
        }
        if count > 0.0 {
            let mid = (lower + le) / 2.0;
            m1 += count * mid;
            m2 += count * mid * mid;
            filled += 1;
        }
        (lower, below) = (le, cumulative);
    }
    if filled < 2 || open > total * 0.01 {
        return None;
    }
    let counted = total - open;
    let (m1, m2) = (m1 / counted, m2 / counted);
    (m1 > 0.0).then(|| (m2 / (m1 * m1) - 1.0).max(0.0))
}

/// A label value inside double quotes.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Percent-encoding of a query parameter: unreserved characters stay.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests;
