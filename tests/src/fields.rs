//! Field ownership, as the API server keeps it in `metadata.managedFields`.
//!
//! ```text
//!  apply (manager M, force?)            update (PUT, PATCH, scale, a test's edit)
//!    fields sent ─► conflicts with        fields whose value changed ─► owned by
//!    others' fields of another value      the writer, taken from every other owner
//!    (409 unless forced, then taken);
//!    fields M applied before and no
//!    longer sends ─► removed unless
//!    another manager owns them
//! ```
//!
//! A field is a path of map keys. Lists are atomic (as
//! `x-kubernetes-list-type: atomic`): a list is one field, owned and replaced
//! whole. Real associative lists (containers by name) differ only when two
//! managers write items of one list, which no flow of the operator does.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::route::Res;
use crate::store::ApiError;

/// A field: the map keys leading to it from the object's root.
pub(crate) type Path = Vec<String>;

/// Which part of an object a write may touch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The main resource: everything but `status` (for kinds with a status
    /// subresource) and the metadata only the server sets.
    Main,
    /// The `/status` subresource: `status` only.
    Status,
    /// The `/scale` subresource: `spec.replicas` only.
    Scale,
}

impl Scope {
    /// The `subresource` of a managedFields entry.
    fn subresource(self) -> &'static str {
        match self {
            Scope::Main => "",
            Scope::Status => "status",
            Scope::Scale => "scale",
        }
    }
}

/// Metadata no client owns.
const SERVER_META: [&str; 9] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "managedFields",
    "selfLink",
];

/// One entry of `metadata.managedFields`.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    manager: String,
    operation: &'static str,
    subresource: &'static str,
    api_version: String,
    time: String,
    fields: BTreeSet<Path>,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, scope: Scope) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource == scope.subresource()
    }
}

/// Every field of `object` that a write in `scope` would own.
pub(crate) fn leaves(res: &Res, object: &Value, scope: Scope) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    let Some(root) = object.as_object() else {
        return out;
    };
    for (key, value) in root {
        let tracked = match (scope, key.as_str()) {
            (_, "apiVersion" | "kind") => false,
            (Scope::Status, k) => k == "status",
            (Scope::Scale, k) => k == "spec",
            (Scope::Main, "status") => !res.has_status(),
            (Scope::Main, _) => true,
        };
        if !tracked {
            continue;
        }
        let mut path = vec![key.clone()];
        match (scope, key.as_str(), value) {
            (Scope::Scale, _, spec) => {
                if spec.get("replicas").is_some() {
                    out.insert(vec![key.clone(), "replicas".to_owned()]);
                }
            }
            (_, "metadata", Value::Object(meta)) => {
                for (k, v) in meta {
                    if !SERVER_META.contains(&k.as_str()) {
                        path.push(k.clone());
                        collect(v, &mut path, &mut out);
                        path.pop();
                    }
                }
            }
            _ => collect(value, &mut path, &mut out),
        }
    }
    out
}

fn collect(value: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                path.push(k.clone());
                collect(v, path, out);
                path.pop();
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
}

/// The value at `path`, if any.
pub(crate) fn get<'v>(object: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(object, |v, k| v.get(k))
}

/// Removes the value at `path`, and the maps it leaves empty below the root.
fn remove(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = &mut *object;
    for key in parents {
        match node.get_mut(key) {
            Some(next) => node = next,
            None => return,
        }
    }
    if let Some(map) = node.as_object_mut() {
        map.remove(last);
    }
    if parents.len() > 1
        && get(object, parents)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        remove(object, parents);
    }
}

/// Whether one path lies on the other's way (equal, ancestor or descendant).
fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Whether sending `sent` keeps the field `field` in the applier's set: the
/// same field, a field inside it, or an ancestor that replaces it whole (a
/// scalar or list; a map merges and keeps nothing below it by itself).
fn covers(sent: &[String], field: &[String], applied: &Value) -> bool {
    sent.starts_with(field)
        || (field.starts_with(sent) && !get(applied, sent).is_some_and(Value::is_object))
}

