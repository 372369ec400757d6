//! CronJob `<t>-backup`: `crm-server backup --dir /backups --retain N` on
//! the schedule of `spec.backup`, onto the volume `<t>-backups`.
//!
//! One backup at a time (`Forbid`); a run that fails is retried once. The
//! backup reads the database the pods use (during a move, the old one) as
//! one consistent snapshot, so it may run while the CRM serves writes.

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::EnvVar;

use super::config_map::SQLITE_DIR;
use super::deployment::from_secret;
use super::job::{BACKUP_DIR, data_pod};
use super::metadata;
use super::secret::URL;
use crate::labels::{self, Component};
use crate::validate::{DatabaseTarget, Tenant, fit};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Kubernetes limits a CronJob's name to 52 characters, leaving room for
/// the suffix of the Jobs it creates.
const MAX_NAME: usize = 52;

/// `<t>-backup`, cut to fit.
pub fn cron_job_name(tenant: &Tenant) -> String {
    let name = fit(&tenant.name, "-backup");
    if name.len() <= MAX_NAME {
        return name;
    }
    let keep = MAX_NAME - "-backup".len();
    format!("{}-backup", tenant.name[..keep].trim_end_matches('-'))
}

/// Present when the spec asks for backups.
pub fn cron_job(tenant: &Tenant) -> Option<CronJob> {
    let backup = tenant.backup.as_ref()?;
    let serving = tenant.serving();
    let embedded = serving.database.mode == DatabaseTarget::Embedded;
    let url = match &serving.database.mode {
        DatabaseTarget::Embedded => EnvVar {
            name: "DATABASE_URL".to_owned(),
            value: Some(format!("sqlite://{SQLITE_DIR}/crm.db?mode=rwc")),
            ..EnvVar::default()
        },
        DatabaseTarget::Managed { .. } | DatabaseTarget::Shared { .. } => {
            from_secret("DATABASE_URL", super::database_secret_name(tenant), URL)
        }
        DatabaseTarget::External { secret_ref } => {
            from_secret("DATABASE_URL", secret_ref.name.clone(), &secret_ref.key)
        }
    };
    let args = vec![
        "backup".to_owned(),
        "--dir".to_owned(),
        BACKUP_DIR.to_owned(),
        "--retain".to_owned(),
        backup.retain.to_string(),
    ];
    let pod = data_pod(
        tenant,
        args,
        vec![url],
        embedded,
        true,
        embedded && !tenant.suspend,
    );
    Some(CronJob {
        metadata: metadata(tenant, cron_job_name(tenant), Component::Data),
        spec: Some(CronJobSpec {
            schedule: backup.schedule.clone(),
            time_zone: Some("Etc/UTC".to_owned()),
            concurrency_policy: Some("Forbid".to_owned()),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            job_template: JobTemplateSpec {
                // The operator watches the backup Jobs by these labels, to
                // report the last failure.
                metadata: Some(ObjectMeta {
                    labels: Some(labels::standard(&tenant.name, Component::Data)),
                    ..ObjectMeta::default()
                }),
                spec: Some(JobSpec {
                    backoff_limit: Some(1),
                    template: pod,
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        }),
        ..CronJob::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::Backup;

    fn backed_up() -> Tenant {
        let mut tenant = Tenant::test();
        tenant.backup = Some(Backup {
            schedule: "15 3 * * *".into(),
            retain: 7,
            storage: "5Gi".into(),
        });
        tenant
    }

    #[test]
    fn no_cron_job_without_spec_backup() {
        assert_eq!(cron_job(&Tenant::test()), None);
        assert_eq!(crate::build::volume::backup_volume(&Tenant::test()), None);
    }

    #[test]
    fn the_cron_job_backs_up_onto_the_backup_volume_one_run_at_a_time() {
        let cron = cron_job(&backed_up()).expect("cron job");
        assert_eq!(cron.metadata.name.as_deref(), Some("acme-backup"));
        let spec = cron.spec.expect("spec");
        assert_eq!(spec.schedule, "15 3 * * *");
        assert_eq!(spec.time_zone.as_deref(), Some("Etc/UTC"));
        assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
        let labels = spec
            .job_template
            .metadata
            .and_then(|m| m.labels)
            .expect("labels");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "crm-operator");
        let pod = spec
            .job_template
            .spec
            .and_then(|s| s.template.spec)
            .expect("pod");
        let container = &pod.containers[0];
        assert_eq!(
            container.args.clone().unwrap_or_default(),
            ["backup", "--dir", "/backups", "--retain", "7"]
        );
        let claims: Vec<_> = pod
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| v.persistent_volume_claim.as_ref())
            .map(|c| c.claim_name.as_str())
            .collect();
        assert_eq!(claims, ["acme-backups"]);
        let volume = crate::build::volume::backup_volume(&backed_up()).expect("volume");
        assert_eq!(volume.metadata.name.as_deref(), Some("acme-backups"));
        assert_eq!(
            volume.metadata.owner_references, None,
            "Retain keeps backups"
        );
    }

    #[test]
    fn a_long_tenant_name_is_cut_to_the_cron_job_limit() {
        let mut tenant = backed_up();
        tenant.name = "a".repeat(54);
        let name = cron_job_name(&tenant);
        assert_eq!(name.len(), 52);
        assert!(name.ends_with("-backup"));
    }
}
