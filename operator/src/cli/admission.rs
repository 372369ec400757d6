//! Offline admission: checks a CrmTenant document as the API server would on
//! apply — apiVersion and kind, the OpenAPI schema (types, bounds, enums,
//! patterns, unknown fields), then the CEL rules after defaulting — so `plan`
//! rejects exactly what `kubectl apply` would, with the field named.

use std::fmt;
use std::sync::OnceLock;

use crm_crds::CrmTenant;
use kube::CustomResourceExt;
use kube::core::cel::{CompiledSchema, Validator, compile_schema};
use serde_json::Value;

/// One problem with one input document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// File name, or `<stdin>`.
    pub source: String,
    /// 1-based index of the YAML document in the file; none when the whole
    /// file is to blame.
    pub document: Option<usize>,
    /// `namespace/name` of the tenant, when the document names one.
    pub tenant: Option<String>,
    /// Dotted path of the offending field, e.g. `spec.load.peakFactor`.
    pub path: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(document) = self.document {
            write!(f, " (document {document})")?;
        }
        if let Some(tenant) = &self.tenant {
            write!(f, ": tenant {tenant}")?;
        }
        if let Some(path) = &self.path {
            write!(f, ": {path}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// What is wrong with a document, before the file and tenant are attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// Dotted field path, if one field is to blame.
    pub path: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Admits one parsed document: a CrmTenant, or every problem found in it.
pub fn admit_document(
    mut value: Value,
    default_namespace: &str,
) -> Result<CrmTenant, Vec<FieldProblem>> {
    check_type_meta(&value)?;
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.entry("namespace")
            .or_insert_with(|| Value::String(default_namespace.to_owned()));
    }
    let problems: Vec<FieldProblem> = schema_validator()
        .iter_errors(&value)
        .map(|error| FieldProblem {
            path: dotted(&error.instance_path().to_string()),
            message: error.to_string(),
        })
        .collect();
    if !problems.is_empty() {
        return Err(problems);
    }
    if let Err(errors) = Validator::new().validate_compiled(cel_schema(), &value, None) {
        return Err(errors
            .into_vec()
            .into_iter()
            .map(|e| FieldProblem {
                path: dotted(&e.field_path),
                message: e.message,
            })
            .collect());
    }
    let value = kube::core::cel::apply_defaults(open_api_schema(), &value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        vec![FieldProblem {
            path: dotted_serde_path(&e.path().to_string()),
            message: e.into_inner().to_string(),
        }]
    })
}

fn check_type_meta(value: &Value) -> Result<(), Vec<FieldProblem>> {
    let Some(object) = value.as_object() else {
        return Err(vec![problem(
            None,
            "expected a YAML mapping (a Kubernetes object)",
        )]);
    };
    let field = |name: &str| object.get(name).and_then(Value::as_str);
    let mut problems = Vec::new();
    match field("apiVersion") {
        Some(crm_crds::API_VERSION) => {}
        Some(other) => problems.push(problem(
            Some("apiVersion"),
            &format!("expected {}, found {other}", crm_crds::API_VERSION),
        )),
        None => problems.push(problem(Some("apiVersion"), "missing")),
    }
    match field("kind") {
        Some(crm_crds::KIND) => {}
        Some(other) => problems.push(problem(
            Some("kind"),
            &format!("expected {}, found {other}", crm_crds::KIND),
        )),
        None => problems.push(problem(Some("kind"), "missing")),
    }
    let name = value.pointer("/metadata/name").and_then(Value::as_str);
    if name.is_none_or(str::is_empty) {
        problems.push(problem(Some("metadata.name"), "missing"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn problem(path: Option<&str>, message: &str) -> FieldProblem {
    FieldProblem {
        path: path.map(str::to_owned),
        message: message.to_owned(),
    }
}

/// The CRD's openAPIV3Schema, as the API server stores it.
fn open_api_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let crd = CrmTenant::crd();
        let schema = crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .map(serde_json::to_value);
        match schema {
            Some(Ok(value)) => value,
            _ => unreachable!("the derived CRD always carries an openAPIV3Schema"),
        }
    })
}

fn cel_schema() -> &'static CompiledSchema {
    static COMPILED: OnceLock<CompiledSchema> = OnceLock::new();
    COMPILED.get_or_init(|| compile_schema(open_api_schema()))
}

/// The OpenAPI schema as a JSON Schema (draft 4, whose `exclusiveMinimum:
/// true` OpenAPI 3.0 shares), made strict the way `kubectl apply` with
/// server-side field validation is: an unknown field is an error, and
/// `nullable` admits null.
fn schema_validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let mut schema = open_api_schema().clone();
        // The root also holds apiVersion, kind and metadata, which the API
        // server checks itself: strictness starts below it.
        if let Some(Value::Object(children)) = schema.get_mut("properties") {
            children.values_mut().for_each(strict);
        }
        match jsonschema::draft4::new(&schema) {
            Ok(validator) => validator,
            Err(e) => unreachable!("the CRD schema is a valid draft-4 schema: {e}"),
        }
    })
}

