//! Managed database: StatefulSet and Service `<t>-postgres`, a PostgreSQL
//! server for this tenant alone.
//!
//! The image's entrypoint reads `POSTGRES_PASSWORD` only when it creates the
//! cluster, so a rotated password would never reach a running server. The
//! pod template therefore carries a hash of the password (a rotation restarts
//! PostgreSQL), and a start hook sets the role's password from the pod's
//! environment over the local socket. A rotation thus briefly restarts the
//! tenant's database, and pods started between the Secret's change and the
//! hook's run retry until it has run (the operator cannot reach the tenant's
//! server to set the password first, as it does in Shared mode).

use std::collections::BTreeMap;

use crm_crds::DeletionPolicy;
use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, ExecAction, Lifecycle, LifecycleHandler,
    PersistentVolumeClaim, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Service,
    ServicePort, ServiceSpec, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use sha2::{Digest, Sha256};

use super::deployment::{
    CONFIG_HASH, container_security, empty_dir, from_secret, mount, pod_security, selector,
};
use super::secret::PASSWORD;
use super::secret::{DATABASE, MANAGED_USER, USERNAME};
use super::{
    Credentials, POSTGRES_PORT, cpu_quantity, database_secret_name, metadata, postgres_name,
};
use crate::labels::{self, Component};
use crate::validate::{DatabaseTarget, Tenant};

/// UID and GID of `postgres` in the official Alpine images.
const POSTGRES_UID: i64 = 70;
/// Where the volume is mounted. PGDATA is a directory below it, because
/// initdb refuses a non-empty directory and a fresh volume may hold `lost+found`.
const DATA_DIR: &str = "/var/lib/postgresql/data";
const PORT_NAME: &str = "postgres";

/// The Managed PostgreSQL StatefulSet; None for the other modes.
pub fn statefulset(tenant: &Tenant, credentials: &Credentials) -> Option<StatefulSet> {
    let DatabaseTarget::Managed { image, cpu, memory } = &tenant.database.mode else {
        return None;
    };
    let resources = BTreeMap::from([
        ("cpu".to_owned(), cpu_quantity(*cpu)),
        ("memory".to_owned(), Quantity(memory.clone())),
    ]);
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".to_owned()),
            labels: Some(labels::standard(&tenant.name, Component::Database)),
            ..ObjectMeta::default()
        },
        spec: Some(super::volume::claim_spec(tenant)),
        ..PersistentVolumeClaim::default()
    };
    Some(StatefulSet {
        metadata: metadata(tenant, postgres_name(tenant), Component::Database),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            revision_history_limit: Some(3),
            service_name: Some(postgres_name(tenant)),
            selector: selector(tenant, Component::Database),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels::standard(&tenant.name, Component::Database)),
                    annotations: Some(BTreeMap::from([(
                        CONFIG_HASH.to_owned(),
                        password_hash(credentials),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(tenant, image, resources)),
            },
            volume_claim_templates: Some(vec![claim]),
            persistent_volume_claim_retention_policy: Some(retention(tenant)),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    })
}

/// Hex SHA-256 of the password, length-prefixed: it changes with the
/// password and cannot be turned back into it.
fn password_hash(credentials: &Credentials) -> String {
    let password = credentials.database_password.as_bytes();
    let mut hasher = Sha256::new();
    hasher.update(b"postgres-password");
    hasher.update((password.len() as u64).to_le_bytes());
    hasher.update(password);
    hex::encode(hasher.finalize())
}

/// Sets the role's password from `POSTGRES_PASSWORD` once the server takes
/// connections on its local socket (trusted in the official image). It
/// retries while the entrypoint's temporary first-start server comes and
/// goes, and gives up after five minutes, which restarts the container.
/// psql's `:'password'` quotes the value as a literal.
const SET_PASSWORD: &str = r#"i=0
until printf '%s\n' "ALTER ROLE CURRENT_USER PASSWORD :'password';" | psql -X -q -v ON_ERROR_STOP=1 -v "password=$POSTGRES_PASSWORD" -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres >/dev/null 2>&1; do
  i=$((i + 1)); [ "$i" -lt 300 ] || exit 1; sleep 1
