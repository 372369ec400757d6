//! Spec → [`Tenant`]: a validated tenant carrying its sizing. Pure: no I/O.
//!
//! Everything after this stage reads the [`Tenant`], never the raw spec: defaults
//! are resolved here once, and the capacity model has run.

use crm_crds::{
    CrmTenant, CrmTenantSpec, DatabaseMode, DatabaseSpec, DeletionPolicy, EnvVar, ExposeSpec,
    Module, SecretKeyRef, Tier,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::Resource;

use crate::autopilot;
use crate::model::{self, Capacity};

mod cron;
mod transfer;

pub use transfer::{Transfer, TransferKind, TransferState, fit, in_use, is_backup_name};

/// The image a tenant runs when `spec.server.image` is absent.
pub const DEFAULT_SERVER_IMAGE: &str = "crm-tenancy/crm-server:0.1.0";
/// Memory of one replica when `spec.resources.memory` is absent.
pub const DEFAULT_MEMORY: &str = "256Mi";
/// Where the monitoring stack runs unless the operator is told otherwise
/// (kube-prometheus' namespace).
pub const DEFAULT_MONITORING_NAMESPACE: &str = "monitoring";

/// What the operator's own settings add to every tenant.
#[derive(Clone, Debug, PartialEq)]
pub struct Platform {
    /// The image a tenant runs when its spec names none.
    pub default_image: String,
    /// Namespaces whose pods may scrape the tenants' metrics port; none
    /// when absent.
    pub monitoring_namespaces: Option<LabelSelector>,
}

impl Default for Platform {
    fn default() -> Self {
        Self {
            default_image: DEFAULT_SERVER_IMAGE.to_owned(),
            monitoring_namespaces: Some(crate::labels::namespace_named(
                DEFAULT_MONITORING_NAMESPACE,
            )),
        }
    }
}

/// A tenant whose spec passed validation, with every default resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Tenant {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// Owner reference every child carries.
    pub owner: OwnerReference,
    /// `metadata.generation`, when the API server assigned one.
    pub generation: Option<i64>,
    /// Service tier.
    pub tier: Tier,
    /// Scaled to zero on request.
    pub suspend: bool,
    /// The capacity model's answer.
    pub capacity: Capacity,
    /// The model's inputs, learned figures (if any) in place.
    pub inputs: model::Inputs,
    /// `spec.autopilot`, resolved.
    pub autopilot: autopilot::Settings,
    /// The figures autopilot sized the tenant from, while enabled.
    pub learned: Option<crm_crds::AutopilotStatus>,
    /// A HorizontalPodAutoscaler manages the replica count.
    pub autoscaling: bool,
    /// CPU cores of one replica (request and limit).
    pub cpu: f64,
    /// Memory of one replica, a Kubernetes quantity.
    pub memory: String,
    /// The database.
    pub database: Database,
    /// The CRM server.
    pub server: Server,
    /// Namespaces whose pods may scrape the metrics port.
    pub monitoring_namespaces: Option<LabelSelector>,
    /// Scheduled backups.
    pub backup: Option<Backup>,
    /// A move of the data to the spec's database, or a restore, to run first.
    pub transfer: Option<Transfer>,
}

/// Scheduled backups, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Backup {
    /// Cron schedule, checked.
    pub schedule: String,
    /// Backups kept.
    pub retain: u32,
    /// Size of the backup volume.
    pub storage: String,
}

impl Tenant {
    /// The tenant as its pods run now: on the database in use, which during
    /// a move is the old one (one replica, no autoscaler, when that is
    /// Embedded).
    pub fn serving(&self) -> std::borrow::Cow<'_, Tenant> {
        let Some(transfer) = &self.transfer else {
            return std::borrow::Cow::Borrowed(self);
        };
        let serving = transfer.serving(&self.database);
        if serving == &self.database {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut tenant = self.clone();
        tenant.database = serving.clone();
        if serving.mode == DatabaseTarget::Embedded {
            tenant.autoscaling = false;
            tenant.capacity.sizing.min_replicas = 1;
            tenant.capacity.sizing.replicas = 1;
        }
        std::borrow::Cow::Owned(tenant)
    }
}

