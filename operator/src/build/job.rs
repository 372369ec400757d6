//! Job `<t>-migrate-<hash>` or `<t>-restore-<hash>`: moves the tenant's data
//! into the database the spec names (`crm-server copy --replace`), or
//! restores a backup into the database in use (`crm-server restore
//! --replace`). Both verify what they wrote by row counts and checksums and
//! exit non-zero when anything differs; the pods stay read-only meanwhile.
//!
//! The Embedded volume is ReadWriteOnce: while the read-only server pod has
//! it mounted, the Job's pod must run on the same node (a required pod
//! affinity to the tenant's server pods), where the volume may be mounted
//! twice. The server keeps serving reads, and the copy opens SQLite
//! read-only.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Container, EnvVar, PersistentVolumeClaimVolumeSource, PodAffinity, PodAffinityTerm,
    PodSpec, PodTemplateSpec, ResourceRequirements, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::config_map::SQLITE_DIR;
use super::deployment::{
    container_security, empty_dir, from_secret, mount, pod_security, selector,
};
use super::secret::{TARGET_URL, URL};
use super::{data_volume_name, metadata};
use crate::labels::{self, Component};
use crate::validate::{Database, DatabaseTarget, Tenant, TransferKind, TransferState};

/// Where the backup volume is mounted.
pub const BACKUP_DIR: &str = "/backups";
/// Retries of a failed copy before the Job counts as failed.
const BACKOFF_LIMIT: i32 = 1;
/// UID of the crm-server image's non-root user.
const SERVER_UID: i64 = 65532;

/// The tenant's transfer Job, once the pods are read-only.
pub fn transfer_job(tenant: &Tenant) -> Option<Job> {
    let transfer = tenant.transfer.as_ref()?;
    if transfer.state == TransferState::Preparing {
        return None;
    }
    let serving = tenant.serving();
    let (args, env, databases): (Vec<String>, Vec<EnvVar>, Vec<&Database>) = match &transfer.kind {
        TransferKind::Migrate { from } => (
            vec!["copy".into(), "--replace".into()],
            vec![
                url_env("CRM_COPY_FROM", tenant, from, URL),
                url_env("CRM_COPY_TO", tenant, &tenant.database, target_key(tenant)),
            ],
            vec![from, &tenant.database],
        ),
        TransferKind::Restore { backup } => (
            vec![
                "restore".into(),
                "--from".into(),
                format!("{BACKUP_DIR}/{backup}"),
                "--replace".into(),
            ],
            vec![url_env("DATABASE_URL", tenant, &tenant.database, URL)],
            vec![&tenant.database],
        ),
    };
    let backups = matches!(transfer.kind, TransferKind::Restore { .. });
    // The server pods hold the Embedded volume while they run.
    let beside_server = !tenant.suspend && serving.database.mode == DatabaseTarget::Embedded;
    let embedded = databases.iter().any(|d| d.mode == DatabaseTarget::Embedded);
    let pod = data_pod(tenant, args, env, embedded, backups, beside_server);
    Some(Job {
        metadata: metadata(tenant, transfer.job.clone(), Component::Data),
        spec: Some(JobSpec {
            backoff_limit: Some(BACKOFF_LIMIT),
            template: pod,
            ..JobSpec::default()
        }),
        ..Job::default()
    })
}

/// The key of `<t>-db` holding the new database's URL: `target-url` when
/// the database in use keeps its URL in `<t>-db` too.
fn target_key(tenant: &Tenant) -> &'static str {
    let serving = tenant.serving();
    if super::secret::keeps_url(&serving.database) && serving.database != tenant.database {
        TARGET_URL
    } else {
        URL
    }
}

/// `name` set to the URL of `database`: SQLite's is no secret; the others
/// are read from their Secret.
fn url_env(name: &str, tenant: &Tenant, database: &Database, key: &str) -> EnvVar {
    match &database.mode {
        DatabaseTarget::Embedded => EnvVar {
            name: name.to_owned(),
            value: Some(format!("sqlite://{SQLITE_DIR}/crm.db?mode=rwc")),
            ..EnvVar::default()
        },
        DatabaseTarget::Managed { .. } | DatabaseTarget::Shared { .. } => {
            from_secret(name, super::database_secret_name(tenant), key)
        }
        DatabaseTarget::External { secret_ref } => {
            from_secret(name, secret_ref.name.clone(), &secret_ref.key)
        }
    }
}

