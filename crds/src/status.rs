//! `CrmTenant.status`: what the operator observed and decided.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a tenant.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CrmTenantStatus {
    /// Lifecycle phase: Pending, Provisioning, Ready, Degraded, Suspended,
    /// Migrating, Restoring or Deleting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, DatabaseReady, WorkloadAvailable, SloFeasible, CapacityCapped,
    /// DatabaseConnectionsLimited, and the kstatus Reconciling and Stalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The capacity model's figures for the current spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sizing: Option<Sizing>,

    /// In-cluster URL of the CRM API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,

    /// Name of the Secret holding the CRM's API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,

    /// Replicas of the CRM server that are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,

    /// Replicas of the CRM server wanted now: the Deployment's
    /// `spec.replicas`, which the autoscaler sets while it runs; before the
    /// Deployment exists, the count it starts with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,

    /// Ready replicas over the replicas wanted now (`readyReplicas/desiredReplicas`),
    /// as a Deployment's READY column shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,

    /// The replica range: `min..max` of the autoscaler, or the fixed count
    /// without autoscaling (zero while suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_range: Option<String>,

    /// When the database credentials were last rotated (on the database
    /// server, then in the Secret), after a
    /// `crm.tenancy.dev/rotate-database-credentials` request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_credentials_rotated_at: Option<Time>,

    /// The database mode the tenant runs on. While `spec.database.mode` is
    /// absent the tenant keeps this mode, whatever its tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_mode: Option<crate::DatabaseMode>,

    /// The database the CRM server uses: during a move to another
    /// database (phase Migrating), the one moved from, until the copy is
    /// verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseInUse>,

    /// The database the data moved away from, until its data has followed
    /// `deletionPolicy`: once every replica runs on the new database, a
    /// Shared role and database are dropped (Delete) or kept with their
    /// login disabled (Retain), and an Event says which.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_database: Option<DatabaseInUse>,

    /// The backup last restored into the tenant's database
    /// (`crm.tenancy.dev/restore`), once verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<String>,

    /// Scheduled backups: the last success and the last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<crate::BackupStatus>,

    /// The load, request cost and latency last measured in Prometheus (when
    /// the operator runs with `--prometheus-url`), beside the model's
    /// prediction for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<crate::autopilot::ObservedLoad>,

    /// The figures autopilot sizes the tenant from, while it is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autopilot: Option<crate::autopilot::AutopilotStatus>,
}

/// Which database a tenant's data is in; never a secret value.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseInUse {
    /// The mode.
    pub mode: crate::DatabaseMode,
    /// Shared: the shared server's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// External: the Secret and key holding the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<crate::SecretKeyRef>,
}

/// Lifecycle phase of a tenant.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Accepted, nothing created yet.
    Pending,
    /// Objects created, waiting for the database or the replicas.
    Provisioning,
    /// Serving with at least the minimum replicas and a ready database.
    Ready,
    /// Reconcile failed or the workload lost availability; see the conditions.
    Degraded,
    /// Scaled to zero on request; data kept.
    Suspended,
    /// Being deleted; waiting for cleanup.
    Deleting,
    /// Read-only while the data moves to the database the spec names.
    Migrating,
    /// Read-only while a backup is restored into the database.
    Restoring,
}

/// The capacity model's figures (see the operator's MODEL.md).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Sizing {
    /// Peak request rate (req/s), given or derived from active users.
    pub peak_requests_per_second: f64,
    /// Average request rate (req/s).
    pub average_requests_per_second: f64,
    /// Requests per second one replica serves at 100 % CPU (μ).
    pub per_replica_throughput: f64,
    /// Replicas the peak needs (N_peak); the Deployment's count without autoscaling.
    pub replicas: i32,
    /// Autoscaler minimum (N_base), or the replica count without autoscaling.
    pub min_replicas: i32,
    /// Autoscaler maximum, or the replica count without autoscaling.
    pub max_replicas: i32,
    /// Autoscaler target CPU utilisation, in percent.
    pub target_cpu_utilization: i32,
    /// Predicted p95 latency at peak (ms); absent when the replicas cannot keep up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_p95_latency_ms: Option<f64>,
    /// Predicted CPU utilisation at peak (0–1).
    pub predicted_utilization: f64,
    /// Requests per second the peak replicas carry at the target utilisation.
    pub capacity_requests_per_second: f64,
    /// Requests in flight per replica at peak (Little's law); absent when the
    /// replicas cannot keep up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight_per_replica: Option<f64>,
    /// Database connections in each replica's pool.
    pub db_pool_size: i32,
    /// Whether some replica count meets the latency target.
    pub slo_feasible: bool,
    /// CPU cores one replica needs before any count can meet the target; set
    /// only when the target is infeasible at the current CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cpu_for_slo: Option<f64>,
}
