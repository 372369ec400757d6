//! The part of the Gateway API (`gateway.networking.k8s.io/v1`, standard
//! channel) the operator writes: an `HTTPRoute` that attaches to a Gateway
//! and forwards a hostname to a Service.
//!
//! k8s-openapi has no Gateway API types, and the `gateway-api` crate is
//! built on other versions of k8s-openapi and kube than ours, so these are
//! typed structs of our own, holding only the fields we set or read. They
//! implement k8s-openapi's `Resource` and `Metadata` like its own types, so
//! the operator watches, caches, applies and prunes them as any child. The
//! tests check what they serialise against the upstream schema's rules for
//! those fields (names, required fields, enums, patterns, bounds).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use serde::{Deserialize, Serialize};

/// API group of the Gateway API.
pub const GROUP: &str = "gateway.networking.k8s.io";
/// `apiVersion` of the HTTPRoutes the operator writes.
pub const API_VERSION: &str = "gateway.networking.k8s.io/v1";

/// An HTTPRoute: requests for `hostnames` arriving at the `parentRefs`
/// Gateways go to the `backendRefs` of the matching rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(into = "Wire", from = "Wire")]
pub struct HttpRoute {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// What the route asks for.
    pub spec: HttpRouteSpec,
    /// What the Gateways say about it.
    pub status: Option<HttpRouteStatus>,
}

/// The serialised form, with `apiVersion` and `kind` as k8s-openapi writes them.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: HttpRouteSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<HttpRouteStatus>,
}

impl From<HttpRoute> for Wire {
    fn from(route: HttpRoute) -> Self {
        Wire {
            api_version: API_VERSION.to_owned(),
            kind: "HTTPRoute".to_owned(),
            metadata: route.metadata,
            spec: route.spec,
            status: route.status,
        }
    }
}

impl From<Wire> for HttpRoute {
    fn from(wire: Wire) -> Self {
        HttpRoute {
            metadata: wire.metadata,
            spec: wire.spec,
            status: wire.status,
        }
    }
}

impl k8s_openapi::Resource for HttpRoute {
    const API_VERSION: &'static str = API_VERSION;
    const GROUP: &'static str = GROUP;
    const KIND: &'static str = "HTTPRoute";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "httproutes";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for HttpRoute {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// `spec` of an HTTPRoute.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// The Gateways (or their listeners) the route attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentReference>,
    /// Host headers the route answers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// Matches and where they go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<HttpRouteRule>,
}

/// A Gateway, or one of its listeners.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// API group of the parent; the Gateway API's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind of the parent; `Gateway` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the parent.
    pub name: String,
    /// Namespace of the parent; the route's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The listener to attach to; every listener that accepts the route when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// One rule: requests it matches go to its backends.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// What requests the rule takes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpRouteMatch>,
    /// Where they go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<HttpBackendRef>,
}

/// A request match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// The path to match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathMatch>,
}

/// A path match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpPathMatch {
    /// `Exact`, `PathPrefix` or `RegularExpression`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// The path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A backend: a Service and its port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpBackendRef {
    /// API group of the backend; the core group when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind of the backend; `Service` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the backend.
    pub name: String,
    /// Port of the Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// `status` of an HTTPRoute: one entry per parent that looked at it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteStatus {
    /// What each parent says.
    #[serde(default)]
    pub parents: Vec<RouteParentStatus>,
}