/// A pod running `crm-server ARGS` once, as the tenant's identity and
/// image: the Embedded volume at the SQLite directory when `embedded`, the
/// backup volume at [`BACKUP_DIR`] when `backups`, and on the node of the
/// tenant's server pod when `beside_server`.
pub(super) fn data_pod(
    tenant: &Tenant,
    args: Vec<String>,
    env: Vec<EnvVar>,
    embedded: bool,
    backups: bool,
    beside_server: bool,
) -> PodTemplateSpec {
    let mut volumes = vec![empty_dir("tmp")];
    let mut mounts = vec![mount("tmp", "/tmp")];
    let claim = |name: &str, claim: String| Volume {
        name: name.to_owned(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim,
            ..PersistentVolumeClaimVolumeSource::default()
        }),
        ..Volume::default()
    };
    if embedded {
        volumes.push(claim("data", data_volume_name(tenant)));
        mounts.push(mount("data", SQLITE_DIR));
    }
    if backups {
        volumes.push(claim("backups", super::backup_volume_name(tenant)));
        mounts.push(mount("backups", BACKUP_DIR));
    }
    let affinity = beside_server.then(|| Affinity {
        pod_affinity: Some(PodAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                label_selector: Some(selector(tenant, Component::Server)),
                topology_key: "kubernetes.io/hostname".to_owned(),
                ..PodAffinityTerm::default()
            }]),
            ..PodAffinity::default()
        }),
        ..Affinity::default()
    });
    let resources = BTreeMap::from([
        ("cpu".to_owned(), Quantity("250m".to_owned())),
        ("memory".to_owned(), Quantity("256Mi".to_owned())),
    ]);
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels::standard(&tenant.name, Component::Data)),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(tenant.name.clone()),
            automount_service_account_token: Some(false),
            restart_policy: Some("Never".to_owned()),
            security_context: Some(pod_security(SERVER_UID)),
            affinity,
            containers: vec![Container {
                name: "crm-server".to_owned(),
                image: Some(tenant.server.image.clone()),
                args: Some(args),
                env: Some(env),
                resources: Some(ResourceRequirements {
                    requests: Some(resources),
                    ..ResourceRequirements::default()
                }),
                security_context: Some(container_security()),
                // The command's last words (the failed step and table) become
                // the pod's termination message.
                termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
                volume_mounts: Some(mounts),
                ..Container::default()
            }],
            volumes: Some(volumes),
            ..PodSpec::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixture;
    use crate::validate::Transfer;

    /// `acme` moving from Embedded to its spec's Managed database.
    fn moving(state: TransferState) -> Tenant {
        let mut tenant = Tenant::test();
        let mut from = tenant.database.clone();
        from.mode = DatabaseTarget::Embedded;
        tenant.transfer = Some(Transfer {
            kind: TransferKind::Migrate {
                from: Box::new(from),
            },
            job: "acme-migrate-0123abcd".into(),
            state,
        });
        tenant
    }

    fn pod(job: &Job) -> PodSpec {
        job.spec
            .as_ref()
            .and_then(|s| s.template.spec.clone())
            .expect("pod")
    }

    #[test]
    fn no_job_until_the_pods_are_read_only() {
        assert_eq!(transfer_job(&moving(TransferState::Preparing)), None);
        assert_eq!(transfer_job(&Tenant::test()), None);
    }

    #[test]
    fn a_move_copies_from_the_old_database_into_the_new_one_once() {
        let job = transfer_job(&moving(TransferState::Running)).expect("job");
        assert_eq!(job.metadata.name.as_deref(), Some("acme-migrate-0123abcd"));
        let spec = job.spec.as_ref().expect("spec");
        assert_eq!(spec.backoff_limit, Some(1));
        let pod = pod(&job);
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let container = &pod.containers[0];
        assert_eq!(
            container.args,
            Some(vec!["copy".into(), "--replace".into()])
        );
        assert_eq!(
            container.image.as_deref(),
            Some("crm-tenancy/crm-server:0.1.0")
        );
        let env = container.env.clone().expect("env");
        assert_eq!(
            env[0].value.as_deref(),
            Some("sqlite:///var/lib/crm/crm.db?mode=rwc")
        );
        let to = env[1]
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.clone());
        assert_eq!(
            to.map(|k| (k.name, k.key)),
            Some(("acme-db".into(), "url".into()))
        );
        let claims: Vec<_> = pod
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| v.persistent_volume_claim.as_ref())
            .map(|c| c.claim_name.clone())
            .collect();
        assert_eq!(claims, ["acme-data"]);
        let affinity = pod.affinity.and_then(|a| a.pod_affinity).expect("affinity");
        let term = &affinity
            .required_during_scheduling_ignored_during_execution
            .expect("required")[0];
        assert_eq!(term.topology_key, "kubernetes.io/hostname");
        // Labelled apart from the servers, so the Service never sends it traffic.
        let labels = job
            .spec
            .and_then(|s| s.template.metadata?.labels)
            .expect("labels");
        assert_eq!(labels["app.kubernetes.io/component"], "data");
    }

    #[test]
    fn a_suspended_tenant_frees_the_volume_so_the_copy_needs_no_affinity() {
        let mut tenant = moving(TransferState::Running);
        tenant.suspend = true;
        assert_eq!(pod(&transfer_job(&tenant).expect("job")).affinity, None);
    }

    #[test]
    fn between_two_databases_in_the_db_secret_the_copy_reads_the_target_url() {
        let mut tenant = moving(TransferState::Running);
        tenant.database.mode = fixture::shared();
        let job = transfer_job(&tenant).expect("job");
        let env = pod(&job).containers[0].env.clone().expect("env");
        let key = |i: usize| {
            env[i]
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
                .map(|k| k.key.clone())
        };
        // From Embedded the target's URL is `url`; from Managed, `target-url`.
        assert_eq!(key(1).as_deref(), Some("url"));
        if let Some(t) = tenant.transfer.as_mut()
            && let TransferKind::Migrate { from } = &mut t.kind
        {
            from.mode = fixture::managed();
        }
        let job = transfer_job(&tenant).expect("job");
        let env = pod(&job).containers[0].env.clone().expect("env");
        let keys: Vec<_> = env
            .iter()
            .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
            .map(|k| k.key.as_str())
            .collect();
        assert_eq!(keys, ["url", "target-url"]);
    }

    #[test]
    fn a_restore_loads_the_named_backup_into_the_database_in_use() {
        let mut tenant = Tenant::test();
        tenant.transfer = Some(Transfer {
            kind: TransferKind::Restore {
                backup: "crm-20261130T101500.000Z".into(),
            },
            job: "acme-restore-0123abcd".into(),
            state: TransferState::Running,
        });
        let job = transfer_job(&tenant).expect("job");
        let container = &pod(&job).containers[0];
        assert_eq!(
            container.args.clone().unwrap_or_default(),
            [
                "restore",
                "--from",
                "/backups/crm-20261130T101500.000Z",
                "--replace"
            ]
        );
        let mounts: Vec<_> = container
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.mount_path.as_str())
            .collect();
        assert_eq!(mounts, ["/tmp", "/backups"]);
    }

    #[test]
    fn during_a_move_the_server_is_read_only_on_the_old_database() {
        let desired = crate::build::build(&moving(TransferState::Running), &fixture::credentials());
        let container = &desired
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.clone())
            .expect("pod")
            .containers[0];
        let env = container.env.clone().expect("env");
        assert!(env.iter().any(|e| e.name == "CRM_READ_ONLY"));
        assert!(
            !env.iter().any(|e| e.name == "DATABASE_URL"),
            "SQLite, from the ConfigMap"
        );
        assert!(desired.data_volume.is_some() && desired.database_statefulset.is_some());
        let switched =
            crate::build::build(&moving(TransferState::Succeeded), &fixture::credentials());
        let env = switched
            .deployment
            .spec
            .and_then(|s| s.template.spec)
            .expect("pod")
            .containers[0]
            .env
            .clone()
            .expect("env");
        assert!(!env.iter().any(|e| e.name == "CRM_READ_ONLY"));
        assert!(env.iter().any(|e| e.name == "DATABASE_URL"));
    }
}
