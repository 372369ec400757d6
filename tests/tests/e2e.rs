//! End to end on a real cluster, opt-in: point `CRM_E2E_KUBECONFIG` at a
//! kubeconfig (kind, k3d, a real cluster) and run
//! `cargo test -p crm-tests --test e2e -- --nocapture`.
//!
//! It installs the checked-in CRD (`crds/crmtenant.yaml`), runs the operator
//! in-process against a fresh namespace, applies the examples, and checks
//! children, status, load changes, drift correction and deletion against the
//! deletion policy. The replica count is followed through suspend and resume
//! under autoscaling, and through autoscaling off, on and an unrelated
//! change, sampled so that it never falls below the HPA's minimum. With
//! `CRM_E2E_SHARED_SERVER` naming a shared PostgreSQL server registered in
//! `crm-system` (see the README), the Shared example is applied too, its
//! database password rotated and the tenant deleted under `Delete`. With
//! `CRM_E2E_SERVER_IMAGE` naming a crm-server image the cluster can run, a
//! Starter tenant on Embedded gets contacts through its API (a port-forward
//! to its pod), moves to Growth on Managed, and must answer the same
//! contacts from a pod on PostgreSQL once Ready there. The
//! Ingress example is applied (its Ingress, policy and `https://` endpoint
//! checked, then exposure turned off and the Ingress pruned), and the
//! Gateway example too where the cluster serves the Gateway API. It
//! removes its namespace afterwards. Without
//! `CRM_E2E_KUBECONFIG` it prints one loud "skipped: no cluster" line (the
//! suite has its own `main`, not libtest's harness, so that line is never
//! swallowed by output capture).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crm_crds::CrmTenant;
use crm_operator::controller::{self, Settings};
use crm_operator::metrics::Metrics;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use serde_json::{Value, json};

const MANAGER: &str = "crm-e2e";
const SLOW: Duration = Duration::from_secs(120);
/// Pulling the server's and PostgreSQL's images, rollouts and a copy.
const MOVE: Duration = Duration::from_secs(600);

async fn cluster() -> Option<Client> {
    let Some(path) = std::env::var_os("CRM_E2E_KUBECONFIG") else {
        eprintln!(
            "\n*** e2e: skipped: no cluster (set CRM_E2E_KUBECONFIG to a kubeconfig to run the end-to-end suite) ***\n"
        );
        return None;
    };
    let kubeconfig =
        Kubeconfig::read_from(&path).expect("CRM_E2E_KUBECONFIG names a readable kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("the kubeconfig is usable");
    Some(Client::try_from(config).expect("a client for the cluster"))
}

async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(what, SLOW, check).await
}

/// [`eventually`] with its own limit, for what pulls images and copies data.
async fn eventually_within<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "e2e: timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn repo_file(path: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn example(name: &str, namespace: &str) -> CrmTenant {
    let mut tenant: CrmTenant = crm_tests::example(name);
    tenant.metadata.namespace = Some(namespace.to_owned());
    tenant
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(the_examples_run_on_a_real_cluster());
}

