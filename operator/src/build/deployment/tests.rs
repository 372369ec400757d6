use k8s_openapi::api::core::v1::PodSpec;

use super::*;
use crate::build::fixture::{self, sizing};

fn spec(tenant: &Tenant) -> DeploymentSpec {
    deployment(tenant, "hash").spec.expect("spec")
}

fn pod(tenant: &Tenant) -> PodSpec {
    spec(tenant).template.spec.expect("pod spec")
}

fn env_names(tenant: &Tenant) -> Vec<String> {
    pod(tenant).containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| e.name.clone())
        .collect()
}

fn database_url_source(tenant: &Tenant) -> (String, String) {
    let env = pod(tenant).containers[0].env.clone().expect("env");
    let url = env
        .iter()
        .find(|e| e.name == "DATABASE_URL")
        .expect("DATABASE_URL");
    let r = url
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("from a secret");
    (r.name.clone(), r.key.clone())
}

#[test]
fn deployment_replicas_left_to_hpa_when_autoscaling() {
    assert_eq!(spec(&Tenant::test()).replicas, None);
}

#[test]
fn deployment_replicas_follow_model_peak_without_autoscaling() {
    let tenant = Tenant::test()
        .with_autoscaling(false)
        .with_replicas(5, 5, 5);
    assert_eq!(spec(&tenant).replicas, Some(5));
}

#[test]
fn suspended_deployment_has_zero_replicas() {
    assert_eq!(spec(&Tenant::test().suspended()).replicas, Some(0));
    let embedded = Tenant::test()
        .with_database(DatabaseTarget::Embedded)
        .suspended();
    assert_eq!(spec(&embedded).replicas, Some(0));
}

#[test]
fn embedded_runs_one_replica_recreated_with_its_volume_mounted() {
    // Even if the model asked for more, SQLite has one writer.
    let tenant = Tenant::test()
        .with_database(DatabaseTarget::Embedded)
        .with_sizing(sizing(3, 3, 3));
    let spec = spec(&tenant);
    assert_eq!(spec.replicas, Some(1));
    let strategy = spec.strategy.expect("strategy");
    assert_eq!(strategy.type_.as_deref(), Some("Recreate"));
    assert_eq!(strategy.rolling_update, None);
    let pod = spec.template.spec.expect("pod");
    let claim = pod.volumes.iter().flatten().find(|v| v.name == "data");
    let claim = claim.and_then(|v| v.persistent_volume_claim.as_ref());
    assert_eq!(claim.map(|c| c.claim_name.as_str()), Some("acme-data"));
    let mounts = pod.containers[0].volume_mounts.clone().expect("mounts");
    assert!(
        mounts
            .iter()
            .any(|m| m.name == "data" && m.mount_path == "/var/lib/crm")
    );
}

#[test]
fn replicated_tenants_roll_without_losing_a_replica() {
    let strategy = spec(&Tenant::test()).strategy.expect("strategy");
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    let rolling = strategy.rolling_update.expect("rolling update");
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
}

#[test]
fn cpu_is_rendered_in_millicores_for_requests_and_limits() {
    let tenant = Tenant::test().with_cpu(0.5);
    let resources = pod(&tenant).containers[0]
        .resources
        .clone()
        .expect("resources");
    for side in [resources.requests, resources.limits] {
        let side = side.expect("set");
        assert_eq!(side["cpu"], Quantity("500m".into()));
        assert_eq!(side["memory"], Quantity("256Mi".into()));
    }
    assert_eq!(super::super::cpu_quantity(1.25), Quantity("1250m".into()));
    assert_eq!(super::super::cpu_quantity(2.0), Quantity("2000m".into()));
}

