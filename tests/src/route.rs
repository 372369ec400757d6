//! URL parsing: resource paths, query parameters and label selectors.

use serde_json::Value;

/// A resource type: group (empty for core), version and plural.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Res {
    pub group: String,
    pub version: String,
    pub plural: String,
}

impl Res {
    /// `apiVersion` of objects of this type.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `kind` of objects of this type, from a table of known plurals.
    pub fn kind(&self) -> Option<&'static str> {
        Some(match self.plural.as_str() {
            "configmaps" => "ConfigMap",
            "secrets" => "Secret",
            "serviceaccounts" => "ServiceAccount",
            "services" => "Service",
            "persistentvolumeclaims" => "PersistentVolumeClaim",
            "pods" => "Pod",
            "namespaces" => "Namespace",
            "events" => "Event",
            "deployments" => "Deployment",
            "statefulsets" => "StatefulSet",
            "jobs" => "Job",
            "cronjobs" => "CronJob",
            "horizontalpodautoscalers" => "HorizontalPodAutoscaler",
            "poddisruptionbudgets" => "PodDisruptionBudget",
            "networkpolicies" => "NetworkPolicy",
            "ingresses" => "Ingress",
            "httproutes" => "HTTPRoute",
            "leases" => "Lease",
            "crmtenants" => "CrmTenant",
            _ => return None,
        })
    }

    /// Whether the type has a `/status` subresource.
    pub fn has_status(&self) -> bool {
        matches!(
            self.plural.as_str(),
            "crmtenants"
                | "deployments"
                | "statefulsets"
                | "jobs"
                | "cronjobs"
                | "horizontalpodautoscalers"
                | "poddisruptionbudgets"
                | "ingresses"
                | "httproutes"
        )
    }
}

/// Every resource the double serves, as discovery lists them: group,
/// version, plural.
const SERVED: &[(&str, &str, &str)] = &[
    ("", "v1", "configmaps"),
    ("", "v1", "secrets"),
    ("", "v1", "serviceaccounts"),
    ("", "v1", "services"),
    ("", "v1", "persistentvolumeclaims"),
    ("", "v1", "pods"),
    ("", "v1", "namespaces"),
    ("events.k8s.io", "v1", "events"),
    ("apps", "v1", "deployments"),
    ("apps", "v1", "statefulsets"),
    ("batch", "v1", "jobs"),
    ("batch", "v1", "cronjobs"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("networking.k8s.io", "v1", "networkpolicies"),
    ("networking.k8s.io", "v1", "ingresses"),
    ("gateway.networking.k8s.io", "v1", "httproutes"),
    ("coordination.k8s.io", "v1", "leases"),
    ("crm.tenancy.dev", "v1alpha1", "crmtenants"),
];

/// The discovery document of `/api/v1` or `/apis/{group}/{version}`: an
/// APIResourceList of what the double serves there, or `None` for a path
/// of another shape or a group version it does not serve.
pub(crate) fn discovery(path: &str) -> Option<Value> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version) = match segs.as_slice() {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return None,
    };
    let resources: Vec<Value> = SERVED
        .iter()
        .filter(|(g, v, _)| *g == group && *v == version)
        .map(|(g, v, plural)| {
            let res = Res {
                group: (*g).to_owned(),
                version: (*v).to_owned(),
                plural: (*plural).to_owned(),
            };
            serde_json::json!({
                "name": plural,
                "singularName": res.kind().unwrap_or_default().to_lowercase(),
                "namespaced": *plural != "namespaces",
                "kind": res.kind(),
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            })
        })
        .collect();
    (!resources.is_empty()).then(|| {
        serde_json::json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": Res { group: group.to_owned(), version: version.to_owned(), plural: String::new() }.api_version(),
            "resources": resources,
        })
    })
}

