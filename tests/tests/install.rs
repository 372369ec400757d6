//! The install manifests in `config/`, read as kustomize would read them
//! (resources, nested kustomizations, configMapGenerator files, the
//! namespace transformer), without a kustomize binary or a network: every
//! file parses, the expected kinds come out, and the RBAC granted is
//! exactly the table in `crm_operator::rbac`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crm_operator::rbac::{self, Scope};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// The objects a kustomization builds, each with the file it came from.
#[derive(Debug, Default)]
struct Build {
    objects: Vec<(PathBuf, Value)>,
    kustomizations: Vec<PathBuf>,
}

impl Build {
    fn of(dir: &str) -> Self {
        let mut build = Self::default();
        let objects = build.kustomize(&repo().join(dir), &mut Vec::new());
        build.objects = objects;
        build
    }

    fn kustomize(&mut self, dir: &Path, stack: &mut Vec<PathBuf>) -> Vec<(PathBuf, Value)> {
        let dir = dir
            .canonicalize()
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert!(
            !stack.contains(&dir),
            "kustomization cycle through {}",
            dir.display()
        );
        stack.push(dir.clone());
        let file = dir.join("kustomization.yaml");
        self.kustomizations.push(file.clone());
        let kustomization: Value = parse_one(&file);
        let known = [
            "apiVersion",
            "kind",
            "namespace",
            "labels",
            "resources",
            "images",
            "configMapGenerator",
            "patches",
        ];
        for key in kustomization.as_object().expect("a mapping").keys() {
            assert!(
                known.contains(&key.as_str()),
                "{}: field {key} is not read by this test; teach it",
                file.display()
            );
        }
        assert_eq!(kustomization["kind"], "Kustomization", "{}", file.display());
        let mut objects = Vec::new();
        for resource in strings(&kustomization["resources"]) {
            let path = dir.join(resource);
            if path.is_dir() {
                objects.extend(self.kustomize(&path, stack));
            } else {
                assert!(path.is_file(), "{}: missing {resource}", file.display());
                objects.extend(parse_all(&path).into_iter().map(|o| (path.clone(), o)));
            }
        }
        for generator in kustomization["configMapGenerator"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let mut data = serde_json::Map::new();
            for name in strings(&generator["files"]) {
                let path = dir.join(name);
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                if name.ends_with(".json") {
                    serde_json::from_str::<Value>(&text)
                        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
                }
                let key = Path::new(name).file_name().expect("a file name");
                data.insert(key.to_string_lossy().into_owned(), text.into());
            }
            let labels = generator["options"]["labels"].clone();
            let config_map = json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": generator["name"], "namespace": generator["namespace"], "labels": labels},
                "data": data,
            });
            objects.push((file.clone(), config_map));
        }
        for patch in kustomization["patches"].as_array().into_iter().flatten() {
            let path = dir.join(patch["path"].as_str().expect("patches by path"));
            for patch in parse_all(&path) {
                let target = objects
                    .iter_mut()
                    .find(|(_, o)| {
                        o["kind"] == patch["kind"]
                            && o["metadata"]["name"] == patch["metadata"]["name"]
                    })
                    .unwrap_or_else(|| panic!("{}: patches nothing", path.display()));
                // A strategic merge patch of a custom resource is a JSON merge patch.
                merge(&mut target.1, &patch);
            }
        }
        if let Some(namespace) = kustomization["namespace"].as_str() {
            for (_, object) in &mut objects {
                if object["kind"] == "Namespace" {
                    // kustomize renames the Namespace object to the namespace it sets.
                    object["metadata"]["name"] = namespace.into();
                } else if !cluster_scoped(object) {
                    object["metadata"]["namespace"] = namespace.into();
                }
            }
        }
        for image in kustomization["images"].as_array().into_iter().flatten() {
            for (_, object) in &mut objects {
                set_image(object, image);
            }
        }
        stack.pop();
        objects
    }

    fn kinds(&self) -> BTreeSet<String> {
        self.objects
            .iter()
            .map(|(_, o)| o["kind"].as_str().unwrap_or("<no kind>").to_owned())
            .collect()
    }

    fn one<T: serde::de::DeserializeOwned>(&self, kind: &str) -> T {
        let found: Vec<&Value> = self
            .objects
            .iter()
            .map(|(_, o)| o)
            .filter(|o| o["kind"] == kind)
            .collect();
        assert_eq!(found.len(), 1, "one {kind}");
        serde_json::from_value(found[0].clone()).unwrap_or_else(|e| panic!("{kind}: {e}"))
    }
}

