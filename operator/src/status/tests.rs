//! The status builder: phase, conditions and the replica columns of `kubectl get`.

use crm_crds::CrmTenant;
use serde_json::json;

use super::*;

fn tenant(spec: serde_json::Value) -> Tenant {
    let mut t = CrmTenant::new("acme", serde_json::from_value(spec).expect("spec"));
    t.metadata.namespace = Some("team-a".into());
    t.metadata.generation = Some(3);
    crate::validate::validate(&t).expect("valid")
}

fn growth() -> Tenant {
    tenant(
        json!({"tier": "Growth", "load": {"peakRequestsPerSecond": 300},
            "performance": {"requestCpuMillis": 2}, "database": {"mode": "Managed"}}),
    )
}

/// MODEL.md's worked example B: 9 replicas at peak, autoscaling 3..12.
fn enterprise() -> Tenant {
    tenant(json!({"tier": "Enterprise",
        "load": {"activeUsers": 5000, "requestsPerUserPerMinute": 6, "peakFactor": 3},
        "performance": {"requestCpuMillis": 4, "serviceTimeScv": 1, "latencyTargetMs": 200},
        "resources": {"cpu": 1}, "replicas": {"max": 12},
        "database": {"mode": "Managed"}}))
}

fn at(seconds: i64) -> Time {
    Time(jiff::Timestamp::from_second(1_800_000_000 + seconds).expect("timestamp"))
}

fn healthy() -> Observed {
    Observed {
        ready_replicas: 2,
        available_replicas: 2,
        desired_replicas: Some(2),
        database: DatabaseState {
            ready: true,
            reason: "Ready".into(),
            message: "ok".into(),
        },
        ..Observed::default()
    }
}

fn condition<'a>(status: &'a CrmTenantStatus, type_: &str) -> &'a Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("{type_} missing"))
}

#[test]
fn ready_when_minimum_replicas_are_available_and_the_database_is_ready() {
    let s = status(&growth(), &healthy(), None, &at(0));
    assert_eq!(s.phase, Some(Phase::Ready));
    assert_eq!(condition(&s, condition::READY).status, "True");
    assert_eq!(condition(&s, condition::RECONCILING).status, "False");
    assert_eq!(condition(&s, condition::STALLED).status, "False");
    assert_eq!(s.ready.as_deref(), Some("2/2"));
    assert_eq!(s.endpoint.as_deref(), Some("http://acme.team-a.svc:80"));
    assert_eq!(s.credentials_secret.as_deref(), Some("acme-api"));
    assert_eq!(s.observed_generation, Some(3));
    assert_eq!(s.sizing.as_ref().map(|s| s.max_replicas), Some(3));
}

#[test]
fn every_condition_of_the_design_and_kstatus_is_reported() {
    let s = status(&growth(), &healthy(), None, &at(0));
    for type_ in [
        condition::READY,
        condition::DATABASE_READY,
        condition::WORKLOAD_AVAILABLE,
        condition::SLO_FEASIBLE,
        condition::CAPACITY_CAPPED,
        condition::DATABASE_CONNECTIONS_LIMITED,
        condition::RECONCILING,
        condition::STALLED,
    ] {
        condition(&s, type_);
    }
}

#[test]
fn too_few_replicas_is_provisioning_and_reconciling() {
    let observed = Observed {
        available_replicas: 1,
        ready_replicas: 1,
        ..healthy()
    };
    let s = status(&growth(), &observed, None, &at(0));
    assert_eq!(s.phase, Some(Phase::Provisioning));
    assert_eq!(condition(&s, condition::WORKLOAD_AVAILABLE).status, "False");
    assert_eq!(condition(&s, condition::RECONCILING).status, "True");
}

#[test]
fn an_unchanged_tenant_produces_an_identical_status_later() {
    let first = status(&growth(), &healthy(), None, &at(0));
    let second = status(&growth(), &healthy(), Some(&first), &at(600));
    assert_eq!(first, second, "no status churn, so no write");
}

#[test]
fn transition_time_moves_only_when_a_condition_flips() {
    let first = status(&growth(), &healthy(), None, &at(0));
    let degraded = Observed {
        available_replicas: 0,
        ..healthy()
    };
    let second = status(&growth(), &degraded, Some(&first), &at(60));
    assert_eq!(
        condition(&second, condition::READY).last_transition_time,
        at(60)
    );
    assert_eq!(
        condition(&second, condition::SLO_FEASIBLE).last_transition_time,
        at(0)
    );
}

#[test]
fn a_permanent_error_is_degraded_and_stalled_with_its_message() {
    let observed = Observed {
        error: Some(Failure {
            reason: "ApplyFailed".into(),
            message: "applying Deployment acme: invalid".into(),
            permanent: true,
        }),
        ..healthy()
    };
    let s = status(&growth(), &observed, None, &at(0));
    assert_eq!(s.phase, Some(Phase::Degraded));
    let stalled = condition(&s, condition::STALLED);
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "ApplyFailed")
    );
    assert!(condition(&s, condition::READY).message.contains("invalid"));
}

#[test]
fn a_transient_error_is_degraded_but_not_stalled() {
    let observed = Observed {
        error: Some(Failure {
            reason: "ApplyFailed".into(),
            message: "503".into(),
            permanent: false,
        }),
        ..healthy()
    };
    let s = status(&growth(), &observed, None, &at(0));
    assert_eq!(s.phase, Some(Phase::Degraded));
    assert_eq!(condition(&s, condition::STALLED).status, "False");
}