/// Whether applying `sent` would change the field `owned` that another
/// manager holds: the same field with another value, or a scalar or list
/// replacing it, or something inside a scalar or list it holds.
fn clash(owned: &[String], sent: &[String], base: &Value, applied: &Value) -> bool {
    if owned == sent {
        return !same(get(base, sent), get(applied, sent));
    }
    if owned.starts_with(sent) {
        return !get(applied, sent).is_some_and(Value::is_object)
            && !same(get(base, sent), get(applied, sent));
    }
    if sent.starts_with(owned) {
        return !get(base, owned).is_some_and(Value::is_object);
    }
    false
}

/// JSON equality where `1` and `1.0` are the same number.
fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::Number(a)), Some(Value::Number(b))) => a.as_f64() == b.as_f64(),
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            a.len() == b.len() && a.iter().all(|(k, v)| same(Some(v), b.get(k)))
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(Some(x), Some(y)))
        }
        (a, b) => a == b,
    }
}

fn entries(object: &Value) -> Vec<Entry> {
    let list = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array);
    list.into_iter().flatten().filter_map(parse_entry).collect()
}

fn parse_entry(value: &Value) -> Option<Entry> {
    let text = |k: &str| value.get(k).and_then(Value::as_str).unwrap_or_default();
    let operation = match text("operation") {
        "Apply" => "Apply",
        _ => "Update",
    };
    let subresource = match text("subresource") {
        "status" => "status",
        "scale" => "scale",
        _ => "",
    };
    let mut fields = BTreeSet::new();
    if let Some(v1) = value.get("fieldsV1") {
        parse_fields(v1, &mut Vec::new(), &mut fields);
    }
    Some(Entry {
        manager: value.get("manager")?.as_str()?.to_owned(),
        operation,
        subresource,
        api_version: text("apiVersion").to_owned(),
        time: text("time").to_owned(),
        fields,
    })
}

/// `fieldsV1` → paths: `f:<key>` descends, `.` (or an empty node) owns the
/// node itself; list-item keys (`k:`, `v:`, `i:`) count as their list.
fn parse_fields(node: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
    let Some(map) = node.as_object().filter(|m| !m.is_empty()) else {
        if !path.is_empty() {
            out.insert(path.clone());
        }
        return;
    };
    for (key, child) in map {
        if let Some(name) = key.strip_prefix("f:") {
            path.push(name.to_owned());
            parse_fields(child, path, out);
            path.pop();
        } else if !path.is_empty() {
            out.insert(path.clone());
        }
    }
}

fn fields_v1(fields: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut node = &mut root;
        for key in path {
            let next = node.entry(format!("f:{key}")).or_insert_with(|| json!({}));
            if !next.is_object() {
                *next = json!({});
            }
            node = match next.as_object_mut() {
                Some(map) => map,
                None => return Value::Object(root),
            };
        }
        if !node.is_empty() {
            node.insert(".".to_owned(), json!({}));
        }
    }
    Value::Object(root)
}

fn store_entries(object: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = e.subresource.into();
            }
            v
        })
        .collect();
    if object.is_object() && !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".to_owned(), Value::Array(list));
        }
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Who writes, and how.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Writer<'a> {
    pub manager: &'a str,
    pub scope: Scope,
}