fn parse_one(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text)
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
}

fn parse_all(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
    let documents: Vec<Value> = documents.into_iter().filter(|d| !d.is_null()).collect();
    assert!(!documents.is_empty(), "{} holds no object", path.display());
    for document in &documents {
        for field in ["apiVersion", "kind"] {
            assert!(
                document[field].is_string(),
                "{}: an object without {field}",
                path.display()
            );
        }
        assert!(
            document["metadata"]["name"].is_string(),
            "{}: an object without a name",
            path.display()
        );
    }
    documents
}

/// RFC 7386: maps merge, `null` removes, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let Value::Object(object) = target else {
        return;
    };
    for (key, value) in fields {
        if value.is_null() {
            object.remove(key);
        } else {
            merge(object.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v.as_str().expect("a string"))
        .collect()
}

fn cluster_scoped(object: &Value) -> bool {
    matches!(
        object["kind"].as_str(),
        Some("Namespace" | "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding")
    )
}

fn set_image(object: &mut Value, image: &Value) {
    let Some(containers) = object
        .pointer_mut("/spec/template/spec/containers")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for container in containers {
        if container["image"] == image["name"] {
            container["image"] = format!(
                "{}:{}",
                image["newName"].as_str().expect("newName"),
                image["newTag"].as_str().expect("newTag")
            )
            .into();
        }
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

const INSTALL_KINDS: &[&str] = &[
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "Deployment",
    "Namespace",
    "PodDisruptionBudget",
    "Role",
    "RoleBinding",
    "Service",
    "ServiceAccount",
];

#[test]
fn the_install_builds_the_expected_kinds_all_in_the_operator_namespace() {
    let build = Build::of("config");
    assert_eq!(build.kinds(), set(INSTALL_KINDS));
    for (file, object) in &build.objects {
        if !cluster_scoped(object) {
            assert_eq!(
                object["metadata"]["namespace"],
                "crm-operator-system",
                "{}",
                file.display()
            );
        }
    }
    // The CRD installed is the checked-in one, not a copy that could drift.
    let crd: Value = build.one("CustomResourceDefinition");
    let checked_in = parse_one(&repo().join("crds/crmtenant.yaml"));
    assert_eq!(crd, checked_in);
}

#[test]
fn the_monitoring_overlay_adds_scrapes_rules_and_a_dashboard_to_the_install() {
    let build = Build::of("config/monitoring");
    let mut expected = set(INSTALL_KINDS);
    expected.extend(set(&[
        "ConfigMap",
        "PodMonitor",
        "PrometheusRule",
        "ServiceMonitor",
    ]));
    assert_eq!(build.kinds(), expected);
    let rules: Value = build.one("PrometheusRule");
    let named = |key: &str| -> BTreeSet<String> {
        rules["spec"]["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .flat_map(|g| g["rules"].as_array().expect("rules").iter())
            .filter_map(|r| r[key].as_str().map(str::to_owned))
            .collect()
    };
    let alerts = named("alert");
    // What autopilot queries (crm_operator::observe).
    for record in [
        crm_operator::observe::RATE_RULE,
        crm_operator::observe::BUCKETS_RULE,
        crm_operator::observe::CPU_RULE,
    ] {
        assert!(named("record").contains(record), "recording rule {record}");
    }
    for alert in [
        "CrmOperatorDown",
        "CrmOperatorReconcileErrors",
        "CrmTenantDegraded",
        "CrmTenantNearCapacity",
    ] {
        assert!(alerts.contains(alert), "{alert} in {alerts:?}");
    }
    let dashboard: Value = build.one("ConfigMap");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let json = dashboard["data"]["crm-operator.json"]
        .as_str()
        .expect("the dashboard");
    // Both sides are on it: the operator's series and the CRM servers'.
    for series in [
        "crm_operator_reconciles_total",
        "crm_operator_reconcile_duration_seconds_bucket",
        "crm_operator_tenants",
        "crm_operator_api_requests_total",
        "crm_http_requests_total",
        "crm_http_request_duration_seconds_bucket",
    ] {
        assert!(json.contains(series), "the dashboard shows {series}");
    }
}

#[test]
fn the_operator_runs_two_restricted_replicas_with_leader_election_and_probes() {
    let build = Build::of("config");
    let deployment: Deployment = build.one("Deployment");
    let spec = deployment.spec.expect("spec");
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.expect("pod spec");
    assert_eq!(pod.service_account_name.as_deref(), Some("crm-operator"));
    let pod_security = pod.security_context.expect("pod security context");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(
        pod_security.seccomp_profile.map(|p| p.type_).as_deref(),
        Some("RuntimeDefault")
    );
    let container = &pod.containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("crm-tenancy/crm-operator:0.1.0")
    );
    let security = container.security_context.as_ref().expect("security");
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(
        security.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_owned()])
    );
    let env: BTreeMap<&str, Option<&str>> = container
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e.value.as_deref()))
        .collect();
    assert_eq!(env.get("CRM_OPERATOR_LEADER_ELECTION"), Some(&Some("true")));
    assert!(env.contains_key("POD_NAME") && env.contains_key("POD_NAMESPACE"));
    let probe_path = |probe: Option<&k8s_openapi::api::core::v1::Probe>| {
        probe
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(
        probe_path(container.liveness_probe.as_ref()).as_deref(),
        Some("/healthz")
    );
    assert_eq!(
        probe_path(container.readiness_probe.as_ref()).as_deref(),
        Some("/readyz")
    );
    let resources = container.resources.as_ref().expect("resources");
    assert!(
        resources
            .requests
            .as_ref()
            .is_some_and(|r| r.contains_key("cpu"))
    );
    assert!(
        resources
            .limits
            .as_ref()
            .is_some_and(|l| l.contains_key("memory"))
    );
    // The metrics Service reaches these pods.
    let service: k8s_openapi::api::core::v1::Service = build.one("Service");
    let selector = service.spec.and_then(|s| s.selector).expect("a selector");
    let labels = spec
        .template
        .metadata
        .and_then(|m| m.labels)
        .expect("labels");
    for (key, value) in &selector {
        assert_eq!(labels.get(key), Some(value), "pod label {key}");
    }
}