#[test]
fn suspended_tenant_is_suspended_with_zero_desired_replicas() {
    let t = tenant(json!({"load": {"activeUsers": 10}, "suspend": true}));
    let s = status(&t, &Observed::default(), None, &at(0));
    assert_eq!(s.phase, Some(Phase::Suspended));
    assert_eq!(s.ready.as_deref(), Some("0/0"));
}

#[test]
fn the_last_rotation_time_is_kept_until_the_next_rotation() {
    let rotated = Observed {
        credentials_rotated_at: Some(at(10)),
        ..healthy()
    };
    let first = status(&growth(), &rotated, None, &at(10));
    assert_eq!(first.database_credentials_rotated_at, Some(at(10)));
    let later = status(&growth(), &healthy(), Some(&first), &at(600));
    assert_eq!(later.database_credentials_rotated_at, Some(at(10)));
}

#[test]
fn paused_tenant_says_so_in_a_condition() {
    let observed = Observed {
        paused: true,
        ..healthy()
    };
    let s = status(&growth(), &observed, None, &at(0));
    assert_eq!(
        condition(&s, condition::RECONCILIATION_PAUSED).status,
        "True"
    );
}

#[test]
fn ready_counts_the_replicas_the_autoscaler_wants_now_not_the_peak() {
    let t = enterprise();
    let sizing = &t.capacity.sizing;
    assert_eq!(
        (sizing.replicas, sizing.min_replicas, sizing.max_replicas),
        (9, 3, 12)
    );
    let at_base_load = Observed {
        ready_replicas: 3,
        available_replicas: 3,
        desired_replicas: Some(3),
        ..healthy()
    };
    let s = status(&t, &at_base_load, None, &at(0));
    assert_eq!(
        s.ready.as_deref(),
        Some("3/3"),
        "not 3/9: nothing is missing"
    );
    assert_eq!(s.desired_replicas, Some(3));
    assert_eq!(s.replica_range.as_deref(), Some("3..12"));
    assert_eq!(s.sizing.as_ref().map(|s| s.replicas), Some(9), "PEAK");
    assert_eq!(s.phase, Some(Phase::Ready));
}

#[test]
fn ready_shows_pods_still_missing_while_the_autoscaler_scales_up() {
    let scaling_up = Observed {
        ready_replicas: 3,
        available_replicas: 3,
        desired_replicas: Some(7),
        ..healthy()
    };
    let s = status(&enterprise(), &scaling_up, None, &at(0));
    assert_eq!(s.ready.as_deref(), Some("3/7"));
    assert_eq!(s.ready_replicas, Some(3));
}

#[test]
fn before_the_deployment_exists_ready_counts_what_will_be_created() {
    let nothing_yet = Observed::default();
    let autoscaled = status(&enterprise(), &nothing_yet, None, &at(0));
    assert_eq!(
        autoscaled.ready.as_deref(),
        Some("0/3"),
        "the autoscaler's minimum"
    );
    let fixed = tenant(
        json!({"tier": "Growth", "load": {"peakRequestsPerSecond": 300},
        "performance": {"requestCpuMillis": 2}, "database": {"mode": "Managed"},
        "autoscaling": {"enabled": false}, "replicas": {"min": 3}}),
    );
    let s = status(&fixed, &nothing_yet, None, &at(0));
    assert_eq!(s.ready.as_deref(), Some("0/3"), "the fixed count");
    assert_eq!(s.replica_range.as_deref(), Some("3"));
    assert_eq!(s.desired_replicas, Some(3));
    let embedded = tenant(json!({"load": {"activeUsers": 10}}));
    let s = status(&embedded, &nothing_yet, None, &at(0));
    assert_eq!(s.ready.as_deref(), Some("0/1"));
    assert_eq!(s.replica_range.as_deref(), Some("1"));
}

#[test]
fn suspended_tenant_has_no_replica_range_but_zero() {
    let t = tenant(
        json!({"tier": "Growth", "load": {"peakRequestsPerSecond": 300},
        "database": {"mode": "Managed"}, "suspend": true}),
    );
    let s = status(&t, &Observed::default(), None, &at(0));
    assert_eq!(s.replica_range.as_deref(), Some("0"));
    assert_eq!(s.desired_replicas, Some(0));
}

#[test]
fn an_invalid_spec_keeps_the_last_status_and_says_why_it_stalled() {
    let healthy = status(&growth(), &healthy(), None, &at(0));
    let failure = Failure {
        reason: "InvalidSpec".into(),
        message: "spec.tier: bad".into(),
        permanent: true,
    };
    let stalled = invalid(Some(&healthy), Some(2), &failure, &at(5));
    assert_eq!(stalled.phase, Some(Phase::Degraded));
    assert_eq!(stalled.observed_generation, Some(2));
    assert_eq!(stalled.sizing, healthy.sizing);
    let ready = condition(&stalled, condition::READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "InvalidSpec")
    );
    assert_eq!(ready.last_transition_time, at(5));
    assert_eq!(condition(&stalled, condition::STALLED).status, "True");
    assert_eq!(stalled.conditions.len(), healthy.conditions.len());
    let again = invalid(Some(&stalled), Some(2), &failure, &at(9));
    assert_eq!(again, stalled, "nothing moves on a second failure");
}

#[test]
fn an_exposed_tenants_endpoint_is_its_https_host() {
    let exposed = tenant(json!({"load": {"activeUsers": 50},
        "server": {"expose": {"host": "crm.acme.example.com",
            "gateway": {"name": "public", "namespace": "gateway-system"}}}}));
    let s = status(&exposed, &healthy(), None, &at(0));
    assert_eq!(s.endpoint.as_deref(), Some("https://crm.acme.example.com"));
}
