//! kube-runtime wiring: watch CrmTenants and everything they own, reconcile
//! each tenant through validate → build → apply → status.
//!
//! Children are read from reflector caches, never fetched one by one; volume
//! claims are watched as metadata only, since nothing of them but their
//! existence matters here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Predicate, PredicateConfig, WatchStreamExt, predicates, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::owned::Owned;
use crate::reconcile;
use crate::synced::Synced;
use crate::{Error, Result};
use crm_crds::CrmTenant;

/// Label selector matching every object the operator creates.
pub const CHILD_SELECTOR: &str = "app.kubernetes.io/managed-by=crm-operator";
/// Where shared PostgreSQL servers are registered unless told otherwise.
pub const DEFAULT_SHARED_SERVERS_NAMESPACE: &str = "crm-system";
/// Objects per page when watchers list.
pub const PAGE_SIZE: u32 = 50;
/// The watches: tenants and the ten child kinds.
const WATCHES: usize = 11;

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
        }
    }
}

/// Caches of every kind of child, filled by the controller's watches.
#[derive(Clone, Debug)]
pub struct Stores {
    /// ServiceAccounts.
    pub service_accounts: Store<ServiceAccount>,
    /// Secrets (API keys, database credentials).
    pub secrets: Store<Secret>,
    /// ConfigMaps.
    pub config_maps: Store<ConfigMap>,
    /// Deployments.
    pub deployments: Store<Deployment>,
    /// Services.
    pub services: Store<Service>,
    /// HorizontalPodAutoscalers.
    pub hpas: Store<HorizontalPodAutoscaler>,
    /// PodDisruptionBudgets.
    pub pdbs: Store<PodDisruptionBudget>,
    /// NetworkPolicies.
    pub network_policies: Store<NetworkPolicy>,
    /// StatefulSets (Managed PostgreSQL).
    pub statefulsets: Store<StatefulSet>,
    /// PersistentVolumeClaims, metadata only.
    pub volumes: Store<PartialObjectMeta<PersistentVolumeClaim>>,
    /// Writes of this process the caches have not shown yet.
    pub applied: Ledger,
    /// The children each tenant owns, from the same watches.
    pub owned: Owned,
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
    fn failed(&self, tenant: &CrmTenant) -> u32 {
        let Ok(mut failures) = self.failures.lock() else {
            return 1;
        };
        let count = failures.entry(ObjectRef::from_obj(tenant)).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }
}

/// Runs the controller until `shutdown` resolves, counting into `metrics`.
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let children = watcher::Config::default()
        .labels(CHILD_SELECTOR)
        .page_size(PAGE_SIZE);
    let mut tenants = watcher::Config::default().page_size(PAGE_SIZE);
    if let Some(selector) = &settings.selector {
        tenants = tenants.labels(selector);
    }
    let ns = settings.namespace.as_deref();
    let applied = Ledger::new();
    let owned = Owned::new();
    let synced = Synced::new(WATCHES);
    let watch = Watch {
        client: &client,
        namespace: ns,
        config: &children,
        ledger: &applied,
        owned: &owned,
        synced: &synced,
    };
    let (service_accounts, sa_events) = watch.cached::<ServiceAccount>();
    let (secrets, secret_events) = watch.cached::<Secret>();
    let (config_maps, cm_events) = watch.cached::<ConfigMap>();
    let (deployments, deploy_events) =
        watch.cached_with::<Deployment>(crate::ownership::keep_replica_owners);
    let (services, svc_events) = watch.cached::<Service>();
    let (hpas, hpa_events) = watch.cached::<HorizontalPodAutoscaler>();
    let (pdbs, pdb_events) = watch.cached::<PodDisruptionBudget>();
    let (network_policies, np_events) = watch.cached::<NetworkPolicy>();
    let (statefulsets, sts_events) = watch.cached::<StatefulSet>();
    let (volumes, volume_events) = watch.cached::<PartialObjectMeta<PersistentVolumeClaim>>();

    let context = Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: settings.reporter.clone(),
                instance: std::env::var("POD_NAME").ok(),
            },
        ),
        stores: Stores {
            service_accounts,
            secrets,
            config_maps,
            deployments,
            services,
            hpas,
            pdbs,
            network_policies,
            statefulsets,
            volumes,
            applied,
            owned,
        },
        client: client.clone(),
        failures: Mutex::new(HashMap::new()),
        synced: synced.clone(),
        synced_deadline: tokio::time::Instant::now() + settings.cache_sync_timeout,
        settings: settings.clone(),
        metrics: metrics.clone(),
    });
    // Status writes (ours included) change neither generation, labels nor
    // annotations: they do not wake the tenant again, so a failure's status
    // update cannot cut its backoff short. A deletion request wakes it: a
    // Shared tenant's finalizer waits for its cleanup.
    let (tenant_cache, tenant_writer) = reflector::store();
    metrics.count_tenants(Some(tenant_cache.clone()));
    let marker = tokio::spawn(mark_synced(synced.clone(), metrics.clone()));
    let tenant_events = watcher(api::<CrmTenant>(&client, ns), tenants)
        .default_backoff()
        .reflect(tenant_writer)
        .inspect_ok(move |event| synced.observe("CrmTenant", event))
        .applied_objects()
        .predicate_filter(
            predicates::generation
                .combine(predicates::labels)
                .combine(predicates::annotations)
                .combine(deletion_requested),
            PredicateConfig::default(),
        );
    Controller::for_stream(tenant_events, tenant_cache)
        .owns_stream(sa_events)
        .owns_stream(secret_events)
        .owns_stream(cm_events)
        .owns_stream(deploy_events)
        .owns_stream(svc_events)
        .owns_stream(hpa_events)
        .owns_stream(pdb_events)
        .owns_stream(np_events)
        .owns_stream(sts_events)
        .owns_stream(volume_events)
        .with_config(controller::Config::default().concurrency(settings.concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, error_policy, context)
        .for_each(|result| async move {
            match result {
                Ok((tenant, _)) => tracing::debug!(tenant = %tenant, "reconciled"),
                Err(error) => tracing::debug!(%error, "reconcile not run"),
            }
        })
        .await;
    marker.abort();
    metrics.set_synced(false);
    metrics.count_tenants(None);
}

