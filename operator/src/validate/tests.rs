use super::*;
use serde_json::json;

fn tenant(spec: serde_json::Value) -> CrmTenant {
    serde_json::from_value(json!({
        "apiVersion": "crm.tenancy.dev/v1alpha1", "kind": "CrmTenant",
        "metadata": { "name": "acme", "namespace": "crm" },
        "spec": spec,
    }))
    .expect("tenant")
}

fn error_path(spec: serde_json::Value) -> String {
    match validate(&tenant(spec)) {
        Err(ValidationError::Field { path, .. }) => path,
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn a_minimal_spec_is_valid_with_defaults() {
    let valid = validate(&tenant(json!({ "load": { "activeUsers": 50 } }))).expect("valid");
    assert_eq!(valid.database.mode, DatabaseTarget::Embedded);
    assert_eq!(valid.server.modules, Module::ALL.to_vec());
}

#[test]
fn an_absent_mode_follows_the_tier_for_a_new_tenant() {
    let mode = |tier: &str| {
        validate(&tenant(
            json!({ "tier": tier, "load": { "activeUsers": 50 } }),
        ))
        .expect("valid")
        .database
        .mode
        .mode()
    };
    assert_eq!(mode("Starter"), DatabaseMode::Embedded);
    assert_eq!(mode("Growth"), DatabaseMode::Managed);
    assert_eq!(mode("Enterprise"), DatabaseMode::Managed);
}

#[test]
fn a_running_tenant_keeps_its_mode_while_the_spec_names_none() {
    let mut growth = tenant(json!({ "tier": "Growth", "load": { "activeUsers": 50 } }));
    growth.status = Some(crm_crds::CrmTenantStatus {
        database_mode: Some(DatabaseMode::Embedded),
        ..Default::default()
    });
    assert_eq!(database_mode(&growth), DatabaseMode::Embedded);
    // Written before the mode was recorded: every such tenant ran Embedded.
    growth.status = Some(crm_crds::CrmTenantStatus {
        sizing: Some(crm_crds::Sizing::default()),
        ..Default::default()
    });
    assert_eq!(database_mode(&growth), DatabaseMode::Embedded);
    // A status without sizing never ran: the tier decides.
    growth.status = Some(crm_crds::CrmTenantStatus::default());
    assert_eq!(database_mode(&growth), DatabaseMode::Managed);
    // The spec's mode wins over the recorded one.
    growth.spec.database = Some(DatabaseSpec {
        mode: Some(DatabaseMode::Shared),
        shared: Some(crm_crds::SharedDatabaseSpec {
            server: "pg".into(),
        }),
        ..Default::default()
    });
    growth.status = Some(crm_crds::CrmTenantStatus {
        database_mode: Some(DatabaseMode::Embedded),
        ..Default::default()
    });
    assert_eq!(database_mode(&growth), DatabaseMode::Shared);
}

#[test]
fn the_cel_rules_are_checked_again_with_the_field_named() {
    let cases = [
        (json!({ "load": {} }), "spec.load"),
        (
            json!({ "load": { "activeUsers": 5 }, "performance": { "targetUtilization": 1.0 } }),
            "spec.performance.targetUtilization",
        ),
        (
            json!({ "load": { "activeUsers": 5 }, "database": { "mode": "Managed" },
                    "replicas": { "min": 4, "max": 2 } }),
            "spec.replicas",
        ),
        (
            json!({ "load": { "activeUsers": 5 }, "replicas": { "min": 2 } }),
            "spec.replicas.min",
        ),
        (
            json!({ "load": { "activeUsers": 5 }, "autoscaling": { "enabled": true } }),
            "spec.autoscaling.enabled",
        ),
        (
            json!({ "load": { "activeUsers": 5 }, "server": { "env": [
                { "name": "TZ", "value": "UTC" }, { "name": "CRM_API_KEY", "value": "x" } ] } }),
            "spec.server.env[1].name",
        ),
        (
            json!({ "load": { "activeUsers": 5 }, "database": { "mode": "Shared" } }),
            "spec.database.shared",
        ),
        (
            json!({ "load": { "activeUsers": 5 }, "server": { "expose": { "host": "crm.example.com" } } }),
            "spec.server.expose",
        ),
        (
            json!({ "load": { "activeUsers": 5 }, "server": { "expose": { "host": "crm.example.com",
                "gateway": { "name": "public" }, "tls": { "secretName": "crm-tls" } } } }),
            "spec.server.expose.tls",
        ),
        (
            json!({ "load": { "activeUsers": 5 }, "server": { "expose": { "host": "crm.example.com",
                "ingress": { "className": "nginx", "controllerNamespace": "ingress-nginx" },
                "tls": {} } } }),
            "spec.server.expose.tls",
        ),
        (
            json!({ "load": { "activeUsers": 5 }, "server": { "expose": { "host": "-crm.example.com",
                "gateway": { "name": "public" } } } }),
            "spec.server.expose.host",
        ),
    ];
    for (spec, path) in cases {
        assert_eq!(error_path(spec.clone()), path, "{spec}");
    }
}

#[test]
fn cpu_is_read_as_cores_or_as_a_kubernetes_quantity() {
    let cores = |resources: serde_json::Value| {
        validate(&tenant(
            json!({ "load": { "activeUsers": 50 }, "resources": resources }),
        ))
        .expect("valid")
        .cpu
    };
    assert_eq!(cores(json!({ "cpu": 0.5 })), 0.5);
    assert_eq!(cores(json!({ "cpu": "250m" })), 0.25);
    assert_eq!(cores(json!({ "cpu": "2" })), 2.0);
    assert_eq!(
        cores(json!({ "host": { "cpu": "4" }, "containerRatio": 0.25 })),
        1.0
    );
    assert_eq!(
        cores(json!({ "host": { "cpu": 8 }, "containerRatio": 0.5 })),
        4.0
    );

    let managed = validate(&tenant(json!({
        "load": { "activeUsers": 50 },
        "database": { "mode": "Managed", "managed": { "cpu": "1500m" } },
    })))
    .expect("valid");
    assert!(matches!(managed.database.mode, DatabaseTarget::Managed { cpu, .. } if cpu == 1.5));
}

#[test]
fn a_malformed_cpu_is_a_field_error_naming_the_value() {
    let cases = [
        (
            json!({ "resources": { "cpu": "250x" } }),
            "spec.resources.cpu",
            "250x",
        ),
        (
            json!({ "resources": { "cpu": 0 } }),
            "spec.resources.cpu",
            "greater than zero",
        ),
        (
            json!({ "resources": { "host": { "cpu": "-4" } } }),
            "spec.resources.host.cpu",
            "greater than zero",
        ),
        (
            json!({ "database": { "mode": "Managed", "managed": { "cpu": [1] } } }),
            "spec.database.managed.cpu",
            "a number or a string",
        ),
    ];
    for (mut spec, expected_path, expected_message) in cases {
        spec["load"] = json!({ "activeUsers": 50 });
        match validate(&tenant(spec.clone())) {
            Err(ValidationError::Field { path, message }) => {
                assert_eq!(path, expected_path, "{spec}");
                assert!(message.contains(expected_message), "{spec}: {message}");
            }
            other => panic!("{spec}: expected a field error, got {other:?}"),
        }
    }
}

#[test]
fn hosts_are_dns_names_of_two_labels_or_more() {
    for good in ["crm.example.com", "a.b", "x-1.example.co"] {
        assert!(is_dns_name(good), "{good}");
    }
    let long_label = format!("{}.example.com", "a".repeat(64));
    for bad in [
        "localhost",
        "CRM.example.com",
        "crm..example.com",
        "crm.example.com.",
        "*.example.com",
        "crm-.example.com",
        &long_label,
    ] {
        assert!(!is_dns_name(bad), "{bad}");
    }
}

fn running(
    spec: serde_json::Value,
    status: serde_json::Value,
    annotations: serde_json::Value,
) -> CrmTenant {
    let mut t = tenant(spec);
    t.status = Some(serde_json::from_value(status).expect("status"));
    t.metadata.annotations = serde_json::from_value(annotations).expect("annotations");
    t
}

#[test]
fn a_database_other_than_the_one_in_use_is_moved_to_once_per_request() {
    let spec = json!({ "load": { "activeUsers": 50 }, "database": { "mode": "Managed" } });
    let on = |mode: &str| json!({ "database": { "mode": mode } });
    let none = json!({});
    let moving = validate(&running(spec.clone(), on("Embedded"), none.clone())).expect("valid");
    let transfer = moving.transfer.clone().expect("a move");
    assert!(
        transfer.job.starts_with("acme-migrate-"),
        "{}",
        transfer.job
    );
    assert_eq!(transfer.state, TransferState::Preparing);
    assert_eq!(moving.serving().database.mode, DatabaseTarget::Embedded);
    assert_eq!(moving.database.mode.mode(), DatabaseMode::Managed);

    let settled = validate(&running(spec.clone(), on("Managed"), none)).expect("valid");
    assert_eq!(settled.transfer, None);

    let retried = validate(&running(
        spec,
        on("Embedded"),
        json!({ "crm.tenancy.dev/retry-migration": "2" }),
    ))
    .expect("valid")
    .transfer
    .expect("a move");
    assert_ne!(retried.job, transfer.job, "a retry is a new Job");
}

#[test]
fn a_restore_is_asked_for_by_name_and_done_once() {
    let spec = json!({ "load": { "activeUsers": 50 }, "backup": { "schedule": "@daily" } });
    let on = json!({ "database": { "mode": "Embedded" } });
    let asked = json!({ "crm.tenancy.dev/restore": "crm-20261130T101500.000Z" });
    let restore = validate(&running(spec.clone(), on.clone(), asked.clone()))
        .expect("valid")
        .transfer
        .expect("a restore");
    assert!(restore.job.starts_with("acme-restore-"));
    let done =
        json!({ "database": { "mode": "Embedded" }, "restored": "crm-20261130T101500.000Z" });
    assert_eq!(
        validate(&running(spec.clone(), done, asked.clone()))
            .expect("valid")
            .transfer,
        None
    );

    let bad = json!({ "crm.tenancy.dev/restore": "../etc" });
    match validate(&running(spec, on.clone(), bad)) {
        Err(ValidationError::Field { path, message }) => {
            assert_eq!(path, "metadata.annotations[crm.tenancy.dev/restore]");
            assert!(message.contains("crm-<UTC time>"), "{message}");
        }
        other => panic!("expected a field error, got {other:?}"),
    }
    let without_backups = json!({ "load": { "activeUsers": 50 } });
    assert!(validate(&running(without_backups, on, asked)).is_err());
}

#[test]
fn a_bad_backup_schedule_is_refused_naming_the_field() {
    let spec = json!({ "load": { "activeUsers": 50 }, "backup": { "schedule": "0 25 * * *" } });
    assert_eq!(error_path(spec), "spec.backup.schedule");
}
