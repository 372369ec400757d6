use proptest::prelude::*;

use super::*;
use crate::model::tests::{arbitrary_inputs, example_a as inputs};

fn sample(rate: f64, peak: f64, cores: f64) -> Sample {
    Sample {
        requests_per_second: Some(rate),
        peak_requests_per_second: Some(peak),
        cpu_cores: Some(cores),
        p95_seconds: Some(0.040),
        scv: Some(2.0),
    }
}

/// The spec's figures: `cost` ms a request, a `peak`, exponential service.
fn start(cost: f64, peak: f64) -> Start {
    Start {
        cost,
        peak,
        scv: 1.0,
    }
}

fn with_scv(scv: Option<f64>) -> Sample {
    Sample {
        scv,
        ..sample(200.0, 400.0, 0.8)
    }
}

fn now(seconds: i64) -> Time {
    Time(jiff::Timestamp::from_second(1_800_000_000 + seconds).expect("valid time"))
}

#[test]
fn first_measurement_moves_the_spec_figures_half_way_and_at_most_by_half() {
    // 200 req/s on 0.8 cores: 4 ms per request; the spec says 2 ms.
    let learned = learn(None, start(2.0, 300.0), &sample(200.0, 400.0, 0.8)).expect("enough data");
    assert_eq!(learned.request_cpu_millis, 3.0, "2 + ½ (4 − 2)");
    assert_eq!(
        learned.peak_requests_per_second, 350.0,
        "300 + ½ (400 − 300)"
    );
    assert_eq!(learned.samples, 1);
    // A tenant ten times busier than its spec still moves by half at most.
    let learned = learn(None, start(2.0, 300.0), &sample(200.0, 3000.0, 4.0)).expect("enough data");
    assert_eq!(learned.request_cpu_millis, 3.0, "capped at 2 × 1.5");
    assert_eq!(
        learned.peak_requests_per_second, 450.0,
        "capped at 300 × 1.5"
    );
    // A nearly idle one: smoothing alone keeps it above half.
    let learned = learn(None, start(2.0, 300.0), &sample(20.0, 20.0, 0.0002)).expect("enough data");
    assert_eq!(learned.request_cpu_millis, 1.005, "2 + ½ (0.01 − 2)");
    assert_eq!(learned.peak_requests_per_second, 160.0);
}

#[test]
fn later_measurements_smooth_from_the_learned_figures() {
    let previous = AutopilotStatus {
        request_cpu_millis: 3.0,
        peak_requests_per_second: 350.0,
        service_time_scv: Some(1.5),
        samples: 1,
    };
    let learned = learn(
        Some(&previous),
        start(2.0, 300.0),
        &sample(200.0, 400.0, 0.8),
    )
    .expect("data");
    assert_eq!(learned.request_cpu_millis, 3.5);
    assert_eq!(learned.peak_requests_per_second, 375.0);
    assert_eq!(learned.service_time_scv, Some(1.75), "1.5 + ½ (2 − 1.5)");
    assert_eq!(learned.samples, 2);
}

#[test]
fn the_peak_is_never_below_the_rate_now() {
    let learned = learn(None, start(2.0, 300.0), &sample(400.0, 100.0, 0.8)).expect("data");
    assert_eq!(learned.peak_requests_per_second, 350.0, "peak taken as 400");
}

#[test]
fn too_little_traffic_or_no_cpu_series_is_insufficient_data() {
    let idle = learn(None, start(2.0, 300.0), &sample(0.1, 5.0, 0.01)).expect_err("too little");
    assert_eq!((idle.calibrated, idle.reason), (false, "InsufficientData"));
    assert!(idle.message.contains("0.5 req/s"), "{}", idle.message);
    let no_cpu = Sample {
        cpu_cores: None,
        ..sample(100.0, 100.0, 0.0)
    };
    let verdict = learn(None, start(2.0, 300.0), &no_cpu).expect_err("no CPU");
    assert!(
        verdict.message.contains("no CPU series"),
        "{}",
        verdict.message
    );
    let nothing = learn(None, start(2.0, 300.0), &Sample::default()).expect_err("no rate");
    assert!(
        nothing.message.contains("no request rate"),
        "{}",
        nothing.message
    );
}

#[test]
fn observed_load_compares_the_model_with_the_measurement() {
    // Example A's replica at 150 req/s: the model says 34.96 ms.
    let load = observed(&sample(300.0, 320.0, 0.6), &inputs(), 2, &now(0)).expect("a rate");
    assert_eq!(load.requests_per_second, 300.0);
    assert_eq!(load.peak_requests_per_second, 320.0);
    assert_eq!(load.request_cpu_millis, Some(2.0));
    assert_eq!(load.p95_latency_ms, Some(40.0));
    assert_eq!(load.model_p95_latency_ms, Some(34.96));
    assert_eq!(load.model_error_percent, Some(-12.6));
    assert_eq!(load.service_time_scv, Some(2.0));
    assert_eq!(load.sampled_at, now(0));
    // No replicas running: nothing to predict.
    let idle = observed(&sample(0.0, 0.0, 0.0), &inputs(), 0, &now(0)).expect("a rate");
    assert_eq!(
        (idle.model_p95_latency_ms, idle.request_cpu_millis),
        (None, None)
    );
    assert_eq!(observed(&Sample::default(), &inputs(), 2, &now(0)), None);
}

#[test]
fn a_measurement_is_due_once_per_interval() {
    let interval = Duration::from_secs(300);
    assert!(due(None, interval, &now(0)));
    let last = observed(&sample(1.0, 1.0, 0.1), &inputs(), 2, &now(0));
    assert!(!due(last.as_ref(), interval, &now(299)));
    assert!(due(last.as_ref(), interval, &now(300)));
}