async fn the_examples_run_on_a_real_cluster() {
    let Some(client) = cluster().await else {
        return;
    };
    let apply = PatchParams::apply(MANAGER).force();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition =
        serde_saphyr::from_str(&repo_file("crds/crmtenant.yaml")).expect("the CRD parses");
    crds.patch(&crd.name_any(), &apply, &Patch::Apply(&crd))
        .await
        .expect("the CRD is accepted by the API server");
    eventually("the CRD established", || async {
        let crd = crds.get(&crd.name_any()).await.ok()?;
        let established = crd
            .status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        established.then_some(())
    })
    .await;

    let namespace = format!("crm-e2e-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let body =
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": namespace } });
    namespaces
        .patch(&namespace, &apply, &Patch::Apply(&body))
        .await
        .expect("a namespace for the suite");

    let settings = Settings {
        namespace: Some(namespace.clone()),
        ..Settings::default()
    };
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(controller::run(client.clone(), settings, metrics, async {
        let _ = stopped.await;
    }));

    eprintln!("e2e: operator running in namespace {namespace}");
    let result = tokio::spawn(scenario(client.clone(), namespace.clone())).await;

    let _ = stop.send(());
    let _ = operator.await;
    let _ = namespaces
        .delete(&namespace, &DeleteParams::background())
        .await;
    match result {
        Ok(outcome) => outcome.expect("the scenario's API calls succeed"),
        Err(panic) => std::panic::resume_unwind(panic.into_panic()),
    }
    eprintln!("e2e: passed; namespace {namespace} removed");
}

async fn scenario(client: Client, ns: String) -> Result<(), kube::Error> {
    let ns = ns.as_str();
    let apply = PatchParams::apply(MANAGER).force();
    let tenants: Api<CrmTenant> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), ns);
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);

    // The External example reads its URL from a Secret the platform team provides.
    let external = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "initech-database" },
        "stringData": { "url": "postgres://crm@postgres.invalid:5432/crm" },
    });
    secrets
        .patch("initech-database", &apply, &Patch::Apply(&external))
        .await?;
    // Shared needs a registered shared PostgreSQL server, which a bare
    // cluster does not have; the other three modes need nothing.
    for name in ["starter-embedded", "growth-managed", "growth-external"] {
        let tenant = example(name, ns);
        tenants
            .patch(&tenant.name_any(), &apply, &Patch::Apply(&tenant))
            .await?;
    }

    for name in ["corner-bakery", "northwind", "initech"] {
        eventually(
            &format!("{name}: Deployment, Service and API key"),
            || async {
                deployments.get_opt(name).await.ok()??;
                services.get_opt(name).await.ok()??;
                secrets.get_opt(&format!("{name}-api")).await.ok()?
            },
        )
        .await;
        let status = eventually(
            &format!("{name}: status with sizing and endpoint"),
            || async {
                let status = tenants.get(name).await.ok()?.status?;
                (status.sizing.is_some() && status.endpoint.is_some()).then_some(status)
            },
        )
        .await;
        let endpoint = status.endpoint.unwrap_or_default();
        assert!(
            endpoint.starts_with(&format!("http://{name}.{ns}.svc")),
            "{endpoint}"
        );
    }
    eventually("northwind's PostgreSQL StatefulSet", || async {
        statefulsets.get_opt("northwind-postgres").await.ok()?
    })
    .await;

    // More load: the HPA follows the model's new bounds.
    let more = json!({ "spec": { "load": { "peakRequestsPerSecond": 1200 } } });
    tenants
        .patch("northwind", &PatchParams::default(), &Patch::Merge(&more))
        .await?;
    eventually("northwind's HPA following the new load", || async {
        let tenant = tenants.get("northwind").await.ok()?;
        let status = tenant.status?;
        let sizing = status.sizing?;
        if status.observed_generation != tenant.metadata.generation {
            return None;
        }
        let hpa = hpas.get("northwind").await.ok()?.spec?;
        (hpa.max_replicas == sizing.max_replicas && hpa.min_replicas == Some(sizing.min_replicas))
            .then_some(())
    })
    .await;

    // A deleted child comes back.
    services
        .delete("northwind", &DeleteParams::default())
        .await?;
    eventually("northwind's Service recreated", || async {
        services.get_opt("northwind").await.ok()?
    })
    .await;

    replicas_survive_suspend_and_autoscaling_changes(&client, ns).await?;
    exposure(&client, ns).await?;
    if let Ok(image) = std::env::var("CRM_E2E_SERVER_IMAGE") {
        embedded_to_managed_keeps_the_contacts(&client, ns, &image).await?;
    } else {
        eprintln!(
            "e2e: the move Embedded → Managed skipped: CRM_E2E_SERVER_IMAGE (a crm-server image the cluster can run) is not set"
        );
    }
    if let Ok(server) = std::env::var("CRM_E2E_SHARED_SERVER") {
        shared_rotation_and_deletion(&client, ns, &server).await?;
    } else {
        eprintln!("e2e: Shared rotation and deletion skipped: CRM_E2E_SHARED_SERVER is not set");
    }

    // Deletion: owned children go; under Retain the credentials stay.
    tenants
        .delete("northwind", &DeleteParams::foreground())
        .await?;
    eventually("northwind's Deployment and API key collected", || async {
        let gone = deployments.get_opt("northwind").await.ok()?.is_none()
            && secrets.get_opt("northwind-api").await.ok()?.is_none();
        gone.then_some(())
    })
    .await;
    assert!(
        secrets.get_opt("northwind-db").await?.is_some(),
        "deletionPolicy Retain keeps the database credentials"
    );
    Ok(())
}

