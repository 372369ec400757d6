//! The `CrmTenant` API (`crm.tenancy.dev/v1alpha1`), imported by every other crate.
//!
//! ```text
//! CrmTenant.spec ──► operator (model → validate → build → apply) ──► CrmTenant.status
//! ```
//!
//! The CRD YAML generated from these types is checked in beside them as
//! `crmtenant.yaml`; a test fails when the two drift apart.
#![forbid(unsafe_code)]

mod autopilot;
mod backup;
mod expose;
mod quantity;
mod spec;
mod status;

pub use autopilot::{AutopilotSpec, AutopilotStatus, ObservedLoad};
pub use backup::{BackupSpec, BackupStatus};
pub use expose::{
    ExposeSpec, GatewayExposeSpec, IngressExposeSpec, IssuerKind, IssuerRef, TlsSpec,
};
pub use quantity::{Cpu, CpuError};
pub use spec::{
    AutoscalingSpec, CrmTenant, CrmTenantSpec, DatabaseMode, DatabaseSpec, DeletionPolicy, EnvVar,
    ExternalDatabaseSpec, HostSpec, LoadSpec, ManagedDatabaseSpec, Module, PerformanceSpec,
    ReplicasSpec, ResourcesSpec, SecretKeyRef, ServerSpec, SharedDatabaseSpec, Tier, defaults,
};
pub use status::{CrmTenantStatus, DatabaseInUse, Phase, Sizing};

use kube::CustomResourceExt;

/// API group of the resource.
pub const GROUP: &str = "crm.tenancy.dev";
/// `apiVersion` of the resource.
pub const API_VERSION: &str = "crm.tenancy.dev/v1alpha1";
/// `kind` of the resource.
pub const KIND: &str = "CrmTenant";

/// Condition types the operator sets on a tenant.
pub mod condition {
    /// The tenant serves: minimum replicas available and database ready.
    pub const READY: &str = "Ready";
    /// The database answers with the tenant's credentials.
    pub const DATABASE_READY: &str = "DatabaseReady";
    /// The Deployment has its minimum replicas available.
    pub const WORKLOAD_AVAILABLE: &str = "WorkloadAvailable";
    /// Some replica count meets the latency target.
    pub const SLO_FEASIBLE: &str = "SloFeasible";
    /// replicas.max (or the Embedded database) holds the tenant below what the load needs.
    pub const CAPACITY_CAPPED: &str = "CapacityCapped";
    /// The database connection limit lowered the autoscaler maximum.
    pub const DATABASE_CONNECTIONS_LIMITED: &str = "DatabaseConnectionsLimited";
    /// kstatus: the operator is still converging the tenant.
    pub const RECONCILING: &str = "Reconciling";
    /// kstatus: the operator cannot make progress without a change.
    pub const STALLED: &str = "Stalled";
    /// Writes to the tenant are paused by annotation.
    pub const RECONCILIATION_PAUSED: &str = "ReconciliationPaused";
    /// The last move of the data to a new database failed; the tenant runs
    /// on the old one.
    pub const MIGRATION_FAILED: &str = "MigrationFailed";
    /// The last restore of a backup failed; the database is as it was.
    pub const RESTORE_FAILED: &str = "RestoreFailed";
    /// Autopilot sizes the tenant from measurements (Calibrated), or cannot
    /// (InsufficientData, MetricsUnavailable).
    pub const AUTOPILOT: &str = "Autopilot";
}

/// Annotations users set on a tenant.
pub mod annotation {
    /// `paused` stops every write to the tenant.
    pub const RECONCILE: &str = "crm.tenancy.dev/reconcile";
    /// Any new value rotates the CRM API key.
    pub const ROTATE_API_KEY: &str = "crm.tenancy.dev/rotate-api-key";
    /// Any new value rotates the database credentials.
    pub const ROTATE_DATABASE_CREDENTIALS: &str = "crm.tenancy.dev/rotate-database-credentials";
    /// Releases the Shared-database finalizer without cleanup.
    pub const SKIP_DATABASE_CLEANUP: &str = "crm.tenancy.dev/skip-database-cleanup";
    /// Any new value runs a failed move of the data to a new database again.
    pub const RETRY_MIGRATION: &str = "crm.tenancy.dev/retry-migration";
    /// The name of a backup (`crm-20261130T101500.000Z`) to restore into the
    /// tenant's database.
    pub const RESTORE: &str = "crm.tenancy.dev/restore";
}

/// The CRD as YAML, exactly as checked in under `crds/`.
pub fn crd_yaml() -> String {
    let crd = CrmTenant::crd();
    let yaml = serde_saphyr::to_string(&crd).expect("a CRD always serialises to YAML");
    format!("---\n{yaml}")
}

/// The path of the checked-in CRD YAML, relative to the workspace root.
pub const CRD_PATH: &str = "crds/crmtenant.yaml";