/// The API group a request path names (empty for the core group).
pub(crate) fn group_of(path: &str) -> Option<&str> {
    let mut segs = path.split('/').filter(|s| !s.is_empty());
    match (segs.next(), segs.next()) {
        (Some("api"), _) => Some(""),
        (Some("apis"), Some(group)) => Some(group),
        _ => None,
    }
}

/// One parsed request path with its query.
#[derive(Clone, Debug)]
pub(crate) struct Route {
    pub res: Res,
    /// Namespace from the URL; `None` for all namespaces or cluster scope.
    pub ns: Option<String>,
    pub name: Option<String>,
    /// The request targets the `/status` subresource.
    pub status: bool,
    /// The request targets the `/scale` subresource.
    pub scale: bool,
    pub query: Query,
}

/// Query parameters the double understands.
#[derive(Clone, Debug, Default)]
pub(crate) struct Query {
    pub watch: bool,
    pub resource_version: Option<String>,
    pub selector: Selector,
    pub limit: Option<usize>,
    pub cont: Option<String>,
    pub timeout_seconds: Option<u64>,
    /// `fieldManager`: who owns what this write sets.
    pub field_manager: Option<String>,
    /// `force`: an apply takes conflicting fields from their owners.
    pub force: bool,
}

/// Parse `/api/v1/...` or `/apis/{group}/{version}/...`.
pub(crate) fn parse(path: &str, query: Option<&str>) -> Option<Route> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let (ns, tail) = match rest {
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some(*ns), tail),
        _ => (None, rest),
    };
    let (plural, name, sub) = match tail {
        [plural] => (*plural, None, ""),
        [plural, name] => (*plural, Some(*name), ""),
        [plural, name, sub @ ("status" | "scale")] => (*plural, Some(*name), *sub),
        _ => return None,
    };
    Some(Route {
        res: Res {
            group: group.to_owned(),
            version: version.to_owned(),
            plural: plural.to_owned(),
        },
        ns: ns.map(str::to_owned),
        name: name.map(str::to_owned),
        status: sub == "status",
        scale: sub == "scale",
        query: parse_query(query.unwrap_or("")),
    })
}

fn parse_query(q: &str) -> Query {
    let mut out = Query::default();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = decode(v);
        match k {
            "watch" => out.watch = v == "true" || v == "1",
            "resourceVersion" => out.resource_version = Some(v),
            "labelSelector" => out.selector = Selector::parse(&v),
            "limit" => out.limit = v.parse().ok(),
            "continue" => out.cont = Some(v).filter(|c| !c.is_empty()),
            "timeoutSeconds" => out.timeout_seconds = v.parse().ok(),
            "fieldManager" => out.field_manager = Some(v).filter(|m| !m.is_empty()),
            "force" => out.force = v == "true",
            _ => {}
        }
    }
    out
}

/// Percent-decoding with `+` as space (form encoding).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One requirement of a label selector.
#[derive(Clone, Debug)]
enum Term {
    Eq(String, String),
    NotEq(String, String),
    Exists(String),
    NotExists(String),
}

/// A label selector: terms joined by AND.
#[derive(Clone, Debug, Default)]
pub(crate) struct Selector(Vec<Term>);

impl Selector {
    /// Parse `a=b,c!=d,e,!f` (equality, inequality, existence).
    pub fn parse(s: &str) -> Self {
        let terms = s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                if let Some((k, v)) = t.split_once("!=") {
                    Term::NotEq(k.trim().into(), v.trim().into())
                } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                    Term::Eq(k.trim().into(), v.trim().into())
                } else if let Some(k) = t.strip_prefix('!') {
                    Term::NotExists(k.trim().into())
                } else {
                    Term::Exists(t.into())
                }
            })
            .collect();
        Self(terms)
    }

    /// Whether the object's labels satisfy every term.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|t| match t {
            Term::Eq(k, v) => get(k) == Some(v.as_str()),
            Term::NotEq(k, v) => get(k) != Some(v.as_str()),
            Term::Exists(k) => get(k).is_some(),
            Term::NotExists(k) => get(k).is_none(),
        })
    }
}
