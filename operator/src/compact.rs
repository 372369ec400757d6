//! What a child cache keeps of an object: its metadata, typed, and the rest
//! as one compact JSON string.
//!
//! ```text
//!  watch event ─► K (typed, whole) ─► Compact<K>
//!                     trim (per kind:  ├─ metadata: identity only (name, namespace,
//!                     managed fields,  │  uid, resourceVersion, generation, owners,
//!                     unread status)   │  deletion; managedFields where a kind needs them)
//!                                      └─ body: JSON of the rest (spec, data, the status
//!                                         that is read, labels, annotations, owners, …)
//! ```
//!
//! A typed Deployment or StatefulSet holds its pod template in structs
//! whose absent fields still take their full size, so a cached object
//! costs several times its JSON (`cache-size` in `bench/` prints both).
//! Reconciles compare the desired object with the body and read what they
//! need of a live object through [`Compact::to_object`], both parsed on
//! demand, one tenant at a time; labels and annotations are in the body,
//! never in [`Resource::meta`].

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, ObjectMeta};
use kube::Resource;
use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::gateway_api::HttpRoute;

/// A kind a cache keeps compact, and what of it the cache drops.
pub trait Compactable:
    Resource<DynamicType = ()> + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Drops what no reconcile reads.
    fn trim(&mut self);
}

/// Kinds of which only the managed fields go: they have no status.
macro_rules! drop_managed_fields {
    ($($kind:ty),*) => {$(
        impl Compactable for $kind {
            fn trim(&mut self) {
                self.meta_mut().managed_fields = None;
            }
        }
    )*};
}

drop_managed_fields!(ServiceAccount, Secret, ConfigMap, NetworkPolicy, HttpRoute);

/// Kinds whose status no reconcile reads.
macro_rules! drop_managed_fields_and_status {
    ($($kind:ty),*) => {$(
        impl Compactable for $kind {
            fn trim(&mut self) {
                self.meta_mut().managed_fields = None;
                self.status = None;
            }
        }
    )*};
}

drop_managed_fields_and_status!(
    Service,
    HorizontalPodAutoscaler,
    PodDisruptionBudget,
    Ingress,
    PersistentVolumeClaim
);

/// Kinds whose status tells how a backup, move or restore went.
macro_rules! drop_managed_fields_keep_status {
    ($($kind:ty),*) => {$(
        impl Compactable for $kind {
            fn trim(&mut self) {
                self.meta_mut().managed_fields = None;
            }
        }
    )*};
}

drop_managed_fields_keep_status!(Job, CronJob);

/// A Deployment keeps who owns `spec.replicas` (see `crate::ownership`) and
/// its status but the conditions: the replica counts are read.
impl Compactable for Deployment {
    fn trim(&mut self) {
        let fields = self.meta_mut().managed_fields.get_or_insert_default();
        fields.retain(includes_replicas);
        for entry in fields.iter_mut() {
            entry.fields_v1 = Some(FieldsV1(json!({"f:spec": {"f:replicas": {}}})));
            entry.time = None;
            entry.api_version = None;
            entry.fields_type = None;
        }
        if let Some(status) = self.status.as_mut() {
            status.conditions = None;
        }
    }
}

impl Compactable for StatefulSet {
    fn trim(&mut self) {
        self.meta_mut().managed_fields = None;
        if let Some(status) = self.status.as_mut() {
            status.conditions = None;
        }
    }
}

/// Whether a managed-fields entry includes `spec.replicas`.
pub fn includes_replicas(entry: &ManagedFieldsEntry) -> bool {
    entry
        .fields_v1
        .as_ref()
        .and_then(|f| f.0.pointer("/f:spec/f:replicas"))
        .is_some()
}

/// A cached object: see the module's documentation.
pub struct Compact<K> {
    metadata: ObjectMeta,
    body: Box<str>,
    kind: PhantomData<fn() -> K>,
}