/// The tenant's database, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Database {
    /// Where the data lives, with what that mode needs.
    pub mode: DatabaseTarget,
    /// What deletion leaves behind.
    pub deletion_policy: DeletionPolicy,
    /// Connections the database accepts from the tenant.
    pub max_connections: u32,
    /// Data volume size (Embedded, Managed).
    pub storage: String,
    /// StorageClass of the data volume.
    pub storage_class_name: Option<String>,
}

/// The database mode, carrying what that mode needs.
#[derive(Clone, Debug, PartialEq)]
pub enum DatabaseTarget {
    /// SQLite on a PVC.
    Embedded,
    /// Per-tenant PostgreSQL StatefulSet.
    Managed {
        /// PostgreSQL image.
        image: String,
        /// CPU cores of the PostgreSQL pod.
        cpu: f64,
        /// Memory of the PostgreSQL pod.
        memory: String,
    },
    /// Role and database on a shared server registered with the operator.
    Shared {
        /// The shared server's name.
        server: String,
    },
    /// A user-supplied Secret with the connection URL.
    External {
        /// Where the URL is.
        secret_ref: SecretKeyRef,
    },
}

impl DatabaseTarget {
    /// The spec's enum for this target.
    pub fn mode(&self) -> DatabaseMode {
        match self {
            DatabaseTarget::Embedded => DatabaseMode::Embedded,
            DatabaseTarget::Managed { .. } => DatabaseMode::Managed,
            DatabaseTarget::Shared { .. } => DatabaseMode::Shared,
            DatabaseTarget::External { .. } => DatabaseMode::External,
        }
    }
}

/// The CRM server, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    /// Image.
    pub image: String,
    /// Enabled modules, sorted, no duplicates.
    pub modules: Vec<Module>,
    /// Extra environment.
    pub env: Vec<EnvVar>,
    /// Namespaces whose pods may call the CRM besides the tenant's own.
    pub allowed_namespaces: Vec<String>,
    /// The hostname outside the cluster, and what serves it.
    pub expose: Option<ExposeSpec>,
}

