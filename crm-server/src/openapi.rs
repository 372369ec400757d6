//! The OpenAPI 3 document, assembled from the handlers' annotations and then
//! completed with what every route shares: the API key, the problem responses
//! each kind of operation can give, `If-Match` and `ETag` on versioned
//! resources. Handlers declare only what is theirs: path, parameters, body
//! and success response. The document is the contract
//! (`scripts/openapi-contract` checks the server against it), so a status a
//! route can answer is listed here.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder, ServerBuilder};

/// Collections whose items carry a version: `ETag` on reads and writes,
/// `If-Match` on updates and deletes.
const VERSIONED: &[&str] = &[
    "/companies",
    "/contacts",
    "/deals",
    "/tickets",
    "/campaigns",
];

/// Statuses particular to one route, and why.
const PARTICULAR: &[(&str, &str, &str, &str)] = &[
    ("post", "/companies", "409", "name is already taken"),
    ("put", "/companies/{id}", "409", "name is already taken"),
    ("patch", "/companies/{id}", "409", "name is already taken"),
    ("post", "/contacts", "409", "email is already taken"),
    ("put", "/contacts/{id}", "409", "email is already taken"),
    ("patch", "/contacts/{id}", "409", "email is already taken"),
    ("post", "/companies.csv", "409", "a name is already taken"),
    ("post", "/contacts.csv", "409", "an email is already taken"),
    ("delete", "/deals/{id}", "409", "the deal has an order"),
    (
        "post",
        "/contacts/batch",
        "409",
        "another call with this Idempotency-Key is being answered",
    ),
    (
        "post",
        "/companies/batch",
        "409",
        "another call with this Idempotency-Key is being answered",
    ),
    (
        "post",
        "/deals/{id}/order",
        "409",
        "the deal already has an order",
    ),
    (
        "post",
        "/deals/{id}/order",
        "422",
        "only won deals become orders (field `stage`)",
    ),
];

/// `If-Match`: the ETag of the last read, or `*`.
pub const IF_MATCH_PATTERN: &str = r#"^(\*|(W/)?"[0-9]{1,18}")$"#;
/// On a delete, where If-Match is optional, an empty value counts as absent.
pub const OPTIONAL_IF_MATCH_PATTERN: &str = r#"^(|\*|(W/)?"[0-9]{1,18}")$"#;

/// The document before routes are added: info, server prefix, auth scheme.
pub fn base() -> OpenApi {
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("crm-server")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "CRM REST API. Authenticate with `Authorization: Bearer <CRM_API_KEY>`. \
                     Errors are application/problem+json naming the field at fault. \
                     Updates (PUT, PATCH) need `If-Match` with the ETag of the last read \
                     (412 when stale, 428 when missing); deletes honour it when sent. Lists \
                     take `cursor` (from `next_cursor`), `limit`, `sort` (`field` or \
                     `-field`). Any request may also be answered 408 (timeout) or 500.",
                ))
                .build(),
        )
        .servers(Some([ServerBuilder::new().url("/api/v1").build()]))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "api_key",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    components.schemas.insert(
        "Problem".to_string(),
        <crate::error::Problem as utoipa::PartialSchema>::schema(),
    );
    doc
}

/// The finished document as JSON, with the shared responses and headers.
pub fn complete(doc: &OpenApi) -> Value {
    let mut v = serde_json::to_value(doc).unwrap_or(Value::Null);
    if let Some(paths) = v.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                if let Some(op) = op.as_object_mut() {
                    complete_operation(method, path, op);
                }
            }
        }
    }
    patch_bodies(&mut v);
    v
}

