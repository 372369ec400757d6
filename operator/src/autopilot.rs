//! Autopilot's decisions, pure: what a measurement from Prometheus
//! ([`Sample`], read by `observe`) becomes in status, and the smoothed,
//! bounded figures the model then sizes the tenant from.
//!
//! ```text
//! Sample ─► observation (rate, peak, CPU ms per request, scv)
//!             └─► smoothed: prev + ½ (obs − prev), then within ×½ … ×1.5 of prev
//!                   (the scv within ±½ while under 1, and in 0..=25)
//!                   └─► model inputs: peak, request cost and scv (floors, replicas.max still hold)
//! ```

use std::time::Duration;

use crm_crds::{AutopilotStatus, ObservedLoad};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::model::{self, Inputs};

/// Weight of a new observation in the smoothed figure.
pub const SMOOTHING: f64 = 0.5;
/// The most a smoothed figure moves in one interval, as a fraction of itself.
pub const MAX_STEP: f64 = 0.5;
/// The scv moves by at most [`MAX_STEP`] of this while it is below it, so a
/// spec's scv of 0 (every request alike) can still learn.
pub const SCV_STEP_UNIT: f64 = 1.0;
/// The scv the model accepts, as `performance.serviceTimeScv` is validated.
pub const SCV_RANGE: std::ops::RangeInclusive<f64> = 0.0..=25.0;
/// Below this request rate the CPU per request is too noisy to learn from.
pub const MIN_REQUESTS_PER_SECOND: f64 = 0.5;

/// What Prometheus said about one tenant; None where a query had no answer
/// (no series, or NaN).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// Requests per second now (five-minute rate), all replicas.
    pub requests_per_second: Option<f64>,
    /// The highest five-minute rate within the peak window.
    pub peak_requests_per_second: Option<f64>,
    /// CPU cores the replicas use now, all together.
    pub cpu_cores: Option<f64>,
    /// p95 latency from the histogram, in seconds.
    pub p95_seconds: Option<f64>,
    /// Squared coefficient of variation of the latency, from the buckets.
    pub scv: Option<f64>,
}

/// Autopilot's state for one reconcile, as the Autopilot condition says it.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// The condition's status: sized from measurements.
    pub calibrated: bool,
    /// Calibrated, InsufficientData or MetricsUnavailable.
    pub reason: &'static str,
    /// The figures, or why there are none.
    pub message: String,
}

/// The settings of `spec.autopilot`, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Size from measurements.
    pub enabled: bool,
    /// Between two measurements.
    pub interval: Duration,
    /// Prometheus duration the peak is looked for in.
    pub peak_window: String,
}

impl Settings {
    /// The spec's settings, defaults resolved.
    pub fn from_spec(spec: Option<&crm_crds::AutopilotSpec>) -> Self {
        let spec = spec.cloned().unwrap_or_default();
        Settings {
            enabled: spec.enabled,
            interval: Duration::from_secs(
                u64::try_from(spec.interval_seconds.max(30)).unwrap_or(300),
            ),
            peak_window: spec.peak_window,
        }
    }
}

/// Whether a new measurement is due: none yet, or the last is an interval old.
pub fn due(observed: Option<&ObservedLoad>, interval: Duration, now: &Time) -> bool {
    observed.is_none_or(|o| {
        now.0.duration_since(o.sampled_at.0).as_secs_f64() >= interval.as_secs_f64()
    })
}

/// `status.observed` for a sample: the measurements, and the model's p95 at
/// the measured rate with `replicas` replicas. None without a request rate.
pub fn observed(
    sample: &Sample,
    inputs: &Inputs,
    replicas: u32,
    now: &Time,
) -> Option<ObservedLoad> {
    let rate = sample.requests_per_second?;
    let p95 = sample.p95_seconds.map(|s| round(s * 1000.0, 2));
    let model_p95 = (replicas > 0)
        .then(|| model::predicted_p95_ms(inputs, rate, replicas))
        .flatten();
    Some(ObservedLoad {
        requests_per_second: round(rate, 2),
        peak_requests_per_second: round(
            sample.peak_requests_per_second.unwrap_or(rate).max(rate),
            2,
        ),
        request_cpu_millis: cost_millis(sample).map(|c| round(c, 3)),
        p95_latency_ms: p95,
        service_time_scv: sample.scv.map(|s| round(s, 2)),
        model_error_percent: match (model_p95, p95) {
            (Some(model), Some(measured)) if measured > 0.0 => {
                Some(round((model - measured) / measured * 100.0, 1))
            }
            _ => None,
        },
        model_p95_latency_ms: model_p95,
        sampled_at: now.clone(),
    })
}

