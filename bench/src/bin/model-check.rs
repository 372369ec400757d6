//! `model-check`: the rate at which the capacity model predicts that one
//! replica of `--cores` CPU crosses a p95 target, for a measured
//! `requestCpuMillis`, and the error of a measured crossing against it.
//!
//! The prediction comes from `crm_operator::model::size` itself: the largest
//! peak rate whose predicted p95 with one replica stays within the target,
//! found by bisection (the closed form is (μ − δ) / (1 + δ (scv − 1) / 2μ),
//! μ − δ at scv = 1; both are printed).

use clap::Parser;
use crm_operator::model::{self, Inputs};

/// Model prediction of the p95 crossing rate for one replica.
#[derive(Debug, Parser)]
#[command(name = "model-check", about)]
struct Args {
    /// Measured CPU milliseconds per request (c_ms).
    #[arg(long)]
    cpu_millis: f64,
    /// CPU of the replica in cores (r).
    #[arg(long, default_value_t = 1.0)]
    cores: f64,
    /// p95 target in ms (T_ms): Starter 500, Growth 300, Enterprise 200.
    #[arg(long)]
    latency_target_ms: f64,
    /// Squared coefficient of variation of the service time (1: M/M/1), as
    /// `loadgen --concurrency 1` measures it.
    #[arg(long, default_value_t = 1.0)]
    scv: f64,
    /// Fixed latency outside the CPU queue (t0_ms), the model's default.
    #[arg(long, default_value_t = 5.0)]
    base_latency_ms: f64,
    /// Measured crossing rate, req/s; prints the model's error against it.
    #[arg(long)]
    measured: Option<f64>,
}

fn inputs(args: &Args, peak: f64) -> Inputs {
    Inputs {
        peak_requests_per_second: Some(peak),
        active_users: None,
        requests_per_user_per_minute: 6.0,
        peak_factor: 1.0,
        request_cpu_millis: args.cpu_millis,
        latency_target_ms: args.latency_target_ms,
        base_latency_ms: args.base_latency_ms,
        target_utilization: 0.7,
        service_time_scv: args.scv,
        cpu: args.cores,
        tier_floor: 1,
        min_replicas: None,
        max_replicas: Some(1),
        autoscaling: false,
        headroom: 0.0,
        max_connections: 1000,
        embedded: false,
    }
}

/// Predicted p95 in ms with one replica at this rate; None when saturated.
fn p95(args: &Args, rate: f64) -> Option<f64> {
    model::size(&inputs(args, rate))
        .sizing
        .predicted_p95_latency_ms
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !(0.0..=25.0).contains(&args.scv) {
        anyhow::bail!(
            "--scv {} is outside 0..=25, what performance.serviceTimeScv accepts",
            args.scv
        );
    }
    let mu = args.cores / (args.cpu_millis / 1000.0);
    let delta = 2.995_732_273_553_991 / ((args.latency_target_ms - args.base_latency_ms) / 1000.0);
    let (mut low, mut high) = (0.0_f64, mu);
    for _ in 0..100 {
        let mid = (low + high) / 2.0;
        match p95(&args, mid) {
            Some(ms) if ms <= args.latency_target_ms => low = mid,
            _ => high = mid,
        }
    }
    let closed_form = (mu - delta) / (1.0 + delta * (args.scv - 1.0) / (2.0 * mu));
    print!(
        "model c_ms={} cores={} scv={} target_ms={} mu={mu:.2} delta={delta:.3} \
         predicted_crossing={low:.2} closed_form={closed_form:.2}",
        args.cpu_millis, args.cores, args.scv, args.latency_target_ms,
    );
    match args.measured {
        Some(m) if m > 0.0 => println!(
            " measured_crossing={m:.2} error_pct={:+.1}",
            (low - m) / m * 100.0
        ),
        _ => println!(),
    }
    Ok(())
}
