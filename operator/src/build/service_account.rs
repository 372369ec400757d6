//! ServiceAccount `<t>`: the identity of the tenant's pods.

use k8s_openapi::api::core::v1::ServiceAccount;

use super::metadata;
use crate::labels::Component;
use crate::validate::Tenant;

/// The pods' identity. The CRM never calls the Kubernetes API, so no token is
/// mounted: a stolen pod then holds no credential for the cluster.
pub fn service_account(tenant: &Tenant) -> ServiceAccount {
    ServiceAccount {
        metadata: metadata(tenant, tenant.name.clone(), Component::Server),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_is_named_after_the_tenant_and_mounts_no_token() {
        let sa = service_account(&Tenant::test());
        assert_eq!(sa.metadata.name.as_deref(), Some("acme"));
        assert_eq!(sa.metadata.namespace.as_deref(), Some("crm-acme"));
        assert_eq!(sa.automount_service_account_token, Some(false));
    }
}