/// CPU milliseconds per request, when the rate is high enough to tell.
fn cost_millis(sample: &Sample) -> Option<f64> {
    let rate = sample
        .requests_per_second
        .filter(|r| *r >= MIN_REQUESTS_PER_SECOND)?;
    let cores = sample.cpu_cores.filter(|c| *c > 0.0)?;
    Some(cores / rate * 1000.0)
}

/// The spec's figures autopilot starts from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Start {
    /// `performance.requestCpuMillis`.
    pub cost: f64,
    /// The peak the model sizes the spec for.
    pub peak: f64,
    /// `performance.serviceTimeScv`.
    pub scv: f64,
}

impl Start {
    /// The figures of the spec's model inputs.
    pub fn of(inputs: &Inputs) -> Self {
        Start {
            cost: inputs.request_cpu_millis,
            peak: model::size(inputs).sizing.peak_requests_per_second,
            scv: inputs.service_time_scv,
        }
    }
}

/// The next smoothed figures from a sample. `previous` is what autopilot
/// sized from last time, else the spec's figures (`start`), so the first
/// measurement moves them by at most half too. A sample without an scv
/// estimate keeps the last scv.
pub fn learn(
    previous: Option<&AutopilotStatus>,
    start: Start,
    sample: &Sample,
) -> Result<AutopilotStatus, Verdict> {
    let insufficient = |message: String| Verdict {
        calibrated: false,
        reason: "InsufficientData",
        message,
    };
    let Some(rate) = sample.requests_per_second else {
        return Err(insufficient(
            "Prometheus has no request rate for this tenant yet (is crm-server scraped, and the recording rules loaded?)".into(),
        ));
    };
    let Some(cost) = cost_millis(sample) else {
        return Err(insufficient(format!(
            "{} req/s with {}: too little to learn the CPU time per request (needs at least {MIN_REQUESTS_PER_SECOND} req/s and a CPU series)",
            round(rate, 2),
            match sample.cpu_cores {
                Some(c) => format!("{} CPU cores", round(c, 3)),
                None => "no CPU series".into(),
            }
        )));
    };
    let peak = sample.peak_requests_per_second.unwrap_or(rate).max(rate);
    let (last_cost, last_peak, samples) = previous.map_or((start.cost, start.peak, 0), |p| {
        (p.request_cpu_millis, p.peak_requests_per_second, p.samples)
    });
    let last_scv = scv_in_range(
        previous
            .and_then(|p| p.service_time_scv)
            .unwrap_or(start.scv),
    );
    let scv = sample.scv.filter(|s| s.is_finite()).map_or(last_scv, |s| {
        scv_in_range(step(last_scv, scv_in_range(s), SCV_STEP_UNIT))
    });
    Ok(AutopilotStatus {
        request_cpu_millis: round(step(last_cost, cost, 0.0), 3),
        peak_requests_per_second: round(step(last_peak, peak, 0.0), 2),
        service_time_scv: Some(round(scv, 2)),
        samples: samples.saturating_add(1),
    })
}

/// Exponential smoothing, bounded: the new figure moves towards the
/// observation by [`SMOOTHING`], and by at most [`MAX_STEP`] of itself (or
/// of `unit`, when it is smaller).
fn step(previous: f64, observation: f64, unit: f64) -> f64 {
    let smoothed = previous + SMOOTHING * (observation - previous);
    let bound = MAX_STEP * previous.max(unit);
    smoothed.clamp(previous - bound, previous + bound)
}

/// An scv within [`SCV_RANGE`].
fn scv_in_range(scv: f64) -> f64 {
    scv.clamp(*SCV_RANGE.start(), *SCV_RANGE.end())
}

/// The condition for figures learned this reconcile.
pub fn calibrated(learned: &AutopilotStatus) -> Verdict {
    Verdict {
        calibrated: true,
        reason: "Calibrated",
        message: format!(
            "sized from measurements: peak {} req/s at {} ms CPU per request, service-time scv {} ({} samples)",
            learned.peak_requests_per_second,
            learned.request_cpu_millis,
            learned
                .service_time_scv
                .map_or_else(|| "from the spec".into(), |s| s.to_string()),
            learned.samples
        ),
    }
}

/// The condition when Prometheus could not be read.
pub fn unavailable(why: &str) -> Verdict {
    Verdict {
        calibrated: false,
        reason: "MetricsUnavailable",
        message: format!("{why}; sizing is unchanged"),
    }
}

/// The model's inputs with the learned figures in place of the spec's (a
/// status written before autopilot learned the scv keeps the spec's).
pub fn apply(inputs: &Inputs, learned: &AutopilotStatus) -> Inputs {
    Inputs {
        peak_requests_per_second: Some(learned.peak_requests_per_second),
        request_cpu_millis: learned.request_cpu_millis,
        service_time_scv: learned
            .service_time_scv
            .map_or(inputs.service_time_scv, scv_in_range),
        ..inputs.clone()
    }
}

fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests;
