//! Service `<t>`: ClusterIP in front of the CRM server's replicas.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{SERVER_PORT_NAME, metadata};
use crate::labels::{self, Component};
use crate::validate::Tenant;

/// Port clients call; the Service forwards it to the pods' `http` port.
pub const SERVICE_PORT: i32 = 80;

/// The CRM's in-cluster endpoint, `http://<t>.<ns>.svc`.
pub fn service(tenant: &Tenant) -> Service {
    Service {
        metadata: metadata(tenant, tenant.name.clone(), Component::Server),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(labels::selector(&tenant.name, Component::Server)),
            ports: Some(vec![ServicePort {
                name: Some(SERVER_PORT_NAME.to_owned()),
                port: SERVICE_PORT,
                // By name, so the container may change its port number alone.
                target_port: Some(IntOrString::String(SERVER_PORT_NAME.to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_forwards_port_80_to_the_http_port_of_server_pods() {
        let spec = service(&Tenant::test()).spec.expect("spec");
        let port = &spec.ports.as_ref().expect("ports")[0];
        assert_eq!(port.port, 80);
        assert_eq!(port.name.as_deref(), Some("http"));
        assert_eq!(port.target_port, Some(IntOrString::String("http".into())));
        assert_eq!(
            spec.selector,
            Some(labels::selector("acme", Component::Server))
        );
    }
}