/// Server-side apply of `applied` by `writer` onto `stored` (absent on
/// create): the merged object with its new managedFields, or a 409 listing
/// the conflicts when `force` is off.
pub(crate) fn apply(
    res: &Res,
    stored: Option<&Value>,
    applied: &Value,
    writer: Writer<'_>,
    force: bool,
) -> Result<Value, ApiError> {
    let sent = leaves(res, applied, writer.scope);
    let empty = json!({});
    let base = stored.unwrap_or(&empty);
    let mut owners = entries(base);
    let own = |e: &Entry| e.is(writer.manager, "Apply", writer.scope);

    let mut conflicts = Vec::new();
    for entry in owners.iter_mut().filter(|e| !own(e)) {
        let taken: Vec<Path> = entry
            .fields
            .iter()
            .filter(|owned| sent.iter().any(|path| clash(owned, path, base, applied)))
            .cloned()
            .collect();
        for path in taken {
            conflicts.push(format!(
                "conflict with \"{}\": .{}",
                entry.manager,
                path.join(".")
            ));
            entry.fields.remove(&path);
        }
    }
    if !conflicts.is_empty() && !force {
        let mut error = ApiError::new(
            409,
            format!(
                "Apply failed with {} conflict{}: {}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" },
                conflicts.join(", ")
            ),
        );
        error.reason = "Conflict";
        return Err(error);
    }

    let mut result = base.clone();
    let before = owners
        .iter()
        .find(|e| own(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for dropped in before
        .iter()
        .filter(|d| !sent.iter().any(|s| covers(s, d, applied)))
    {
        let kept = owners
            .iter()
            .filter(|e| !own(e))
            .any(|e| e.fields.iter().any(|f| f.starts_with(dropped)));
        if !kept {
            remove(&mut result, dropped);
        }
    }
    merge(&mut result, applied, writer.scope);
    if stored.is_some() && conflicts.is_empty() && before == sent && result == *base {
        // Nothing changes, not even the time of the entry: a no-op apply
        // writes nothing.
        return Ok(result);
    }

    owners.retain(|e| !own(e));
    owners.push(Entry {
        manager: writer.manager.to_owned(),
        operation: "Apply",
        subresource: writer.scope.subresource(),
        api_version: res.api_version(),
        time: now(),
        fields: sent,
    });
    store_entries(&mut result, &owners);
    Ok(result)
}

/// Maps merge key by key; anything else (lists included) is replaced whole.
/// Only the part of `applied` inside `scope` is taken.
fn merge(base: &mut Value, applied: &Value, scope: Scope) {
    match scope {
        Scope::Main => deep_merge(base, applied),
        Scope::Status => {
            if let Some(status) = applied.get("status") {
                deep_merge(&mut base["status"], status);
            }
        }
        Scope::Scale => {
            if let Some(replicas) = applied.pointer("/spec/replicas") {
                base["spec"]["replicas"] = replicas.clone();
            }
        }
    }
}

fn deep_merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (k, v) in patch {
                match base.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => deep_merge(slot, v),
                    _ => {
                        base.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

/// Records an update by `writer` that turned `old` into `new`: every field
/// whose value changed becomes the writer's, and no one else's; a field the
/// update removed is no one's.
pub(crate) fn record_update(res: &Res, old: &Value, new: &mut Value, writer: Writer<'_>) {
    let mut owners = entries(old);
    let paths: BTreeSet<Path> = leaves(res, old, writer.scope)
        .into_iter()
        .chain(leaves(res, new, writer.scope))
        .collect();
    let changed: Vec<&Path> = paths
        .iter()
        .filter(|p| !same(get(old, p), get(new, p)))
        .collect();
    if changed.is_empty() {
        store_entries(new, &owners);
        return;
    }
    for entry in &mut owners {
        entry
            .fields
            .retain(|owned| !changed.iter().any(|c| overlaps(owned, c)));
    }
    let gained: BTreeSet<Path> = changed
        .into_iter()
        .filter(|p| get(new, p).is_some())
        .cloned()
        .collect();
    match owners
        .iter_mut()
        .find(|e| e.is(writer.manager, "Update", writer.scope))
    {
        Some(entry) => {
            entry.fields.extend(gained);
            entry.time = now();
        }
        None => owners.push(Entry {
            manager: writer.manager.to_owned(),
            operation: "Update",
            subresource: writer.scope.subresource(),
            api_version: res.api_version(),
            time: now(),
            fields: gained,
        }),
    }
    store_entries(new, &owners);
}

/// Managers that own `path` of `object`.
#[cfg(test)]
fn owners_of(object: &Value, path: &[String]) -> Vec<String> {
    entries(object)
        .into_iter()
        .filter(|e| e.fields.iter().any(|f| overlaps(f, path)))
        .map(|e| e.manager)
        .collect()
}

/// What the API server fills in when a write leaves it out: the replica
/// count of a scalable workload.
pub(crate) fn default(res: &Res, object: &mut Value) {
    if matches!(res.plural.as_str(), "deployments" | "statefulsets")
        && let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.entry("replicas").or_insert_with(|| json!(1));
    }
}

#[cfg(test)]
mod tests;
