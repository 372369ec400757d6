//! NetworkPolicies: `<t>` limits who reaches the CRM; `<t>-postgres`
//! (Managed) lets only this tenant's servers reach its database.
//!
//! The server's API port admits the tenant's own pods (by its instance
//! label, so two tenants sharing a namespace cannot reach each other), the
//! namespaces in `server.allowedNamespaces`, and, when the tenant is
//! exposed, the ingress controller's or Gateway's namespace. The metrics
//! port admits only the monitoring namespaces the operator was given.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::deployment::selector;
use super::{METRICS_PORT, POSTGRES_PORT, SERVER_PORT, metadata, postgres_name};
use crate::labels::{self, Component, NAMESPACE_NAME};
use crate::validate::{DatabaseTarget, Tenant};

/// `<t>`, and `<t>-postgres` for the Managed database.
pub fn network_policies(tenant: &Tenant) -> Vec<NetworkPolicy> {
    let mut policies = vec![server(tenant)];
    if matches!(tenant.database.mode, DatabaseTarget::Managed { .. }) {
        policies.push(database(tenant));
    }
    policies
}

/// The API port from the tenant's pods, the allowed namespaces and the
/// exposing proxy's namespace; the metrics port from monitoring.
fn server(tenant: &Tenant) -> NetworkPolicy {
    // A peer with only a pod selector means "these pods of this namespace".
    let own = BTreeMap::from([(labels::INSTANCE.to_owned(), tenant.name.clone())]);
    let mut from = vec![pods(LabelSelector {
        match_labels: Some(own),
        ..LabelSelector::default()
    })];
    let mut namespaces = tenant.server.allowed_namespaces.clone();
    namespaces.extend(proxy_namespace(tenant));
    namespaces.sort();
    namespaces.dedup();
    if !namespaces.is_empty() {
        from.push(in_namespaces(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: NAMESPACE_NAME.to_owned(),
                operator: "In".to_owned(),
                values: Some(namespaces),
            }]),
            ..LabelSelector::default()
        }));
    }
    let mut rules = vec![rule(from, SERVER_PORT)];
    if let Some(monitoring) = &tenant.monitoring_namespaces {
        rules.push(rule(vec![in_namespaces(monitoring.clone())], METRICS_PORT));
    }
    let name = tenant.name.clone();
    policy(tenant, name, Component::Server, rules)
}

/// Where the pods that forward outside traffic to the CRM run, when exposed:
/// the ingress controller's namespace, or the Gateway's proxies'.
pub fn proxy_namespace(tenant: &Tenant) -> Option<String> {
    let expose = tenant.server.expose.as_ref()?;
    if let Some(ingress) = &expose.ingress {
        return Some(ingress.controller_namespace.clone());
    }
    let gateway = expose.gateway.as_ref()?;
    let namespace = gateway
        .controller_namespace
        .clone()
        .or_else(|| gateway.namespace.clone())
        .unwrap_or_else(|| tenant.namespace.clone());
    Some(namespace)
}

/// Ingress to PostgreSQL only from this tenant's server pods and the pods
/// that back up, copy or restore its data.
fn database(tenant: &Tenant) -> NetworkPolicy {
    let from = vec![
        pods(selector(tenant, Component::Server)),
        pods(selector(tenant, Component::Data)),
    ];
    let name = postgres_name(tenant);
    let rules = vec![rule(from, POSTGRES_PORT)];
    policy(tenant, name, Component::Database, rules)
}

fn pods(selector: LabelSelector) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(selector),
        ..NetworkPolicyPeer::default()
    }
}

fn in_namespaces(selector: LabelSelector) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(selector),
        ..NetworkPolicyPeer::default()
    }
}

/// Admits `from` on one TCP port.
fn rule(from: Vec<NetworkPolicyPeer>, port: i32) -> NetworkPolicyIngressRule {
    NetworkPolicyIngressRule {
        from: Some(from),
        ports: Some(vec![NetworkPolicyPort {
            port: Some(IntOrString::Int(port)),
            protocol: Some("TCP".to_owned()),
            ..NetworkPolicyPort::default()
        }]),
    }
}

