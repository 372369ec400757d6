//! When every watch has listed what exists.
//!
//! The tracker reads the watch streams themselves (their `InitDone` events)
//! instead of waiting on each reflector store: a store's readiness can wake
//! only the waiter that polled it last, so many reconciles waiting on it at
//! once would not all be woken. Here any number may wait.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use kube::runtime::watcher;
use tokio::sync::watch;

/// Which watches have listed, and a signal once all have.
#[derive(Clone, Debug)]
pub struct Synced {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    expected: usize,
    listed: Mutex<HashSet<String>>,
    tx: watch::Sender<bool>,
}

impl Synced {
    /// A tracker waiting for `expected` distinct watches.
    pub fn new(expected: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                expected,
                listed: Mutex::new(HashSet::new()),
                tx: watch::Sender::new(expected == 0),
            }),
        }
    }

    /// Reads one event of the watch called `name`; its first `InitDone`
    /// counts it as listed. A relist later changes nothing: the cache keeps
    /// serving its last state meanwhile.
    pub fn observe<K>(&self, name: &str, event: &watcher::Event<K>) {
        if !matches!(event, watcher::Event::InitDone) {
            return;
        }
        let mut listed = self
            .inner
            .listed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if listed.insert(name.to_owned()) && listed.len() >= self.inner.expected {
            self.inner.tx.send_replace(true);
        }
    }

    /// Whether every watch has listed.
    pub fn is_synced(&self) -> bool {
        *self.inner.tx.borrow()
    }

    /// Resolves once every watch has listed.
    pub async fn wait(&self) {
        let mut rx = self.inner.tx.subscribe();
        // The sender lives in `self`, so the channel cannot close here.
        let _ = rx.wait_for(|synced| *synced).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher::Event;

    use super::Synced;

    #[tokio::test]
    async fn every_waiter_wakes_once_all_watches_listed() {
        let synced = Synced::new(2);
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let synced = synced.clone();
                tokio::spawn(async move { synced.wait().await })
            })
            .collect();
        synced.observe::<ConfigMap>("a", &Event::InitDone);
        synced.observe::<ConfigMap>("a", &Event::InitDone);
        assert!(!synced.is_synced(), "one watch listed twice is not two");
        synced.observe::<ConfigMap>("b", &Event::Init);
        assert!(!synced.is_synced());
        synced.observe::<ConfigMap>("b", &Event::InitDone);
        assert!(synced.is_synced());
        for waiter in waiters {
            tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .expect("every waiter wakes")
                .expect("waiter finished");
        }
    }
}
