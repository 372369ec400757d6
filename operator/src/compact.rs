//! What a child cache keeps of an object: its metadata, typed, and the rest
//! as one compact JSON string.
//!
//! ```text
//!  watch event ─► Compact<K>, parsed in one go:
//!                  ├─ metadata: identity only (name, namespace, uid, resourceVersion,
//!                  │  generation, owners, deletion; who owns spec.replicas where a kind
//!                  │  needs it), typed; other managed fields skipped, never built
//!                  └─ body: JSON text of the rest (spec, data, the status that is read,
//!                     labels, annotations, owners, …); unread status skipped
//! ```
//!
//! The object is never parsed into its kind's structs on the way in: a
//! typed Deployment or StatefulSet holds its pod template in structs whose
//! absent fields still take their full size, so a typed object costs
//! several times its JSON, in memory (`cache-size` in `bench/` prints
//! both) and in the time to build it. Reconciles compare the desired
//! object with the body and read what they need of a live object through
//! [`Compact::to_object`], both parsed on demand, one tenant at a time;
//! labels and annotations are in the body, never in [`Resource::meta`].

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
use serde::de::{
    DeserializeOwned, DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, Visitor,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::gateway_api::HttpRoute;

/// What of a kind's status a cache keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepStatus {
    /// None of it: no reconcile reads it.
    Nothing,
    /// All of it.
    All,
    /// All but its conditions: the counts are read, the conditions are not.
    AllButConditions,
}

/// A kind a cache keeps compact, and what of it the cache keeps.
pub trait Compactable:
    Resource<DynamicType = ()> + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// What of the status the cache keeps.
    const STATUS: KeepStatus;
    /// Whether the cache keeps who owns `spec.replicas` (see
    /// `crate::ownership`); other managed fields are never kept.
    const REPLICA_OWNERS: bool = false;
}

macro_rules! compactable {
    ($status:ident: $($kind:ty),*) => {$(
        impl Compactable for $kind {
            const STATUS: KeepStatus = KeepStatus::$status;
        }
    )*};
}

// Kinds that have no status, and HTTPRoutes, whose status is kept whole.
compactable!(All: ServiceAccount, Secret, ConfigMap, NetworkPolicy, HttpRoute);
// Kinds whose status no reconcile reads.
compactable!(
    Nothing: Service,
    HorizontalPodAutoscaler,
    PodDisruptionBudget,
    Ingress,
    PersistentVolumeClaim
);
// Kinds whose status tells how a backup, move or restore went.
compactable!(All: Job, CronJob);
compactable!(AllButConditions: StatefulSet);

/// A Deployment keeps who owns `spec.replicas`, and its status but the
/// conditions: the replica counts are read.
impl Compactable for Deployment {
    const STATUS: KeepStatus = KeepStatus::AllButConditions;
    const REPLICA_OWNERS: bool = true;
}

/// Whether a managed-fields entry includes `spec.replicas`.
pub fn includes_replicas(entry: &ManagedFieldsEntry) -> bool {
    entry
        .fields_v1
        .as_ref()
        .and_then(|f| f.0.pointer("/f:spec/f:replicas"))
        .is_some()
}

/// The entries of `fields` that include `spec.replicas`, each reduced to
/// its manager, operation and that one field.
fn replica_owners(mut fields: Vec<ManagedFieldsEntry>) -> Vec<ManagedFieldsEntry> {
    fields.retain(includes_replicas);
    for entry in &mut fields {
        entry.fields_v1 = Some(FieldsV1(json!({"f:spec": {"f:replicas": {}}})));
        entry.time = None;
        entry.api_version = None;
        entry.fields_type = None;
    }
    fields
}

/// A cached object: see the module's documentation.
pub struct Compact<K> {
    metadata: ObjectMeta,
    body: Box<str>,
    kind: PhantomData<fn() -> K>,
}

impl<K: Compactable> Compact<K> {
    /// The compact form of `object`.
    pub fn new(object: K) -> serde_json::Result<Self> {
        serde_json::from_value(serde_json::to_value(object)?)
    }

