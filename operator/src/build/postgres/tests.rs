use super::*;
use crate::build::fixture;

fn spec(tenant: &Tenant) -> StatefulSetSpec {
    statefulset(tenant, &fixture::credentials())
        .and_then(|s| s.spec)
        .expect("managed")
}

fn container(tenant: &Tenant) -> Container {
    let pod = spec(tenant).template.spec.expect("pod");
    pod.containers[0].clone()
}

#[test]
fn managed_postgres_runs_one_replica_of_the_requested_image() {
    let spec = spec(&Tenant::test());
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.service_name.as_deref(), Some("acme-postgres"));
    let c = container(&Tenant::test());
    assert_eq!(c.image.as_deref(), Some("postgres:17-alpine"));
    let limits = c.resources.and_then(|r| r.limits).expect("limits");
    assert_eq!(limits["cpu"], Quantity("500m".into()));
    assert_eq!(limits["memory"], Quantity("512Mi".into()));
}

#[test]
fn postgres_reads_its_credentials_from_the_database_secret() {
    let env = container(&Tenant::test()).env.expect("env");
    let source = |name: &str| {
        let var = env.iter().find(|e| e.name == name).expect(name);
        let r = var
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref());
        r.map(|r| (r.name.clone(), r.key.clone()))
    };
    assert_eq!(
        source("POSTGRES_USER"),
        Some(("acme-db".into(), "username".into()))
    );
    assert_eq!(
        source("POSTGRES_PASSWORD"),
        Some(("acme-db".into(), "password".into()))
    );
    assert_eq!(
        source("POSTGRES_DB"),
        Some(("acme-db".into(), "database".into()))
    );
    let pgdata = env.iter().find(|e| e.name == "PGDATA").expect("PGDATA");
    assert_eq!(
        pgdata.value.as_deref(),
        Some("/var/lib/postgresql/data/pgdata")
    );
}

#[test]
fn postgres_data_lives_on_a_claim_template_of_the_requested_size() {
    let tenant = Tenant::test().with_storage_class("fast");
    let claims = spec(&tenant).volume_claim_templates.expect("claims");
    assert_eq!(claims[0].metadata.name.as_deref(), Some("data"));
    let claim = claims[0].spec.clone().expect("spec");
    assert_eq!(claim.storage_class_name.as_deref(), Some("fast"));
    let requests = claim.resources.and_then(|r| r.requests).expect("requests");
    assert_eq!(requests["storage"], Quantity("1Gi".into()));
}

#[test]
fn postgres_volume_is_deleted_with_the_tenant_only_when_the_spec_says_delete() {
    let policy = |p| {
        spec(&Tenant::test().with_deletion_policy(p))
            .persistent_volume_claim_retention_policy
            .expect("policy")
    };
    let retain = policy(DeletionPolicy::Retain);
    assert_eq!(retain.when_deleted.as_deref(), Some("Retain"));
    assert_eq!(retain.when_scaled.as_deref(), Some("Retain"));
    let delete = policy(DeletionPolicy::Delete);
    assert_eq!(delete.when_deleted.as_deref(), Some("Delete"));
    assert_eq!(delete.when_scaled.as_deref(), Some("Retain"));
}

#[test]
fn postgres_runs_as_uid_70_under_restricted_security() {
    let pod = spec(&Tenant::test()).template.spec.expect("pod");
    let psc = pod.security_context.expect("pod security");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.run_as_user, Some(70));
    assert_eq!(psc.fs_group, Some(70));
    let sc = pod.containers[0]
        .security_context
        .clone()
        .expect("security");
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    let mounts: Vec<String> = pod.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.clone())
        .collect();
    assert!(mounts.contains(&"/var/run/postgresql".to_owned()));
    assert!(mounts.contains(&"/tmp".to_owned()));
}

#[test]
fn postgres_readiness_is_pg_isready() {
    let probe = container(&Tenant::test()).readiness_probe.expect("probe");
    let command = probe.exec.and_then(|e| e.command).expect("exec");
    assert_eq!(&command[..3], ["pg_isready", "-U", "crm"]);
}

#[test]
fn postgres_service_selects_the_database_pods_on_5432() {
    let spec = service(&Tenant::test())
        .and_then(|s| s.spec)
        .expect("service");
    assert_eq!(
        spec.selector,
        Some(labels::selector("acme", Component::Database))
    );
    assert_eq!(spec.ports.expect("ports")[0].port, 5432);
}

#[test]
fn other_modes_have_no_postgres() {
    for mode in [
        DatabaseTarget::Embedded,
        fixture::shared(),
        fixture::external(),
    ] {
        let tenant = Tenant::test().with_database(mode);
        assert_eq!(statefulset(&tenant, &fixture::credentials()), None);
        assert_eq!(service(&tenant), None);
    }
}

#[test]
fn a_rotated_password_restarts_postgres_which_sets_it_at_start() {
    let hash = |password: &str| {
        let credentials = Credentials {
            database_password: password.into(),
            ..fixture::credentials()
        };
        let sts = statefulset(&Tenant::test(), &credentials).expect("managed");
        let template = sts.spec.expect("spec").template;
        let annotations = template.metadata.and_then(|m| m.annotations);
        annotations.expect("annotations")[CONFIG_HASH].clone()
    };
    assert_eq!(hash("one"), hash("one"));
    assert_ne!(hash("one"), hash("two"), "a new password rolls the pod");
    assert!(!hash("secret-password").contains("secret-password"));

    let hook = container(&Tenant::test())
        .lifecycle
        .and_then(|l| l.post_start)
        .and_then(|h| h.exec)
        .and_then(|e| e.command)
        .expect("a postStart hook");
    let script = hook.last().expect("script");
    assert!(script.contains("ALTER ROLE CURRENT_USER PASSWORD :'password'"));
    assert!(
        script.contains("$POSTGRES_PASSWORD"),
        "read from the env, never inlined"
    );
}
