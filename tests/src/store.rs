//! Object storage, API-server metadata rules and the watch event history.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::controls::{Fault, Request};
use crate::feeds::Feeds;
use crate::fields::{self, Writer};
use crate::route::Res;

/// Events kept for watches that resume from an older resourceVersion.
const HISTORY: usize = 1024;

/// Storage key: type, namespace (empty when cluster-scoped), name.
pub(crate) type Key = (Res, String, String);

/// One change, as broadcast to watches.
#[derive(Debug)]
pub(crate) struct Event {
    pub rv: u64,
    pub res: Res,
    pub ns: String,
    pub etype: &'static str,
    pub object: Value,
}

/// How a write treats `.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Main resource: `.status` is kept from storage for status kinds.
    Main,
    /// `/status` subresource: only `.status` changes.
    Status,
    /// Test seeding: the whole object is taken.
    Seed,
}

/// How a write records field ownership.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Owner<'a> {
    /// Already computed (a server-side apply): taken from the new object.
    Given,
    /// An update by this writer: it owns the fields it changed.
    Update(Writer<'a>),
}

/// An API error, answered as a `metav1.Status`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        let reason = match code {
            400 => "BadRequest",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            410 => "Expired",
            422 => "Invalid",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            _ => "Unknown",
        };
        Self {
            code,
            reason,
            message: message.into(),
        }
    }

    pub fn not_found(key: &Key) -> Self {
        Self::new(404, format!("{} \"{}\" not found", key.0.plural, key.2))
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Status", "metadata": {},
            "status": "Failure", "message": self.message,
            "reason": self.reason, "code": self.code,
        })
    }
}

/// Everything the double remembers.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub objects: BTreeMap<Key, Value>,
    pub rv: u64,
    uids: u64,
    history: VecDeque<Arc<Event>>,
    /// Highest resourceVersion dropped from the history.
    dropped: u64,
    pub log: Vec<Request>,
    pub faults: Vec<Fault>,
    /// What the metrics ask of each HPA (namespace, name): see
    /// [`crate::ApiDouble::recommend`].
    pub recommendations: BTreeMap<(String, String), i32>,
    /// API groups the double answers 404 for, as a cluster without their
    /// CRDs does: see [`crate::ApiDouble::stop_serving`].
    pub unserved: std::collections::BTreeSet<String>,
}

impl State {
    /// The objects of `res`, in one namespace or all, in key order, after the
    /// `(namespace, name)` given.
    pub fn objects_of<'a>(
        &'a self,
        res: &'a Res,
        ns: Option<&'a str>,
        after: Option<(&str, &str)>,
    ) -> impl Iterator<Item = (&'a Key, &'a Value)> + 'a {
        use std::ops::Bound;
        let start = match after {
            Some((ns, name)) => Bound::Excluded((res.clone(), ns.to_owned(), name.to_owned())),
            None => Bound::Included((
                res.clone(),
                ns.unwrap_or_default().to_owned(),
                String::new(),
            )),
        };
        self.objects
            .range((start, Bound::Unbounded))
            .take_while(move |(k, _)| &k.0 == res && ns.is_none_or(|ns| k.1 == ns))
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn meta_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let meta = obj
        .as_object_mut()?
        .entry("metadata")
        .or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut()
}

fn fill_type(res: &Res, obj: &mut Value) {
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), res.api_version().into());
        if let Some(kind) = res.kind() {
            m.insert("kind".into(), kind.into());
        }
    }
}

fn set_field(obj: &mut Value, field: &str, value: Option<Value>) {
    if let Some(m) = obj.as_object_mut() {
        match value {
            Some(v) => m.insert(field.into(), v),
            None => m.remove(field),
        };
    }
}

/// The object without metadata and status: what `generation` tracks.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    set_field(&mut v, "metadata", None);
    set_field(&mut v, "status", None);
    v
}

fn finalizers_empty(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
}

fn deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some()
}

/// Metadata fields only the server sets; copied from the stored object.
const SYSTEM_META: [&str; 7] = [
    "uid",
    "creationTimestamp",
    "generation",
    "resourceVersion",
    "deletionTimestamp",
    "name",
    "namespace",
];

