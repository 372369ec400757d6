//! What this process applied and its caches have not shown yet.
//!
//! A watch delivers our own writes a moment after the API server answers
//! them. Until it does, a reconcile woken by one child's creation sees the
//! others as missing and would apply them all again; on the first pass of
//! many tenants that multiplies every write by the number of children. The
//! ledger closes that window: an apply is remembered with the
//! resourceVersion the API server returned, and forgotten as soon as the
//! watch delivers that version (from then on the cache is the truth again),
//! when the object is deleted, or after [`WINDOW`], whichever comes first.
//! An entry answers only for the very object it recorded: a different
//! desired object is always applied.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::watcher;
use serde::Serialize;

use crate::ownership::APPLIED_DIGEST;

/// Longest an entry stands in for the cache: a watch that skipped our
/// version (a relist after a disconnect) cannot hide drift for longer.
pub const WINDOW: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    kind: String,
    namespace: String,
    name: String,
}

#[derive(Clone, Debug)]
struct Entry {
    digest: u64,
    resource_version: Option<String>,
    at: Instant,
}

/// Recent applies, shared by every reconcile and every child watch.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    entries: Arc<Mutex<HashMap<Key, Entry>>>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `desired` was applied within the window and the cache has not
    /// caught up with that write yet.
    pub fn pending<K>(&self, desired: &K) -> bool
    where
        K: kube::Resource<DynamicType = ()> + Serialize,
    {
        let Some(digest) = digest(desired) else {
            return false;
        };
        let mut entries = self.lock();
        let key = key(desired);
        match entries.get(&key) {
            Some(entry) if entry.at.elapsed() < WINDOW => entry.digest == digest,
            Some(_) => {
                entries.remove(&key);
                false
            }
            None => false,
        }
    }

    /// Remembers that `desired` was applied and the API server answered
    /// with `resource_version`, unless the cache already holds that version
    /// (`cached` gives the version it holds): the watch may deliver a write
    /// before its caller hears back, and an entry made after that would
    /// never be ended by the watch.
    pub fn record<K>(
        &self,
        desired: &K,
        resource_version: Option<String>,
        cached: impl FnOnce() -> Option<String>,
    ) where
        K: kube::Resource<DynamicType = ()> + Serialize,
    {
        let Some(digest) = digest(desired) else {
            return;
        };
        // Under the lock: `observe` runs after the cache took the event, so
        // either the cache shows the version here or `observe` comes after.
        let mut entries = self.lock();
        if resource_version.is_some() && cached() == resource_version {
            entries.remove(&key(desired));
            return;
        }
        let now = Instant::now();
        entries.retain(|_, entry| now.duration_since(entry.at) < WINDOW);
        entries.insert(
            key(desired),
            Entry {
                digest,
                resource_version,
                at: now,
            },
        );
    }

    /// Reads one watch event: a delivered version we wrote, or a deletion,
    /// ends the entry. True when the event is the echo of our own write,
    /// which tells its owner nothing new: the reconcile that applied it
    /// already knew that state.
    pub fn observe<K>(&self, event: &watcher::Event<K>) -> bool
    where
        K: kube::Resource<DynamicType = ()>,
    {
        match event {
            watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                let mut entries = self.lock();
                let key = key(object);
                let ours = entries.get(&key).is_some_and(|e| {
                    e.resource_version.is_some() && e.resource_version == object.resource_version()
                });
                if ours {
                    entries.remove(&key);
                }
                ours
            }
            watcher::Event::Delete(object) => {
                self.lock().remove(&key(object));
                false
            }
            watcher::Event::Init | watcher::Event::InitDone => false,
        }
    }

    /// Whether an apply of ours to the object of kind `K` named `name` in
    /// `namespace` is within the window and not yet in the cache, whatever
    /// was applied.
    pub fn stands<K>(&self, namespace: &str, name: &str) -> bool
    where
        K: kube::Resource<DynamicType = ()>,
    {
        let key = Key {
            kind: K::kind(&()).into_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        self.lock()
            .get(&key)
            .is_some_and(|entry| entry.at.elapsed() < WINDOW)
    }

    /// Entries standing, expired or not.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no entry stands.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        // A panic while holding the lock leaves a map that is still valid.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn key<K: kube::Resource<DynamicType = ()>>(object: &K) -> Key {
    Key {
        kind: K::kind(&()).into_owned(),
        namespace: object.namespace().unwrap_or_default(),
        name: object.name_any(),
    }
}

