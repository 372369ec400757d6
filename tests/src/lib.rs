//! A stateful Kubernetes API-server double for the operator's tests.
//!
//! ```text
//!  kube::Client ──http::Request──► ApiDouble (tower::Service)
//!                                    │ log + faults
//!                                    │ route: /api/v1/… | /apis/{g}/{v}/…
//!                                    ▼
//!                 State { objects: (group, version, plural, ns, name) → JSON,
//!                         resourceVersion counter, event history }
//!                                    │ broadcast, one channel per resource type
//!                                    ▼
//!                          watch streams (newline-delimited JSON)
//! ```
//!
//! The double keeps objects as `serde_json::Value` and applies the API
//! server's rules that the operator relies on: metadata (uid,
//! resourceVersion, generation, creationTimestamp), the `/status` and
//! `/scale` subresources, finalizers, owner cascade, label selectors,
//! pagination, watches with resume and 410 Expired, metadata-only answers,
//! the four PATCH flavours, and server-side apply's field ownership
//! (`managedFields` per manager, removal of dropped fields, conflicts; see
//! `fields`). An HPA controller runs on request (`autoscaler`).
//!
//! Simplifications: lists are atomic under server-side apply (owned and
//! replaced whole); strategic merge patch is a JSON merge patch; cascading
//! deletion is immediate whatever the propagation policy; no admission or
//! schema validation, and no defaulting but `spec.replicas`; label
//! selectors are equality-based only (`a=b`, `a!=b`, `a`, `!a`); `dryRun`
//! and delete preconditions are ignored; watches send no BOOKMARK events;
//! `continue` tokens name the last key of the page.
#![forbid(unsafe_code)]

mod autoscaler;
mod controls;
mod feeds;
mod fields;
mod handlers;
mod route;
mod store;
mod watch;

use std::convert::Infallible;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;

pub use autoscaler::CONTROLLER_MANAGER;
pub use controls::{Fault, FaultResponse, Request};

/// Polls `check` every `every` until it returns something. After `within`
/// it fails the test naming `what`, with the last requests `double` served.
pub async fn eventually<T>(
    double: &ApiDouble,
    what: &str,
    within: std::time::Duration,
    every: std::time::Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; last requests: {:#?}",
            double
                .request_log()
                .iter()
                .rev()
                .take(8)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(every).await;
    }
}

/// A manifest of the repository's `examples/` folder, parsed.
pub fn example<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("example manifest {}: {e}", path.display()));
    serde_saphyr::from_str(&text)
        .unwrap_or_else(|e| panic!("example {} parses: {e}", path.display()))
}

/// The superuser URL of the throwaway PostgreSQL server the test command
/// starts. Tests that need PostgreSQL fail here, loudly, when there is none.
pub fn test_postgres_url() -> String {
    match std::env::var("CRM_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "CRM_TEST_POSTGRES_URL is not set: this test needs PostgreSQL; \
             run it through scripts/with-postgres (scripts/test does)"
        ),
    }
}

/// Body of every response the double sends.
pub type DoubleBody = UnsyncBoxBody<Bytes, Infallible>;

/// The API-server double. Cheap to clone: clones share one state.
#[derive(Clone, Debug)]
pub struct ApiDouble {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<store::State>,
    events: feeds::Feeds,
    /// Nanoseconds the store has been held, in all.
    held: AtomicU64,
}

impl Default for ApiDouble {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiDouble {
    /// An empty API server.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(store::State::default()),
                events: feeds::Feeds::default(),
                held: AtomicU64::new(0),
            }),
        }
    }

    /// A `kube::Client` talking to this double, default namespace `default`.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.clone(), "default")
    }

    fn lock(&self) -> Held<'_> {
        let guard = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Held {
            guard,
            since: Instant::now(),
            held: &self.inner.held,
        }
    }

    /// How long the store has been held, in all: every request's work on
    /// it (and every test's look) runs under one lock, so this is the part
    /// of a run that no second core can share.
    pub fn store_held(&self) -> Duration {
        Duration::from_nanos(self.inner.held.load(Ordering::Relaxed))
    }

    fn tx(&self) -> &feeds::Feeds {
        &self.inner.events
    }
}

/// The store, locked, counting how long it is held.
struct Held<'a> {
    guard: MutexGuard<'a, store::State>,
    since: Instant,
    held: &'a AtomicU64,
}

impl Deref for Held<'_> {
    type Target = store::State;

    fn deref(&self) -> &store::State {
        &self.guard
    }
}

impl DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut store::State {
        &mut self.guard
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let nanos = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.held.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl tower::Service<http::Request<kube::client::Body>> for ApiDouble {
    type Response = http::Response<DoubleBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<kube::client::Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(handlers::handle(&this, req).await) })
    }
}