fn strict(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    if object.get("nullable") == Some(&Value::Bool(true))
        && let Some(ty) = object.get("type").cloned()
    {
        object.insert("type".into(), Value::Array(vec![ty, "null".into()]));
    }
    let preserves = object.contains_key("x-kubernetes-preserve-unknown-fields");
    if object.contains_key("properties") && !preserves {
        object
            .entry("additionalProperties")
            .or_insert(Value::Bool(false));
    }
    if let Some(Value::Object(children)) = object.get_mut("properties") {
        children.values_mut().for_each(strict);
    }
    if let Some(items) = object.get_mut("items") {
        strict(items);
    }
}

/// `/spec/load/peakFactor` or `.spec.load.peakFactor` → `spec.load.peakFactor`;
/// the root has no path.
fn dotted(pointer: &str) -> Option<String> {
    let path = pointer.trim_start_matches(['/', '.']).replace('/', ".");
    (!path.is_empty()).then_some(path)
}

fn dotted_serde_path(path: &str) -> Option<String> {
    (path != ".").then(|| path.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tenant(spec: Value) -> Value {
        json!({
            "apiVersion": "crm.tenancy.dev/v1alpha1",
            "kind": "CrmTenant",
            "metadata": {"name": "acme"},
            "spec": spec,
        })
    }

    fn problems(spec: Value) -> Vec<FieldProblem> {
        match admit_document(tenant(spec), "default") {
            Ok(t) => panic!("expected problems, admitted {t:?}"),
            Err(problems) => problems,
        }
    }

    fn paths(spec: Value) -> Vec<String> {
        problems(spec).into_iter().filter_map(|p| p.path).collect()
    }

    #[test]
    fn minimal_tenant_is_admitted_with_defaults_and_namespace() {
        let t = admit_document(tenant(json!({"load": {"activeUsers": 10}})), "team-a")
            .expect("admitted");
        assert_eq!(t.metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(t.spec.load.requests_per_user_per_minute, 6.0);
        assert_eq!(t.spec.load.peak_factor, 3.0);
        assert_eq!(t.spec.tier, crm_crds::Tier::Starter);
    }

    #[test]
    fn load_without_rate_or_users_is_rejected_by_the_cel_rule() {
        let found = problems(json!({"load": {}}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path.as_deref(), Some("spec.load"));
        assert!(found[0].message.contains("peakRequestsPerSecond"));
    }

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let found = problems(json!({"load": {"activeUsers": 1, "users": 3}}));
        assert_eq!(found[0].path.as_deref(), Some("spec.load"));
        assert!(found[0].message.contains("users"), "{found:?}");
    }

    #[test]
    fn out_of_range_and_wrong_type_values_are_each_reported() {
        let found = paths(json!({
            "load": {"peakRequestsPerSecond": 0, "peakFactor": 0.5},
            "replicas": {"min": "two"},
            "tier": "Gold",
        }));
        for path in [
            "spec.load.peakRequestsPerSecond",
            "spec.load.peakFactor",
            "spec.replicas.min",
            "spec.tier",
        ] {
            assert!(
                found.iter().any(|p| p == path),
                "{path} missing from {found:?}"
            );
        }
    }

    #[test]
    fn target_utilization_must_lie_strictly_between_zero_and_one() {
        for bad in [0.0, 1.0, 1.5] {
            let found = paths(
                json!({"load": {"activeUsers": 1}, "performance": {"targetUtilization": bad}}),
            );
            assert_eq!(found, ["spec.performance.targetUtilization"], "for {bad}");
        }
    }

    #[test]
    fn replicas_min_above_max_is_rejected() {
        let found = paths(
            json!({"load": {"activeUsers": 1}, "database": {"mode": "Managed"}, "replicas": {"min": 4, "max": 3}}),
        );
        assert_eq!(found, ["spec.replicas"]);
    }

    #[test]
    fn each_database_mode_requires_its_settings() {
        let shared = paths(json!({"load": {"activeUsers": 1}, "database": {"mode": "Shared"}}));
        assert_eq!(shared, ["spec.database.shared"]);
        let external = paths(json!({"load": {"activeUsers": 1}, "database": {"mode": "External"}}));
        assert_eq!(external, ["spec.database.external"]);
    }

    #[test]
    fn embedded_database_forbids_autoscaling_and_several_replicas_even_when_implicit() {
        for spec in [
            json!({"load": {"activeUsers": 1}, "autoscaling": {"enabled": true}}),
            json!({"load": {"activeUsers": 1}, "database": {"mode": "Embedded"}, "replicas": {"min": 2}}),
        ] {
            assert_eq!(paths(spec.clone()), ["spec.database.mode"], "{spec}");
        }
    }

    #[test]
    fn an_absent_mode_is_judged_by_the_tiers_default() {
        let growth = json!({"tier": "Growth", "load": {"activeUsers": 1},
                            "autoscaling": {"enabled": true}, "database": {"storage": "2Gi"}});
        let admitted = admit_document(tenant(growth), "default").expect("admitted");
        assert_eq!(admitted.spec.database.and_then(|d| d.mode), None);
        let starter = json!({"tier": "Starter", "load": {"activeUsers": 1},
                             "database": {"storage": "2Gi"}, "replicas": {"min": 2}});
        assert_eq!(paths(starter), ["spec.database.mode"]);
    }

    #[test]
    fn operator_owned_environment_names_are_refused() {
        let found = paths(
            json!({"load": {"activeUsers": 1}, "server": {"env": [{"name": "DATABASE_URL", "value": "x"}]}}),
        );
        assert_eq!(found, ["spec.server.env[0].name"]);
    }

    #[test]
    fn expose_needs_a_dns_host_and_exactly_one_of_ingress_or_gateway() {
        let ingress = json!({"className": "nginx", "controllerNamespace": "ingress-nginx"});
        let gateway = json!({"name": "public", "namespace": "gateway-system"});
        let tls = json!({"issuer": {"name": "letsencrypt"}});
        let spec =
            |expose: Value| json!({"load": {"activeUsers": 1}, "server": {"expose": expose}});
        let admitted = |expose: Value| admit_document(tenant(spec(expose)), "default");
        let ok = admitted(json!({"host": "crm.acme.example.com", "ingress": ingress, "tls": tls}))
            .expect("an Ingress with cert-manager");
        let issuer = ok
            .spec
            .server
            .and_then(|s| s.expose)
            .and_then(|e| e.tls)
            .and_then(|t| t.issuer);
        assert_eq!(
            issuer.map(|i| i.kind),
            Some(crm_crds::IssuerKind::ClusterIssuer)
        );
        admitted(json!({"host": "crm.acme.example.com", "gateway": gateway})).expect("a Gateway");
        let cases = [
            (
                json!({"host": "crm.acme.example.com"}),
                "spec.server.expose",
                "exactly one",
            ),
            (
                json!({"host": "crm.acme.example.com", "ingress": ingress, "gateway": gateway, "tls": tls}),
                "spec.server.expose",
                "exactly one",
            ),
            (
                json!({"host": "crm.acme.example.com", "ingress": ingress}),
                "spec.server.expose.tls",
                "tls",
            ),
            (
                json!({"host": "crm.acme.example.com", "gateway": gateway, "tls": tls}),
                "spec.server.expose.tls",
                "tls",
            ),
            (
                json!({"host": "crm.acme.example.com", "ingress": ingress, "tls": {}}),
                "spec.server.expose.tls",
                "secretName or expose.tls.issuer",
            ),
        ];
        for (expose, path, says) in cases {
            let found = problems(spec(expose.clone()));
            assert_eq!(found.len(), 1, "{expose}: {found:?}");
            assert_eq!(found[0].path.as_deref(), Some(path), "{expose}");
            assert!(found[0].message.contains(says), "{expose}: {found:?}");
        }
        for host in [
            "localhost",
            "CRM.example.com",
            "crm_1.example.com",
            "*.example.com",
            "crm.example.com.",
        ] {
            let found = problems(spec(json!({"host": host, "gateway": gateway})));
            assert_eq!(found.len(), 1, "{host}: {found:?}");
            assert_eq!(
                found[0].path.as_deref(),
                Some("spec.server.expose.host"),
                "{host}"
            );
            assert!(found[0].message.contains("DNS name"), "{host}: {found:?}");
        }
    }

    #[test]
    fn tenant_names_that_would_break_derived_names_are_refused() {
        let mut doc = tenant(json!({"load": {"activeUsers": 1}}));
        doc["metadata"]["name"] = json!("a".repeat(55));
        let found = admit_document(doc, "default").expect_err("too long");
        assert!(found[0].message.contains("metadata.name"), "{found:?}");
    }

    #[test]
    fn wrong_kind_and_api_version_are_reported_without_schema_noise() {
        let doc = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
        let found = admit_document(doc, "default").expect_err("not a tenant");
        let paths: Vec<_> = found.iter().filter_map(|p| p.path.as_deref()).collect();
        assert_eq!(paths, ["apiVersion", "kind"]);
    }

    #[test]
    fn explicit_null_for_an_optional_group_is_accepted() {
        let t = admit_document(
            tenant(json!({"load": {"activeUsers": 1}, "replicas": null})),
            "default",
        )
        .expect("null is allowed where the schema says nullable");
        assert_eq!(t.spec.replicas, None);
    }
}
