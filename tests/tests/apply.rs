//! Server-side apply in the API double, through a real `kube::Client`: field
//! ownership per manager, removal of what an applier stops sending,
//! conflicts, the `scale` subresource and the HPA controller.

use std::time::Duration;

use crm_tests::ApiDouble;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(20);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f).await.expect("timed out")
}

fn cm(data: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "c", "namespace": "default" },
        "data": data,
    })
}

fn deployment(replicas: Option<i32>) -> Value {
    let mut d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "d", "namespace": "default" },
        "spec": {
            "selector": { "matchLabels": { "app": "d" } },
            "template": {
                "metadata": { "labels": { "app": "d" } },
                "spec": { "containers": [{ "name": "c", "image": "i" }] },
            },
        },
    });
    if let Some(replicas) = replicas {
        d["spec"]["replicas"] = replicas.into();
    }
    d
}

fn hpa(min: i32, max: i32) -> Value {
    json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": { "name": "d", "namespace": "default" },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "d" },
            "minReplicas": min, "maxReplicas": max,
        },
    })
}

async fn apply<K>(api: &Api<K>, manager: &str, force: bool, object: &Value) -> kube::Result<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut params = PatchParams::apply(manager);
    params.force = force;
    let name = object["metadata"]["name"].as_str().expect("name");
    api.patch(name, &params, &Patch::Apply(object)).await
}

/// Managers owning `path` (`f:` keys, e.g. `["f:spec", "f:replicas"]`).
fn owners<K: kube::Resource>(object: &K, path: &[&str]) -> Vec<String> {
    let pointer = format!("/{}", path.join("/"));
    object
        .meta()
        .managed_fields
        .iter()
        .flatten()
        .filter(|e| {
            e.fields_v1
                .as_ref()
                .and_then(|f| f.0.pointer(&pointer))
                .is_some()
        })
        .filter_map(|e| e.manager.clone())
        .collect()
}

fn replicas(d: &Deployment) -> Option<i32> {
    d.spec.as_ref().and_then(|s| s.replicas)
}

#[tokio::test]
async fn a_field_an_applier_stops_sending_is_removed_unless_another_manager_owns_it() {
    bounded(async {
        let api: Api<ConfigMap> = Api::default_namespaced(ApiDouble::new().client());
        apply(&api, "one", false, &cm(json!({"a": "1", "b": "2"})))
            .await
            .expect("apply");
        apply(&api, "two", false, &cm(json!({"b": "2"})))
            .await
            .expect("same value, shared");
        let after = apply(&api, "one", false, &cm(json!({})))
            .await
            .expect("apply");
        let data = after.data.clone().unwrap_or_default();
        assert_eq!(data.get("a"), None, "dropped by its only owner");
        assert_eq!(
            data.get("b").map(String::as_str),
            Some("2"),
            "still owned by two"
        );
        assert_eq!(owners(&after, &["f:data", "f:b"]), ["two"]);
    })
    .await;
}

#[tokio::test]
async fn a_status_field_an_applier_stops_sending_is_removed_and_a_main_apply_leaves_status_alone() {
    bounded(async {
        let api: Api<Deployment> = Api::default_namespaced(ApiDouble::new().client());
        apply(&api, "op", false, &deployment(Some(2)))
            .await
            .expect("create");
        let status = |fields: Value| {
            json!({ "apiVersion": "apps/v1", "kind": "Deployment", "status": fields })
        };
        let params = PatchParams::apply("op").force();
        let first = status(json!({ "observedGeneration": 1, "replicas": 2 }));
        bounded(api.patch_status("d", &params, &Patch::Apply(&first)))
            .await
            .expect("status apply");
        let other = status(json!({ "readyReplicas": 2 }));
        bounded(api.patch_status("d", &PatchParams::apply("other"), &Patch::Apply(&other)))
            .await
            .expect("another manager's status apply");

        // The operator's main apply never sends status: status stays.
        let after_main = apply(&api, "op", false, &deployment(Some(2)))
            .await
            .expect("main apply");
        let kept = after_main.status.clone().unwrap_or_default();
        assert_eq!(kept.replicas, Some(2), "a main apply removed a status field");

        // The next status apply leaves `replicas` out: it goes, while the
        // field another manager owns stays.
        let second = status(json!({ "observedGeneration": 1 }));
        let after = bounded(api.patch_status("d", &params, &Patch::Apply(&second)))
            .await
            .expect("status apply");
        let now = after.status.clone().unwrap_or_default();
        assert_eq!(now.replicas, None, "dropped by its only owner");
        assert_eq!(now.ready_replicas, Some(2), "still owned by other");
        assert_eq!(now.observed_generation, Some(1));
        assert_eq!(owners(&after, &["f:status", "f:readyReplicas"]), ["other"]);
    })
    .await;
}

#[tokio::test]
async fn another_managers_field_conflicts_unless_the_apply_is_forced() {
    bounded(async {
        let api: Api<ConfigMap> = Api::default_namespaced(ApiDouble::new().client());
        apply(&api, "one", false, &cm(json!({"a": "1"})))
            .await
            .expect("apply");
        let refused = apply(&api, "two", false, &cm(json!({"a": "2"}))).await;
        match refused {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 409);
                assert!(status.message.contains("\"one\""), "{}", status.message);
                assert!(status.message.contains(".data.a"), "{}", status.message);
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(
            api.get("c").await.expect("get").data.unwrap_or_default()["a"],
            "1"
        );
        let forced = apply(&api, "two", true, &cm(json!({"a": "2"})))
            .await
            .expect("forced");
        assert_eq!(owners(&forced, &["f:data", "f:a"]), ["two"]);
        // One no longer owns it, so dropping it from one's apply keeps it.
        let kept = apply(&api, "one", false, &cm(json!({})))
            .await
            .expect("apply");
        assert_eq!(kept.data.unwrap_or_default()["a"], "2");
    })
    .await;
}

