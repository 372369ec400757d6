//! Every permission the operator needs, in one table: the ClusterRole in
//! `config/rbac/role.yaml` and the Role in `config/rbac/leader_election_role.yaml`
//! must grant exactly these, and a test of the real controller against the
//! API double checks that every request it makes is covered by one of them.
//!
//! Children are read from watch caches, never fetched one by one, so they
//! need `list` and `watch` but not `get`. Server-side apply is a `patch`; an
//! apply that creates the object is authorised as `create` as well.
//!
//! [`permission`] maps an HTTP request to the RBAC verb the API server
//! checks it against, so the same mapping labels the API request metrics.

/// One resource and the verbs granted on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// Plural resource name, `crmtenants/status` for a subresource.
    pub resource: &'static str,
    /// RBAC verbs, sorted.
    pub verbs: &'static [&'static str],
    /// Why the operator needs them.
    pub why: &'static str,
    /// Where they are granted.
    pub scope: Scope,
}

/// Where a rule is granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// In every namespace with tenants: the ClusterRole.
    Cluster,
    /// Only in the operator's own namespace: the leader-election Role.
    OperatorNamespace,
}

const OWN: &[&str] = &["create", "delete", "list", "patch", "watch"];

/// What the operator does with each kind of object.
pub const RULES: &[Rule] = &[
    Rule {
        group: "crm.tenancy.dev",
        resource: "crmtenants",
        verbs: &["list", "patch", "watch"],
        why: "the tenants it reconciles; patch adds and removes the Shared database finalizer",
        scope: Scope::Cluster,
    },
    Rule {
        group: "crm.tenancy.dev",
        resource: "crmtenants/status",
        verbs: &["patch"],
        why: "status: phase, conditions, sizing (server-side apply)",
        scope: Scope::Cluster,
    },
    Rule {
        group: "crm.tenancy.dev",
        resource: "crmtenants/finalizers",
        verbs: &["update"],
        why: "owner references with blockOwnerDeletion on children, and the Shared database finalizer",
        scope: Scope::Cluster,
    },
    Rule {
        group: "",
        resource: "serviceaccounts",
        verbs: OWN,
        why: "the tenant pods' identity",
        scope: Scope::Cluster,
    },
    Rule {
        group: "",
        resource: "secrets",
        verbs: &["create", "delete", "get", "list", "patch", "watch"],
        why: "generated credentials; the Shared database admin URL (get)",
        scope: Scope::Cluster,
    },
    Rule {
        group: "",
        resource: "configmaps",
        verbs: OWN,
        why: "non-secret server settings",
        scope: Scope::Cluster,
    },
    Rule {
        group: "",
        resource: "services",
        verbs: OWN,
        why: "the CRM and Managed PostgreSQL Services",
        scope: Scope::Cluster,
    },
    Rule {
        group: "",
        resource: "persistentvolumeclaims",
        verbs: OWN,
        why: "data volumes (watched as metadata only), pruned under deletionPolicy Delete",
        scope: Scope::Cluster,
    },
    Rule {
        group: "apps",
        resource: "deployments",
        verbs: &["create", "delete", "get", "list", "patch", "watch"],
        why: "crm-server; one the cache lacks is read before it is created (get)",
        scope: Scope::Cluster,
    },
    Rule {
        group: "apps",
        resource: "statefulsets",
        verbs: OWN,
        why: "Managed PostgreSQL",
        scope: Scope::Cluster,
    },
    Rule {
        group: "batch",
        resource: "cronjobs",
        verbs: OWN,
        why: "scheduled backups",
        scope: Scope::Cluster,
    },
    Rule {
        group: "batch",
        resource: "jobs",
        verbs: OWN,
        why: "moves of a tenant's data to another database and restores (watched for their outcome); backup runs",
        scope: Scope::Cluster,
    },
    Rule {
        group: "autoscaling",
        resource: "horizontalpodautoscalers",
        verbs: OWN,
        why: "autoscaling/v2 sized by the model",
        scope: Scope::Cluster,
    },
    Rule {
        group: "policy",
        resource: "poddisruptionbudgets",
        verbs: OWN,
        why: "when the minimum replica count is two or more",
        scope: Scope::Cluster,
    },
    Rule {
        group: "networking.k8s.io",
        resource: "networkpolicies",
        verbs: OWN,
        why: "ingress to the CRM and its database",
        scope: Scope::Cluster,
    },
    Rule {
        group: "networking.k8s.io",
        resource: "ingresses",
        verbs: OWN,
        why: "the tenant's hostname through an ingress controller",
        scope: Scope::Cluster,
    },
    Rule {
        group: "gateway.networking.k8s.io",
        resource: "httproutes",
        verbs: OWN,
        why: "the tenant's hostname through a Gateway (when the cluster serves the Gateway API)",
        scope: Scope::Cluster,
    },
    Rule {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
        why: "Events on tenants (repeats are patched into a series)",
        scope: Scope::Cluster,
    },
    Rule {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["create", "get", "patch"],
        why: "leader election",
        scope: Scope::OperatorNamespace,
    },
];

