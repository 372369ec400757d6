use proptest::prelude::*;

use super::*;

/// MODEL.md worked example A, as a builder others (autopilot's tests too)
/// vary.
pub(crate) fn example_a() -> Inputs {
    Inputs {
        peak_requests_per_second: Some(300.0),
        active_users: None,
        requests_per_user_per_minute: 6.0,
        peak_factor: 3.0,
        request_cpu_millis: 2.0,
        latency_target_ms: 200.0,
        base_latency_ms: 5.0,
        target_utilization: 0.7,
        service_time_scv: 1.0,
        cpu: 0.5,
        tier_floor: 2,
        min_replicas: None,
        max_replicas: None,
        autoscaling: true,
        headroom: 0.25,
        max_connections: 100,
        embedded: false,
    }
}

fn condition<'a>(capacity: &'a Capacity, type_: &str) -> &'a ModelCondition {
    capacity
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("{type_} missing"))
}

#[test]
fn worked_example_a_growth_tier_at_300_requests_per_second() {
    let inputs = example_a();
    let rates = Rates::new(&inputs);
    assert_eq!(rates.mu, 250.0);
    assert!((rates.delta.expect("feasible target") - 15.3627).abs() < 1e-4);
    assert_eq!(ceil(300.0 / (0.7 * 250.0)), 2, "N_u");
    assert_eq!(ceil(300.0 / (250.0 - 15.3627)), 2, "N_l");
    let c = size(&inputs);
    let s = &c.sizing;
    assert_eq!((s.replicas, s.min_replicas, s.max_replicas), (2, 2, 3));
    assert_eq!(s.average_requests_per_second, 100.0);
    assert_eq!(s.target_cpu_utilization, 70);
    assert_eq!(s.predicted_p95_latency_ms, Some(34.96));
    assert_eq!(s.predicted_utilization, 0.6);
    assert_eq!(s.capacity_requests_per_second, 350.0);
    assert_eq!(s.in_flight_per_replica, Some(2.25));
    assert_eq!(s.db_pool_size, 4);
    assert!(s.slo_feasible);
    assert_eq!(s.min_cpu_for_slo, None);
    assert!(
        c.conditions
            .iter()
            .all(|c| c.status == (c.type_ == condition::SLO_FEASIBLE))
    );
}

#[test]
fn worked_example_b_enterprise_from_active_users() {
    let inputs = Inputs {
        peak_requests_per_second: None,
        active_users: Some(5000.0),
        request_cpu_millis: 4.0,
        cpu: 1.0,
        tier_floor: 3,
        ..example_a()
    };
    let rates = Rates::new(&inputs);
    assert_eq!(
        (rates.average, rates.peak, rates.mu),
        (500.0, 1500.0, 250.0)
    );
    assert_eq!(ceil(1500.0 / 175.0), 9, "N_u");
    assert_eq!(
        ceil(1500.0 / (250.0 - rates.delta.expect("feasible"))),
        7,
        "N_l"
    );
    let s = size(&inputs).sizing;
    assert_eq!((s.replicas, s.min_replicas, s.max_replicas), (9, 3, 12));
    assert_eq!(s.peak_requests_per_second, 1500.0);
}

#[test]
fn worked_example_c_slo_infeasible_reports_min_cpu() {
    let inputs = Inputs {
        request_cpu_millis: 50.0,
        latency_target_ms: 300.0,
        ..example_a()
    };
    let rates = Rates::new(&inputs);
    assert_eq!(rates.mu, 10.0);
    assert!((rates.delta.expect("T > t0") - 10.155).abs() < 1e-3);
    let c = size(&inputs);
    assert!(!c.sizing.slo_feasible);
    assert_eq!(c.sizing.min_cpu_for_slo, Some(0.51));
    let slo = condition(&c, condition::SLO_FEASIBLE);
    assert_eq!((slo.status, slo.reason), (false, "CpuPerReplicaTooSmall"));
    assert!(slo.message.contains("0.51"), "{}", slo.message);
}

#[test]
fn target_at_or_below_base_latency_is_unreachable() {
    let c = size(&Inputs {
        latency_target_ms: 5.0,
        ..example_a()
    });
    let slo = condition(&c, condition::SLO_FEASIBLE);
    assert_eq!((slo.status, slo.reason), (false, "LatencyBelowBaseline"));
    assert_eq!(c.sizing.min_cpu_for_slo, None);
    assert_eq!(c.sizing.replicas, 2, "the utilisation bound still sizes it");
}

