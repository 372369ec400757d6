//! The one list of child kinds.
//!
//! ```text
//!  children! { field: kind, what it holds; … }
//!       ├─► Stores: one reflector cache per kind, of compact objects
//!       │   (crate::compact)
//!       ├─► Watch::all: one watch per kind, feeding its cache, the ledger,
//!       │   the owner index and the sync tracker
//!       ├─► Streams::own: the controller `owns` every kind
//!       ├─► WATCHES: what the sync tracker waits for
//!       └─► Stores::prune: per kind, the tenant's children minus the desired
//! ```
//!
//! A new kind of child is one line here, one field of `build::Desired`, and
//! its RBAC rule (a test checks that `rbac` covers every kind listed here).

use std::fmt::Debug;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ApiResource};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};

use crate::compact::{Compact, Compactable};
use crate::gateway_api::HttpRoute;
use crate::ledger::Ledger;
use crate::owned::Owned;
use crate::synced::Synced;
use crm_crds::CrmTenant;

/// What a kind of child holds, which decides when pruning may remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holds {
    /// Configuration the operator can build again at any time.
    Config,
    /// The tenant's data or the credentials that open it: removed only
    /// under `deletionPolicy: Delete`.
    Data,
}

/// One kind of child, as RBAC and pruning see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    /// `kind`.
    pub kind: &'static str,
    /// API group, empty for the core group.
    pub group: &'static str,
    /// Plural resource name.
    pub plural: &'static str,
    /// What it holds.
    pub holds: Holds,
}

/// A child the tenant owns but no longer wants.
#[derive(Clone, Debug)]
pub struct Orphan {
    /// `kind` of the object.
    pub kind: &'static str,
    /// `metadata.name`.
    pub name: String,
    /// Where the API serves its kind.
    pub resource: ApiResource,
}

type Events<K> = std::pin::Pin<Box<dyn Stream<Item = Result<K, watcher::Error>> + Send>>;

macro_rules! children {
    ($($field:ident: $kind:ty, $holds:expr;)*) => {
        /// Caches of every kind of child, filled by the controller's watches.
        #[derive(Clone, Debug)]
        pub struct Stores {
            $(
                #[doc = concat!("`", stringify!($kind), "` children.")]
                pub $field: Store<Compact<$kind>>,
            )*
            /// Writes of this process the caches have not shown yet.
            pub applied: Ledger,
            /// The children each tenant owns, from the same watches.
            pub owned: Owned,
            /// Whether every watch has listed.
            pub synced: Synced,
            /// Plurals of the kinds the cluster does not serve (see [`unserved`]).
            pub unserved: Vec<&'static str>,
        }

        /// The watch streams of every kind, for the controller's `owns`.
        #[allow(missing_debug_implementations)]
        pub struct Streams {
            $($field: Events<Compact<$kind>>,)*
        }

        /// Every kind of child.
        pub const KINDS: &[Kind] = &[
            $(Kind {
                kind: <$kind as k8s_openapi::Resource>::KIND,
                group: <$kind as k8s_openapi::Resource>::GROUP,
                plural: <$kind as k8s_openapi::Resource>::URL_PATH_SEGMENT,
                holds: $holds,
            },)*
        ];

        /// The watches the sync tracker waits for: tenants and every kind.
        pub const WATCHES: usize = 1 + KINDS.len();

        impl Watch<'_> {
            /// Starts a watch of every kind of child.
            pub fn all(&self) -> (Stores, Streams) {
                $(let $field = self.cached::<$kind>();)*
                let stores = Stores {
                    $($field: $field.0,)*
                    applied: self.ledger.clone(),
                    owned: self.owned.clone(),
                    synced: self.synced.clone(),
                    unserved: self.unserved.to_vec(),
                };
                (stores, Streams { $($field: $field.1,)* })
            }
        }

        impl Streams {
            /// The controller, reconciling a tenant whenever one of its
            /// children changes.
            pub fn own(self, controller: Controller<CrmTenant>) -> Controller<CrmTenant> {
                controller $(.owns_stream(self.$field))*
            }
        }

        impl Stores {
            /// Whether a child of kind `K` missing from its cache surely
            /// does not exist: every watch has listed, and no apply of
            /// ours to that name is still on its way to the cache. Else
            /// only the API server can tell.
            pub fn surely_absent<K: Resource<DynamicType = ()>>(
                &self,
                namespace: &str,
                name: &str,
            ) -> bool {
                self.synced.is_synced() && !self.applied.stands::<K>(namespace, name)
            }

            /// The tenant's children (owned by its UID, confirmed in the
            /// caches) that `wanted` does not name, kind by kind, leaving out
            /// what holds data unless `data_too`.
            pub fn orphans(
                &self,
                owner_uid: &str,
                namespace: &str,
                wanted: &[(&str, &str)],
                data_too: bool,
            ) -> Vec<Orphan> {
                let mut found = Vec::new();
                $(
                    if data_too || $holds != Holds::Data {
                        let kind = <$kind as k8s_openapi::Resource>::KIND;
                        found.extend(
                            orphans(&self.$field, &self.owned, owner_uid, namespace, kind, wanted)
                                .into_iter()
                                .map(|name| Orphan {
                                    kind,
                                    name,
                                    resource: ApiResource::erase::<$kind>(&()),
                                }),
                        );
                    }
                )*
                found
            }
        }
    };
}

