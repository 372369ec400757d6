//! `CrmTenant.spec`: what a platform team asks for one customer.
//!
//! Every doc comment here becomes `kubectl explain` text. Bounds, enums and
//! defaults live in the OpenAPI schema; rules that cross fields are CEL
//! (`x-kubernetes-validations`), so the API server rejects a bad spec on apply.
//! Defaults sit only on scalars: objects and lists are optional and resolved by
//! the operator, so GitOps tools never see defaulted structure as drift.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::expose::ExposeSpec;
use crate::quantity::Cpu;
use crate::status::CrmTenantStatus;

/// A CRM for one customer: the operator sizes it from the expected load and
/// latency target, and runs its server, database, credentials, autoscaler,
/// disruption budget and network policy.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "crm.tenancy.dev",
    version = "v1alpha1",
    kind = "CrmTenant",
    plural = "crmtenants",
    shortname = "crmt",
    category = "crm",
    namespaced,
    cel,
    status = "CrmTenantStatus",
    doc = "A CRM for one customer, sized from its expected load and latency target.",
    validation = Rule::new("size(self.metadata.name) <= 54 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name must be a DNS label of at most 54 characters starting with a letter, so that every derived object name stays valid"),
    printcolumn(name = "Tier", type_ = "string", json_path = ".spec.tier"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.ready", description = "ready replicas over those wanted now (the Deployment's spec.replicas, which the autoscaler sets)"),
    printcolumn(name = "Replicas", type_ = "string", json_path = ".status.replicaRange", description = "the autoscaler's min..max, or the fixed replica count", priority = 1),
    printcolumn(name = "Peak", type_ = "integer", json_path = ".status.sizing.replicas", description = "replicas the capacity model sizes for the peak load", priority = 1),
    printcolumn(name = "Capacity", type_ = "number", json_path = ".status.sizing.capacityRequestsPerSecond", description = "requests per second at the target utilisation"),
    printcolumn(name = "P95", type_ = "number", json_path = ".status.sizing.predictedP95LatencyMs", description = "predicted p95 latency at peak, in milliseconds"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new(
    "(has(self.database) && has(self.database.mode) ? self.database.mode != 'Embedded' : (has(self.tier) && self.tier != 'Starter')) || \
     ((!has(self.autoscaling) || !has(self.autoscaling.enabled) || !self.autoscaling.enabled) && \
      (!has(self.replicas) || !has(self.replicas.min) || self.replicas.min <= 1))"
).message("the Embedded database runs exactly one replica: autoscaling.enabled must not be true and replicas.min must not exceed 1").field_path(".database.mode"))]
pub struct CrmTenantSpec {
    /// Service tier. Sets the high-availability floor (Starter 1, Growth 2,
    /// Enterprise 3 replicas) and the default p95 latency target (500, 300, 200 ms).
    #[serde(default)]
    pub tier: Tier,

    /// Expected load. Give the peak request rate, or the number of active users
    /// (the rate is then derived from requests per user and the peak factor).
    pub load: LoadSpec,

    /// Latency target and the cost of one request, which size the replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance: Option<PerformanceSpec>,

    /// CPU and memory of one CRM server replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesSpec>,

    /// Bounds on the replica count, applied after the capacity model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<ReplicasSpec>,

    /// Horizontal pod autoscaling between the model's base and peak replica counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,

    /// Where the tenant's data lives. The mode defaults to the tier's:
    /// Embedded for Starter, Managed for Growth and Enterprise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSpec>,

    /// Scheduled backups of the tenant's data onto a volume of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<crate::BackupSpec>,

    /// The CRM server: image, enabled modules, extra environment, allowed clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerSpec>,

    /// Scale the tenant to zero and remove its autoscaler, keeping its data.
    /// Setting it back to false restores everything.
    #[serde(default)]
    pub suspend: bool,

    /// Size from the load, request cost and service-time variability
    /// measured in Prometheus instead of the figures above (off unless
    /// enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autopilot: Option<crate::autopilot::AutopilotSpec>,
}

/// Service tier of a tenant.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Tier {
    /// One replica at least; p95 target 500 ms.
    #[default]
    Starter,
    /// Two replicas at least; p95 target 300 ms.
    Growth,
    /// Three replicas at least, spread over zones and nodes; p95 target 200 ms.
    Enterprise,
}

