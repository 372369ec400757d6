//! `spec.backup` and `status.backup`: scheduled backups of a tenant's data.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Scheduled backups: a CronJob runs `crm-server backup` onto the volume
/// `<t>-backups`, keeping the newest `retain`. A backup is restored with
/// the annotation `crm.tenancy.dev/restore: <backup name>`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupSpec {
    /// When to back up, in cron syntax (minute hour day-of-month month
    /// day-of-week, UTC), such as `15 3 * * *`, or one of `@hourly`,
    /// `@daily`, `@weekly`, `@monthly`, `@yearly`.
    #[schemars(
        length(min = 1, max = 100),
        regex(
            pattern = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[0-9A-Za-z*?,/-]+( +[0-9A-Za-z*?,/-]+){4})$"
        )
    )]
    pub schedule: String,

    /// How many backups to keep; older ones are removed after each backup.
    #[serde(default = "default_retain")]
    #[schemars(range(min = 1, max = 1000))]
    pub retain: i32,

    /// Size of the backup volume, as a Kubernetes quantity.
    #[serde(default = "default_storage")]
    #[schemars(regex(pattern = r"^[0-9]+(Ki|Mi|Gi|Ti)$"))]
    pub storage: String,
}

fn default_retain() -> i32 {
    7
}

fn default_storage() -> String {
    "5Gi".into()
}

/// What the backup CronJob last did.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// When the last backup completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<Time>,

    /// When the last failed backup Job gave up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<Time>,

    /// Name of the last failed backup Job, to read its logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed_job: Option<String>,
}
