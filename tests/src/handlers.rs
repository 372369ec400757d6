//! Request handling: logging, faults, routing and the verbs.

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::controls::{FaultResponse, Request};
use crate::route::{self, Route};
use crate::store::{ApiError, Key, Mode, State};
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
    let meta_only = header(ACCEPT).contains("as=PartialObjectMetadata");
    double.lock().log.push(Request {
        verb: verb.clone(),
        path: path.clone(),
        content_type: content_type.clone(),
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
    let Some(route) = route::parse(parts.uri.path(), parts.uri.query()) else {
        return error(&ApiError::new(404, format!("no route for {path}")));
    };
    if verb == "GET" && route.name.is_none() && route.query.watch {
        return watch::watch(double, &route, meta_only);
    }
    let reply = dispatch(double, &verb, &route, &content_type, &bytes);
    match reply {
        Ok((code, value)) if meta_only => respond(code, &partial(&route, value)),
        Ok((code, value)) => respond(code, &value),
        Err(e) => error(&e),
    }
}

fn dispatch(
    double: &ApiDouble,
    verb: &str,
    route: &Route,
    content_type: &str,
    body: &[u8],
) -> Reply {
    let mut state = double.lock();
    let tx = double.tx();
    let key = |name: &str| {
        (
            route.res.clone(),
            route.ns.clone().unwrap_or_default(),
            name.to_owned(),
        )
    };
    let mode = if route.status {
        Mode::Status
    } else {
        Mode::Main
    };
    match (verb, route.name.as_deref()) {
        ("GET", Some(name)) => state
            .objects
            .get(&key(name))
            .cloned()
            .map(|v| (200, v))
            .ok_or_else(|| ApiError::not_found(&key(name))),
        ("GET", None) => Ok((200, list(&state, route))),
        ("POST", None) => {
            let mut obj = parse_json(body)?;
            let name = object_name(&mut obj, state.rv)?;
            state.create(tx, key(&name), obj, mode).map(|v| (201, v))
        }
        ("PUT", Some(name)) => replace(&mut state, tx, key(name), parse_json(body)?, mode),
        ("PATCH", Some(name)) => patch(&mut state, tx, key(name), content_type, body, mode),
        ("DELETE", Some(name)) => state.delete(tx, &key(name)).map(|v| (200, v)),
        _ => Err(ApiError::new(405, format!("{verb} is not supported here"))),
    }
}

type Tx = tokio::sync::broadcast::Sender<std::sync::Arc<crate::store::Event>>;

fn replace(state: &mut State, tx: &Tx, key: Key, obj: Value, mode: Mode) -> Reply {
    let stored = state
        .objects
        .get(&key)
        .ok_or_else(|| ApiError::not_found(&key))?;
    let sent = obj
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let current = stored
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str);
    if sent.is_some() && sent != current {
        let msg = format!(
            "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
            key.0.plural, key.2
        );
        return Err(ApiError::new(409, msg));
    }
    state.update(tx, key, obj, mode).map(|v| (200, v))
}

fn patch(
    state: &mut State,
    tx: &Tx,
    key: Key,
    content_type: &str,
    body: &[u8],
    mode: Mode,
) -> Reply {
    let stored = state.objects.get(&key).cloned();
    if content_type.starts_with("application/apply-patch") {
        let applied = parse_apply(body)?;
        return match stored {
            None if mode == Mode::Status => Err(ApiError::not_found(&key)),
            None => state.create(tx, key, applied, mode).map(|v| (201, v)),
            Some(mut doc) => {
                deep_merge(&mut doc, applied);
                state.update(tx, key, doc, mode).map(|v| (200, v))
            }
        };
    }
    let mut doc = stored.ok_or_else(|| ApiError::not_found(&key))?;
    if content_type.starts_with("application/json-patch") {
        let ops: json_patch::Patch =
            serde_json::from_slice(body).map_err(|e| ApiError::new(400, e.to_string()))?;
        json_patch::patch(&mut doc, &ops).map_err(|e| ApiError::new(422, e.to_string()))?;
    } else {
        json_patch::merge(&mut doc, &parse_json(body)?);
    }
    state.update(tx, key, doc, mode).map(|v| (200, v))
}

/// Server-side apply as a deep merge: maps merge recursively, anything
/// else (lists included) is replaced whole.
fn deep_merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (k, v) in patch {
                match base.get_mut(&k) {
                    Some(slot) => deep_merge(slot, v),
                    None => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (base, patch) => *base = patch,
    }
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

fn list(state: &State, route: &Route) -> Value {
    let items: Vec<&Value> = state
        .objects
        .iter()
        .filter(|(k, _)| k.0 == route.res && route.ns.as_ref().is_none_or(|ns| &k.1 == ns))
        .map(|(_, v)| v)
        .filter(|v| route.query.selector.matches(v))
        .collect();
    let start = route
        .query
        .cont
        .as_deref()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0usize)
        .min(items.len());
    let end = route
        .query
        .limit
        .filter(|l| *l > 0)
        .map_or(items.len(), |l| (start + l).min(items.len()));
    let mut metadata = json!({ "resourceVersion": state.rv.to_string() });
    if end < items.len() {
        metadata["continue"] = end.to_string().into();
        metadata["remainingItemCount"] = (items.len() - end).into();
    }
    let kind = route
        .res
        .kind()
        .map_or_else(|| "List".to_owned(), |k| format!("{k}List"));
    json!({
        "apiVersion": route.res.api_version(),
        "kind": kind,
        "metadata": metadata,
        "items": items[start..end],
    })
}

/// The metadata-only form of an object or list.
pub(crate) fn partial(_route: &Route, value: Value) -> Value {
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
        None if value.get("kind").and_then(Value::as_str) == Some("Status") => value,
        None => item(&value),
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
