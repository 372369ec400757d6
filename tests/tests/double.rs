//! Behaviour of the API double through a real `kube::Client`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crm_crds::CrmTenant;
use crm_tests::{ApiDouble, Fault, FaultResponse};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(20);

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": "default", "labels": labels },
        "data": { "k": "v" },
    }))
    .expect("configmap")
}

fn tenant(name: &str) -> CrmTenant {
    serde_json::from_value(json!({
        "apiVersion": "crm.tenancy.dev/v1alpha1", "kind": "CrmTenant",
        "metadata": { "name": name, "namespace": "default" },
        "spec": { "load": { "activeUsers": 10 } },
    }))
    .expect("tenant")
}

fn apply() -> PatchParams {
    PatchParams::apply("test").force()
}

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f).await.expect("timed out")
}

#[tokio::test]
async fn objects_are_created_read_listed_and_deleted_through_kube_api() {
    bounded(async {
        let double = ApiDouble::new();
        let api: Api<ConfigMap> = Api::default_namespaced(double.client());
        let created = api.create(&PostParams::default(), &cm("a", &[])).await.expect("create");
        assert!(created.metadata.uid.is_some());
        assert_eq!(created.metadata.generation, Some(1));
        let again = api.create(&PostParams::default(), &cm("a", &[])).await;
        assert!(matches!(again, Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists"));
        assert_eq!(api.get("a").await.expect("get").data, created.data);
        assert_eq!(api.list(&ListParams::default()).await.expect("list").items.len(), 1);
        api.delete("a", &DeleteParams::background()).await.expect("delete");
        let gone = api.get("a").await;
        assert!(matches!(gone, Err(kube::Error::Api(s)) if s.code == 404 && s.reason == "NotFound"));
        assert!(double.get_object::<ConfigMap>("default", "a").is_none());
    })
    .await;
}

#[tokio::test]
async fn apply_creates_then_merges_what_two_managers_send_and_an_identical_apply_bumps_nothing() {
    bounded(async {
        let double = ApiDouble::new();
        let api: Api<ConfigMap> = Api::default_namespaced(double.client());
        let body = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "a" }, "data": { "x": "1" } });
        let first = api.patch("a", &apply(), &Patch::Apply(&body)).await.expect("apply");
        let more = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "a" }, "data": { "y": "2" } });
        let other = PatchParams::apply("other").force();
        let merged = api.patch("a", &other, &Patch::Apply(&more)).await.expect("apply");
        let data = merged.data.clone().expect("data");
        assert_eq!((data["x"].as_str(), data["y"].as_str()), ("1", "2"));
        assert_ne!(first.resource_version(), merged.resource_version());
        double.clear_log();
        let same = api.patch("a", &other, &Patch::Apply(&more)).await.expect("apply");
        assert_eq!(same.resource_version(), merged.resource_version());
        assert_eq!(double.count_writes(), 1);
    })
    .await;
}

#[tokio::test]
async fn generation_moves_only_when_the_spec_changes() {
    bounded(async {
        let double = ApiDouble::new();
        let api: Api<CrmTenant> = Api::default_namespaced(double.client());
        let t = api
            .create(&PostParams::default(), &tenant("t"))
            .await
            .expect("create");
        assert_eq!(t.metadata.generation, Some(1));
        let labels = Patch::Merge(json!({ "metadata": { "labels": { "a": "b" } } }));
        let t = api
            .patch("t", &PatchParams::default(), &labels)
            .await
            .expect("patch");
        assert_eq!(t.metadata.generation, Some(1));
        let spec = Patch::Merge(json!({ "spec": { "load": { "activeUsers": 20 } } }));
        let t = api
            .patch("t", &PatchParams::default(), &spec)
            .await
            .expect("patch");
        assert_eq!(t.metadata.generation, Some(2));
    })
    .await;
}

