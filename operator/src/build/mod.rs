//! Validated tenant → the desired objects. Pure: no I/O, no client, no randomness
//! (credentials come in as values; the caller generates or reads them).
//!
//! One builder per kind of object, one file each.

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount},
    networking::v1::NetworkPolicy,
    policy::v1::PodDisruptionBudget,
};

/// Secret values the tenant's objects carry. Build never invents them: the
/// reconciler passes what the Secrets already hold (or freshly generated values
/// the first time), and `plan` passes placeholders.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The CRM's API key.
    pub api_key: String,
    /// The database password (Managed and Shared modes).
    pub database_password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials { .. }")
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
}

/// Builds every object of a tenant.
pub fn build(_tenant: &crate::validate::Tenant, _credentials: &Credentials) -> Desired {
    unimplemented!("builders")
}

impl Desired {
    /// Every object, with apiVersion and kind, in apply order.
    pub fn objects(&self) -> Vec<serde_json::Value> {
        unimplemented!("builders")
    }
}
