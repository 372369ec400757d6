use serde_json::Value;

use super::*;
use crate::build::fixture::{self, all_modes, credentials};
use crate::validate::DatabaseTarget;

fn tenants() -> Vec<Tenant> {
    let mut tenants = Vec::new();
    for mode in all_modes() {
        let base = Tenant::test().with_database(mode);
        tenants.push(base.clone().with_tier(crm_crds::Tier::Enterprise));
        tenants.push(base.clone().suspended());
        tenants.push(base.clone().exposed_through_ingress());
        tenants.push(base.clone().exposed_through_gateway());
        tenants.push(base);
    }
    tenants
}

fn kinds(desired: &Desired) -> Vec<String> {
    desired
        .objects()
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or("?"),
                o["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

fn nulls(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Null => found.push(path.to_owned()),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                nulls(item, &format!("{path}[{i}]"), found);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                nulls(v, &format!("{path}.{k}"), found);
            }
        }
        _ => {}
    }
}

#[test]
fn every_object_carries_owner_reference_and_standard_labels() {
    for tenant in tenants() {
        let tenant = tenant.with_deletion_policy(crm_crds::DeletionPolicy::Delete);
        for object in build(&tenant, &credentials()).objects() {
            let meta = &object["metadata"];
            let what = format!("{} {}", object["kind"], meta["name"]);
            assert_eq!(meta["namespace"], "crm-acme", "{what}");
            let owners = meta["ownerReferences"].as_array().expect("owners");
            assert_eq!(owners.len(), 1, "{what}");
            assert_eq!(owners[0]["uid"], tenant.owner.uid.as_str(), "{what}");
            assert_eq!(owners[0]["controller"], true, "{what}");
            let labels = meta["labels"].as_object().expect("labels");
            assert_eq!(labels["app.kubernetes.io/instance"], "acme", "{what}");
            assert_eq!(labels["app.kubernetes.io/part-of"], "crm", "{what}");
            assert_eq!(
                labels["app.kubernetes.io/managed-by"], "crm-operator",
                "{what}"
            );
            assert!(labels.contains_key("app.kubernetes.io/name"), "{what}");
            assert!(labels.contains_key("app.kubernetes.io/component"), "{what}");
        }
    }
}

#[test]
fn under_retain_only_data_and_its_credentials_outlive_the_tenant() {
    for tenant in tenants() {
        for object in build(&tenant, &credentials()).objects() {
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let owned = object["metadata"].get("ownerReferences").is_some();
            let data = name == "acme-db" || name == "acme-data";
            assert_eq!(owned, !data, "{} {name}", object["kind"]);
        }
    }
}

#[test]
fn serialised_objects_contain_no_nulls() {
    for tenant in tenants() {
        for object in build(&tenant, &credentials()).objects() {
            let mut found = Vec::new();
            nulls(&object, "", &mut found);
            assert!(
                found.is_empty(),
                "{} has nulls at {found:?}",
                object["kind"]
            );
        }
    }
}

#[test]
fn objects_have_api_version_and_kind_in_apply_order() {
    let desired = build(&Tenant::test(), &credentials());
    for object in desired.objects() {
        assert!(object["apiVersion"].is_string() && object["kind"].is_string());
    }
    assert_eq!(
        kinds(&desired),
        [
            "ServiceAccount/acme",
            "Secret/acme-api",
            "Secret/acme-admin",
            "Secret/acme-db",
            "ConfigMap/acme-config",
            "Service/acme-postgres",
            "StatefulSet/acme-postgres",
            "Deployment/acme",
            "Service/acme",
            "HorizontalPodAutoscaler/acme",
            "PodDisruptionBudget/acme",
            "NetworkPolicy/acme",
            "NetworkPolicy/acme-postgres",
        ]
    );
    let hpa = &desired.objects()[9];
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
}

#[test]
fn embedded_tenant_becomes_a_single_replica_server_with_its_volume() {
    let tenant = Tenant::test().with_database(DatabaseTarget::Embedded);
    assert_eq!(
        kinds(&build(&tenant, &credentials())),
        [
            "ServiceAccount/acme",
            "Secret/acme-api",
            "Secret/acme-admin",
            "ConfigMap/acme-config",
            "PersistentVolumeClaim/acme-data",
            "Deployment/acme",
            "Service/acme",
            "NetworkPolicy/acme",
        ]
    );
}

#[test]
fn suspended_tenant_has_no_hpa_and_zero_replicas() {
    for mode in all_modes() {
        let tenant = Tenant::test().with_database(mode).suspended();
        let desired = build(&tenant, &credentials());
        assert_eq!(desired.hpa, None);
        assert_eq!(desired.pdb, None);
        let replicas = desired.deployment.spec.and_then(|s| s.replicas);
        assert_eq!(replicas, Some(0));
    }
}

#[test]
fn suspended_tenant_keeps_its_data_and_credentials() {
    let suspended = build(&Tenant::test().suspended(), &credentials());
    let running = build(&Tenant::test(), &credentials());
    assert_eq!(suspended.database_statefulset, running.database_statefulset);
    assert_eq!(suspended.database_secret, running.database_secret);
    assert_eq!(suspended.api_secret, running.api_secret);
    let embedded = Tenant::test().with_database(DatabaseTarget::Embedded);
    assert!(
        build(&embedded.suspended(), &credentials())
            .data_volume
            .is_some()
    );
}

#[test]
fn building_twice_gives_identical_objects() {
    for tenant in tenants() {
        assert_eq!(
            build(&tenant, &credentials()).objects(),
            build(&tenant, &credentials()).objects()
        );
    }
}

#[test]
fn rotating_the_api_key_changes_the_pod_template() {
    let mut rotated = credentials();
    rotated.api_key = "rotated".into();
    let hash = |c: &Credentials| {
        build(&Tenant::test(), c)
            .deployment
            .spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.annotations)
            .and_then(|a| a.get(deployment::CONFIG_HASH).cloned())
    };
    assert!(hash(&credentials()).is_some());
    assert_ne!(hash(&credentials()), hash(&rotated));
}

#[test]
fn credentials_never_appear_outside_the_secrets() {
    let c = credentials();
    for mode in [fixture::managed(), fixture::shared()] {
        for object in build(&Tenant::test().with_database(mode), &c).objects() {
            if object["kind"] == "Secret" {
                continue;
            }
            let text = object.to_string();
            assert!(!text.contains(&c.api_key) && !text.contains(&c.database_password));
        }
    }
}

#[test]
fn exposure_adds_exactly_one_ingress_or_route_named_after_the_tenant() {
    let names = |tenant: &Tenant| -> Vec<String> {
        kinds(&build(tenant, &credentials()))
            .into_iter()
            .filter(|k| k.starts_with("Ingress/") || k.starts_with("HTTPRoute/"))
            .collect()
    };
    assert!(names(&Tenant::test()).is_empty());
    assert_eq!(
        names(&Tenant::test().exposed_through_ingress()),
        ["Ingress/acme"]
    );
    assert_eq!(
        names(&Tenant::test().exposed_through_gateway()),
        ["HTTPRoute/acme"]
    );
    let desired = build(&Tenant::test().exposed_through_gateway(), &credentials());
    let named: Vec<_> = desired
        .names()
        .into_iter()
        .map(|(k, n)| format!("{k}/{n}"))
        .collect();
    assert!(named.contains(&"HTTPRoute/acme".to_owned()), "{named:?}");
}
