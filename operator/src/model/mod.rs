//! The capacity model of MODEL.md: pure arithmetic from a spec to a [`Capacity`].
//!
//! (Being implemented: see the model module's own issue work.)

use crm_crds::{CrmTenantSpec, Sizing};

/// The model's inputs, every default resolved (MODEL.md "Inputs and defaults").
#[derive(Clone, Debug, PartialEq)]
pub struct Inputs {
    /// λp if given (req/s).
    pub peak_requests_per_second: Option<f64>,
    /// U if given.
    pub active_users: Option<f64>,
    /// q.
    pub requests_per_user_per_minute: f64,
    /// k.
    pub peak_factor: f64,
    /// c_ms.
    pub request_cpu_millis: f64,
    /// T_ms.
    pub latency_target_ms: f64,
    /// t0_ms.
    pub base_latency_ms: f64,
    /// ρ.
    pub target_utilization: f64,
    /// r, cores.
    pub cpu: f64,
    /// f.
    pub tier_floor: u32,
    /// m_min.
    pub min_replicas: Option<u32>,
    /// m_max.
    pub max_replicas: Option<u32>,
    /// Autoscaling on.
    pub autoscaling: bool,
    /// h.
    pub headroom: f64,
    /// D.
    pub max_connections: u32,
    /// Embedded database: exactly one replica.
    pub embedded: bool,
}

impl Inputs {
    /// Resolves the spec's defaults.
    pub fn from_spec(_spec: &CrmTenantSpec) -> Self {
        unimplemented!("model inputs")
    }
}

/// A condition the model implies.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelCondition {
    /// Condition type (`crm_crds::condition::*`).
    pub type_: &'static str,
    /// True or False.
    pub status: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// Human-readable message with the figures.
    pub message: String,
}

/// The model's answer for one spec.
#[derive(Clone, Debug, PartialEq)]
pub struct Capacity {
    /// The figures reported in `status.sizing`.
    pub sizing: Sizing,
    /// SloFeasible, CapacityCapped and DatabaseConnectionsLimited, always all three.
    pub conditions: Vec<ModelCondition>,
}

/// Sizes a tenant.
pub fn size(_inputs: &Inputs) -> Capacity {
    unimplemented!("capacity model")
}
