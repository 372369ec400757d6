//! Prometheus metrics of the controller: how many reconciles, how they
//! ended, how long they took, and how many writes they needed.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The controller's metrics, registered in their own registry.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: IntCounterVec,
    failures: IntCounterVec,
    duration: HistogramVec,
    writes: IntCounterVec,
}

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
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(writes.clone()))?;
        Ok(Self {
            registry,
            reconciles,
            failures,
            duration,
            writes,
        })
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
