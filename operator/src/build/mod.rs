//! Validated tenant → the desired objects. Pure: no I/O, no client, no randomness
//! (credentials come in as values; the caller generates or reads them).
//!
//! One builder per kind of object, one file each. Every object carries the
//! tenant's namespace, the standard labels and the tenant as controlling
//! owner, and leaves every field it does not mean to own as `None`: the
//! objects go out by server-side apply, where a `null` would claim (or clear)
//! a field.

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    autoscaling::v2::HorizontalPodAutoscaler,
    batch::v1::{CronJob, Job},
    core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount},
    networking::v1::{Ingress, NetworkPolicy},
    policy::v1::PodDisruptionBudget,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::Value;

use crate::gateway_api::HttpRoute;
use crate::labels::{self, Component};
use crate::validate::Tenant;

pub mod config_map;
pub mod cron_job;
pub mod deployment;
pub mod hpa;
pub mod http_route;
pub mod ingress;
pub mod job;
pub mod network_policy;
pub mod pdb;
pub mod postgres;
pub mod secret;
pub mod service;
pub mod service_account;
pub mod volume;

#[cfg(test)]
pub(crate) mod fixture;

/// Port the CRM server listens on inside its pod.
pub const SERVER_PORT: i32 = 8080;
/// Name of the server's port, used by the Service and the probes.
pub const SERVER_PORT_NAME: &str = "http";
/// Port the CRM server serves `/metrics` on, apart from the API, so that
/// the network policy can admit scrapers there and nowhere else.
pub const METRICS_PORT: i32 = 9090;
/// Name of the metrics port, which the PodMonitor scrapes.
pub const METRICS_PORT_NAME: &str = "metrics";
/// Port of the Managed PostgreSQL server.
pub const POSTGRES_PORT: i32 = 5432;

/// Secret values the tenant's objects carry. Build never invents them: the
/// reconciler passes what the Secrets already hold (or freshly generated values
/// the first time), and `plan` passes placeholders.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The CRM's API key.
    pub api_key: String,
    /// The database password (Managed and Shared modes).
    pub database_password: String,
    /// The password of the web UI's first administrator, in `<t>-admin`.
    pub admin_password: String,
    /// The rotation request the API key answers, recorded on `<t>-api`.
    pub api_key_rotated_for: Option<String>,
    /// The rotation request the password answers, recorded on `<t>-db`.
    pub database_password_rotated_for: Option<String>,
    /// Shared: what the shared server gave the tenant.
    pub shared: Option<SharedConnection>,
    /// During a move away from a Shared database: the URL the pods use now,
    /// as `<t>-db` holds it.
    pub url_in_use: Option<String>,
}

impl Credentials {
    /// An API key and a database password, nothing else.
    pub fn new(api_key: impl Into<String>, database_password: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            database_password: database_password.into(),
            ..Self::default()
        }
    }

    /// The same with the web UI administrator's password.
    pub fn with_admin_password(mut self, password: impl Into<String>) -> Self {
        self.admin_password = password.into();
        self
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials { .. }")
    }
}

/// A Shared tenant's role and database on its shared server, and the URL its
/// pods connect with (which holds the password).
#[derive(Clone, PartialEq, Eq)]
pub struct SharedConnection {
    /// The login role.
    pub username: String,
    /// The database.
    pub database: String,
    /// The connection URL, password included.
    pub url: String,
}

impl std::fmt::Debug for SharedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedConnection")
            .field("username", &self.username)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

