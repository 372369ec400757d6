//! The capacity model of MODEL.md: pure arithmetic from a spec to a [`Capacity`].
//!
//! ```text
//!  load ──► λp, λavg ─┐
//!  cpu, c_ms ──► μ ───┼─► N(λ) = max(N_u, N_l, floor, min) ⊓ max ──► N_peak, N_base
//!  T, t0, scv ──► δ ──┘                                                 │
//!        HPA min/max, PDB, predictions at peak, DB pool ◄───────────────┘
//! ```
//!
//! f64 throughout; "ceil" is `ceil(x − 1e-9)` so that 2.0000000001 counts as 2.
//! Reported figures are rounded for status; the arithmetic never is.
//!
//! Each replica is an M/G/1 queue: service times of any distribution, with
//! squared coefficient of variation `scv` (1 is the exponential of M/M/1).
//! The Pollaczek–Khinchine mean sojourn time is `g / (μ − λ/N)` with
//! `g = 1 + ρ (scv − 1) / 2`, and its p95 is approximated as that of an
//! exponential with the same mean (docs/model.md). At `scv = 1`, `g` is
//! exactly 1.0 and every figure is the M/M/1 one, bit for bit.

mod inputs;
#[cfg(test)]
pub(crate) mod tests;

pub use inputs::{DEFAULT_CPU, InputError, tier_floor, tier_latency_target_ms};

use crm_crds::{Sizing, condition};

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
    /// scv: squared coefficient of variation of the service time (1 = M/M/1).
    pub service_time_scv: f64,
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

/// ln 20: a p95 sojourn time of an exponential distribution is ln(20) / rate.
const LN_20: f64 = 2.995_732_273_553_991;

