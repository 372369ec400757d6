//! What was applied and observed → `CrmTenant.status`. Pure: the reconciler
//! patches the result only when it differs from the status already there.
//!
//! Conditions keep their `lastTransitionTime` unless their status flips, so an
//! unchanged tenant produces an identical status and no write.

use crm_crds::{CrmTenantStatus, Phase, condition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::autopilot::Verdict;
use crate::build;
use crate::validate::{DatabaseTarget, Tenant, TransferKind, TransferState, in_use};

/// What the reconciler saw of the tenant's running objects.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// Ready replicas of the CRM Deployment.
    pub ready_replicas: i32,
    /// Available replicas of the CRM Deployment.
    pub available_replicas: i32,
    /// The CRM Deployment's `spec.replicas`, which the autoscaler sets while
    /// it runs; none before the Deployment has been seen.
    pub desired_replicas: Option<i32>,
    /// Whether the database answers, and why not.
    pub database: DatabaseState,
    /// The reconcile failed with this message (already free of secrets).
    pub error: Option<Failure>,
    /// Writes are paused by annotation.
    pub paused: bool,
    /// The tenant is being deleted.
    pub deleting: bool,
    /// The database credentials were rotated at this time by this reconcile.
    pub credentials_rotated_at: Option<Time>,
    /// What the backup CronJob and its Jobs say, when backups are on.
    pub backup: Option<crm_crds::BackupStatus>,
    /// Load measured in Prometheus by this reconcile; the last one stays
    /// reported until the next.
    pub load: Option<crm_crds::ObservedLoad>,
    /// Autopilot's verdict of this reconcile; without one the condition
    /// keeps what it said.
    pub autopilot: Option<Verdict>,
    /// This reconcile saw the old database's data follow `deletionPolicy`.
    pub old_database_settled: bool,
}

/// A failed reconcile, as status reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// Retrying will not help until the spec changes.
    pub permanent: bool,
}

