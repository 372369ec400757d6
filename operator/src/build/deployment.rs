//! Deployment `<t>`: the CRM server.

use std::collections::BTreeMap;

use crm_crds::Tier;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapEnvSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, EnvVarSource, HTTPGetAction, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecurityContext, TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config_map::SQLITE_DIR;
use super::secret::URL;
use super::secret::{ADMIN_EMAIL, ADMIN_PASSWORD, API_KEY};
use super::{
    METRICS_PORT, METRICS_PORT_NAME, SERVER_PORT, SERVER_PORT_NAME, cpu_quantity, metadata,
};
use crate::labels::{self, Component};
use crate::validate::{DatabaseTarget, Tenant};

/// Pod template annotation: hash of the settings and credentials the pods
/// read at start-up (see [`super::config_map::config_hash`]).
pub const CONFIG_HASH: &str = "crm.tenancy.dev/config-hash";
/// UID and GID of the crm-server image's non-root user (distroless `nonroot`).
const SERVER_UID: i64 = 65532;

/// The CRM server's Deployment; `config_hash` goes on the pod template.
pub fn deployment(tenant: &Tenant, config_hash: &str) -> Deployment {
    let embedded = tenant.database.mode == DatabaseTarget::Embedded;
    let template_meta = ObjectMeta {
        labels: Some(labels::standard(&tenant.name, Component::Server)),
        annotations: Some(BTreeMap::from([(
            CONFIG_HASH.to_owned(),
            config_hash.to_owned(),
        )])),
        ..ObjectMeta::default()
    };
    Deployment {
        metadata: metadata(tenant, tenant.name.clone(), Component::Server),
        spec: Some(DeploymentSpec {
            replicas: replicas(tenant),
            revision_history_limit: Some(3),
            selector: selector(tenant, Component::Server),
            strategy: Some(strategy(embedded)),
            template: PodTemplateSpec {
                metadata: Some(template_meta),
                spec: Some(pod_spec(tenant, embedded)),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// `spec.replicas`: zero when suspended; left out (`None`) when the HPA owns
/// it, so our apply never fights the autoscaler; one for Embedded (a single
/// SQLite writer); otherwise the model's peak count.
pub fn replicas(tenant: &Tenant) -> Option<i32> {
    if tenant.suspend {
        Some(0)
    } else if tenant.database.mode == DatabaseTarget::Embedded {
        Some(1)
    } else if tenant.autoscaling {
        None
    } else {
        Some(tenant.capacity.sizing.replicas)
    }
}

/// A selector on the stable selector labels.
pub fn selector(tenant: &Tenant, component: Component) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels::selector(&tenant.name, component)),
        ..LabelSelector::default()
    }
}

/// Embedded: Recreate, since two pods must never write one SQLite file (and
/// a ReadWriteOnce volume may not attach twice). Otherwise roll without
/// ever dropping below the current count.
fn strategy(embedded: bool) -> DeploymentStrategy {
    if embedded {
        return DeploymentStrategy {
            type_: Some("Recreate".to_owned()),
            ..DeploymentStrategy::default()
        };
    }
    DeploymentStrategy {
        type_: Some("RollingUpdate".to_owned()),
        rolling_update: Some(RollingUpdateDeployment {
            max_unavailable: Some(IntOrString::Int(0)),
            max_surge: Some(IntOrString::String("25%".to_owned())),
        }),
    }
}

fn pod_spec(tenant: &Tenant, embedded: bool) -> PodSpec {
    let mut volumes = vec![empty_dir("tmp")];
    if embedded {
        volumes.push(Volume {
            name: "data".to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: super::data_volume_name(tenant),
                ..PersistentVolumeClaimVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    PodSpec {
        service_account_name: Some(tenant.name.clone()),
        automount_service_account_token: Some(false),
        termination_grace_period_seconds: Some(30),
        security_context: Some(pod_security(SERVER_UID)),
        containers: vec![container(tenant, embedded)],
        volumes: Some(volumes),
        topology_spread_constraints: spread(tenant),
        ..PodSpec::default()
    }
}

fn container(tenant: &Tenant, embedded: bool) -> Container {
    let mut mounts = vec![mount("tmp", "/tmp")];
    if embedded {
        mounts.push(mount("data", SQLITE_DIR));
    }
    let resources = BTreeMap::from([
        ("cpu".to_owned(), cpu_quantity(tenant.cpu)),
        ("memory".to_owned(), Quantity(tenant.memory.clone())),
    ]);
    Container {
        name: "crm-server".to_owned(),
        image: Some(tenant.server.image.clone()),
        ports: Some(vec![
            ContainerPort {
                name: Some(SERVER_PORT_NAME.to_owned()),
                container_port: SERVER_PORT,
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some(METRICS_PORT_NAME.to_owned()),
                container_port: METRICS_PORT,
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            },
        ]),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: super::config_map_name(tenant),
                ..ConfigMapEnvSource::default()
            }),
            ..EnvFromSource::default()
        }]),
        env: Some(env(tenant)),
        // Requests equal limits: the model sizes a replica by its CPU, so it
        // must get exactly that, neither throttled below nor bursting above.
        resources: Some(ResourceRequirements {
            requests: Some(resources.clone()),
            limits: Some(resources),
            ..ResourceRequirements::default()
        }),
        // Start-up runs migrations: up to 30 × 2 s before liveness applies.
        startup_probe: Some(probe("/healthz", 2, 30)),
        liveness_probe: Some(probe("/healthz", 10, 3)),
        readiness_probe: Some(probe("/readyz", 5, 3)),
        security_context: Some(container_security()),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

/// Secrets and the tenant's extra env; the ConfigMap supplies the rest.
fn env(tenant: &Tenant) -> Vec<EnvVar> {
    let api_secret = super::api_secret_name(tenant);
    let admin_secret = super::admin_secret_name(tenant);
    let mut env = vec![
        from_secret("CRM_API_KEY", api_secret, API_KEY),
        from_secret("CRM_ADMIN_EMAIL", admin_secret.clone(), ADMIN_EMAIL),
        from_secret("CRM_ADMIN_PASSWORD", admin_secret, ADMIN_PASSWORD),
    ];
    match &tenant.database.mode {
        // In the ConfigMap: the SQLite URL holds no secret.
        DatabaseTarget::Embedded => {}
        DatabaseTarget::Managed { .. } | DatabaseTarget::Shared { .. } => {
            let name = super::database_secret_name(tenant);
            env.push(from_secret("DATABASE_URL", name, URL));
        }
        DatabaseTarget::External { secret_ref } => env.push(from_secret(
            "DATABASE_URL",
            secret_ref.name.clone(),
            &secret_ref.key,
        )),
    }
    if tenant.transfer.as_ref().is_some_and(|t| t.read_only()) {
        // Writes answer 503 while the data is copied or restored.
        env.push(EnvVar {
            name: "CRM_READ_ONLY".to_owned(),
            value: Some("true".to_owned()),
            ..EnvVar::default()
        });
    }
    env.extend(tenant.server.env.iter().map(|e| EnvVar {
        name: e.name.clone(),
        value: Some(e.value.clone()),
        ..EnvVar::default()
    }));
    env
}

/// An environment variable read from a Secret key.
pub(super) fn from_secret(name: &str, secret: String, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret,
                key: key.to_owned(),
                ..SecretKeySelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn probe(path: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(SERVER_PORT_NAME.to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

/// Enterprise replicas spread over zones and nodes. Zones are a preference
/// (ScheduleAnyway): many clusters have one zone, or zones with uneven room,
/// and a hard zone rule would leave replicas Pending there. Nodes are a rule
/// (DoNotSchedule): with maxSkew 1 it only refuses a node that already runs
/// more replicas than another eligible node, so it never blocks while nodes
/// have room, and it bounds what one node failure takes down.
fn spread(tenant: &Tenant) -> Option<Vec<TopologySpreadConstraint>> {
    if tenant.tier != Tier::Enterprise {
        return None;
    }
    let constraint = |key: &str, when: &str| TopologySpreadConstraint {
        max_skew: 1,
        topology_key: key.to_owned(),
        when_unsatisfiable: when.to_owned(),
        label_selector: Some(selector(tenant, Component::Server)),
        ..TopologySpreadConstraint::default()
    };
    Some(vec![
        constraint("topology.kubernetes.io/zone", "ScheduleAnyway"),
        constraint("kubernetes.io/hostname", "DoNotSchedule"),
    ])
}

/// The restricted Pod Security Standard, pod level.
pub(super) fn pod_security(uid: i64) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        fs_group: Some(uid),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// The restricted Pod Security Standard, container level, with a read-only
/// root filesystem: writable paths are explicit volumes.
pub(super) fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

pub(super) fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

pub(super) fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        ..VolumeMount::default()
    }
}

#[cfg(test)]
mod tests;