/// Every object one tenant becomes. The applier destructures this without `..`,
/// so a new kind cannot be built and silently never applied.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    /// The pods' identity.
    pub service_account: ServiceAccount,
    /// `<t>-api`: the API key.
    pub api_secret: Secret,
    /// `<t>-admin`: the web UI's first administrator.
    pub admin_secret: Secret,
    /// `<t>-db`: database credentials (absent for Embedded and External).
    pub database_secret: Option<Secret>,
    /// Non-secret server settings.
    pub config_map: ConfigMap,
    /// The CRM server.
    pub deployment: Deployment,
    /// ClusterIP in front of the replicas.
    pub service: Service,
    /// Present when autoscaling is on and the tenant is not suspended.
    pub hpa: Option<HorizontalPodAutoscaler>,
    /// Present when the minimum replica count is at least 2.
    pub pdb: Option<PodDisruptionBudget>,
    /// Who may reach the CRM and its database.
    pub network_policies: Vec<NetworkPolicy>,
    /// Embedded: the SQLite volume.
    pub data_volume: Option<PersistentVolumeClaim>,
    /// Managed: the PostgreSQL StatefulSet.
    pub database_statefulset: Option<StatefulSet>,
    /// Managed: the PostgreSQL Service.
    pub database_service: Option<Service>,
    /// Exposed through an ingress controller.
    pub ingress: Option<Ingress>,
    /// Exposed through a Gateway.
    pub http_route: Option<HttpRoute>,
    /// Scheduled backups.
    pub backup_cron_job: Option<CronJob>,
    /// The backups' volume.
    pub backup_volume: Option<PersistentVolumeClaim>,
    /// The move or restore of the data under way.
    pub transfer_job: Option<Job>,
}

/// Builds every object of a tenant. During a move of its data, the server
/// runs on the database in use (read-only until the copy is verified)
/// while the new one is built beside it.
pub fn build(tenant: &Tenant, credentials: &Credentials) -> Desired {
    let serving = tenant.serving();
    let config_map = config_map::config_map(&serving);
    let hash = config_map::config_hash(&serving, &config_map, credentials);
    let mut network_policies = network_policy::network_policies(&serving);
    for policy in network_policy::network_policies(tenant) {
        if !network_policies
            .iter()
            .any(|p| p.metadata.name == policy.metadata.name)
        {
            network_policies.push(policy);
        }
    }
    Desired {
        service_account: service_account::service_account(tenant),
        api_secret: secret::api_secret(tenant, credentials),
        admin_secret: secret::admin_secret(tenant, credentials),
        database_secret: secret::database_secret(tenant, credentials),
        deployment: deployment::deployment(&serving, &hash),
        service: service::service(tenant),
        hpa: hpa::hpa(&serving),
        pdb: pdb::pdb(&serving),
        network_policies,
        data_volume: volume::data_volume(tenant).or_else(|| volume::data_volume(&serving)),
        database_statefulset: postgres::statefulset(tenant, credentials)
            .or_else(|| postgres::statefulset(&serving, credentials)),
        database_service: postgres::service(tenant).or_else(|| postgres::service(&serving)),
        ingress: ingress::ingress(tenant),
        http_route: http_route::http_route(tenant),
        backup_cron_job: cron_job::cron_job(tenant),
        backup_volume: volume::backup_volume(tenant),
        transfer_job: job::transfer_job(tenant),
        config_map,
    }
}

impl Desired {
    /// Every object, with apiVersion and kind, in apply order: identity and
    /// credentials first, then what reads them, then what points at the pods.
    pub fn objects(&self) -> Vec<Value> {
        let Desired {
            service_account,
            api_secret,
            admin_secret,
            database_secret,
            config_map,
            deployment,
            service,
            hpa,
            pdb,
            network_policies,
            data_volume,
            database_statefulset,
            database_service,
            ingress,
            http_route,
            backup_cron_job,
            backup_volume,
            transfer_job,
        } = self;
        let mut objects = vec![json(service_account), json(api_secret), json(admin_secret)];
        objects.extend(database_secret.iter().map(json));
        objects.push(json(config_map));
        objects.extend(data_volume.iter().map(json));
        objects.extend(database_service.iter().map(json));
        objects.extend(database_statefulset.iter().map(json));
        objects.push(json(deployment));
        objects.push(json(service));
        objects.extend(hpa.iter().map(json));
        objects.extend(pdb.iter().map(json));
        objects.extend(network_policies.iter().map(json));
        objects.extend(ingress.iter().map(json));
        objects.extend(http_route.iter().map(json));
        objects.extend(backup_volume.iter().map(json));
        objects.extend(backup_cron_job.iter().map(json));
        objects.extend(transfer_job.iter().map(json));
        objects
    }
}