/// A spec the operator cannot run.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum ValidationError {
    /// The object has no name.
    #[error("metadata.name is missing")]
    MissingName,
    /// The object has no namespace.
    #[error("metadata.namespace is missing")]
    MissingNamespace,
    /// A field breaks a rule the CRD also enforces.
    #[error("{path}: {message}")]
    Field {
        /// JSON path of the field, e.g. `spec.database.shared`.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Validates a tenant and runs the capacity model over it.
pub fn validate(tenant: &CrmTenant) -> Result<Tenant, ValidationError> {
    validate_with(tenant, &Platform::default())
}

/// [`validate`], with the operator's settings; autopilot's figures are the
/// ones the tenant's status holds.
pub fn validate_with(tenant: &CrmTenant, platform: &Platform) -> Result<Tenant, ValidationError> {
    let learned = tenant.status.as_ref().and_then(|s| s.autopilot.as_ref());
    validate_learned(tenant, platform, learned)
}

/// [`validate_with`], sizing from `learned` when `spec.autopilot` is enabled.
pub fn validate_learned(
    tenant: &CrmTenant,
    platform: &Platform,
    learned: Option<&crm_crds::AutopilotStatus>,
) -> Result<Tenant, ValidationError> {
    let meta = tenant.meta();
    let name = meta.name.clone().ok_or(ValidationError::MissingName)?;
    let namespace = meta
        .namespace
        .clone()
        .ok_or(ValidationError::MissingNamespace)?;
    let spec = &tenant.spec;
    let mode = database_mode(tenant);
    let database = resolve_database(spec.database.clone().unwrap_or_default(), mode)?;
    check_cross_field_rules(spec, &database)?;
    let settings = autopilot::Settings::from_spec(spec.autopilot.as_ref());
    let learned = learned.filter(|_| settings.enabled).cloned();
    let mut inputs = model::Inputs::from_spec(spec, mode).map_err(|e| field(e.path, &e.message))?;
    if let Some(learned) = &learned {
        inputs = autopilot::apply(&inputs, learned);
    }
    let capacity = model::size(&inputs);
    let resources = spec.resources.clone();
    let server = spec.server.clone().unwrap_or_default();
    let transfer = transfer::transfer(tenant, &database)?;
    let backup = backup(spec.backup.as_ref())?;
    if let Some(Transfer {
        kind: TransferKind::Restore { .. },
        ..
    }) = &transfer
        && backup.is_none()
    {
        return Err(field(
            &format!("metadata.annotations[{}]", crm_crds::annotation::RESTORE),
            "a restore reads the backups on the volume spec.backup keeps: set spec.backup",
        ));
    }
    let mut modules = server.modules.unwrap_or_else(|| Module::ALL.to_vec());
    modules.sort();
    modules.dedup();
    Ok(Tenant {
        owner: owner_reference(tenant, &name),
        generation: meta.generation,
        tier: spec.tier,
        suspend: spec.suspend,
        autoscaling: inputs.autoscaling,
        cpu: inputs.cpu,
        memory: resources
            .and_then(|r| r.memory)
            .unwrap_or_else(|| DEFAULT_MEMORY.to_owned()),
        database,
        server: Server {
            image: server
                .image
                .unwrap_or_else(|| platform.default_image.clone()),
            modules,
            env: server.env.unwrap_or_default(),
            allowed_namespaces: server.allowed_namespaces.unwrap_or_default(),
            expose: server.expose,
        },
        monitoring_namespaces: platform.monitoring_namespaces.clone(),
        backup,
        transfer,
        capacity,
        inputs,
        autopilot: settings,
        learned,
        name,
        namespace,
    })
}

/// The CRD's CEL rules, checked again: a tenant stored before a rule existed,
/// or on a cluster whose CRD is out of date, must not run half-valid.
fn check_cross_field_rules(
    spec: &CrmTenantSpec,
    database: &Database,
) -> Result<(), ValidationError> {
    if spec.load.peak_requests_per_second.is_none() && spec.load.active_users.is_none() {
        return Err(field(
            "spec.load",
            "set load.peakRequestsPerSecond or load.activeUsers (or both)",
        ));
    }
    if let Some(performance) = &spec.performance
        && !(performance.target_utilization > 0.0 && performance.target_utilization < 1.0)
    {
        return Err(field(
            "spec.performance.targetUtilization",
            "targetUtilization must be strictly between 0 and 1",
        ));
    }
    if let Some(performance) = &spec.performance
        && !(0.0..=25.0).contains(&performance.service_time_scv)
    {
        return Err(field(
            "spec.performance.serviceTimeScv",
            "serviceTimeScv must be between 0 and 25",
        ));
    }
    let (min, max) = spec
        .replicas
        .as_ref()
        .map_or((None, None), |r| (r.min, r.max));
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        return Err(field(
            "spec.replicas",
            &format!("replicas.min ({min}) must not exceed replicas.max ({max})"),
        ));
    }
    if database.mode == DatabaseTarget::Embedded {
        if spec.autoscaling.as_ref().and_then(|a| a.enabled) == Some(true) {
            return Err(field(
                "spec.autoscaling.enabled",
                "the Embedded database runs exactly one replica: autoscaling cannot be enabled",
            ));
        }
        if min.is_some_and(|min| min > 1) {
            return Err(field(
                "spec.replicas.min",
                "the Embedded database runs exactly one replica: replicas.min cannot exceed 1",
            ));
        }
    }
    let env = spec.server.as_ref().and_then(|s| s.env.as_ref());
    if let Some((i, var)) = env
        .into_iter()
        .flatten()
        .enumerate()
        .find(|(_, v)| v.name.starts_with("CRM_") || v.name == "DATABASE_URL")
    {
        return Err(field(
            &format!("spec.server.env[{i}].name"),
            &format!(
                "{} is set by the operator and cannot be overridden",
                var.name
            ),
        ));
    }
    match spec.server.as_ref().and_then(|s| s.expose.as_ref()) {
        Some(expose) => check_expose(expose),
        None => Ok(()),
    }
}

/// The CEL rules of `spec.server.expose`, checked again.
fn check_expose(expose: &ExposeSpec) -> Result<(), ValidationError> {
    if expose.ingress.is_some() == expose.gateway.is_some() {
        return Err(field(
            "spec.server.expose",
            "set exactly one of expose.ingress or expose.gateway",
        ));
    }
    if expose.tls.is_some() != expose.ingress.is_some() {
        return Err(field(
            "spec.server.expose.tls",
            "expose.tls goes with expose.ingress, and only with it: a Gateway terminates TLS on its own listener",
        ));
    }
    if let Some(tls) = &expose.tls
        && tls.secret_name.is_some() == tls.issuer.is_some()
    {
        return Err(field(
            "spec.server.expose.tls",
            "set exactly one of expose.tls.secretName or expose.tls.issuer",
        ));
    }
    if !is_dns_name(&expose.host) {
        return Err(field(
            "spec.server.expose.host",
            "expose.host must be a lower-case DNS name with at least two labels, such as crm.acme.example.com",
        ));
    }
    Ok(())
}

