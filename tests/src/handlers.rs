//! Request handling: logging, faults, routing and the verbs.

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::controls::{FaultResponse, Request};
use crate::fields::{self, Scope, Writer};
use crate::route::{self, Route};
use crate::store::{ApiError, Key, Mode, Owner, State};
use crate::{ApiDouble, DoubleBody, watch};

type Reply = Result<(u16, Value), ApiError>;

/// Answer one request.
pub(crate) async fn handle(
    double: &ApiDouble,
    req: http::Request<kube::client::Body>,
) -> http::Response<DoubleBody> {
    let (parts, body) = req.into_parts();
    let verb = parts.method.as_str().to_owned();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let content_type = header(CONTENT_TYPE);
    // As the API server does: the fieldManager parameter, else the client's
    // program name from its User-Agent.
    let user_agent = header(http::header::USER_AGENT);
    let agent = user_agent.split('/').next().unwrap_or_default();
    let meta_only = header(ACCEPT).contains("as=PartialObjectMetadata");
    double.lock().log.push(Request {
        verb: verb.clone(),
        path: path.clone(),
        content_type: content_type.clone(),
        at: std::time::Instant::now(),
    });
    match double.take_fault(&verb, &path) {
        Some(FaultResponse::Status(code)) => return error(&ApiError::new(code, "injected fault")),
        Some(FaultResponse::Hang) => futures::future::pending::<()>().await,
        None => {}
    }
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let unserved = route::group_of(parts.uri.path())
        .is_some_and(|group| double.lock().unserved.contains(group));
    if unserved {
        return error(&ApiError::new(
            404,
            format!("the server could not find {path}"),
        ));
    }
    if verb == "GET"
        && let Some(list) = route::discovery(parts.uri.path())
    {
        return respond(200, &list);
    }
    let Some(route) = route::parse(parts.uri.path(), parts.uri.query()) else {
        return error(&ApiError::new(404, format!("no route for {path}")));
    };
    if verb == "GET" && route.name.is_none() && route.query.watch {
        return watch::watch(double, &route, meta_only);
    }
    let manager = match &route.query.field_manager {
        Some(manager) => manager.clone(),
        None if agent.is_empty() => "unknown".to_owned(),
        None => agent.to_owned(),
    };
    let request = Write {
        verb: &verb,
        content_type: &content_type,
        manager: &manager,
        body: &bytes,
    };
    let reply = dispatch(double, &route, &request);
    match reply {
        Ok((code, value)) if meta_only => respond(code, &partial(&value)),
        Ok((code, value)) => respond(code, &value),
        Err(e) => error(&e),
    }
}

/// One request's verb, body and writer.
struct Write<'a> {
    verb: &'a str,
    content_type: &'a str,
    manager: &'a str,
    body: &'a [u8],
}

impl Write<'_> {
    fn is_apply(&self) -> bool {
        self.content_type.starts_with("application/apply-patch")
    }
}

fn dispatch(double: &ApiDouble, route: &Route, write: &Write<'_>) -> Reply {
    // Decoded before the store is locked: the API server decodes requests
    // in parallel, and a body that does not parse never waits for the lock.
    let body = match (write.verb, route.name.is_some()) {
        _ if route.scale => None,
        ("POST", false) | ("PUT", true) => Some(parse_json(write.body)?),
        ("PATCH", true) if write.is_apply() => Some(parse_apply(write.body)?),
        _ => None,
    };
    let mut state = double.lock();
    let tx = double.tx();
    let key = |name: &str| {
        (
            route.res.clone(),
            route.ns.clone().unwrap_or_default(),
            name.to_owned(),
        )
    };
    let (mode, scope) = if route.status {
        (Mode::Status, Scope::Status)
    } else {
        (Mode::Main, Scope::Main)
    };
    let writer = Writer {
        manager: write.manager,
        scope,
    };
    match (write.verb, route.name.as_deref()) {
        (_, Some(name)) if route.scale => scale(&mut state, tx, key(name), write),
        ("GET", Some(name)) => state
            .objects
            .get(&key(name))
            .cloned()
            .map(|v| (200, v))
            .ok_or_else(|| ApiError::not_found(&key(name))),
        ("GET", None) => Ok((200, list(&state, route))),
        ("POST", None) => {
            let mut obj = body.unwrap_or_default();
            let name = object_name(&mut obj, state.rv)?;
            let owner = Owner::Update(writer);
            state
                .create(tx, key(&name), obj, mode, owner)
                .map(|v| (201, v))
        }
        ("PUT", Some(name)) => {
            let obj = body.unwrap_or_default();
            replace(&mut state, tx, key(name), obj, mode, writer)
        }
        ("PATCH", Some(name)) if write.is_apply() => {
            let applied = body.unwrap_or_default();
            apply(
                &mut state,
                tx,
                key(name),
                &applied,
                mode,
                writer,
                route.query.force,
            )
        }
        ("PATCH", Some(name)) => {
            let stored = state.objects.get(&key(name)).cloned();
            let mut doc = stored.ok_or_else(|| ApiError::not_found(&key(name)))?;
            patch(&key(name), &mut doc, write)?;
            let owner = Owner::Update(writer);
            state
                .update(tx, key(name), doc, mode, owner)
                .map(|v| (200, v))
        }
        ("DELETE", Some(name)) => state.delete(tx, &key(name)).map(|v| (200, v)),
        (verb, _) => Err(ApiError::new(405, format!("{verb} is not supported here"))),
    }
}