/// Reports the caches synced once every watch has listed its objects.
async fn mark_synced(synced: Synced, metrics: Arc<Metrics>) {
    synced.wait().await;
    tracing::info!("caches synced");
    metrics.set_synced(true);
}

/// Changes once, when the tenant's deletion is requested.
fn deletion_requested(tenant: &CrmTenant) -> Option<u64> {
    Some(u64::from(tenant.meta().deletion_timestamp.is_some()))
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

type Events<K> = std::pin::Pin<Box<dyn Stream<Item = Result<K, watcher::Error>> + Send>>;

/// Where and how the child watches list and watch, and who reads their events
/// besides the caches.
struct Watch<'a> {
    client: &'a Client,
    namespace: Option<&'a str>,
    config: &'a watcher::Config,
    ledger: &'a Ledger,
    owned: &'a Owned,
    synced: &'a Synced,
}

impl Watch<'_> {
    /// A cache of one child kind (`PartialObjectMeta<K>` for metadata
    /// only), and the stream that fills it and feeds the ledger, the owner
    /// index and the sync tracker.
    fn cached<C>(&self) -> (Store<C>, Events<C>)
    where
        C: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + DeserializeOwned
            + Clone
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        self.cached_with(|object: &mut C| object.managed_fields_mut().clear())
    }

    /// As [`Self::cached`], with `trim` deciding what of managedFields each
    /// cached object keeps.
    fn cached_with<C>(&self, trim: fn(&mut C)) -> (Store<C>, Events<C>)
    where
        C: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + DeserializeOwned
            + Clone
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        let (reader, writer) = reflector::store();
        let (ledger, owned, synced) =
            (self.ledger.clone(), self.owned.clone(), self.synced.clone());
        let events = watcher(api::<C>(self.client, self.namespace), self.config.clone())
            .default_backoff()
            .modify(trim)
            .reflect(writer)
            .inspect_ok(move |event| {
                ledger.observe(event);
                owned.observe(event);
                synced.observe(&C::kind(&()), event);
            })
            .touched_objects()
            .boxed();
        (reader, events)
    }
}

/// Permanent errors wait for a spec change (or a slow resync); transient ones
/// retry with exponential backoff and jitter, capped at five minutes.
pub fn error_policy(tenant: Arc<CrmTenant>, error: &Error, context: Arc<Context>) -> Action {
    let attempt = context.failed(&tenant);
    tracing::warn!(tenant = %tenant.name_any(), %error, attempt, "reconcile failed");
    if error.is_transient() {
        Action::requeue(backoff(attempt, jitter(&tenant, attempt)))
    } else {
        Action::requeue(Duration::from_secs(300))
    }
}

/// 1 s, 2 s, 4 s … capped at 300 s, each stretched by up to 50 % of jitter.
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let base = 2f64
        .powi(attempt.saturating_sub(1).min(16) as i32)
        .min(300.0);
    Duration::from_secs_f64((base * (1.0 + 0.5 * jitter.clamp(0.0, 1.0))).min(300.0))
}

/// A deterministic spread in [0, 1) per tenant and attempt, so tenants that
/// failed together do not retry in lockstep.
fn jitter(tenant: &CrmTenant, attempt: u32) -> f64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    tenant.uid().hash(&mut hasher);
    tenant.name_any().hash(&mut hasher);
    attempt.hash(&mut hasher);
    (hasher.finish() % 1000) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_and_is_capped_at_five_minutes() {
        assert_eq!(backoff(1, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(2, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(5, 0.0), Duration::from_secs(16));
        assert_eq!(backoff(40, 1.0), Duration::from_secs(300));
    }

    #[test]
    fn jitter_stretches_by_at_most_half() {
        assert_eq!(backoff(3, 1.0), Duration::from_secs(6));
        assert!(backoff(3, 0.3) > backoff(3, 0.0));
    }
}