/// The database's state.
#[derive(Clone, Debug, PartialEq)]
pub struct DatabaseState {
    /// Ready to serve.
    pub ready: bool,
    /// CamelCase reason (Ready, Provisioning, ServerUnreachable, SecretMissing, ...).
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

impl Default for DatabaseState {
    fn default() -> Self {
        Self {
            ready: false,
            reason: "Provisioning".into(),
            message: "waiting for the database".into(),
        }
    }
}

/// The minimum number of replicas a tenant needs available to be Ready.
pub fn minimum_replicas(tenant: &Tenant) -> i32 {
    if tenant.suspend {
        0
    } else {
        tenant.capacity.sizing.min_replicas.max(1)
    }
}

/// The replicas wanted now, as a Deployment's READY column counts them: what
/// the Deployment asks for when it has been seen, else what it will start
/// with (under autoscaling, the autoscaler's minimum, which it raises a new
/// Deployment to).
pub fn desired_replicas(tenant: &Tenant, observed: &Observed) -> i32 {
    observed.desired_replicas.unwrap_or_else(|| {
        build::deployment::replicas(tenant).unwrap_or(tenant.capacity.sizing.min_replicas)
    })
}

/// `min..max` while the autoscaler owns the replica count, else the fixed
/// count the Deployment is given (zero while suspended).
pub fn replica_range(tenant: &Tenant) -> String {
    let sizing = &tenant.capacity.sizing;
    build::deployment::replicas(tenant).map_or_else(
        || format!("{}..{}", sizing.min_replicas, sizing.max_replicas),
        |fixed| fixed.to_string(),
    )
}

/// The status the tenant should have; `previous` supplies transition times.
pub fn status(
    tenant: &Tenant,
    observed: &Observed,
    previous: Option<&CrmTenantStatus>,
    now: &Time,
) -> CrmTenantStatus {
    let previous_conditions = previous.map(|p| p.conditions.as_slice()).unwrap_or(&[]);
    let mut conditions = Conditions {
        previous: previous_conditions,
        now,
        generation: tenant.generation,
        list: Vec::new(),
    };
    let minimum = minimum_replicas(tenant);
    let workload = observed.available_replicas >= minimum;
    let read_only = tenant.transfer.as_ref().filter(|t| t.read_only());
    let ready = workload
        && (tenant.suspend || observed.database.ready)
        && observed.error.is_none()
        && read_only.is_none();
    let phase = phase(tenant, observed, ready);

    conditions.set(
        condition::READY,
        ready,
        ready_reason(phase),
        &ready_message(tenant, observed, minimum),
    );
    conditions.set(
        condition::DATABASE_READY,
        observed.database.ready,
        &observed.database.reason,
        &observed.database.message,
    );
    conditions.set(
        condition::WORKLOAD_AVAILABLE,
        workload,
        if workload {
            "MinimumReplicasAvailable"
        } else {
            "MinimumReplicasUnavailable"
        },
        &format!(
            "{} of at least {minimum} replicas available",
            observed.available_replicas
        ),
    );
    for c in &tenant.capacity.conditions {
        conditions.set(c.type_, c.status, c.reason, &c.message);
    }
    let stalled = observed.error.as_ref().filter(|e| e.permanent);
    let reconciling = !ready && stalled.is_none() && !tenant.suspend;
    conditions.set(
        condition::RECONCILING,
        reconciling,
        if reconciling {
            "Progressing"
        } else {
            "Settled"
        },
        if reconciling {
            "the tenant is converging"
        } else {
            "nothing left to do"
        },
    );
    match stalled {
        Some(e) => conditions.set(condition::STALLED, true, &e.reason, &e.message),
        None => conditions.set(
            condition::STALLED,
            false,
            "Progressing",
            "no permanent error",
        ),
    }
    if let Some((type_, reason, message)) = transfer_failure(tenant) {
        conditions.set(type_, true, reason, &message);
    }
    if observed.paused {
        conditions.set(
            condition::RECONCILIATION_PAUSED,
            true,
            "PausedByAnnotation",
            &format!(
                "{}: paused; the operator writes nothing to this tenant",
                crm_crds::annotation::RECONCILE
            ),
        );
    }

    if tenant.autopilot.enabled {
        let kept = previous_conditions
            .iter()
            .find(|c| c.type_ == condition::AUTOPILOT)
            .map(|c| (c.status == "True", c.reason.clone(), c.message.clone()));
        let (status, reason, message) = match (&observed.autopilot, kept) {
            (Some(v), _) => (v.calibrated, v.reason.to_owned(), v.message.clone()),
            (None, Some(kept)) => kept,
            (None, None) => (
                false,
                "InsufficientData".to_owned(),
                "waiting for the first measurement".to_owned(),
            ),
        };
        conditions.set(condition::AUTOPILOT, status, &reason, &message);
    }

    let desired_replicas = desired_replicas(tenant, observed);
    let serving = tenant.serving();
    CrmTenantStatus {
        phase: Some(phase),
        observed_generation: tenant.generation,
        conditions: conditions.list,
        sizing: Some(tenant.capacity.sizing.clone()),
        endpoint: Some(endpoint(tenant)),
        credentials_secret: Some(format!("{}-api", tenant.name)),
        ready_replicas: Some(observed.ready_replicas),
        desired_replicas: Some(desired_replicas),
        ready: Some(format!("{}/{desired_replicas}", observed.ready_replicas)),
        replica_range: Some(replica_range(tenant)),
        database_credentials_rotated_at: observed
            .credentials_rotated_at
            .clone()
            .or_else(|| previous.and_then(|p| p.database_credentials_rotated_at.clone())),
        database_mode: Some(serving.database.mode.mode()),
        database: Some(in_use(&serving.database)),
        old_database: old_database(tenant, observed, previous),
        restored: restored(tenant).or_else(|| previous.and_then(|p| p.restored.clone())),
        backup: observed.backup.clone(),
        observed: observed
            .load
            .clone()
            .or_else(|| previous.and_then(|p| p.observed.clone())),
        autopilot: tenant.learned.clone(),
    }
}

/// The backup a restore just verified.
fn restored(tenant: &Tenant) -> Option<String> {
    let transfer = tenant.transfer.as_ref()?;
    match &transfer.kind {
        TransferKind::Restore { backup } if transfer.state == TransferState::Succeeded => {
            Some(backup.clone())
        }
        _ => None,
    }
}

/// `MigrationFailed` or `RestoreFailed`, naming the step that failed, while
/// the failed Job stands.
fn transfer_failure(tenant: &Tenant) -> Option<(&'static str, &'static str, String)> {
    let transfer = tenant.transfer.as_ref()?;
    let TransferState::Failed { message } = &transfer.state else {
        return None;
    };
    let retry = crm_crds::annotation::RETRY_MIGRATION;
    Some(match &transfer.kind {
        TransferKind::Migrate { from } => (
            condition::MIGRATION_FAILED,
            "CopyFailed",
            format!(
                "step copy (Job {}): {message}; the tenant runs on its {} database, writable; \
                 set the annotation {retry} to a new value to try again",
                transfer.job,
                describe(&from.mode)
            ),
        ),
        TransferKind::Restore { backup } => (
            condition::RESTORE_FAILED,
            "RestoreFailed",
            format!(
                "step restore of {backup} (Job {}): {message}; the database is as it was, writable; \
                 set the annotation {retry} to a new value to try again",
                transfer.job
            ),
        ),
    })
}

/// The database a verified move left, from the move's success until the
/// reconciler has seen its data follow `deletionPolicy`. An External
/// database is never the operator's to clean up; one the spec names again
/// is in use again.
fn old_database(
    tenant: &Tenant,
    observed: &Observed,
    previous: Option<&CrmTenantStatus>,
) -> Option<crm_crds::DatabaseInUse> {
    if observed.old_database_settled {
        return None;
    }
    let left = match &tenant.transfer {
        Some(transfer) if transfer.state == TransferState::Succeeded => match &transfer.kind {
            TransferKind::Migrate { from } => {
                (!matches!(from.mode, DatabaseTarget::External { .. })).then(|| in_use(from))
            }
            TransferKind::Restore { .. } => None,
        },
        _ => None,
    };
    let pending = previous.and_then(|p| p.old_database.clone());
    // Should a second move end before the first one's old database was
    // settled, a Shared one is kept: the others' objects are pruned anyway.
    let shared = |d: &Option<crm_crds::DatabaseInUse>| {
        d.as_ref()
            .is_some_and(|d| d.mode == crm_crds::DatabaseMode::Shared)
    };
    let old = if shared(&pending) && !shared(&left) {
        pending
    } else {
        left.or(pending)
    };
    old.filter(|old| *old != in_use(&tenant.database))
}

/// The status of a tenant whose spec does not validate: it has no sizing,
/// so status keeps what it had, with Ready false and Stalled saying why.
pub fn invalid(
    previous: Option<&CrmTenantStatus>,
    generation: Option<i64>,
    failure: &Failure,
    now: &Time,
) -> CrmTenantStatus {
    let mut status = previous.cloned().unwrap_or_default();
    let mut conditions = Conditions {
        previous: &status.conditions,
        now,
        generation,
        list: Vec::new(),
    };
    conditions.set(condition::READY, false, &failure.reason, &failure.message);
    conditions.set(condition::STALLED, true, &failure.reason, &failure.message);
    conditions.set(condition::RECONCILING, false, "Stalled", &failure.message);
    let updated = conditions.list;
    for condition in updated {
        match status
            .conditions
            .iter_mut()
            .find(|c| c.type_ == condition.type_)
        {
            Some(slot) => *slot = condition,
            None => status.conditions.push(condition),
        }
    }
    status.phase = Some(Phase::Degraded);
    status.observed_generation = generation;
    status
}

/// Where the tenant's CRM is reached: `https://HOST` when exposed, else
/// its Service's in-cluster URL.
pub fn endpoint(tenant: &Tenant) -> String {
    match &tenant.server.expose {
        Some(expose) => format!("https://{}", expose.host),
        None => format!("http://{}.{}.svc:80", tenant.name, tenant.namespace),
    }
}

fn phase(tenant: &Tenant, observed: &Observed, ready: bool) -> Phase {
    if observed.deleting {
        Phase::Deleting
    } else if observed.error.is_some() {
        Phase::Degraded
    } else if let Some(transfer) = tenant.transfer.as_ref().filter(|t| t.read_only()) {
        match transfer.kind {
            TransferKind::Migrate { .. } => Phase::Migrating,
            TransferKind::Restore { .. } => Phase::Restoring,
        }
    } else if tenant.suspend {
        Phase::Suspended
    } else if ready {
        Phase::Ready
    } else {
        Phase::Provisioning
    }
}

fn ready_reason(phase: Phase) -> &'static str {
    match phase {
        Phase::Ready => "Ready",
        Phase::Suspended => "Suspended",
        Phase::Degraded => "ReconcileFailed",
        Phase::Deleting => "Deleting",
        Phase::Migrating => "Migrating",
        Phase::Restoring => "Restoring",
        Phase::Pending | Phase::Provisioning => "Provisioning",
    }
}

