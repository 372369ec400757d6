//! HorizontalPodAutoscaler `<t>` (autoscaling/v2): the model's base and peak
//! replica counts and target utilisation.

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};

use super::metadata;
use crate::labels::Component;
use crate::validate::Tenant;

/// How long the HPA waits before scaling down: load that dips for a moment
/// should not cost replicas that the next peak needs back.
const SCALE_DOWN_WINDOW_SECONDS: i32 = 300;

/// Present only when autoscaling is on and the tenant is not suspended: a
/// suspended tenant runs zero replicas, which an HPA would undo.
pub fn hpa(tenant: &Tenant) -> Option<HorizontalPodAutoscaler> {
    if !tenant.autoscaling || tenant.suspend {
        return None;
    }
    let sizing = &tenant.capacity.sizing;
    Some(HorizontalPodAutoscaler {
        metadata: metadata(tenant, tenant.name.clone(), Component::Server),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name: tenant.name.clone(),
            },
            min_replicas: Some(sizing.min_replicas),
            max_replicas: sizing.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".to_owned(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_owned(),
                    target: MetricTarget {
                        type_: "Utilization".to_owned(),
                        average_utilization: Some(sizing.target_cpu_utilization),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            behavior: Some(HorizontalPodAutoscalerBehavior {
                scale_down: Some(HPAScalingRules {
                    stabilization_window_seconds: Some(SCALE_DOWN_WINDOW_SECONDS),
                    ..HPAScalingRules::default()
                }),
                ..HorizontalPodAutoscalerBehavior::default()
            }),
        }),
        ..HorizontalPodAutoscaler::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::DatabaseTarget;

    #[test]
    fn hpa_follows_model_min_and_max() {
        let tenant = Tenant::test().with_replicas(9, 3, 12);
        let spec = hpa(&tenant).and_then(|h| h.spec).expect("hpa");
        assert_eq!(spec.min_replicas, Some(3));
        assert_eq!(spec.max_replicas, 12);
        let metric = spec.metrics.expect("metrics")[0].clone();
        let target = metric.resource.expect("resource").target;
        assert_eq!(target.type_, "Utilization");
        assert_eq!(target.average_utilization, Some(70));
        assert_eq!(spec.scale_target_ref.kind, "Deployment");
        assert_eq!(spec.scale_target_ref.name, "acme");
    }

    #[test]
    fn no_hpa_without_autoscaling_or_when_suspended() {
        assert_eq!(hpa(&Tenant::test().with_autoscaling(false)), None);
        assert_eq!(hpa(&Tenant::test().suspended()), None);
        let embedded = Tenant::test().with_database(DatabaseTarget::Embedded);
        assert_eq!(hpa(&embedded), None);
    }
}
