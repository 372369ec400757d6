//! JSON Merge Patch (RFC 7396) for the PATCH routes: the patch is merged
//! into the resource's current input fields and the result validated as a
//! full replacement body, so PATCH and PUT enforce exactly the same rules.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::http::{body_error, parse_json};

/// The media type of a merge patch.
pub const MERGE_PATCH: &str = "application/merge-patch+json";

/// A merge patch body: `Content-Type: application/merge-patch+json` (else
/// 415), a JSON object (else 422).
#[derive(Debug)]
pub struct MergePatch(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for MergePatch {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let ok = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(MERGE_PATCH));
        if !ok {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        match parse_json::<Value>(&bytes)? {
            Value::Object(map) => Ok(MergePatch(map)),
            _ => Err(ApiError::invalid("", "a merge patch must be a JSON object")),
        }
    }
}

/// Merge `patch` into `target` as RFC 7396 says: `null` removes a member,
/// objects merge member by member, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in patch {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// The body a PUT would send for `current` (its `fields`, absent when null),
/// with `patch` merged in, parsed and validated as `T`.
pub fn apply<R: Serialize, T: DeserializeOwned>(
    current: &R,
    fields: &[&str],
    patch: Map<String, Value>,
) -> ApiResult<T> {
    let mut body = match serde_json::to_value(current) {
        Ok(Value::Object(mut m)) => {
            m.retain(|k, v| fields.contains(&k.as_str()) && !v.is_null());
            Value::Object(m)
        }
        Ok(_) | Err(_) => return Err(ApiError::Internal("resource is not an object".into())),
    };
    merge(&mut body, &Value::Object(patch));
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        // A required member the patch set to null is missing: name it.
        let missing = msg
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'));
        let field = match (path.as_str(), missing) {
            (".", Some(name)) => name.to_string(),
            (".", None) => String::new(),
            _ => path,
        };
        ApiError::invalid(field, msg)
    })
}

/// As [`apply`], for a PATCH of `current` at `version` that expects
/// `expected`: the body is judged before the version, as for PUT, so a bad
/// patch is 422 whatever version it names, and a stale one then 412.
pub fn apply_versioned<R: Serialize, T: DeserializeOwned>(
    current: &R,
    version: i64,
    fields: &[&str],
    patch: Map<String, Value>,
    expected: Option<i64>,
) -> ApiResult<T> {
    let body = apply(current, fields, patch)?;
    if expected.is_some_and(|v| v != version) {
        return Err(ApiError::PreconditionFailed);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_follows_rfc_7396_examples() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (json!(["a"]), json!({"a": "c"}), json!({"a": "c"})),
        ];
        for (mut target, patch, want) in cases {
            merge(&mut target, &patch);
            assert_eq!(target, want, "patch {patch}");
        }
    }
}