    /// The object but `apiVersion`, `kind` and the metadata kept typed
    /// (versions, managed fields, deletion), as JSON.
    pub fn body(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The object again, but for what the cache drops.
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

/// A watch event's object goes straight into the compact form: what the
/// cache drops (managed fields, unread status) is skipped while parsing,
/// never built, and the rest is parsed as plain JSON, not into the kind's
/// structs, whose absent fields would still take their full size.
impl<'de, K: Compactable> Deserialize<'de> for Compact<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor::<K>(PhantomData))
    }
}

struct ObjectVisitor<K>(PhantomData<fn() -> K>);

impl<'de, K: Compactable> Visitor<'de> for ObjectVisitor<K> {
    type Value = Compact<K>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} object", K::kind(&()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Compact<K>, A::Error> {
        let mut body = Map::new();
        let mut metadata = None;
        while let Some(key) = map.next_key::<String>()? {
            let keep = match key.as_str() {
                "apiVersion" | "kind" => false,
                "status" => K::STATUS != KeepStatus::Nothing,
                _ => true,
            };
            if !keep {
                map.next_value::<IgnoredAny>()?;
            } else if key == "metadata" {
                let (fields, managed) = map.next_value_seed(MetadataSeed {
                    replica_owners: K::REPLICA_OWNERS,
                })?;
                metadata = Some((fields, managed));
            } else {
                let mut value: Value = map.next_value()?;
                if key == "status"
                    && K::STATUS == KeepStatus::AllButConditions
                    && let Some(status) = value.as_object_mut()
                {
                    status.remove("conditions");
                }
                body.insert(key, value);
            }
        }
        let (mut fields, managed) = metadata.unwrap_or_default();
        let metadata = identity(&mut fields, managed).map_err(A::Error::custom)?;
        body.insert("metadata".into(), Value::Object(fields));
        Ok(Compact {
            metadata,
            body: Value::Object(body).to_string().into_boxed_str(),
            kind: PhantomData,
        })
    }
}

/// The typed metadata a cache keeps, taken out of (or, for name, namespace
/// and owners, copied from) the metadata's JSON `fields`.
fn identity(
    fields: &mut Map<String, Value>,
    managed_fields: Option<Vec<ManagedFieldsEntry>>,
) -> serde_json::Result<ObjectMeta> {
    fn text(value: Option<&Value>) -> Option<String> {
        value.and_then(Value::as_str).map(str::to_owned)
    }
    fn typed<T: DeserializeOwned>(value: Option<Value>) -> serde_json::Result<Option<T>> {
        value.map(serde_json::from_value).transpose()
    }
    Ok(ObjectMeta {
        name: text(fields.get("name")),
        namespace: text(fields.get("namespace")),
        // Also in the body, where the desired object's are compared.
        owner_references: typed(fields.get("ownerReferences").cloned())?,
        uid: text(fields.remove("uid").as_ref()),
        resource_version: text(fields.remove("resourceVersion").as_ref()),
        generation: fields.remove("generation").and_then(|g| g.as_i64()),
        deletion_timestamp: typed(fields.remove("deletionTimestamp"))?,
        managed_fields,
        ..ObjectMeta::default()
    })
}

/// Reads an object's metadata as JSON, skipping its managed fields unless
/// `replica_owners`, and then keeping only the owners of `spec.replicas`.
struct MetadataSeed {
    replica_owners: bool,
}

type Metadata = (Map<String, Value>, Option<Vec<ManagedFieldsEntry>>);

