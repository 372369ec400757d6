//! Autopilot: the operator measures a tenant's real load and request cost in
//! Prometheus and sizes it from them (`spec.autopilot`), and reports what it
//! measured (`status.observed`, `status.autopilot`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Sizing from measurements: every interval the operator reads the tenant's
/// request rate, its peak over a window, and the CPU time per request from
/// Prometheus (it must run with `--prometheus-url`), smooths them, and sizes
/// the tenant from them instead of load.peakRequestsPerSecond,
/// performance.requestCpuMillis and performance.serviceTimeScv (estimated
/// from the latency histogram). Each interval moves the figures by at most
/// half (the scv by at most 0.5 while it is under 1); replicas.max and the tier's floor still hold.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutopilotSpec {
    /// Size from measured figures. Off by default: the spec's figures size
    /// the tenant, and status.observed only reports what was measured.
    #[serde(default)]
    pub enabled: bool,

    /// Seconds between two measurements, at least 30.
    #[serde(default = "interval_seconds")]
    #[schemars(range(min = 30, max = 86400))]
    pub interval_seconds: i64,

    /// How far back the peak request rate is looked for, as a Prometheus
    /// duration (`7d`, `24h`, `90m`).
    #[serde(default = "peak_window")]
    #[schemars(regex(pattern = r"^[1-9][0-9]{0,4}(s|m|h|d|w)$"))]
    pub peak_window: String,
}

impl Default for AutopilotSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_seconds: interval_seconds(),
            peak_window: peak_window(),
        }
    }
}

/// Seconds between two measurements unless the spec says otherwise.
pub fn interval_seconds() -> i64 {
    300
}

/// How far back the peak is looked for unless the spec says otherwise.
pub fn peak_window() -> String {
    "7d".into()
}

/// What was measured in Prometheus at `sampledAt`, and how the model's
/// prediction compares.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObservedLoad {
    /// Requests per second over the last five minutes, all replicas.
    pub requests_per_second: f64,
    /// Highest five-minute request rate within autopilot.peakWindow.
    pub peak_requests_per_second: f64,
    /// CPU milliseconds per request: the replicas' CPU time over their requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_cpu_millis: Option<f64>,
    /// Measured p95 latency (ms), from crm-server's latency histogram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_latency_ms: Option<f64>,
    /// Squared coefficient of variation of the latency, estimated from the
    /// histogram's buckets (docs/model.md); a guide for
    /// performance.serviceTimeScv.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_time_scv: Option<f64>,
    /// The model's p95 (ms) at the measured rate and the current replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_p95_latency_ms: Option<f64>,
    /// (model − measured) / measured p95, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_error_percent: Option<f64>,
    /// When Prometheus was read.
    pub sampled_at: Time,
}

/// The smoothed figures autopilot sizes the tenant from.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AutopilotStatus {
    /// CPU milliseconds per request the model uses.
    pub request_cpu_millis: f64,
    /// Peak requests per second the model uses.
    pub peak_requests_per_second: f64,
    /// Squared coefficient of variation of the service time the model uses,
    /// smoothed from status.observed.serviceTimeScv starting from
    /// performance.serviceTimeScv (absent: the spec's figure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_time_scv: Option<f64>,
    /// Measurements that went into these figures.
    pub samples: i32,
}
