//! A small LRU cache for hot reads (companies and contacts by id).
//!
//! Consistency: every write on this replica evicts the entries it touches
//! before answering, so a replica never serves its own stale data. Other
//! replicas may serve an entry for at most the TTL (`CRM_CACHE_TTL_SECS`,
//! default 5 s) after a write elsewhere; set it to 0 to disable the cache.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;

use crate::customers::{Company, Contact};

/// What the cache holds.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A company.
    Company(Company),
    /// A contact.
    Contact(Contact),
}

/// Key: kind and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// A company id.
    Company(i64),
    /// A contact id.
    Contact(i64),
}

/// Shared, bounded, time-limited cache.
#[derive(Debug, Clone)]
pub struct Cache {
    inner: Arc<Mutex<LruCache<Key, (Instant, Entry)>>>,
    ttl: Duration,
}

impl Cache {
    /// A cache of `capacity` entries living `ttl` each.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        let cap = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            inner: Arc::new(Mutex::new(LruCache::new(cap))),
            ttl,
        }
    }

    /// A fresh entry, if any.
    pub fn get(&self, key: Key) -> Option<Entry> {
        if self.ttl.is_zero() {
            return None;
        }
        let mut c = self.inner.lock().ok()?;
        match c.get(&key) {
            Some((at, e)) if at.elapsed() < self.ttl => Some(e.clone()),
            Some(_) => {
                c.pop(&key);
                None
            }
            None => None,
        }
    }

    /// Remember an entry.
    pub fn put(&self, key: Key, entry: Entry) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut c) = self.inner.lock() {
            c.put(key, (Instant::now(), entry));
        }
    }

    /// Forget one entry.
    pub fn evict(&self, key: Key) {
        if let Ok(mut c) = self.inner.lock() {
            c.pop(&key);
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