#[test]
fn ceil_ignores_floating_point_dust() {
    assert_eq!(ceil(2.000_000_000_1), 2);
    assert_eq!(ceil(2.01), 3);
    assert_eq!(ceil(0.0), 0);
}

#[test]
fn replicas_max_caps_and_names_the_uncapped_count() {
    let c = size(&Inputs {
        peak_requests_per_second: Some(3000.0),
        max_replicas: Some(5),
        ..example_a()
    });
    assert_eq!((c.sizing.replicas, c.sizing.max_replicas), (5, 5));
    let capped = condition(&c, condition::CAPACITY_CAPPED);
    assert_eq!((capped.status, capped.reason), (true, "ReplicasMaxReached"));
    assert!(
        capped.message.contains("18"),
        "uncapped N_peak = ceil(3000/175) = 18: {}",
        capped.message
    );
}

#[test]
fn database_connection_limit_lowers_the_maximum() {
    let c = size(&Inputs {
        peak_requests_per_second: Some(3000.0),
        max_connections: 40,
        ..example_a()
    });
    let limited = condition(&c, condition::DATABASE_CONNECTIONS_LIMITED);
    assert!(limited.status, "{}", limited.message);
    let s = &c.sizing;
    assert!(
        s.db_pool_size * s.max_replicas <= 40 || s.max_replicas == s.min_replicas,
        "{s:?}"
    );
    assert_eq!(s.max_replicas, (40 / s.db_pool_size).max(s.min_replicas));
}

#[test]
fn embedded_database_runs_one_replica_and_says_what_the_load_needs() {
    let c = size(&Inputs {
        embedded: true,
        autoscaling: false,
        tier_floor: 1,
        peak_requests_per_second: Some(600.0),
        ..example_a()
    });
    assert_eq!(
        (
            c.sizing.replicas,
            c.sizing.min_replicas,
            c.sizing.max_replicas
        ),
        (1, 1, 1)
    );
    let capped = condition(&c, condition::CAPACITY_CAPPED);
    assert_eq!(
        (capped.status, capped.reason),
        (true, "EmbeddedDatabaseSingleReplica")
    );
    assert!(
        capped.message.contains('4'),
        "ceil(600/175) = 4: {}",
        capped.message
    );
    assert_eq!(
        c.sizing.predicted_p95_latency_ms, None,
        "one replica cannot carry 600 req/s"
    );
}

#[test]
fn without_autoscaling_the_peak_count_is_fixed() {
    let s = size(&Inputs {
        autoscaling: false,
        ..example_a()
    })
    .sizing;
    assert_eq!((s.replicas, s.min_replicas, s.max_replicas), (2, 2, 2));
}

#[test]
fn peak_given_or_derived_from_users_agree() {
    let from_users = size(&Inputs {
        peak_requests_per_second: None,
        active_users: Some(1000.0),
        ..example_a()
    });
    let from_peak = size(&Inputs {
        peak_requests_per_second: Some(300.0),
        ..example_a()
    });
    assert_eq!(
        from_users.sizing, from_peak.sizing,
        "1000 users × 6/min ÷ 60 × 3 = 300 req/s"
    );
}

#[test]
fn inputs_resolve_tier_and_spec_defaults() {
    let spec: crm_crds::CrmTenantSpec = serde_json::from_value(serde_json::json!({
        "tier": "Enterprise",
        "load": {"activeUsers": 10},
        "resources": {"host": {"cpu": 4}, "containerRatio": 0.25},
        "database": {"mode": "Managed"}
    }))
    .expect("spec");
    let inputs = Inputs::from_spec(&spec, crm_crds::DatabaseMode::Managed).expect("valid inputs");
    assert_eq!(inputs.latency_target_ms, 200.0);
    assert_eq!(inputs.tier_floor, 3);
    assert_eq!(inputs.cpu, 1.0);
    assert_eq!(inputs.request_cpu_millis, 3.9);
    assert_eq!(inputs.service_time_scv, 7.8);
    assert!(inputs.autoscaling && !inputs.embedded);
    let embedded: crm_crds::CrmTenantSpec =
        serde_json::from_value(serde_json::json!({"load": {"activeUsers": 10}})).expect("spec");
    let inputs =
        Inputs::from_spec(&embedded, crm_crds::DatabaseMode::Embedded).expect("valid inputs");
    assert!(inputs.embedded && !inputs.autoscaling);
    assert_eq!(
        (inputs.cpu, inputs.latency_target_ms, inputs.tier_floor),
        (0.5, 500.0, 1)
    );
}

