//! kube-runtime wiring: watch CrmTenants and every kind of child they own
//! ([`crate::kinds`]), and reconcile each tenant ([`crate::reconcile`]).
//!
//! Children are read from reflector caches, never fetched one by one; volume
//! claims are watched as metadata only, since nothing of them but their
//! existence matters here.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::Api;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector;
use kube::runtime::{Predicate, PredicateConfig, WatchStreamExt, predicates, watcher};
use kube::{Client, Resource, ResourceExt};

use crate::Error;
use crate::context::Context;
use crate::kinds::{self, Watch};
use crate::labels::CHILD_SELECTOR;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::owned::Owned;
use crate::reconcile;
use crate::recorder::Recorder;
use crate::synced::Synced;
use crm_crds::CrmTenant;

pub use crate::context::{DEFAULT_SHARED_SERVERS_NAMESPACE, Settings};

/// Objects per page when watchers list.
pub const PAGE_SIZE: u32 = 50;

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
    let synced = Synced::new(kinds::WATCHES);
    let unserved = kinds::unserved(&client).await;
    if !unserved.is_empty() {
        tracing::info!(
            ?unserved,
            "the cluster does not serve these kinds: not watching them"
        );
    }
    let watch = Watch {
        client: &client,
        namespace: ns,
        config: &children,
        ledger: &Ledger::new(),
        owned: &Owned::new(),
        synced: &synced,
        unserved: &unserved,
    };
    let (stores, streams) = watch.all();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: settings.reporter.clone(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    let context = Arc::new(Context::new(
        client.clone(),
        stores,
        recorder,
        settings.clone(),
        metrics.clone(),
        synced.clone(),
    ));
    // Status writes (ours included) change neither generation, labels nor
    // annotations: they do not wake the tenant again, so a failure's status
    // update cannot cut its backoff short. A deletion request wakes it: a
    // Shared tenant's finalizer waits for its cleanup.
    let (tenant_cache, tenant_writer) = reflector::store();
    metrics.count_tenants(Some(tenant_cache.clone()));
    let marker = tokio::spawn(mark_synced(synced.clone(), metrics.clone()));
    let tenant_events = watcher(api::<CrmTenant>(&client, ns), tenants)
        .default_backoff()
        .modify(trim_tenant)
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
    streams
        .own(Controller::for_stream(tenant_events, tenant_cache))
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

/// Drops from a cached tenant what no reconcile reads: its managed fields and
/// the copy of the whole manifest `kubectl apply` keeps in an annotation,
/// which together are often larger than the rest of the object.
fn trim_tenant(tenant: &mut CrmTenant) {
    tenant.managed_fields_mut().clear();
    tenant
        .annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
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
