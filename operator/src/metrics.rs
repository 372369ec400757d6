//! Prometheus metrics of the controller: how many reconciles, how they
//! ended, how long they took, how many writes they needed, the tenants by
//! phase, the API requests by verb and code, and whether this replica leads.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crm_crds::CrmTenant;
use kube::runtime::reflector::Store;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The controller's metrics, registered in their own registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: IntCounterVec,
    failures: IntCounterVec,
    duration: HistogramVec,
    writes: IntCounterVec,
    tenants: IntGaugeVec,
    tenant_phase: IntGaugeVec,
    tenant_capacity: GaugeVec,
    api_requests: IntCounterVec,
    leader: IntGauge,
    synced: IntGauge,
    /// The tenant cache of the running controller, counted at each scrape.
    tenant_cache: Mutex<Option<Store<CrmTenant>>>,
}

/// Phases a tenant can report, and `Unknown` for one without status yet.
pub const PHASES: [&str; 7] = [
    "Pending",
    "Provisioning",
    "Ready",
    "Degraded",
    "Suspended",
    "Deleting",
    "Unknown",
];

/// How a reconcile ended, as the `result` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything applied and the status written.
    Ok,
    /// It failed; the error policy requeues it.
    Error,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
        }
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("crm_operator".into()), None)?;
        let reconciles = IntCounterVec::new(
            Opts::new("reconciles_total", "Reconciles of CrmTenants, by result."),
            &["result"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "reconcile_failures_total",
                "Failed reconciles, by the reason their Warning Event gives.",
            ),
            &["reason"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "reconcile_duration_seconds",
                "Time one reconcile took, from the cached tenant to its status.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["result"],
        )?;
        let writes = IntCounterVec::new(
            Opts::new(
                "child_writes_total",
                "Children applied or deleted, by action; zero on a settled tenant.",
            ),
            &["action"],
        )?;
        let tenants = IntGaugeVec::new(
            Opts::new(
                "tenants",
                "CrmTenants this replica reconciles, by status.phase (leader only).",
            ),
            &["phase"],
        )?;
        let tenant_phase = IntGaugeVec::new(
            Opts::new(
                "tenant_phase",
                "1 for the phase each tenant is in (one series per tenant), for alerts naming it.",
            ),
            &["namespace", "tenant", "phase"],
        )?;
        let tenant_capacity = GaugeVec::new(
            Opts::new(
                "tenant_capacity_requests_per_second",
                "Requests per second each tenant's peak replicas carry at the target utilisation (status.sizing).",
            ),
            &["namespace", "tenant"],
        )?;
        let api_requests = IntCounterVec::new(
            Opts::new(
                "api_requests_total",
                "Requests to the Kubernetes API, by RBAC verb and HTTP status code.",
            ),
            &["verb", "code"],
        )?;
        let leader = IntGauge::new(
            "leader",
            "1 while this replica holds the leader lease and runs the controller.",
        )?;
        let synced = IntGauge::new(
            "caches_synced",
            "1 once the running controller has listed tenants and children.",
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(writes.clone()))?;
        registry.register(Box::new(tenants.clone()))?;
        registry.register(Box::new(tenant_phase.clone()))?;
        registry.register(Box::new(tenant_capacity.clone()))?;
        registry.register(Box::new(api_requests.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(synced.clone()))?;
        Ok(Self {
            registry,
            reconciles,
            failures,
            duration,
            writes,
            tenants,
            tenant_phase,
            tenant_capacity,
            api_requests,
            leader,
            synced,
            tenant_cache: Mutex::new(None),
        })
    }

    /// Counts one answered API request; `code` is `error` when none came.
    pub fn api_request(&self, verb: &str, code: &str) {
        self.api_requests.with_label_values(&[verb, code]).inc();
    }

    /// Whether this replica leads (and runs the controller).
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Whether this replica leads.
    pub fn is_leader(&self) -> bool {
        self.leader.get() == 1
    }

    /// Whether the running controller's caches are filled.
    pub fn set_synced(&self, synced: bool) {
        self.synced.set(i64::from(synced));
    }

    /// Whether the running controller's caches are filled.
    pub fn is_synced(&self) -> bool {
        self.synced.get() == 1
    }

    /// Counts tenants by phase from this cache at every scrape; `None` when
    /// the controller stops, so a standby reports no tenants.
    pub fn count_tenants(&self, cache: Option<Store<CrmTenant>>) {
        *self
            .tenant_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = cache;
    }

    fn update_tenant_gauge(&self) {
        let cache = self
            .tenant_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut counts = [0i64; PHASES.len()];
        // Tenants that went away must leave no series behind.
        self.tenant_phase.reset();
        self.tenant_capacity.reset();
        for tenant in cache.map(|c| c.state()).unwrap_or_default() {
            let status = tenant.status.as_ref();
            let phase = status
                .and_then(|s| s.phase)
                .map_or_else(|| "Unknown".to_owned(), |p| format!("{p:?}"));
            if let Some(i) = PHASES.iter().position(|known| *known == phase) {
                counts[i] += 1;
            }
            let namespace = tenant.metadata.namespace.as_deref().unwrap_or_default();
            let name = tenant.metadata.name.as_deref().unwrap_or_default();
            self.tenant_phase
                .with_label_values(&[namespace, name, phase.as_str()])
                .set(1);
            if let Some(sizing) = status.and_then(|s| s.sizing.as_ref()) {
                self.tenant_capacity
                    .with_label_values(&[namespace, name])
                    .set(sizing.capacity_requests_per_second);
            }
        }
        for (phase, count) in PHASES.iter().zip(counts) {
            self.tenants.with_label_values(&[phase]).set(count);
        }
    }

    /// Records one finished reconcile.
    pub fn reconciled(&self, outcome: Outcome, took: Duration) {
        let label = outcome.label();
        self.reconciles.with_label_values(&[label]).inc();
        self.duration
            .with_label_values(&[label])
            .observe(took.as_secs_f64());
    }

    /// Records why a reconcile failed.
    pub fn failed(&self, reason: &str) {
        self.failures.with_label_values(&[reason]).inc();
    }

    /// Records children written by one reconcile.
    pub fn wrote(&self, applied: usize, pruned: usize) {
        self.writes
            .with_label_values(&["apply"])
            .inc_by(applied as u64);
        self.writes
            .with_label_values(&["delete"])
            .inc_by(pruned as u64);
    }

    /// Reconciles so far that ended this way.
    pub fn reconciles(&self, outcome: Outcome) -> u64 {
        self.reconciles.with_label_values(&[outcome.label()]).get()
    }

    /// All metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        self.update_tenant_gauge();
        let mut buffer = Vec::new();
        // Encoding to memory fails only on invalid metric names, fixed above.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_are_counted_by_result_and_exposed() {
        let metrics = Metrics::new().expect("metrics");
        metrics.reconciled(Outcome::Ok, Duration::from_millis(3));
        metrics.reconciled(Outcome::Ok, Duration::from_millis(30));
        metrics.reconciled(Outcome::Error, Duration::from_millis(1));
        metrics.failed("ApplyFailed");
        metrics.wrote(3, 1);
        assert_eq!(metrics.reconciles(Outcome::Ok), 2);
        assert_eq!(metrics.reconciles(Outcome::Error), 1);
        let text = metrics.encode();
        assert!(
            text.contains(r#"crm_operator_reconciles_total{result="ok"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"crm_operator_reconcile_failures_total{reason="ApplyFailed"} 1"#));
        assert!(text.contains(r#"crm_operator_child_writes_total{action="apply"} 3"#));
        assert!(text.contains(r#"crm_operator_reconcile_duration_seconds_count{result="ok"} 2"#));
    }
}