#[test]
fn variable_service_times_raise_the_p95_and_the_replicas() {
    // Example A with scv 4 (a mix of cheap reads and heavy reports): at 150
    // req/s per replica, ρ = 0.6, g = 1 + 0.6 × 3 / 2 = 1.9, so the p95 is
    // 5 + 1000 × ln 20 × 1.9 / 100 = 61.92 ms instead of 34.96 ms.
    let a = size(&example_a()).sizing;
    let variable = size(&Inputs {
        service_time_scv: 4.0,
        ..example_a()
    })
    .sizing;
    assert_eq!(variable.predicted_p95_latency_ms, Some(61.92));
    assert_eq!(a.predicted_p95_latency_ms, Some(34.96));
    // A tighter target shows the latency bound moving: at T = 40 ms,
    // δ = 85.59; M/M/1 takes 164.41 req/s per replica (N_l = 2), M/G/1 with
    // scv 4 only (250 − 85.59) / (1 + 85.59 × 3 / 500) = 108.62 (N_l = 3).
    let tight = |scv| {
        size(&Inputs {
            latency_target_ms: 40.0,
            service_time_scv: scv,
            ..example_a()
        })
        .sizing
    };
    assert_eq!(tight(1.0).replicas, 2);
    assert_eq!(tight(4.0).replicas, 3);
    let p95 = tight(4.0).predicted_p95_latency_ms.expect("stable");
    assert!(p95 <= 40.0, "{p95}");
    // Constant service times (scv 0) shorten the wait: g = 0.7.
    let constant = size(&Inputs {
        service_time_scv: 0.0,
        ..example_a()
    })
    .sizing;
    assert_eq!(constant.predicted_p95_latency_ms, Some(25.97));
}

/// Today's M/M/1 figures, written out as MODEL.md states them, to compare
/// the M/G/1 model with at scv = 1.
fn mm1(inputs: &Inputs) -> (u32, Option<f64>, Option<f64>) {
    let peak = inputs.peak_requests_per_second.expect("peak given");
    let mu = inputs.cpu / (inputs.request_cpu_millis / 1000.0);
    let (t, t0) = (
        inputs.latency_target_ms / 1000.0,
        inputs.base_latency_ms / 1000.0,
    );
    let delta = (t > t0).then(|| LN_20 / (t - t0));
    let n_u = ceil(peak / (inputs.target_utilization * mu));
    let n_l = match delta {
        Some(delta) if mu > delta => ceil(peak / (mu - delta)),
        _ => 0,
    };
    let mut n = n_u
        .max(n_l)
        .max(inputs.tier_floor)
        .max(inputs.min_replicas.unwrap_or(1));
    if let Some(max) = inputs.max_replicas {
        n = n.min(max);
    }
    let x = peak / f64::from(n.max(1));
    let p95 = (mu > x).then(|| round((t0 + LN_20 / (mu - x)) * 1000.0, 2));
    let in_flight = (mu > x).then(|| round(x * (t0 + 1.0 / (mu - x)), 2));
    (n, p95, in_flight)
}

pub(crate) fn arbitrary_inputs() -> impl Strategy<Value = Inputs> {
    (
        1.0f64..5000.0,
        0.2f64..20.0,
        50.0f64..1000.0,
        0.1f64..4.0,
        0.3f64..0.95,
        1u32..=3,
        proptest::option::of(1u32..=4),
        proptest::option::of(4u32..=40),
        any::<bool>(),
        1u32..=500,
    )
        .prop_map(
            |(peak, c_ms, target, cpu, rho, floor, min, max, autoscaling, conns)| Inputs {
                peak_requests_per_second: Some(peak),
                request_cpu_millis: c_ms,
                latency_target_ms: target,
                cpu,
                target_utilization: rho,
                tier_floor: floor,
                min_replicas: min,
                max_replicas: max,
                autoscaling,
                max_connections: conns,
                ..example_a()
            },
        )
}

/// MODEL.md leaves N_l out when the target is infeasible, so crossing the
/// feasibility boundary (more CPU making it feasible, costlier requests making
/// it infeasible) can move N the "wrong" way. The monotony properties hold on
/// either side of that boundary, which is what they assert.
fn same_side(a: &Inputs, b: &Inputs) -> bool {
    Rates::new(a).feasible() == Rates::new(b).feasible()
}