/// Expected load of the tenant.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.peakRequestsPerSecond) || has(self.activeUsers)")
    .message("set load.peakRequestsPerSecond or load.activeUsers (or both)"))]
pub struct LoadSpec {
    /// Peak requests per second the tenant must serve. When given, the average
    /// rate is this divided by peakFactor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minimum" = 0, "exclusiveMinimum" = true))]
    pub peak_requests_per_second: Option<f64>,

    /// Users active at the same time. Used to derive the request rate when
    /// peakRequestsPerSecond is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_users: Option<i64>,

    /// Requests each active user sends per minute on average.
    #[serde(default = "defaults::requests_per_user_per_minute")]
    #[schemars(extend("minimum" = 0, "exclusiveMinimum" = true))]
    pub requests_per_user_per_minute: f64,

    /// Ratio of the peak to the average request rate.
    #[serde(default = "defaults::peak_factor")]
    #[schemars(range(min = 1.0))]
    pub peak_factor: f64,
}

/// Latency target and request cost.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PerformanceSpec {
    /// CPU time one request of the standard mix costs, in milliseconds. The
    /// default, 3.9, is the figure measured by the crm-server benchmark on
    /// an idle machine (bench/README.md, 2026-11-30): CPU-seconds per
    /// request of the server process on one core, PostgreSQL, 100,000
    /// seeded contacts, at 0.4 of a core of load. It grows with the data:
    /// reports and CSV exports scan whole tables (SQLite, with the database
    /// in-process: 9.3).
    #[serde(default = "defaults::request_cpu_millis")]
    #[schemars(extend("minimum" = 0, "exclusiveMinimum" = true))]
    pub request_cpu_millis: f64,

    /// Target p95 latency in milliseconds. Defaults to the tier's target
    /// (Starter 500, Growth 300, Enterprise 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minimum" = 0, "exclusiveMinimum" = true))]
    pub latency_target_ms: Option<f64>,

    /// Fixed latency every request pays outside the replica's CPU queue
    /// (network, database round trips), in milliseconds.
    #[serde(default = "defaults::base_latency_ms")]
    #[schemars(range(min = 0.0))]
    pub base_latency_ms: f64,

    /// CPU utilisation each replica is sized for, and the autoscaler's target.
    /// Strictly between 0 and 1.
    #[serde(default = "defaults::target_utilization")]
    #[x_kube(validation = Rule::new("self > 0.0 && self < 1.0")
        .message("targetUtilization must be strictly between 0 and 1"))]
    pub target_utilization: f64,

    /// How variable one request's CPU time is: the squared coefficient of
    /// variation of the service time (variance over the squared mean). 1 is
    /// the exponential service of an M/M/1 queue; 0 is every request costing
    /// the same; a mix of cheap reads and heavy reports or exports is above
    /// one. The default, 7.8, is the standard mix's, measured with the
    /// request cost above. Higher values predict a higher p95 and need more
    /// replicas for the same target (M/G/1, Pollaczek–Khinchine; see
    /// docs/model.md). status.observed.serviceTimeScv estimates it from the
    /// latency histogram.
    #[serde(default = "defaults::service_time_scv")]
    #[schemars(range(min = 0.0, max = 25.0))]
    pub service_time_scv: f64,
}

/// CPU and memory of one replica.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("!has(self.containerRatio) || has(self.host)")
    .message("resources.containerRatio needs resources.host.cpu"))]
pub struct ResourcesSpec {
    /// CPU of one replica (its request and limit), in cores (`0.5`) or as a
    /// Kubernetes quantity (`"500m"`). When absent, it is host.cpu ×
    /// containerRatio, or 0.5 cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,

    /// Memory of one replica, as a Kubernetes quantity. Defaults to 256Mi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"))]
    pub memory: Option<String>,

    /// The node a replica is carved from, when CPU is given as a share of a host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostSpec>,

    /// Share of host.cpu given to one replica, in (0, 1]. Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minimum" = 0, "exclusiveMinimum" = true, "maximum" = 1))]
    pub container_ratio: Option<f64>,
}

/// A node's CPU.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostSpec {
    /// CPU of the node, in cores (`4`) or as a Kubernetes quantity (`"4000m"`).
    pub cpu: Cpu,
}

/// Bounds on the replica count.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("!has(self.min) || !has(self.max) || self.min <= self.max")
    .message("replicas.min must not exceed replicas.max"))]