impl Desired {
    /// `(kind, name)` of every object, without serialising them.
    pub fn names(&self) -> Vec<(&'static str, &str)> {
        fn of<K: k8s_openapi::Resource + kube::Resource>(object: &K) -> (&'static str, &str) {
            (K::KIND, object.meta().name.as_deref().unwrap_or_default())
        }
        let Desired {
            service_account,
            api_secret,
            admin_secret,
            database_secret,
            config_map,
            deployment,
            service,
            hpa,
            pdb,
            network_policies,
            data_volume,
            database_statefulset,
            database_service,
            ingress,
            http_route,
            backup_cron_job,
            backup_volume,
            transfer_job,
        } = self;
        let mut names = vec![
            of(service_account),
            of(api_secret),
            of(admin_secret),
            of(config_map),
        ];
        names.extend(database_secret.iter().map(of));
        names.extend([of(deployment), of(service)]);
        names.extend(hpa.iter().map(of));
        names.extend(pdb.iter().map(of));
        names.extend(network_policies.iter().map(of));
        names.extend(data_volume.iter().map(of));
        names.extend(database_statefulset.iter().map(of));
        names.extend(database_service.iter().map(of));
        names.extend(ingress.iter().map(of));
        names.extend(http_route.iter().map(of));
        names.extend(backup_cron_job.iter().map(of));
        names.extend(backup_volume.iter().map(of));
        names.extend(transfer_job.iter().map(of));
        names
    }
}

/// k8s-openapi's `Serialize` of a top-level resource writes apiVersion and
/// kind itself. It cannot fail for these types (every map has string keys);
/// should that ever change, the error shows up in the output instead of an
/// object silently going missing.
fn json<T: Serialize>(object: &T) -> Value {
    serde_json::to_value(object)
        .unwrap_or_else(|e| Value::String(format!("object could not be serialised: {e}")))
}

/// Metadata of a child: name, namespace, standard labels, the tenant as owner.
pub fn metadata(tenant: &Tenant, name: String, component: Component) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(tenant.namespace.clone()),
        labels: Some(labels::standard(&tenant.name, component)),
        owner_references: Some(vec![tenant.owner.clone()]),
        ..ObjectMeta::default()
    }
}

/// Metadata of what holds or opens the tenant's data (the Embedded volume, the
/// database credentials). Owned by the tenant, and so removed by the garbage
/// collector with it, only under `deletionPolicy: Delete`; under Retain they
/// outlive the tenant, and a tenant created again under the same name finds
/// them and carries on with the same data and password.
pub fn data_metadata(tenant: &Tenant, name: String, component: Component) -> ObjectMeta {
    let mut meta = metadata(tenant, name, component);
    if tenant.database.deletion_policy == crm_crds::DeletionPolicy::Retain {
        meta.owner_references = None;
    }
    meta
}

/// CPU cores as a millicore quantity: 0.5 → `500m`. Whole millicores, since
/// that is the finest CPU unit Kubernetes schedules.
pub fn cpu_quantity(cores: f64) -> Quantity {
    // The CRD bounds cpu above zero; at least 1m keeps an absurdly small value valid.
    let millis = (cores * 1000.0).round().max(1.0);
    Quantity(format!("{millis}m"))
}

/// `<t>-api`.
pub fn api_secret_name(tenant: &Tenant) -> String {
    format!("{}-api", tenant.name)
}

/// `<t>-admin`.
pub fn admin_secret_name(tenant: &Tenant) -> String {
    format!("{}-admin", tenant.name)
}

/// `<t>-db`.
pub fn database_secret_name(tenant: &Tenant) -> String {
    format!("{}-db", tenant.name)
}

/// `<t>-config`.
pub fn config_map_name(tenant: &Tenant) -> String {
    format!("{}-config", tenant.name)
}

/// `<t>-data`: the Embedded SQLite volume.
pub fn data_volume_name(tenant: &Tenant) -> String {
    format!("{}-data", tenant.name)
}

/// `<t>-backups`: the backups' volume.
pub fn backup_volume_name(tenant: &Tenant) -> String {
    format!("{}-backups", tenant.name)
}

/// `<t>-postgres`: the Managed StatefulSet, its Service and NetworkPolicy.
pub fn postgres_name(tenant: &Tenant) -> String {
    format!("{}-postgres", tenant.name)
}

#[cfg(test)]
mod tests;