children! {
    service_accounts: ServiceAccount, Holds::Config;
    secrets: Secret, Holds::Data;
    config_maps: ConfigMap, Holds::Config;
    deployments: Deployment, Holds::Config;
    services: Service, Holds::Config;
    hpas: HorizontalPodAutoscaler, Holds::Config;
    pdbs: PodDisruptionBudget, Holds::Config;
    network_policies: NetworkPolicy, Holds::Config;
    ingresses: Ingress, Holds::Config;
    http_routes: HttpRoute, Holds::Config;
    statefulsets: StatefulSet, Holds::Config;
    // Their status tells how a backup, move or restore went.
    cron_jobs: CronJob, Holds::Config;
    jobs: Job, Holds::Config;
    volumes: PersistentVolumeClaim, Holds::Data;
}

/// Names of the tenant's children of `kind` in `store` that `wanted` does
/// not name: candidates from the owner index, confirmed in the cache as
/// owned by this very tenant (its UID), so a namesake is never touched.
fn orphans<K>(
    store: &Store<K>,
    owned: &Owned,
    owner_uid: &str,
    namespace: &str,
    kind: &str,
    wanted: &[(&str, &str)],
) -> Vec<String>
where
    K: Resource<DynamicType = ()> + Clone,
{
    owned
        .names::<K>(owner_uid, namespace)
        .into_iter()
        .filter(|name| !wanted.contains(&(kind, name.as_str())))
        .filter(|name| {
            store
                .get(&ObjectRef::new(name).within(namespace))
                .is_some_and(|o| o.owner_references().iter().any(|r| r.uid == owner_uid))
        })
        .collect()
}

/// Where and how the child watches list and watch, and who reads their events
/// besides the caches.
#[allow(missing_debug_implementations)]
pub struct Watch<'a> {
    /// The API client.
    pub client: &'a Client,
    /// One namespace, or all.
    pub namespace: Option<&'a str>,
    /// Label selector and page size.
    pub config: &'a watcher::Config,
    /// Ends ledger entries as our writes arrive.
    pub ledger: &'a Ledger,
    /// The owner index.
    pub owned: &'a Owned,
    /// Counts the watches that have listed.
    pub synced: &'a Synced,
    /// Plurals of the kinds the cluster does not serve: not watched, and
    /// counted as listed (empty).
    pub unserved: &'a [&'static str],
}

/// Which optional kinds of child the cluster does not serve: HTTPRoutes
/// come with the Gateway API's CRDs, which many clusters lack. Asked once
/// at start (the answer holds until the operator restarts); an answer
/// other than "not found" counts as served, so the watch keeps retrying.
pub async fn unserved(client: &Client) -> Vec<&'static str> {
    use k8s_openapi::Resource as _;
    let plural = HttpRoute::URL_PATH_SEGMENT;
    match client
        .list_api_group_resources(HttpRoute::API_VERSION)
        .await
    {
        Ok(list) if list.resources.iter().any(|r| r.name == plural) => Vec::new(),
        Ok(_) => vec![plural],
        Err(kube::Error::Api(status)) if status.code == 404 => vec![plural],
        Err(error) => {
            tracing::warn!(%error, "could not ask whether the cluster serves HTTPRoutes");
            Vec::new()
        }
    }
}

impl Watch<'_> {
    /// A cache of one child kind, and the stream that fills it and feeds
    /// the ledger, the owner index and the sync tracker, and then the
    /// controller with every change but the echoes of our own applies.
    fn cached<K>(&self) -> (Store<Compact<K>>, Events<Compact<K>>)
    where
        K: Compactable<Scope = k8s_openapi::NamespaceResourceScope>,
    {
        let (reader, writer) = reflector::store();
        if self.unserved.contains(&K::plural(&()).as_ref()) {
            self.synced
                .observe(&K::kind(&()), &watcher::Event::<Compact<K>>::InitDone);
            return (reader, futures::stream::pending().boxed());
        }
        let (ledger, owned, synced) =
            (self.ledger.clone(), self.owned.clone(), self.synced.clone());
        let api = match self.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let events = watcher(api, self.config.clone())
            .default_backoff()
            .reflect(writer)
            .try_filter(move |event| {
                let ours = ledger.observe(event);
                owned.observe(event);
                synced.observe(&K::kind(&()), event);
                // The echo of our own apply wakes no one: the reconcile that
                // wrote it knew that state, and the cache now holds it.
                futures::future::ready(!ours)
            })
            .touched_objects()
            .boxed();
        (reader, events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::{RULES, Scope};

    #[test]
    fn rbac_lets_the_operator_watch_apply_and_prune_every_kind_of_child() {
        for kind in KINDS {
            let rule = RULES
                .iter()
                .find(|r| r.group == kind.group && r.resource == kind.plural)
                .unwrap_or_else(|| panic!("no RBAC rule for {}", kind.plural));
            assert_eq!(rule.scope, Scope::Cluster, "{}", kind.plural);
            for verb in ["create", "delete", "list", "patch", "watch"] {
                assert!(rule.verbs.contains(&verb), "{} lacks {verb}", kind.plural);
            }
        }
        assert_eq!(WATCHES, KINDS.len() + 1);
    }
}
