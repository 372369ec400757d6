//! Which children each tenant owns, kept from the watch events, so that
//! pruning one tenant looks at its own children instead of scanning every
//! object of the kind: a scan per reconcile grows with the square of the
//! tenant count.
//!
//! The index may hold names that no longer exist (a deletion missed while a
//! watch was disconnected); callers confirm each name in the cache.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use kube::ResourceExt;
use kube::runtime::watcher;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    owner: String,
    kind: String,
}

/// `(namespace, name)` of children, by owner UID and kind.
type Index = HashMap<Key, BTreeSet<(String, String)>>;

/// Children by owner UID and kind.
#[derive(Clone, Debug, Default)]
pub struct Owned {
    index: Arc<Mutex<Index>>,
}

impl Owned {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one watch event.
    pub fn observe<K>(&self, event: &watcher::Event<K>)
    where
        K: kube::Resource<DynamicType = ()>,
    {
        match event {
            watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                let mut index = self.lock();
                for key in keys(object) {
                    index
                        .entry(key)
                        .or_default()
                        .insert((object.namespace().unwrap_or_default(), object.name_any()));
                }
            }
            watcher::Event::Delete(object) => {
                let mut index = self.lock();
                for key in keys(object) {
                    if let Some(names) = index.get_mut(&key) {
                        names.remove(&(object.namespace().unwrap_or_default(), object.name_any()));
                        if names.is_empty() {
                            index.remove(&key);
                        }
                    }
                }
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }

    /// Names of the children of kind `K` that the owner with `uid` has in
    /// `namespace`.
    pub fn names<K>(&self, uid: &str, namespace: &str) -> Vec<String>
    where
        K: kube::Resource<DynamicType = ()>,
    {
        let key = Key {
            owner: uid.to_owned(),
            kind: K::kind(&()).into_owned(),
        };
        self.lock()
            .get(&key)
            .map(|names| {
                names
                    .iter()
                    .filter(|(ns, _)| ns == namespace)
                    .map(|(_, name)| name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        // A panic while holding the lock leaves a map that is still valid.
        self.index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn keys<K: kube::Resource<DynamicType = ()>>(object: &K) -> impl Iterator<Item = Key> + '_ {
    object.owner_references().iter().map(|owner| Key {
        owner: owner.uid.clone(),
        kind: K::kind(&()).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::api::ObjectMeta;
    use kube::runtime::watcher::Event;

    use super::Owned;

    fn config_map(name: &str, owner: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("tenants".into()),
                owner_references: Some(vec![OwnerReference {
                    uid: owner.into(),
                    ..OwnerReference::default()
                }]),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    #[test]
    fn children_are_found_by_owner_kind_and_namespace_until_deleted() {
        let owned = Owned::new();
        owned.observe(&Event::InitApply(config_map("a-config", "uid-a")));
        owned.observe(&Event::Apply(config_map("a-extra", "uid-a")));
        owned.observe(&Event::Apply(config_map("b-config", "uid-b")));
        assert_eq!(
            owned.names::<ConfigMap>("uid-a", "tenants"),
            ["a-config", "a-extra"]
        );
        assert!(owned.names::<ConfigMap>("uid-a", "elsewhere").is_empty());
        assert!(owned.names::<Secret>("uid-a", "tenants").is_empty());
        owned.observe(&Event::Delete(config_map("a-extra", "uid-a")));
        assert_eq!(owned.names::<ConfigMap>("uid-a", "tenants"), ["a-config"]);
    }
}
