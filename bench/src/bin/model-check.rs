//! `model-check`: the rate at which the capacity model predicts that one
//! replica of `--cores` CPU crosses a p95 target, for a measured
//! `requestCpuMillis`, and the error of a measured crossing against it.
//!
//! The prediction comes from `crm_operator::model::size` itself: the largest
//! peak rate whose predicted p95 with one replica stays within the target,
//! found by bisection (the closed form is μ − δ; both are printed).

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
        // M/M/1, whose closed form μ − δ is printed beside the bisection.
        service_time_scv: 1.0,
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

fn main() {
    let args = Args::parse();
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
    print!(
        "model c_ms={} cores={} target_ms={} mu={mu:.2} delta={delta:.3} \
         predicted_crossing={low:.2} closed_form={:.2}",
        args.cpu_millis,
        args.cores,
        args.latency_target_ms,
        mu - delta
    );
    match args.measured {
        Some(m) if m > 0.0 => println!(
            " measured_crossing={m:.2} error_pct={:+.1}",
            (low - m) / m * 100.0
        ),
        _ => println!(),
    }
}