/// MODEL.md's ceil: tolerant of floating-point dust above an integer.
pub fn ceil(x: f64) -> u32 {
    let c = (x - 1e-9).ceil();
    if c.is_finite() && c > 0.0 {
        c.min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

/// The figures every rule below shares.
struct Rates {
    peak: f64,
    average: f64,
    /// μ: requests per second per replica at 100 % CPU.
    mu: f64,
    /// δ: the spare service rate the p95 target needs; None when T ≤ t0.
    delta: Option<f64>,
    t0: f64,
    /// scv of the service time.
    scv: f64,
}

impl Rates {
    fn new(inputs: &Inputs) -> Self {
        let (peak, average) = match inputs.peak_requests_per_second {
            Some(peak) => (peak, peak / inputs.peak_factor),
            None => {
                let average =
                    inputs.active_users.unwrap_or(1.0) * inputs.requests_per_user_per_minute / 60.0;
                (average * inputs.peak_factor, average)
            }
        };
        let target = inputs.latency_target_ms / 1000.0;
        let t0 = inputs.base_latency_ms / 1000.0;
        Rates {
            peak,
            average,
            mu: inputs.cpu / (inputs.request_cpu_millis / 1000.0),
            delta: (target > t0).then(|| LN_20 / (target - t0)),
            t0,
            scv: inputs.service_time_scv,
        }
    }

    /// g: the Pollaczek–Khinchine mean sojourn time of a replica fed `x`
    /// req/s, in units of the M/M/1 one, 1 / (μ − x). Exactly 1.0 at scv = 1.
    fn variability(&self, x: f64) -> f64 {
        1.0 + (x / self.mu) * (self.scv - 1.0) / 2.0
    }

    /// Mean time in the replica's CPU queue, waiting and served (s), for a
    /// replica fed `x` req/s; None when it cannot keep up.
    fn sojourn(&self, x: f64) -> Option<f64> {
        (self.mu > x).then(|| self.variability(x) / (self.mu - x))
    }

    /// p95 latency (s) of a replica fed `x` req/s: t0 plus the p95 of an
    /// exponential with the mean sojourn time; None when it cannot keep up.
    fn p95(&self, x: f64) -> Option<f64> {
        (self.mu > x).then(|| self.t0 + LN_20 * self.variability(x) / (self.mu - x))
    }

    /// The most req/s one replica takes while its p95 stays within the
    /// target: x ≤ (μ − δ) / (1 + δ (scv − 1) / (2μ)), the M/M/1 bound μ − δ
    /// at scv = 1. None when no load meets the target.
    fn latency_bound(&self) -> Option<f64> {
        let delta = self.delta.filter(|delta| self.mu > *delta)?;
        Some((self.mu - delta) / (1.0 + delta * (self.scv - 1.0) / (2.0 * self.mu)))
    }

    /// Some replica count meets the p95 target.
    fn feasible(&self) -> bool {
        self.delta.is_some_and(|delta| self.mu > delta)
    }

    /// N(λ) before m_max: utilisation bound, p95 bound (when feasible), floors.
    fn uncapped(&self, inputs: &Inputs, lambda: f64) -> u32 {
        let utilisation = ceil(lambda / (inputs.target_utilization * self.mu));
        let latency = self.latency_bound().map_or(0, |bound| ceil(lambda / bound));
        utilisation
            .max(latency)
            .max(inputs.tier_floor)
            .max(inputs.min_replicas.unwrap_or(1))
    }

    /// N(λ): the uncapped count, then at most m_max.
    fn replicas(&self, inputs: &Inputs, lambda: f64) -> u32 {
        let n = self.uncapped(inputs, lambda);
        inputs.max_replicas.map_or(n, |max| n.min(max))
    }

    /// Requests in flight per replica at peak with `n` replicas (Little's law),
    /// None when the replicas cannot keep up.
    fn in_flight(&self, n: u32) -> Option<f64> {
        let per_replica = self.peak / f64::from(n.max(1));
        self.sojourn(per_replica)
            .map(|sojourn| per_replica * (self.t0 + sojourn))
    }
}

/// The p95 latency (ms) the model predicts for `n` replicas sharing
/// `requests_per_second` evenly, as in [`size`]'s prediction at peak; None
/// when they cannot keep up. Autopilot compares it with the measured p95.
pub fn predicted_p95_ms(inputs: &Inputs, requests_per_second: f64, n: u32) -> Option<f64> {
    let rates = Rates::new(inputs);
    rates
        .p95(requests_per_second / f64::from(n.max(1)))
        .map(|s| round(s * 1000.0, 2))
}

/// The pool each replica needs: max(2, ceil(L) + 1). When the replicas cannot
/// keep up, L is unbounded; the pool is then sized for a replica running at the
/// target utilisation, which is what the autoscaler steers towards.
fn pool_size(rates: &Rates, inputs: &Inputs, n: u32) -> u32 {
    let in_flight = rates.in_flight(n).unwrap_or_else(|| {
        let served = inputs.target_utilization * rates.mu;
        served * (rates.t0 + rates.sojourn(served).unwrap_or(f64::INFINITY))
    });
    ceil(in_flight).saturating_add(1).max(2)
}

/// Sizes a tenant.
pub fn size(inputs: &Inputs) -> Capacity {
    let rates = Rates::new(inputs);
    let needed = rates.uncapped(inputs, rates.peak);
    let mut peak = rates.replicas(inputs, rates.peak);
    let base = rates.replicas(inputs, rates.average);
    let (mut min, mut max) = if inputs.embedded {
        (1, 1)
    } else if inputs.autoscaling {
        let with_headroom = peak.max(ceil(f64::from(peak) * (1.0 + inputs.headroom)));
        (
            base,
            inputs
                .max_replicas
                .map_or(with_headroom, |m| with_headroom.min(m)),
        )
    } else {
        (peak, peak)
    };
    if inputs.embedded {
        peak = 1;
    }
    let pool = pool_size(&rates, inputs, peak);
    let mut limited = None;
    if !inputs.embedded && u64::from(pool) * u64::from(max) > u64::from(inputs.max_connections) {
        let lowered = base.max(inputs.max_connections / pool).min(max);
        limited = Some((max, lowered));
        max = lowered;
        if !inputs.autoscaling {
            min = lowered;
        }
        min = min.min(max);
        peak = peak.min(max);
    }
    let sizing = sizing(inputs, &rates, peak, min, max, pool);
    let conditions = vec![
        slo_condition(inputs, &rates, &sizing),
        capped_condition(inputs, needed, peak),
        connections_condition(inputs, pool, limited),
    ];
    Capacity { sizing, conditions }
}

fn sizing(inputs: &Inputs, rates: &Rates, n: u32, min: u32, max: u32, pool: u32) -> Sizing {
    let per_replica = rates.peak / f64::from(n.max(1));
    let p95 = rates.p95(per_replica);
    Sizing {
        peak_requests_per_second: round(rates.peak, 2),
        average_requests_per_second: round(rates.average, 2),
        per_replica_throughput: round(rates.mu, 2),
        replicas: to_i32(n),
        min_replicas: to_i32(min),
        max_replicas: to_i32(max),
        target_cpu_utilization: (inputs.target_utilization * 100.0).round() as i32,
        predicted_p95_latency_ms: p95.map(|s| round(s * 1000.0, 2)),
        predicted_utilization: round(per_replica / rates.mu, 3),
        capacity_requests_per_second: round(f64::from(n) * inputs.target_utilization * rates.mu, 2),
        in_flight_per_replica: rates.in_flight(n).map(|l| round(l, 2)),
        db_pool_size: to_i32(pool),
        slo_feasible: rates.feasible(),
        min_cpu_for_slo: min_cpu_for_slo(inputs, rates),
    }
}

/// c × δ cores, rounded up to the next 10 millicores, when the CPU per replica
/// is what makes the target unreachable.
fn min_cpu_for_slo(inputs: &Inputs, rates: &Rates) -> Option<f64> {
    let delta = rates.delta.filter(|_| !rates.feasible())?;
    let cores = inputs.request_cpu_millis / 1000.0 * delta;
    Some(f64::from(ceil(cores * 100.0)) / 100.0)
}

fn slo_condition(inputs: &Inputs, rates: &Rates, sizing: &Sizing) -> ModelCondition {
    let target = inputs.latency_target_ms;
    let (status, reason, message) = match (rates.delta, sizing.min_cpu_for_slo) {
        (None, _) => (
            false,
            "LatencyBelowBaseline",
            format!(
                "the p95 target of {target} ms is not above the base latency of {} ms: no replica count can meet it",
                inputs.base_latency_ms
            ),
        ),
        (Some(_), Some(cores)) => (
            false,
            "CpuPerReplicaTooSmall",
            format!(
                "{} cores per replica cannot meet the p95 target of {target} ms at any replica count; at least {cores} cores per replica are needed",
                inputs.cpu
            ),
        ),
        (Some(_), None) => (
            true,
            "TargetReachable",
            match sizing.predicted_p95_latency_ms {
                Some(p95) => format!(
                    "predicted p95 {p95} ms at peak with {} replicas, target {target} ms",
                    sizing.replicas
                ),
                None => format!(
                    "the target of {target} ms is reachable, but {} replicas cannot keep up with the peak",
                    sizing.replicas
                ),
            },
        ),
    };
    ModelCondition {
        type_: condition::SLO_FEASIBLE,
        status,
        reason,
        message,
    }
}

fn capped_condition(inputs: &Inputs, needed: u32, running: u32) -> ModelCondition {
    let (status, reason, message) = if inputs.embedded && needed > 1 {
        (
            true,
            "EmbeddedDatabaseSingleReplica",
            format!("the load needs {needed} replicas, but the Embedded database runs exactly one"),
        )
    } else if !inputs.embedded && needed > running {
        (
            true,
            "ReplicasMaxReached",
            format!("the load needs {needed} replicas at peak; capped at {running}"),
        )
    } else {
        (
            false,
            "WithinLimits",
            format!("{running} replicas carry the peak"),
        )
    };
    ModelCondition {
        type_: condition::CAPACITY_CAPPED,
        status,
        reason,
        message,
    }
}

fn connections_condition(
    inputs: &Inputs,
    pool: u32,
    limited: Option<(u32, u32)>,
) -> ModelCondition {
    let (status, reason, message) = match limited {
        Some((asked, lowered)) => (
            true,
            "PoolExceedsMaxConnections",
            format!(
                "{pool} connections per replica × {asked} replicas exceed maxConnections {}; maximum lowered to {lowered} replicas",
                inputs.max_connections
            ),
        ),
        None => (
            false,
            "WithinLimits",
            format!(
                "{pool} connections per replica fit within maxConnections {}",
                inputs.max_connections
            ),
        ),
    };
    ModelCondition {
        type_: condition::DATABASE_CONNECTIONS_LIMITED,
        status,
        reason,
        message,
    }
}

fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