#[tokio::test]
async fn status_subresource_is_separate_from_the_main_resource() {
    bounded(async {
        let double = ApiDouble::new();
        let api: Api<CrmTenant> = Api::default_namespaced(double.client());
        api.create(&PostParams::default(), &tenant("t")).await.expect("create");
        let status = json!({ "apiVersion": "crm.tenancy.dev/v1alpha1", "kind": "CrmTenant", "status": { "endpoint": "e" } });
        let t = api.patch_status("t", &apply(), &Patch::Apply(&status)).await.expect("status");
        assert_eq!(t.status.as_ref().and_then(|s| s.endpoint.as_deref()), Some("e"));
        assert_eq!(t.metadata.generation, Some(1));
        let main = Patch::Merge(json!({ "status": { "endpoint": "other" }, "spec": { "load": { "activeUsers": 3 } } }));
        let t = api.patch("t", &PatchParams::default(), &main).await.expect("patch");
        assert_eq!(t.status.as_ref().and_then(|s| s.endpoint.as_deref()), Some("e"));
        let spec_via_status = Patch::Merge(json!({ "spec": { "load": { "activeUsers": 99 } } }));
        let t = api.patch_status("t", &PatchParams::default(), &spec_via_status).await.expect("patch");
        assert_eq!(t.spec.load.active_users, Some(3));
        assert!(!double.set_status::<Deployment>("default", "none", json!({})));
    })
    .await;
}

#[tokio::test]
async fn label_selectors_filter_and_limit_paginates() {
    bounded(async {
        let double = ApiDouble::new();
        for i in 0..5 {
            let team = if i % 2 == 0 { "a" } else { "b" };
            double
                .put_object(&cm(&format!("c{i}"), &[("team", team)]))
                .expect("seed");
        }
        let api: Api<ConfigMap> = Api::default_namespaced(double.client());
        let names = |l: Vec<ConfigMap>| l.iter().map(ResourceExt::name_any).collect::<Vec<_>>();
        let a = api
            .list(&ListParams::default().labels("team=a"))
            .await
            .expect("list");
        assert_eq!(names(a.items), ["c0", "c2", "c4"]);
        let not_a = api
            .list(&ListParams::default().labels("team!=a,team"))
            .await
            .expect("list");
        assert_eq!(names(not_a.items), ["c1", "c3"]);
        let mut seen = Vec::new();
        let mut params = ListParams::default().limit(2);
        loop {
            let page = api.list(&params).await.expect("page");
            assert!(page.items.len() <= 2);
            seen.extend(names(page.items));
            match page.metadata.continue_ {
                Some(c) if !c.is_empty() => params = params.continue_token(&c),
                _ => break,
            }
        }
        assert_eq!(seen, ["c0", "c1", "c2", "c3", "c4"]);
    })
    .await;
}

