//! Spec → [`Inputs`]: every default of MODEL.md "Inputs and defaults" resolved.

use crm_crds::{CrmTenantSpec, DatabaseMode, Tier, defaults};

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

impl Inputs {
    /// Resolves the spec's defaults, for a tenant on the database `mode`
    /// (the spec's, or the one it runs on: see `validate::database_mode`).
    pub fn from_spec(spec: &CrmTenantSpec, mode: DatabaseMode) -> Self {
        let performance = spec.performance.as_ref();
        let resources = spec.resources.as_ref();
        let cpu = resources
            .and_then(|r| {
                r.cpu.or_else(|| {
                    r.host
                        .as_ref()
                        .map(|h| h.cpu * r.container_ratio.unwrap_or(1.0))
                })
            })
            .unwrap_or(DEFAULT_CPU);
        let embedded = mode == DatabaseMode::Embedded;
        let replicas = spec.replicas.as_ref();
        let count = |n: Option<i32>| n.and_then(|n| u32::try_from(n).ok()).map(|n| n.max(1));
        Inputs {
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
        }
    }
}
