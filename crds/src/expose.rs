//! `CrmTenant.spec.server.expose`: how a tenant is reached from outside the
//! cluster, at its own hostname over HTTPS, through an Ingress or a Gateway
//! API HTTPRoute.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How the CRM is reached from outside the cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.ingress) != has(self.gateway)")
    .message("set exactly one of expose.ingress or expose.gateway"))]
#[x_kube(validation = Rule::new("has(self.tls) == has(self.ingress)")
    .message("expose.tls goes with expose.ingress, and only with it: a Gateway terminates TLS on its own listener")
    .field_path(".tls"))]
pub struct ExposeSpec {
    /// The tenant's hostname, a fully qualified DNS name such as
    /// crm.acme.example.com. The endpoint in status becomes https://HOST.
    #[x_kube(validation = Rule::new(
        "size(self) <= 253 && self.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)+$')"
    ).message("expose.host must be a lower-case DNS name with at least two labels, such as crm.acme.example.com"))]
    #[schemars(length(min = 1, max = 253))]
    pub host: String,

    /// Expose through an Ingress of this class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressExposeSpec>,

    /// Expose through a Gateway API HTTPRoute attached to this Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayExposeSpec>,

    /// The Ingress's certificate: a Secret you provide, or one cert-manager
    /// issues. Required with ingress; not allowed with gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

/// An Ingress in front of the CRM.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressExposeSpec {
    /// The IngressClass that serves it (spec.ingressClassName).
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub class_name: String,

    /// Namespace of the ingress controller's pods: the network policy
    /// admits them to the CRM.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub controller_namespace: String,
}

/// The Gateway an HTTPRoute attaches to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayExposeSpec {
    /// Name of the Gateway.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Namespace of the Gateway; the tenant's namespace when absent. Its
    /// listener must allow routes from the tenant's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,

    /// The Gateway's listener to attach to, an HTTPS one; every listener
    /// that accepts the route when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub section_name: Option<String>,

    /// Namespace of the Gateway's proxy pods, which the network policy
    /// admits to the CRM; the Gateway's namespace when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub controller_namespace: Option<String>,
}

/// Where the Ingress's certificate comes from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.secretName) != has(self.issuer)")
    .message("set exactly one of expose.tls.secretName or expose.tls.issuer"))]
pub struct TlsSpec {
    /// A Secret of type kubernetes.io/tls in the tenant's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub secret_name: Option<String>,

    /// A cert-manager issuer: cert-manager reads its annotation on the
    /// Ingress and keeps the certificate in the Secret `<tenant>-tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<IssuerRef>,
}

/// A cert-manager Issuer or ClusterIssuer.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuerRef {
    /// Name of the issuer.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,

    /// ClusterIssuer (cluster-wide) or Issuer (in the tenant's namespace).
    #[serde(default)]
    pub kind: IssuerKind,
}

/// Kind of a cert-manager issuer.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IssuerKind {
    /// A cluster-wide issuer.
    #[default]
    ClusterIssuer,
    /// An issuer in the tenant's namespace.
    Issuer,
}