/// (group, resource, verb) granted by a set of policy rules.
fn granted(rules: &[PolicyRule]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    assert_ne!(verb, "*", "no wildcard verbs");
                    assert_ne!(resource, "*", "no wildcard resources");
                    out.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    out
}

fn table(scope: Scope) -> BTreeSet<(String, String, String)> {
    rbac::RULES
        .iter()
        .filter(|r| r.scope == scope)
        .flat_map(|r| {
            r.verbs
                .iter()
                .map(|v| (r.group.to_owned(), r.resource.to_owned(), (*v).to_owned()))
        })
        .collect()
}

#[test]
fn the_cluster_role_grants_exactly_what_the_operator_uses() {
    let build = Build::of("config");
    let role: ClusterRole = build.one("ClusterRole");
    assert_eq!(
        granted(&role.rules.unwrap_or_default()),
        table(Scope::Cluster),
        "config/rbac/role.yaml and operator/src/rbac.rs disagree"
    );
    let lease_role: Role = build.one("Role");
    assert_eq!(
        granted(&lease_role.rules.unwrap_or_default()),
        table(Scope::OperatorNamespace),
        "config/rbac/leader_election_role.yaml and operator/src/rbac.rs disagree"
    );
}

#[test]
fn every_gitops_customer_builds_one_namespace_and_one_valid_tenant_in_it() {
    let build = Build::of("examples/gitops/customers");
    assert_eq!(build.kinds(), set(&["CrmTenant", "Namespace"]));
    let namespaces: BTreeSet<&str> = build
        .objects
        .iter()
        .filter(|(_, o)| o["kind"] == "Namespace")
        .map(|(_, o)| o["metadata"]["name"].as_str().expect("a name"))
        .collect();
    let tenants: Vec<&Value> = build
        .objects
        .iter()
        .map(|(_, o)| o)
        .filter(|o| o["kind"] == "CrmTenant")
        .collect();
    assert_eq!(tenants.len(), 3);
    let mut tiers = BTreeSet::new();
    for tenant in tenants {
        let namespace = tenant["metadata"]["namespace"]
            .as_str()
            .expect("namespaced");
        assert!(namespaces.contains(namespace), "{namespace} is created");
        // As the API server would admit it: schema, bounds, CEL rules.
        let admitted = crm_operator::cli::admit_document(tenant.clone(), "default")
            .unwrap_or_else(|problems| panic!("{namespace}: {problems:?}"));
        let validated = crm_operator::validate::validate(&admitted)
            .unwrap_or_else(|e| panic!("{namespace}: {e}"));
        tiers.insert(format!("{:?}", validated.tier));
        // Nothing the operator or the API server writes is kept in Git.
        assert!(tenant.get("status").is_none());
        for field in ["uid", "resourceVersion", "generation", "managedFields"] {
            assert!(tenant["metadata"].get(field).is_none(), "{field} in Git");
        }
    }
    assert_eq!(tiers.len(), 3, "one customer per tier: {tiers:?}");
}

