//! PodDisruptionBudget `<t>`: voluntary disruptions (drains, upgrades) take
//! at most one replica at a time.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::deployment::selector;
use super::metadata;
use crate::labels::Component;
use crate::validate::{DatabaseTarget, Tenant};

/// Present when the tenant runs and its minimum replica count is at least 2
/// (MODEL.md): with one replica, a budget of one unavailable protects
/// nothing, and a suspended tenant has no pods to protect.
pub fn pdb(tenant: &Tenant) -> Option<PodDisruptionBudget> {
    let embedded = tenant.database.mode == DatabaseTarget::Embedded;
    if tenant.suspend || embedded || tenant.capacity.sizing.min_replicas < 2 {
        return None;
    }
    Some(PodDisruptionBudget {
        metadata: metadata(tenant, tenant.name.clone(), Component::Server),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(selector(tenant, Component::Server)),
            // A crash-looping pod is already unavailable; letting a drain
            // evict it cannot make things worse, and otherwise it blocks the drain.
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".to_owned()),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdb_allows_one_unavailable_when_minimum_is_two() {
        let spec = pdb(&Tenant::test().with_replicas(3, 2, 4))
            .and_then(|p| p.spec)
            .expect("pdb");
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(spec.min_available, None);
        assert_eq!(
            spec.selector.and_then(|s| s.match_labels),
            Some(crate::labels::selector("acme", Component::Server))
        );
    }

    #[test]
    fn no_pdb_below_two_replicas() {
        assert_eq!(pdb(&Tenant::test().with_replicas(1, 1, 3)), None);
        let fixed = Tenant::test()
            .with_autoscaling(false)
            .with_replicas(1, 1, 1);
        assert_eq!(pdb(&fixed), None);
    }

    #[test]
    fn no_pdb_for_suspended_or_embedded_tenants() {
        assert_eq!(pdb(&Tenant::test().suspended()), None);
        let embedded = Tenant::test().with_database(DatabaseTarget::Embedded);
        assert_eq!(pdb(&embedded), None);
    }
}
