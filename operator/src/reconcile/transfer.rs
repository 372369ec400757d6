//! How far a move or restore of the tenant's data got, and what the backup
//! CronJob last did: read from the caches, never from the API server.
//!
//! ```text
//! Preparing ── read-only rollout complete, new database ready ──► Running (Job created)
//! Running ──── Job Complete ──► Succeeded: the pods switch, writable
//!         └─── Job Failed ────► Failed: the pods stay, writable again
//! ```

use crm_crds::BackupStatus;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::build::cron_job::cron_job_name;
use crate::context::Context;
use crate::validate::{DatabaseTarget, Tenant, TransferKind, TransferState};

/// The tenant with its transfer's state as the caches show it.
pub(super) fn observe(tenant: &Tenant, context: &Context) -> Tenant {
    let mut tenant = tenant.clone();
    let Some(transfer) = tenant.transfer.as_ref() else {
        return tenant;
    };
    let at = ObjectRef::new(&transfer.job).within(&tenant.namespace);
    let job = context
        .stores
        .jobs
        .get(&at)
        .and_then(|j| j.to_object().ok());
    let state = match job {
        Some(job) => job_state(&job),
        None if read_only_rolled_out(&tenant, context) && target_ready(&tenant, context) => {
            TransferState::Running
        }
        None => TransferState::Preparing,
    };
    if let Some(transfer) = tenant.transfer.as_mut() {
        transfer.state = state;
    }
    tenant
}

/// Complete, Failed (with the Job's reason and message), or still running.
fn job_state(job: &Job) -> TransferState {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    let holds = |type_: &str| {
        conditions
            .into_iter()
            .flatten()
            .find(|c| c.type_ == type_ && c.status == "True")
    };
    if holds("Complete").is_some() {
        return TransferState::Succeeded;
    }
    match holds("Failed") {
        Some(failed) => TransferState::Failed {
            message: format!(
                "{}: {}",
                failed.reason.as_deref().unwrap_or("Failed"),
                failed
                    .message
                    .as_deref()
                    .unwrap_or("the Job failed; its pod's log says why")
            ),
        },
        None => TransferState::Running,
    }
}

/// Whether every replica of the server runs the read-only template: the
/// Deployment controller has seen its generation, and none is left of an
/// older one. Only then can no write reach the database being copied.
fn read_only_rolled_out(tenant: &Tenant, context: &Context) -> bool {
    rolled_out(tenant, context, true)
}

/// Whether every replica of the server runs a template that is (or is not)
/// read-only, as `read_only` says.
pub(super) fn rolled_out(tenant: &Tenant, context: &Context, read_only: bool) -> bool {
    let at = ObjectRef::new(&tenant.name).within(&tenant.namespace);
    let Some(deployment) = context
        .stores
        .deployments
        .get(&at)
        .and_then(|d| d.to_object().ok())
    else {
        return false;
    };
    let is_read_only = template_env(&deployment)
        .any(|(name, value)| name == "CRM_READ_ONLY" && value == Some("true"));
    let Some(status) = deployment.status.as_ref() else {
        return false;
    };
    let seen = status.observed_generation.is_some()
        && status.observed_generation >= deployment.metadata.generation;
    let replicas = status.replicas.unwrap_or(0);
    is_read_only == read_only && seen && status.updated_replicas.unwrap_or(0) >= replicas
}

fn template_env(deployment: &Deployment) -> impl Iterator<Item = (&str, Option<&str>)> {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .into_iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.env.iter().flatten())
        .map(|e| (e.name.as_str(), e.value.as_deref()))
}

/// A move waits for a Managed target's PostgreSQL to be ready; the other
/// targets are there once applied (Shared was provisioned by this reconcile).
fn target_ready(tenant: &Tenant, context: &Context) -> bool {
    let moving = tenant
        .transfer
        .as_ref()
        .is_some_and(|t| matches!(t.kind, TransferKind::Migrate { .. }));
    if !moving || !matches!(tenant.database.mode, DatabaseTarget::Managed { .. }) {
        return true;
    }
    let name = crate::build::postgres_name(tenant);
    context
        .stores
        .statefulsets
        .get(&ObjectRef::new(&name).within(&tenant.namespace))
        .and_then(|s| s.to_object().ok()?.status?.ready_replicas)
        .unwrap_or(0)
        >= 1
}

/// The last success from the CronJob's status; the last failure from the
/// newest failed Job it created.
pub(super) fn backup_status(tenant: &Tenant, context: &Context) -> Option<BackupStatus> {
    tenant.backup.as_ref()?;
    let name = cron_job_name(tenant);
    let cron_job = context
        .stores
        .cron_jobs
        .get(&ObjectRef::new(&name).within(&tenant.namespace));
    let last_success = cron_job.and_then(|c| c.to_object().ok()?.status?.last_successful_time);
    let failed = context
        .stores
        .jobs
        .state()
        .into_iter()
        .filter(|job| {
            job.namespace().as_deref() == Some(&tenant.namespace)
                && job
                    .owner_references()
                    .iter()
                    .any(|o| o.kind == "CronJob" && o.name == name)
        })
        .filter_map(|job| {
            let job = job.to_object().ok()?;
            let conditions = job.status.as_ref()?.conditions.as_ref()?;
            let failed = conditions
                .iter()
                .find(|c| c.type_ == "Failed" && c.status == "True")?;
            Some((failed.last_transition_time.clone()?, job.name_any()))
        })
        .max_by(|a, b| a.0.0.cmp(&b.0.0));
    let (last_failure, last_failed_job) = failed.map_or((None, None), |(t, n)| (Some(t), Some(n)));
    Some(BackupStatus {
        last_success,
        last_failure,
        last_failed_job,
    })
}
