//! Spec → [`Inputs`]: every default of MODEL.md "Inputs and defaults" resolved.

use crm_crds::{Cpu, CrmTenantSpec, DatabaseMode, ResourcesSpec, Tier, defaults};

use super::Inputs;

/// The tier's high-availability floor `f`.
pub fn tier_floor(tier: Tier) -> u32 {
    match tier {
        Tier::Starter => 1,
        Tier::Growth => 2,
        Tier::Enterprise => 3,
    }
}

/// The tier's default p95 latency target, in milliseconds.
pub fn tier_latency_target_ms(tier: Tier) -> f64 {
    match tier {
        Tier::Starter => 500.0,
        Tier::Growth => 300.0,
        Tier::Enterprise => 200.0,
    }
}

/// CPU cores of one replica when the spec gives none.
pub const DEFAULT_CPU: f64 = 0.5;

/// A spec value the model cannot read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct InputError {
    /// JSON path of the field, e.g. `spec.resources.cpu`.
    pub path: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// CPU cores of one replica: resources.cpu, else host.cpu × containerRatio,
/// else [`DEFAULT_CPU`].
fn replica_cpu(resources: Option<&ResourcesSpec>) -> Result<f64, InputError> {
    let Some(resources) = resources else {
        return Ok(DEFAULT_CPU);
    };
    let cores = |cpu: &Cpu, path| {
        cpu.cores().map_err(|e| InputError {
            path,
            message: e.to_string(),
        })
    };
    if let Some(cpu) = &resources.cpu {
        return cores(cpu, "spec.resources.cpu");
    }
    match &resources.host {
        Some(host) => {
            Ok(cores(&host.cpu, "spec.resources.host.cpu")?
                * resources.container_ratio.unwrap_or(1.0))
        }
        None => Ok(DEFAULT_CPU),
    }
}

impl Inputs {
    /// Resolves the spec's defaults, for a tenant on the database `mode`
    /// (the spec's, or the one it runs on: see `validate::database_mode`).
    pub fn from_spec(spec: &CrmTenantSpec, mode: DatabaseMode) -> Result<Self, InputError> {
        let performance = spec.performance.as_ref();
        let cpu = replica_cpu(spec.resources.as_ref())?;
        let embedded = mode == DatabaseMode::Embedded;
        let replicas = spec.replicas.as_ref();
        let count = |n: Option<i32>| n.and_then(|n| u32::try_from(n).ok()).map(|n| n.max(1));
        Ok(Inputs {
            peak_requests_per_second: spec.load.peak_requests_per_second,
            active_users: spec.load.active_users.map(|u| u as f64),
            requests_per_user_per_minute: spec.load.requests_per_user_per_minute,
            peak_factor: spec.load.peak_factor,
            request_cpu_millis: performance
                .map_or_else(defaults::request_cpu_millis, |p| p.request_cpu_millis),
            latency_target_ms: performance
                .and_then(|p| p.latency_target_ms)
                .unwrap_or_else(|| tier_latency_target_ms(spec.tier)),
            base_latency_ms: performance
                .map_or_else(defaults::base_latency_ms, |p| p.base_latency_ms),
            target_utilization: performance
                .map_or_else(defaults::target_utilization, |p| p.target_utilization),
            service_time_scv: performance
                .map_or_else(defaults::service_time_scv, |p| p.service_time_scv),
            cpu,
            tier_floor: tier_floor(spec.tier),
            min_replicas: count(replicas.and_then(|r| r.min)),
            max_replicas: count(replicas.and_then(|r| r.max)),
            autoscaling: !embedded
                && spec
                    .autoscaling
                    .as_ref()
                    .and_then(|a| a.enabled)
                    .unwrap_or(true),
            headroom: spec
                .autoscaling
                .as_ref()
                .map_or_else(defaults::headroom, |a| a.headroom),
            max_connections: spec
                .database
                .as_ref()
                .map_or_else(defaults::max_connections, |d| d.max_connections)
                .max(1) as u32,
            embedded,
        })
    }
}