/// The Ingress example, and the Gateway example where the cluster serves
/// HTTPRoutes: each gets its object and an `https://` endpoint; exposure
/// turned off prunes the Ingress.
async fn exposure(client: &Client, ns: &str) -> Result<(), kube::Error> {
    use crm_operator::gateway_api::{self, HttpRoute};
    use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};

    let apply = PatchParams::apply(MANAGER).force();
    let tenants: Api<CrmTenant> = Api::namespaced(client.clone(), ns);
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), ns);
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    let endpoint = |name: &'static str, want: &'static str| {
        let tenants = tenants.clone();
        async move {
            let status = tenants.get(name).await.ok()?.status?;
            (status.endpoint.as_deref() == Some(want)).then_some(())
        }
    };

    let contoso = example("growth-ingress", ns);
    tenants
        .patch("contoso", &apply, &Patch::Apply(&contoso))
        .await?;
    let ingress = eventually("contoso's Ingress", || async {
        ingresses.get_opt("contoso").await.ok()?
    })
    .await;
    let host = ingress
        .spec
        .and_then(|s| s.rules)
        .and_then(|r| r[0].host.clone());
    assert_eq!(host.as_deref(), Some("crm.contoso.example.com"));
    eventually("contoso's https endpoint", || {
        endpoint("contoso", "https://crm.contoso.example.com")
    })
    .await;
    let policy = policies.get("contoso").await?;
    let admitted = serde_json::to_string(&policy.spec).unwrap_or_default();
    assert!(admitted.contains("ingress-nginx"), "{admitted}");
    patch_spec_of(&tenants, "contoso", json!({ "server": { "expose": null } })).await?;
    eventually("contoso's Ingress pruned", || async {
        ingresses
            .get_opt("contoso")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;

    let served = client
        .list_api_group_resources(gateway_api::API_VERSION)
        .await
        .is_ok_and(|list| list.resources.iter().any(|r| r.name == "httproutes"));
    if !served {
        eprintln!("e2e: the Gateway example skipped: the cluster does not serve the Gateway API");
        return Ok(());
    }
    let routes: Api<HttpRoute> = Api::namespaced(client.clone(), ns);
    let fabrikam = example("growth-gateway", ns);
    tenants
        .patch("fabrikam", &apply, &Patch::Apply(&fabrikam))
        .await?;
    let route = eventually("fabrikam's HTTPRoute", || async {
        routes.get_opt("fabrikam").await.ok()?
    })
    .await;
    assert_eq!(route.spec.hostnames, ["fabrikam.crm.example.com"]);
    eventually("fabrikam's https endpoint", || {
        endpoint("fabrikam", "https://fabrikam.crm.example.com")
    })
    .await;
    Ok(())
}

async fn patch_spec_of(
    tenants: &Api<CrmTenant>,
    name: &str,
    spec: Value,
) -> Result<(), kube::Error> {
    let patch = json!({ "spec": spec });
    tenants
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// The spec.replicas of `name` now, if it exists.
async fn replicas(deployments: &Api<Deployment>, name: &str) -> Option<i32> {
    deployments.get_opt(name).await.ok()??.spec?.replicas
}

/// Merge-patches northwind's spec as `kubectl patch --type merge` would.
async fn patch_spec(tenants: &Api<CrmTenant>, spec: Value) -> Result<(), kube::Error> {
    let patch = json!({ "spec": spec });
    tenants
        .patch("northwind", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(drop)
}

/// The tenant's sizing once status describes its current generation.
async fn current_sizing(tenants: &Api<CrmTenant>) -> Option<crm_crds::Sizing> {
    let tenant = tenants.get("northwind").await.ok()?;
    let status = tenant.status?;
    (status.observed_generation == tenant.metadata.generation).then_some(status.sizing?)
}

/// Suspend and resume under autoscaling, then autoscaling off, on, and an
/// unrelated change: the count comes back from zero, and otherwise never
/// falls below the HPA's minimum.
async fn replicas_survive_suspend_and_autoscaling_changes(
    client: &Client,
    ns: &str,
) -> Result<(), kube::Error> {
    let tenants: Api<CrmTenant> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);

    patch_spec(&tenants, json!({ "suspend": true })).await?;
    eventually("northwind suspended at zero replicas", || async {
        (replicas(&deployments, "northwind").await? == 0).then_some(())
    })
    .await;
    patch_spec(&tenants, json!({ "suspend": false })).await?;
    let min = eventually("northwind's sizing after resume", || {
        current_sizing(&tenants)
    })
    .await
    .min_replicas;
    eventually("northwind resumed at its base count", || async {
        (replicas(&deployments, "northwind").await? >= min).then_some(())
    })
    .await;

    patch_spec(&tenants, json!({ "autoscaling": { "enabled": false } })).await?;
    let peak = eventually("northwind's sizing without autoscaling", || {
        current_sizing(&tenants)
    })
    .await
    .replicas;
    eventually("northwind at its peak count", || async {
        (replicas(&deployments, "northwind").await? == peak).then_some(())
    })
    .await;
    patch_spec(&tenants, json!({ "autoscaling": { "enabled": true } })).await?;
    eventually("northwind's sizing with autoscaling", || {
        current_sizing(&tenants)
    })
    .await;
    // A removal-only change: the operator no longer sends spec.replicas,
    // and must have given it up.
    eventually("spec.replicas given up by the operator", || async {
        let deployment = deployments.get_opt("northwind").await.ok()??;
        (!crm_operator::ownership::owns_replicas(&deployment, "crm-operator")).then_some(())
    })
    .await;
    patch_spec(&tenants, json!({ "resources": { "memory": "768Mi" } })).await?;
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < until {
        if let Some(count) = replicas(&deployments, "northwind").await {
            assert!(
                count >= min,
                "e2e: northwind fell to {count} replicas, below the HPA's minimum {min}"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

/// The Shared example on a registered server: ready, its password rotated
/// (server first, then the Secret), and deleted under `Delete`.
async fn shared_rotation_and_deletion(
    client: &Client,
    ns: &str,
    server: &str,
) -> Result<(), kube::Error> {
    let tenants: Api<CrmTenant> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut tenant = example("enterprise-shared", ns);
    let name = tenant.name_any();
    if let Some(database) = tenant.spec.database.as_mut() {
        database.shared = Some(crm_crds::SharedDatabaseSpec {
            server: server.to_owned(),
        });
        database.deletion_policy = crm_crds::DeletionPolicy::Delete;
    }
    let apply = PatchParams::apply(MANAGER).force();
    tenants.patch(&name, &apply, &Patch::Apply(&tenant)).await?;
    let password = |secret: Secret| secret.data?.get("password").cloned();
    let before = eventually("the Shared tenant's database ready", || async {
        let status = tenants.get(&name).await.ok()?.status?;
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == crm_crds::condition::DATABASE_READY && c.status == "True");
        if !ready {
            return None;
        }
        password(secrets.get_opt(&format!("{name}-db")).await.ok()??)
    })
    .await;
    let rotate = json!({ "metadata": { "annotations": {
        crm_crds::annotation::ROTATE_DATABASE_CREDENTIALS: "e2e-1",
    } } });
    tenants
        .patch(&name, &PatchParams::default(), &Patch::Merge(&rotate))
        .await?;
    eventually("the Shared password rotated", || async {
        let now = password(secrets.get_opt(&format!("{name}-db")).await.ok()??)?;
        let status = tenants.get(&name).await.ok()?.status?;
        (now != before && status.database_credentials_rotated_at.is_some()).then_some(())
    })
    .await;
    tenants.delete(&name, &DeleteParams::default()).await?;
    eventually("the Shared tenant deleted (finalizer done)", || async {
        tenants.get_opt(&name).await.ok()?.is_none().then_some(())
    })
    .await;
    eventually("deletionPolicy Delete removing the credentials", || async {
        secrets
            .get_opt(&format!("{name}-db"))
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    Ok(())
}

/// A Starter tenant on Embedded, running `image`: contacts written through
/// its API, then the tenant moved to Growth on Managed; once it is Ready on
/// PostgreSQL, pods on PostgreSQL answer the same contacts, and take writes.
async fn embedded_to_managed_keeps_the_contacts(
    client: &Client,
    ns: &str,
    image: &str,
) -> Result<(), kube::Error> {
    let tenants: Api<CrmTenant> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut tenant = example("starter-embedded", ns);
    let name = "bakery-move";
    tenant.metadata.name = Some(name.to_owned());
    tenant.spec.server.get_or_insert_default().image = Some(image.to_owned());
    let apply = PatchParams::apply(MANAGER).force();
    tenants.patch(name, &apply, &Patch::Apply(&tenant)).await?;

    let pod = server_pod(&pods, name, false).await;
    let key = eventually("bakery-move's API key", || async {
        let data = secrets.get_opt(&format!("{name}-api")).await.ok()??.data?;
        String::from_utf8(data.get("api-key")?.0.clone()).ok()
    })
    .await;
    let mut written = Vec::new();
    for i in 0..3 {
        let contact = json!({
            "first_name": "Ada", "last_name": format!("Lovelace {i}"),
            "email": format!("ada{i}@bakery-move.example"),
        });
        let (status, body) = http(
            &pods,
            &pod,
            "POST",
            "/api/v1/contacts",
            &key,
            Some(&contact),
        )
        .await;
        assert_eq!(status, 201, "e2e: creating a contact on SQLite: {body}");
        let id = body["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("e2e: no id in {body}"));
        written.push((id, contact["email"].clone()));
    }

    let to_managed = json!({ "spec": { "tier": "Growth", "database": { "mode": "Managed" } } });
    tenants
        .patch(name, &PatchParams::default(), &Patch::Merge(&to_managed))
        .await?;
    eventually_within("bakery-move Ready on Managed", MOVE, || async {
        let tenant = tenants.get(name).await.ok()?;
        let status = tenant.status?;
        (status.observed_generation == tenant.metadata.generation
            && status.phase == Some(crm_crds::Phase::Ready)
            && status.database?.mode == crm_crds::DatabaseMode::Managed)
            .then_some(())
    })
    .await;

    let pod = server_pod(&pods, name, true).await;
    for (id, email) in &written {
        let (status, body) = http(
            &pods,
            &pod,
            "GET",
            &format!("/api/v1/contacts/{id}"),
            &key,
            None,
        )
        .await;
        assert_eq!(status, 200, "e2e: contact {id} after the move: {body}");
        assert_eq!(&body["email"], email, "e2e: contact {id} after the move");
    }
    let contact = json!({ "first_name": "Grace", "last_name": "Hopper", "email": "grace@bakery-move.example" });
    let (status, body) = http(
        &pods,
        &pod,
        "POST",
        "/api/v1/contacts",
        &key,
        Some(&contact),
    )
    .await;
    assert_eq!(status, 201, "e2e: writable on PostgreSQL: {body}");
    tenants.delete(name, &DeleteParams::default()).await?;
    Ok(())
}

/// A ready, running server pod of `tenant` whose writable template uses
/// PostgreSQL (`DATABASE_URL` from `<t>-db`) or, with `on_postgres` false,
/// SQLite; waits for one.
async fn server_pod(pods: &Api<Pod>, tenant: &str, on_postgres: bool) -> String {
    let selector =
        format!("app.kubernetes.io/instance={tenant},app.kubernetes.io/component=server");
    let params = kube::api::ListParams::default().labels(&selector);
    let what = format!(
        "a ready {tenant} pod on {}",
        if on_postgres { "PostgreSQL" } else { "SQLite" }
    );
    eventually_within(&what, MOVE, || async {
        let list = pods.list(&params).await.ok()?;
        list.items.into_iter().find_map(|pod| {
            let owned_by_replica_set = pod
                .owner_references()
                .iter()
                .any(|o| o.kind == "ReplicaSet");
            let ready = pod
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let env = pod
                .spec
                .as_ref()?
                .containers
                .first()?
                .env
                .clone()
                .unwrap_or_default();
            let read_only = env
                .iter()
                .any(|e| e.name == "CRM_READ_ONLY" && e.value.as_deref() == Some("true"));
            let from_secret = env.iter().any(|e| {
                e.name == "DATABASE_URL"
                    && e.value_from
                        .as_ref()
                        .is_some_and(|v| v.secret_key_ref.is_some())
            });
            (owned_by_replica_set
                && ready
                && pod.metadata.deletion_timestamp.is_none()
                && !read_only
                && from_secret == on_postgres)
                .then(|| pod.name_any())
        })
    })
    .await
}

/// One HTTP/1.1 request to the server's port 8080 in `pod`, through a
/// port-forward; the status code and the JSON body (`null` when empty).
async fn http(
    pods: &Api<Pod>,
    pod: &str,
    method: &str,
    path: &str,
    key: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut forwarder = pods
        .portforward(pod, &[8080])
        .await
        .unwrap_or_else(|e| panic!("e2e: a port-forward to {pod}: {e}"));
    let mut stream = forwarder
        .take_stream(8080)
        .expect("e2e: the forwarded port 8080");
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let read = stream.read(&mut chunk).await?;
            response.extend_from_slice(&chunk[..read]);
            if read == 0 || complete(&response) {
                return Ok::<_, std::io::Error>(response);
            }
        }
    };
    let response = tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .unwrap_or_else(|_| panic!("e2e: {method} {path} on {pod} timed out"))
        .unwrap_or_else(|e| panic!("e2e: {method} {path} on {pod}: {e}"));
    drop(stream);
    forwarder.abort();
    let (head, body) = split_response(&response).unwrap_or_else(|| {
        panic!(
            "e2e: {method} {path}: not an HTTP response: {:?}",
            String::from_utf8_lossy(&response)
        )
    });
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("e2e: {method} {path}: no status in {head:?}"));
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
    };
    (status, json)
}

/// The head (as text) and the body of a response.
fn split_response(response: &[u8]) -> Option<(String, &[u8])> {
    let end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&response[..end]).into_owned();
    Some((head, &response[end + 4..]))
}

/// Whether a response's body is all there, by its `Content-Length`; a
/// response without one ends when the server closes the connection.
fn complete(response: &[u8]) -> bool {
    let Some((head, body)) = split_response(response) else {
        return false;
    };
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .is_some_and(|length| body.len() >= length)
}