/// What one parent says about the route (`Accepted`, `ResolvedRefs`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    /// The parent.
    pub parent_ref: ParentReference,
    /// The controller that wrote this entry.
    #[serde(default)]
    pub controller_name: String,
    /// Its conditions.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// The rules of the upstream v1 schema (standard channel) for every
    /// field these types hold, with unknown fields refused, so a misspelt
    /// or mistyped field fails here rather than on a cluster.
    fn upstream_rules() -> Value {
        let dns_subdomain = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
        let string = |max: u64, pattern: &str| json!({ "type": "string", "minLength": 1, "maxLength": max, "pattern": pattern });
        json!({
            "type": "object",
            "required": ["apiVersion", "kind", "metadata", "spec"],
            "properties": {
                "apiVersion": { "enum": ["gateway.networking.k8s.io/v1"] },
                "kind": { "enum": ["HTTPRoute"] },
                "metadata": { "type": "object" },
                "spec": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "parentRefs": {
                            "type": "array", "maxItems": 32,
                            "items": {
                                "type": "object", "additionalProperties": false,
                                "required": ["name"],
                                "properties": {
                                    "group": { "type": "string", "maxLength": 253,
                                               "pattern": format!("^$|{}", dns_subdomain) },
                                    "kind": string(63, "^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"),
                                    "name": string(253, ".*"),
                                    "namespace": string(63, "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
                                    "sectionName": string(253, dns_subdomain),
                                }
                            }
                        },
                        "hostnames": {
                            "type": "array", "maxItems": 16,
                            "items": string(253, "^(\\*\\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
                        },
                        "rules": {
                            "type": "array", "maxItems": 16,
                            "items": {
                                "type": "object", "additionalProperties": false,
                                "properties": {
                                    "matches": {
                                        "type": "array", "maxItems": 64,
                                        "items": {
                                            "type": "object", "additionalProperties": false,
                                            "properties": { "path": {
                                                "type": "object", "additionalProperties": false,
                                                "properties": {
                                                    "type": { "enum": ["Exact", "PathPrefix", "RegularExpression"] },
                                                    "value": { "type": "string", "maxLength": 1024 },
                                                }
                                            } }
                                        }
                                    },
                                    "backendRefs": {
                                        "type": "array", "maxItems": 16,
                                        "items": {
                                            "type": "object", "additionalProperties": false,
                                            "required": ["name"],
                                            "properties": {
                                                "group": { "type": "string", "maxLength": 253 },
                                                "kind": string(63, "^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"),
                                                "name": string(253, ".*"),
                                                "port": { "type": "integer", "minimum": 1, "maximum": 65535 },
                                            }
                                        }
                                    },
                                }
                            }
                        },
                    }
                },
            }
        })
    }

    pub(crate) fn assert_upstream_valid(route: &Value) {
        let schema = upstream_rules();
        let validator = jsonschema::validator_for(&schema).expect("a valid schema");
        let problems: Vec<String> = validator
            .iter_errors(route)
            .map(|e| e.to_string())
            .collect();
        assert!(problems.is_empty(), "{problems:?} in {route:#}");
    }

    #[test]
    fn a_route_serialises_with_api_version_and_kind_and_reads_back() {
        let route = HttpRoute {
            metadata: ObjectMeta {
                name: Some("acme".into()),
                ..ObjectMeta::default()
            },
            spec: HttpRouteSpec {
                parent_refs: vec![ParentReference {
                    name: "public".into(),
                    section_name: Some("https".into()),
                    ..ParentReference::default()
                }],
                hostnames: vec!["crm.acme.example.com".into()],
                rules: vec![HttpRouteRule {
                    matches: vec![HttpRouteMatch {
                        path: Some(HttpPathMatch {
                            type_: Some("PathPrefix".into()),
                            value: Some("/".into()),
                        }),
                    }],
                    backend_refs: vec![HttpBackendRef {
                        name: "acme".into(),
                        port: Some(80),
                        ..HttpBackendRef::default()
                    }],
                }],
            },
            status: None,
        };
        let value = serde_json::to_value(&route).expect("serialises");
        assert_eq!(value["apiVersion"], "gateway.networking.k8s.io/v1");
        assert_eq!(value["kind"], "HTTPRoute");
        assert_eq!(value.get("status"), None);
        assert_upstream_valid(&value);
        let back: HttpRoute = serde_json::from_value(value).expect("reads back");
        assert_eq!(back, route);
    }

    #[test]
    fn the_rules_refuse_what_upstream_refuses() {
        let schema = upstream_rules();
        let validator = jsonschema::validator_for(&schema).expect("a valid schema");
        let base = json!({
            "apiVersion": API_VERSION, "kind": "HTTPRoute", "metadata": {},
            "spec": { "parentRefs": [{ "name": "public" }], "hostnames": ["crm.example.com"] }
        });
        assert!(validator.is_valid(&base));
        for (pointer, bad) in [
            ("/spec/hostnames/0", json!("CRM.example.com")),
            ("/spec/parentRefs/0/sectionName", json!("HTTPS")),
            ("/spec/parentRefs/0/gatewayName", json!("x")),
        ] {
            let mut object = base.clone();
            let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
            let slot = object.pointer_mut(parent).expect("parent exists");
            match slot {
                Value::Array(items) => items[key.parse::<usize>().expect("index")] = bad,
                Value::Object(map) => {
                    map.insert(key.to_owned(), bad);
                }
                _ => unreachable!("a container"),
            }
            assert!(!validator.is_valid(&object), "{pointer}");
        }
    }

    #[test]
    fn a_route_from_the_api_server_reads_with_its_status() {
        let live = json!({
            "apiVersion": API_VERSION, "kind": "HTTPRoute",
            "metadata": { "name": "acme", "resourceVersion": "7" },
            "spec": { "parentRefs": [{ "group": GROUP, "kind": "Gateway", "name": "public" }],
                      "rules": [{ "backendRefs": [{ "group": "", "kind": "Service", "name": "acme", "port": 80, "weight": 1 }] }] },
            "status": { "parents": [{ "parentRef": { "name": "public" }, "controllerName": "example.com/gw",
                        "conditions": [{ "type": "Accepted", "status": "True", "reason": "Accepted",
                                         "message": "", "lastTransitionTime": "2026-11-30T00:00:00Z" }] }] }
        });
        let route: HttpRoute = serde_json::from_value(live).expect("reads");
        let status = route.status.expect("status");
        assert_eq!(status.parents[0].conditions[0].type_, "Accepted");
    }
}
