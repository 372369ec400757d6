//! What every reconcile shares: the client, the caches, the Event recorder,
//! the settings, the metrics, and the failure counts behind backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};

use crate::kinds::Stores;
use crate::metrics::Metrics;
use crate::observe::Prometheus;
use crate::recorder::Recorder;
use crate::synced::Synced;
use crate::written::Written;
use crm_crds::CrmTenant;

/// Where shared PostgreSQL servers are registered unless told otherwise.
pub const DEFAULT_SHARED_SERVERS_NAMESPACE: &str = "crm-system";

/// Where and how the controller runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Watch one namespace only; all namespaces when absent.
    pub namespace: Option<String>,
    /// Reconcile only tenants matching this label selector.
    pub selector: Option<String>,
    /// Tenants reconciled at once.
    pub concurrency: u16,
    /// Name this operator reports Events as.
    pub reporter: String,
    /// The image tenants run when their spec names none.
    pub default_image: Option<String>,
    /// Longest one reconcile may take; a hung API call then counts as a
    /// transient failure and is retried, instead of blocking the tenant.
    pub reconcile_timeout: Duration,
    /// Longest reconciles wait at start for every watch to list.
    pub cache_sync_timeout: Duration,
    /// Namespace of the Secrets that register shared PostgreSQL servers: one
    /// per server, named after it, holding an admin URL under key `url`.
    pub shared_servers_namespace: String,
    /// Namespaces whose pods may scrape the tenants' metrics port (the
    /// monitoring stack's); none when absent.
    pub monitoring_namespaces: Option<LabelSelector>,
    /// Prometheus's base URL: tenants' load is measured there for
    /// `status.observed` and autopilot; nothing is measured when absent.
    pub prometheus_url: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespace: None,
            selector: None,
            concurrency: 8,
            reporter: crate::labels::FIELD_MANAGER.to_owned(),
            default_image: None,
            reconcile_timeout: Duration::from_secs(60),
            cache_sync_timeout: Duration::from_secs(30),
            shared_servers_namespace: DEFAULT_SHARED_SERVERS_NAMESPACE.to_owned(),
            monitoring_namespaces: crate::validate::Platform::default().monitoring_namespaces,
            prometheus_url: None,
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Caches of the children.
    pub stores: Stores,
    /// Publishes Events (and folds repeats of the same one).
    pub recorder: Recorder,
    /// Settings the operator runs with.
    pub settings: Settings,
    /// Reconcile counts and durations.
    pub metrics: Arc<Metrics>,
    /// Statuses written that the tenant cache may not show yet.
    pub written: Written,
    /// Where tenants' load is measured, when the operator was told.
    pub prometheus: Option<Prometheus>,
    /// Consecutive failures per tenant, for backoff.
    failures: Mutex<HashMap<ObjectRef<CrmTenant>, u32>>,
    /// Whether every watch has listed.
    synced: Synced,
    /// Until when reconciles wait for that.
    synced_deadline: tokio::time::Instant,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context whose reconciles wait for `synced` at most
    /// [`Settings::cache_sync_timeout`] from now.
    pub fn new(
        client: Client,
        stores: Stores,
        recorder: Recorder,
        settings: Settings,
        metrics: Arc<Metrics>,
        synced: Synced,
    ) -> Self {
        let prometheus = settings.prometheus_url.as_deref().and_then(|url| {
            Prometheus::new(url)
                .inspect_err(|e| tracing::error!(error = %e, "not measuring tenants"))
                .ok()
        });
        Self {
            prometheus,
            synced_deadline: tokio::time::Instant::now() + settings.cache_sync_timeout,
            client,
            stores,
            recorder,
            settings,
            metrics,
            written: Written::new(),
            failures: Mutex::new(HashMap::new()),
            synced,
        }
    }

    /// What the operator's settings add to every tenant.
    pub fn platform(&self) -> crate::validate::Platform {
        crate::validate::Platform {
            default_image: self
                .settings
                .default_image
                .clone()
                .unwrap_or_else(|| crate::validate::DEFAULT_SERVER_IMAGE.to_owned()),
            monitoring_namespaces: self.settings.monitoring_namespaces.clone(),
        }
    }

    /// The API of the tenant's namespace, for writes to the tenant itself.
    pub fn tenants(&self, tenant: &CrmTenant) -> Api<CrmTenant> {
        Api::namespaced(self.client.clone(), &tenant.namespace().unwrap_or_default())
    }

    /// Waits until every watch has listed, or until
    /// [`Settings::cache_sync_timeout`] after start. A restarted operator then sees the children that exist instead
    /// of applying them all again, while a watch that cannot list (a missing
    /// permission) holds nothing up for longer.
    pub async fn caches_synced(&self) {
        if tokio::time::timeout_at(self.synced_deadline, self.synced.wait())
            .await
            .is_err()
        {
            tracing::debug!("caches not synced in time; reconciling without them");
        }
    }

    /// Forgets the failures of a tenant that reconciled.
    pub fn succeeded(&self, tenant: &CrmTenant) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&ObjectRef::from_obj(tenant));
        }
    }

    /// Counts a failure and returns how many in a row.
    pub fn failed(&self, tenant: &CrmTenant) -> u32 {
        let Ok(mut failures) = self.failures.lock() else {
            return 1;
        };
        let count = failures.entry(ObjectRef::from_obj(tenant)).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }
}