pub struct ReplicasSpec {
    /// Never run fewer replicas than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min: Option<i32>,

    /// Never run more replicas than this, even when the load needs more (the
    /// tenant then reports CapacityCapped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max: Option<i32>,
}

/// Horizontal pod autoscaling.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutoscalingSpec {
    /// Run a HorizontalPodAutoscaler. Defaults to true, and to false for the
    /// Embedded database, which runs exactly one replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,

    /// Extra room above the peak replica count for the autoscaler's maximum,
    /// as a fraction (0.25 = 25 % more).
    #[serde(default = "defaults::headroom")]
    #[schemars(range(min = 0.0))]
    pub headroom: f64,
}

/// The tenant's database.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("!has(self.mode) || self.mode != 'Shared' || has(self.shared)")
    .message("database.mode Shared needs database.shared.server").field_path(".shared"))]
#[x_kube(validation = Rule::new("!has(self.mode) || self.mode != 'External' || has(self.external)")
    .message("database.mode External needs database.external.secretRef").field_path(".external"))]
pub struct DatabaseSpec {
    /// Embedded: SQLite on a volume, one replica. Managed: a PostgreSQL
    /// StatefulSet per tenant. Shared: a role and database on a shared
    /// PostgreSQL server the operator administers. External: a connection URL
    /// from a Secret you provide. When absent, a new tenant gets its tier's
    /// mode (Embedded for Starter, Managed for Growth and Enterprise) and a
    /// running tenant keeps the mode it has (`status.databaseMode`), so a
    /// tier change never moves data on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<DatabaseMode>,

    /// What a deleted tenant leaves behind: Retain keeps the data, Delete removes it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Connections the database accepts from this tenant; limits the pool
    /// size times the replica count.
    #[serde(default = "defaults::max_connections")]
    #[schemars(range(min = 1))]
    pub max_connections: i32,

    /// Size of the data volume (Embedded and Managed), as a Kubernetes quantity.
    #[serde(default = "defaults::storage")]
    #[schemars(regex(pattern = r"^[0-9]+(Ki|Mi|Gi|Ti)$"))]
    pub storage: String,

    /// StorageClass of the data volume; the cluster default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,

    /// Settings of the Managed mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedDatabaseSpec>,

    /// Settings of the Shared mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<SharedDatabaseSpec>,

    /// Settings of the External mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalDatabaseSpec>,
}

impl Default for DatabaseSpec {
    fn default() -> Self {
        Self {
            mode: None,
            deletion_policy: DeletionPolicy::default(),
            max_connections: defaults::max_connections(),
            storage: defaults::storage(),
            storage_class_name: None,
            managed: None,
            shared: None,
            external: None,
        }
    }
}

/// Where a tenant's data lives. Embedded: SQLite on a volume, one replica.
/// Managed: a PostgreSQL StatefulSet per tenant. Shared: a role and database
/// on a shared PostgreSQL server the operator administers. External: a
/// connection URL from a Secret you provide. When spec.database.mode is
/// absent, a new tenant gets its tier's mode (Embedded for Starter, Managed
/// for Growth and Enterprise) and a running tenant keeps the one it runs on
/// (status.databaseMode), so a tier change never moves data on its own.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DatabaseMode {
    /// SQLite on a PersistentVolumeClaim; exactly one replica.
    Embedded,
    /// A PostgreSQL StatefulSet, volume and Service for this tenant alone.
    Managed,
    /// A role and database on a shared PostgreSQL server.
    Shared,
    /// A connection URL from a Secret you provide.
    External,
}

/// What a deleted tenant leaves behind.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DeletionPolicy {
    /// Keep the data: volumes stay, a shared role keeps its database but loses its login.
    #[default]
    Retain,
    /// Remove the data with the tenant.
    Delete,
}

/// Settings of a per-tenant PostgreSQL server.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManagedDatabaseSpec {
    /// PostgreSQL image.
    #[serde(default = "defaults::postgres_image")]
    #[schemars(length(min = 1))]
    pub image: String,

    /// CPU of the PostgreSQL pod, in cores (`0.5`) or as a Kubernetes
    /// quantity (`"500m"`).
    #[serde(default = "defaults::postgres_cpu")]
    pub cpu: Cpu,

    /// Memory of the PostgreSQL pod, as a Kubernetes quantity.
    #[serde(default = "defaults::postgres_memory")]
    #[schemars(regex(pattern = r"^[0-9]+(Ki|Mi|Gi|Ti)$"))]
    pub memory: String,
}