#[test]
fn the_pod_monitor_scrapes_the_port_the_tenants_policies_open_to_monitoring() {
    use crm_operator::build::{self, Credentials, METRICS_PORT_NAME};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    let install = Build::of("config/monitoring");
    let monitor: Value = install.one("PodMonitor");
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["path"], "/metrics");
    let port_name = endpoint["port"].as_str().expect("a named port");
    assert_eq!(port_name, METRICS_PORT_NAME);

    // A tenant as the installed operator builds it.
    let operator: Deployment = install.one("Deployment");
    let pod = operator.spec.and_then(|s| s.template.spec).expect("pod");
    let selector = pod.containers[0]
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "CRM_OPERATOR_MONITORING_NAMESPACE_SELECTOR")
        .and_then(|e| e.value.clone())
        .expect("the install names the monitoring namespaces");
    let monitoring = crm_operator::labels::parse_selector(&selector).expect("a valid selector");
    assert!(monitoring.is_some(), "the install admits a scraper");
    let platform = crm_operator::validate::Platform {
        monitoring_namespaces: monitoring.clone(),
        ..crm_operator::validate::Platform::default()
    };
    let tenant: crm_crds::CrmTenant = crm_tests::example("growth-managed");
    let validated = crm_operator::validate::validate_with(&tenant, &platform).expect("valid");
    let desired = build::build(&validated, &Credentials::new("k", "p"));

    // The monitor selects the tenant's server pods, on a port they declare.
    let template = desired.deployment.spec.clone().expect("spec").template;
    let labels = template.metadata.and_then(|m| m.labels).expect("labels");
    let wanted = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels");
    for (key, value) in wanted {
        assert_eq!(labels.get(key).map(String::as_str), value.as_str(), "{key}");
    }
    let container = &template.spec.expect("pod spec").containers[0];
    let port = container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(port_name))
        .expect("the server declares the scraped port")
        .container_port;
    let data = desired.config_map.data.clone().expect("data");
    assert_eq!(data["CRM_METRICS_ADDR"], format!("0.0.0.0:{port}"));

    // The policy opens that port to the monitoring namespaces, and only it.
    let policy = &desired.network_policies[0];
    let rules = policy.spec.clone().and_then(|s| s.ingress).expect("rules");
    for rule in &rules {
        let ports: Vec<_> = rule
            .ports
            .iter()
            .flatten()
            .map(|p| p.port.clone())
            .collect();
        let from_monitoring = rule
            .from
            .iter()
            .flatten()
            .any(|peer| peer.namespace_selector == monitoring);
        let metrics_rule = ports == [Some(IntOrString::Int(port))];
        assert_eq!(from_monitoring, metrics_rule, "{rule:?}");
        if metrics_rule {
            assert_eq!(
                rule.from.as_ref().map(Vec::len),
                Some(1),
                "monitoring alone"
            );
        }
    }
    assert!(rules.iter().any(|r| {
        r.ports
            .iter()
            .flatten()
            .any(|p| p.port == Some(IntOrString::Int(port)))
    }));
}