fn ready_message(tenant: &Tenant, observed: &Observed, minimum: i32) -> String {
    if let Some(error) = &observed.error {
        return error.message.clone();
    }
    if let Some(transfer) = tenant.transfer.as_ref().filter(|t| t.read_only()) {
        return match &transfer.kind {
            TransferKind::Migrate { from } => format!(
                "read-only while the data moves from the {} database to the {} one (Job {})",
                describe(&from.mode),
                describe(&tenant.database.mode),
                transfer.job
            ),
            TransferKind::Restore { backup } => {
                format!(
                    "read-only while {backup} is restored (Job {})",
                    transfer.job
                )
            }
        };
    }
    if tenant.suspend {
        return "suspended: scaled to zero, data kept".into();
    }
    let database = describe(&tenant.serving().database.mode);
    format!(
        "{} of at least {minimum} replicas available; {database} {}",
        observed.available_replicas,
        if observed.database.ready {
            "ready"
        } else {
            "not ready"
        }
    )
}

fn describe(mode: &DatabaseTarget) -> &'static str {
    match mode {
        DatabaseTarget::Embedded => "embedded SQLite",
        DatabaseTarget::Managed { .. } => "managed PostgreSQL",
        DatabaseTarget::Shared { .. } => "shared PostgreSQL",
        DatabaseTarget::External { .. } => "external database",
    }
}

/// Builds the condition list, carrying transition times over from `previous`.
struct Conditions<'a> {
    previous: &'a [Condition],
    now: &'a Time,
    generation: Option<i64>,
    list: Vec<Condition>,
}

impl Conditions<'_> {
    fn set(&mut self, type_: &str, status: bool, reason: &str, message: &str) {
        let status = if status { "True" } else { "False" };
        let last_transition_time = self
            .previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map_or_else(|| self.now.clone(), |c| c.last_transition_time.clone());
        self.list.push(Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            observed_generation: self.generation,
            last_transition_time,
        });
    }
}

#[cfg(test)]
mod tests;
