//! The double playing the rest of a cluster for `operator-scale`: waiting
//! until tenants converge or the API goes quiet, reporting pods ready as
//! the workload controllers would, and filling in the children a fleet
//! would already have.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::bail;
use crm_crds::{CrmTenant, Phase};
use crm_tests::ApiDouble;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::baseline;

/// Waits until every tenant's status describes its current generation with
/// a phase that `phase_ok` accepts.
pub async fn wait_all(
    double: &ApiDouble,
    tenants: &[CrmTenant],
    deadline: Instant,
    phase_ok: impl Fn(Option<Phase>) -> bool,
) -> anyhow::Result<()> {
    // Read in place: decoding every tenant ten times a second took a
    // quarter of the machine at 1,000 tenants, and held the double's lock.
    let converged = |t: &Value| {
        let generation = t.pointer("/metadata/generation");
        let status = &t["status"];
        let observed = status.get("observedGeneration");
        let phase = status.get("phase").and_then(|p| Phase::deserialize(p).ok());
        observed.is_some() && observed == generation && phase_ok(phase)
    };
    loop {
        let done = double.count_objects::<CrmTenant>("", &converged);
        if done >= tenants.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{done} of {} tenants converged before the timeout",
                tenants.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every Secret's data, by namespace/name.
pub fn secret_data(double: &ApiDouble) -> BTreeMap<String, Value> {
    double
        .list_objects::<Secret>("")
        .into_iter()
        .map(|s| {
            let key = format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any());
            (key, serde_json::to_value(&s.data).unwrap_or_default())
        })
        .collect()
}

/// Reports every tenant's replicas (and its PostgreSQL) ready, as the
/// Deployment and StatefulSet controllers of a cluster would.
pub fn pods_ready(double: &ApiDouble, tenants: &[CrmTenant]) {
    for t in tenants {
        let (ns, name) = (t.namespace().unwrap_or_default(), t.name_any());
        let replicas = double
            .get_object::<CrmTenant>(&ns, &name)
            .and_then(|t| t.status?.sizing)
            .map_or(1, |s| s.min_replicas);
        let counts = json!({
            "replicas": replicas, "readyReplicas": replicas,
            "availableReplicas": replicas, "updatedReplicas": replicas,
            "observedGeneration": 1,
        });
        double.set_status::<Deployment>(&ns, &name, counts);
        let postgres = format!("{name}-postgres");
        let counts = json!({ "replicas": 1, "readyReplicas": 1, "availableReplicas": 1 });
        double.set_status::<StatefulSet>(&ns, &postgres, counts);
    }
}

/// Waits until the double has seen no request for one second.
pub async fn quiet(double: &ApiDouble, deadline: Instant) {
    let mut seen = double.request_count();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = double.request_count();
        if now == seen {
            return;
        }
        seen = now;
    }
}

/// Stores each tenant's desired children as the operator would have created them.
pub fn fill_children(double: &ApiDouble, tenants: &[CrmTenant]) -> anyhow::Result<usize> {
    let children = baseline::children(tenants)?;
    let count = children.len();
    for (_, _, object) in children {
        put_value(double, object)?;
    }
    Ok(count)
}

fn put_value(double: &ApiDouble, object: Value) -> anyhow::Result<()> {
    fn put<K>(double: &ApiDouble, object: Value) -> anyhow::Result<()>
    where
        K: kube::Resource<DynamicType = ()> + serde::Serialize + serde::de::DeserializeOwned,
    {
        double.put_object(&serde_json::from_value::<K>(object)?)?;
        Ok(())
    }
    let kind = object["kind"].as_str().unwrap_or_default().to_owned();
    match kind.as_str() {
        "ServiceAccount" => put::<ServiceAccount>(double, object),
        "Secret" => put::<Secret>(double, object),
        "ConfigMap" => put::<ConfigMap>(double, object),
        "PersistentVolumeClaim" => put::<PersistentVolumeClaim>(double, object),
        "Service" => put::<Service>(double, object),
        "StatefulSet" => put::<StatefulSet>(double, object),
        "Deployment" => put::<Deployment>(double, object),
        "HorizontalPodAutoscaler" => put::<HorizontalPodAutoscaler>(double, object),
        "PodDisruptionBudget" => put::<PodDisruptionBudget>(double, object),
        "NetworkPolicy" => put::<NetworkPolicy>(double, object),
        other => bail!("no typed put for kind {other}"),
    }
}