type Tx = crate::feeds::Feeds;

fn replace(state: &mut State, tx: &Tx, key: Key, obj: Value, mode: Mode, writer: Writer) -> Reply {
    let stored = state
        .objects
        .get(&key)
        .ok_or_else(|| ApiError::not_found(&key))?;
    check_version(&key, stored, &obj)?;
    state
        .update(tx, key, obj, mode, Owner::Update(writer))
        .map(|v| (200, v))
}

/// A write that names a resourceVersion succeeds only against that version.
fn check_version(key: &Key, stored: &Value, sent: &Value) -> Result<(), ApiError> {
    let version = |v: &Value| {
        v.pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match version(sent).filter(|s| !s.is_empty()) {
        Some(sent) if Some(&sent) != version(stored).as_ref() => Err(ApiError::new(
            409,
            format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                key.0.plural, key.2
            ),
        )),
        _ => Ok(()),
    }
}

/// Server-side apply: field ownership per manager (see [`fields`]).
fn apply(
    state: &mut State,
    tx: &Tx,
    key: Key,
    applied: &Value,
    mode: Mode,
    writer: Writer,
    force: bool,
) -> Reply {
    if writer.manager == "unknown" {
        return Err(ApiError::new(
            422,
            "PatchOptions.meta.k8s.io is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    let stored = state.objects.get(&key);
    if stored.is_none() && mode == Mode::Status {
        return Err(ApiError::not_found(&key));
    }
    let merged = fields::apply(&key.0, stored, applied, writer, force)?;
    match stored {
        None => state
            .create(tx, key, merged, mode, Owner::Given)
            .map(|v| (201, v)),
        Some(_) => state
            .update(tx, key, merged, mode, Owner::Given)
            .map(|v| (200, v)),
    }
}

/// A JSON patch or a merge patch (strategic merge patches are taken as
/// merge patches), applied to `doc`.
fn patch(key: &Key, doc: &mut Value, write: &Write<'_>) -> Result<(), ApiError> {
    if write.content_type.starts_with("application/json-patch") {
        let ops: json_patch::Patch =
            serde_json::from_slice(write.body).map_err(|e| ApiError::new(400, e.to_string()))?;
        json_patch::patch(doc, &ops).map_err(|e| ApiError::new(422, e.to_string()))
    } else {
        let merge = parse_json(write.body)?;
        let stored = doc.clone();
        json_patch::merge(doc, &merge);
        check_version(key, &stored, &merge)
    }
}

/// The `/scale` subresource of a Deployment or StatefulSet: an
/// `autoscaling/v1` Scale whose writes change the parent's `spec.replicas`,
/// owned by the writer under subresource `scale`.
fn scale(state: &mut State, tx: &Tx, key: Key, write: &Write<'_>) -> Reply {
    if !matches!(key.0.plural.as_str(), "deployments" | "statefulsets") {
        return Err(ApiError::not_found(&key));
    }
    let parent = state
        .objects
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&key))?;
    let writer = Writer {
        manager: write.manager,
        scope: Scope::Scale,
    };
    let stored = match write.verb {
        "GET" => parent,
        "PUT" | "PATCH" => {
            let mut scale = scale_of(&parent);
            if write.is_apply() {
                let applied = parse_apply(write.body)?;
                let merged = fields::apply(&key.0, Some(&parent), &applied, writer, true)?;
                state.update(tx, key, merged, Mode::Main, Owner::Given)?
            } else {
                if write.verb == "PUT" {
                    scale = parse_json(write.body)?;
                    check_version(&key, &parent, &scale)?;
                } else {
                    patch(&key, &mut scale, write)?;
                }
                let replicas = scale
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| ApiError::new(422, "spec.replicas: Required value"))?;
                if replicas < 0 {
                    return Err(ApiError::new(
                        422,
                        "spec.replicas: must be greater than or equal to 0",
                    ));
                }
                let mut doc = parent;
                doc["spec"]["replicas"] = replicas.into();
                state.update(tx, key, doc, Mode::Main, Owner::Update(writer))?
            }
        }
        verb => {
            return Err(ApiError::new(
                405,
                format!("{verb} is not supported on scale"),
            ));
        }
    };
    Ok((200, scale_of(&stored)))
}

