//! Which children each tenant owns, kept from the watch events, so that
//! pruning one tenant looks at its own children instead of scanning every
//! object of the kind: a scan per reconcile grows with the square of the
//! tenant count.
//!
//! The index may hold names that no longer exist (a deletion missed while a
//! watch was disconnected); callers confirm each name in the cache.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use kube::ResourceExt;
use kube::runtime::watcher;

/// One child, as the index knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Child {
    kind: Cow<'static, str>,
    namespace: Box<str>,
    name: Box<str>,
}

/// Children by owner UID: a tenant has about ten, so a short list scanned
/// in place costs less memory than a map per owner and kind (a map entry
/// and a tree node per child were a tenth of the operator's heap at 1,000
/// tenants).
type Index = HashMap<Box<str>, Vec<Child>>;

/// Children by owner UID.
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
                let child = child(object);
                let mut index = self.lock();
                for owner in object.owner_references() {
                    match index.get_mut(owner.uid.as_str()) {
                        Some(children) if children.contains(&child) => {}
                        Some(children) => children.push(child.clone()),
                        None => {
                            index.insert(owner.uid.as_str().into(), vec![child.clone()]);
                        }
                    }
                }
            }
            watcher::Event::Delete(object) => {
                let child = child(object);
                let mut index = self.lock();
                for owner in object.owner_references() {
                    if let Some(children) = index.get_mut(owner.uid.as_str()) {
                        children.retain(|c| *c != child);
                        if children.is_empty() {
                            index.remove(owner.uid.as_str());
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
        let kind = K::kind(&());
        self.lock()
            .get(uid)
            .map(|children| {
                children
                    .iter()
                    .filter(|c| c.kind == kind && &*c.namespace == namespace)
                    .map(|c| c.name.to_string())
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

fn child<K: kube::Resource<DynamicType = ()>>(object: &K) -> Child {
    Child {
        kind: K::kind(&()),
        namespace: object.namespace().unwrap_or_default().into(),
        name: object.name_any().into(),
    }
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
        // A change of a child already known adds nothing.
        owned.observe(&Event::Apply(config_map("a-config", "uid-a")));
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
