//! Test controls: request log, faults and typed object helpers.

use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ApiDouble;
use crate::fields::{Scope, Writer};
use crate::route::Res;
use crate::store::{Key, Mode, Owner};

/// The manager of objects a test seeds, as `kubectl create` would be.
const SEEDER: Writer<'static> = Writer {
    manager: "kubectl-create",
    scope: Scope::Main,
};
/// The manager of a test's edits, as `kubectl edit` would be.
const EDITOR: Writer<'static> = Writer {
    manager: "kubectl-edit",
    scope: Scope::Main,
};
/// The manager of status a test reports, as the workload controllers would.
const CONTROLLERS: Writer<'static> = Writer {
    manager: "kube-controller-manager",
    scope: Scope::Status,
};

/// One request as the double saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// HTTP method: `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub verb: String,
    /// Path with query string.
    pub path: String,
    /// `Content-Type` header, empty when absent.
    pub content_type: String,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Request {
    /// Whether the request writes (POST, PUT, PATCH, DELETE).
    pub fn is_write(&self) -> bool {
        matches!(self.verb.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
    }

    /// Whether the request goes to the Events API (either group).
    pub fn is_event(&self) -> bool {
        let path = self.path.split('?').next().unwrap_or("");
        path.contains("/events")
    }
}

/// What an injected fault answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultResponse {
    /// A `metav1.Status` failure with this HTTP code.
    Status(u16),
    /// Never answer.
    Hang,
}

/// A fault for matching requests, used `times` times.
#[derive(Clone, Debug)]
pub struct Fault {
    /// HTTP method to match (case-insensitive); `None` matches all.
    pub verb: Option<&'static str>,
    /// Substring of path-and-query to match; `None` matches all.
    pub path_contains: Option<String>,
    /// The answer.
    pub response: FaultResponse,
    /// How many requests it applies to.
    pub times: usize,
}

impl Fault {
    fn matches(&self, verb: &str, path: &str) -> bool {
        self.times > 0
            && self.verb.is_none_or(|v| v.eq_ignore_ascii_case(verb))
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
    }
}

fn res_of<K: Resource<DynamicType = ()>>() -> Res {
    Res {
        group: K::group(&()).into_owned(),
        version: K::version(&()).into_owned(),
        plural: K::plural(&()).into_owned(),
    }
}

fn key_of<K: Resource<DynamicType = ()>>(ns: &str, name: &str) -> Key {
    (res_of::<K>(), ns.to_owned(), name.to_owned())
}

impl ApiDouble {
    /// Every request so far, oldest first.
    pub fn request_log(&self) -> Vec<Request> {
        self.lock().log.clone()
    }

    /// How many requests were logged, without copying the log.
    pub fn request_count(&self) -> usize {
        self.lock().log.len()
    }

    /// Forget the request log.
    pub fn clear_log(&self) {
        self.lock().log.clear();
    }

    /// Number of logged writes (POST, PUT, PATCH, DELETE).
    pub fn count_writes(&self) -> usize {
        self.lock().log.iter().filter(|r| r.is_write()).count()
    }

    /// Number of logged writes, not counting writes to the Events API.
    pub fn count_writes_excluding_events(&self) -> usize {
        let log = &self.lock().log;
        log.iter().filter(|r| r.is_write() && !r.is_event()).count()
    }

    /// Add a fault; faults are checked in order of injection.
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Answers 404 for everything of an API group from now on, discovery
    /// included, as a cluster without that group's CRDs does (the Gateway
    /// API's, say).
    pub fn stop_serving(&self, group: &str) {
        self.lock().unserved.insert(group.to_owned());
    }

    /// Remove every fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Take one use of the first fault matching this request.
    pub(crate) fn take_fault(&self, verb: &str, path: &str) -> Option<FaultResponse> {
        let mut state = self.lock();
        let fault = state.faults.iter_mut().find(|f| f.matches(verb, path))?;
        fault.times -= 1;
        Some(fault.response.clone())
    }