impl<K: Compactable> Compact<K> {
    /// The compact form of `object`.
    pub fn new(mut object: K) -> Self {
        object.trim();
        let whole = object.meta_mut();
        let metadata = ObjectMeta {
            name: whole.name.clone(),
            namespace: whole.namespace.clone(),
            uid: whole.uid.take(),
            resource_version: whole.resource_version.take(),
            generation: whole.generation.take(),
            // Also in the body, where the desired object's are compared.
            owner_references: whole.owner_references.clone(),
            deletion_timestamp: whole.deletion_timestamp.take(),
            managed_fields: whole.managed_fields.take(),
            ..ObjectMeta::default()
        };
        let mut fields = match serde_json::to_value(&object) {
            Ok(Value::Object(fields)) => fields,
            _ => Map::new(),
        };
        for key in ["apiVersion", "kind"] {
            fields.remove(key);
        }
        Self {
            metadata,
            body: Value::Object(fields).to_string().into_boxed_str(),
            kind: PhantomData,
        }
    }

    /// The object but `apiVersion`, `kind` and the metadata kept typed
    /// (versions, managed fields, deletion), as JSON.
    pub fn body(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The object again, as trimmed.
    pub fn to_object(&self) -> serde_json::Result<K> {
        let mut fields = match self.body() {
            Value::Object(fields) => fields,
            _ => Map::new(),
        };
        fields.insert("apiVersion".into(), K::api_version(&()).into());
        fields.insert("kind".into(), K::kind(&()).into());
        let mut object: K = serde_json::from_value(Value::Object(fields))?;
        let meta = object.meta_mut();
        meta.uid.clone_from(&self.metadata.uid);
        meta.resource_version
            .clone_from(&self.metadata.resource_version);
        meta.generation = self.metadata.generation;
        meta.deletion_timestamp
            .clone_from(&self.metadata.deletion_timestamp);
        meta.managed_fields
            .clone_from(&self.metadata.managed_fields);
        Ok(object)
    }
}

impl<'de, K: Compactable> Deserialize<'de> for Compact<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        K::deserialize(deserializer).map(Self::new)
    }
}

impl<K> Clone for Compact<K> {
    fn clone(&self) -> Self {
        Self {
            metadata: self.metadata.clone(),
            body: self.body.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: Resource<DynamicType = ()>> fmt::Debug for Compact<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compact")
            .field("kind", &K::kind(&()))
            .field("namespace", &self.metadata.namespace)
            .field("name", &self.metadata.name)
            .field("resource_version", &self.metadata.resource_version)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Compact<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::ResourceExt;
    use serde_json::json;

    use super::*;

    fn config_map() -> ConfigMap {
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "acme",
                "namespace": "crm",
                "labels": {"app": "crm"},
                "managedFields": [{"manager": "crm-operator", "operation": "Apply"}],
            },
            "data": {"CRM_PORT": "8080"},
        }))
        .expect("a ConfigMap")
    }

    #[test]
    fn the_body_holds_everything_but_status_and_managed_fields() {
        let compact = Compact::new(config_map());
        assert_eq!(
            compact.body(),
            json!({
                "metadata": {"name": "acme", "namespace": "crm", "labels": {"app": "crm"}},
                "data": {"CRM_PORT": "8080"},
            })
        );
        assert_eq!(compact.name_any(), "acme");
        assert_eq!(compact.namespace().as_deref(), Some("crm"));
        assert!(compact.managed_fields().is_empty());
    }

    #[test]
    fn the_object_comes_back_whole_but_for_what_was_trimmed() {
        let mut expected = config_map();
        expected.metadata.managed_fields = None;
        let back = Compact::new(config_map()).to_object().expect("the object");
        assert_eq!(back, expected);
    }

    #[test]
    fn a_watch_event_deserializes_into_the_compact_form() {
        let text = serde_json::to_string(&config_map()).expect("JSON");
        let compact: Compact<ConfigMap> = serde_json::from_str(&text).expect("compact");
        assert_eq!(compact.body()["data"]["CRM_PORT"], "8080");
    }
}