impl Default for ManagedDatabaseSpec {
    fn default() -> Self {
        Self {
            image: defaults::postgres_image(),
            cpu: defaults::postgres_cpu(),
            memory: defaults::postgres_memory(),
        }
    }
}

/// Settings of the Shared mode.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SharedDatabaseSpec {
    /// Name of the shared PostgreSQL server registered with the operator.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub server: String,
}

/// Settings of the External mode.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalDatabaseSpec {
    /// The Secret, in the tenant's namespace, holding the connection URL.
    pub secret_ref: SecretKeyRef,
}

/// A key of a Secret in the tenant's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Key holding the connection URL.
    #[serde(default = "defaults::url_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// The CRM server.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerSpec {
    /// crm-server image; the operator's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,

    /// Modules to enable; all of them when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.all(m, self.exists_one(n, n == m))")
        .message("server.modules lists a module twice"))]
    #[schemars(length(max = 5))]
    pub modules: Option<Vec<Module>>,

    /// Extra environment variables of the server. Names the operator sets
    /// itself (CRM_*, DATABASE_URL) are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub env: Option<Vec<EnvVar>>,

    /// Namespaces whose pods may call the CRM, besides the tenant's own pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub allowed_namespaces: Option<Vec<String>>,

    /// A hostname outside the cluster, served over HTTPS through an Ingress
    /// or a Gateway API HTTPRoute. Absent: the CRM is reached only inside
    /// the cluster, through its Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose: Option<ExposeSpec>,
}

/// A module of the CRM.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum Module {
    /// Companies and contacts.
    Customers,
    /// Deals through pipeline stages, and orders.
    Sales,
    /// Service tickets, feedback and ratings.
    Service,
    /// Campaigns and their members.
    Marketing,
    /// Pipeline, revenue, ticket and campaign reports.
    Reports,
}

impl Module {
    /// Every module, in a stable order.
    pub const ALL: [Module; 5] = [
        Module::Customers,
        Module::Sales,
        Module::Service,
        Module::Marketing,
        Module::Reports,
    ];
}

/// An environment variable.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("!self.name.startsWith('CRM_') && self.name != 'DATABASE_URL'")
    .message("CRM_* and DATABASE_URL are set by the operator").field_path(".name"))]
pub struct EnvVar {
    /// Variable name.
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$")
    )]
    pub name: String,
    /// Variable value.
    #[serde(default)]
    #[schemars(length(max = 4096))]
    pub value: String,
}

/// Scalar defaults, shared by serde and the schema.
pub mod defaults {
    /// Requests per active user per minute.
    pub fn requests_per_user_per_minute() -> f64 {
        6.0
    }
    /// Peak-to-average ratio.
    pub fn peak_factor() -> f64 {
        3.0
    }
    /// CPU milliseconds per request of the standard mix on PostgreSQL with
    /// 100,000 contacts, as calibrated by bench/calibrate on an idle
    /// machine (bench/README.md, 2026-11-30).
    pub fn request_cpu_millis() -> f64 {
        3.9
    }
    /// Fixed latency outside the CPU queue.
    pub fn base_latency_ms() -> f64 {
        5.0
    }
    /// Target CPU utilisation.
    pub fn target_utilization() -> f64 {
        0.7
    }
    /// Squared coefficient of variation of the standard mix's service
    /// time, from the same calibration (1 would be M/M/1's exponential).
    pub fn service_time_scv() -> f64 {
        7.8
    }
    /// Autoscaler headroom above the peak.
    pub fn headroom() -> f64 {
        0.25
    }
    /// Connections the database accepts from the tenant.
    pub fn max_connections() -> i32 {
        100
    }
    /// Data volume size.
    pub fn storage() -> String {
        "1Gi".into()
    }
    /// Managed PostgreSQL image.
    pub fn postgres_image() -> String {
        "postgres:17-alpine".into()
    }
    /// Managed PostgreSQL CPU.
    pub fn postgres_cpu() -> crate::Cpu {
        crate::Cpu::from(0.5)
    }
    /// Managed PostgreSQL memory.
    pub fn postgres_memory() -> String {
        "512Mi".into()
    }
    /// Secret key of an external connection URL.
    pub fn url_key() -> String {
        "url".into()
    }
}
