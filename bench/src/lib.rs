//! Benchmarks of the CRM server and the operator; they print figures, they
//! assert nothing (bench/README.md says how to run each).
//!
//! ```text
//!  loadgen ──open loop, Poisson arrivals──► crm-server (taskset core 0)
//!     │  latency from the intended send time (HDR histogram, exact mean and scv)
//!     └─ /proc/<pid>/stat utime+stime ──► CPU-ms per request
//!  operator-scale: controller::run ──► ApiDouble (in process) ──► requests, writes, VmHWM
//! ```

#![forbid(unsafe_code)]

pub mod baseline;
pub mod cluster;
pub mod fleet;
pub mod mix;
pub mod moments;
pub mod operator;
pub mod pass;
pub mod proc;

use hdrhistogram::Histogram;

/// A latency histogram in microseconds, 1 µs to 10 min, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Milliseconds of the `q` quantile of a histogram in microseconds.
pub fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}