    /// The stored object, typed; `ns` is empty for cluster-scoped kinds.
    pub fn get_object<K>(&self, ns: &str, name: &str) -> Option<K>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let value = self.lock().objects.get(&key_of::<K>(ns, name)).cloned()?;
        serde_json::from_value(value).ok()
    }

    /// Every stored object of this kind in `ns` (all namespaces if empty).
    pub fn list_objects<K>(&self, ns: &str) -> Vec<K>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let res = res_of::<K>();
        let state = self.lock();
        let values = state
            .objects
            .iter()
            .filter(|(k, _)| k.0 == res && (ns.is_empty() || k.1 == ns));
        values
            .filter_map(|(_, v)| serde_json::from_value(v.clone()).ok())
            .collect()
    }

    /// How many stored objects of kind `K` (in `ns`, or all namespaces when
    /// empty) satisfy `keep`, read in place: no copy of any object, so a
    /// bench can poll a large fleet without competing with what it measures.
    pub fn count_objects<K>(&self, ns: &str, keep: impl Fn(&Value) -> bool) -> usize
    where
        K: Resource<DynamicType = ()>,
    {
        let res = res_of::<K>();
        let state = self.lock();
        let ns = (!ns.is_empty()).then_some(ns);
        state
            .objects_of(&res, ns, None)
            .filter(|(_, v)| keep(v))
            .count()
    }

    /// Seed or overwrite an object whole (status included); emits a watch event.
    pub fn put_object<K>(&self, obj: &K) -> Result<K, serde_json::Error>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let meta = obj.meta();
        let key = key_of::<K>(
            meta.namespace.as_deref().unwrap_or(""),
            meta.name.as_deref().unwrap_or(""),
        );
        let value = serde_json::to_value(obj)?;
        let mut state = self.lock();
        let stored = if state.objects.contains_key(&key) {
            state.update(self.tx(), key, value, Mode::Seed, Owner::Update(SEEDER))
        } else {
            state.create(self.tx(), key, value, Mode::Seed, Owner::Update(SEEDER))
        };
        let stored = stored.map_err(|e| serde::de::Error::custom(e.message))?;
        serde_json::from_value(stored)
    }

    /// Delete as a client would (finalizers and cascade apply); false if absent.
    pub fn delete_object<K: Resource<DynamicType = ()>>(&self, ns: &str, name: &str) -> bool {
        self.lock()
            .delete(self.tx(), &key_of::<K>(ns, name))
            .is_ok()
    }

    /// Simulate a user edit of the raw object; false if absent.
    pub fn edit_object<K: Resource<DynamicType = ()>>(
        &self,
        ns: &str,
        name: &str,
        edit: impl FnOnce(&mut Value),
    ) -> bool {
        let key = key_of::<K>(ns, name);
        let mut state = self.lock();
        let Some(mut value) = state.objects.get(&key).cloned() else {
            return false;
        };
        edit(&mut value);
        state
            .update(self.tx(), key, value, Mode::Seed, Owner::Update(EDITOR))
            .is_ok()
    }

    /// Seed or overwrite a Secret holding one key, as
    /// `kubectl create secret generic NAME --from-literal=KEY=VALUE` would.
    pub fn put_secret(&self, ns: &str, name: &str, key: &str, value: &str) {
        let mut data = std::collections::BTreeMap::new();
        data.insert(
            key.to_owned(),
            k8s_openapi::ByteString(value.as_bytes().to_vec()),
        );
        let secret = k8s_openapi::api::core::v1::Secret {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(ns.to_owned()),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        };
        if let Err(error) = self.put_object(&secret) {
            panic!("seeding Secret {ns}/{name}: {error}");
        }
    }

    /// Reports the tenant's Deployment `name` rolled out at
    /// `observed_generation` with `replicas` ready, and its PostgreSQL
    /// StatefulSet `<name>-postgres` ready when there is one, as the
    /// Deployment and StatefulSet controllers would.
    pub fn report_ready(&self, ns: &str, name: &str, replicas: i32, observed_generation: i64) {
        use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
        let counts = serde_json::json!({
            "replicas": replicas, "readyReplicas": replicas,
            "availableReplicas": replicas, "updatedReplicas": replicas,
            "observedGeneration": observed_generation,
        });
        assert!(
            self.set_status::<Deployment>(ns, name, counts),
            "no Deployment {ns}/{name} to report ready"
        );
        let postgres = format!("{name}-postgres");
        if self.get_object::<StatefulSet>(ns, &postgres).is_some() {
            let counts =
                serde_json::json!({ "replicas": 1, "readyReplicas": 1, "availableReplicas": 1 });
            assert!(self.set_status::<StatefulSet>(ns, &postgres, counts));
        }
    }

    /// Replace `.status` as a controller would; false if absent.
    pub fn set_status<K: Resource<DynamicType = ()>>(
        &self,
        ns: &str,
        name: &str,
        status: Value,
    ) -> bool {
        let key = key_of::<K>(ns, name);
        let body = serde_json::json!({ "status": status });
        self.lock()
            .update(
                self.tx(),
                key,
                body,
                Mode::Status,
                Owner::Update(CONTROLLERS),
            )
            .is_ok()
    }
}