#[tokio::test]
async fn an_update_takes_the_fields_it_changes() {
    bounded(async {
        let api: Api<ConfigMap> = Api::default_namespaced(ApiDouble::new().client());
        apply(&api, "one", false, &cm(json!({"a": "1"})))
            .await
            .expect("apply");
        let edit = PatchParams {
            field_manager: Some("kubectl-edit".into()),
            ..PatchParams::default()
        };
        api.patch("c", &edit, &Patch::Merge(json!({"data": {"a": "9"}})))
            .await
            .expect("merge patch");
        let after = apply(&api, "one", false, &cm(json!({})))
            .await
            .expect("apply");
        assert_eq!(
            after.data.clone().unwrap_or_default()["a"],
            "9",
            "kubectl-edit owns it now"
        );
        assert_eq!(owners(&after, &["f:data", "f:a"]), ["kubectl-edit"]);
    })
    .await;
}

#[tokio::test]
async fn replicas_default_to_one_when_no_one_sets_them() {
    bounded(async {
        let api: Api<Deployment> = Api::default_namespaced(ApiDouble::new().client());
        let created = apply(&api, "one", true, &deployment(None))
            .await
            .expect("apply");
        assert_eq!(replicas(&created), Some(1));
        assert!(owners(&created, &["f:spec", "f:replicas"]).is_empty());
        apply(&api, "one", true, &deployment(Some(7)))
            .await
            .expect("apply");
        let dropped = apply(&api, "one", true, &deployment(None))
            .await
            .expect("apply");
        assert_eq!(
            replicas(&dropped),
            Some(1),
            "a dropped count falls back to the default"
        );
    })
    .await;
}

#[tokio::test]
async fn writes_through_scale_belong_to_their_manager() {
    bounded(async {
        let api: Api<Deployment> = Api::default_namespaced(ApiDouble::new().client());
        apply(&api, "one", true, &deployment(Some(3)))
            .await
            .expect("apply");
        let scaler = PatchParams {
            field_manager: Some("scaler".into()),
            ..PatchParams::default()
        };
        let scale = api
            .patch_scale(
                "d",
                &scaler,
                &Patch::Merge(json!({"spec": {"replicas": 4}})),
            )
            .await
            .expect("scale");
        assert_eq!(scale.spec.and_then(|s| s.replicas), Some(4));
        let stored = api.get("d").await.expect("get");
        assert_eq!(owners(&stored, &["f:spec", "f:replicas"]), ["scaler"]);
        let entry = stored
            .managed_fields()
            .iter()
            .find(|e| e.manager.as_deref() == Some("scaler"))
            .cloned()
            .expect("scaler entry");
        assert_eq!(entry.subresource.as_deref(), Some("scale"));
        assert_eq!(entry.operation.as_deref(), Some("Update"));
        let after = apply(&api, "one", true, &deployment(None))
            .await
            .expect("apply");
        assert_eq!(replicas(&after), Some(4), "the scaler's count survives");
        let read = api.get_scale("d").await.expect("get scale");
        assert_eq!(read.spec.and_then(|s| s.replicas), Some(4));
    })
    .await;
}

#[tokio::test]
async fn the_hpa_clamps_into_its_bounds_and_never_scales_from_zero() {
    bounded(async {
        let double = ApiDouble::new();
        let deployments: Api<Deployment> = Api::default_namespaced(double.client());
        let hpas: Api<HorizontalPodAutoscaler> = Api::default_namespaced(double.client());
        apply(&deployments, "one", true, &deployment(Some(0)))
            .await
            .expect("apply");
        apply(&hpas, "one", true, &hpa(2, 5)).await.expect("apply");
        double.recommend("default", "d", 4);
        double.sync_autoscalers();
        assert_eq!(replicas(&deployments.get("d").await.expect("get")), Some(0));
        let status = hpas.get("d").await.expect("hpa").status.expect("status");
        let condition = &status.conditions.expect("conditions")[0];
        assert_eq!(
            (condition.type_.as_str(), condition.status.as_str()),
            ("ScalingActive", "False")
        );
        assert!(
            condition
                .message
                .as_deref()
                .unwrap_or_default()
                .contains("zero")
        );

        apply(&deployments, "one", true, &deployment(Some(1)))
            .await
            .expect("apply");
        double.sync_autoscalers();
        let scaled = deployments.get("d").await.expect("get");
        assert_eq!(replicas(&scaled), Some(4));
        assert_eq!(
            owners(&scaled, &["f:spec", "f:replicas"]),
            ["kube-controller-manager"]
        );
        double.recommend("default", "d", 40);
        double.sync_autoscalers();
        assert_eq!(replicas(&deployments.get("d").await.expect("get")), Some(5));
        double.recommend("default", "d", 0);
        double.sync_autoscalers();
        assert_eq!(replicas(&deployments.get("d").await.expect("get")), Some(2));
        assert_eq!(scaled.name_any(), "d");
    })
    .await;
}