/// A PATCH body is a merge patch of a PUT body (`XInput`): its own schema
/// `XPatch` has no required member, and `null` (remove, so back to the
/// default) is allowed wherever the PUT body may omit the member.
fn patch_bodies(v: &mut Value) {
    let mut wanted = Vec::new();
    if let Some(paths) = v.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            // `pointer_mut`, not indexing: indexing would insert the members.
            let pointer = "/patch/requestBody/content/application~1merge-patch+json/schema/$ref";
            let Some(schema) = item.pointer_mut(pointer) else {
                continue;
            };
            let Some(input) = schema.as_str().and_then(|r| r.rsplit('/').next()) else {
                continue;
            };
            let input = input.to_string();
            let name = input.replace("Input", "Patch");
            *schema = json!(format!("#/components/schemas/{name}"));
            wanted.push((input, name));
        }
    }
    let Some(schemas) = v
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (input, name) in wanted {
        let Some(mut patch) = schemas.get(&input).cloned() else {
            continue;
        };
        let required = patch
            .as_object_mut()
            .and_then(|o| o.remove("required"))
            .unwrap_or_else(|| json!([]));
        if let Some(props) = patch.get_mut("properties").and_then(Value::as_object_mut) {
            for (field, prop) in props.iter_mut() {
                let optional = !required
                    .as_array()
                    .is_some_and(|r| r.iter().any(|f| f == field.as_str()));
                if optional && !prop.to_string().contains("\"null\"") {
                    *prop = json!({"anyOf": [prop.clone(), {"type": "null"}]});
                }
            }
        }
        patch["description"] = json!(format!(
            "JSON merge patch (RFC 7396) of a {input}: members to change; null removes an \
             optional member"
        ));
        schemas.insert(name, patch);
    }
}

fn complete_operation(method: &str, path: &str, op: &mut Map<String, Value>) {
    let has_body = op.contains_key("requestBody");
    let has_query = op
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
    let versioned_item = VERSIONED
        .iter()
        .any(|c| path.strip_prefix(c) == Some("/{id}"));
    let mut add = |code: &str, why: &str| {
        let responses = op
            .entry("responses")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        if let Some(r) = responses {
            r.entry(code).or_insert_with(|| problem(why));
        }
    };
    let if_match = versioned_item && matches!(method, "put" | "patch" | "delete");
    if has_body || has_query || if_match {
        add("400", "Malformed JSON, query string or If-Match header");
    }
    if has_body || has_query {
        add("422", "A value fails validation; `field` names it");
    }
    add("401", "Missing or wrong API key");
    if path.contains('{') {
        add("404", "No such resource");
    }
    add("408", "The request took longer than the server's timeout");
    if has_body {
        add("413", "The body is larger than the server accepts");
        add("415", "The body is not of the declared content type");
    }
    for (m, p, code, why) in PARTICULAR {
        if *m == method && *p == path {
            add(code, why);
        }
    }
    if if_match {
        add("412", "If-Match names a version that is no longer current");
    }
    if versioned_item && matches!(method, "put" | "patch") {
        add("428", "If-Match is missing");
    }
    add("500", "Internal error (details are logged, never sent)");
    if method != "get" {
        add(
            "503",
            "The CRM is read-only while its data is moved or restored; retry after Retry-After seconds",
        );
    }
    op.entry("security")
        .or_insert_with(|| json!([{"api_key": []}]));
    if if_match {
        let required = method != "delete";
        let pattern = if required {
            IF_MATCH_PATTERN
        } else {
            OPTIONAL_IF_MATCH_PATTERN
        };
        let params = op
            .entry("parameters")
            .or_insert_with(|| json!([]))
            .as_array_mut();
        if let Some(params) = params {
            params.push(json!({
                "name": "If-Match",
                "in": "header",
                "required": required,
                "description": "The ETag of the last read, or `*` for any version.",
                "schema": {"type": "string", "pattern": pattern},
            }));
        }
    }
    let answers_item = versioned_item && matches!(method, "get" | "put" | "patch")
        || VERSIONED.contains(&path) && method == "post";
    if answers_item {
        let etag = json!({"ETag": {
            "description": "The version of the resource, for If-Match.",
            "required": true,
            "schema": {"type": "string", "pattern": "^\"[0-9]+\"$"},
        }});
        if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
            for (code, r) in responses.iter_mut() {
                if code.starts_with('2') {
                    r["headers"] = etag.clone();
                }
            }
        }
    }
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {
            "schema": {"$ref": "#/components/schemas/Problem"}
        }}
    })
}

/// `GET /api/v1/openapi.json`: the document rendered once at start-up.
pub async fn serve(doc: axum::body::Bytes) -> Response {
    let mut res = doc.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}