/// The Scale view of a workload.
pub(crate) fn scale_of(parent: &Value) -> Value {
    let selector = parent
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let meta = &parent["metadata"];
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": { "replicas": parent.pointer("/spec/replicas").cloned().unwrap_or(json!(0)) },
        "status": {
            "replicas": parent.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::new(400, e.to_string()))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(ApiError::new(400, "the body is not an object"))
    }
}

/// An apply body: JSON, or YAML (of which JSON is a subset).
fn parse_apply(body: &[u8]) -> Result<Value, ApiError> {
    parse_json(body).or_else(|_| {
        let text = std::str::from_utf8(body).map_err(|e| ApiError::new(400, e.to_string()))?;
        serde_saphyr::from_str::<Value>(text).map_err(|e| ApiError::new(400, e.to_string()))
    })
}

/// The name of a new object, generated from `generateName` if needed.
fn object_name(obj: &mut Value, rv: u64) -> Result<String, ApiError> {
    let meta = obj.pointer("/metadata");
    if let Some(name) = meta.and_then(|m| m.get("name")).and_then(Value::as_str) {
        return Ok(name.to_owned());
    }
    let prefix = meta
        .and_then(|m| m.get("generateName"))
        .and_then(Value::as_str);
    let prefix =
        prefix.ok_or_else(|| ApiError::new(422, "metadata.name or generateName is required"))?;
    Ok(format!("{prefix}{:05x}", rv + 1))
}

/// One page of a list: the objects of the route's type (and namespace)
/// after the `continue` key, read from the ordered store, so a page costs its
/// own length and not the size of the store.
fn list(state: &State, route: &Route) -> Value {
    let after = route.query.cont.as_deref().and_then(|c| c.split_once('/'));
    let limit = route.query.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
    let mut matching = state
        .objects_of(&route.res, route.ns.as_deref(), after)
        .filter(|(_, v)| route.query.selector.matches(v));
    let mut items: Vec<&Value> = Vec::new();
    let mut last = None;
    for (key, value) in matching.by_ref().take(limit) {
        items.push(value);
        last = Some(key);
    }
    let mut metadata = json!({ "resourceVersion": state.rv.to_string() });
    if let Some((_, ns, name)) = last
        && matching.next().is_some()
    {
        // As the API server's, the token is opaque: here the last key given.
        metadata["continue"] = format!("{ns}/{name}").into();
    }
    let kind = route
        .res
        .kind()
        .map_or_else(|| "List".to_owned(), |k| format!("{k}List"));
    json!({
        "apiVersion": route.res.api_version(),
        "kind": kind,
        "metadata": metadata,
        "items": items,
    })
}

/// The metadata-only form of an object or list.
pub(crate) fn partial(value: &Value) -> Value {
    let item = |v: &Value| {
        json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadata",
            "metadata": v.get("metadata").cloned().unwrap_or_default(),
        })
    };
    match value.get("items").and_then(Value::as_array) {
        Some(items) => json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadataList",
            "metadata": value.get("metadata").cloned().unwrap_or_default(),
            "items": items.iter().map(item).collect::<Vec<_>>(),
        }),
        None if value.get("kind").and_then(Value::as_str) == Some("Status") => value.clone(),
        None => item(value),
    }
}

pub(crate) fn full_body(bytes: Vec<u8>) -> DoubleBody {
    Full::new(Bytes::from(bytes))
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

fn respond(code: u16, value: &Value) -> http::Response<DoubleBody> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = http::Response::new(full_body(bytes));
    *resp.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::OK);
    resp.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error(e: &ApiError) -> http::Response<DoubleBody> {
    respond(e.code, &e.to_status())
}