impl<'de> DeserializeSeed<'de> for MetadataSeed {
    type Value = Metadata;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Metadata, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MetadataSeed {
    type Value = Metadata;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object's metadata")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata, A::Error> {
        let mut fields = Map::new();
        let mut managed = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != "managedFields" {
                fields.insert(key, map.next_value()?);
            } else if self.replica_owners {
                let entries: Option<Vec<ManagedFieldsEntry>> = map.next_value()?;
                managed = entries.map(replica_owners);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok((fields, managed))
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
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Service};
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
        let compact = Compact::new(config_map()).expect("compact");
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
        let back = Compact::new(config_map())
            .expect("compact")
            .to_object()
            .expect("the object");
        assert_eq!(back, expected);
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "acme", "namespace": "crm", "uid": "u-1",
                "resourceVersion": "42", "generation": 3,
                "ownerReferences": [{"apiVersion": "crm.example.com/v1alpha1",
                    "kind": "CrmTenant", "name": "acme", "uid": "t-1"}],
                "managedFields": [
                    {"manager": "crm-operator", "operation": "Apply",
                     "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:spec": {"f:template": {}}}},
                    {"manager": "crm-operator-replicas", "operation": "Apply",
                     "fieldsType": "FieldsV1", "time": "2026-12-01T00:00:00Z",
                     "fieldsV1": {"f:spec": {"f:replicas": {}}}},
                ],
            },
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "crm"}},
                "template": {"metadata": {"labels": {"app": "crm"}},
                    "spec": {"containers": [{"name": "crm", "image": "crm:1"}]}}},
            "status": {"readyReplicas": 4, "replicas": 4,
                "conditions": [{"type": "Available", "status": "True"}]},
        })
    }

    #[test]
    fn a_deployment_keeps_who_owns_its_replicas_and_its_counts() {
        let compact: Compact<Deployment> = serde_json::from_value(deployment()).expect("compact");
        assert_eq!(compact.metadata.uid.as_deref(), Some("u-1"));
        assert_eq!(compact.resource_version().as_deref(), Some("42"));
        assert_eq!(compact.metadata.generation, Some(3));
        assert_eq!(compact.owner_references()[0].uid, "t-1");
        let owners = compact.managed_fields();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].manager.as_deref(), Some("crm-operator-replicas"));
        assert_eq!(owners[0].time, None);
        let body = compact.body();
        assert_eq!(body["status"], json!({"readyReplicas": 4, "replicas": 4}));
        assert_eq!(body["spec"]["replicas"], 4);
        assert_eq!(body["metadata"].get("managedFields"), None);
        assert_eq!(body["metadata"].get("uid"), None);
        assert_eq!(body.get("apiVersion"), None);
        let back = compact.to_object().expect("the Deployment");
        assert_eq!(back.metadata.uid.as_deref(), Some("u-1"));
        assert_eq!(back.status.and_then(|s| s.ready_replicas), Some(4));
    }

    #[test]
    fn an_unread_status_is_dropped() {
        let service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "acme", "namespace": "crm"},
            "spec": {"ports": [{"port": 80}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}},
        });
        let compact: Compact<Service> = serde_json::from_value(service).expect("compact");
        assert_eq!(
            compact.body(),
            json!({"metadata": {"name": "acme", "namespace": "crm"},
                   "spec": {"ports": [{"port": 80}]}})
        );
    }

    #[test]
    fn a_watch_event_reads_the_same_whatever_the_order_of_its_fields() {
        use kube::core::WatchEvent;
        let object = deployment().to_string();
        let first = format!(r#"{{"type":"ADDED","object":{object}}}"#);
        let last = format!(r#"{{"object":{object},"type":"ADDED"}}"#);
        let bodies: Vec<Value> = [first, last]
            .iter()
            .map(|line| match serde_json::from_str(line).expect("an event") {
                WatchEvent::<Compact<Deployment>>::Added(compact) => compact.body(),
                _ => panic!("not an ADDED event"),
            })
            .collect();
        assert_eq!(bodies[0], bodies[1]);
        assert_eq!(bodies[0]["spec"]["replicas"], 4);
    }

    #[test]
    fn a_malformed_object_is_an_error_that_names_the_kind() {
        let error = serde_json::from_str::<Compact<Deployment>>("[1, 2]").expect_err("an error");
        assert!(error.to_string().contains("a Deployment object"), "{error}");
        let error = serde_json::from_value::<Compact<Deployment>>(json!({
            "metadata": {"name": "acme", "deletionTimestamp": 7},
        }))
        .expect_err("an error");
        assert!(error.to_string().contains("invalid type"), "{error}");
    }

    #[test]
    fn a_watch_event_deserializes_into_the_compact_form() {
        let text = serde_json::to_string(&config_map()).expect("JSON");
        let compact: Compact<ConfigMap> = serde_json::from_str(&text).expect("compact");
        assert_eq!(compact.body()["data"]["CRM_PORT"], "8080");
    }
}