proptest! {
    #[test]
    fn replicas_respect_floors_and_maximum(inputs in arbitrary_inputs()) {
        let c = size(&inputs);
        let s = &c.sizing;
        let limited = condition(&c, condition::DATABASE_CONNECTIONS_LIMITED).status;
        let floor = inputs.tier_floor.max(inputs.min_replicas.unwrap_or(1)) as i32;
        if let Some(max) = inputs.max_replicas {
            prop_assert!(s.max_replicas <= max as i32 && s.replicas <= max as i32);
        }
        if !limited {
            // Without the connection limit, only replicas.max can undercut the floors.
            let floor = inputs.max_replicas.map_or(floor, |m| floor.min(m as i32));
            prop_assert!(s.replicas >= floor && s.min_replicas >= floor, "{s:?}");
        }
        prop_assert!(s.max_replicas >= s.min_replicas && s.min_replicas >= 1);
    }

    #[test]
    fn more_load_or_costlier_requests_never_need_fewer_replicas(inputs in arbitrary_inputs(), more in 1.0f64..3.0) {
        let inputs = Inputs { max_connections: u32::MAX, ..inputs };
        let base = size(&inputs).sizing.replicas;
        let busier = Inputs { peak_requests_per_second: inputs.peak_requests_per_second.map(|p| p * more), ..inputs.clone() };
        prop_assert!(size(&busier).sizing.replicas >= base);
        let costlier = Inputs { request_cpu_millis: inputs.request_cpu_millis * more, ..inputs.clone() };
        if same_side(&inputs, &costlier) {
            prop_assert!(size(&costlier).sizing.replicas >= base);
        }
    }

    #[test]
    fn more_cpu_per_replica_never_needs_more_replicas(inputs in arbitrary_inputs(), more in 1.0f64..3.0) {
        let inputs = Inputs { max_connections: u32::MAX, ..inputs };
        let base = size(&inputs).sizing.replicas;
        let bigger = Inputs { cpu: inputs.cpu * more, ..inputs.clone() };
        if same_side(&inputs, &bigger) {
            prop_assert!(size(&bigger).sizing.replicas <= base);
        }
    }

    #[test]
    fn scv_one_reproduces_the_m_m_1_figures_exactly(inputs in arbitrary_inputs()) {
        let inputs = Inputs { max_connections: u32::MAX, ..inputs };
        let s = size(&inputs).sizing;
        let (n, p95, in_flight) = mm1(&inputs);
        prop_assert_eq!(s.replicas, n as i32);
        prop_assert_eq!(s.predicted_p95_latency_ms, p95);
        prop_assert_eq!(s.in_flight_per_replica, in_flight);
        prop_assert_eq!(predicted_p95_ms(&inputs, inputs.peak_requests_per_second.expect("peak"), n), p95);
    }

    #[test]
    fn higher_scv_never_lowers_the_replica_count(inputs in arbitrary_inputs(), scv in 0.0f64..25.0, more in 0.0f64..10.0) {
        // The connection limit is a cap like replicas.max: a bigger pool
        // (longer sojourns) may lower it, which is reported, not sized.
        let inputs = Inputs { max_connections: u32::MAX, service_time_scv: scv, ..inputs };
        let base = size(&inputs);
        let variable = size(&Inputs { service_time_scv: (scv + more).min(25.0), ..inputs.clone() });
        prop_assert!(variable.sizing.replicas >= base.sizing.replicas);
        prop_assert!(variable.sizing.min_replicas >= base.sizing.min_replicas);
        if let (Some(a), Some(b)) = (base.sizing.predicted_p95_latency_ms, variable.sizing.predicted_p95_latency_ms)
            && variable.sizing.replicas == base.sizing.replicas
        {
            prop_assert!(b >= a, "{b} < {a}");
        }
    }

    #[test]
    fn feasible_uncapped_sizing_meets_the_latency_target(inputs in arbitrary_inputs(), scv in 0.0f64..25.0) {
        let inputs = Inputs { service_time_scv: scv, ..inputs };
        let c = size(&inputs);
        let capped = condition(&c, condition::CAPACITY_CAPPED).status
            || condition(&c, condition::DATABASE_CONNECTIONS_LIMITED).status;
        if c.sizing.slo_feasible && !capped {
            let p95 = c.sizing.predicted_p95_latency_ms.expect("stable queue");
            prop_assert!(p95 <= inputs.latency_target_ms, "{p95} > {}", inputs.latency_target_ms);
        }
    }
}