done"#;

/// The volume goes with the StatefulSet only when the spec says Delete.
pub fn retention(tenant: &Tenant) -> StatefulSetPersistentVolumeClaimRetentionPolicy {
    let when_deleted = match tenant.database.deletion_policy {
        DeletionPolicy::Delete => "Delete",
        DeletionPolicy::Retain => "Retain",
    };
    StatefulSetPersistentVolumeClaimRetentionPolicy {
        when_deleted: Some(when_deleted.to_owned()),
        when_scaled: Some("Retain".to_owned()),
    }
}

/// Restricted pod security with a read-only root filesystem: PostgreSQL
/// writes only to its data volume, its socket directory and /tmp, and the
/// last two are emptyDirs.
fn pod_spec(tenant: &Tenant, image: &str, resources: BTreeMap<String, Quantity>) -> PodSpec {
    let secret = database_secret_name(tenant);
    let pg_isready = ExecAction {
        command: Some(
            ["pg_isready", "-U", MANAGED_USER, "-h", "127.0.0.1"]
                .map(str::to_owned)
                .to_vec(),
        ),
    };
    let ready = |period_seconds, failure_threshold| Probe {
        exec: Some(pg_isready.clone()),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    };
    let container = Container {
        name: "postgres".to_owned(),
        image: Some(image.to_owned()),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.to_owned()),
            container_port: POSTGRES_PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        env: Some(vec![
            from_secret("POSTGRES_USER", secret.clone(), USERNAME),
            from_secret("POSTGRES_PASSWORD", secret.clone(), PASSWORD),
            from_secret("POSTGRES_DB", secret, DATABASE),
            EnvVar {
                name: "PGDATA".to_owned(),
                value: Some(format!("{DATA_DIR}/pgdata")),
                ..EnvVar::default()
            },
        ]),
        resources: Some(ResourceRequirements {
            requests: Some(resources.clone()),
            limits: Some(resources),
            ..ResourceRequirements::default()
        }),
        lifecycle: Some(Lifecycle {
            post_start: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(["/bin/sh", "-c", SET_PASSWORD].map(str::to_owned).to_vec()),
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        // First start runs initdb, and recovery after a crash may take a while.
        startup_probe: Some(ready(5, 60)),
        readiness_probe: Some(ready(5, 3)),
        // Alive means listening: pg_isready also fails while PostgreSQL is
        // busy but healthy, which must not get it restarted.
        liveness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String(PORT_NAME.to_owned()),
                ..TCPSocketAction::default()
            }),
            period_seconds: Some(10),
            failure_threshold: Some(6),
            ..Probe::default()
        }),
        security_context: Some(container_security()),
        volume_mounts: Some(vec![
            mount("data", DATA_DIR),
            mount("run", "/var/run/postgresql"),
            mount("tmp", "/tmp"),
        ]),
        ..Container::default()
    };
    PodSpec {
        service_account_name: Some(tenant.name.clone()),
        automount_service_account_token: Some(false),
        security_context: Some(pod_security(POSTGRES_UID)),
        // Time for a clean shutdown checkpoint rather than crash recovery.
        termination_grace_period_seconds: Some(60),
        containers: vec![container],
        volumes: Some(vec![empty_dir("run"), empty_dir("tmp")]),
        ..PodSpec::default()
    }
}

/// `<t>-postgres` on 5432. A ClusterIP rather than headless: one replica
/// needs no per-pod DNS, and a stable virtual IP keeps the connection URL's
/// host valid while the pod is rescheduled.
pub fn service(tenant: &Tenant) -> Option<Service> {
    if !matches!(tenant.database.mode, DatabaseTarget::Managed { .. }) {
        return None;
    }
    Some(Service {
        metadata: metadata(tenant, postgres_name(tenant), Component::Database),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(labels::selector(&tenant.name, Component::Database)),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.to_owned()),
                port: POSTGRES_PORT,
                target_port: Some(IntOrString::String(PORT_NAME.to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

#[cfg(test)]
mod tests;
