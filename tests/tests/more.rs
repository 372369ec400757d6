//! Less common paths of the API double: patches, conflicts, expiry,
//! metadata-only lists, the Events API and hanging requests.

use std::time::Duration;

use crm_tests::{ApiDouble, Fault, FaultResponse};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(20);

fn cm(name: &str, ns: &str) -> ConfigMap {
    serde_json::from_value(
        json!({ "metadata": { "name": name, "namespace": ns }, "data": { "k": "v" } }),
    )
    .expect("configmap")
}

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f).await.expect("timed out")
}

#[tokio::test]
async fn json_patch_yaml_apply_and_stale_replace_behave_like_the_api_server() {
    bounded(async {
        let double = ApiDouble::new();
        let api: Api<ConfigMap> = Api::default_namespaced(double.client());
        let stale = api
            .create(&PostParams::default(), &cm("a", "default"))
            .await
            .expect("create");
        let ops: json_patch::Patch =
            serde_json::from_value(json!([{ "op": "add", "path": "/data/j", "value": "p" }]))
                .expect("ops");
        let patched = api
            .patch("a", &PatchParams::default(), &Patch::<()>::Json(ops))
            .await
            .expect("json patch");
        assert_eq!(
            patched
                .data
                .as_ref()
                .and_then(|d| d.get("j"))
                .map(String::as_str),
            Some("p")
        );
        let conflict = api.replace("a", &PostParams::default(), &stale).await;
        assert!(
            matches!(conflict, Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "Conflict")
        );
        let fresh = api
            .replace("a", &PostParams::default(), &patched)
            .await
            .expect("replace");
        assert_eq!(fresh.resource_version(), patched.resource_version());
        let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  y: from-yaml\n";
        let req = http::Request::patch(
            "/api/v1/namespaces/default/configmaps/a?fieldManager=t&force=true",
        )
        .header("content-type", "application/apply-patch+yaml")
        .body(yaml.as_bytes().to_vec())
        .expect("request");
        let applied: ConfigMap = double.client().request(req).await.expect("yaml apply");
        let data = applied.data.expect("data");
        assert_eq!((data["y"].as_str(), data["j"].as_str()), ("from-yaml", "p"));
    })
    .await;
}

#[tokio::test]
async fn a_watch_from_a_resource_version_older_than_the_history_gets_410() {
    bounded(async {
        let double = ApiDouble::new();
        for i in 0..1100 {
            double
                .put_object(&cm(&format!("c{i}"), "default"))
                .expect("seed");
        }
        let api: Api<ConfigMap> = Api::default_namespaced(double.client());
        let mut events = Box::pin(
            api.watch(&WatchParams::default(), "1")
                .await
                .expect("watch"),
        );
        let first = events.try_next().await.expect("event").expect("some event");
        assert!(matches!(first, WatchEvent::Error(s) if s.code == 410));
        let recent = api
            .watch(&WatchParams::default(), "1090")
            .await
            .expect("watch");
        let mut recent = Box::pin(recent);
        double.put_object(&cm("late", "default")).expect("seed");
        let mut names = Vec::new();
        while names.last().map(String::as_str) != Some("late") {
            if let Some(WatchEvent::Added(o)) = recent.try_next().await.expect("event") {
                names.push(o.name_any());
            }
        }
        assert_eq!(names.len(), 11);
    })
    .await;
}

#[tokio::test]
async fn metadata_only_and_all_namespace_lists_work() {
    bounded(async {
        let double = ApiDouble::new();
        double.put_object(&cm("a", "one")).expect("seed");
        double.put_object(&cm("b", "two")).expect("seed");
        let all: Api<ConfigMap> = Api::all(double.client());
        let list = all
            .list_metadata(&ListParams::default())
            .await
            .expect("list");
        assert_eq!(
            list.items
                .iter()
                .map(ResourceExt::name_any)
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(
            list.items[0].types.as_ref().map(|t| t.kind.as_str()),
            Some("PartialObjectMetadata")
        );
        assert_eq!(double.list_objects::<ConfigMap>("two").len(), 1);
    })
    .await;
}

#[tokio::test]
async fn event_writes_are_counted_apart_and_hanging_requests_never_answer() {
    bounded(async {
        let double = ApiDouble::new();
        let events: Api<Event> = Api::default_namespaced(double.client());
        let event: Event = serde_json::from_value(json!({
            "metadata": { "generateName": "t." }, "eventTime": "2026-01-01T00:00:00.000000Z",
            "reason": "Test", "action": "Test", "type": "Normal", "reportingController": "c", "reportingInstance": "i",
        }))
        .expect("event");
        let created = events.create(&PostParams::default(), &event).await.expect("create");
        let repeat = Patch::Merge(json!({ "series": { "count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z" } }));
        events.patch(&created.name_any(), &PatchParams::default(), &repeat).await.expect("patch");
        let cms: Api<ConfigMap> = Api::default_namespaced(double.client());
        cms.create(&PostParams::default(), &cm("a", "default")).await.expect("create");
        assert_eq!((double.count_writes(), double.count_writes_excluding_events()), (3, 1));
        double.inject(Fault { verb: None, path_contains: Some("/configmaps/a".into()), response: FaultResponse::Hang, times: 1 });
        let hung = tokio::time::timeout(Duration::from_millis(200), cms.get("a")).await;
        assert!(hung.is_err());
        assert!(cms.get("a").await.is_ok());
    })
    .await;
}

#[tokio::test]
async fn a_repeated_event_becomes_a_series_and_a_different_one_a_new_event() {
    use crm_operator::recorder::Recorder;
    use k8s_openapi::api::core::v1::ObjectReference;
    use kube::runtime::events::{Event as Record, EventType, Reporter};

    bounded(async {
        let double = ApiDouble::new();
        let recorder = Recorder::new(
            double.client(),
            Reporter {
                controller: "crm-operator".into(),
                instance: Some("pod-1".into()),
            },
        );
        let regarding = ObjectReference {
            api_version: Some("crm.tenancy.dev/v1alpha1".into()),
            kind: Some("CrmTenant".into()),
            namespace: Some("default".into()),
            name: Some("acme".into()),
            uid: Some("uid-1".into()),
            ..ObjectReference::default()
        };
        let record = |reason: &str, note: &str| Record {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Reconcile".into(),
            secondary: None,
        };
        for _ in 0..3 {
            let failed = record("ReconcileFailed", "the API server refused");
            recorder
                .publish(&failed, &regarding)
                .await
                .expect("publish");
        }
        let other = record("ReconcileFailed", "a different reason");
        recorder.publish(&other, &regarding).await.expect("publish");

        let mut events = double.list_objects::<Event>("default");
        events.sort_by_key(|e| {
            let version = e.metadata.resource_version.as_deref();
            version.and_then(|v| v.parse::<u64>().ok())
        });
        let counts: Vec<(Option<String>, Option<i32>)> = events
            .iter()
            .map(|e| (e.note.clone(), e.series.as_ref().map(|s| s.count)))
            .collect();
        assert_eq!(
            counts,
            [
                (Some("the API server refused".into()), Some(3)),
                (Some("a different reason".into()), None),
            ]
        );
        let first = &events[0];
        assert_eq!(first.regarding.as_ref(), Some(&regarding));
        assert_eq!(first.reporting_instance.as_deref(), Some("pod-1"));
        assert_eq!(first.type_.as_deref(), Some("Warning"));
    })
    .await;
}