/// What tells one applied object from another: the digest of the whole
/// object an apply is stamped with ([`crate::ownership::stamp`]), else a
/// hash of the object's JSON. Reading the stamp spares serializing every
/// child twice more per apply.
fn digest<K>(object: &K) -> Option<u64>
where
    K: kube::Resource<DynamicType = ()> + Serialize,
{
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    match object.annotations().get(APPLIED_DIGEST) {
        Some(stamped) => stamped.hash(&mut hasher),
        None => serde_json::to_vec(object).ok()?.hash(&mut hasher),
    }
    Some(hasher.finish())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;
    use kube::runtime::watcher::Event;

    use super::Ledger;

    fn config_map(data: &str, resource_version: Option<&str>) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("acme-config".into()),
                namespace: Some("tenants".into()),
                resource_version: resource_version.map(Into::into),
                ..ObjectMeta::default()
            },
            data: Some([("k".to_owned(), data.to_owned())].into()),
            ..ConfigMap::default()
        }
    }

    #[test]
    fn an_apply_stands_until_the_watch_delivers_its_version() {
        let ledger = Ledger::new();
        let desired = config_map("v1", None);
        assert!(!ledger.pending(&desired));
        ledger.record(&desired, Some("7".into()), || Some("6".into()));
        assert!(ledger.pending(&desired));
        // An older version arriving does not end it.
        assert!(!ledger.observe(&Event::Apply(config_map("v0", Some("6")))));
        assert!(ledger.pending(&desired));
        // Our own write's echo.
        assert!(ledger.observe(&Event::Apply(config_map("v1", Some("7")))));
        assert!(!ledger.pending(&desired));
        // Once ended, the same version is news again (a relist).
        assert!(!ledger.observe(&Event::Apply(config_map("v1", Some("7")))));
        assert!(ledger.is_empty());
    }

    #[test]
    fn an_apply_stands_for_its_name_whatever_was_applied() {
        let ledger = Ledger::new();
        assert!(!ledger.stands::<ConfigMap>("tenants", "acme-config"));
        ledger.record(&config_map("v1", None), Some("7".into()), || None);
        assert!(ledger.stands::<ConfigMap>("tenants", "acme-config"));
        assert!(!ledger.stands::<ConfigMap>("tenants", "other-config"));
        assert!(!ledger.stands::<ConfigMap>("elsewhere", "acme-config"));
        ledger.observe(&Event::Apply(config_map("v1", Some("7"))));
        assert!(!ledger.stands::<ConfigMap>("tenants", "acme-config"));
    }

    #[test]
    fn a_different_desired_object_is_never_pending() {
        let ledger = Ledger::new();
        ledger.record(&config_map("v1", None), Some("7".into()), || None);
        assert!(!ledger.pending(&config_map("v2", None)));
    }

    #[test]
    fn stamped_objects_are_told_apart_by_their_stamp() {
        use crate::ownership::stamp;
        let ledger = Ledger::new();
        ledger.record(&stamp(&config_map("v1", None)), Some("7".into()), || None);
        assert!(ledger.pending(&stamp(&config_map("v1", None))));
        assert!(!ledger.pending(&stamp(&config_map("v2", None))));
        assert!(!ledger.pending(&config_map("v1", None)));
    }

    #[test]
    fn a_write_the_cache_already_shows_is_not_recorded() {
        // The watch delivered version 7 before the apply's answer came back.
        let ledger = Ledger::new();
        let desired = config_map("v1", None);
        ledger.record(&desired, Some("7".into()), || Some("7".into()));
        assert!(!ledger.pending(&desired));
        assert!(ledger.is_empty());
    }

    #[test]
    fn a_deletion_ends_the_entry() {
        let ledger = Ledger::new();
        let desired = config_map("v1", None);
        ledger.record(&desired, Some("7".into()), || None);
        ledger.observe(&Event::Delete(config_map("v1", Some("7"))));
        assert!(!ledger.pending(&desired));
    }
}
