//! What was applied and observed → `CrmTenant.status`. Pure: the reconciler
//! patches the result only when it differs from the status already there.
//!
//! Conditions keep their `lastTransitionTime` unless their status flips, so an
//! unchanged tenant produces an identical status and no write.

use crm_crds::{CrmTenantStatus, Phase, condition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::validate::{DatabaseTarget, Tenant};

/// What the reconciler saw of the tenant's running objects.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// Ready replicas of the CRM Deployment.
    pub ready_replicas: i32,
    /// Available replicas of the CRM Deployment.
    pub available_replicas: i32,
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
    let ready = workload && (tenant.suspend || observed.database.ready) && observed.error.is_none();
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

    let desired_replicas = if tenant.suspend {
        0
    } else {
        tenant.capacity.sizing.replicas
    };
    CrmTenantStatus {
        phase: Some(phase),
        observed_generation: tenant.generation,
        conditions: conditions.list,
        sizing: Some(tenant.capacity.sizing.clone()),
        endpoint: Some(endpoint(tenant)),
        credentials_secret: Some(format!("{}-api", tenant.name)),
        ready_replicas: Some(observed.ready_replicas),
        ready: Some(format!("{}/{desired_replicas}", observed.ready_replicas)),
        database_credentials_rotated_at: observed
            .credentials_rotated_at
            .clone()
            .or_else(|| previous.and_then(|p| p.database_credentials_rotated_at.clone())),
    }
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

/// The in-cluster URL of the tenant's CRM API.
pub fn endpoint(tenant: &Tenant) -> String {
    format!("http://{}.{}.svc:80", tenant.name, tenant.namespace)
}

fn phase(tenant: &Tenant, observed: &Observed, ready: bool) -> Phase {
    if observed.deleting {
        Phase::Deleting
    } else if observed.error.is_some() {
        Phase::Degraded
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
        Phase::Pending | Phase::Provisioning => "Provisioning",
    }
}

fn ready_message(tenant: &Tenant, observed: &Observed, minimum: i32) -> String {
    if let Some(error) = &observed.error {
        return error.message.clone();
    }
    if tenant.suspend {
        return "suspended: scaled to zero, data kept".into();
    }
    let database = match &tenant.database.mode {
        DatabaseTarget::Embedded => "embedded SQLite",
        DatabaseTarget::Managed { .. } => "managed PostgreSQL",
        DatabaseTarget::Shared { .. } => "shared PostgreSQL",
        DatabaseTarget::External { .. } => "external database",
    };
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
mod tests {
    use crm_crds::CrmTenant;
    use serde_json::json;

    use super::*;

    fn tenant(spec: serde_json::Value) -> Tenant {
        let mut t = CrmTenant::new("acme", serde_json::from_value(spec).expect("spec"));
        t.metadata.namespace = Some("team-a".into());
        t.metadata.generation = Some(3);
        crate::validate::validate(&t).expect("valid")
    }

    fn growth() -> Tenant {
        tenant(
            json!({"tier": "Growth", "load": {"peakRequestsPerSecond": 300},
                "performance": {"requestCpuMillis": 2}, "database": {"mode": "Managed"}}),
        )
    }

    fn at(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(1_800_000_000 + seconds).expect("timestamp"))
    }

    fn healthy() -> Observed {
        Observed {
            ready_replicas: 2,
            available_replicas: 2,
            database: DatabaseState {
                ready: true,
                reason: "Ready".into(),
                message: "ok".into(),
            },
            ..Observed::default()
        }
    }

    fn condition<'a>(status: &'a CrmTenantStatus, type_: &str) -> &'a Condition {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("{type_} missing"))
    }

    #[test]
    fn ready_when_minimum_replicas_are_available_and_the_database_is_ready() {
        let s = status(&growth(), &healthy(), None, &at(0));
        assert_eq!(s.phase, Some(Phase::Ready));
        assert_eq!(condition(&s, condition::READY).status, "True");
        assert_eq!(condition(&s, condition::RECONCILING).status, "False");
        assert_eq!(condition(&s, condition::STALLED).status, "False");
        assert_eq!(s.ready.as_deref(), Some("2/2"));
        assert_eq!(s.endpoint.as_deref(), Some("http://acme.team-a.svc:80"));
        assert_eq!(s.credentials_secret.as_deref(), Some("acme-api"));
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.sizing.as_ref().map(|s| s.max_replicas), Some(3));
    }

    #[test]
    fn every_condition_of_the_design_and_kstatus_is_reported() {
        let s = status(&growth(), &healthy(), None, &at(0));
        for type_ in [
            condition::READY,
            condition::DATABASE_READY,
            condition::WORKLOAD_AVAILABLE,
            condition::SLO_FEASIBLE,
            condition::CAPACITY_CAPPED,
            condition::DATABASE_CONNECTIONS_LIMITED,
            condition::RECONCILING,
            condition::STALLED,
        ] {
            condition(&s, type_);
        }
    }

    #[test]
    fn too_few_replicas_is_provisioning_and_reconciling() {
        let observed = Observed {
            available_replicas: 1,
            ready_replicas: 1,
            ..healthy()
        };
        let s = status(&growth(), &observed, None, &at(0));
        assert_eq!(s.phase, Some(Phase::Provisioning));
        assert_eq!(condition(&s, condition::WORKLOAD_AVAILABLE).status, "False");
        assert_eq!(condition(&s, condition::RECONCILING).status, "True");
    }

    #[test]
    fn an_unchanged_tenant_produces_an_identical_status_later() {
        let first = status(&growth(), &healthy(), None, &at(0));
        let second = status(&growth(), &healthy(), Some(&first), &at(600));
        assert_eq!(first, second, "no status churn, so no write");
    }

    #[test]
    fn transition_time_moves_only_when_a_condition_flips() {
        let first = status(&growth(), &healthy(), None, &at(0));
        let degraded = Observed {
            available_replicas: 0,
            ..healthy()
        };
        let second = status(&growth(), &degraded, Some(&first), &at(60));
        assert_eq!(
            condition(&second, condition::READY).last_transition_time,
            at(60)
        );
        assert_eq!(
            condition(&second, condition::SLO_FEASIBLE).last_transition_time,
            at(0)
        );
    }

    #[test]
    fn a_permanent_error_is_degraded_and_stalled_with_its_message() {
        let observed = Observed {
            error: Some(Failure {
                reason: "ApplyFailed".into(),
                message: "applying Deployment acme: invalid".into(),
                permanent: true,
            }),
            ..healthy()
        };
        let s = status(&growth(), &observed, None, &at(0));
        assert_eq!(s.phase, Some(Phase::Degraded));
        let stalled = condition(&s, condition::STALLED);
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", "ApplyFailed")
        );
        assert!(condition(&s, condition::READY).message.contains("invalid"));
    }

    #[test]
    fn a_transient_error_is_degraded_but_not_stalled() {
        let observed = Observed {
            error: Some(Failure {
                reason: "ApplyFailed".into(),
                message: "503".into(),
                permanent: false,
            }),
            ..healthy()
        };
        let s = status(&growth(), &observed, None, &at(0));
        assert_eq!(s.phase, Some(Phase::Degraded));
        assert_eq!(condition(&s, condition::STALLED).status, "False");
    }

    #[test]
    fn suspended_tenant_is_suspended_with_zero_desired_replicas() {
        let t = tenant(json!({"load": {"activeUsers": 10}, "suspend": true}));
        let s = status(&t, &Observed::default(), None, &at(0));
        assert_eq!(s.phase, Some(Phase::Suspended));
        assert_eq!(s.ready.as_deref(), Some("0/0"));
    }

    #[test]
    fn the_last_rotation_time_is_kept_until_the_next_rotation() {
        let rotated = Observed {
            credentials_rotated_at: Some(at(10)),
            ..healthy()
        };
        let first = status(&growth(), &rotated, None, &at(10));
        assert_eq!(first.database_credentials_rotated_at, Some(at(10)));
        let later = status(&growth(), &healthy(), Some(&first), &at(600));
        assert_eq!(later.database_credentials_rotated_at, Some(at(10)));
    }

    #[test]
    fn an_invalid_spec_keeps_the_last_status_and_says_why_it_stalled() {
        let healthy = status(&growth(), &healthy(), None, &at(0));
        let failure = Failure {
            reason: "InvalidSpec".into(),
            message: "spec.tier: bad".into(),
            permanent: true,
        };
        let stalled = invalid(Some(&healthy), Some(2), &failure, &at(5));
        assert_eq!(stalled.phase, Some(Phase::Degraded));
        assert_eq!(stalled.observed_generation, Some(2));
        assert_eq!(stalled.sizing, healthy.sizing);
        let ready = condition(&stalled, condition::READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "InvalidSpec")
        );
        assert_eq!(ready.last_transition_time, at(5));
        assert_eq!(condition(&stalled, condition::STALLED).status, "True");
        assert_eq!(stalled.conditions.len(), healthy.conditions.len());
        let again = invalid(Some(&stalled), Some(2), &failure, &at(9));
        assert_eq!(again, stalled, "nothing moves on a second failure");
    }

    #[test]
    fn paused_tenant_says_so_in_a_condition() {
        let observed = Observed {
            paused: true,
            ..healthy()
        };
        let s = status(&growth(), &observed, None, &at(0));
        assert_eq!(
            condition(&s, condition::RECONCILIATION_PAUSED).status,
            "True"
        );
    }
}
