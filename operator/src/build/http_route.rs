//! HTTPRoute `<t>`: the tenant's hostname, when it is exposed through a
//! Gateway API Gateway. TLS is the Gateway listener's.

use super::metadata;
use super::service::SERVICE_PORT;
use crate::gateway_api::{
    HttpBackendRef, HttpPathMatch, HttpRoute, HttpRouteMatch, HttpRouteRule, HttpRouteSpec,
    ParentReference,
};
use crate::labels::Component;
use crate::validate::Tenant;

/// Present when `server.expose.gateway` is set.
pub fn http_route(tenant: &Tenant) -> Option<HttpRoute> {
    let expose = tenant.server.expose.as_ref()?;
    let gateway = expose.gateway.as_ref()?;
    Some(HttpRoute {
        metadata: metadata(tenant, tenant.name.clone(), Component::Server),
        spec: HttpRouteSpec {
            // Group and kind as the API server defaults them, so the live
            // route holds exactly what was sent.
            parent_refs: vec![ParentReference {
                group: Some(crate::gateway_api::GROUP.to_owned()),
                kind: Some("Gateway".to_owned()),
                name: gateway.name.clone(),
                namespace: gateway.namespace.clone(),
                section_name: gateway.section_name.clone(),
            }],
            hostnames: vec![expose.host.clone()],
            rules: vec![HttpRouteRule {
                matches: vec![HttpRouteMatch {
                    path: Some(HttpPathMatch {
                        type_: Some("PathPrefix".to_owned()),
                        value: Some("/".to_owned()),
                    }),
                }],
                backend_refs: vec![HttpBackendRef {
                    group: Some(String::new()),
                    kind: Some("Service".to_owned()),
                    name: tenant.name.clone(),
                    port: Some(SERVICE_PORT),
                }],
            }],
        },
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unexposed_or_ingress_tenant_has_no_route() {
        assert_eq!(http_route(&Tenant::test()), None);
        assert_eq!(http_route(&Tenant::test().exposed_through_ingress()), None);
    }

    #[test]
    fn the_route_attaches_to_the_gateway_listener_and_forwards_the_host_to_the_service() {
        let route = http_route(&Tenant::test().exposed_through_gateway()).expect("a route");
        assert_eq!(route.metadata.name.as_deref(), Some("acme"));
        let parent = &route.spec.parent_refs[0];
        assert_eq!(parent.name, "public");
        assert_eq!(parent.namespace.as_deref(), Some("gateway-system"));
        assert_eq!(parent.section_name.as_deref(), Some("https"));
        assert_eq!(
            route.spec.hostnames,
            vec!["crm.acme.example.com".to_owned()]
        );
        let backend = &route.spec.rules[0].backend_refs[0];
        assert_eq!((backend.name.as_str(), backend.port), ("acme", Some(80)));
        let value = serde_json::to_value(&route).expect("serialises");
        crate::gateway_api::tests::assert_upstream_valid(&value);
    }
}