/// What one API request needs: group, resource (with subresource) and verb.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Permission {
    /// API group; empty for the core group.
    pub group: String,
    /// Plural resource name, `crmtenants/status` for a subresource.
    pub resource: String,
    /// RBAC verb.
    pub verb: &'static str,
}

/// The RBAC verb the API server checks a request with this method and
/// path (with query) against, as its request-info resolver does.
pub fn verb(method: &str, path_and_query: &str) -> &'static str {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let watching = query
        .split('&')
        .any(|pair| pair == "watch=true" || pair == "watch=1");
    let named = resource_segments(path).is_some_and(|(_, rest)| rest.len() >= 2);
    match method {
        "GET" | "HEAD" if watching => "watch",
        "GET" | "HEAD" if named => "get",
        "GET" | "HEAD" => "list",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" if named => "delete",
        "DELETE" => "deletecollection",
        _ => "unknown",
    }
}

/// The permission a request needs; `None` for non-resource paths such as `/version`.
pub fn permission(method: &str, path_and_query: &str) -> Option<Permission> {
    let path = path_and_query.split('?').next().unwrap_or_default();
    let (group, rest) = resource_segments(path)?;
    let resource = match rest.as_slice() {
        [plural] | [plural, _] => (*plural).to_owned(),
        [plural, _, sub] => format!("{plural}/{sub}"),
        _ => return None,
    };
    Some(Permission {
        group: group.to_owned(),
        resource,
        verb: verb(method, path_and_query),
    })
}

/// The group and the segments after it (and after `namespaces/{ns}`).
fn resource_segments(path: &str) -> Option<(&str, Vec<&str>)> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
        _ => rest,
    };
    (!rest.is_empty()).then(|| (group, rest.to_vec()))
}

/// Whether [`RULES`] grant this permission.
pub fn granted(permission: &Permission) -> bool {
    RULES.iter().any(|rule| {
        rule.group == permission.group
            && rule.resource == permission.resource
            && rule.verbs.contains(&permission.verb)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(method: &str, path: &str) -> (String, String, &'static str) {
        let p = permission(method, path).expect("a resource path");
        (p.group, p.resource, p.verb)
    }

    #[test]
    fn requests_map_to_the_verbs_the_api_server_checks() {
        assert_eq!(
            perm("GET", "/api/v1/secrets?labelSelector=a%3Db&limit=50"),
            ("".into(), "secrets".into(), "list")
        );
        assert_eq!(
            perm("GET", "/api/v1/secrets?watch=true&resourceVersion=3"),
            ("".into(), "secrets".into(), "watch")
        );
        assert_eq!(
            perm("GET", "/api/v1/namespaces/a/secrets/x"),
            ("".into(), "secrets".into(), "get")
        );
        assert_eq!(
            perm(
                "PATCH",
                "/apis/crm.tenancy.dev/v1alpha1/namespaces/a/crmtenants/t/status?fieldManager=x"
            ),
            (
                "crm.tenancy.dev".into(),
                "crmtenants/status".into(),
                "patch"
            )
        );
        assert_eq!(
            perm("POST", "/apis/events.k8s.io/v1/namespaces/a/events"),
            ("events.k8s.io".into(), "events".into(), "create")
        );
        assert_eq!(
            perm("DELETE", "/apis/apps/v1/namespaces/a/deployments/d"),
            ("apps".into(), "deployments".into(), "delete")
        );
        assert_eq!(permission("GET", "/version"), None);
    }

    #[test]
    fn verbs_in_the_table_are_sorted_and_resources_unique() {
        for rule in RULES {
            let mut sorted = rule.verbs.to_vec();
            sorted.sort_unstable();
            assert_eq!(sorted, rule.verbs, "{}", rule.resource);
        }
        for (i, a) in RULES.iter().enumerate() {
            for b in &RULES[i + 1..] {
                assert!(
                    (a.group, a.resource) != (b.group, b.resource),
                    "{}",
                    a.resource
                );
            }
        }
    }
}