impl State {
    /// Events after `rv`, or `None` when the history no longer reaches back.
    pub fn history_since(&self, rv: u64) -> Option<Vec<Arc<Event>>> {
        if rv < self.dropped {
            return None;
        }
        Some(self.history.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    /// Bump the resourceVersion, stamp it on `obj` and broadcast the event.
    fn emit(&mut self, tx: &Feeds, etype: &'static str, key: &Key, obj: &mut Value) {
        self.rv += 1;
        if let Some(meta) = meta_mut(obj) {
            meta.insert("resourceVersion".into(), self.rv.to_string().into());
        }
        let event = Arc::new(Event {
            rv: self.rv,
            res: key.0.clone(),
            ns: key.1.clone(),
            etype,
            object: obj.clone(),
        });
        self.history.push_back(event.clone());
        while self.history.len() > HISTORY {
            if let Some(old) = self.history.pop_front() {
                self.dropped = old.rv;
            }
        }
        tx.send(event);
    }

    /// Create a new object; 409 AlreadyExists when the key is taken.
    pub fn create(
        &mut self,
        tx: &Feeds,
        key: Key,
        mut obj: Value,
        mode: Mode,
        owner: Owner<'_>,
    ) -> Result<Value, ApiError> {
        if self.objects.contains_key(&key) {
            let mut e = ApiError::new(
                409,
                format!("{} \"{}\" already exists", key.0.plural, key.2),
            );
            e.reason = "AlreadyExists";
            return Err(e);
        }
        if mode == Mode::Main && key.0.has_status() {
            set_field(&mut obj, "status", None);
        }
        fill_type(&key.0, &mut obj);
        self.uids += 1;
        let uid = format!("00000000-0000-4000-8000-{:012x}", self.uids);
        let meta =
            meta_mut(&mut obj).ok_or_else(|| ApiError::new(400, "the body is not an object"))?;
        meta.insert("name".into(), key.2.clone().into());
        if !key.1.is_empty() {
            meta.insert("namespace".into(), key.1.clone().into());
        }
        meta.insert("uid".into(), uid.into());
        meta.insert("creationTimestamp".into(), now().into());
        meta.insert("generation".into(), 1.into());
        meta.remove("deletionTimestamp");
        match owner {
            Owner::Given => {}
            Owner::Update(writer) => fields::record_update(&key.0, &json!({}), &mut obj, writer),
        }
        fields::default(&key.0, &mut obj);
        self.emit(tx, "ADDED", &key, &mut obj);
        self.objects.insert(key, obj.clone());
        Ok(obj)
    }

    /// Replace an existing object with `new` under the rules of `mode`.
    /// An unchanged result is not stored again and emits nothing.
    pub fn update(
        &mut self,
        tx: &Feeds,
        key: Key,
        new: Value,
        mode: Mode,
        owner: Owner<'_>,
    ) -> Result<Value, ApiError> {
        let given = new.pointer("/metadata/managedFields").cloned();
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&key))?;
        let mut result = match mode {
            Mode::Status => {
                let mut r = old.clone();
                set_field(&mut r, "status", new.get("status").cloned());
                r
            }
            Mode::Main if key.0.has_status() => {
                let mut r = new;
                set_field(&mut r, "status", old.get("status").cloned());
                r
            }
            _ => new,
        };
        fill_type(&key.0, &mut result);
        let old_meta = old.get("metadata").cloned().unwrap_or_default();
        let meta =
            meta_mut(&mut result).ok_or_else(|| ApiError::new(400, "the body is not an object"))?;
        for field in SYSTEM_META {
            match old_meta.get(field) {
                Some(v) => meta.insert(field.into(), v.clone()),
                None => meta.remove(field),
            };
        }
        match (owner, given) {
            (Owner::Given, Some(given)) => {
                meta.insert("managedFields".into(), given);
            }
            (Owner::Given, None) => {
                meta.remove("managedFields");
            }
            (Owner::Update(writer), _) => fields::record_update(&key.0, &old, &mut result, writer),
        }
        fields::default(&key.0, &mut result);
        if spec_part(&old) != spec_part(&result) {
            let generation = old_meta
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if let Some(meta) = meta_mut(&mut result) {
                meta.insert("generation".into(), (generation + 1).into());
            }
        }
        if result == old {
            return Ok(old);
        }
        if deleting(&result) && finalizers_empty(&result) {
            self.objects.insert(key.clone(), result);
            return self.remove(tx, &key);
        }
        self.emit(tx, "MODIFIED", &key, &mut result);
        self.objects.insert(key, result.clone());
        Ok(result)
    }

    /// Delete: finalizers hold the object with a deletionTimestamp,
    /// otherwise it is removed and its dependents follow.
    pub fn delete(&mut self, tx: &Feeds, key: &Key) -> Result<Value, ApiError> {
        let mut obj = self
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(key))?;
        if finalizers_empty(&obj) {
            return self.remove(tx, key);
        }
        if !deleting(&obj) {
            if let Some(meta) = meta_mut(&mut obj) {
                meta.insert("deletionTimestamp".into(), now().into());
            }
            self.emit(tx, "MODIFIED", key, &mut obj);
            self.objects.insert(key.clone(), obj.clone());
        }
        Ok(obj)
    }

    /// Remove for good, then cascade to objects owned by it (by uid).
    fn remove(&mut self, tx: &Feeds, key: &Key) -> Result<Value, ApiError> {
        let mut obj = self
            .objects
            .remove(key)
            .ok_or_else(|| ApiError::not_found(key))?;
        self.emit(tx, "DELETED", key, &mut obj);
        let uid = obj.pointer("/metadata/uid").cloned();
        let owned: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, o)| {
                o.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| refs.iter().any(|r| r.get("uid") == uid.as_ref()))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in owned {
            let _ = self.delete(tx, &k);
        }
        Ok(obj)
    }
}