#[tokio::test]
async fn a_watcher_sees_initial_objects_then_changes() {
    bounded(async {
        let double = ApiDouble::new();
        for i in 0..3 {
            double.put_object(&cm(&format!("c{i}"), &[])).expect("seed");
        }
        let api: Api<ConfigMap> = Api::default_namespaced(double.client());
        let mut events = watcher(api.clone(), watcher::Config::default().page_size(2)).boxed();
        let mut initial = Vec::new();
        while let Some(e) = events.try_next().await.expect("event") {
            match e {
                watcher::Event::InitApply(o) => initial.push(o.name_any()),
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
        assert_eq!(initial, ["c0", "c1", "c2"]);
        double.put_object(&cm("c3", &[])).expect("add");
        double.edit_object::<ConfigMap>("default", "c0", |v| v["data"]["k"] = json!("w"));
        double.delete_object::<ConfigMap>("default", "c1");
        let mut seen = Vec::new();
        while seen.len() < 3 {
            match events.try_next().await.expect("event") {
                Some(watcher::Event::Apply(o)) => seen.push(format!("apply {}", o.name_any())),
                Some(watcher::Event::Delete(o)) => seen.push(format!("delete {}", o.name_any())),
                _ => {}
            }
        }
        assert_eq!(seen, ["apply c3", "apply c0", "delete c1"]);
    })
    .await;
}

#[tokio::test]
async fn a_metadata_only_watcher_gets_partial_objects() {
    bounded(async {
        let double = ApiDouble::new();
        double
            .put_object(&cm(
                "c0",
                &[("app.kubernetes.io/managed-by", "crm-operator")],
            ))
            .expect("seed");
        let api: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(double.client(), "default");
        let config = watcher::Config::default().labels("app.kubernetes.io/managed-by=crm-operator");
        let mut objects = watcher(api, config).applied_objects().boxed();
        let first = objects.try_next().await.expect("event").expect("object");
        assert_eq!(first.name_any(), "c0");
        double
            .put_object(&cm(
                "c1",
                &[("app.kubernetes.io/managed-by", "crm-operator")],
            ))
            .expect("seed");
        let second = objects.try_next().await.expect("event").expect("object");
        assert_eq!(second.name_any(), "c1");
        let log = double.request_log();
        assert!(
            log.iter()
                .any(|r| r.path.contains("watch=true") || r.path.contains("watch=1"))
        );
    })
    .await;
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    bounded(async {
        let double = ApiDouble::new();
        let mut c = cm("f", &[]);
        c.metadata.finalizers = Some(vec!["test/hold".into()]);
        double.put_object(&c).expect("seed");
        let api: Api<ConfigMap> = Api::default_namespaced(double.client());
        api.delete("f", &DeleteParams::background())
            .await
            .expect("delete");
        let held = api.get("f").await.expect("still there");
        assert!(held.metadata.deletion_timestamp.is_some());
        let clear = Patch::Merge(json!({ "metadata": { "finalizers": null } }));
        api.patch("f", &PatchParams::default(), &clear)
            .await
            .expect("patch");
        assert!(api.get_opt("f").await.expect("get").is_none());
    })
    .await;
}

#[tokio::test]
async fn deleting_an_owner_cascades_to_its_dependents() {
    bounded(async {
        let double = ApiDouble::new();
        let owner = double.put_object(&tenant("t")).expect("seed");
        let mut child = cm("child", &[]);
        child.metadata.owner_references = owner.controller_owner_ref(&()).map(|r| vec![r]);
        double.put_object(&child).expect("seed");
        double.put_object(&cm("other", &[])).expect("seed");
        let api: Api<CrmTenant> = Api::default_namespaced(double.client());
        api.delete("t", &DeleteParams::background())
            .await
            .expect("delete");
        assert!(double.get_object::<ConfigMap>("default", "child").is_none());
        assert!(double.get_object::<ConfigMap>("default", "other").is_some());
    })
    .await;
}

#[tokio::test]
async fn injected_faults_reach_the_client_as_api_errors_until_cleared() {
    bounded(async {
        let double = ApiDouble::new();
        double.put_object(&cm("a", &[])).expect("seed");
        let api: Api<ConfigMap> = Api::default_namespaced(double.client());
        let fault = |code| Fault {
            verb: Some("GET"),
            path_contains: Some("/configmaps/a".into()),
            response: FaultResponse::Status(code),
            times: 1,
        };
        double.inject(fault(500));
        double.inject(fault(409));
        assert!(matches!(api.get("a").await, Err(kube::Error::Api(s)) if s.code == 500));
        assert!(matches!(api.get("a").await, Err(kube::Error::Api(s)) if s.code == 409));
        assert!(api.get("a").await.is_ok());
        double.inject(Fault {
            times: 5,
            ..fault(500)
        });
        double.clear_faults();
        assert!(api.get("a").await.is_ok());
    })
    .await;
}

type Counts = Arc<Mutex<HashMap<String, usize>>>;

async fn reconcile(
    t: Arc<CrmTenant>,
    ctx: Arc<(kube::Client, Counts)>,
) -> Result<Action, kube::Error> {
    let name = t.name_any();
    *ctx.1
        .lock()
        .expect("counts")
        .entry(name.clone())
        .or_default() += 1;
    let mut owned = cm(&format!("{name}-cm"), &[]);
    owned.metadata.owner_references = t.controller_owner_ref(&()).map(|r| vec![r]);
    let api: Api<ConfigMap> = Api::default_namespaced(ctx.0.clone());
    api.patch(&owned.name_any(), &apply(), &Patch::Apply(&owned))
        .await?;
    Ok(Action::await_change())
}

#[tokio::test]
async fn a_controller_reconciles_tenants_and_reacts_to_owned_deletions() {
    bounded(async {
        let double = ApiDouble::new();
        double.put_object(&tenant("one")).expect("seed");
        double.put_object(&tenant("two")).expect("seed");
        let client = double.client();
        let counts = Counts::default();
        let controller = Controller::new(
            Api::<CrmTenant>::default_namespaced(client.clone()),
            watcher::Config::default(),
        )
        .owns(
            Api::<ConfigMap>::default_namespaced(client.clone()),
            watcher::Config::default(),
        )
        .run(
            reconcile,
            |_, _, _| Action::requeue(Duration::from_secs(1)),
            Arc::new((client, counts.clone())),
        )
        .for_each(|_| async {});
        let task = tokio::spawn(controller);
        let count = |n: &str| counts.lock().expect("counts").get(n).copied().unwrap_or(0);
        while double
            .get_object::<ConfigMap>("default", "one-cm")
            .is_none()
            || double
                .get_object::<ConfigMap>("default", "two-cm")
                .is_none()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = count("one");
        assert!(before >= 1 && count("two") >= 1);
        double.delete_object::<ConfigMap>("default", "one-cm");
        while count("one") == before
            || double
                .get_object::<ConfigMap>("default", "one-cm")
                .is_none()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        task.abort();
    })
    .await;
}

#[tokio::test]
async fn discovery_lists_what_is_served_until_a_group_stops_being_served() {
    let double = ApiDouble::new();
    let client = double.client();
    let gateway = client
        .list_api_group_resources("gateway.networking.k8s.io/v1")
        .await
        .expect("the Gateway API is served");
    let plurals: Vec<_> = gateway.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(plurals, ["httproutes"]);
    assert_eq!(gateway.resources[0].kind, "HTTPRoute");
    let networking = client
        .list_api_group_resources("networking.k8s.io/v1")
        .await
        .expect("networking is served");
    assert!(networking.resources.iter().any(|r| r.name == "ingresses"));

    double.stop_serving("gateway.networking.k8s.io");
    let missing = client
        .list_api_group_resources("gateway.networking.k8s.io/v1")
        .await;
    assert!(
        matches!(missing, Err(kube::Error::Api(ref s)) if s.code == 404),
        "{missing:?}"
    );
    let routes: Api<crm_operator::gateway_api::HttpRoute> =
        Api::namespaced(client.clone(), "default");
    let listed = routes.list(&ListParams::default()).await;
    assert!(
        matches!(listed, Err(kube::Error::Api(ref s)) if s.code == 404),
        "{listed:?}"
    );
    // Other groups are unaffected.
    client
        .list_api_group_resources("networking.k8s.io/v1")
        .await
        .expect("networking is still served");
}

#[tokio::test]
async fn a_body_that_does_not_parse_is_refused_and_stores_nothing() {
    let double = ApiDouble::new();
    let client = double.client();
    let request = http::Request::patch(
        "/api/v1/namespaces/default/configmaps/broken?fieldManager=t&force=true",
    )
    .header("content-type", "application/apply-patch+yaml")
    .body(b"{\"metadata\": ".to_vec())
    .expect("request");
    let error = bounded(client.request_text(request))
        .await
        .expect_err("a truncated body must be refused");
    assert!(
        matches!(&error, kube::Error::Api(status) if status.code == 400),
        "{error}"
    );
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let found = bounded(api.get_opt("broken")).await.expect("get");
    assert!(found.is_none(), "nothing may be stored: {found:?}");
}

#[tokio::test]
async fn requests_are_logged_in_order_of_arrival_and_the_store_counts_its_busy_time() {
    let double = ApiDouble::new();
    let api: Api<ConfigMap> = Api::namespaced(double.client(), "default");
    let before = double.store_held();
    for name in ["a", "b", "c"] {
        bounded(api.patch(name, &apply(), &Patch::Apply(cm(name, &[]))))
            .await
            .expect("apply");
    }
    let log = double.request_log();
    assert_eq!(log.len(), 3);
    assert!(
        log.windows(2).all(|pair| pair[0].at <= pair[1].at),
        "{log:?}"
    );
    assert!(double.store_held() > before, "three writes held the store");
}
