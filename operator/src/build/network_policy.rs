//! NetworkPolicies: `<t>` limits who calls the CRM; `<t>-postgres` (Managed)
//! lets only this tenant's servers reach its database.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::deployment::selector;
use super::{POSTGRES_PORT, SERVER_PORT, metadata, postgres_name};
use crate::labels::Component;
use crate::validate::{DatabaseTarget, Tenant};

/// The label the API server puts on every namespace, holding its name.
const NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";

/// `<t>`, and `<t>-postgres` for the Managed database.
pub fn network_policies(tenant: &Tenant) -> Vec<NetworkPolicy> {
    let mut policies = vec![server(tenant)];
    if matches!(tenant.database.mode, DatabaseTarget::Managed { .. }) {
        policies.push(database(tenant));
    }
    policies
}

/// Ingress to the server's port from pods of the tenant's namespace and of
/// the namespaces the spec allows; nothing else.
fn server(tenant: &Tenant) -> NetworkPolicy {
    // A peer with only a pod selector means "pods of this namespace".
    let mut from = vec![pods(LabelSelector::default())];
    if !tenant.server.allowed_namespaces.is_empty() {
        from.push(NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: NAMESPACE_NAME.to_owned(),
                    operator: "In".to_owned(),
                    values: Some(tenant.server.allowed_namespaces.clone()),
                }]),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        });
    }
    let name = tenant.name.clone();
    policy(tenant, name, Component::Server, from, SERVER_PORT)
}

/// Ingress to PostgreSQL only from this tenant's server pods.
fn database(tenant: &Tenant) -> NetworkPolicy {
    let from = vec![pods(selector(tenant, Component::Server))];
    let name = postgres_name(tenant);
    policy(tenant, name, Component::Database, from, POSTGRES_PORT)
}

fn pods(selector: LabelSelector) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(selector),
        ..NetworkPolicyPeer::default()
    }
}

/// Selects `component`'s pods and admits `from` on one TCP port.
fn policy(
    tenant: &Tenant,
    name: String,
    component: Component,
    from: Vec<NetworkPolicyPeer>,
    port: i32,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: metadata(tenant, name, component),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(tenant, component)),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(from),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(port)),
                    protocol: Some("TCP".to_owned()),
                    ..NetworkPolicyPort::default()
                }]),
            }]),
            ..NetworkPolicySpec::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixture;
    use crate::labels;

    fn rule(policy: &NetworkPolicy) -> NetworkPolicyIngressRule {
        let spec = policy.spec.clone().expect("spec");
        assert_eq!(spec.policy_types, Some(vec!["Ingress".into()]));
        spec.ingress.expect("ingress")[0].clone()
    }

    #[test]
    fn server_accepts_its_namespace_and_allowed_namespaces_on_8080() {
        let policies = network_policies(&Tenant::test());
        let server = &policies[0];
        assert_eq!(server.metadata.name.as_deref(), Some("acme"));
        let rule = rule(server);
        let port = rule.ports.expect("ports")[0].port.clone();
        assert_eq!(port, Some(IntOrString::Int(8080)));
        let from = rule.from.expect("from");
        assert_eq!(from[0].pod_selector, Some(LabelSelector::default()));
        assert_eq!(from[0].namespace_selector, None);
        let ns = from[1].namespace_selector.clone().expect("namespaces");
        let requirement = &ns.match_expressions.expect("expressions")[0];
        assert_eq!(requirement.key, "kubernetes.io/metadata.name");
        assert_eq!(requirement.values, Some(vec!["ingress".into()]));
    }

    #[test]
    fn without_allowed_namespaces_only_the_tenants_namespace_is_admitted() {
        let mut tenant = Tenant::test();
        tenant.server.allowed_namespaces.clear();
        let from = rule(&network_policies(&tenant)[0]).from.expect("from");
        assert_eq!(from.len(), 1);
    }

    #[test]
    fn managed_postgres_admits_only_this_tenants_servers_on_5432() {
        let policies = network_policies(&Tenant::test());
        let db = &policies[1];
        assert_eq!(db.metadata.name.as_deref(), Some("acme-postgres"));
        let target = db.spec.as_ref().and_then(|s| s.pod_selector.clone());
        let target = target.and_then(|s| s.match_labels);
        assert_eq!(target, Some(labels::selector("acme", Component::Database)));
        let rule = rule(db);
        let from = rule.from.expect("from");
        assert_eq!(from.len(), 1);
        let source = from[0].pod_selector.clone().and_then(|s| s.match_labels);
        assert_eq!(source, Some(labels::selector("acme", Component::Server)));
        assert_eq!(from[0].namespace_selector, None);
        let port = rule.ports.expect("ports")[0].port.clone();
        assert_eq!(port, Some(IntOrString::Int(5432)));
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