/// Selects `component`'s pods and admits what `rules` admit, nothing else.
fn policy(
    tenant: &Tenant,
    name: String,
    component: Component,
    rules: Vec<NetworkPolicyIngressRule>,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: metadata(tenant, name, component),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(tenant, component)),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(rules),
            ..NetworkPolicySpec::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixture;

    type Labels = BTreeMap<String, String>;

    /// A pod that opens a connection: its namespace's labels and its own.
    struct Source {
        namespace: &'static str,
        pod: Labels,
    }

    fn from(namespace: &'static str, pod: Labels) -> Source {
        Source { namespace, pod }
    }

    fn matches(selector: &LabelSelector, labels: &Labels) -> bool {
        let equal = selector
            .match_labels
            .iter()
            .flatten()
            .all(|(k, v)| labels.get(k) == Some(v));
        let within = selector.match_expressions.iter().flatten().all(|e| {
            assert_eq!(e.operator, "In", "only In is used");
            let value = labels.get(&e.key);
            value.is_some_and(|v| e.values.iter().flatten().any(|w| w == v))
        });
        equal && within
    }

    /// NetworkPolicy semantics for one TCP connection to a pod labelled
    /// `target` in the policy's namespace.
    fn admits(policy: &NetworkPolicy, target: &Labels, source: &Source, port: i32) -> bool {
        let spec = policy.spec.as_ref().expect("spec");
        assert_eq!(spec.policy_types, Some(vec!["Ingress".into()]));
        assert!(matches(spec.pod_selector.as_ref().expect("pods"), target));
        let own_namespace = policy.metadata.namespace.as_deref().expect("namespace");
        let ns_labels = labels::namespace_named(source.namespace)
            .match_labels
            .expect("labels");
        spec.ingress.iter().flatten().any(|rule| {
            let on_port = rule.ports.iter().flatten().any(|p| {
                p.port == Some(IntOrString::Int(port)) && p.protocol.as_deref() == Some("TCP")
            });
            let peer = rule.from.iter().flatten().any(|peer| {
                let namespace_ok = match &peer.namespace_selector {
                    Some(selector) => matches(selector, &ns_labels),
                    None => source.namespace == own_namespace,
                };
                let pod_ok = peer
                    .pod_selector
                    .as_ref()
                    .is_none_or(|s| matches(s, &source.pod));
                namespace_ok && pod_ok
            });
            on_port && peer
        })
    }

    fn server_pod(tenant: &str) -> Labels {
        labels::standard(tenant, Component::Server)
    }

    fn acme_server(tenant: &Tenant) -> (NetworkPolicy, Labels) {
        (network_policies(tenant).remove(0), server_pod("acme"))
    }

    #[test]
    fn the_tenants_own_pods_reach_the_api_port_and_only_it() {
        let (policy, target) = acme_server(&Tenant::test());
        assert_eq!(policy.metadata.name.as_deref(), Some("acme"));
        for own in [
            server_pod("acme"),
            labels::standard("acme", Component::Database),
        ] {
            assert!(admits(
                &policy,
                &target,
                &from("crm-acme", own.clone()),
                8080
            ));
            assert!(!admits(&policy, &target, &from("crm-acme", own), 9090));
        }
    }

    #[test]
    fn another_tenant_sharing_the_namespace_is_refused_on_every_port() {
        let (policy, target) = acme_server(&Tenant::test());
        let neighbour = from("crm-acme", server_pod("globex"));
        for port in [8080, 9090] {
            assert!(!admits(&policy, &target, &neighbour, port), "{port}");
        }
        let unlabelled = from("crm-acme", Labels::new());
        assert!(!admits(&policy, &target, &unlabelled, 8080));
    }

    #[test]
    fn allowed_namespaces_reach_the_api_port_and_others_do_not() {
        let (policy, target) = acme_server(&Tenant::test());
        assert!(admits(
            &policy,
            &target,
            &from("ingress", Labels::new()),
            8080
        ));
        assert!(!admits(
            &policy,
            &target,
            &from("ingress", Labels::new()),
            9090
        ));
        assert!(!admits(
            &policy,
            &target,
            &from("elsewhere", Labels::new()),
            8080
        ));
        let mut closed = Tenant::test();
        closed.server.allowed_namespaces.clear();
        let (policy, _) = acme_server(&closed);
        let api = &policy
            .spec
            .as_ref()
            .and_then(|s| s.ingress.clone())
            .expect("rules")[0];
        assert_eq!(api.from.as_ref().map(Vec::len), Some(1), "own pods only");
    }

    #[test]
    fn monitoring_reaches_the_metrics_port_only() {
        let (policy, target) = acme_server(&Tenant::test());
        let prometheus = from("monitoring", Labels::new());
        assert!(admits(&policy, &target, &prometheus, 9090));
        assert!(!admits(&policy, &target, &prometheus, 8080));
        let mut unmonitored = Tenant::test();
        unmonitored.monitoring_namespaces = None;
        let (policy, target) = acme_server(&unmonitored);
        assert!(!admits(&policy, &target, &prometheus, 9090));
    }

    #[test]
    fn the_ingress_controllers_namespace_is_admitted_only_while_exposed() {
        let controller = from("ingress-nginx", Labels::new());
        let (policy, target) = acme_server(&Tenant::test());
        assert!(!admits(&policy, &target, &controller, 8080));
        let (policy, target) = acme_server(&Tenant::test().exposed_through_ingress());
        assert!(admits(&policy, &target, &controller, 8080));
        assert!(!admits(&policy, &target, &controller, 9090));
    }

    #[test]
    fn a_gateways_proxies_are_admitted_from_its_namespace_or_the_one_named() {
        let mut tenant = Tenant::test().exposed_through_gateway();
        let (policy, target) = acme_server(&tenant);
        assert!(admits(
            &policy,
            &target,
            &from("gateway-system", Labels::new()),
            8080
        ));
        if let Some(gateway) = tenant
            .server
            .expose
            .as_mut()
            .and_then(|e| e.gateway.as_mut())
        {
            gateway.controller_namespace = Some("envoy-gateway-system".into());
        }
        let (policy, target) = acme_server(&tenant);
        assert!(admits(
            &policy,
            &target,
            &from("envoy-gateway-system", Labels::new()),
            8080
        ));
        assert!(!admits(
            &policy,
            &target,
            &from("gateway-system", Labels::new()),
            8080
        ));
    }

    #[test]
    fn managed_postgres_admits_only_this_tenants_servers_on_5432() {
        let tenant = Tenant::test().exposed_through_ingress();
        let policies = network_policies(&tenant);
        let db = &policies[1];
        assert_eq!(db.metadata.name.as_deref(), Some("acme-postgres"));
        let target = labels::standard("acme", Component::Database);
        assert!(admits(
            db,
            &target,
            &from("crm-acme", server_pod("acme")),
            5432
        ));
        for stranger in [
            from("crm-acme", server_pod("globex")),
            from("crm-acme", target.clone()),
            from("monitoring", Labels::new()),
            from("ingress-nginx", Labels::new()),
            from("ingress", server_pod("acme")),
        ] {
            for port in [5432, 8080, 9090] {
                assert!(
                    !admits(db, &target, &stranger, port),
                    "{}",
                    stranger.namespace
                );
            }
        }
    }

    #[test]
    fn other_modes_have_only_the_server_policy() {
        for mode in [
            DatabaseTarget::Embedded,
            fixture::shared(),
            fixture::external(),
        ] {
            let tenant = Tenant::test().with_database(mode);
            assert_eq!(network_policies(&tenant).len(), 1);
        }
    }
}
