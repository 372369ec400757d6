//! Ingress `<t>`: the tenant's hostname over HTTPS, when it is exposed
//! through an ingress controller.

use std::collections::BTreeMap;

use crm_crds::IssuerKind;
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};

use super::{SERVER_PORT_NAME, metadata};
use crate::labels::Component;
use crate::validate::Tenant;

/// Annotation cert-manager reads for a ClusterIssuer.
pub const CLUSTER_ISSUER: &str = "cert-manager.io/cluster-issuer";
/// Annotation cert-manager reads for an Issuer of the Ingress's namespace.
pub const ISSUER: &str = "cert-manager.io/issuer";

/// Present when `server.expose.ingress` is set.
pub fn ingress(tenant: &Tenant) -> Option<Ingress> {
    let expose = tenant.server.expose.as_ref()?;
    let class = expose.ingress.as_ref()?;
    let tls = expose.tls.as_ref();
    let mut meta = metadata(tenant, tenant.name.clone(), Component::Server);
    if let Some(issuer) = tls.and_then(|t| t.issuer.as_ref()) {
        let key = match issuer.kind {
            IssuerKind::ClusterIssuer => CLUSTER_ISSUER,
            IssuerKind::Issuer => ISSUER,
        };
        meta.annotations = Some(BTreeMap::from([(key.to_owned(), issuer.name.clone())]));
    }
    // A named Secret is used as it is; an issuer's certificate is kept by
    // cert-manager in `<t>-tls`.
    let secret_name = tls
        .and_then(|t| t.secret_name.clone())
        .unwrap_or_else(|| tls_secret_name(tenant));
    Some(Ingress {
        metadata: meta,
        spec: Some(IngressSpec {
            ingress_class_name: Some(class.class_name.clone()),
            tls: Some(vec![IngressTLS {
                hosts: Some(vec![expose.host.clone()]),
                secret_name: Some(secret_name),
            }]),
            rules: Some(vec![IngressRule {
                host: Some(expose.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".to_owned()),
                        path_type: "Prefix".to_owned(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: tenant.name.clone(),
                                port: Some(ServiceBackendPort {
                                    name: Some(SERVER_PORT_NAME.to_owned()),
                                    ..ServiceBackendPort::default()
                                }),
                            }),
                            ..IngressBackend::default()
                        },
                    }],
                }),
            }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    })
}

/// `<t>-tls`: where cert-manager keeps an issued certificate.
pub fn tls_secret_name(tenant: &Tenant) -> String {
    format!("{}-tls", tenant.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unexposed_or_gateway_tenant_has_no_ingress() {
        assert_eq!(ingress(&Tenant::test()), None);
        assert_eq!(ingress(&Tenant::test().exposed_through_gateway()), None);
    }

    #[test]
    fn the_ingress_routes_the_host_to_the_service_with_a_cert_manager_certificate() {
        let ingress = ingress(&Tenant::test().exposed_through_ingress()).expect("an Ingress");
        assert_eq!(ingress.metadata.name.as_deref(), Some("acme"));
        let annotations = ingress.metadata.annotations.clone().expect("annotations");
        assert_eq!(annotations[CLUSTER_ISSUER], "letsencrypt");
        let spec = ingress.spec.expect("spec");
        assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
        let tls = &spec.tls.expect("tls")[0];
        assert_eq!(tls.hosts, Some(vec!["crm.acme.example.com".into()]));
        assert_eq!(tls.secret_name.as_deref(), Some("acme-tls"));
        let rule = &spec.rules.expect("rules")[0];
        assert_eq!(rule.host.as_deref(), Some("crm.acme.example.com"));
        let path = &rule.http.as_ref().expect("http").paths[0];
        assert_eq!(
            (path.path.as_deref(), path.path_type.as_str()),
            (Some("/"), "Prefix")
        );
        let service = path.backend.service.as_ref().expect("a Service");
        assert_eq!(service.name, "acme");
        let port = service.port.as_ref().and_then(|p| p.name.as_deref());
        assert_eq!(port, Some("http"));
    }

    #[test]
    fn a_named_secret_is_used_as_it_is_and_an_issuer_picks_its_annotation() {
        let mut tenant = Tenant::test().exposed_through_ingress();
        let tls = tenant
            .server
            .expose
            .as_mut()
            .and_then(|e| e.tls.as_mut())
            .expect("tls");
        tls.issuer = None;
        tls.secret_name = Some("wildcard-example-com".into());
        let built = ingress(&tenant).expect("an Ingress");
        assert_eq!(built.metadata.annotations, None);
        let tls = built.spec.and_then(|s| s.tls).expect("tls");
        assert_eq!(tls[0].secret_name.as_deref(), Some("wildcard-example-com"));

        let mut tenant = Tenant::test().exposed_through_ingress();
        let tls = tenant
            .server
            .expose
            .as_mut()
            .and_then(|e| e.tls.as_mut())
            .expect("tls");
        if let Some(issuer) = tls.issuer.as_mut() {
            issuer.kind = IssuerKind::Issuer;
        }
        let annotations = ingress(&tenant).and_then(|i| i.metadata.annotations);
        assert_eq!(annotations.expect("annotations")[ISSUER], "letsencrypt");
    }
}