#[test]
fn learned_figures_replace_the_spec_figures_and_keep_the_bounds() {
    let learned = AutopilotStatus {
        request_cpu_millis: 4.0,
        peak_requests_per_second: 3000.0,
        service_time_scv: None,
        samples: 3,
    };
    let capped = Inputs {
        max_replicas: Some(10),
        ..inputs()
    };
    let sized = model::size(&apply(&capped, &learned)).sizing;
    assert_eq!(sized.replicas, 10, "replicas.max holds");
    let quiet = AutopilotStatus {
        request_cpu_millis: 0.5,
        peak_requests_per_second: 1.0,
        service_time_scv: None,
        samples: 3,
    };
    let sized = model::size(&apply(&inputs(), &quiet)).sizing;
    assert_eq!(
        (sized.replicas, sized.min_replicas),
        (2, 2),
        "the tier floor holds"
    );
}

#[test]
fn the_scv_is_smoothed_from_the_spec_s_and_moves_at_most_half() {
    let learn_scv = |previous: Option<&AutopilotStatus>, spec: f64, observed: Option<f64>| {
        let start = Start {
            scv: spec,
            ..start(2.0, 300.0)
        };
        learn(previous, start, &with_scv(observed))
            .expect("enough data")
            .service_time_scv
    };
    assert_eq!(learn_scv(None, 1.0, Some(2.0)), Some(1.5), "1 + ½ (2 − 1)");
    assert_eq!(
        learn_scv(None, 1.0, Some(0.2)),
        Some(0.6),
        "1 + ½ (0.2 − 1)"
    );
    assert_eq!(
        learn_scv(None, 1.0, Some(9.0)),
        Some(1.5),
        "capped at 1 × 1.5"
    );
    assert_eq!(learn_scv(None, 4.0, Some(0.0)), Some(2.0), "at least 4 × ½");
    // From 0 (every request alike) it moves by half of 1, not half of 0.
    assert_eq!(learn_scv(None, 0.0, Some(3.0)), Some(0.5));
    // Without an estimate the figure stays where it was.
    assert_eq!(learn_scv(None, 2.5, None), Some(2.5));
    assert_eq!(learn_scv(None, 2.5, Some(f64::NAN)), Some(2.5));
    // A later sample starts from the learned figure; a status written
    // before the scv was learned starts from the spec's.
    let previous = AutopilotStatus {
        request_cpu_millis: 3.0,
        peak_requests_per_second: 350.0,
        service_time_scv: Some(4.0),
        samples: 1,
    };
    assert_eq!(learn_scv(Some(&previous), 1.0, Some(2.0)), Some(3.0));
    let older = AutopilotStatus {
        service_time_scv: None,
        ..previous.clone()
    };
    assert_eq!(learn_scv(Some(&older), 1.0, Some(2.0)), Some(1.5));
    // It stays within what performance.serviceTimeScv accepts.
    let high = AutopilotStatus {
        service_time_scv: Some(25.0),
        ..previous
    };
    assert_eq!(learn_scv(Some(&high), 1.0, Some(400.0)), Some(25.0));
    assert_eq!(learn_scv(None, 1.0, Some(-3.0)), Some(0.5), "read as 0");
}

#[test]
fn the_learned_scv_sizes_the_tenant_and_an_old_status_keeps_the_spec_s() {
    let learned = |scv| AutopilotStatus {
        request_cpu_millis: 2.0,
        peak_requests_per_second: 300.0,
        service_time_scv: scv,
        samples: 1,
    };
    assert_eq!(apply(&inputs(), &learned(Some(4.0))).service_time_scv, 4.0);
    assert_eq!(apply(&inputs(), &learned(None)).service_time_scv, 1.0);
    assert_eq!(
        apply(&inputs(), &learned(Some(99.0))).service_time_scv,
        25.0
    );
    // docs/model.md: example A with T = 40 ms needs 2 replicas at scv 1,
    // 3 at scv 4.
    let tight = Inputs {
        latency_target_ms: 40.0,
        ..inputs()
    };
    let sized = |scv| model::size(&apply(&tight, &learned(scv))).sizing.replicas;
    assert_eq!((sized(None), sized(Some(4.0))), (2, 3));
}

proptest! {
    #[test]
    fn a_higher_observed_scv_never_lowers_the_replica_count(
        inputs in arbitrary_inputs(),
        spec_scv in 0.0f64..25.0,
        observed in 0.0f64..40.0,
        more in 0.0f64..20.0,
    ) {
        let inputs = Inputs { max_connections: u32::MAX, service_time_scv: spec_scv, ..inputs };
        let replicas = |scv: f64| {
            let sample = Sample { scv: Some(scv), ..sample(10.0, 10.0, 0.02) };
            let learned = learn(None, Start::of(&inputs), &sample).expect("enough data");
            let scv = learned.service_time_scv.expect("an scv");
            prop_assert!(SCV_RANGE.contains(&scv), "{scv}");
            Ok((scv, model::size(&apply(&inputs, &learned)).sizing.replicas))
        };
        let (low_scv, low) = replicas(observed)?;
        let (high_scv, high) = replicas(observed + more)?;
        prop_assert!(high_scv >= low_scv, "{high_scv} < {low_scv}");
        prop_assert!(high >= low, "{high} < {low} replicas");
    }
}

#[test]
fn settings_default_to_five_minutes_over_a_week() {
    let settings = Settings::from_spec(None);
    assert!(!settings.enabled);
    assert_eq!(settings.interval, Duration::from_secs(300));
    assert_eq!(settings.peak_window, "7d");
}
