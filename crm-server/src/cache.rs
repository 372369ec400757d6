//! A small LRU cache for hot reads, of any key and value (the customers
//! module keeps companies and contacts by id in it).
//!
//! Consistency: every write on this replica evicts the entries it touches
//! before answering, so a replica never serves its own stale data. Other
//! replicas may serve an entry for at most the TTL (`CRM_CACHE_TTL_SECS`,
//! default 5 s) after a write elsewhere; set it to 0 to disable the cache.

use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;

/// Shared, bounded, time-limited cache.
#[derive(Debug)]
pub struct Cache<K: Hash + Eq, V> {
    inner: Arc<Mutex<LruCache<K, (Instant, V)>>>,
    ttl: Duration,
}

impl<K: Hash + Eq, V> Clone for Cache<K, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            ttl: self.ttl,
        }
    }
}

impl<K: Hash + Eq, V: Clone> Cache<K, V> {
    /// A cache of `capacity` entries living `ttl` each.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        let cap = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            inner: Arc::new(Mutex::new(LruCache::new(cap))),
            ttl,
        }
    }

    /// A fresh entry, if any.
    pub fn get(&self, key: &K) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        let mut c = self.inner.lock().ok()?;
        match c.get(key) {
            Some((at, e)) if at.elapsed() < self.ttl => Some(e.clone()),
            Some(_) => {
                c.pop(key);
                None
            }
            None => None,
        }
    }

    /// Remember an entry.
    pub fn put(&self, key: K, entry: V) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut c) = self.inner.lock() {
            c.put(key, (Instant::now(), entry));
        }
    }

    /// Forget one entry.
    pub fn evict(&self, key: &K) {
        if let Ok(mut c) = self.inner.lock() {
            c.pop(key);
        }
    }

    /// Forget everything (writes with cascading effects, e.g. deleting a
    /// company unlinks its contacts).
    pub fn clear(&self) {
        if let Ok(mut c) = self.inner.lock() {
            c.clear();
        }
    }
}