/// A fully qualified DNS name: two or more labels of lower-case letters,
/// digits and inner hyphens, 63 bytes each, 253 in all.
fn is_dns_name(host: &str) -> bool {
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    host.len() <= 253 && host.split('.').count() >= 2 && host.split('.').all(label)
}

/// The database mode a tier starts with when the spec names none: Starter's
/// single replica fits SQLite, Growth and Enterprise need PostgreSQL to scale.
pub fn tier_database_mode(tier: Tier) -> DatabaseMode {
    match tier {
        Tier::Starter => DatabaseMode::Embedded,
        Tier::Growth | Tier::Enterprise => DatabaseMode::Managed,
    }
}

/// The mode the tenant's data should live in: the spec's when it names one;
/// else the mode the tenant runs on (`status.databaseMode`), so that neither
/// a tier change nor a new default moves a running tenant's data; else the
/// tier's. A status with sizing but no recorded mode was written before the
/// mode was recorded, when every tenant without a mode ran Embedded.
pub fn database_mode(tenant: &CrmTenant) -> DatabaseMode {
    let spec = tenant.spec.database.as_ref().and_then(|d| d.mode);
    let status = tenant.status.as_ref();
    let recorded = status.and_then(|s| {
        s.database_mode
            .or_else(|| s.sizing.as_ref().map(|_| DatabaseMode::Embedded))
    });
    spec.or(recorded)
        .unwrap_or_else(|| tier_database_mode(tenant.spec.tier))
}

fn resolve_database(spec: DatabaseSpec, mode: DatabaseMode) -> Result<Database, ValidationError> {
    let mode = match mode {
        DatabaseMode::Embedded => DatabaseTarget::Embedded,
        DatabaseMode::Managed => {
            let managed = spec.managed.unwrap_or_default();
            DatabaseTarget::Managed {
                image: managed.image,
                cpu: managed
                    .cpu
                    .cores()
                    .map_err(|e| field("spec.database.managed.cpu", &e.to_string()))?,
                memory: managed.memory,
            }
        }
        DatabaseMode::Shared => DatabaseTarget::Shared {
            server: spec
                .shared
                .ok_or_else(|| {
                    field(
                        "spec.database.shared",
                        "database.mode Shared needs database.shared.server",
                    )
                })?
                .server,
        },
        DatabaseMode::External => DatabaseTarget::External {
            secret_ref: spec
                .external
                .ok_or_else(|| {
                    field(
                        "spec.database.external",
                        "database.mode External needs database.external.secretRef",
                    )
                })?
                .secret_ref,
        },
    };
    Ok(Database {
        mode,
        deletion_policy: spec.deletion_policy,
        max_connections: u32::try_from(spec.max_connections).unwrap_or(1).max(1),
        storage: spec.storage,
        storage_class_name: spec.storage_class_name,
    })
}

fn backup(spec: Option<&crm_crds::BackupSpec>) -> Result<Option<Backup>, ValidationError> {
    let Some(spec) = spec else {
        return Ok(None);
    };
    cron::check(&spec.schedule).map_err(|e| field("spec.backup.schedule", &e))?;
    Ok(Some(Backup {
        schedule: spec.schedule.trim().to_owned(),
        retain: u32::try_from(spec.retain).unwrap_or(1).max(1),
        storage: spec.storage.clone(),
    }))
}

/// The owner reference of every child. Offline (`plan`) there is no UID yet,
/// so a placeholder stands in; the API server would reject it, which is right.
fn owner_reference(tenant: &CrmTenant, name: &str) -> OwnerReference {
    OwnerReference {
        api_version: crm_crds::API_VERSION.to_owned(),
        kind: crm_crds::KIND.to_owned(),
        name: name.to_owned(),
        uid: tenant
            .meta()
            .uid
            .clone()
            .unwrap_or_else(|| "<assigned-by-api-server>".to_owned()),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn field(path: &str, message: &str) -> ValidationError {
    ValidationError::Field {
        path: path.to_owned(),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests;