#[test]
fn pods_run_under_the_restricted_pod_security_standard() {
    let pod = pod(&Tenant::test());
    let psc = pod.security_context.clone().expect("pod security");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.run_as_user, Some(65532));
    assert_eq!(psc.run_as_group, Some(65532));
    assert_eq!(psc.fs_group, Some(65532));
    assert_eq!(
        psc.seccomp_profile.map(|s| s.type_).as_deref(),
        Some("RuntimeDefault")
    );
    let sc = pod.containers[0]
        .security_context
        .clone()
        .expect("security");
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(
        sc.capabilities.and_then(|c| c.drop),
        Some(vec!["ALL".into()])
    );
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(pod.service_account_name.as_deref(), Some("acme"));
    let tmp = pod.containers[0].volume_mounts.iter().flatten();
    assert!(tmp.clone().any(|m| m.mount_path == "/tmp"));
}

#[test]
fn server_reads_config_map_api_key_admin_and_extra_env() {
    let tenant = Tenant::test();
    let c = pod(&tenant).containers[0].clone();
    let from = c.env_from.expect("envFrom")[0].config_map_ref.clone();
    assert_eq!(from.map(|r| r.name).as_deref(), Some("acme-config"));
    assert_eq!(
        env_names(&tenant),
        [
            "CRM_API_KEY",
            "CRM_ADMIN_EMAIL",
            "CRM_ADMIN_PASSWORD",
            "DATABASE_URL",
            "FEATURE_X"
        ]
    );
    assert_eq!(c.image.as_deref(), Some("crm-tenancy/crm-server:0.1.0"));
}

#[test]
fn database_url_comes_from_the_right_secret_per_mode() {
    let managed = Tenant::test();
    assert_eq!(
        database_url_source(&managed),
        ("acme-db".into(), "url".into())
    );
    let shared = Tenant::test().with_database(fixture::shared());
    assert_eq!(
        database_url_source(&shared),
        ("acme-db".into(), "url".into())
    );
    let external = Tenant::test().with_database(fixture::external());
    assert_eq!(
        database_url_source(&external),
        ("acme-external-db".into(), "connection".into())
    );
    let embedded = Tenant::test().with_database(DatabaseTarget::Embedded);
    assert!(!env_names(&embedded).contains(&"DATABASE_URL".to_owned()));
}

#[test]
fn probes_check_health_and_readiness_on_the_http_port() {
    let c = pod(&Tenant::test()).containers[0].clone();
    let path = |p: Option<Probe>| p.and_then(|p| p.http_get).and_then(|h| h.path);
    assert_eq!(path(c.liveness_probe).as_deref(), Some("/healthz"));
    assert_eq!(path(c.readiness_probe).as_deref(), Some("/readyz"));
    assert_eq!(path(c.startup_probe).as_deref(), Some("/healthz"));
}

#[test]
fn config_hash_is_on_the_pod_template() {
    let spec = spec(&Tenant::test());
    let annotations = spec.template.metadata.and_then(|m| m.annotations);
    assert_eq!(annotations.expect("annotations")[CONFIG_HASH], "hash");
}

#[test]
fn enterprise_pods_spread_over_zones() {
    let tenant = Tenant::test().with_tier(Tier::Enterprise);
    let spread = pod(&tenant).topology_spread_constraints.expect("spread");
    let zone = spread
        .iter()
        .find(|c| c.topology_key == "topology.kubernetes.io/zone")
        .expect("zone constraint");
    assert_eq!(zone.max_skew, 1);
    assert_eq!(zone.when_unsatisfiable, "ScheduleAnyway");
    assert_eq!(
        zone.label_selector.clone().and_then(|s| s.match_labels),
        Some(labels::selector("acme", Component::Server))
    );
    assert!(
        spread
            .iter()
            .any(|c| c.topology_key == "kubernetes.io/hostname")
    );
}

#[test]
fn smaller_tiers_do_not_constrain_scheduling() {
    for tier in [Tier::Starter, Tier::Growth] {
        let tenant = Tenant::test().with_tier(tier);
        assert_eq!(pod(&tenant).topology_spread_constraints, None);
    }
}

#[test]
fn selector_matches_the_pod_template_labels() {
    let spec = spec(&Tenant::test());
    let template = spec
        .template
        .metadata
        .and_then(|m| m.labels)
        .expect("labels");
    for (k, v) in spec.selector.match_labels.expect("match labels") {
        assert_eq!(template.get(&k), Some(&v));
    }
}
